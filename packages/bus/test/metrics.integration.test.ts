import { once } from 'node:events'
import { connect } from 'node:net'
import { META_SERVICE_ID } from '@autobus/protocol'
import { describe, expect, it } from 'vitest'
import {
  type Bus,
  type BusMetrics,
  createBus,
  renderPrometheus,
  serveMetrics,
  Type,
} from '../src/index.js'

/**
 * A bus of its own (no discovery) with a connection over loopback to
 * `service` on `bus`; disposing it closes that bus.
 */
async function connectedClient(bus: Bus, service: string) {
  const client = await createBus({ discovery: false })
  const connection = await client.connect({ host: '127.0.0.1', port: bus.port, service })
  return { bus: client, connection, [Symbol.asyncDispose]: () => client[Symbol.asyncDispose]() }
}

describe('metrics', () => {
  it('counts calls, errors by code, latency, fires and changes; peers read them over the wire', async () => {
    await using bus = await createBus({ discovery: false })
    const service = bus.createService({ info: { type: 'measured' } })
    const counter = service.addObject('counter', { value: Type.Integer() }, 0)
    const ticked = service.addEvent('ticked', { args: [Type.Integer()] })
    service
      .addFunction('add', { args: [Type.Number(), Type.Number()] }, (a, b) => a + b)
      .addFunction('fail', { args: [] }, () => {
        throw new Error('no')
      })
      .addFunction('later', { args: [] }, async () => {
        throw new Error('later')
      })
    bus.publish(service)
    await using client = await connectedClient(bus, service.id)
    const { connection } = client
    await connection.listen('ticked', () => {})
    await connection.call('add', [2, 3])
    await connection.call('add', [4, 5])
    await expect(connection.call('fail', [])).rejects.toThrow('no')
    await expect(connection.call('later', [])).rejects.toThrow('later')
    ticked.fire(1)
    counter.set(1)
    counter.set(2)

    const stats = bus.metrics().services.find((entry) => entry.service === service.id)!
    expect(stats.functions.add!.calls).toBe(2)
    expect(stats.functions.add!.errors).toBe(0)
    expect(stats.functions.add!.latency.count).toBe(2)
    expect(stats.functions.add!.latency.p50).not.toBeNull()
    expect(stats.functions.fail!.errorsByCode).toEqual({ remote_error: 1 })
    expect(stats.functions.later!.errors).toBe(1)
    expect(stats.events.ticked).toEqual({ fires: 1, deliveries: 1, listeners: 1 })
    expect(stats.objects.counter).toEqual({ changes: 2, watchers: 0 })

    const meta = await client.bus.connect({
      host: '127.0.0.1',
      port: bus.port,
      service: META_SERVICE_ID,
    })
    const remote = (await meta.call('stats', [])) as BusMetrics
    expect(remote.services.map((entry) => entry.service)).toEqual([service.id])
    expect(remote.services[0]!.functions.add!.calls).toBe(2)
    expect(remote.server.sessions).toBeGreaterThanOrEqual(2)
    expect(remote.server.bytesIn).toBeGreaterThan(0)
    expect(remote.server.bytesOut).toBeGreaterThan(0)

    const text = renderPrometheus([{ metrics: remote, labels: { bus: 'a' } }])
    expect(text).toContain(
      `autobus_function_calls_total{bus="a",service="${service.id}",function="add"} 2`,
    )
    expect(text).toContain(
      `autobus_function_errors_total{bus="a",service="${service.id}",function="fail",code="remote_error"} 1`,
    )
    expect(text).toContain(
      `autobus_function_latency_seconds_bucket{bus="a",service="${service.id}",function="add",le="+Inf"} 2`,
    )
    expect(text.match(/^# TYPE autobus_function_calls_total counter$/gm)).toHaveLength(1)
  })

  it('does not make an entry for a function that does not exist', async () => {
    await using bus = await createBus({ discovery: false })
    const service = bus.createService()
    service.addFunction('ok', { args: [] }, () => 1)
    bus.publish(service)
    await using client = await connectedClient(bus, service.id)
    const { connection } = client
    await expect(connection.call('nope', [])).rejects.toThrow()
    expect(Object.keys(bus.metrics().services[0]!.functions)).toEqual(['ok'])
  })
})

describe('metrics off', () => {
  it('leaves a service that asked for no metrics at zero', async () => {
    await using bus = await createBus({ discovery: false })
    const service = bus.createService({ metrics: false })
    service.addFunction('ok', { args: [] }, () => 1)
    bus.publish(service)
    await using client = await connectedClient(bus, service.id)
    const { connection } = client
    await connection.call('ok', [])
    expect(bus.metrics().services[0]!.functions.ok!.calls).toBe(0)
  })
})

describe('serveMetrics', () => {
  it('answers GET /metrics with the bus figures as Prometheus text', async () => {
    await using bus = await createBus({ discovery: false })
    const service = bus.createService()
    service.addFunction('ok', { args: [] }, () => 1)
    bus.publish(service)
    await using exporter = await serveMetrics(bus, { port: 0, labels: { instance: 'x' } })
    const response = await fetch(exporter.url)
    expect(response.headers.get('content-type')).toContain('version=0.0.4')
    expect(await response.text()).toContain(
      `autobus_function_calls_total{instance="x",service="${service.id}",function="ok"} 0`,
    )
    expect((await fetch(exporter.url.replace('/metrics', '/other'))).status).toBe(404)
  })
})

const SENT = 8 * 1024 * 1024

describe('metrics of refusals, channels and streams', () => {
  it('counts calls refused before the handler, by code, in the function or the service', async () => {
    await using bus = await createBus({
      discovery: false,
      access: {
        default: 'allow',
        rules: [{ effect: 'deny', actions: ['call'], member: 'secret' }],
      },
    })
    const service = bus.createService()
    service
      .addFunction('add', { args: [Type.Number(), Type.Number()] }, (a, b) => a + b)
      .addFunction('secret', { args: [] }, () => 'hidden')
    bus.publish(service)
    await using client = await connectedClient(bus, service.id)
    const { connection } = client
    await expect(connection.call('add', ['two', 3])).rejects.toThrow()
    await expect(connection.call('secret', [])).rejects.toThrow()
    await expect(connection.call('nope', [])).rejects.toThrow()
    await connection.call('add', [2, 3])

    const metrics = bus.metrics()
    const stats = metrics.services[0]!
    expect(stats.functions.add!.calls).toBe(1)
    expect(stats.functions.add!.rejectedByCode).toEqual({ invalid_arguments: 1 })
    expect(stats.functions.secret!.calls).toBe(0)
    expect(stats.functions.secret!.rejectedByCode).toEqual({ forbidden: 1 })
    expect(stats.rejectedByCode).toEqual({ unknown_name: 1 })
    expect(metrics.security).toEqual({ keyed: false, handshakesFailed: 0, requestsDenied: 1 })

    const text = renderPrometheus([{ metrics }])
    expect(text).toContain(
      `autobus_function_rejected_total{service="${service.id}",function="add",code="invalid_arguments"} 1`,
    )
    expect(text).toContain(
      `autobus_service_rejected_total{service="${service.id}",code="unknown_name"} 1`,
    )
    expect(text).toContain('autobus_requests_denied_total 1')
  })

  it('counts frames refused before any service, by code', async () => {
    await using bus = await createBus({ discovery: false })
    const socket = connect(bus.port, '127.0.0.1')
    await once(socket, 'connect')
    // Deeper than any frame may nest, then a command before bind.
    socket.write(`${'['.repeat(200)}${']'.repeat(200)}\n`)
    socket.write('{"_type":1,"_id":1,"_command":"call","name":"x","args":[]}\n')
    await expect
      .poll(() => bus.metrics().server.rejectedByCode)
      .toMatchObject({ too_deep: 1, not_bound: 1 })
    socket.destroy()
    expect(renderPrometheus([{ metrics: bus.metrics() }])).toContain(
      'autobus_rejected_total{code="too_deep"} 1',
    )
  })

  it('counts channels and streams: open, messages and bytes each way, time blocked', async () => {
    await using bus = await createBus({ discovery: false })
    const service = bus.createService()
    service.addChannel('chat', {}, (channel) => {
      channel.on('message', (message) => channel.send({ echo: message }))
    })
    let written: Promise<void> | undefined
    service.addStream('blob', {}, (stream) => {
      // Far more than the client's window (2 MiB): the writes wait for it to read.
      written = new Promise((resolve, reject) =>
        stream.end(Buffer.alloc(SENT, 1), (error?: Error | null) =>
          error ? reject(error) : resolve(),
        ),
      )
    })
    bus.publish(service)
    await using client = await connectedClient(bus, service.id)
    const { connection } = client
    const channel = await connection.openChannel('chat')
    const replies: unknown[] = []
    channel.on('message', (message) => replies.push(message))
    channel.send('a')
    channel.send('b')
    await expect.poll(() => replies.length).toBe(2)
    let stats = bus.metrics().services[0]!
    expect(stats.channels.chat).toEqual({ opened: 1, open: 1, messagesIn: 2, messagesOut: 2 })

    const stream = await connection.openStream('blob')
    stream.write(Buffer.alloc(1000))
    // Nothing is read until the service has filled the window and waits.
    const sentNow = () => bus.metrics().services[0]!.streams.blob!.bytesOut
    await expect.poll(sentNow).toBeGreaterThanOrEqual(2 * 1024 * 1024)
    expect(sentNow()).toBeLessThan(SENT)
    let received = 0
    for await (const chunk of stream) received += (chunk as Buffer).length
    await written
    expect(received).toBe(SENT)
    stats = bus.metrics().services[0]!
    expect(stats.streams.blob).toMatchObject({ opened: 1, bytesIn: 1000, bytesOut: SENT })
    expect(stats.streams.blob!.blockedMs).toBeGreaterThan(0)

    await channel.close()
    await expect.poll(() => bus.metrics().services[0]!.channels.chat!.open).toBe(0)
    await expect.poll(() => bus.metrics().services[0]!.streams.blob!.open).toBe(0)
    const text = renderPrometheus([{ metrics: bus.metrics() }])
    expect(text).toContain(
      `autobus_channel_received_messages_total{service="${service.id}",channel="chat"} 2`,
    )
    expect(text).toContain(
      `autobus_stream_sent_bytes_total{service="${service.id}",stream="blob"} ${SENT}`,
    )
    expect(text).toMatch(/autobus_stream_blocked_seconds_total\{[^}]*stream="blob"\} 0\.\d+/)
  })
})

describe('stats of another version', () => {
  it('renders the figures it knows of a bus that counts less, and ignores keys it does not know', () => {
    // What a bus of an earlier version answers to `stats`, with a key from a later one.
    const earlier = {
      at: 1,
      server: {
        sessions: 1,
        running: 0,
        accepted: 1,
        refusedTotal: 0,
        refusedPerAddress: 0,
        acceptErrors: 0,
        busy: 0,
        dropped: 0,
        windowViolations: 0,
        bytesIn: 10,
        bytesOut: 20,
        bytesQueued: 0,
      },
      services: [
        {
          service: 's',
          functions: {
            f: {
              calls: 3,
              errors: 0,
              errorsByCode: {},
              latency: { count: 3, sumMs: 1, counts: [3], p50: 0.05, p90: 0.05, p99: 0.05 },
            },
          },
          events: {},
          objects: {},
        },
      ],
      later: { anything: true },
    } as unknown as BusMetrics
    const text = renderPrometheus([{ metrics: earlier }])
    expect(text).toContain('autobus_function_calls_total{service="s",function="f"} 3')
    expect(text).not.toContain('autobus_discovery_')
    expect(text).not.toContain('autobus_handshakes_failed_total')
  })
})
