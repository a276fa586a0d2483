import { canUseNamespaces, createRoutedLans, type Host } from '@autobus/testkit'
import { describe, expect, it } from 'vitest'
import { agent, onHosts, until } from './lans.js'

// LANs joined by a router that forwards unicast only: broadcast (and so
// discovery) stays on each LAN, and only bridges join the buses. Needs
// root and iproute2 (CI runs as root), and a build (it runs dist/).
const { run, bridge, use } = onHosts()

describe.runIf(canUseNamespaces)('bridges across LANs (network namespaces; needs root)', () => {
  it('a chain of three LANs: everything crosses two hops, goodbye and kill -9 withdraw', async () => {
    await using routed = createRoutedLans([1, 1, 1])
    const [[a], [b], [c]] = routed.lans as [[Host], [Host], [Host]]
    // All at once: whichever starts first, the others link up when they can.
    const [, middle, far] = await Promise.all([
      bridge(a, ['--listen', `tcp://${a.address}:7010`]),
      bridge(b, ['--connect', `tcp://${a.address}:7010`, '--listen', `tcp://${b.address}:7011`]),
      bridge(c, ['--connect', `tcp://${b.address}:7011`]),
    ])
    await until(far, (line) => line.link === 'up')
    const onB = run(b, agent, ['client'])
    const onC = run(c, agent, ['client'])
    // The clients' buses are up once they have sent their first query.
    await new Promise((resolve) => setTimeout(resolve, 300))
    const service = run(a, agent, ['serve'])
    const ready = await until(service, (line) => line.ready)
    const seenB = await until(onB, (line) => line.seen === 'one')
    const seenC = await until(onC, (line) => line.seen === 'one')
    expect(seenB.at - ready.at).toBeLessThanOrEqual(1_000)
    expect(seenC.at - ready.at).toBeLessThanOrEqual(1_500)
    expect(seenB.info).toMatchObject({ type: 'test.topo', bridged: true, hops: 1 })
    expect(seenC.info).toMatchObject({ type: 'test.topo', bridged: true, hops: 2 })

    const user = await use(c, 2)

    run(c, agent, ['drop'])
    const dropping = await until(service, (line) => line.dropping)
    const goneC = await until(onC, (line) => line.gone === 'two')
    expect(goneC.at - dropping.at).toBeLessThanOrEqual(1_000)

    const killedAt = Date.now()
    middle.kill('SIGKILL')
    const lost = await until(onC, (line) => line.gone === 'one')
    expect(lost.at - killedAt).toBeLessThanOrEqual(3_000)
    const { values } = await until(user, (line) => line.lost)
    expect(values.at(-1)).toBe(null)
  })

  it('a cycle of three: one stand-in per bus on the shortest path, events and calls once, failover', async () => {
    await using routed = createRoutedLans([1, 1, 1])
    const [[a], [b], [c]] = routed.lans as [[Host], [Host], [Host]]
    // Bus A has two bridges (one per link), so that killing one leaves the
    // service and the other way round the cycle.
    await bridge(a, ['--listen', `tcp://${a.address}:7010`])
    const direct = await bridge(a, ['--listen', `tcp://${a.address}:7012`])
    await bridge(b, ['--connect', `tcp://${a.address}:7010`, '--listen', `tcp://${b.address}:7011`])
    await bridge(c, [
      '--connect',
      `tcp://${b.address}:7011`,
      '--connect',
      `tcp://${a.address}:7012`,
    ])
    const onC = run(c, agent, ['client'])
    const service = run(a, agent, ['serve'])
    await until(service, (line) => line.ready)
    const seen = await until(onC, (line) => line.seen === 'one')
    expect(seen.info.hops).toBe(1)

    // Fired once at the origin, heard once on C, whose bus could hear it by two paths.
    const { used } = await until(run(c, agent, ['use']), (line) => line.used)
    expect(used.ticks).toEqual([1])

    const caller = run(c, agent, ['calls', '3000'])
    await new Promise((resolve) => setTimeout(resolve, 800))
    const killedAt = Date.now()
    direct.kill('SIGKILL')
    const back = await until(onC, (line) => line.seen === 'one')
    expect(back.at - killedAt).toBeLessThanOrEqual(3_000)
    expect(back.info.hops).toBe(2)
    const { calls } = await until(caller, (line) => line.calls)
    expect(calls.ok).toBeGreaterThan(0)
    // No call was delivered twice, whichever way it went.
    expect(calls.unique).toBe(calls.received)
    expect(calls.received).toBeGreaterThanOrEqual(calls.ok)
    expect(calls.received).toBeLessThanOrEqual(calls.sent)
  })
})
