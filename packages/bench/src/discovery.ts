import dgram from 'node:dgram'
import { createDiscoverer, createPublisher, type Discoverer, udpNetwork } from '@autobus/discovery'
import { median, now, percentile, startServer } from './harness.js'

const network = (port: number) => udpNetwork({ port, interfaces: ['lo'] })

function waitFor(
  discoverer: Discoverer,
  predicate: () => boolean,
  timeout = 30_000,
): Promise<boolean> {
  return new Promise((resolve) => {
    const check = () => {
      if (!predicate()) return
      cleanup()
      resolve(true)
    }
    const timer = setTimeout(() => {
      cleanup()
      resolve(false)
    }, timeout)
    const cleanup = () => {
      clearTimeout(timer)
      discoverer.off('appeared', check)
      discoverer.off('disappeared', check)
    }
    discoverer.on('appeared', check)
    discoverer.on('disappeared', check)
    check()
  })
}

/**
 * The discovery targets, measured over real UDP on loopback with a private
 * discovery port: late joiner, new service, goodbye, kill -9, 200 answers,
 * steady-state traffic.
 */
export async function discoveryBench(options: { samples: number; smoke: boolean }) {
  const port = 30_000 + (process.pid % 10_000)
  const results: Record<string, number> = {}

  // A late joiner sees every existing service.
  const existing = await startServer('publisher', ['5', String(port)])
  const joins: number[] = []
  for (let i = 0; i < options.samples; i++) {
    const start = now()
    const discoverer = await createDiscoverer({ network: network(port), probe: async () => true })
    await waitFor(discoverer, () => discoverer.snapshot({ type: 'bench' }).length >= 5, 5_000)
    joins.push(now() - start)
    await discoverer.close()
  }
  await existing.stop()
  results.late_joiner_p50_ms = median(joins)
  results.late_joiner_p99_ms = percentile(joins, 99)

  // A new service becomes visible; a graceful stop is forgotten.
  // No queries: a new service must become visible through its own announcement.
  const watcher = await createDiscoverer({
    network: network(port),
    probe: async () => true,
    querySchedule: [],
  })
  const publisher = await createPublisher({ network: network(port) })
  const visible: number[] = []
  const forgotten: number[] = []
  for (let i = 0; i < Math.max(3, Math.floor(options.samples / 4)); i++) {
    const id = `new-${i}`
    let start = now()
    const published = publisher.publish({ service: id, port: 1, info: {} })
    await waitFor(watcher, () => watcher.snapshot().some((s) => s.service === id))
    visible.push(now() - start)
    start = now()
    const gone = published.unpublish()
    await waitFor(watcher, () => !watcher.snapshot().some((s) => s.service === id))
    forgotten.push(now() - start)
    await gone
  }
  await publisher.close()
  results.new_service_visible_p50_ms = median(visible)
  results.goodbye_forgotten_p50_ms = median(forgotten)

  // kill -9: expiry after 2.5 intervals plus the probe (interval 1 s here).
  // The announced ports have no listener, so the real probe fails at once.
  await watcher.close()
  const prober = await createDiscoverer({ network: network(port) })
  const killed = await startServer('publisher', ['1', String(port), '1000'])
  await waitFor(prober, () => prober.snapshot({ type: 'bench' }).length === 1)
  let start = now()
  await killed.stop()
  await waitFor(prober, () => prober.snapshot({ type: 'bench' }).length === 0)
  results.killed_removed_ms_interval_1s = now() - start
  await prober.close()

  // 200 services on one bus answer one query.
  const many = await startServer('publisher', ['200', String(port)])
  const asker = await createDiscoverer({
    network: network(port),
    probe: async () => true,
    querySchedule: [0],
  })
  await new Promise((resolve) => setTimeout(resolve, 700))
  results.answers_first_round_pct = (asker.snapshot({ type: 'bench' }).length / 200) * 100
  await new Promise((resolve) => setTimeout(resolve, 1_300))
  results.answers_within_2s_pct = (asker.snapshot({ type: 'bench' }).length / 200) * 100
  await asker.close()
  await many.stop()

  // Steady state: datagrams per service per interval (interval 500 ms here).
  if (!options.smoke) {
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true })
    await new Promise<void>((resolve) => socket.bind(port, resolve))
    let adds = 0
    socket.on('message', (bytes) => {
      if (bytes.includes('"add"')) adds++
    })
    const steady = await startServer('publisher', ['10', String(port), '500'])
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    adds = 0
    start = now()
    await new Promise((resolve) => setTimeout(resolve, 5_000))
    const intervals = (now() - start) / 500
    results.datagrams_per_service_per_interval = adds / 10 / intervals
    await steady.stop()
    socket.close()
  }
  return results
}

/** RSS per 1,000 discovered services, measured in a process of its own. */
export async function discoveredMemory(count: number) {
  const port = 40_000 + (process.pid % 10_000)
  const publisher = await startServer('publisher', [String(count), String(port)])
  const measured = await startServer('discoverer', [String(count), String(port)])
  await measured.stop()
  await publisher.stop()
  const { seen, bytes_per_1000_services } = measured.ready as unknown as {
    seen: number
    bytes_per_1000_services: number
  }
  return { bytes_per_1000_services, seen }
}
