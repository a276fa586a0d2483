import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createBridge } from '@autobus/bridge'
import { type Bus, createBus } from '@autobus/bus'
import type { Connection } from '@autobus/rpc'
import { median, now, type ReadyProcess, startReady } from './harness.js'

const nodeScript = fileURLToPath(new URL('./bridge-node.js', import.meta.url))

/**
 * Starts one end of the bridge benchmark (see bridge-node.ts) and reads its
 * ready line: its port, and the service's id from the end that has it.
 */
function startNode(args: string[]): Promise<ReadyProcess<{ port: number; service?: string }>> {
  return startReady(nodeScript, args, { name: `bridge-node ${args[0]}` })
}

let nextPort = 0
/** A discovery port of its own for each bus of the bridge benchmarks, over NATS too. */
export const discoveryPort = () => 38_000 + ((process.pid * 3) % 5_000) + nextPort++

/**
 * A bus on loopback alone with the buses on its discovery port. A far
 * bridge keeps one session per stand-in to its origin, all from one
 * address: a thousand services in one program need the per-address
 * connection cap raised.
 */
export function bus(port: number, maxConnectionsPerAddress = 4_096): Promise<Bus> {
  return createBus({
    discoveryPort: port,
    interfaces: ['lo'],
    holdOff: 0,
    host: '127.0.0.1',
    maxConnectionsPerAddress,
  })
}

export async function sequentialP50(connection: Connection, count: number, warmUp: number) {
  for (let i = 0; i < warmUp; i++) await connection.call('echo', [i])
  const times: number[] = []
  for (let i = 0; i < count; i++) {
    const start = now()
    await connection.call('echo', [i])
    times.push(now() - start)
  }
  return median(times)
}

export async function pipelined(connection: Connection, count: number, inFlight: number) {
  const start = now()
  let sent = 0
  const worker = async () => {
    while (sent < count) {
      sent++
      await connection.call('echo', [sent])
    }
  }
  await Promise.all(Array.from({ length: inFlight }, worker))
  return count / ((now() - start) / 1000)
}

/** Reads the whole of the service's `flood` stream; bytes per second (MB/s). */
async function streamRate(connection: Connection) {
  const start = now()
  const stream = await connection.openStream('flood')
  let received = 0
  stream.on('data', (chunk: Buffer) => {
    received += chunk.length
  })
  await new Promise((resolve, reject) => {
    stream.on('end', resolve)
    stream.on('error', reject)
  })
  stream.end()
  return received / 1e6 / ((now() - start) / 1000)
}

export function waitUntil(check: () => boolean, timeout: number): Promise<boolean> {
  return new Promise((resolve) => {
    const started = Date.now()
    const tick = () => {
      if (check()) resolve(true)
      else if (Date.now() - started > timeout) resolve(false)
      else setTimeout(tick, 5)
    }
    tick()
  })
}

/**
 * One pair of bridges on loopback, all in this process: what one hop adds
 * to a call's p50, pipelined calls through it against direct ones, and
 * 1,000 services behind it (time until the far bus has them all, heap per
 * bridged service).
 */
export async function bridgeBench(options: { smoke: boolean; rounds: number }) {
  const results: Record<string, number> = {}
  Object.assign(results, await hopBench(options))
  Object.assign(results, await manyServices(options))
  return results
}

/**
 * One hop: the service with its bridge in one process, the far bridge in
 * another, the client in this one; the same client calls the service
 * directly and through the stand-in, and reads a 32 MiB stream both ways.
 * In the same rounds it calls the service through the floor: byte-for-byte
 * relays in the bridges' places (one in a process of its own, one in the
 * service's process), so the figures can be read against what the extra
 * sockets and wake-ups cost on the machine at the time.
 */
