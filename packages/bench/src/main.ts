#!/usr/bin/env node
/**
 * `pnpm bench`: Autobus side by side with Moleculer, ZeroMQ, NATS and a raw
 * newline-JSON-over-TCP floor. Servers run in their own processes; rounds are
 * interleaved (A B A B …) and medians and ratios come from one run.
 */
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import Table from 'cli-table3'
import { Command } from 'commander'
import { bridgeBench } from './bridge.js'
import { renderChart } from './chart.js'
import { discoveredMemory, discoveryBench } from './discovery.js'
import { median, type Server, startNats, startServer } from './harness.js'
import { hostileNesting } from './hostile.js'
import { metricsOverhead } from './metrics.js'
import { natsBridgeBench } from './nats-bridge.js'
import type { System } from './payload.js'
import { renderReport } from './report.js'
import {
  autobusEvents,
  channelBench,
  idleConnectionMemory,
  moleculerEvents,
  rawEvents,
  type sequential,
  streamBench,
  watchBench,
} from './scenarios.js'
import { securityBench } from './security.js'

const program = new Command('bench')
  .option('--json', 'one JSON object per result line, then a summary line')
  .option('--smoke', 'a few hundred operations, no peers (keeps the harness working)')
  .option('--rounds <n>', 'interleaved rounds', (v) => Number(v), 5)
  .option('--save <file>', 'also write every result and the summary to this JSON file')
  .option('--chart <file>', 'also draw the ratio chart (SVG) to this file')
  .option('--report <file>', 'also write the Markdown report (docs/benchmarks.md) to this file')
  .option(
    '--only <scenarios>',
    'run only these scenarios, comma-separated: rpc, events, autobus, hostile, metrics, discovery, bridge, nats-bridge, security',
    (value) => value.split(','),
  )
  .parse()
const options = program.opts<{
  json?: boolean
  smoke?: boolean
  rounds: number
  save?: string
  chart?: string
  report?: string
  only?: string[]
}>()
const smoke = options.smoke ?? false
const rounds = smoke ? 1 : options.rounds

type Result = { name: string } & Record<string, unknown>
const results: Result[] = []
const emit = (result: Result) => {
  results.push(result)
  if (options.json) process.stdout.write(`${JSON.stringify(result)}\n`)
  else
    process.stderr.write(
      `  ${result.name} ${JSON.stringify(Object.fromEntries(Object.entries(result).filter(([k]) => k !== 'name')))}\n`,
    )
}
const log = (text: string) => {
  if (!options.json) process.stderr.write(`${text}\n`)
}

const servers: Server[] = []
let moleculerRuns = 0
/** A fresh block of 12 ports for each Moleculer server and its static peers. */
const moleculerPort = () => 43_000 + (process.pid % 500) * 24 + 12 * moleculerRuns++
async function server(system: string, args: string[] = []) {
  const started = await startServer(system, args)
  servers.push(started)
  return started
}

const clientScript = fileURLToPath(new URL('./client.js', import.meta.url))

/** Runs one system's RPC client in a process of its own. */
async function runClient(
  system: System,
  srv: Server,
  seqCount: number,
  pipeCount: number,
  warmUp: number,
) {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      clientScript,
      system,
      JSON.stringify(srv.ready),
      String(seqCount),
      String(pipeCount),
      String(warmUp),
    ],
    { timeout: 300_000 },
  )
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as {
    calls_per_s: number
    p50_ms: number
    p99_ms: number
    pipelined_calls_per_s: number
  }
}

