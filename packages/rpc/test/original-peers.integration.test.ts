import { once } from 'node:events'
import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { connectService, type RpcServer, serve } from '../src/index.js'
import { calculator } from './fixture.js'
import { LinePeer } from './peer.js'

// Stand-ins that behave exactly as original Autobus 2 peers were measured
// to (docs/protocol.md §3.4, §3.6).
let server: RpcServer | undefined
const cleanups: Array<() => void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup()
  await server?.close()
  server = undefined
})

describe('watch from an original client', () => {
  it('sent as a notification, is followed by a changed with the current value', async () => {
    const { service, counter } = calculator()
    counter.set(7)
    server = await serve([service], { host: '127.0.0.1' })
    const peer = await LinePeer.connect(server.port)
    cleanups.push(() => peer.close())
    await peer.call(1, 'bind', { service: service.id })
    peer.send({ _type: 3, _id: 2, _command: 'watch', name: 'counter' })
    expect(await peer.next((line) => line._command === 'changed')).toMatchObject({
      _type: 3,
      name: 'counter',
      value: 7,
    })
    // A notification gets no response.
    expect(peer.lines.filter((line) => line._type === 2 && line._id === 2)).toEqual([])
  })

  it('is answered without the extra changed when the client negotiated features', async () => {
    const { service } = calculator()
    server = await serve([service], { host: '127.0.0.1' })
    const peer = await LinePeer.connect(server.port)
    cleanups.push(() => peer.close())
    await peer.call(1, 'bind', { service: service.id, features: ['errors'] })
    expect(await peer.call(2, 'watch', { name: 'counter' })).toMatchObject({ value: 0 })
    // A later response proves the earlier frames have all arrived.
    await peer.call(3, 'call', { name: 'add', args: [1, 1] })
    expect(peer.lines.filter((line) => line._command === 'changed')).toEqual([])
  })
})

describe('an original service', () => {
  it('answers bind with {"service": id}, and our client binds to it', async () => {
    const listener = net.createServer((socket) => {
      const peer = new LinePeer(socket)
      void peer
        .next((line) => line._command === 'bind')
        .then(
          (bind) => peer.send({ _type: 2, _id: bind._id, service: bind.service }),
          () => {},
        )
      void peer
        .next((line) => line._command === 'call', 10_000)
        .then(
          (call) => peer.send({ _type: 2, _id: call._id, result: 'ok' }),
          () => {},
        )
    })
    listener.listen(0, '127.0.0.1')
    await once(listener, 'listening')
    cleanups.push(() => listener.close())
    const port = (listener.address() as net.AddressInfo).port
    const connection = await connectService({ host: '127.0.0.1', port, service: 'legacy' })
    expect(connection.features.size).toBe(0)
    expect(await connection.call('anything')).toBe('ok')
    await connection.close()
  })
})