async function hopBench(options: { smoke: boolean; rounds: number }) {
  const socket = join(tmpdir(), `autobus-bench-bridge-${process.pid}.sock`)
  const farPort = discoveryPort()
  const home = await startNode(['home', String(discoveryPort()), socket])
  const far = await startNode(['far', String(farPort), socket])
  const floor = await startNode(['floor', '0', socket])
  const single = await startNode(['relay', String(home.ready.port), socket])
  const client = await bus(farPort)
  try {
    const stand = await client.waitForService({ type: 'bench.bridge' }, { timeout: 10_000 })
    const direct = await client.connect({
      host: '127.0.0.1',
      port: home.ready.port,
      service: home.ready.service!,
    })
    const bridged = await client.connect(stand)
    // The same service through two byte-for-byte relays where the bridges
    // are: what the extra sockets and wake-ups cost with no Autobus code.
    const relayed = await client.connect({
      host: '127.0.0.1',
      port: floor.ready.port,
      service: home.ready.service!,
    })
    // And through one relay process alone: the least a bridge in a
    // process of its own can add (two more socket writes, one more process).
    const once = await client.connect({
      host: '127.0.0.1',
      port: single.ready.port,
      service: home.ready.service!,
    })
    const seq = options.smoke ? 200 : 3_000
    const pipe = options.smoke ? 1_000 : 20_000
    const directP50: number[] = []
    const bridgedP50: number[] = []
    const directPipe: number[] = []
    const bridgedPipe: number[] = []
    const directStream: number[] = []
    const bridgedStream: number[] = []
    const floorP50: number[] = []
    const floorPipe: number[] = []
    const relayP50: number[] = []
    const warmUp = options.smoke ? 20 : 300
    for (let round = 0; round < options.rounds; round++) {
      directP50.push(await sequentialP50(direct, seq, warmUp))
      bridgedP50.push(await sequentialP50(bridged, seq, warmUp))
      floorP50.push(await sequentialP50(relayed, seq, warmUp))
      relayP50.push(await sequentialP50(once, seq, warmUp))
      directPipe.push(await pipelined(direct, pipe, 64))
      bridgedPipe.push(await pipelined(bridged, pipe, 64))
      floorPipe.push(await pipelined(relayed, pipe, 64))
      directStream.push(await streamRate(direct))
      bridgedStream.push(await streamRate(bridged))
    }
    return {
      direct_p50_us: Math.round(median(directP50) * 1000),
      bridged_p50_us: Math.round(median(bridgedP50) * 1000),
      hop_p50_added_us: Math.round((median(bridgedP50) - median(directP50)) * 1000),
      direct_pipelined_calls_per_s: Math.round(median(directPipe)),
      bridged_pipelined_calls_per_s: Math.round(median(bridgedPipe)),
      pipelined_vs_direct: Number((median(bridgedPipe) / median(directPipe)).toFixed(3)),
      floor_p50_us: Math.round(median(floorP50) * 1000),
      floor_hop_p50_added_us: Math.round((median(floorP50) - median(directP50)) * 1000),
      floor_pipelined_calls_per_s: Math.round(median(floorPipe)),
      floor_pipelined_vs_direct: Number((median(floorPipe) / median(directPipe)).toFixed(3)),
      relay_hop_p50_added_us: Math.round((median(relayP50) - median(directP50)) * 1000),
      direct_stream_mb_per_s: Number(median(directStream).toFixed(1)),
      bridged_stream_mb_per_s: Number(median(bridgedStream).toFixed(1)),
    }
  } finally {
    await client.close()
    for (const node of [single, floor, far, home]) await node.stop()
    rmSync(socket, { force: true })
    rmSync(`${socket}.floor`, { force: true })
  }
}

/**
 * Many services behind one pair of bridges, all in this process: the time
 * until the far bus has a stand-in for each, and the heap each costs (both
 * bridges, the stand-in and both ends of its session).
 */
async function manyServices(options: { smoke: boolean }) {
  const socket = join(tmpdir(), `autobus-bench-many-${process.pid}.sock`)
  const home = await bus(discoveryPort())
  const far = await bus(discoveryPort())
  const left = createBridge({ bus: home, listen: [`unix:${socket}`] })
  await left.ready
  const right = createBridge({ bus: far, connect: [`unix:${socket}`] })
  try {
    await waitUntil(() => right.links().length === 1, 10_000)
    const count = options.smoke ? 100 : 1_000
    const gc = (globalThis as { gc?: () => void }).gc
    gc?.()
    const before = process.memoryUsage().heapUsed
    const started = now()
    for (let i = 0; i < count; i++) {
      const many = home.createService({ info: { type: 'bench.many', n: i } })
      many.addFunction('echo', {}, (x) => x)
      home.publish(many)
    }
    const all = await waitUntil(
      () => far.services({ type: 'bench.many' }).length >= count,
      options.smoke ? 20_000 : 60_000,
    )
    const visible = all ? Math.round(now() - started) : -1
    gc?.()
    return {
      services: count,
      services_all_visible_ms: visible,
      bytes_per_bridged_service: Math.round((process.memoryUsage().heapUsed - before) / count),
    }
  } finally {
    await right.close()
    await left.close()
    await far.close()
    await home.close()
    rmSync(socket, { force: true })
  }
}
