import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createDiscoverer, createPublisher, type ServiceConflict } from '../src/index.js'
import { MemoryNetwork } from './memory-network.js'

// Hostile and faulty input against the table and the answering rules, on
// the in-memory network under fake time (docs/protocol.md §2.4–§2.6).

let network: MemoryNetwork
beforeEach(() => {
  vi.useFakeTimers({ now: 0 })
  network = new MemoryNetwork()
})
afterEach(() => {
  vi.useRealTimers()
})

const add = (service: string, port = 4000, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ command: 'add', port, service, info: { type: 'x' }, ...extra })
const remove = (service: string, port = 4000) =>
  JSON.stringify({ command: 'remove', port, service })

async function close(...closables: Array<{ close(): Promise<unknown> }>) {
  const closing = Promise.all(closables.map((closable) => closable.close()))
  await vi.advanceTimersByTimeAsync(1_000)
  await closing
}

describe('a goodbye counts only from the service itself', () => {
  it('ignores a remove from another address and honours the owner’s', async () => {
    const discoverer = await createDiscoverer({
      network: network.host('10.0.0.1'),
      probe: async () => true,
    })
    network.inject(add('victim'), '10.0.0.2', 40_500)
    network.inject(remove('victim'), '10.0.0.66', 52_722)
    expect(discoverer.snapshot()).toHaveLength(1)
    expect(discoverer.stats.ignoredRemoves).toBe(1)
    // Original peers send from throwaway ports: the owner's address is enough.
    network.inject(remove('victim'), '10.0.0.2', 61_001)
    expect(discoverer.snapshot()).toHaveLength(0)
    await discoverer.close()
  })

  it('lists a service of this host at 127.0.0.1 whichever copy comes first', async () => {
    // The same announcement heard through an interface and through
    // loopback, in both orders: the listed address must not depend on it.
    for (const order of [
      ['10.0.0.1', '127.0.0.1'],
      ['127.0.0.1', '10.0.0.1'],
    ]) {
      const discoverer = await createDiscoverer({
        network: network.host('10.0.0.1'),
        probe: async () => true,
      })
      const seen: string[] = []
      discoverer.on('appeared', (service) => seen.push(service.host))
      for (const from of order) network.inject(add('here'), from, 40_500)
      expect(seen).toEqual(['127.0.0.1'])
      expect(discoverer.snapshot()).toEqual([
        expect.objectContaining({
          host: '127.0.0.1',
          info: expect.objectContaining({ host: '127.0.0.1' }),
        }),
      ])
      await discoverer.close()
    }
  })

  it('takes a local service’s goodbye through any address of this host', async () => {
    const discoverer = await createDiscoverer({
      network: network.host('10.0.0.1'),
      probe: async () => true,
    })
    const publisher = await createPublisher({ network: network.host('10.0.0.1'), holdOff: 0 })
    const published = publisher.publish({ service: 'local', port: 4000, info: {} })
    await vi.advanceTimersByTimeAsync(1)
    expect(discoverer.snapshot()).toHaveLength(1)
    const done = published.unpublish()
    expect(discoverer.snapshot()).toHaveLength(0)
    await vi.advanceTimersByTimeAsync(100)
    await done
    await close(discoverer, publisher)
  })
})

describe('an add for a known id from another address', () => {
  it('probes the owner and keeps it when it answers; a replay loop costs one probe per probe timeout', async () => {
    const probe = vi.fn(async (_target: { host: string }) => true)
    const discoverer = await createDiscoverer({ network: network.host('10.0.0.1'), probe })
    const moved: string[] = []
    discoverer.on('disappeared', (service) => moved.push(`down ${service.host}`))
    network.inject(add('victim'), '10.0.0.2')
    for (let i = 0; i < 100; i++) {
      network.inject(remove('victim'), '10.0.0.66')
      network.inject(add('victim'), '10.0.0.66')
      await vi.advanceTimersByTimeAsync(10)
    }
    expect(discoverer.snapshot()).toEqual([expect.objectContaining({ host: '10.0.0.2' })])
    expect(moved).toEqual([])
    // Only the owner is ever probed: nothing reaches the impostor.
    expect(probe.mock.calls.every(([target]) => target.host === '10.0.0.2')).toBe(true)
    expect(probe.mock.calls.length).toBeLessThanOrEqual(1)
    expect(discoverer.stats).toMatchObject({ contested: 100, ignoredRemoves: 100 })
    await discoverer.close()
  })

  it('moves the entry when the owner fails its probe (a service that really moved)', async () => {
    const probe = vi.fn(async (target: { host: string }) => target.host !== '10.0.0.2')
    const discoverer = await createDiscoverer({ network: network.host('10.0.0.1'), probe })
    network.inject(add('mover'), '10.0.0.2')
    network.inject(add('mover'), '10.0.0.3')
    await vi.advanceTimersByTimeAsync(1)
    expect(discoverer.snapshot()).toEqual([expect.objectContaining({ host: '10.0.0.3' })])
    await discoverer.close()
  })

  it('makes the publisher re-announce at once and report a conflict', async () => {
    const publisher = await createPublisher({ network: network.host('10.0.0.2'), holdOff: 60_000 })
    publisher.publish({ service: 'mine', port: 4000, info: {} })
    const conflicts: ServiceConflict[] = []
    publisher.on('conflict', (conflict) => conflicts.push(conflict))
    network.inject(add('mine'), '10.0.0.66', 50_000)
    network.inject(remove('mine'), '10.0.0.66', 50_000)
    expect(conflicts).toEqual([
      {
        service: 'mine',
        command: 'add',
        from: { address: '10.0.0.66', port: 50_000, local: false },
      },
      {
        service: 'mine',
        command: 'remove',
        from: { address: '10.0.0.66', port: 50_000, local: false },
      },
    ])
    expect(publisher.stats.conflicts).toBe(2)
    // At once (not after the hold-off), and once per second however many claims.
    expect(network.commands('add').map((sent) => [sent.at, sent.to])).toEqual([[0, '*']])
    await close(publisher)
  })
})

