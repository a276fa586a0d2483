import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { bindService } from '@autobus/rpc'
import { makeCertificates } from '@autobus/testkit'
import { describe, expect, it } from 'vitest'
import {
  type AccessPolicy,
  type Bus,
  createAccessControl,
  ForbiddenError,
  generateKey,
  META_SERVICE_ID,
} from '../src/index.js'
import { closedAfterEach } from './buses.js'

const bus = closedAfterEach({ discovery: false, host: '127.0.0.1' })

const admin = generateKey('admin')
const guest = generateKey('guest')
const denyShutdownToGuest: AccessPolicy = {
  default: 'allow',
  rules: [{ effect: 'deny', actions: ['call'], keys: ['guest'], member: 'shutdown' }],
}

async function machine(server: Bus) {
  const ran: string[] = []
  const service = server.createService({ info: { type: 'machine', room: 'lab' } })
  service
    .addFunction('status', { args: [] }, () => {
      ran.push('status')
      return 'ok'
    })
    .addFunction('shutdown', { args: [] }, () => {
      ran.push('shutdown')
      return 'bye'
    })
  server.publish(service)
  return { service, ran }
}

describe('access rules', () => {
  it('answer forbidden to the identity a rule denies, without running the handler', async () => {
    const server = await bus({ key: [admin, guest], access: denyShutdownToGuest })
    const { service, ran } = await machine(server)
    const target = { host: '127.0.0.1', port: server.port, service: service.id }
    const asGuest = await (await bus({ key: guest })).connect(target)
    const asAdmin = await (await bus({ key: admin })).connect(target)
    await expect(asGuest.call('shutdown', [])).rejects.toThrow(ForbiddenError)
    expect(await asGuest.call('status', [])).toBe('ok')
    expect(await asAdmin.call('shutdown', [])).toBe('bye')
    expect(ran).toEqual(['status', 'shutdown'])
    expect(server.securityStats?.forbidden).toBe(1)
  })

  it('judge a connection within the program as this host holding the bus key', async () => {
    // The current key is the first: a guest-only rule then does not apply.
    const server = await bus({ key: [guest, admin], access: denyShutdownToGuest })
    const { service, ran } = await machine(server)
    const connection = await bindService(server.connectInProcess(), service.id)
    await expect(connection.call('shutdown', [])).rejects.toThrow(ForbiddenError)
    const local = await bus({
      key: [admin, guest],
      access: {
        default: 'deny',
        rules: [{ effect: 'allow', addresses: ['127.0.0.0/8'], keys: ['admin'] }],
      },
    })
    const other = await machine(local)
    const allowed = await bindService(local.connectInProcess(), other.service.id)
    expect(await allowed.call('shutdown', [])).toBe('bye')
    expect([...ran, ...other.ran]).toEqual(['shutdown'])
    await connection.close()
    await allowed.close()
  })

  it('match addresses, info and service ids; deny wins; a deny default needs an allow', async () => {
    const server = await bus({
      key: admin,
      access: {
        default: 'deny',
        rules: [
          { effect: 'allow', addresses: ['127.0.0.0/8'], info: { type: 'mach*' } },
          { effect: 'allow', serviceId: META_SERVICE_ID },
          { effect: 'deny', actions: ['watch'], info: { room: 'lab' } },
        ],
      },
    })
    const { service } = await machine(server)
    const other = server.createService({ info: { type: 'printer' } })
    other.addFunction('print', { args: [] }, () => 'printed')
    server.publish(other)
    const client = await bus({ key: admin })
    const at = (id: string) => ({ host: '127.0.0.1', port: server.port, service: id })
    expect(await (await client.connect(at(service.id))).call('status', [])).toBe('ok')
    await expect((await client.connect(at(other.id))).call('print', [])).rejects.toThrow(
      ForbiddenError,
    )
    const meta = await client.connect(at(META_SERVICE_ID))
    const listed = (await meta.call('list_services', [])) as Array<{ service: string }>
    expect(listed.map((entry) => entry.service)).toEqual([service.id])
    await expect(meta.call('describe', [other.id])).rejects.toThrow(/no service/)
  })

  it('list services of a bus without discovery only to askers a rule names', async () => {
    const server = await bus({
      key: [admin, guest],
      access: {
        default: 'allow',
        rules: [{ effect: 'allow', actions: ['list', 'describe'], keys: ['admin'] }],
      },
    })
    const { service } = await machine(server)
    const meta = { host: '127.0.0.1', port: server.port, service: META_SERVICE_ID }
    const seenBy = async (key: typeof admin) =>
      (
        (await (await (await bus({ key })).connect(meta)).call('list_services', [])) as Array<{
          service: string
        }>
      ).map((entry) => entry.service)
    expect(await seenBy(admin)).toEqual([service.id])
    expect(await seenBy(guest)).toEqual([])
  })

  it('are read again from their file while serving', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'autobus-access-')), 'access.json')
    writeFileSync(file, JSON.stringify({ default: 'allow', rules: [] }))
    // The file is polled: the rules change with no call into the bus.
    const access = await createAccessControl({ file, reloadInterval: 20 })
    const server = await bus({ key: [admin, guest], access })
    expect(server.access).toBe(access)
    const { service } = await machine(server)
    const asGuest = await (await bus({ key: guest })).connect({
      host: '127.0.0.1',
      port: server.port,
      service: service.id,
    })
    expect(await asGuest.call('shutdown', [])).toBe('bye')
    const failedWith = (pattern: RegExp) =>
      new Promise<void>((resolve) => {
        const failed = (error: Error) => {
          if (!pattern.test(error.message)) return
          access.off('reloadFailed', failed)
          resolve()
        }
        access.on('reloadFailed', failed)
      })
    // Every single change is noticed, the first one too, however soon
    // after the rules were read. A file written in place can be read
    // half-written: each wait below is for an outcome only its own change
    // can cause.
    const broken = failedWith(/not valid JSON/)
    writeFileSync(file, '{"default": "maybe"')
    await broken
    // A broken file leaves the rules in force.
    expect(await asGuest.call('shutdown', [])).toBe('bye')
    const reloaded = once(access, 'reloaded')
    writeFileSync(file, JSON.stringify(denyShutdownToGuest))
    await reloaded
    await expect(asGuest.call('shutdown', [])).rejects.toThrow(ForbiddenError)
    // So do rules that are not valid.
    const invalid = failedWith(/invalid access rules/)
    writeFileSync(file, JSON.stringify({ default: 'maybe', rules: [] }))
    await invalid
    await expect(asGuest.call('shutdown', [])).rejects.toThrow(ForbiddenError)
    expect(await asGuest.call('status', [])).toBe('ok')
  })

  it('refuse rules that are not valid, with a clear error', async () => {
    await expect(
      bus({ access: { default: 'allow', rules: [{ effect: 'deny', addresses: ['nowhere'] }] } }),
    ).rejects.toThrow(/not an address/)
    await expect(bus({ access: { default: 'perhaps' } as never })).rejects.toThrow(
      /invalid access rules/,
    )
  })
})

describe('access rules with certificates', () => {
  it('name a peer by its certificate subject', async () => {
    const certificates = makeCertificates(['server', 'alice', 'bob'])
    const server = await bus({
      certificate: certificates.byName.server,
      access: {
        default: 'allow',
        rules: [{ effect: 'deny', subjects: ['bob'], actions: ['call'], member: 'shutdown' }],
      },
    })
    const { service, ran } = await machine(server)
    const target = { host: '127.0.0.1', port: server.port, service: service.id }
    const alice = await (await bus({ certificate: certificates.byName.alice })).connect(target)
    const bob = await (await bus({ certificate: certificates.byName.bob })).connect(target)
    await expect(bob.call('shutdown', [])).rejects.toThrow(ForbiddenError)
    expect(await bob.call('status', [])).toBe('ok')
    expect(await alice.call('shutdown', [])).toBe('bye')
    expect(ran).toEqual(['status', 'shutdown'])
    await expect((await bus()).connect(target)).rejects.toThrow()
  })
})
