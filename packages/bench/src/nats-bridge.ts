import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createBridge } from '@autobus/bridge'
import { bus as bridgeBus, discoveryPort, pipelined, sequentialP50, waitUntil } from './bridge.js'
import { median, now, type ReadyProcess, startNats, startReady } from './harness.js'

const nodeScript = fileURLToPath(new URL('./nats-bridge-node.js', import.meta.url))

type Node = ReadyProcess<{ port: number; service?: string; id: string }>

/** Starts one end (see nats-bridge-node.ts) and reads its ready line. */
function startNode(role: string, port: number, options: object): Promise<Node> {
  return startReady(nodeScript, [role, String(port), JSON.stringify(options)], {
    name: `nats-bridge-node ${role}`,
  })
}

async function stopNodes(nodes: Node[]): Promise<void> {
  for (const node of nodes) await node.stop()
}

const bus = (port: number) => bridgeBus(port, 16_384)

/**
 * Bridges that meet over NATS (docs/bridges.md, "Over NATS"), against a
 * local nats-server: what a hop through NATS adds to a call's p50 over a
 * direct bridge link, and ten sites of 100 services each, in processes of
 * their own, seen by a new site (the time until it has all 1,000, and the
 * heap each bridged service costs it). Undefined if nats-server is missing.
 */
export async function natsBridgeBench(options: { smoke: boolean; rounds: number }) {
  const nats = await startNats()
  if (typeof nats === 'string') return { skipped: nats }
  const url = `nats://127.0.0.1:${nats.port}`
  try {
    const many = await sites(url, options)
    return { ...(await hopBench(url, options)), ...many }
  } finally {
    await nats.stop()
  }
}

/**
 * The same echo service behind two pairs of bridges, one pair linked
 * directly (a Unix socket), the other over NATS; the client in this
 * process calls through each stand-in in turn.
 */
async function hopBench(url: string, options: { smoke: boolean; rounds: number }) {
  const socket = join(tmpdir(), `autobus-bench-nats-${process.pid}.sock`)
  const farPort = discoveryPort()
  const nodes: Node[] = []
  const client = await bus(farPort)
  try {
    const home = await startNode('home', discoveryPort(), {
      listen: [`unix:${socket}`],
      nats: { servers: [url], prefix: `bench${process.pid}` },
    })
    nodes.push(home)
    // Two far bridges on the client's bus: one linked directly, one over NATS.
    nodes.push(await startNode('far', farPort, { connect: [`unix:${socket}`] }))
    const standIns = () => client.services({ type: 'bench.nats-bridge' })
    if (!(await waitUntil(() => standIns().length >= 1, 10_000)))
      throw new Error('no stand-in through the direct link')
    const direct = await client.connect(standIns()[0]!)
    // The far bridge over NATS is on a bus of its own, where a second
    // client bus of this process reaches its stand-in.
    const natsFarPort = discoveryPort()
    nodes.push(
      await startNode('far', natsFarPort, {
        nats: { servers: [url], prefix: `bench${process.pid}` },
      }),
    )
    const natsClient = await bus(natsFarPort)
    try {
      const found = await natsClient.waitForService(
        { type: 'bench.nats-bridge' },
        { timeout: 10_000 },
      )
      const overNats = await natsClient.connect(found)
      const seq = options.smoke ? 200 : 3_000
      const pipe = options.smoke ? 1_000 : 20_000
      const directP50: number[] = []
      const natsP50: number[] = []
      const directPipe: number[] = []
      const natsPipe: number[] = []
      for (let round = 0; round < options.rounds; round++) {
        directP50.push(await sequentialP50(direct, seq, options.smoke ? 20 : 300))
        natsP50.push(await sequentialP50(overNats, seq, options.smoke ? 20 : 300))
        directPipe.push(await pipelined(direct, pipe, 64))
        natsPipe.push(await pipelined(overNats, pipe, 64))
      }
      return {
        direct_bridge_p50_us: Math.round(median(directP50) * 1000),
        nats_bridge_p50_us: Math.round(median(natsP50) * 1000),
        nats_hop_p50_added_us: Math.round((median(natsP50) - median(directP50)) * 1000),
        direct_bridge_pipelined_calls_per_s: Math.round(median(directPipe)),
        nats_bridge_pipelined_calls_per_s: Math.round(median(natsPipe)),
        nats_pipelined_vs_direct_bridge: Number((median(natsPipe) / median(directPipe)).toFixed(3)),
      }
    } finally {
      await natsClient.close()
    }
  } finally {
    await client.close()
    await stopNodes(nodes)
    rmSync(socket, { force: true })
  }
}

/**
 * Eleven bridges making 10,000 stand-ins at once on a shared 2-core machine
 * can each go seconds without being scheduled: the sites' links are given
 * a longer heartbeat than the default 3 s, so that what is measured is the
 * time to see everything, not links dropped by a starved process.
 */
const SITE_TIMINGS = { heartbeatInterval: 2_000, heartbeatTimeout: 20_000 }

/**
 * Ten sites of 100 services, each a bus with its bridge in a process of its
 * own, all on one NATS server; once each has the others' services, a new
 * site (a bus and a bridge in this process) joins: the time until its bus
 * has all of them, and its heap per bridged service.
 */
async function sites(url: string, options: { smoke: boolean }) {
  const siteCount = options.smoke ? 3 : 10
  const perSite = options.smoke ? 20 : 100
  const total = siteCount * perSite
  const prefix = `sites${process.pid}`
  const nodes: Node[] = []
  try {
    for (let i = 0; i < siteCount; i++)
      nodes.push(
        await startNode(`site:${perSite}`, discoveryPort(), {
          nats: { servers: [url], prefix },
          ...SITE_TIMINGS,
          expect: total - perSite,
        }),
      )
    const settledAt = now()
    await Promise.all(
      nodes.map(async (node) => {
        for await (const line of node.lines) if (JSON.parse(line).settled) return
      }),
    )
    const sitesSettledMs = Math.round(now() - settledAt)
    const home = await bus(discoveryPort())
    const gc = (globalThis as { gc?: () => void }).gc
    gc?.()
    const before = process.memoryUsage().heapUsed
    const started = now()
    const bridge = createBridge({ bus: home, nats: { servers: [url], prefix }, ...SITE_TIMINGS })
    bridge.ready.catch((error) => process.stderr.write(`ready failed: ${error.stack}\n`))
    try {
      const all = await waitUntil(
        () => home.services({ type: 'bench.site' }).length >= total,
        options.smoke ? 30_000 : 120_000,
      )
      const visible = all ? Math.round(now() - started) : -1
      if (!all)
        process.stderr.write(
          `new site sees ${home.services({ type: 'bench.site' }).length} of ${total}; links ${JSON.stringify(bridge.links())} routes ${bridge.routes().length}\n`,
        )
      gc?.()
      return {
        sites: siteCount,
        services_per_site: perSite,
        sites_settled_ms: sitesSettledMs,
        new_site_all_visible_ms: visible,
        nats_bytes_per_bridged_service: Math.round(
          (process.memoryUsage().heapUsed - before) / total,
        ),
      }
    } finally {
      await bridge.close()
      await home.close()
    }
  } finally {
    await stopNodes(nodes)
  }
}