describe('announced intervals and a full table', () => {
  it('clamps an announced interval to 60 s', async () => {
    const probe = vi.fn(async () => false)
    const discoverer = await createDiscoverer({ network: network.host('10.0.0.1'), probe })
    network.inject(add('slow', 4000, { interval: 3_600_000 }))
    await vi.advanceTimersByTimeAsync(150_000 + 1_000)
    expect(probe).toHaveBeenCalledTimes(1)
    expect(discoverer.snapshot()).toHaveLength(0)
    await discoverer.close()
  })

  it('lets a real service in after 10,000 forged adds, from one host or from many', async () => {
    const discoverer = await createDiscoverer({
      network: network.host('10.0.0.1'),
      probe: async (target) => target.service === 'real',
    })
    for (let i = 0; i < 10_000; i++)
      network.inject(add(`fake${i}`, 4000, { interval: 3_600_000 }), '10.0.0.66')
    expect(discoverer.snapshot()).toHaveLength(1_024) // one host's share
    for (let i = 0; i < 10_000; i++)
      network.inject(add(`spoofed${i}`, 4000, { interval: 3_600_000 }), `10.1.${i >> 8}.${i & 255}`)
    expect(discoverer.snapshot()).toHaveLength(4_096)
    network.inject(add('real'), '10.0.0.2')
    expect(discoverer.snapshot().map((s) => s.service)).toContain('real')
    expect(discoverer.stats.overCapacity).toBe(0)
    await discoverer.close()
  })

  it('never evicts a verified service, and verifies one heard again while the table is under pressure', async () => {
    const discoverer = await createDiscoverer({
      network: network.host('10.0.0.1'),
      probe: async (target) => target.service === 'real',
      maxServices: 100,
    })
    network.inject(add('real'), '10.0.0.2')
    let n = 0
    const flood = (count: number) => {
      for (let i = 0; i < count; i++) network.inject(add(`fake${n++}`), `10.1.0.${n % 250}`)
    }
    flood(99)
    network.inject(add('real'), '10.0.0.2') // its next announcement: under pressure, probed
    await vi.advanceTimersByTimeAsync(1)
    flood(10_000) // a continuous flood of newcomers
    expect(discoverer.snapshot().map((s) => s.service)).toContain('real')
    expect(discoverer.stats.evicted).toBeGreaterThan(9_000)
    await discoverer.close()
  })
})

describe('what the table knows of a service', () => {
  it('tells when it was last heard and whether a probe reached it; counts probes made and failed', async () => {
    let alive = true
    const discoverer = await createDiscoverer({
      network: network.host('10.0.0.1'),
      probe: async () => alive,
    })
    network.inject(add('quiet', 4000, { interval: 1_000 }), '10.0.0.2')
    expect(discoverer.heard('quiet')).toEqual({ lastHeard: 0, verified: false })
    await vi.advanceTimersByTimeAsync(500)
    network.inject(add('quiet', 4000, { interval: 1_000 }), '10.0.0.2')
    expect(discoverer.heard('quiet')).toEqual({ lastHeard: 500, verified: false })
    // Silent for long enough: probed, answered, verified.
    await vi.advanceTimersByTimeAsync(5_000)
    expect(discoverer.heard('quiet')?.verified).toBe(true)
    expect(discoverer.stats.probes).toBeGreaterThanOrEqual(1)
    expect(discoverer.stats.failedProbes).toBe(0)
    alive = false
    await vi.advanceTimersByTimeAsync(10_000)
    expect(discoverer.heard('quiet')).toBeUndefined()
    expect(discoverer.stats.failedProbes).toBe(1)
    await discoverer.close()
  })
})

