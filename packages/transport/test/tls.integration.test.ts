import { once } from 'node:events'
import { mkdtempSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKey, KeyRing, UnreachableError } from '@autobus/protocol'
import { makeCertificates } from '@autobus/testkit'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, listen, type MessageConnection, type MessageServer } from '../src/index.js'

const key = generateKey('k1')
const servers: MessageServer[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()))
})

async function echoServer(options: Parameters<typeof listen>[0]) {
  const server = await listen({ host: '127.0.0.1', ...options })
  servers.push(server)
  const accepted: MessageConnection[] = []
  server.on('connection', (connection) => {
    accepted.push(connection)
    connection.on('message', (message) => connection.send({ ...message, _type: 2 }))
  })
  return { server, accepted }
}

async function roundTrip(connection: MessageConnection) {
  connection.send({ _type: 1, _id: 1, _command: 'ping' })
  const [message] = (await once(connection, 'message')) as [Record<string, unknown>]
  return message
}

describe('keyed sessions (TLS 1.3 with a PSK)', () => {
  it('carry messages between holders of the key and tell the server which key', async () => {
    const { server, accepted } = await echoServer({ keys: new KeyRing([key]) })
    const client = await connect(
      { host: '127.0.0.1', port: server.port },
      { keys: new KeyRing([key]) },
    )
    expect(await roundTrip(client)).toMatchObject({ _type: 2, _id: 1 })
    expect(accepted[0]!.peerKeyId).toBe('k1')
    client.close()
  })

  it('accept every key of the server ring', async () => {
    const next = generateKey('k2')
    const { server, accepted } = await echoServer({ keys: new KeyRing([key, next]) })
    const client = await connect(
      { host: '127.0.0.1', port: server.port },
      { keys: new KeyRing([next]) },
    )
    expect(await roundTrip(client)).toMatchObject({ _id: 1 })
    expect(accepted[0]!.peerKeyId).toBe('k2')
    client.close()
  })

  it('refuse a wrong key and an unknown key id in the handshake', async () => {
    const { server, accepted } = await echoServer({ keys: new KeyRing([key]) })
    const target = { host: '127.0.0.1', port: server.port }
    await expect(connect(target, { keys: new KeyRing([generateKey('k1')]) })).rejects.toThrow(
      UnreachableError,
    )
    await expect(connect(target, { keys: new KeyRing([generateKey('other')]) })).rejects.toThrow(
      /TLS handshake/,
    )
    expect(accepted).toHaveLength(0)
    expect(server.counters.handshakeFailures).toBeGreaterThanOrEqual(2)
  })

  it('give a plaintext client nothing, and a keyed client nothing from a plaintext server', async () => {
    const { server, accepted } = await echoServer({ keys: new KeyRing([key]) })
    const raw = net.connect({ host: '127.0.0.1', port: server.port })
    const received: Buffer[] = []
    raw.on('data', (chunk) => received.push(chunk))
    raw.on('error', () => {})
    await once(raw, 'connect')
    raw.write('{"_type":1,"_id":1,"_command":"bind","service":"autobus"}\n')
    await once(raw, 'close')
    // At most a TLS alert: never a frame.
    expect(Buffer.concat(received).toString()).not.toContain('_type')
    expect(accepted).toHaveLength(0)

    const { server: plain } = await echoServer({})
    await expect(
      connect({ host: '127.0.0.1', port: plain.port }, { keys: new KeyRing([key]), timeout: 500 }),
    ).rejects.toThrow(UnreachableError)
  })

  it('work over a Unix socket too', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'autobus-tls-')), 'bus.sock')
    const { accepted } = await echoServer({ path, keys: new KeyRing([key]) })
    const client = await connect({ path }, { keys: new KeyRing([key]) })
    expect(await roundTrip(client)).toMatchObject({ _id: 1 })
    expect(accepted[0]!.peerKeyId).toBe('k1')
    client.close()
  })
})

describe('sessions with certificates (mutual TLS 1.3)', () => {
  const certificates = makeCertificates(['server', 'alice'])

  it('carry messages when both ends have a certificate from the authority, and name the client', async () => {
    const { server, accepted } = await echoServer({ certificate: certificates.byName.server })
    const client = await connect(
      { host: '127.0.0.1', port: server.port },
      { certificate: certificates.byName.alice },
    )
    expect(await roundTrip(client)).toMatchObject({ _id: 1 })
    expect(accepted[0]!.peerSubject).toBe('alice')
    client.close()
  })

  it('refuse a client without a certificate or with one from another authority', async () => {
    const { server, accepted } = await echoServer({ certificate: certificates.byName.server })
    const target = { host: '127.0.0.1', port: server.port }
    const mallory = certificates.issue('mallory', 'rogue')
    // In TLS 1.3 the server checks the client's certificate after the
    // client has finished: the client may see the connection made, then closed.
    const outcome = await connect(target, { certificate: mallory, timeout: 2_000 }).catch(
      (error: unknown) => error,
    )
    if (outcome instanceof UnreachableError) expect(outcome.message).toMatch(/TLS handshake/)
    else {
      const connection = outcome as MessageConnection
      connection.send({ _type: 1, _id: 1, _command: 'ping' })
      await connection.closed
    }
    // A client that trusts the authority but presents nothing.
    const raw = net.connect(target)
    raw.on('error', () => {})
    await once(raw, 'connect')
    raw.end('{"_type":1,"_id":1,"_command":"ping"}\n')
    await once(raw, 'close')
    expect(accepted).toHaveLength(0)
    expect(server.counters.handshakeFailures).toBeGreaterThanOrEqual(2)
  })
})
