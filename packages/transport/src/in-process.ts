import { type ConnectionOptions, FramedConnection, type MessageConnection } from './connection.js'

/** Who the other end of an in-process connection is, for access rules and logs. */
export interface InProcessPeer {
  /** Shown as the peer's address (default "in-process"). */
  remoteAddress?: string
  /** The bus key id the peer holds, as a keyed connection would have proved it. */
  peerKeyId?: string
  /** The certificate subject the peer holds, as mutual TLS would have proved it. */
  peerSubject?: string
}

type Delivery = string | Buffer

/** @internal One end of a pair of connections within one process. */
export class PairedConnection extends FramedConnection {
  readonly remoteAddress: string
  readonly remotePort = 0
  readonly peerKeyId: string | undefined
  readonly peerSubject: string | undefined
  peer: PairedConnection | undefined
  readonly #schedule: (deliver: () => void) => void
  #bytesSent = 0
  #inbox: Delivery[] = []
  #scheduled = false
  #reading = true

  /** `schedule` runs deliveries and the peer's close: when the sender's turn has run, or on a later tick. */
  constructor(
    options: ConnectionOptions,
    peer: InProcessPeer,
    schedule: (deliver: () => void) => void,
  ) {
    super(options)
    this.remoteAddress = peer.remoteAddress ?? 'in-process'
    this.peerKeyId = peer.peerKeyId
    this.peerSubject = peer.peerSubject
    this.#schedule = schedule
  }

  get needsDrain(): boolean {
    return false
  }

  get bytesSent(): number {
    return this.#bytesSent
  }

  protected get queuedBytes(): number {
    return 0
  }

  protected write(data: string | Uint8Array): void {
    const peer = this.peer
    if (!peer) return
    // Bytes are copied: the writer may reuse its buffer once write returns.
    const delivery = typeof data === 'string' ? data : Buffer.from(data)
    this.#bytesSent += typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength
    peer.#deliver(delivery)
  }

  // Delivered when the writer's turn of the event loop has run its course,
  // in order, as text where it was written as text.
  #deliver(delivery: Delivery): void {
    this.#inbox.push(delivery)
    if (this.#scheduled || !this.#reading) return
    this.#scheduled = true
    this.#schedule(this.#drainInbox)
  }

  #drainInbox = (): void => {
    this.#scheduled = false
    while (this.#inbox.length > 0 && this.#reading && !this.isClosed) {
      const next = this.#inbox.shift()!
      if (typeof next === 'string') this.receiveText(next)
      else this.receive(next)
    }
  }

  protected override setReading(reading: boolean): void {
    this.#reading = reading
    if (reading && this.#inbox.length > 0 && !this.#scheduled) {
      this.#scheduled = true
      this.#schedule(this.#drainInbox)
    }
  }

  protected destroy(): void {
    const peer = this.peer
    this.peer = undefined
    if (peer) this.#schedule(() => peer.close('closed by peer'))
  }
}

/**
 * Two connected message connections within one process, for a program
 * that talks to its own server (a bridge reaching a service of its own
 * bus): what one sends, the other receives once the sender's turn of the
 * event loop has run, as text, through the same framing, limits and
 * decoding as a socket, with no socket, system call or copy to bytes on
 * the way. `peer` is who the second connection says the first one is
 * (the first sees "in-process").
 */
export function createInProcessPair(
  peer: InProcessPeer = {},
  options: ConnectionOptions = {},
): [MessageConnection, MessageConnection] {
  return pair(options, [{}, peer], queueMicrotask)
}

/** @internal Two paired connections, each told who the other is. */
export function pair(
  options: ConnectionOptions,
  [first, second]: [InProcessPeer, InProcessPeer],
  schedule: (deliver: () => void) => void,
): [MessageConnection, MessageConnection] {
  const a = new PairedConnection(options, first, schedule)
  const b = new PairedConnection(options, second, schedule)
  a.peer = b
  b.peer = a
  return [a, b]
}
