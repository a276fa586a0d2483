import { manualClock } from '@autobus/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { connectService, type RpcServer, serve } from '../src/index.js'
import { calculator } from './fixture.js'
import { LinePeer } from './peer.js'

let server: RpcServer
const peers: LinePeer[] = []
afterEach(async () => {
  for (const peer of peers.splice(0)) peer.close()
  await server?.close()
})

async function setup(options: Parameters<typeof serve>[1] = {}) {
  const fixture = calculator()
  server = await serve([fixture.service], { host: '127.0.0.1', ...options })
  return fixture
}

async function bound(id: string) {
  const peer = await LinePeer.connect(server.port)
  peers.push(peer)
  const response = await peer.call(1, 'bind', { service: id })
  expect(response._error).toBeUndefined()
  return peer
}

/** The service still answers a fresh, well-behaved client. */
async function stillServing(id: string) {
  const connection = await connectService({ host: '127.0.0.1', port: server.port, service: id })
  expect(await connection.call('add', [20, 22])).toBe(42)
  await connection.close()
}

describe('bad input over TCP', () => {
  it('answers a non-JSON line with an error report and keeps serving', async () => {
    const { service } = await setup()
    const peer = await bound(service.id)
    peer.send('this is not json')
    const report = await peer.response(null)
    expect(report._error).toMatchObject({ code: 'malformed_json' })
    expect((await peer.call(2, 'call', { name: 'add', args: [1, 2] })).result).toBe(3)
    await stillServing(service.id)
  })

  it('closes a connection whose line is over the frame limit, even one that never ends', async () => {
    const { service } = await setup({ maxFrame: 4096 })
    const long = await bound(service.id)
    long.send({ _type: 1, _id: 2, _command: 'call', name: 'echo', args: ['x'.repeat(10_000)] })
    await long.closed
    const endless = await bound(service.id)
    endless.socket.write('{"_type":1,"_id":2,"_command":"call","name":"echo","args":["')
    for (let i = 0; i < 10; i++) endless.socket.write('y'.repeat(1000))
    await endless.closed
    // A plain close: no error report comes first (docs/protocol.md §3.1).
    expect([...long.lines, ...endless.lines].filter((line) => line._id === null)).toEqual([])
    await stillServing(service.id)
  })

  it('grants the stream window it is configured with, and closes a session that goes beyond it', async () => {
    const { service } = await setup({ streamWindow: 1000 })
    const peer = await LinePeer.connect(server.port)
    peers.push(peer)
    await peer.call(1, 'bind', { service: service.id, features: ['streams'] })
    expect(
      await peer.call(2, 'stream_open', { name: 'echo', stream: 1, window: 1 << 20 }),
    ).toMatchObject({
      window: 1000,
    })
    const data = Buffer.alloc(1001).toString('base64')
    peer.send({ _type: 3, _command: 'stream_data', stream: 1, data })
    await peer.closed
    expect(server.stats.windowViolations).toBe(1)
    await stillServing(service.id)
  })

  it('answers a command whose id cannot be echoed with an error report, without running it', async () => {
    const { service, counter } = await setup()
    const peer = await bound(service.id)
    peer.send('{"_type":1,"_id":1e400,"_command":"call","name":"increment","args":[]}')
    expect((await peer.response(null))._error).toMatchObject({ code: 'invalid_message' })
    peer.send({ _type: 1, _id: 'x'.repeat(257), _command: 'call', name: 'increment', args: [] })
    expect((await peer.response(null))._error).toMatchObject({ code: 'invalid_message' })
    expect(counter.value).toBe(0)
    // A notification's id is not looked at: it runs.
    peer.send('{"_type":3,"_id":1.5,"_command":"call","name":"increment","args":[]}')
    expect((await peer.call(2, 'call', { name: 'add', args: [1, 1] })).result).toBe(2)
    expect(counter.value).toBe(1)
  })

  it('answers unknown commands, missing or ill-typed fields with typed errors', async () => {
    const { service } = await setup()
    const peer = await bound(service.id)
    expect((await peer.call(2, 'launch'))._error).toMatchObject({ code: 'unknown_command' })
    expect((await peer.call(3, 'call', { args: [] }))._error).toMatchObject({
      code: 'invalid_message',
    })
    expect((await peer.call(4, 'call', { name: 'add', args: 'nope' }))._error).toMatchObject({
      code: 'invalid_message',
    })
    peer.send({ _type: 9, _id: 5, _command: 'call' })
    expect((await peer.response(null))._error).toMatchObject({ code: 'invalid_message' })
    expect((await peer.call(6, 'call', { name: 'nope', args: [] }))._error).toMatchObject({
      code: 'unknown_name',
    })
    expect((await peer.call(7, 'call', { name: 'add', args: [1] }))._error).toMatchObject({
      code: 'invalid_arguments',
    })
    expect((await peer.call(8, 'call', { name: 'add', args: ['a', 'b'] }))._error).toMatchObject({
      code: 'invalid_arguments',
    })
    expect((await peer.call(9, 'call', { name: 'add', args: [1, 2] })).result).toBe(3)
  })

  it('refuses a command before bind and closes after binding to an unknown id', async () => {
    const { service } = await setup()
    const peer = await LinePeer.connect(server.port)
    peers.push(peer)
    expect((await peer.call(1, 'call', { name: 'add', args: [1, 2] }))._error).toMatchObject({
      code: 'not_bound',
    })
    expect((await peer.call(2, 'bind', { service: 'no-such-service' }))._error).toMatchObject({
      code: 'unknown_service',
    })
    await peer.closed
    await stillServing(service.id)
  })

  it('cannot be polluted through __proto__ or constructor keys', async () => {
    const { service } = await setup()
    const peer = await bound(service.id)
    peer.send(
      '{"_type":1,"_id":2,"_command":"call","name":"echo","args":[{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}]}',
    )
    const response = await peer.response(2)
    expect(response.result).toEqual({ constructor: { prototype: { polluted: true } } })
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('answers nesting deeper than the limit with too_deep', async () => {
    const { service } = await setup()
    const peer = await bound(service.id)
    peer.send(
      `{"_type":1,"_id":2,"_command":"call","name":"echo","args":[${'['.repeat(200)}${']'.repeat(200)}]}`,
    )
    expect((await peer.response(2))._error).toMatchObject({ code: 'too_deep' })
    await stillServing(service.id)
  })

  it('shrugs off clients that reset mid-frame, 1,000 times', async () => {
    const { service } = await setup()
    for (let batch = 0; batch < 10; batch++) {
      const batchPeers = await Promise.all(
        Array.from({ length: 100 }, () => LinePeer.connect(server.port)),
      )
      for (const peer of batchPeers) {
        peer.socket.write(
          `{"_type":1,"_id":1,"_command":"bind","service":"${service.id}"}\n{"_type":1,"_id":2,"_comm`,
        )
        peer.socket.resetAndDestroy()
      }
    }
    await stillServing(service.id)
  })

  it('drops a client that never reads while events flood toward it, and memory stays bounded', async () => {
    const { service } = await setup({ maxQueuedBytes: 1024 * 1024 })
    const flood = service.addEvent('flood')
    const peer = await bound(service.id)
    expect((await peer.call(2, 'listen', { name: 'flood' }))._error).toBeUndefined()
    peer.socket.pause()
    const before = process.memoryUsage().heapUsed
    const blob = 'x'.repeat(10_000)
    for (let i = 0; i < 20_000 && flood.listenerCount > 0; i++) {
      flood.fire(blob)
      if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    await expect.poll(() => flood.listenerCount).toBe(0)
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(64 * 1024 * 1024)
    await stillServing(service.id)
  })

  it('closes a connection that never binds at the bind timeout, not before', async () => {
    const time = manualClock()
    const { service } = await setup({ bindTimeout: 15_000, clock: time.clock })
    const peer = await LinePeer.connect(server.port)
    peers.push(peer)
    await expect.poll(() => server.stats.sessions).toBe(1)
    time.advance(14_999)
    expect(server.stats.sessions).toBe(1)
    time.advance(1)
    expect(server.stats.sessions).toBe(0)
    await peer.closed
    await stillServing(service.id)
  })
})
