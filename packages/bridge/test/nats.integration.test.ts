import {
  collectingLogger,
  hasNatsServer,
  type NatsCluster,
  startNatsCluster,
} from '@autobus/testkit'
import { describe, expect, it } from 'vitest'
import { type Bridge, createBridge } from '../src/index.js'
import { calculator, expectCarriedThenWithdrawn, inProcess, nextChange } from './buses.js'

// Buses in this process, and a cluster of nats-server processes on
// loopback between their bridges.
const { bus, bridge, closeAfter, socketPath } = inProcess(11)

async function cluster(options: Parameters<typeof startNatsCluster>[0] = {}): Promise<NatsCluster> {
  return closeAfter(await startNatsCluster(options))
}

describe.runIf(hasNatsServer)('bridges over NATS (nats-server on loopback)', () => {
  it('carries every capability through a cluster, in segments under max_payload', async () => {
    // A small max_payload, so that the stream's chunks and the routes are cut in segments.
    const nats = await cluster({ count: 3, maxPayload: 4096 })
    const a = await bus()
    const b = await bus()
    const left = bridge({ bus: a, nats: { servers: [nats.urls[0]!] } })
    const right = bridge({ bus: b, nats: { servers: [nats.urls[2]!] } })
    const up = nextChange(right, true)
    await Promise.all([left.ready, right.ready])
    expect((await up).peer).toBe(left.id)
    const publication = a.publish(calculator(a))
    await publication.announced
    const seenOnA = Date.now()
    const found = await b.waitForService({ type: 'test.calc' }, { timeout: 5_000 })
    expect(Date.now() - seenOnA).toBeLessThan(1_000)
    expect(found.info).toMatchObject({ bridged: true, hops: 1, via: [right.id, left.id] })
    await expectCarriedThenWithdrawn(b, found, publication)
  })

  it('a bridge that closes withdraws its services; bridges on one bus refuse to loop', async () => {
    const nats = await cluster({ count: 1 })
    const a = await bus()
    const b = await bus()
    const left = bridge({ bus: a, nats: { servers: nats.urls } })
    const twin = bridge({ bus: a, nats: { servers: nats.urls } })
    const right = bridge({ bus: b, nats: { servers: nats.urls } })
    await Promise.all([left.ready, twin.ready, right.ready])
    a.publish(calculator(a))
    await b.waitForService({ type: 'test.calc' }, { timeout: 5_000 })
    // Two bridges of bus A both reach B, never each other.
    await expect.poll(() => right.links().length).toBe(2)
    expect(left.links().map((link) => link.peer)).toEqual([right.id])
    expect(left.stats.refusedLinks + twin.stats.refusedLinks).toBeGreaterThan(0)
    // One stand-in on B, whichever bridge of A it goes through.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(b.services({ type: 'test.calc' })).toHaveLength(1)
    const gone = new Promise<void>((resolve) =>
      b.on('disappeared', (service) => service.info.type === 'test.calc' && resolve()),
    )
    await left.close()
    await twin.close()
    await gone
  })

  it('fails over to another cluster member: calls go on, nothing twice, the watch keeps its value', async () => {
    const nats = await cluster({ count: 3 })
    const a = await bus()
    const b = await bus()
    const log = collectingLogger()
    const [n1, n2, n3] = nats.urls as [string, string, string]
    bridge({ bus: a, nats: { servers: [n1, n2] }, logger: log.logger })
    bridge({ bus: b, nats: { servers: [n3] } })
    const service = calculator(a)
    const seen: number[] = []
    service.addFunction('seen', {}, (seq: number) => {
      seen.push(seq)
      return seq
    })
    a.publish(service)
    const found = await b.waitForService({ type: 'test.calc' }, { timeout: 5_000 })
    const connection = await b.connect(found)
    const values: unknown[] = []
    await connection.watch('total', (value) => values.push(value))
    let seq = 0
    let answered = 0
    let longest = 0
    let last = Date.now()
    const calls = (async () => {
      const deadline = Date.now() + 2_500
      while (Date.now() < deadline) {
        expect(await connection.call('seen', [seq++], { timeout: 3_000 })).toBe(seq - 1)
        await connection.call('add', [1, 0])
        answered++
        longest = Math.max(longest, Date.now() - last)
        last = Date.now()
      }
    })()
    await new Promise((resolve) => setTimeout(resolve, 500))
    nats.servers[0]!.process.kill('SIGKILL')
    await calls
    expect(log.lines.some((line) => line.includes('failing over'))).toBe(true)
    expect(log.lines.some((line) => line.includes(`reconnected to ${n2.slice(7)}`))).toBe(true)
    expect(longest).toBeLessThan(3_000)
    expect(seen).toEqual([...Array(seq).keys()])
    expect(values).not.toContain(null)
    expect(values.at(-1)).toBe(answered)
  })

  it('mixes NATS and direct links: one link per pair, every service once, an event once', async () => {
    const nats = await cluster({ count: 1 })
    const [a, b, c] = [await bus(), await bus(), await bus()]
    const path = socketPath()
    const servers = nats.urls
    const left = bridge({ bus: a, listen: [`unix:${path}`], nats: { servers } })
    const middle = bridge({ bus: b, connect: [`unix:${path}`], nats: { servers } })
    const right = bridge({ bus: c, nats: { servers } })
    await Promise.all([left.ready, middle.ready, right.ready])
    await expect.poll(() => right.links().length).toBe(2)
    await expect.poll(() => middle.links().length).toBe(2)
    expect(new Set(middle.links().map((link) => link.peer))).toEqual(new Set([left.id, right.id]))
    const service = calculator(a)
    a.publish(service)
    for (const far of [b, c]) await far.waitForService({ type: 'test.calc' }, { timeout: 5_000 })
    // Both far buses could hear of it by two ways; each has it once, one hop away.
    await new Promise((resolve) => setTimeout(resolve, 300))
    for (const far of [b, c]) {
      const found = far.services({ type: 'test.calc' })
      expect(found).toHaveLength(1)
      expect(found[0]!.info.hops).toBe(1)
    }
    const heard: unknown[][] = [[], []]
    const connections = await Promise.all(
      [b, c].map((far) => far.connect(far.services({ type: 'test.calc' })[0]!)),
    )
    await Promise.all(
      connections.map((connection, i) => connection.listen('added', (sum) => heard[i]!.push(sum))),
    )
    expect(await connections[1]!.call('add', [2, 3])).toBe(5)
    await expect.poll(() => heard).toEqual([[5], [5]])
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(heard).toEqual([[5], [5]])
  })

  it('does not pass routes learnt over NATS on to NATS peers, but on to direct links', async () => {
    const nats = await cluster({ count: 1 })
    const [a, b, c, d] = [await bus(), await bus(), await bus(), await bus()]
    const path = socketPath()
    const servers = nats.urls
    const [first, second] = [
      bridge({ bus: a, nats: { servers } }),
      bridge({ bus: b, nats: { servers } }),
    ]
    const third = bridge({ bus: c, listen: [`unix:${path}`], nats: { servers } })
    const outside = bridge({ bus: d, connect: [`unix:${path}`] })
    await Promise.all([first.ready, second.ready, third.ready, outside.ready])
    await expect.poll(() => third.links().length).toBe(3)
    a.publish(calculator(a))
    d.publish(calculator(d))
    for (const [far, hops] of [
      [d, 2],
      [a, 2],
      [b, 1],
      [c, 1],
    ] as const) {
      await expect
        .poll(() => far.services({ type: 'test.calc' }).map((found) => found.info.hops ?? 0), {
          timeout: 5_000,
        })
        .toEqual(expect.arrayContaining([hops]))
      expect(far.services({ type: 'test.calc' })).toHaveLength(2)
    }
    // Each bridge on NATS tells the others only the routes it does not
    // learn over NATS itself: the first its calculator, the third the one
    // beyond it, the second nothing. The third tells its direct peer the
    // first's, learnt over NATS.
    const learnt = (from: Bridge, peer: Bridge) =>
      from.links().find((link) => link.peer === peer.id)?.routes
    await expect
      .poll(() => [
        [learnt(first, second), learnt(first, third)],
        [learnt(second, first), learnt(second, third)],
        [learnt(third, first), learnt(third, second)],
        learnt(outside, third),
      ])
      .toEqual([[0, 1], [1, 1], [1, 0], 1])
  })

  it('waits for a NATS server that does not answer yet, and closes at once meanwhile', async () => {
    const a = await bus()
    const lonely = createBridge({ bus: a, nats: { servers: ['nats://127.0.0.1:1'] } })
    await lonely.ready
    const started = Date.now()
    await lonely.close()
    expect(Date.now() - started).toBeLessThan(1_000)
    expect(lonely.links()).toEqual([])
  })

  it('links once the NATS server comes up after the bridges', async () => {
    const port = 20_000 + ((process.pid * 17) % 12_000) + 500
    const servers = [`nats://127.0.0.1:${port}`]
    const [a, b] = [await bus(), await bus()]
    const left = bridge({ bus: a, nats: { servers } })
    const right = bridge({ bus: b, nats: { servers } })
    await Promise.all([left.ready, right.ready])
    const up = nextChange(right, true)
    await cluster({ count: 1, port })
    expect((await up).peer).toBe(left.id)
  })
})
