import { DiscoveryDefaults, ErrorCode } from '@autobus/protocol'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createDiscoverer, createPublisher, type ServiceChange } from '../src/index.js'
import { MemoryNetwork } from './memory-network.js'

let network: MemoryNetwork
beforeEach(() => {
  vi.useFakeTimers({ now: 0 })
  network = new MemoryNetwork()
})
afterEach(() => {
  vi.useRealTimers()
})

const info = { type: 'test.speaker' }

/** Closes under fake time: goodbyes wait on timers. */
async function close(...closables: Array<{ close(): Promise<unknown> }>) {
  const closing = Promise.all(closables.map((closable) => closable.close()))
  await vi.advanceTimersByTimeAsync(1_000)
  await closing
}

describe('Discoverer timing', () => {
  it('queries at start, then on the documented schedule, then stops', async () => {
    const discoverer = await createDiscoverer({
      network: network.host('10.0.0.1'),
      probe: async () => true,
    })
    await vi.advanceTimersByTimeAsync(60_000)
    const queries = network.commands('query')
    expect(queries.map((sent) => sent.at)).toEqual([...DiscoveryDefaults.querySchedule])
    expect(DiscoveryDefaults.querySchedule).toEqual([0, 200, 1_000, 3_000, 7_000])
    // Marked: this asker listens on the port its queries come from.
    for (const query of queries)
      expect(query.datagram).toEqual({ command: 'query', reply: 'unicast' })
    await discoverer.close()
  })

  it('probes a silent service after 2.5 intervals and drops it when the probe fails', async () => {
    const probe = vi.fn(async () => false)
    const discoverer = await createDiscoverer({ network: network.host('10.0.0.1'), probe })
    const gone: number[] = []
    discoverer.on('disappeared', () => gone.push(Date.now()))
    network.inject(
      JSON.stringify({ command: 'add', port: 4000, service: 's1', info, interval: 4_000 }),
    )
    expect(discoverer.snapshot()).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(9_999)
    expect(probe).not.toHaveBeenCalled()
    await vi.advanceTimersByTimeAsync(1_001)
    expect(probe).toHaveBeenCalledWith(
      { host: '10.0.0.99', port: 4000, service: 's1' },
      3_000,
      expect.anything(),
    )
    expect(gone).toHaveLength(1)
    expect(gone[0]).toBeLessThanOrEqual(11_000)
    await discoverer.close()
  })

  it('keeps a silent service whose probe succeeds', async () => {
    const probe = vi.fn(async () => true)
    const discoverer = await createDiscoverer({ network: network.host('10.0.0.1'), probe })
    network.inject(JSON.stringify({ command: 'add', port: 4000, service: 's1', info }))
    await vi.advanceTimersByTimeAsync(60_000)
    expect(probe.mock.calls.length).toBeGreaterThanOrEqual(2)
    expect(discoverer.snapshot()).toHaveLength(1)
    await discoverer.close()
  })

  it('turns a restart into disappeared, appeared and one changed; changes() says down then up', async () => {
    const discoverer = await createDiscoverer({
      network: network.host('10.0.0.1'),
      probe: async () => true,
    })
    const events: string[] = []
    discoverer.on('appeared', (s) => events.push(`up ${s.info.version}`))
    discoverer.on('disappeared', (s) => events.push(`down ${s.info.version}`))
    discoverer.on('changed', (s, p) => events.push(`changed ${p.info.version}->${s.info.version}`))
    const changes: ServiceChange[] = []
    const controller = new AbortController()
    const collecting = (async () => {
      for await (const change of discoverer.changes({ signal: controller.signal }))
        changes.push(change)
    })()
    await vi.advanceTimersByTimeAsync(1)
    network.inject(
      JSON.stringify({ command: 'add', port: 4000, service: 's1', info: { version: 1 } }),
    )
    network.inject(
      JSON.stringify({ command: 'add', port: 4000, service: 's1', info: { version: 1 } }),
    )
    network.inject(
      JSON.stringify({ command: 'add', port: 4000, service: 's1', info: { version: 2 } }),
    )
    network.inject(JSON.stringify({ command: 'remove', port: 4000, service: 's1' }))
    await vi.advanceTimersByTimeAsync(1)
    expect(events).toEqual(['up 1', 'down 1', 'up 2', 'changed 1->2', 'down 2'])
    controller.abort()
    await collecting
    expect(
      changes.map((change) => [change.type, change.service.info.version, change.restart]),
    ).toEqual([
      ['up', 1, undefined],
      ['down', 1, true],
      ['up', 2, true],
      ['down', 2, undefined],
    ])
    expect(changes[0]!.service.info).toMatchObject({
      version: 1,
      host: '10.0.0.99',
      port: 4000,
      service: 's1',
    })
    await discoverer.close()
  })

  it('drops and counts malformed datagrams, and evicts an unverified entry from a full table', async () => {
    const discoverer = await createDiscoverer({
      network: network.host('10.0.0.1'),
      probe: async () => true,
      maxServices: 2,
    })
    network.inject('not json')
    network.inject(JSON.stringify({ command: 'add', port: 'x', service: 's', info: {} }))
    network.inject(JSON.stringify({ command: 'teleport' }))
    network.inject(Buffer.alloc(10_000, 0x20))
    for (const id of ['a', 'b', 'c'])
      network.inject(JSON.stringify({ command: 'add', port: 1, service: id, info: {}, extra: 1 }))
    expect(discoverer.stats).toMatchObject({ malformed: 4, overCapacity: 0, evicted: 1 })
    expect(discoverer.snapshot().map((s) => s.service)).toEqual(['b', 'c'])
    await discoverer.close()
  })
})

