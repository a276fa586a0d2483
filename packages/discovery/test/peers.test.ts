import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  createDiscoverer,
  createPublisher,
  parsePeer,
  parsePeerList,
  sharedNetwork,
} from '../src/index.js'
import { MemoryNetwork } from './memory-network.js'

// Unicast peers on an in-memory network that drops broadcast, under fake
// time (docs/protocol.md §2.2). Across real hosts behind a router:
// packages/cli/test/peers.integration.test.ts.

let network: MemoryNetwork
beforeEach(() => {
  vi.useFakeTimers({ now: 0 })
  network = new MemoryNetwork({ dropsBroadcast: true })
})
afterEach(() => {
  vi.useRealTimers()
})

async function close(...closables: Array<{ close(): Promise<unknown> }>) {
  const closing = Promise.all(closables.map((closable) => closable.close()))
  await vi.advanceTimersByTimeAsync(1_000)
  await closing
}

describe('a peer list', () => {
  it('parses host and host:port entries and rejects others with a TypeError', () => {
    expect(parsePeer('10.0.0.5')).toEqual({ host: '10.0.0.5' })
    expect(parsePeer(' host-b:52722 ')).toEqual({ host: 'host-b', port: 52722 })
    for (const bad of ['', 'a:0', 'a:65536', 'a:b', 'a b', 'a:1:2'])
      expect(() => parsePeer(bad)).toThrow(TypeError)
    expect(parsePeerList(' 10.0.0.5, ,host-b:52722,')).toEqual(['10.0.0.5', 'host-b:52722'])
    expect(parsePeerList(undefined)).toEqual([])
    expect(() => parsePeerList('ok,bad:port')).toThrow(/invalid peer "bad:port"/)
  })

  it('makes createPublisher and createDiscoverer reject an invalid entry', async () => {
    await expect(
      createPublisher({ network: network.host('10.0.0.1'), peers: ['x:0'] }),
    ).rejects.toThrow(TypeError)
    await expect(
      createDiscoverer({ network: network.host('10.0.0.1'), peers: ['x:y'] }),
    ).rejects.toThrow(TypeError)
    expect(network.members.size).toBe(0)
  })
})

describe('discovery through peers where broadcast is dropped', () => {
  it('finds nothing without peers', async () => {
    const publisher = await createPublisher({ network: network.host('10.0.0.1'), holdOff: 0 })
    publisher.publish({ service: 'far', port: 4000, info: {} })
    const discoverer = await createDiscoverer({
      network: network.host('10.0.1.2'),
      probe: async () => true,
    })
    await vi.advanceTimersByTimeAsync(8_000)
    expect(discoverer.snapshot()).toEqual([])
    await close(publisher, discoverer)
  })

  it('finds a running service by a marked query to the peer, answered by unicast', async () => {
    const publisher = await createPublisher({ network: network.host('10.0.0.1'), holdOff: 0 })
    publisher.publish({ service: 'far', port: 4000, info: { type: 'x' } })
    await vi.advanceTimersByTimeAsync(10)
    const discoverer = await createDiscoverer({
      network: network.host('10.0.1.2'),
      peers: ['10.0.0.1'],
      probe: async () => true,
    })
    // The first query, at 0 ms, answered within the 120 ms answer delay.
    await vi.advanceTimersByTimeAsync(150)
    expect(discoverer.snapshot()).toEqual([
      expect.objectContaining({ host: '10.0.0.1', port: 4000, service: 'far' }),
    ])
    const queries = network.commands('query').filter((sent) => sent.to === '10.0.0.1:52722')
    expect(queries[0]?.datagram).toEqual({ command: 'query', reply: 'unicast' })
    expect(publisher.stats.unicastAnswers).toBe(1)
    await close(publisher, discoverer)
  })

  it('sends announcements and goodbyes to the peer’s discovery port; the goodbye is honoured', async () => {
    const discoverer = await createDiscoverer({
      network: network.host('10.0.1.2'),
      probe: async () => true,
    })
    const publisher = await createPublisher({
      network: network.host('10.0.0.1'),
      peers: ['10.0.1.2'],
      holdOff: 0,
    })
    const published = publisher.publish({ service: 'far', port: 4000, info: {} })
    await vi.advanceTimersByTimeAsync(10)
    expect(discoverer.snapshot()).toHaveLength(1)
    expect(network.commands('add').map((sent) => sent.to)).toEqual(['*', '10.0.1.2:52722'])
    const gone = published.unpublish()
    await vi.advanceTimersByTimeAsync(100)
    await gone
    expect(discoverer.snapshot()).toEqual([])
    expect(discoverer.stats.ignoredRemoves).toBe(0)
    expect(network.commands('remove').filter((sent) => sent.to === '10.0.1.2:52722')).toHaveLength(
      3,
    )
    await close(publisher, discoverer)
  })

  it('sends to the port a peer entry names', async () => {
    const publisher = await createPublisher({
      network: network.host('10.0.0.1'),
      peers: ['10.0.1.2:6000'],
      holdOff: 0,
    })
    publisher.publish({ service: 'far', port: 4000, info: {} })
    await vi.advanceTimersByTimeAsync(10)
    expect(network.commands('add').map((sent) => sent.to)).toEqual(['*', '10.0.1.2:6000'])
    await close(publisher)
  })
})