async function rpc() {
  const systems: System[] = smoke
    ? ['autobus', 'raw']
    : ['autobus', 'moleculer', 'zeromq', 'nats', 'raw']
  const started = new Map<System, Server>()
  let natsServer: { port: number; stop(): Promise<void> } | undefined
  for (const system of systems) {
    if (system === 'nats') {
      const nats = await startNats()
      if (typeof nats === 'string') {
        log(`skipping NATS: ${nats}`)
        continue
      }
      natsServer = nats
      started.set(system, await server('nats', [String(nats.port)]))
    } else if (system === 'moleculer')
      started.set(system, await server('moleculer', [String(moleculerPort())]))
    else started.set(system, await server(system))
  }
  const seqCount = smoke ? 200 : 5_000
  const pipeCount = smoke ? 500 : 40_000
  const samples = new Map<
    System,
    { seq: Array<Awaited<ReturnType<typeof sequential>>>; pipe: number[] }
  >()
  for (let round = 0; round < rounds; round++) {
    log(`rpc round ${round + 1}/${rounds}`)
    // Each round starts with the next system, so no system always goes first.
    const order = [...started]
    const rotated = [...order.slice(round % order.length), ...order.slice(0, round % order.length)]
    for (const [system, srv] of rotated) {
      const result = await runClient(system, srv, seqCount, pipeCount, smoke ? 20 : 500)
      const entry = samples.get(system) ?? { seq: [], pipe: [] }
      entry.seq.push(result)
      entry.pipe.push(result.pipelined_calls_per_s)
      samples.set(system, entry)
    }
  }
  for (const [system, entry] of samples) {
    emit({
      name: 'rpc',
      system,
      sequential_calls_per_s: median(entry.seq.map((s) => s.calls_per_s)),
      p50_ms: median(entry.seq.map((s) => s.p50_ms)),
      p99_ms: median(entry.seq.map((s) => s.p99_ms)),
      pipelined_calls_per_s: median(entry.pipe),
    })
  }
  for (const srv of started.values()) await srv.stop()
  await natsServer?.stop()
}

async function events() {
  const autobus = await server('autobus')
  const raw = await server('raw')
  const count = smoke ? 500 : 50_000
  for (const subscribers of [1, 10]) {
    // Moleculer's static discovery: the server lists exactly its subscribers.
    const moleculer = smoke
      ? undefined
      : await server('moleculer', [String(moleculerPort()), String(subscribers)])
    const perSystem = new Map<string, number[]>()
    for (let round = 0; round < rounds; round++) {
      const add = (system: string, rate: number) =>
        perSystem.set(system, [...(perSystem.get(system) ?? []), rate])
      add('autobus', (await autobusEvents(autobus, subscribers, count)).events_per_s)
      add('raw', (await rawEvents(raw, subscribers, count)).events_per_s)
      if (moleculer && round < 2)
        add(
          'moleculer',
          (await moleculerEvents(moleculer, subscribers, Math.min(count, 20_000))).events_per_s,
        )
    }
    for (const [system, rates] of perSystem)
      emit({ name: 'events', system, subscribers, events_per_s: median(rates) })
  }
}

async function autobusOnly() {
  const autobus = await server('autobus')
  const rawSink = await server('raw-sink')
  const watch = await watchBench(autobus, smoke ? 500 : 50_000, smoke ? 50 : 500)
  emit({ name: 'watch', system: 'autobus', ...watch })
  const channel = await channelBench(autobus, smoke ? 500 : 50_000)
  emit({ name: 'channel', system: 'autobus', ...channel })
  const streams: Array<{ autobus_mb_per_s: number; raw_mb_per_s: number }> = []
  for (let round = 0; round < rounds; round++)
    streams.push(await streamBench(autobus, rawSink, smoke ? 4 : 256))
  emit({
    name: 'stream',
    system: 'autobus',
    autobus_mb_per_s: median(streams.map((s) => s.autobus_mb_per_s)),
    raw_mb_per_s: median(streams.map((s) => s.raw_mb_per_s)),
  })
  const memoryServer = await server('autobus')
  const idle = await idleConnectionMemory(memoryServer, smoke ? 100 : 1_000)
  emit({ name: 'memory.idle_connection', system: 'autobus', ...idle })
  const discovered = await discoveredMemory(smoke ? 100 : 1_000)
  emit({ name: 'memory.discovered_services', system: 'autobus', ...discovered })
}

/** What hostile input costs the service (docs/hardening.md). */
async function hostile() {
  const autobus = await server('autobus')
  emit({
    name: 'hostile.nesting',
    system: 'autobus',
    ...(await hostileNesting(autobus, smoke ? 2 : 32, smoke ? 300 : 5_000)),
  })
}

