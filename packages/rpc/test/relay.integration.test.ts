import { once } from 'node:events'
import { createConnection } from 'node:net'
import type { RequestMessage } from '@autobus/protocol'
import type { MessageConnection } from '@autobus/transport'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type AccessControl,
  type Connection,
  connectService,
  createAccessControl,
  createService,
  type RpcServer,
  type Service,
  serve,
} from '../src/index.js'

const servers: RpcServer[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()))
})

/** Serves `service` on loopback and connects a client to it. */
async function servedAndConnected(
  service: Service,
  options: { access?: AccessControl } = {},
): Promise<Connection> {
  const server = await serve([service], { port: 0, host: '127.0.0.1', ...options })
  servers.push(server)
  return connectService({ host: '127.0.0.1', port: server.port, service: service.id })
}

// A relay that answers the bind and every call itself, as a bridge's
// stand-in passes them on to the service it stands in for.
function answering(taken: Array<RequestMessage<'bind'>>) {
  return (connection: MessageConnection, bind: RequestMessage<'bind'>) => {
    taken.push(bind)
    connection.send({ _type: 2, _id: bind._id, version: bind.version, features: bind.features })
    connection.on('message', (message) => {
      const { _id, _command } = message as { _id?: number; _command?: string }
      if (_command === 'call') connection.send({ _type: 2, _id, result: 'relayed' })
    })
    return true
  }
}

describe('sessions handed to a relay', () => {
  it('hands a session that binds to the relay, which answers the bind and all that follows', async () => {
    const service = createService({ id: 'relayed-1' })
    service.addFunction('who', {}, () => 'served')
    const taken: Array<RequestMessage<'bind'>> = []
    service.relay = answering(taken)
    await using connection = await servedAndConnected(service)
    expect(await connection.call('who', [])).toBe('relayed')
    expect(await connection.call('who', [])).toBe('relayed')
    expect(taken.map((bind) => bind.service)).toEqual([service.id])
  })

  it('hands the relay the frames that came in the same write as the bind', async () => {
    const service = createService({ id: 'relayed-4' })
    service.addFunction('who', {}, () => 'served')
    service.relay = answering([])
    const server = await serve([service], { port: 0, host: '127.0.0.1' })
    servers.push(server)
    const socket = createConnection(server.port, '127.0.0.1')
    await once(socket, 'connect')
    const lines: string[] = []
    let text = ''
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString()
      const parts = text.split('\n')
      text = parts.pop()!
      lines.push(...parts)
    })
    socket.write(
      `${JSON.stringify({ _type: 1, _id: 1, _command: 'bind', service: service.id })}\n` +
        `${JSON.stringify({ _type: 1, _id: 2, _command: 'call', name: 'who', args: [] })}\n`,
    )
    while (lines.length < 2) await once(socket, 'data')
    expect(lines.map((line) => JSON.parse(line))).toEqual([
      { _type: 2, _id: 1 },
      { _type: 2, _id: 2, result: 'relayed' },
    ])
    // A frame nobody can read is answered as in any session, and the
    // relay goes on with the next.
    const deep = `${'['.repeat(100)}${']'.repeat(100)}`
    socket.write(
      `{"_type":1,"_id":3,"_command":"call","name":"who","args":${deep}}\n` +
        `${JSON.stringify({ _type: 1, _id: 4, _command: 'call', name: 'who', args: [] })}\n`,
    )
    while (lines.length < 4) await once(socket, 'data')
    socket.destroy()
    const [refused, next] = lines.slice(2).map((line) => JSON.parse(line))
    expect(refused).toMatchObject({ _type: 2, _id: 3, _error: { code: 'too_deep' } })
    expect(next).toEqual({ _type: 2, _id: 4, result: 'relayed' })
  })

  it('serves the session itself when the relay declines it', async () => {
    const service = createService({ id: 'relayed-3' })
    service.addFunction('who', {}, () => 'served')
    const offered: string[] = []
    service.relay = (_connection, bind) => {
      offered.push(bind.service)
      return false
    }
    await using connection = await servedAndConnected(service)
    expect(await connection.call('who', [])).toBe('served')
    expect(offered).toEqual([service.id])
  })

  it('serves the session itself on a server with access rules', async () => {
    const service = createService({ id: 'relayed-2' })
    service.addFunction('who', {}, () => 'served')
    const taken: Array<RequestMessage<'bind'>> = []
    service.relay = answering(taken)
    const access = await createAccessControl({ default: 'allow', rules: [] })
    await using connection = await servedAndConnected(service, { access })
    expect(await connection.call('who', [])).toBe('served')
    expect(taken).toEqual([])
  })
})
