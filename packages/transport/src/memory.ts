import type { ConnectionOptions, MessageConnection } from './connection.js'
import { pair } from './in-process.js'

/**
 * Two connected in-memory message connections, for tests: what one sends,
 * the other receives on a later tick, through the same framing and decoding
 * as a socket.
 */
export function createMemoryPair(
  options: ConnectionOptions = {},
): [MessageConnection, MessageConnection] {
  const memory = { remoteAddress: 'memory' }
  // Delivered on a later tick, as a socket would.
  return pair(options, [memory, memory], (deliver) => setImmediate(deliver))
}