describe('probes are capped', () => {
  it('keeps at most 32 probes in flight, 4 to one host, under 3,000 forged adds naming 40 victims', async () => {
    let inFlight = 0
    let most = 0
    const perHost = new Map<string, number>()
    let mostPerHost = 0
    const probe = vi.fn(
      (target: { host: string }) =>
        new Promise<boolean>((resolve) => {
          inFlight++
          most = Math.max(most, inFlight)
          perHost.set(target.host, (perHost.get(target.host) ?? 0) + 1)
          mostPerHost = Math.max(mostPerHost, perHost.get(target.host)!)
          setTimeout(() => {
            inFlight--
            perHost.set(target.host, perHost.get(target.host)! - 1)
            resolve(false)
          }, 3_000)
        }),
    )
    const discoverer = await createDiscoverer({ network: network.host('10.0.0.1'), probe })
    for (let i = 0; i < 3_000; i++)
      network.inject(add(`f${i}`, 4000, { interval: 100 }), `10.0.${Math.floor(i / 75)}.1`)
    await vi.advanceTimersByTimeAsync(60_000)
    expect(most).toBe(32)
    expect(mostPerHost).toBe(4)
    expect(discoverer.stats.probesDeferred).toBeGreaterThan(0)
    await discoverer.close()
  })

  it('keeps a service whose probe could not be made (out of descriptors) and tries again', async () => {
    let fail = true
    const probe = vi.fn(async () => {
      if (fail) throw Object.assign(new Error('connect EMFILE'), { code: 'EMFILE' })
      return true
    })
    const discoverer = await createDiscoverer({ network: network.host('10.0.0.1'), probe })
    network.inject(add('s', 4000, { interval: 1_000 }))
    await vi.advanceTimersByTimeAsync(10_000)
    expect(discoverer.snapshot()).toHaveLength(1)
    expect(discoverer.stats.inconclusiveProbes).toBeGreaterThan(0)
    fail = false
    await vi.advanceTimersByTimeAsync(5_000)
    expect(discoverer.snapshot()).toHaveLength(1)
    await discoverer.close()
  })
})

describe('answers are rate-limited', () => {
  const publish100 = async () => {
    const publisher = await createPublisher({ network: network.host('10.0.0.2'), holdOff: 60_000 })
    for (let i = 0; i < 100; i++)
      publisher.publish({ service: `svc-${i}-${'x'.repeat(36)}`, port: 4000, info: { type: 'x' } })
    return publisher
  }

  it('sends a spoofed source at most 2× the bytes of a 500-query flood', async () => {
    const publisher = await publish100()
    const query = JSON.stringify({ command: 'query', reply: 'unicast' })
    let bytesIn = 0
    for (let i = 0; i < 500; i++) {
      network.inject(query, '10.0.0.77', 40_000 + i)
      bytesIn += Buffer.byteLength(query)
      await vi.advanceTimersByTimeAsync(10)
    }
    await vi.advanceTimersByTimeAsync(1_000)
    const out = network.bytesTo('10.0.0.77', { broadcast: false })
    expect(out).toBeLessThanOrEqual(2 * bytesIn)
    // The rest went by broadcast, each service at most once a second.
    const broadcasts = network.commands('add').filter((sent) => sent.to === '*')
    expect(broadcasts.length).toBeLessThanOrEqual(100 * 6)
    await close(publisher)
  })

  it('answers one asker once a second, however often it asks', async () => {
    const publisher = await createPublisher({ network: network.host('10.0.0.2') })
    publisher.publish({ service: 's', port: 4000, info: {} })
    const query = JSON.stringify({ command: 'query', reply: 'unicast' })
    for (let i = 0; i < 10; i++) {
      network.inject(query, '10.0.0.5', 40_000)
      await vi.advanceTimersByTimeAsync(100)
    }
    expect(network.commands('add').filter((sent) => sent.to !== '*')).toHaveLength(1)
    network.inject(query, '10.0.0.5', 40_000)
    await vi.advanceTimersByTimeAsync(200)
    expect(network.commands('add').filter((sent) => sent.to !== '*')).toHaveLength(2)
    await close(publisher)
  })

  it('answers an unmarked query (an original peer on a throwaway port) by broadcast', async () => {
    const publisher = await createPublisher({ network: network.host('10.0.0.2'), holdOff: 60_000 })
    publisher.publish({ service: 's', port: 4000, info: {} })
    network.inject(JSON.stringify({ command: 'query' }), '10.0.0.9', 61_234)
    await vi.advanceTimersByTimeAsync(120)
    expect(network.commands('add').map((sent) => sent.to)).toEqual(['*'])
    await close(publisher)
  })
})
