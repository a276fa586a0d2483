import { type ConnectionOptions, FramedConnection, type MessageConnection } from './connection.js'

class MemoryConnection extends FramedConnection {
  readonly remoteAddress = 'memory'
  readonly remotePort = 0
  peer: MemoryConnection | undefined

  get needsDrain(): boolean {
    return false
  }

  #bytesSent = 0

  get bytesSent(): number {
    return this.#bytesSent
  }

  protected get queuedBytes(): number {
    return 0
  }

  protected write(data: string | Uint8Array): void {
    const peer = this.peer
    if (!peer) return
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data)
    this.#bytesSent += bytes.byteLength
    // Delivered on a later tick, as a socket would.
    setImmediate(() => {
      if (!peer.isClosed) peer.receive(bytes)
    })
  }

  protected destroy(): void {
    const peer = this.peer
    this.peer = undefined
    if (peer) setImmediate(() => peer.close('closed by peer'))
  }
}

/**
 * Two connected in-memory message connections, for tests: what one sends,
 * the other receives on a later tick, through the same framing and decoding
 * as a socket.
 */
export function createMemoryPair(
  options: ConnectionOptions = {},
): [MessageConnection, MessageConnection] {
  const a = new MemoryConnection(options)
  const b = new MemoryConnection(options)
  a.peer = b
  b.peer = a
  return [a, b]
}
