import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { generateKey, KeyRing } from '@autobus/bus'
import { type DiscoveryNetwork, sealedNetwork } from '@autobus/discovery'
import { type Connection, connectService } from '@autobus/rpc'
import { median, now, percentile } from './harness.js'
import { PAYLOAD, type Ready } from './payload.js'

/**
 * What the bus key costs (docs/security.md): sealing and checking a
 * discovery datagram, the bytes a seal adds, setting up a keyed session,
 * and calls over a keyed session against the same calls without a key,
 * interleaved in one run.
 */
export interface SecurityFigures {
  /** Median over batches of the wall time per datagram sealed and checked. */
  seal_sign_verify_us: number
  /** CPU time per datagram sealed and checked, over every batch. */
  seal_sign_verify_cpu_us: number
  seal_bytes_added: number
  tls_setup_p50_ms: number
  plain_setup_p50_ms: number
  tls_p50_ms: number
  plain_p50_ms: number
  tls_p50_added_us: number
  tls_pipelined_calls_per_s: number
  plain_pipelined_calls_per_s: number
  tls_pipelined_vs_plain: number
}

const serverScript = fileURLToPath(new URL('./security-server.js', import.meta.url))

async function startServer(key?: string): Promise<{ ready: Ready; child: ChildProcess }> {
  const child = spawn(process.execPath, [serverScript, ...(key ? [key] : [])], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string]
  return { ready: JSON.parse(line) as Ready, child }
}

/**
 * Sealing then checking one announcement-sized datagram, through the real
 * network layer (seal, parse, tag check, window, replay memory), the setup
 * left out. Timed in batches with `process.hrtime.bigint()`; the figure is
 * the median batch, so the odd batch during which a loaded machine runs
 * something else does not set it. CPU time over every batch is given too.
 */
async function sealCost(batches: number, perBatch: number) {
  const count = batches * perBatch
  const payload = Buffer.from(
    JSON.stringify({ command: 'add', port: 40_000, service: crypto.randomUUID(), info: PAYLOAD }),
  )
  let added = 0
  // A network that hands every datagram sent straight back to its receiver.
  const loop: DiscoveryNetwork = {
    async open(onDatagram) {
      const deliver = (bytes: Buffer) => {
        added = bytes.byteLength - payload.byteLength
        onDatagram(bytes, { address: '127.0.0.1', port: 1 })
      }
      return {
        privatePort: 1,
        sendFailures: 0,
        faults: { send: {}, rescan: {} },
        broadcast: deliver,
        unicast: deliver,
        close: async () => {},
      }
    },
  }
  const sealed = sealedNetwork(loop, {
    keys: new KeyRing([generateKey()]),
    maxRemembered: count + perBatch + 1,
  })
  let received = 0
  const link = await sealed.open(() => received++)
  // Warm-up, so the JIT has compiled the path before it is timed.
  for (let i = 0; i < perBatch; i++) link.broadcast(payload)
  const perDatagram: number[] = []
  const cpuStart = process.cpuUsage()
  for (let batch = 0; batch < batches; batch++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < perBatch; i++) link.broadcast(payload)
    perDatagram.push(Number(process.hrtime.bigint() - start) / 1_000 / perBatch)
  }
  const cpu = process.cpuUsage(cpuStart)
  await link.close()
  if (received !== count + perBatch)
    throw new Error(`${count + perBatch - received} sealed datagrams were refused`)
  return { us: median(perDatagram), cpuUs: (cpu.user + cpu.system) / count, added }
}

async function setupTimes(ready: Ready, keys: KeyRing | undefined, count: number) {
  const times: number[] = []
  for (let i = 0; i < count; i++) {
    const start = now()
    const connection = await connectService(
      { host: '127.0.0.1', port: ready.port, service: ready.service! },
      keys ? { keys } : {},
    )
    times.push(now() - start)
    await connection.close()
  }
  return median(times)
}

async function sequentialP50(connection: Connection, count: number) {
  const times: number[] = []
  for (let i = 0; i < count; i++) {
    const start = now()
    await connection.call('echo', [PAYLOAD])
    times.push(now() - start)
  }
  return percentile(times, 50)
}

async function pipelined(connection: Connection, count: number, inFlight = 64) {
  let sent = 0
  const start = now()
  const worker = async () => {
    while (sent < count) {
      sent++
      await connection.call('echo', [PAYLOAD])
    }
  }
  await Promise.all(Array.from({ length: inFlight }, worker))
  return count / ((now() - start) / 1_000)
}

/** The security scenario; `rounds` interleaves keyed and plain (A B A B …). */
export async function securityBench(options: {
  rounds: number
  smoke: boolean
}): Promise<SecurityFigures> {
  const seal = options.smoke ? await sealCost(10, 100) : await sealCost(250, 200)
  const key = generateKey()
  const keys = new KeyRing([key])
  const plainServer = await startServer()
  const tlsServer = await startServer(key.text)
  try {
    const setups = { tls: [] as number[], plain: [] as number[] }
    const p50 = { tls: [] as number[], plain: [] as number[] }
    const rate = { tls: [] as number[], plain: [] as number[] }
    const seqCount = options.smoke ? 200 : 5_000
    const pipeCount = options.smoke ? 500 : 40_000
    const setupCount = options.smoke ? 20 : 200
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? (['tls', 'plain'] as const) : (['plain', 'tls'] as const)
      for (const mode of order) {
        const server = mode === 'tls' ? tlsServer : plainServer
        const modeKeys = mode === 'tls' ? keys : undefined
        setups[mode].push(await setupTimes(server.ready, modeKeys, setupCount))
        const connection = await connectService(
          { host: '127.0.0.1', port: server.ready.port, service: server.ready.service! },
          modeKeys ? { keys: modeKeys } : {},
        )
        // Warm up the JIT and the socket before measuring.
        await sequentialP50(connection, options.smoke ? 20 : 500)
        p50[mode].push(await sequentialP50(connection, seqCount))
        rate[mode].push(await pipelined(connection, pipeCount))
        await connection.close()
      }
    }
    const tlsP50 = median(p50.tls)
    const plainP50 = median(p50.plain)
    const tlsRate = median(rate.tls)
    const plainRate = median(rate.plain)
    return {
      seal_sign_verify_us: Number(seal.us.toFixed(2)),
      seal_sign_verify_cpu_us: Number(seal.cpuUs.toFixed(2)),
      seal_bytes_added: seal.added,
      tls_setup_p50_ms: Number(median(setups.tls).toFixed(3)),
      plain_setup_p50_ms: Number(median(setups.plain).toFixed(3)),
      tls_p50_ms: Number(tlsP50.toFixed(4)),
      plain_p50_ms: Number(plainP50.toFixed(4)),
      tls_p50_added_us: Number(((tlsP50 - plainP50) * 1_000).toFixed(1)),
      tls_pipelined_calls_per_s: Math.round(tlsRate),
      plain_pipelined_calls_per_s: Math.round(plainRate),
      tls_pipelined_vs_plain: Number((tlsRate / plainRate).toFixed(3)),
    }
  } finally {
    for (const server of [plainServer, tlsServer]) server.child.kill('SIGKILL')
  }
}
