import { fileURLToPath } from 'node:url'
import {
  canUseNamespaces,
  createRoutedLans,
  type Host,
  hasNatsServer,
  startNatsCluster,
} from '@autobus/testkit'
import { describe, expect, it } from 'vitest'
import { agent, onHosts, until } from './lans.js'

// Two LANs, each with a bridge, joined only through a cluster of three
// nats-server processes on a third LAN behind the same router: broadcast
// (and so discovery) stays on each LAN. Needs root, iproute2, nats-server
// (CI has all three) and a build (it runs dist/).
const steady = fileURLToPath(new URL('./fixtures/nats-steady.mjs', import.meta.url))
const { run, bridge, use } = onHosts()

describe.runIf(canUseNamespaces && hasNatsServer)(
  'bridges over a NATS cluster across LANs (network namespaces; needs root and nats-server)',
  () => {
    it('crosses within 1 s, withdraws a killed bridge within 5 s, survives a NATS server killed under it', {
      timeout: 90_000,
    }, async () => {
      await using routed = createRoutedLans([1, 1, 3])
      const [[a], [b], members] = routed.lans as [[Host], [Host], Host[]]
      await using nats = await startNatsCluster({ hosts: members })
      const [n1, n2, n3] = nats.urls as [string, string, string]
      // A is on n1 first, B on n3: killing n1 fails A over to n2.
      const [bridgeA, bridgeB] = await Promise.all([
        bridge(a, ['--nats', `${n1},${n2}`]),
        bridge(b, ['--nats', n3, '--nats', n2]),
      ])
      await until(bridgeB, (line) => line.link === 'up')
      const onB = run(b, agent, ['client'])
      // The client's bus is up once it has sent its first query.
      await new Promise((resolve) => setTimeout(resolve, 300))
      const service = run(a, agent, ['serve'])
      const ready = await until(service, (line) => line.ready)
      const seen = await until(onB, (line) => line.seen === 'one')
      expect(seen.at - ready.at).toBeLessThanOrEqual(1_000)
      expect(seen.info).toMatchObject({ type: 'test.topo', bridged: true, hops: 1 })

      await use(b, 1)

      run(b, agent, ['drop'])
      const dropping = await until(service, (line) => line.dropping)
      const gone = await until(onB, (line) => line.gone === 'two')
      expect(gone.at - dropping.at).toBeLessThanOrEqual(1_000)

      // The NATS server bridge A is connected to dies under a steady
      // stream of calls from B on one connection with a watch open.
      const caller = run(b, steady, ['5000'])
      await until(caller, (line) => line.steady === true)
      await new Promise((resolve) => setTimeout(resolve, 1_000))
      nats.servers[0]!.process.kill('SIGKILL')
      const { steady: calls, values } = await until(caller, (line) => line.steady?.sent)
      // Calls resumed within 3 s, none was delivered twice, and the watch
      // kept its value: never null, every change once.
      expect(calls.longest).toBeLessThanOrEqual(3_000)
      expect(calls.unique).toBe(calls.received)
      expect(calls.received).toBeGreaterThanOrEqual(calls.ok)
      expect(values).not.toContain(null)
      for (let i = 1; i < values.length; i++) expect(values[i]).toBe(values[i - 1] + 1)
      expect(values.at(-1) - values[0]).toBe(calls.received)

      const killedAt = Date.now()
      bridgeA.kill('SIGKILL')
      const lost = await until(onB, (line) => line.gone === 'one')
      expect(lost.at - killedAt).toBeLessThanOrEqual(5_000)
    })
  },
)
