import { once } from 'node:events'
import net from 'node:net'
import { RemoteError } from '@autobus/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { connectService, type RpcServer, serve } from '../src/index.js'
import { calculator } from './fixture.js'
import { LinePeer } from './peer.js'

let server: RpcServer | undefined
const cleanups: Array<() => void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup()
  await server?.close()
})

describe('an original Autobus 2 client against our service', () => {
  it('binds without features and uses call, watch, unwatch, listen and unlisten', async () => {
    const { service, counter } = calculator()
    server = await serve([service], { host: '127.0.0.1' })
    const peer = await LinePeer.connect(server.port)
    cleanups.push(() => peer.close())
    const bind = await peer.call(1, 'bind', { service: service.id })
    expect(bind).toEqual({ _type: 2, _id: 1 })
    expect((await peer.call(2, 'call', { name: 'add', args: [2, 2] })).result).toBe(4)
    expect(await peer.call(3, 'watch', { name: 'counter' })).toMatchObject({
      name: 'counter',
      value: 0,
    })
    // Like an original service, ours follows the watch with the current value.
    expect(await peer.next((line) => line._command === 'changed')).toMatchObject({
      _type: 3,
      name: 'counter',
      value: 0,
    })
    counter.set(5)
    expect(await peer.next((line) => line._command === 'changed')).toMatchObject({
      _type: 3,
      name: 'counter',
      value: 5,
    })
    expect((await peer.call(4, 'unwatch', { name: 'counter' })).value).toBeNull()
    // … and the unwatch with `changed` null, which an original client takes as the answer.
    expect(await peer.next((line) => line._command === 'changed')).toMatchObject({
      name: 'counter',
      value: null,
    })
    await peer.call(5, 'listen', { name: 'ticked' })
    await peer.call(6, 'call', { name: 'tick', args: [] })
    expect(await peer.next((line) => line._command === 'fired')).toMatchObject({
      name: 'ticked',
      args: [1],
    })
    await peer.call(7, 'unlisten', { name: 'ticked' })
    const error = await peer.call(8, 'call', { name: 'fail', args: ['oops'] })
    expect(error._error.text).toBe('oops')
    // A `changed` or `fired` sent as a command is answered.
    expect((await peer.call(9, 'changed', { name: 'x', value: 1 }))._error).toBeUndefined()
    expect((await peer.call(10, 'fired', { name: 'x', args: [] }))._error).toBeUndefined()
    // No heartbeat was negotiated, so nothing unasked-for arrives.
    expect(peer.lines.filter((line) => line._command === 'ping')).toEqual([])
  })
})

describe('our client against an original Autobus 2 service', () => {
  it('calls, watches and listens using only the original commands', async () => {
    const listener = net.createServer((socket) => {
      const peer = new LinePeer(socket)
      const reply = (id: unknown, body: object) => peer.send({ _type: 2, _id: id, ...body })
      void (async () => {
        while (!socket.destroyed) {
          const line = await peer.next(() => true, 60_000).catch(() => undefined)
          if (!line) return
          const { _id: id, _command: command } = line
          if (command === 'bind') reply(id, {})
          else if (command === 'call' && line.name === 'double')
            reply(id, { result: line.args[0] * 2 })
          else if (command === 'call')
            reply(id, { _error: { text: `No such function ${line.name}` } })
          else if (command === 'watch') {
            reply(id, { name: line.name, value: 'on' })
            peer.send({ _type: 1, _id: 'c1', _command: 'changed', name: line.name, value: 'off' })
          } else if (command === 'listen') {
            reply(id, {})
            peer.send({
              _type: 3,
              _id: 'f1',
              _command: 'fired',
              name: line.name,
              args: ['pressed'],
            })
          } else if (line._type === 1) reply(id, { _error: { text: 'unknown command' } })
        }
      })()
    })
    listener.listen(0, '127.0.0.1')
    await once(listener, 'listening')
    cleanups.push(() => listener.close())
    const port = (listener.address() as net.AddressInfo).port

    const connection = await connectService({ host: '127.0.0.1', port, service: 'legacy' })
    expect(connection.features.size).toBe(0)
    expect(await connection.call('double', [21])).toBe(42)
    const error = (await connection.call('missing').catch((e: Error) => e)) as Error
    expect(error).toBeInstanceOf(RemoteError)
    expect(error.message).toBe('No such function missing')
    const values: unknown[] = []
    await connection.watch('light', (value) => values.push(value))
    await expect.poll(() => values).toEqual(['on', 'off'])
    const events: unknown[] = []
    await connection.listen('button', (...args) => events.push(args))
    await expect.poll(() => events).toEqual([['pressed']])
    await expect(connection.openChannel('x')).rejects.toThrow(/does not support channels/)
    await connection.close()
  })
})
