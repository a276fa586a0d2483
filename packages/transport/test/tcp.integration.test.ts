import { once } from 'node:events'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  ListenError,
  PeerTimeoutError,
  SlowConsumerError,
  UnreachableError,
} from '@autobus/protocol'
import { manualClock } from '@autobus/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, listen, type MessageConnection, type MessageServer } from '../src/index.js'

const servers: MessageServer[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()))
})

async function serve(options: Parameters<typeof listen>[0] = {}) {
  const server = await listen({ host: '127.0.0.1', ...options })
  servers.push(server)
  const accepted: MessageConnection[] = []
  server.on('connection', (connection) => accepted.push(connection))
  return { server, accepted }
}

async function raw(port: number) {
  const socket = net.connect({ host: '127.0.0.1', port })
  await once(socket, 'connect')
  return socket
}

const nextMessage = (connection: MessageConnection) =>
  once(connection, 'message').then(([message]) => message)

describe('TCP message connections', () => {
  it('carries messages both ways, however the bytes are split', async () => {
    const { server, accepted } = await serve()
    const socket = await raw(server.port)
    await expect.poll(() => accepted.length).toBe(1)
    const connection = accepted[0]!
    const got: unknown[] = []
    connection.on('message', (message) => got.push(message))
    const line = '{"_type":1,"_id":1,"_command":"ping"}\n{"_type":3,"_command":"ping"}\n'
    for (const char of line) socket.write(char)
    await expect.poll(() => got.length).toBe(2)
    expect(got[0]).toEqual({ _type: 1, _id: 1, _command: 'ping' })

    const client = await connect({ host: '127.0.0.1', port: server.port })
    await expect.poll(() => accepted.length).toBe(2)
    const second = accepted[1]!
    second.send({ _type: 2, _id: 7, result: 'é' })
    expect(await nextMessage(client)).toEqual({ _type: 2, _id: 7, result: 'é' })
    client.close()
    socket.destroy()
  })

  it('reports an invalid frame and keeps the connection open', async () => {
    const { server, accepted } = await serve()
    const socket = await raw(server.port)
    await expect.poll(() => accepted.length).toBe(1)
    const connection = accepted[0]!
    const invalid = once(connection, 'invalid')
    socket.write('this is not json\n')
    const [error] = await invalid
    expect(error.code).toBe('malformed_json')
    const message = nextMessage(connection)
    socket.write('{"_type":3,"_command":"ping"}\n')
    expect(await message).toMatchObject({ _command: 'ping' })
    expect(connection.isClosed).toBe(false)
    socket.destroy()
  })

  it('closes a connection whose line exceeds the frame limit, even one that never ends', async () => {
    const { server, accepted } = await serve({ maxFrame: 1024 })
    const endless = await raw(server.port)
    const other = await raw(server.port)
    await expect.poll(() => accepted.length).toBe(2)
    endless.write('{"_type":3,"_command":"ping","pad":"')
    for (let i = 0; i < 4; i++) endless.write('x'.repeat(512))
    const info = await accepted[0]!.closed
    expect(info.reason).toBe('frame too large')
    expect(accepted[1]!.isClosed).toBe(false)
    const long = await raw(server.port)
    await expect.poll(() => accepted.length).toBe(3)
    long.write(`${'x'.repeat(2000)}\n`)
    expect((await accepted[2]!.closed).reason).toBe('frame too large')
    for (const socket of [endless, other, long]) socket.destroy()
  })

  it('drops a peer that stops reading once too much is queued for it', async () => {
    const { server, accepted } = await serve({ maxQueuedBytes: 256 * 1024 })
    const socket = await raw(server.port)
    socket.pause()
    await expect.poll(() => accepted.length).toBe(1)
    const connection = accepted[0]!
    const payload = 'x'.repeat(16 * 1024)
    for (let i = 0; i < 2_000 && !connection.isClosed; i++) {
      connection.send({ _type: 3, _command: 'fired', name: 'e', args: [payload] })
      await new Promise((resolve) => setImmediate(resolve))
    }
    const closed = await connection.closed
    expect(closed.reason).toBe('slow consumer')
    expect(closed.error).toBeInstanceOf(SlowConsumerError)
    socket.destroy()
  })

  it('declares a silent peer dead through heartbeats, at the timeout', async () => {
    const time = manualClock()
    const { server, accepted } = await serve({ clock: time.clock })
    const socket = await raw(server.port)
    await expect.poll(() => accepted.length).toBe(1)
    let pings = 0
    accepted[0]!.startHeartbeat({ interval: 5_000, timeout: 15_000, ping: () => pings++ })
    time.advance(14_999)
    expect(accepted[0]!.isClosed).toBe(false)
    time.advance(1)
    expect(accepted[0]!.isClosed).toBe(true)
    const info = await accepted[0]!.closed
    expect(info.reason).toBe('peer timeout')
    expect(info.error).toBeInstanceOf(PeerTimeoutError)
    expect(pings).toBeGreaterThan(0)
    socket.destroy()
  })

  it('rejects a connection that cannot be made with UnreachableError', async () => {
    const probe = net.createServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const port = (probe.address() as net.AddressInfo).port
    await new Promise((resolve) => probe.close(resolve))
    await expect(connect({ host: '127.0.0.1', port })).rejects.toBeInstanceOf(UnreachableError)
    const aborted = AbortSignal.abort(new Error('stop'))
    await expect(connect({ host: '127.0.0.1', port }, { signal: aborted })).rejects.toThrow('stop')
  })

  it('rejects a port in use with ListenError, not UnreachableError', async () => {
    const { server } = await serve()
    const failed = await listen({ host: '127.0.0.1', port: server.port }).catch((error) => error)
    expect(failed).toBeInstanceOf(ListenError)
    expect(failed).not.toBeInstanceOf(UnreachableError)
    expect(failed.systemCode).toBe('EADDRINUSE')
  })

  it('closes connections and servers with one shape: closed, close() and asyncDispose', async () => {
    const server = await listen({ host: '127.0.0.1' })
    const client = await connect({ host: '127.0.0.1', port: server.port })
    expect(await client.close('done')).toEqual({ reason: 'done' })
    expect(await client.close('again')).toEqual({ reason: 'done' })
    const closed = server.closed
    await server[Symbol.asyncDispose]()
    expect(await closed).toEqual({ reason: 'server closing' })
    expect(await server.close('again')).toEqual({ reason: 'server closing' })
  })

  it('works over a Unix domain socket', async () => {
    const path = join(tmpdir(), `autobus-test-${process.pid}-${Date.now()}.sock`)
    const { accepted } = await serve({ path })
    const client = await connect({ path })
    await expect.poll(() => accepted.length).toBe(1)
    client.send({ _type: 3, _command: 'ping' })
    expect(await nextMessage(accepted[0]!)).toEqual({ _type: 3, _command: 'ping' })
    client.close('bye')
    expect((await accepted[0]!.closed).reason).toBe('closed by peer')
  })

  it('survives 1,000 connections opened and reset', async () => {
    const { server, accepted } = await serve()
    for (let batch = 0; batch < 10; batch++) {
      const sockets = await Promise.all(Array.from({ length: 100 }, () => raw(server.port)))
      for (const socket of sockets) {
        socket.write('{"_type":1,"_id":1,"_comm')
        socket.resetAndDestroy()
      }
    }
    await expect.poll(() => accepted.filter((c) => !c.isClosed).length).toBe(0)
    const client = await connect({ host: '127.0.0.1', port: server.port })
    await expect.poll(() => accepted.length).toBe(1001)
    client.send({ _type: 3, _command: 'ping' })
    expect(await nextMessage(accepted[1000]!)).toMatchObject({ _command: 'ping' })
    client.close()
  })
})
