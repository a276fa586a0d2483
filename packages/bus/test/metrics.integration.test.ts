import { META_SERVICE_ID } from '@autobus/protocol'
import { describe, expect, it } from 'vitest'
import { type BusMetrics, createBus, renderPrometheus, serveMetrics, Type } from '../src/index.js'

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
    const target = { host: '127.0.0.1', port: bus.port, service: service.id }
    await using client = await createBus({ discovery: false })
    const connection = await client.connect(target)
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

    const meta = await client.connect({ ...target, service: META_SERVICE_ID })
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
    await using client = await createBus({ discovery: false })
    const connection = await client.connect({
      host: '127.0.0.1',
      port: bus.port,
      service: service.id,
    })
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
    await using client = await createBus({ discovery: false })
    const connection = await client.connect({
      host: '127.0.0.1',
      port: bus.port,
      service: service.id,
    })
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