describe('Publisher timing', () => {
  it('waits the hold-off, then announces every interval ± 25 %', async () => {
    const publisher = await createPublisher({ network: network.host('10.0.0.2') })
    publisher.publish({ service: 's1', port: 4000, info })
    await vi.advanceTimersByTimeAsync(100_000)
    const times = network.commands('add').map((sent) => sent.at)
    expect(times[0]).toBe(1_000)
    const gaps = times.slice(1).map((time, i) => time - times[i]!)
    expect(gaps.length).toBeGreaterThanOrEqual(7)
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(7_500)
      expect(gap).toBeLessThanOrEqual(12_500)
    }
    expect(network.commands('add')[0]!.datagram).toMatchObject({
      port: 4000,
      service: 's1',
      info: { type: 'test.speaker', hostname: expect.any(String) },
    })
    await close(publisher)
  })

  it('announces at once with a zero hold-off', async () => {
    const publisher = await createPublisher({ network: network.host('10.0.0.2'), holdOff: 0 })
    publisher.publish({ service: 's1', port: 4000, info })
    await vi.advanceTimersByTimeAsync(0)
    expect(network.commands('add').map((sent) => sent.at)).toEqual([0])
    await close(publisher)
  })

  it('answers a marked query by unicast after 20–120 ms, and spreads 200 answers wider', async () => {
    // A budget large enough for every answer: the spread is the point here.
    const publisher = await createPublisher({ network: network.host('10.0.0.2'), answerBurst: 1e6 })
    for (let i = 0; i < 200; i++) publisher.publish({ service: `s${i}`, port: 4000, info })
    const discoverer = await createDiscoverer({
      network: network.host('10.0.0.1'),
      probe: async () => true,
      querySchedule: [0],
    })
    await vi.advanceTimersByTimeAsync(999)
    const answers = network.commands('add')
    expect(answers).toHaveLength(200)
    expect(new Set(answers.map((sent) => sent.to))).toEqual(new Set([`10.0.0.1:${40_001}`]))
    const times = answers.map((sent) => sent.at)
    expect(Math.min(...times)).toBeGreaterThanOrEqual(20)
    expect(Math.max(...times)).toBeLessThanOrEqual(120 + 2 * 190)
    // Spread: no 10 ms slot holds more than a tenth of the answers.
    const slots = new Map<number, number>()
    for (const time of times)
      slots.set(Math.floor(time / 10), (slots.get(Math.floor(time / 10)) ?? 0) + 1)
    expect(Math.max(...slots.values())).toBeLessThanOrEqual(20)
    expect(discoverer.snapshot()).toHaveLength(200)
    await close(discoverer, publisher)
  })

  it('sends three goodbyes 20 ms apart, and the first one removes the service', async () => {
    const publisher = await createPublisher({ network: network.host('10.0.0.2'), holdOff: 0 })
    const discoverer = await createDiscoverer({
      network: network.host('10.0.0.1'),
      probe: async () => true,
    })
    const published = publisher.publish({ service: 's1', port: 4000, info })
    await vi.advanceTimersByTimeAsync(10)
    expect(discoverer.snapshot()).toHaveLength(1)
    const start = Date.now()
    const done = published.unpublish()
    expect(discoverer.snapshot()).toHaveLength(0)
    await vi.advanceTimersByTimeAsync(100)
    await done
    expect(network.commands('remove').map((sent) => sent.at - start)).toEqual([0, 20, 40])
    await close(discoverer, publisher)
  })

  it('refuses an info too large for one datagram', async () => {
    const publisher = await createPublisher({ network: network.host('10.0.0.2') })
    expect(() =>
      publisher.publish({ service: 's1', port: 4000, info: { blob: 'x'.repeat(9_000) } }),
    ).toThrow(expect.objectContaining({ code: ErrorCode.DatagramTooLarge }))
    expect(() => publisher.publish({ service: '', port: 4000, info })).toThrow(TypeError)
    expect(() => publisher.publish({ service: 's', port: 0, info })).toThrow(TypeError)
    await close(publisher)
  })

  it('sends goodbyes for every service on close', async () => {
    const publisher = await createPublisher({ network: network.host('10.0.0.2') })
    publisher.publish({ service: 'a', port: 4000, info })
    publisher.publish({ service: 'b', port: 4000, info })
    const closing = publisher.close()
    await vi.advanceTimersByTimeAsync(100)
    await closing
    expect(network.commands('remove')).toHaveLength(6)
    expect(network.commands('add')).toHaveLength(0)
  })
})

describe('Discoverer and publisher lifecycle', () => {
  it('close with one shape, replay known services first, and end changes() on close', async () => {
    const publisher = await createPublisher({ network: network.host('10.0.0.2') })
    publisher.publish({ service: 's1', port: 4000, info })
    const discoverer = await createDiscoverer({
      network: network.host('10.0.0.1'),
      probe: async () => true,
    })
    await vi.advanceTimersByTimeAsync(1_000)
    const seen: ServiceChange[] = []
    const iterating = (async () => {
      for await (const change of discoverer.changes({ replay: true })) seen.push(change)
    })()
    await vi.advanceTimersByTimeAsync(0)
    expect(seen.map((change) => [change.type, change.service.service])).toEqual([['up', 's1']])
    const closing = discoverer.close('test over')
    const publisherClosed = publisher.closed
    const closingPublisher = publisher.close('test over')
    await vi.advanceTimersByTimeAsync(1_000)
    expect(await closing).toEqual({ reason: 'test over' })
    expect(await discoverer.closed).toEqual({ reason: 'test over' })
    expect(await closingPublisher).toEqual({ reason: 'test over' })
    expect(await publisherClosed).toEqual({ reason: 'test over' })
    expect(await discoverer.close('again')).toEqual({ reason: 'test over' })
    await iterating
  })
})
