import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { connectService } from '@autobus/rpc'
import { now, percentile, type Server } from './harness.js'
import { PAYLOAD } from './payload.js'

const MIB = 1024 * 1024
const senderScript = fileURLToPath(new URL('./hostile-sender.js', import.meta.url))

/** Starts the hostile sender; resolves once it is bound, with a way to wait for its report. */
async function startSender(server: Server, frames: number) {
  const child = spawn(
    process.execPath,
    [senderScript, String(server.ready.port), server.ready.service!, String(frames)],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  )
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  await lines.next() // bound
  return {
    start: () => child.stdin!.write('go\n'),
    /** Ends the flood (when it was started without a count) and reads the report. */
    report: async () => {
      if (frames === 0) child.stdin!.end()
      const { value } = await lines.next()
      return JSON.parse(value as string) as { sent: number; tooDeep: number; bytes: number }
    },
  }
}

/**
 * Deeply nested frames against a service: the service's CPU time per MiB of
 * them (target ≤ 50 ms), and the latency of a legitimate client's calls on
 * another connection while they keep coming (target < 50 ms).
 */
export async function hostileNesting(server: Server, frames: number, floodMs: number) {
  const control = await connectService({
    host: '127.0.0.1',
    port: server.ready.port,
    service: server.ready.service!,
  })

  // CPU per hostile MiB: the service's own CPU time, read before and after.
  const counted = await startSender(server, frames)
  const before = (await control.call('cpu')) as number
  counted.start()
  const sent = await counted.report()
  const cpuMs = ((await control.call('cpu')) as number) - before
  const mib = sent.bytes / MIB

  // A legitimate client's calls while the frames keep coming.
  const flood = await startSender(server, 0)
  flood.start()
  const latencies: number[] = []
  await control.call('loopDelay')
  const end = now() + floodMs
  while (now() < end) {
    const t = now()
    await control.call('echo', [PAYLOAD])
    latencies.push(now() - t)
  }
  const serviceStall = (await control.call('loopDelay')) as number
  const flooded = await flood.report()
  await control.close()
  return {
    hostile_mib: Number(mib.toFixed(1)),
    cpu_ms_per_hostile_mib: cpuMs / mib,
    frames_refused_too_deep: sent.tooDeep + flooded.tooDeep,
    flood_mib: Number((flooded.bytes / MIB).toFixed(1)),
    legit_calls: latencies.length,
    legit_call_p50_ms: percentile(latencies, 50),
    legit_call_p99_ms: percentile(latencies, 99),
    legit_call_max_ms: Math.max(...latencies),
    // The service's own longest stall in the flood: the rest of a slow
    // call's time was spent waiting for a core.
    service_loop_stall_max_ms: serviceStall,
  }
}
