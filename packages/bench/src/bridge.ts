import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createBridge } from '@autobus/bridge'
import { type Bus, createBus } from '@autobus/bus'
import type { Connection } from '@autobus/rpc'
import { median, now } from './harness.js'

let nextPort = 0
const discoveryPort = () => 38_000 + ((process.pid * 3) % 5_000) + nextPort++

// The far bridge keeps one session per stand-in to its origin, all from
// one address: a thousand services in one program need the per-address
// connection cap raised.
function bus(port: number): Promise<Bus> {
  return createBus({
    discoveryPort: port,
    interfaces: ['lo'],
    holdOff: 0,
    host: '127.0.0.1',
    maxConnectionsPerAddress: 4_096,
  })
}

async function sequentialP50(connection: Connection, count: number, warmUp: number) {
  for (let i = 0; i < warmUp; i++) await connection.call('echo', [i])
  const times: number[] = []
  for (let i = 0; i < count; i++) {
    const start = now()
    await connection.call('echo', [i])
    times.push(now() - start)
  }
  return median(times)
}

async function pipelined(connection: Connection, count: number, inFlight: number) {
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

function waitUntil(check: () => boolean, timeout: number): Promise<boolean> {
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
  const socket = join(tmpdir(), `autobus-bench-bridge-${process.pid}.sock`)
  const home = await bus(discoveryPort())
  const far = await bus(discoveryPort())
  const left = createBridge({ bus: home, listen: [`unix:${socket}`] })
  await left.ready
  const right = createBridge({ bus: far, connect: [`unix:${socket}`] })
  try {
    const service = home.createService({ info: { type: 'bench.bridge' } })
    service.addFunction('echo', {}, (x) => x)
    home.publish(service)
    const stand = await far.waitForService({ type: 'bench.bridge' }, { timeout: 10_000 })
    const direct = await far.connect({ host: '127.0.0.1', port: home.port, service: service.id })
    const bridged = await far.connect(stand)
    const seq = options.smoke ? 200 : 3_000
    const pipe = options.smoke ? 1_000 : 20_000
    const directP50: number[] = []
    const bridgedP50: number[] = []
    const directPipe: number[] = []
    const bridgedPipe: number[] = []
    for (let round = 0; round < options.rounds; round++) {
      directP50.push(await sequentialP50(direct, seq, options.smoke ? 20 : 300))
      bridgedP50.push(await sequentialP50(bridged, seq, options.smoke ? 20 : 300))
      directPipe.push(await pipelined(direct, pipe, 64))
      bridgedPipe.push(await pipelined(bridged, pipe, 64))
    }
    const results: Record<string, number> = {
      direct_p50_us: Math.round(median(directP50) * 1000),
      bridged_p50_us: Math.round(median(bridgedP50) * 1000),
      hop_p50_added_us: Math.round((median(bridgedP50) - median(directP50)) * 1000),
      direct_pipelined_calls_per_s: Math.round(median(directPipe)),
      bridged_pipelined_calls_per_s: Math.round(median(bridgedPipe)),
      pipelined_vs_direct: Number((median(bridgedPipe) / median(directPipe)).toFixed(3)),
    }
    await direct.close()
    await bridged.close()

    // Many services: the far bus's table counts the stand-ins as they are published.
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
    results.services = count
    results.services_all_visible_ms = all ? Math.round(now() - started) : -1
    gc?.()
    results.bytes_per_bridged_service = Math.round(
      (process.memoryUsage().heapUsed - before) / count,
    )
    return results
  } finally {
    await right.close()
    await left.close()
    await far.close()
    await home.close()
    rmSync(socket, { force: true })
  }
}
