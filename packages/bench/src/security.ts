import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import tls from 'node:tls'
import { fileURLToPath } from 'node:url'
import { type BusKey, generateKey, KeyRing } from '@autobus/bus'
import { type DiscoveryNetwork, sealedNetwork } from '@autobus/discovery'
import { type Connection, connectService } from '@autobus/rpc'
import { median, now, percentile, type ReadyProcess, startReady } from './harness.js'
import { PAYLOAD, type Ready } from './payload.js'
import { recordPair } from './security-records.js'

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
  /**
   * The floor under `tls_p50_added_us`: the same one-at-a-time exchange
   * (one request-sized write, its echo back) over bare `node:tls` with the
   * same PSK profile against bare `node:net`, no Autobus code on either
   * end, interleaved with the Autobus rounds.
   */
  bare_tls_p50_ms: number
  bare_plain_p50_ms: number
  bare_tls_p50_added_us: number
  /** `tls_p50_added_us` minus `bare_tls_p50_added_us`: what Autobus adds to Node's TLS. */
  tls_p50_added_over_bare_us: number
  /**
   * The same bare exchange over `node:net` with each message sealed and
   * opened as one AES-GCM record in JavaScript (security-records.ts),
   * against bare `node:net`: the least a record layer outside `node:tls`
   * would add.
   */
  js_records_p50_added_us: number
  js_records_call_cpu_us: number
  /** The calling process's CPU time per one-at-a-time call (user + system), each mode. */
  tls_call_cpu_us: number
  plain_call_cpu_us: number
  bare_tls_call_cpu_us: number
  bare_plain_call_cpu_us: number
  /**
   * The serving process's CPU time per call, each mode, read from
   * `/proc/<pid>/stat` (kernel ticks, so only meaningful over many calls);
   * null where there is no `/proc`.
   */
  tls_server_cpu_us: number | null
  plain_server_cpu_us: number | null
  bare_tls_server_cpu_us: number | null
  bare_plain_server_cpu_us: number | null
  tls_pipelined_calls_per_s: number
  plain_pipelined_calls_per_s: number
  tls_pipelined_vs_plain: number
}

const serverScript = fileURLToPath(new URL('./security-server.js', import.meta.url))

function startServer(key?: string, kind?: 'bare' | 'records'): Promise<ReadyProcess<Ready>> {
  return startReady(serverScript, [...(kind ? [kind] : []), ...(key ? [key] : [])], {
    name: 'security server',
  })
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
  ;(globalThis as { gc?: () => void }).gc?.()
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

/** A process's CPU time (user + system) in µs from `/proc`, NaN where there is none. */
function processCpuUs(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / TICKS_PER_SECOND
  } catch {
    return Number.NaN
  }
}
/** Linux's USER_HZ, the unit of the times in `/proc/<pid>/stat`. */
const TICKS_PER_SECOND = 100

/** `count` exchanges one at a time: each one's time (ms), and this process's CPU time (µs) over all. */
async function sequential(exchange: () => Promise<unknown>, count: number) {
  const times: number[] = []
  const cpuStart = process.cpuUsage()
  for (let i = 0; i < count; i++) {
    const start = now()
    await exchange()
    times.push(now() - start)
  }
  const cpu = process.cpuUsage(cpuStart)
  return { times, cpuUs: cpu.user + cpu.system }
}

/** The bytes of one `echo` request frame, as Autobus writes it. */
const REQUEST_BYTES = Buffer.byteLength(
  `${JSON.stringify({ _type: 1, _id: 1000, _command: 'call', name: 'echo', args: [PAYLOAD] })}\n`,
)

/**
 * A bare socket to a bare echo server: `exchange()` writes one
 * request-sized buffer and resolves when as many bytes have come back.
 * With a key it is `node:tls` with the keyed sessions' profile; with a key
 * and `sealed`, plain `node:net` carrying records sealed in JavaScript.
 */
