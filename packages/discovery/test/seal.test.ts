import { generateKey, KeyRing, sealDatagram } from '@autobus/protocol'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createDiscoverer, createPublisher, sealedNetwork, sharedNetwork } from '../src/index.js'
import { MemoryNetwork } from './memory-network.js'

// Sealed discovery on the in-memory network under fake time
// (docs/protocol.md §6.3): what a host without the key sends, replays of
// what a host with it sent, and rolling keys.

let network: MemoryNetwork
beforeEach(() => {
  vi.useFakeTimers({ now: 1_700_000_000_000 })
  network = new MemoryNetwork()
})
afterEach(() => {
  vi.useRealTimers()
})

const key = generateKey('k1')
const add = (service: string, port = 4000) =>
  Buffer.from(JSON.stringify({ command: 'add', port, service, info: { type: 'x' } }))
const remove = (service: string, port = 4000) =>
  Buffer.from(JSON.stringify({ command: 'remove', port, service }))

async function keyedHost(address: string, keys: KeyRing, options = {}) {
  const sealed = sealedNetwork(network.host(address), { keys, ...options })
  const shared = sharedNetwork(sealed)
  const discoverer = await createDiscoverer({ network: shared, probe: async () => true })
  const publisher = await createPublisher({ network: shared, holdOff: 0, announceInterval: 1_000 })
  return { sealed, discoverer, publisher }
}

async function close(
  ...hosts: Array<{
    discoverer: { close(): Promise<unknown> }
    publisher: { close(): Promise<unknown> }
  }>
) {
  const closing = Promise.all(
    hosts.flatMap((host) => [host.publisher.close(), host.discoverer.close()]),
  )
  await vi.advanceTimersByTimeAsync(1_000)
  await closing
}

