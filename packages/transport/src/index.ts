/**
 * Autobus transport: protocol messages over TCP, Unix sockets or memory, one
 * JSON object per line, with a frame limit enforced as bytes arrive,
 * backpressure, slow-consumer protection and heartbeats.
 *
 * @example
 * ```ts
 * import { connect, listen } from '@autobus/transport'
 *
 * const server = await listen({ port: 0 })
 * server.on('connection', (connection) => {
 *   connection.on('message', (message) => connection.send({ _type: 2, _id: message._id }))
 * })
 * const client = await connect({ host: '127.0.0.1', port: server.port })
 * client.send({ _type: 1, _id: 1, _command: 'ping' })
 * ```
 *
 * @packageDocumentation
 */
export {
  type CloseInfo,
  type ConnectionOptions,
  type HeartbeatOptions,
  type MessageConnection,
  type MessageConnectionEvents,
  waitForDrain,
} from './connection.js'
export { createInProcessPair, type InProcessPeer } from './in-process.js'
export { createMemoryPair } from './memory.js'
export {
  type ConnectOptions,
  connect,
  type Endpoint,
  fromSocket,
  type ListenOptions,
  listen,
  type MessageServer,
  type MessageServerEvents,
  type ServerCounters,
  type SocketOptions,
} from './tcp.js'
