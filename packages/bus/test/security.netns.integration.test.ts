import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKey, sealDatagram } from '@autobus/protocol'
import {
  canUseNamespaces,
  createLan,
  type Host,
  type Lan,
  type LineProcess,
} from '@autobus/testkit'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'

// Keyed buses on three "hosts" (network namespaces; needs root, as in CI),
// run from the built packages (pnpm build first): what a host without the
// key can do to them, replays of their own datagrams, access rules, the
// CLI, and rolling the key while they run.
const fixture = fileURLToPath(new URL('./fixtures/secure.mjs', import.meta.url))
const cliMain = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url))
const baseEnv = {
  ...process.env,
  NO_COLOR: '1',
  AUTOBUS_DISCOVERY_PORT: '',
  AUTOBUS_INTERFACES: '',
}
const k1 = generateKey('k1')
const k2 = generateKey('k2')
const guest = generateKey('guest')

interface Node extends LineProcess {
  port: number
  ask(command: Record<string, unknown>): Promise<any>
}

const spawned: LineProcess[] = []
afterEach(() => {
  for (const process of spawned.splice(0)) process.kill()
})

async function keyed(
  host: Host,
  env: Record<string, string> = { AUTOBUS_KEY: k1.text },
): Promise<Node> {
  const process = host.node(fixture, ['host'], {
    env: { ...baseEnv, ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  spawned.push(process)
  const { port } = await process.json()
  return {
    ...process,
    port,
    ask(command) {
      process.child.stdin!.write(`${JSON.stringify(command)}\n`)
      return process.json()
    },
  }
}

function run(host: Host, args: string[], env: Record<string, string> = {}) {
  const process = host.node(fixture, args, { env: { ...baseEnv, ...env } })
  spawned.push(process)
  return process
}

/** Asks until `check` holds for the stats (discovery takes its time); the test's own timeout bounds it. */
async function until(node: Node, check: (stats: any) => boolean): Promise<any> {
  for (;;) {
    const stats = await node.ask({ do: 'stats' })
    if (check(stats)) return stats
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const sees = (stats: any, service: string) =>
  stats.services.some((entry: { service: string }) => entry.service === service)

describe.runIf(canUseNamespaces)('security across hosts (network namespaces; needs root)', () => {
  let lan: Lan
  let h1: Host
  let h2: Host
  let h3: Host
  beforeAll(() => {
    lan = createLan(3)
    ;[h1, h2, h3] = lan.hosts as [Host, Host, Host]
  })
  afterAll(() => lan.close())

  it('ignores forged datagrams from a host without the key, and replays of genuine ones', async () => {
    const ear = run(h3, ['ear'])
    await ear.json()
    const a = await keyed(h1)
    const b = await keyed(h2)
    const id = 'victim-service'
    const { port } = await a.ask({ do: 'publish', name: 'a', id })
    await until(b, (stats) => sees(stats, id))

    // Capture a genuine add, then a genuine goodbye.
    let add: any
    while (!add) {
      const heard = await ear.json()
      if (heard.sealed && heard.datagram?.command === 'add' && heard.datagram.service === id)
        add = heard
    }
    await a.ask({ do: 'unpublish', id })
    let remove: any
    while (!remove) {
      const heard = await ear.json()
      if (heard.sealed && heard.datagram?.command === 'remove') remove = heard
    }
    await until(b, (stats) => !sees(stats, id))

    // The captured add, sent again from the publisher's own host, brings nothing back.
    await run(h1, ['send', add.hex]).json()
    // The service comes back for real; the captured goodbye, replayed, does not remove it.
    await a.ask({ do: 'publish', name: 'a', id })
    const before = await until(b, (stats) => sees(stats, id))
    await run(h1, ['send', remove.hex]).json()

    // Forged from the host without the key: unsigned, and sealed with a key of its own.
    const forgedRemove = Buffer.from(JSON.stringify({ command: 'remove', port, service: id }))
    const forgedAdd = Buffer.from(
      JSON.stringify({ command: 'add', port: 1, service: 'evil', info: { type: 'secure' } }),
    )
    await run(h3, ['send', forgedRemove.toString('hex')]).json()
    await run(h3, ['send', forgedAdd.toString('hex')]).json()
    await run(h3, [
      'send',
      sealDatagram(forgedAdd, generateKey('k1'), Date.now()).toString('hex'),
    ]).json()
    await run(h3, [
      'send',
      sealDatagram(forgedRemove, generateKey('zz'), Date.now()).toString('hex'),
    ]).json()

    const after = await until(b, (stats) => {
      const dropped = stats.security.datagramsDropped
      return (
        dropped.unsigned >= before.security.datagramsDropped.unsigned + 2 &&
        dropped.badTag >= 1 &&
        dropped.unknownKey >= 1
      )
    })
    expect(sees(after, id)).toBe(true)
    expect(after.services.map((s: any) => s.service)).not.toContain('evil')
    expect(
      after.security.datagramsDropped.replayed + after.security.datagramsDropped.outsideWindow,
    ).toBeGreaterThanOrEqual(2)
  }, 60_000)

  it('lets no keyless or wrong-key client bind or call, and gives plaintext nothing', async () => {
    const a = await keyed(h1)
    const { service, port } = await a.ask({ do: 'publish', name: 'a' })
    const target = { host: h1.address, port, service }
    const stranger = await keyed(h3, { AUTOBUS_KEY: '' })
    const impostor = await keyed(h3, { AUTOBUS_KEY: generateKey('k1').text })
    const friend = await keyed(h2)
    expect(await friend.ask({ do: 'call', target, fn: 'echo', args: [1] })).toEqual({ result: 1 })
    expect(await stranger.ask({ do: 'call', target, fn: 'echo', args: [1] })).toHaveProperty(
      'error',
    )
    expect(await impostor.ask({ do: 'call', target, fn: 'echo', args: [1] })).toEqual({
      error: 'unreachable',
    })
    expect(await run(h3, ['plain', h1.address, String(port), service]).json()).toMatchObject({
      frame: false,
    })
    const stats = await a.ask({ do: 'stats' })
    expect(stats.security.handshakeFailures).toBeGreaterThanOrEqual(3)
  }, 30_000)

  it('answers forbidden where a rule denies, while other calls work', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'autobus-rules-')), 'access.json')
    writeFileSync(
      file,
      JSON.stringify({
        default: 'allow',
        rules: [{ effect: 'deny', actions: ['call'], keys: ['guest'], member: 'shutdown' }],
      }),
    )
    const a = await keyed(h1, { AUTOBUS_KEY: `${k1.text},${guest.text}`, AUTOBUS_ACCESS: file })
    const { service, port } = await a.ask({ do: 'publish', name: 'a' })
    const target = { host: h1.address, port, service }
    const visitor = await keyed(h2, { AUTOBUS_KEY: guest.text })
    const owner = await keyed(h3)
    expect(await visitor.ask({ do: 'call', target, fn: 'shutdown' })).toEqual({
      error: 'forbidden',
    })
    expect(await visitor.ask({ do: 'call', target, fn: 'echo', args: ['hi'] })).toEqual({
      result: 'hi',
    })
    expect(await owner.ask({ do: 'call', target, fn: 'shutdown' })).toEqual({ result: 'bye' })
    expect((await a.ask({ do: 'stats' })).security.forbidden).toBe(1)
  }, 30_000)

  it('works from the CLI with the right key, exactly as without one', async () => {
    const a = await keyed(h1)
    const { service } = await a.ask({ do: 'publish', name: 'cli' })
    const keyFile = join(mkdtempSync(join(tmpdir(), 'autobus-key-')), 'bus.key')
    writeFileSync(keyFile, `# the office bus\n${k1.text}\n`)
    const cli = (args: string[], env: Record<string, string> = {}) => {
      const process = h2.node(cliMain, args, { env: { ...baseEnv, ...env } })
      spawned.push(process)
      return process
    }
    const list = cli(['--key-file', keyFile, 'list', '--json', '--wait', '2'])
    expect(await list.json()).toMatchObject({ service, host: h1.address })
    const call = cli(['call', 'type=secure,name=cli', 'echo', '42'], { AUTOBUS_KEY: k1.text })
    expect(await call.json()).toBe(42)
    expect(await call.exited).toBe(0)
    const without = cli(['call', 'type=secure,name=cli', 'echo', '42', '--wait', '1'])
    expect(await without.exited).toBe(3)
  }, 30_000)

  it('rolls a key across three running hosts without losing a service or a call', async () => {
    const nodes = [await keyed(h1), await keyed(h2), await keyed(h3)]
    const ids: string[] = []
    for (const [i, node] of nodes.entries())
      ids.push((await node.ask({ do: 'publish', name: `n${i}` })).service)
    for (const node of nodes) await until(node, (stats) => stats.services.length === 3)
    for (const node of nodes) await node.ask({ do: 'loop' })
    const rounds = async (node: Node) => {
      const { calls } = await node.ask({ do: 'stats' })
      await until(node, (stats) => stats.calls >= calls + 6)
    }
    for (const node of nodes)
      expect(await node.ask({ do: 'install', key: k2.text })).toEqual({ id: 'k2' })
    for (const node of nodes) {
      await node.ask({ do: 'use', id: 'k2' })
      await Promise.all(nodes.map(rounds))
    }
    for (const node of nodes)
      expect(await node.ask({ do: 'remove', id: 'k1' })).toEqual({ removed: true })
    await Promise.all(nodes.map(rounds))
    // Announcements under the new key alone reach everyone.
    for (const node of nodes) {
      const { security } = await node.ask({ do: 'stats' })
      await until(
        node,
        (stats) => stats.security.datagramsAccepted.sealed >= security.datagramsAccepted.sealed + 4,
      )
    }
    for (const node of nodes) {
      const stats = await node.ask({ do: 'stats' })
      expect(stats).toMatchObject({ failures: 0, downs: 0, lastError: null })
      expect(stats.services).toHaveLength(3)
      const { replayed: _copies, ...dropped } = stats.security.datagramsDropped
      expect(Object.values(dropped).every((count) => count === 0)).toBe(true)
    }
  }, 60_000)
})