describe('sealed discovery', () => {
  it('works between hosts with the key and seals every datagram', async () => {
    const a = await keyedHost('10.0.0.1', new KeyRing([key]))
    const b = await keyedHost('10.0.0.2', new KeyRing([key]))
    a.publisher.publish({ service: 'svc', port: 4000, info: { type: 'x' } })
    await vi.advanceTimersByTimeAsync(10)
    expect(b.discoverer.snapshot().map((s) => s.service)).toEqual(['svc'])
    for (const sent of network.sent) expect(sent.raw[0]).toBe(0xab)
    await close(a, b)
  })

  it('drops unsigned, unknown-key and forged datagrams, counted by reason', async () => {
    const a = await keyedHost('10.0.0.1', new KeyRing([key]))
    network.inject(add('plain'), '10.0.0.66')
    network.inject(sealDatagram(add('other'), generateKey('k9'), Date.now()), '10.0.0.66')
    // Same key id, another secret: the tag gives it away.
    const impostor = generateKey('k1')
    network.inject(sealDatagram(add('forged'), impostor, Date.now()), '10.0.0.66')
    network.inject(Buffer.from([0xab, 0x42, 1, 2, 3]), '10.0.0.66')
    expect(a.discoverer.snapshot()).toEqual([])
    expect(a.sealed.dropped).toMatchObject({ unsigned: 1, unknownKey: 1, badTag: 1, malformed: 1 })
    await close(a)
  })

  it('ignores a replayed add and a replayed remove, within the window and after it', async () => {
    const a = await keyedHost('10.0.0.1', new KeyRing([key]))
    const b = await keyedHost('10.0.0.2', new KeyRing([key]))
    const published = a.publisher.publish({ service: 'svc', port: 4000, info: { type: 'x' } })
    await vi.advanceTimersByTimeAsync(10)
    const goodbye = published.unpublish()
    await vi.advanceTimersByTimeAsync(100)
    await goodbye
    expect(b.discoverer.snapshot()).toEqual([])
    const captured = network.sent.find((sent) => sent.datagram.command === 'add')!.raw
    const removal = network.sent.find((sent) => sent.datagram.command === 'remove')!.raw
    // The captured announcement, sent again from its own address, brings nothing back.
    network.inject(captured, '10.0.0.1', 40_000)
    expect(b.discoverer.snapshot()).toEqual([])
    expect(b.sealed.dropped.replayed).toBeGreaterThanOrEqual(1)
    // A new announcement, then the old goodbye replayed: the service stays.
    const again = a.publisher.publish({ service: 'svc2', port: 4001, info: { type: 'x' } })
    await vi.advanceTimersByTimeAsync(10)
    expect(b.discoverer.snapshot()).toHaveLength(1)
    network.inject(removal, '10.0.0.1', 40_000)
    expect(b.discoverer.snapshot()).toHaveLength(1)
    // Long after, the same bytes are outside the window.
    await vi.advanceTimersByTimeAsync(31_000)
    network.inject(captured, '10.0.0.1', 40_000)
    expect(b.sealed.dropped.outsideWindow).toBeGreaterThanOrEqual(1)
    expect(b.discoverer.snapshot().map((s) => s.service)).toEqual(['svc2'])
    void again
    await close(a, b)
  })

  it('tolerates clock skew within the window', async () => {
    const a = await keyedHost('10.0.0.1', new KeyRing([key]), { replayWindow: 5_000 })
    network.inject(sealDatagram(add('ahead'), key, Date.now() + 4_000), '10.0.0.7')
    network.inject(sealDatagram(add('behind'), key, Date.now() - 4_000), '10.0.0.8')
    network.inject(sealDatagram(add('late'), key, Date.now() - 6_000), '10.0.0.9')
    expect(
      a.discoverer
        .snapshot()
        .map((s) => s.service)
        .sort(),
    ).toEqual(['ahead', 'behind'])
    expect(a.sealed.dropped.outsideWindow).toBe(1)
    await close(a)
  })

  it('accepts unsigned peers only when told to', async () => {
    const a = await keyedHost('10.0.0.1', new KeyRing([key]), { acceptUnsigned: true })
    network.inject(add('original'), '10.0.0.5')
    expect(a.discoverer.snapshot().map((s) => s.service)).toEqual(['original'])
    expect(a.sealed.accepted.unsigned).toBe(1)
    network.inject(remove('original'), '10.0.0.5')
    expect(a.discoverer.snapshot()).toEqual([])
    await close(a)
  })

  it('rolls a key across three running hosts without a dropped datagram or a lost service', async () => {
    const next = generateKey('k2')
    const rings = [new KeyRing([key]), new KeyRing([key]), new KeyRing([key])]
    const hosts = await Promise.all(rings.map((ring, i) => keyedHost(`10.0.0.${i + 1}`, ring)))
    for (const [i, host] of hosts.entries())
      host.publisher.publish({ service: `s${i}`, port: 4000 + i, info: { type: 'x' } })
    await vi.advanceTimersByTimeAsync(10)
    const lost: string[] = []
    for (const host of hosts) host.discoverer.on('disappeared', (s) => lost.push(s.service))
    const everyone = () => {
      for (const host of hosts) expect(host.discoverer.snapshot()).toHaveLength(3)
    }
    everyone()
    // Install everywhere, then use one host at a time with announcements in between, then remove.
    for (const ring of rings) ring.install(next)
    for (const ring of rings) {
      ring.use('k2')
      await vi.advanceTimersByTimeAsync(1_500)
      everyone()
    }
    for (const ring of rings) ring.remove('k1')
    await vi.advanceTimersByTimeAsync(3_000)
    everyone()
    expect(lost).toEqual([])
    for (const host of hosts) {
      const { replayed, ...others } = host.sealed.dropped
      expect(Object.values(others).every((n) => n === 0)).toBe(true)
    }
    // The old key is gone: what it seals is now refused.
    network.inject(sealDatagram(add('old'), key, Date.now()), '10.0.0.50')
    expect(hosts[0]!.discoverer.snapshot()).toHaveLength(3)
    expect(hosts[0]!.sealed.dropped.unknownKey).toBe(1)
    await close(...hosts)
  })
})
