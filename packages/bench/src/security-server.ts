/**
 * The servers of the security scenario, each in a process of its own.
 *
 * - `security-server.js [key]` serves one `echo` function over TCP on
 *   loopback, keyed (TLS 1.3 PSK) when a key is given, and prints
 *   `{"ready": true, port, service}`.
 * - `security-server.js bare [key]` is the floor under it: a bare
 *   `node:net` (or, with a key, `node:tls` with the same PSK profile)
 *   socket that writes back every chunk it reads, no Autobus code.
 * - `security-server.js records key` writes back every message over bare
 *   `node:net`, each one an AES-GCM record sealed and opened in JavaScript
 *   (security-records.ts).
 */
import net from 'node:net'
import tls from 'node:tls'
import { KeyRing, parseKey, Type } from '@autobus/bus'
import { createService, serve } from '@autobus/rpc'
import { recordPair } from './security-records.js'

const bare = process.argv[2] === 'bare' || process.argv[2] === 'records'
const key = process.argv[bare ? 3 : 2]

if (process.argv[2] === 'records') {
  // Plain TCP, each message one AES-GCM record sealed and opened in JavaScript.
  const material = parseKey(key!).sessionKey
  const server = net.createServer({ noDelay: true }, (socket) => {
    const records = recordPair(material, 'server')
    socket.on('data', (chunk: Buffer) => {
      for (const plain of records.open(chunk)) socket.write(records.seal(plain))
    })
    socket.on('error', () => {})
  })
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as net.AddressInfo
    process.stdout.write(`${JSON.stringify({ ready: true, port })}\n`)
  })
} else if (bare) {
  const echo = (socket: net.Socket) => {
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => socket.write(chunk))
    socket.on('error', () => {})
  }
  const sessionKey = key ? parseKey(key).sessionKey : undefined
  const server = sessionKey
    ? tls
        .createServer({
          noDelay: true,
          minVersion: 'TLSv1.3',
          maxVersion: 'TLSv1.3',
          ciphers: 'TLS_AES_128_GCM_SHA256',
          pskCallback: () => sessionKey,
        })
        .on('secureConnection', echo)
    : net.createServer({ noDelay: true }, echo)
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as net.AddressInfo
    process.stdout.write(`${JSON.stringify({ ready: true, port })}\n`)
  })
} else {
  const service = createService({ info: { type: 'bench.security' } })
  service.addFunction('echo', { args: [Type.Unknown()] }, (value) => value)
  const server = await serve([service], {
    port: 0,
    host: '127.0.0.1',
    ...(key ? { keys: new KeyRing([key]) } : {}),
  })
  process.stdout.write(
    `${JSON.stringify({ ready: true, port: server.port, service: service.id })}\n`,
  )
}