async function bridges() {
  emit({ name: 'bridge', system: 'autobus', ...(await bridgeBench({ smoke, rounds })) })
}

/** Bridges that meet over NATS (docs/bridges.md, "Over NATS"). */
async function natsBridges() {
  emit({ name: 'nats-bridge', system: 'autobus', ...(await natsBridgeBench({ smoke, rounds })) })
}

/** What always-on metrics cost pipelined calls. */
async function metrics() {
  emit({
    name: 'metrics.pipelined',
    system: 'autobus',
    ...(await metricsOverhead(smoke ? 1 : Math.max(rounds, 5), smoke ? 500 : 40_000)),
  })
}

async function discovery() {
  emit({
    name: 'discovery',
    system: 'autobus',
    ...(await discoveryBench({ samples: smoke ? 3 : 40, smoke })),
  })
}

/** What the bus key costs (docs/security.md). */
async function security() {
  emit({ name: 'security', system: 'autobus', ...(await securityBench({ rounds, smoke })) })
}

function pick(
  name: string,
  system: string,
  key: string,
  extra: Record<string, unknown> = {},
): number | undefined {
  const found = results.find(
    (r) =>
      r.name === name && r.system === system && Object.entries(extra).every(([k, v]) => r[k] === v),
  )
  return found ? (found[key] as number) : undefined
}

const rounded = (value?: number) => (value === undefined ? null : Number(value.toFixed(2)))

function summary() {
  const ratio = (a?: number, b?: number) =>
    a !== undefined && b !== undefined && b > 0 ? Number((a / b).toFixed(3)) : null
  const peers = ['moleculer', 'zeromq', 'nats']
    .map((system) => pick('rpc', system, 'p50_ms'))
    .filter((v): v is number => v !== undefined)
  const bestPeerP50 = peers.length > 0 ? Math.min(...peers) : undefined
  return {
    summary: true,
    machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
    smoke,
    rounds,
    rpc_pipelined_vs_moleculer: ratio(
      pick('rpc', 'autobus', 'pipelined_calls_per_s'),
      pick('rpc', 'moleculer', 'pipelined_calls_per_s'),
    ),
    rpc_pipelined_vs_raw: ratio(
      pick('rpc', 'autobus', 'pipelined_calls_per_s'),
      pick('rpc', 'raw', 'pipelined_calls_per_s'),
    ),
    rpc_p50_vs_best_peer: ratio(pick('rpc', 'autobus', 'p50_ms'), bestPeerP50),
    events_vs_raw: ratio(
      pick('events', 'autobus', 'events_per_s', { subscribers: 1 }),
      pick('events', 'raw', 'events_per_s', { subscribers: 1 }),
    ),
    events_10_vs_raw: ratio(
      pick('events', 'autobus', 'events_per_s', { subscribers: 10 }),
      pick('events', 'raw', 'events_per_s', { subscribers: 10 }),
    ),
    events_vs_moleculer: ratio(
      pick('events', 'autobus', 'events_per_s', { subscribers: 1 }),
      pick('events', 'moleculer', 'events_per_s', { subscribers: 1 }),
    ),
    stream_vs_raw: ratio(
      pick('stream', 'autobus', 'autobus_mb_per_s'),
      pick('stream', 'autobus', 'raw_mb_per_s'),
    ),
    metrics_pipelined_vs_off: ratio(
      pick('metrics.pipelined', 'autobus', 'metrics_on_calls_per_s'),
      pick('metrics.pipelined', 'autobus', 'metrics_off_calls_per_s'),
    ),
    hostile_cpu_ms_per_mib: rounded(pick('hostile.nesting', 'autobus', 'cpu_ms_per_hostile_mib')),
    hostile_flood_call_p99_ms: rounded(pick('hostile.nesting', 'autobus', 'legit_call_p99_ms')),
    hostile_flood_call_max_ms: rounded(pick('hostile.nesting', 'autobus', 'legit_call_max_ms')),
    bridge_hop_p50_added_us: pick('bridge', 'autobus', 'hop_p50_added_us') ?? null,
    bridge_pipelined_vs_direct: pick('bridge', 'autobus', 'pipelined_vs_direct') ?? null,
    bridge_floor_hop_p50_added_us: pick('bridge', 'autobus', 'floor_hop_p50_added_us') ?? null,
    bridge_floor_pipelined_vs_direct:
      pick('bridge', 'autobus', 'floor_pipelined_vs_direct') ?? null,
    bridge_relay_hop_p50_added_us: pick('bridge', 'autobus', 'relay_hop_p50_added_us') ?? null,
    nats_hop_p50_added_us: pick('nats-bridge', 'autobus', 'nats_hop_p50_added_us') ?? null,
    seal_sign_verify_us: rounded(pick('security', 'autobus', 'seal_sign_verify_us')),
    seal_bytes_added: pick('security', 'autobus', 'seal_bytes_added') ?? null,
    tls_setup_p50_ms: rounded(pick('security', 'autobus', 'tls_setup_p50_ms')),
    tls_pipelined_vs_plain: pick('security', 'autobus', 'tls_pipelined_vs_plain') ?? null,
    tls_p50_added_us: pick('security', 'autobus', 'tls_p50_added_us') ?? null,
    tls_bare_p50_added_us: pick('security', 'autobus', 'bare_tls_p50_added_us') ?? null,
    idle_connection_kib: (() => {
      const bytes = pick('memory.idle_connection', 'autobus', 'bytes_per_connection')
      return bytes === undefined ? null : Number((bytes / 1024).toFixed(1))
    })(),
  }
}