describe('host names among the peers', () => {
  it('are resolved, resolved again every peerResolveInterval, and failures are counted, never thrown', async () => {
    const answers: Array<string[] | Error> = [
      ['10.0.1.2'],
      Object.assign(new Error('lookup failed'), { code: 'EAI_AGAIN' }),
      ['10.0.1.3'],
    ]
    const resolvePeer = vi.fn(async (host: string) => {
      expect(host).toBe('host-b')
      const answer = answers.shift() ?? ['10.0.1.3']
      if (answer instanceof Error) throw answer
      return answer
    })
    const publisher = await createPublisher({
      network: network.host('10.0.0.1'),
      peers: ['host-b'],
      resolvePeer,
      peerResolveInterval: 1_000,
      announceInterval: 1_000,
      announceJitter: 0,
      holdOff: 0,
    })
    publisher.publish({ service: 'far', port: 4000, info: {} })
    const destinations = () =>
      network
        .commands('add')
        .map((sent) => sent.to)
        .filter((to) => to !== '*')
    await vi.advanceTimersByTimeAsync(10)
    expect(destinations()).toEqual(['10.0.1.2:52722'])
    // The failed resolution at 1 s keeps the last address.
    await vi.advanceTimersByTimeAsync(1_000)
    expect(destinations()).toEqual(['10.0.1.2:52722', '10.0.1.2:52722'])
    expect(publisher.stats.faults.resolve).toEqual({ EAI_AGAIN: 1 })
    // The host moved: the next resolution follows it.
    await vi.advanceTimersByTimeAsync(1_000)
    expect(destinations().at(-1)).toBe('10.0.1.3:52722')
    expect(resolvePeer).toHaveBeenCalledTimes(3)
    await close(publisher)
    // Closed: no more resolutions.
    await vi.advanceTimersByTimeAsync(5_000)
    expect(resolvePeer).toHaveBeenCalledTimes(3)
  })

  it('get what was broadcast before they first resolved', async () => {
    let answer!: (addresses: string[]) => void
    const resolvePeer = () =>
      new Promise<string[]>((resolve) => {
        answer = resolve
      })
    const discoverer = await createDiscoverer({
      network: network.host('10.0.0.1'),
      peers: ['host-b'],
      resolvePeer,
      querySchedule: [0],
    })
    await vi.advanceTimersByTimeAsync(0)
    expect(network.commands('query').map((sent) => sent.to)).toEqual(['*'])
    answer(['10.0.1.2'])
    await vi.advanceTimersByTimeAsync(0)
    expect(network.commands('query').map((sent) => sent.to)).toEqual(['*', '10.0.1.2:52722'])
    await close(discoverer)
  })
})

describe('a shared network', () => {
  it('gives a publisher and a discoverer one socket, so a peer’s unicast reaches both', async () => {
    const shared = sharedNetwork(network.host('10.0.0.1'))
    const publisher = await createPublisher({ network: shared, holdOff: 0 })
    const discoverer = await createDiscoverer({
      network: shared,
      probe: async () => true,
      querySchedule: [],
    })
    expect(network.members.size).toBe(1)
    publisher.publish({ service: 'here', port: 4000, info: {} })
    // A peer elsewhere: its query and its announcement go to 10.0.0.1:52722.
    const peer = await createPublisher({
      network: network.host('10.0.1.2'),
      peers: ['10.0.0.1'],
      holdOff: 0,
    })
    peer.publish({ service: 'there', port: 4001, info: {} })
    const asker = await createDiscoverer({
      network: network.host('10.0.1.2'),
      peers: ['10.0.0.1'],
      probe: async () => true,
    })
    await vi.advanceTimersByTimeAsync(150)
    expect(discoverer.snapshot().map((service) => service.service)).toContain('there')
    expect(asker.snapshot().map((service) => service.service)).toContain('here')
    await close(publisher)
    expect(network.members.size).toBe(3)
    await close(discoverer)
    expect(network.members.size).toBe(2)
    await close(peer, asker)
  })
})
