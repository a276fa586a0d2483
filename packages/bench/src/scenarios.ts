import { once } from 'node:events'
import net from 'node:net'
import { connectService } from '@autobus/rpc'
import { moleculerClient, RawClient, type RpcClient } from './clients.js'
import { median, now, percentile, type Server } from './harness.js'
import { PAYLOAD } from './payload.js'

/** One call at a time. */
export async function sequential(client: RpcClient, count: number) {
  const latencies: number[] = []
  const start = now()
  for (let i = 0; i < count; i++) {
    const t = now()
    await client.call()
    latencies.push(now() - t)
  }
  const seconds = (now() - start) / 1000
  return {
    calls_per_s: count / seconds,
    p50_ms: percentile(latencies, 50),
    p99_ms: percentile(latencies, 99),
  }
}

/** `depth` calls in flight at all times. */
export async function pipelined(client: RpcClient, count: number, depth = 64) {
  let sent = 0
  const start = now()
  const worker = async () => {
    while (sent < count) {
      sent++
      await client.call()
    }
  }
  await Promise.all(Array.from({ length: depth }, worker))
  return { calls_per_s: count / ((now() - start) / 1000) }
}

/** Events delivered per second to `subscribers` listeners. */
export async function autobusEvents(server: Server, subscribers: number, count: number) {
  const address = { host: '127.0.0.1', port: server.ready.port, service: server.ready.service! }
  const connections = await Promise.all(
    Array.from({ length: subscribers }, () => connectService(address)),
  )
  let received = 0
  const total = count * subscribers
  let done!: () => void
  const finished = new Promise<void>((resolve) => {
    done = resolve
  })
  for (const connection of connections) {
    await connection.listen('tick', () => {
      if (++received === total) done()
    })
  }
  const control = await connectService(address)
  const start = now()
  await control.call('fire', [count, PAYLOAD], { timeout: 120_000 })
  // A subscriber the service drops (one that fell too far behind) would
  // leave its events undelivered: say so rather than wait for ever.
  const dropped = connections.map((connection) =>
    connection.closed.then((info) => {
      throw new Error(`a subscriber's session closed before all events arrived: ${info.reason}`)
    }),
  )
  await Promise.race([finished, ...dropped])
  const rate = total / ((now() - start) / 1000)
  await Promise.all([...connections, control].map((connection) => connection.close()))
  return { events_per_s: rate }
}

export async function rawEvents(server: Server, subscribers: number, count: number) {
  const clients = await Promise.all(
    Array.from({ length: subscribers }, () => RawClient.connect(server.ready.port)),
  )
  let received = 0
  const total = count * subscribers
  let done!: () => void
  const finished = new Promise<void>((resolve) => {
    done = resolve
  })
  for (const client of clients) {
    client.onEvent = () => {
      if (++received === total) done()
    }
    client.send('listen')
  }
  // Each client's listen has landed once its next request is answered:
  // a listen that lands after the first events would wait for ever.
  await Promise.all(clients.map((client) => client.request('rss')))
  const control = await RawClient.connect(server.ready.port)
  const start = now()
  control.send('fire', { count, payload: PAYLOAD })
  await finished
  const rate = total / ((now() - start) / 1000)
  for (const client of [...clients, control]) await client.close()
  return { events_per_s: rate }
}