function table(summaryLine: ReturnType<typeof summary>) {
  // No colours: the tables are read in logs and pipes as often as on a terminal.
  const style = { head: [], border: [] }
  const out = new Table({ head: ['benchmark', 'system', 'result'], style })
  const format = (value: unknown) =>
    typeof value === 'number'
      ? Math.abs(value) >= 100
        ? Math.round(value).toLocaleString('en')
        : value.toFixed(2)
      : String(value)
  for (const result of results) {
    const { name, system, ...rest } = result
    out.push([
      name,
      String(system),
      Object.entries(rest)
        .map(([k, v]) => `${k}: ${format(v)}`)
        .join('\n'),
    ])
  }
  process.stdout.write(`${out.toString()}\n`)
  const ratios = new Table({ head: ['ratio', 'value'], style })
  for (const [key, value] of Object.entries(summaryLine))
    if (key !== 'summary')
      ratios.push([key, value === null ? 'not measured (a system was skipped)' : String(value)])
  process.stdout.write(`${ratios.toString()}\n`)
}

try {
  const scenarios: Array<[string, () => Promise<void>]> = [
    ['rpc', rpc],
    ['events', events],
    ['autobus', autobusOnly],
    ['hostile', hostile],
    ['metrics', metrics],
    ['discovery', discovery],
    // Before the bridges, whose thousands of services leave a large heap
    // behind that would slow the in-process seal measurement.
    ['security', security],
    // Bridges over NATS first: the direct bridge scenario removes its Unix
    // socket files with a synchronous stat, after which Node 20's module
    // loader stops resolving pnpm's symlinks early and the NATS client,
    // loaded late, cannot find its own dependencies.
    ['nats-bridge', natsBridges],
    ['bridge', bridges],
  ]
  for (const [name, run] of scenarios) if (!options.only || options.only.includes(name)) await run()
  const line = summary()
  if (options.json) process.stdout.write(`${JSON.stringify(line)}\n`)
  else table(line)
  if (options.save)
    writeFileSync(options.save, `${JSON.stringify({ results, summary: line }, null, 2)}\n`)
  if (options.chart) writeFileSync(options.chart, renderChart(line))
  if (options.report)
    writeFileSync(options.report, renderReport(results, line, `pnpm bench --rounds ${rounds}`))
} finally {
  await Promise.all(servers.map((srv) => srv.stop()))
}
process.exit(0)
