import { keyedProbe, probeService } from '@autobus/discovery'
import { describe, expect, it } from 'vitest'
import { type Bus, generateKey, KeyRing, Type, UnreachableError } from '../src/index.js'
import { closedAfterEach, onLoopback } from './buses.js'

// Keyed buses on loopback, on a discovery port of this suite's own.
const bus = closedAfterEach(onLoopback(47))

function publishAdder(on: Bus, type: string) {
  const service = on.createService({ info: { type } })
  service.addFunction('add', { args: [Type.Number(), Type.Number()] }, (a, b) => a + b)
  on.publish(service)
  return service
}

describe('a bus with a key', () => {
  const key = generateKey('k1')

  it('finds and calls services of buses with the same key', async () => {
    const server = await bus({ key: key.text })
    publishAdder(server, 'test.keyed')
    const client = await bus({ key: key.text })
    const proxy = client.singleServiceProxy({ type: 'test.keyed' })
    await proxy.waitForBind({ timeout: 5_000 })
    expect(await proxy.call('add', [2, 3])).toBe(5)
    expect(server.securityStats?.handshakeFailures).toBe(0)
  })

  it('is invisible and closed to a bus without the key, and sees nothing of it', async () => {
    const server = await bus({ key: key.text })
    const service = publishAdder(server, 'test.hidden')
    const stranger = await bus()
    publishAdder(stranger, 'test.open')
    const wrong = await bus({ key: generateKey('k1').text })
    // The keyed bus hears the stranger's and the impostor's announcements and drops them.
    const keyedClient = await bus({ key: key.text })
    await keyedClient.waitForService({ type: 'test.hidden' }, { timeout: 5_000 })
    await expect(
      stranger.waitForService({ type: 'test.hidden' }, { timeout: 1_500 }),
    ).rejects.toThrow(UnreachableError)
    expect(keyedClient.services({ type: 'test.open' })).toEqual([])
    const target = { host: '127.0.0.1', port: server.port, service: service.id }
    await expect(stranger.connect(target)).rejects.toThrow()
    await expect(wrong.connect(target)).rejects.toThrow(/TLS handshake/)
    const stats = keyedClient.securityStats!
    expect(stats.datagramsDropped.unsigned).toBeGreaterThan(0)
    expect(server.securityStats!.handshakeFailures).toBeGreaterThanOrEqual(1)
  })

  it('takes new keys while running: install, use, remove', async () => {
    const next = generateKey('k2')
    const ring = new KeyRing([key])
    const server = await bus({ key: ring })
    publishAdder(server, 'test.rolled')
    const client = await bus({ key: new KeyRing([key]) })
    const proxy = client.singleServiceProxy({ type: 'test.rolled' })
    await proxy.waitForBind({ timeout: 5_000 })
    ring.install(next)
    client.keys!.install(next)
    client.keys!.use('k2')
    ring.use('k2')
    ring.remove('k1')
    client.keys!.remove('k1')
    expect(await proxy.call('add', [1, 1])).toBe(2)
    const target = client.services({ type: 'test.rolled' })[0]!
    const fresh = await client.connect(target)
    expect(await fresh.call('add', [2, 2])).toBe(4)
  })

  it('answers the liveness probe over TLS with the key, and not in plaintext', async () => {
    const server = await bus({ key: key.text })
    const service = publishAdder(server, 'test.probed')
    const target = { host: '127.0.0.1', port: server.port, service: service.id }
    expect(await keyedProbe(new KeyRing([key]))(target, 2_000)).toBe(true)
    expect(await keyedProbe(new KeyRing([generateKey('k1')]))(target, 2_000)).toBe(false)
    expect(await probeService(target, 2_000)).toBe(false)
  })
})
