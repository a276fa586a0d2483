import { once } from 'node:events'
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { connect, listen, type MessageConnection } from '../src/index.js'

/** A raw connection from a loopback address of choice. */
function attempt(port: number, from = '127.0.0.1') {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: from })
  socket.on('error', () => {})
  return socket
}

// events.once would reject on the reset's 'error'.
const closed = (socket: net.Socket) => new Promise((resolve) => socket.once('close', resolve))

describe('connection caps', () => {
  it('closes connections over the per-address and total caps at once, counts them, and serves again once below', async () => {
    await using server = await listen({
      host: '127.0.0.1',
      maxConnections: 6,
      maxConnectionsPerAddress: 4,
    })
    const accepted: MessageConnection[] = []
    server.on('connection', (connection) => accepted.push(connection))
    const sockets: net.Socket[] = []
    const refused: Promise<unknown>[] = []
    for (let i = 0; i < 10; i++) {
      const socket = attempt(server.port)
      sockets.push(socket)
      if (i < 4) await once(server, 'connection')
      else refused.push(closed(socket))
    }
    // Every connection over the cap is closed by the server, without waiting.
    await Promise.all(refused)
    expect(server.counters).toMatchObject({ open: 4, accepted: 4, refusedPerAddress: 6 })

    // The total cap counts every address; loopback has many of them.
    const other = attempt(server.port, '127.0.0.2')
    await once(server, 'connection')
    const other2 = attempt(server.port, '127.0.0.3')
    await once(server, 'connection')
    await closed(attempt(server.port, '127.0.0.4'))
    expect(server.counters).toMatchObject({ open: 6, refusedTotal: 1 })

    // Below the cap again, a well-behaved client is served.
    for (const socket of sockets) socket.destroy()
    other.destroy()
    await Promise.all(accepted.slice(0, 5).map((connection) => connection.closed))
    const next = once(server, 'connection')
    const client = await connect({ host: '127.0.0.1', port: server.port })
    const [connection] = (await next) as [MessageConnection]
    connection.on('message', (message) => connection.send({ _type: 2, _id: message._id }))
    client.send({ _type: 1, _id: 1, _command: 'ping' })
    const [reply] = await once(client, 'message')
    expect(reply).toMatchObject({ _type: 2, _id: 1 })
    client.close()
    other2.destroy()
  })
})