export async function moleculerEvents(server: Server, subscribers: number, count: number) {
  let received = 0
  const total = count * subscribers
  let done!: () => void
  const finished = new Promise<void>((resolve) => {
    done = resolve
  })
  const clients = []
  for (let i = 0; i < subscribers; i++) {
    const client = await moleculerClient(server.ready, i, () => {
      if (++received === total) done()
    })
    clients.push(client)
  }
  // Wait until the server's registry has every subscriber.
  for (let i = 0; i < 100; i++) {
    const nodes = (await clients[0]!.broker
      .call('$node.list', {}, { nodeID: 'bench-server', timeout: 5_000 })
      .catch(() => [])) as Array<{ id: string; available: boolean }>
    if (
      nodes.filter((node) => node.id.startsWith('bench-sub-') && node.available).length ===
      subscribers
    )
      break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const start = now()
  await clients[0]!.broker.call('bench.fire', { count, payload: PAYLOAD }, { timeout: 120_000 })
  await Promise.race([finished, new Promise((resolve) => setTimeout(resolve, 60_000))])
  const rate = received / ((now() - start) / 1000)
  await Promise.all(clients.map((client) => client.close()))
  return { events_per_s: rate, delivered: received / total }
}

/** Object changes delivered per second, and the latency of one change. */
export async function watchBench(server: Server, count: number, samples: number) {
  const connection = await connectService({
    host: '127.0.0.1',
    port: server.ready.port,
    service: server.ready.service!,
  })
  let seen = 0
  let waiting: { value: unknown; resolve: () => void } | undefined
  let done!: () => void
  let target = Number.POSITIVE_INFINITY
  const finished = new Promise<void>((resolve) => {
    done = resolve
  })
  await connection.watch('value', (value) => {
    seen++
    if (seen === target) done()
    if (waiting && value === waiting.value) waiting.resolve()
  })
  await connection.call('set', [0])
  seen = 0
  target = count
  const start = now()
  await connection.call('bump', [count], { timeout: 120_000 })
  await finished
  const changesPerSecond = count / ((now() - start) / 1000)
  target = Number.POSITIVE_INFINITY
  const latencies: number[] = []
  for (let i = 0; i < samples; i++) {
    const value = `v${i}`
    const arrived = new Promise<void>((resolve) => {
      waiting = { value, resolve }
    })
    const t = now()
    connection.notify('set', [value])
    await arrived
    latencies.push(now() - t)
  }
  await connection.close()
  return {
    changes_per_s: changesPerSecond,
    latency_p50_ms: median(latencies),
    latency_p99_ms: percentile(latencies, 99),
  }
}

/** Channel messages per second each way (echoed). */
export async function channelBench(server: Server, count: number) {
  const connection = await connectService({
    host: '127.0.0.1',
    port: server.ready.port,
    service: server.ready.service!,
  })
  const channel = await connection.openChannel('echo')
  let received = 0
  let done!: () => void
  const finished = new Promise<void>((resolve) => {
    done = resolve
  })
  channel.on('message', () => {
    if (++received === count) done()
  })
  const start = now()
  for (let i = 0; i < count; i++) {
    channel.send(PAYLOAD)
    if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve))
  }
  await finished
  const rate = count / ((now() - start) / 1000)
  await connection.close()
  return { messages_per_s: rate }
}

/** Upload `megabytes` through a byte stream, against a raw TCP socket. */
export async function streamBench(server: Server, rawSink: Server, megabytes: number) {
  const chunk = Buffer.alloc(64 * 1024, 1)
  const chunks = (megabytes * 1024 * 1024) / chunk.length
  const connection = await connectService({
    host: '127.0.0.1',
    port: server.ready.port,
    service: server.ready.service!,
  })
  const stream = await connection.openStream('sink')
  stream.resume()
  let start = now()
  for (let i = 0; i < chunks; i++) if (!stream.write(chunk)) await once(stream, 'drain')
  stream.end()
  await once(stream, 'end')
  const autobus = megabytes / ((now() - start) / 1000)
  await connection.close()

  const socket = net.connect({ host: '127.0.0.1', port: rawSink.ready.port })
  await once(socket, 'connect')
  socket.resume()
  start = now()
  for (let i = 0; i < chunks; i++) if (!socket.write(chunk)) await once(socket, 'drain')
  socket.end()
  await once(socket, 'close')
  const raw = megabytes / ((now() - start) / 1000)
  return { autobus_mb_per_s: autobus, raw_mb_per_s: raw }
}

/** RSS per idle bound connection on the server side. */
export async function idleConnectionMemory(server: Server, count: number) {
  const address = { host: '127.0.0.1', port: server.ready.port, service: server.ready.service! }
  const control = await connectService(address)
  const before = (await control.call('rss')) as number
  const connections = []
  for (let i = 0; i < count; i += 50) {
    connections.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(50, count - i) }, () => connectService(address)),
      )),
    )
  }
  await new Promise((resolve) => setTimeout(resolve, 300))
  const after = (await control.call('rss')) as number
  await Promise.all([...connections, control].map((connection) => connection.close()))
  return { bytes_per_connection: Math.max(0, after - before) / count }
}
