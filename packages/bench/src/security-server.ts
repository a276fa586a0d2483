/**
 * The server of the security scenario, in a process of its own:
 * `security-server.js [key]` serves one `echo` function over TCP on
 * loopback, keyed (TLS 1.3 PSK) when a key is given, and prints
 * `{"ready": true, port, service}`.
 */
import { KeyRing, Type } from '@autobus/bus'
import { createService, serve } from '@autobus/rpc'

const key = process.argv[2]
const service = createService({ info: { type: 'bench.security' } })
service.addFunction('echo', { args: [Type.Unknown()] }, (value) => value)
const server = await serve([service], {
  port: 0,
  host: '127.0.0.1',
  ...(key ? { keys: new KeyRing([key]) } : {}),
})
process.stdout.write(`${JSON.stringify({ ready: true, port: server.port, service: service.id })}\n`)