async function bareSocket(port: number, key: BusKey | undefined, sealed = false) {
  const socket =
    key && !sealed
      ? tls.connect({
          host: '127.0.0.1',
          port,
          minVersion: 'TLSv1.3',
          maxVersion: 'TLSv1.3',
          ciphers: 'TLS_AES_128_GCM_SHA256',
          checkServerIdentity: () => undefined,
          pskCallback: () => ({ psk: key.sessionKey, identity: key.id }),
        })
      : net.connect({ host: '127.0.0.1', port })
  socket.setNoDelay(true)
  await once(socket, key && !sealed ? 'secureConnect' : 'connect')
  const request = Buffer.alloc(REQUEST_BYTES, 0x61)
  const records = sealed && key ? recordPair(key.sessionKey, 'client') : undefined
  let waiting = 0
  let answered: () => void = () => {}
  socket.on('data', (chunk: Buffer) => {
    if (records) for (const plain of records.open(chunk)) waiting -= plain.byteLength
    else waiting -= chunk.byteLength
    if (waiting <= 0) answered()
  })
  return {
    exchange: () =>
      new Promise<void>((resolve) => {
        waiting = request.byteLength
        answered = resolve
        socket.write(records ? records.seal(request) : request)
      }),
    close: () => socket.destroy(),
  }
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
  const barePlainServer = await startServer(undefined, 'bare')
  const bareTlsServer = await startServer(key.text, 'bare')
  const recordsServer = await startServer(key.text, 'records')
  try {
    const setups = { tls: [] as number[], plain: [] as number[] }
    const rate = { tls: [] as number[], plain: [] as number[] }
    const modes = ['tls', 'plain', 'bareTls', 'barePlain', 'records'] as const
    const times = { tls: [], plain: [], bareTls: [], barePlain: [], records: [] } as Record<
      (typeof modes)[number],
      number[]
    >
    const cpuUs = { tls: 0, plain: 0, bareTls: 0, barePlain: 0, records: 0 }
    const serverCpuUs = { tls: 0, plain: 0, bareTls: 0, barePlain: 0, records: 0 }
    const serverOf = {
      tls: tlsServer,
      plain: plainServer,
      bareTls: bareTlsServer,
      barePlain: barePlainServer,
      records: recordsServer,
    }
    const blocks = options.smoke ? 4 : 50
    const perBlock = options.smoke ? 50 : 100
    const pipeCount = options.smoke ? 500 : 40_000
    const setupCount = options.smoke ? 20 : 200
    const modeKeys = { tls: keys, plain: undefined }
    const modeServer = { tls: tlsServer, plain: plainServer }
    const serviceOf = (mode: 'tls' | 'plain') => ({
      host: '127.0.0.1',
      port: modeServer[mode].ready.port,
      service: modeServer[mode].ready.service!,
    })
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? (['tls', 'plain'] as const) : (['plain', 'tls'] as const)
      for (const mode of order) {
        setups[mode].push(await setupTimes(modeServer[mode].ready, modeKeys[mode], setupCount))
        const connection = await connectService(
          serviceOf(mode),
          modeKeys[mode] ? { keys: modeKeys[mode] } : {},
        )
        // Warm up the JIT and the socket before measuring.
        await pipelined(connection, options.smoke ? 50 : 2_000)
        rate[mode].push(await pipelined(connection, pipeCount))
        await connection.close()
      }
      // One call at a time: the modes in blocks that take turns, so
      // each sees the same moments of a machine whose load moves by the
      // second; the p50 is over every call of every block.
      const tlsConnection = await connectService(serviceOf('tls'), { keys })
      const plainConnection = await connectService(serviceOf('plain'))
      const bareTls = await bareSocket(bareTlsServer.ready.port, key)
      const barePlain = await bareSocket(barePlainServer.ready.port, undefined)
      const records = await bareSocket(recordsServer.ready.port, key, true)
      const exchanges = {
        records: records.exchange,
        tls: () => tlsConnection.call('echo', [PAYLOAD]),
        plain: () => plainConnection.call('echo', [PAYLOAD]),
        bareTls: bareTls.exchange,
        barePlain: barePlain.exchange,
      }
      // Warm up the JIT and the sockets before measuring.
      for (const mode of modes) await sequential(exchanges[mode], options.smoke ? 20 : 500)
      for (let block = 0; block < blocks; block++)
        for (let turn = 0; turn < modes.length; turn++) {
          const mode = modes[(block + turn) % modes.length]!
          const serverStart = processCpuUs(serverOf[mode].child.pid)
          const figures = await sequential(exchanges[mode], perBlock)
          serverCpuUs[mode] += processCpuUs(serverOf[mode].child.pid) - serverStart
          times[mode].push(...figures.times)
          cpuUs[mode] += figures.cpuUs
        }
      bareTls.close()
      barePlain.close()
      records.close()
      await tlsConnection.close()
      await plainConnection.close()
    }
    const p50 = (mode: (typeof modes)[number]) => percentile(times[mode], 50)
    const serverCpuPerCall = (mode: 'tls' | 'plain' | 'bareTls' | 'barePlain') =>
      Number.isNaN(serverCpuUs[mode])
        ? null
        : Number((serverCpuUs[mode] / times[mode].length).toFixed(1))
    const cpuPerCall = (mode: (typeof modes)[number]) =>
      Number((cpuUs[mode] / times[mode].length).toFixed(1))
    const tlsP50 = p50('tls')
    const plainP50 = p50('plain')
    const bareTlsP50 = p50('bareTls')
    const barePlainP50 = p50('barePlain')
    const added = (tlsP50 - plainP50) * 1_000
    const bareAdded = (bareTlsP50 - barePlainP50) * 1_000
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
      tls_p50_added_us: Number(added.toFixed(1)),
      bare_tls_p50_ms: Number(bareTlsP50.toFixed(4)),
      bare_plain_p50_ms: Number(barePlainP50.toFixed(4)),
      bare_tls_p50_added_us: Number(bareAdded.toFixed(1)),
      js_records_p50_added_us: Number(((p50('records') - barePlainP50) * 1_000).toFixed(1)),
      js_records_call_cpu_us: cpuPerCall('records'),
      tls_p50_added_over_bare_us: Number((added - bareAdded).toFixed(1)),
      tls_call_cpu_us: cpuPerCall('tls'),
      plain_call_cpu_us: cpuPerCall('plain'),
      bare_tls_call_cpu_us: cpuPerCall('bareTls'),
      bare_plain_call_cpu_us: cpuPerCall('barePlain'),
      tls_server_cpu_us: serverCpuPerCall('tls'),
      plain_server_cpu_us: serverCpuPerCall('plain'),
      bare_tls_server_cpu_us: serverCpuPerCall('bareTls'),
      bare_plain_server_cpu_us: serverCpuPerCall('barePlain'),
      tls_pipelined_calls_per_s: Math.round(tlsRate),
      plain_pipelined_calls_per_s: Math.round(plainRate),
      tls_pipelined_vs_plain: Number((tlsRate / plainRate).toFixed(3)),
    }
  } finally {
    for (const server of [plainServer, tlsServer, barePlainServer, bareTlsServer, recordsServer])
      server.child.kill('SIGKILL')
  }
}
