import { once } from 'node:events'
import net from 'node:net'
import type { ProtocolError } from '@autobus/protocol'
import { describe, expect, it } from 'vitest'
import { listen, type MessageConnection } from '../src/index.js'

describe('hostile and odd lines', () => {
  it('refuses a 4 MB deeply nested frame from its first bytes, skips blank lines, and reads on', async () => {
    await using server = await listen({ host: '127.0.0.1' })
    const accepted = once(server, 'connection') as Promise<[MessageConnection]>
    const socket = net.connect({ host: '127.0.0.1', port: server.port })
    await once(socket, 'connect')
    const [connection] = await accepted
    const invalid: ProtocolError[] = []
    const messages: unknown[] = []
    connection.on('invalid', (error) => invalid.push(error))
    connection.on('message', (message) => messages.push(message))

    socket.write(' \t\r\n\n\r\n')
    const half = 2_000_000
    const deep = Buffer.from(
      `{"_type":1,"_id":5,"_command":"call","name":"f","args":[${'['.repeat(half)}${']'.repeat(half)}]}\n`,
    )
    // In pieces, as a network delivers it.
    for (let offset = 0; offset < deep.length; offset += 65_536)
      socket.write(deep.subarray(offset, offset + 65_536))
    socket.write('{"_type":1,"_id":6,"_command":"ping"}\n')
    await once(connection, 'message')

    expect(invalid).toHaveLength(1)
    expect(invalid[0]).toMatchObject({ code: 'too_deep', messageId: 5, messageType: 1 })
    expect(messages).toEqual([{ _type: 1, _id: 6, _command: 'ping' }])
    expect(connection.isClosed).toBe(false)
    socket.destroy()
  })

  it('stops reading a peer past its budget of refused bytes, then reads on', async () => {
    await using server = await listen({ host: '127.0.0.1', refusedBytesPerSecond: 8 * 1024 * 1024 })
    const accepted = once(server, 'connection') as Promise<[MessageConnection]>
    const socket = net.connect({ host: '127.0.0.1', port: server.port })
    await once(socket, 'connect')
    const [connection] = await accepted
    let invalid = 0
    connection.on('invalid', () => invalid++)
    const half = 1_000_000
    const deep = `{"_type":1,"_id":5,"args":[${'['.repeat(half)}${']'.repeat(half)}]}\n`
    // 8 MB: the first 4 MiB at once, the rest after a pause.
    for (let i = 0; i < 4; i++) socket.write(deep)
    socket.write('{"_type":1,"_id":6,"_command":"ping"}\n')
    const [message] = await once(connection, 'message')
    expect(invalid).toBe(4)
    expect(message).toEqual({ _type: 1, _id: 6, _command: 'ping' })
    expect(connection.isClosed).toBe(false)
    socket.destroy()
  })

  it('still closes a refused line that goes over the frame limit', async () => {
    await using server = await listen({ host: '127.0.0.1', maxFrame: 100_000 })
    const accepted = once(server, 'connection') as Promise<[MessageConnection]>
    const socket = net.connect({ host: '127.0.0.1', port: server.port })
    socket.on('error', () => {})
    await once(socket, 'connect')
    const [connection] = await accepted
    socket.write(`{"_type":1,"_id":1,"args":${'['.repeat(200_000)}`)
    expect(await connection.closed).toMatchObject({ reason: 'frame too large' })
    socket.destroy()
  })
})
