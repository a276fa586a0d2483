import { EventEmitter } from 'node:events'
import {
  type CloseInfo,
  ErrorCode,
  type NatsSegmentHeader,
  PeerTimeoutError,
  ProtocolError,
  SlowConsumerError,
} from '@autobus/protocol'
import {
  type HeartbeatOptions,
  type MessageConnection,
  type MessageConnectionEvents,
  waitForDrain,
} from '@autobus/transport'
import { circuitFrame, readCircuitFrame } from './link.js'

/** Limits of one link carried over NATS; every one has a default. */
export interface NatsLinkLimits {
  /** Bytes sent and not yet acknowledged by the other bridge (default 1 MiB); beyond it the link asks producers to wait. */
  window?: number
  /** Bytes waiting for the window to open before the link is dropped as a slow consumer (default 8 MiB). */
  maxQueuedBytes?: number
  /** Largest link message put back together from segments (default 16 MiB); a larger one closes the link. */
  maxMessage?: number
  /** Time without an acknowledgement after which unacknowledged segments are sent again (default 1 s). */
  retransmitTimeout?: number
  /** Longest wait for a segment going back to carry an acknowledgement before one is sent alone (default 20 ms). */
  ackDelay?: number
}

/** A segment's header (docs/protocol.md §8.7.3). */
export type SegmentHeader = NatsSegmentHeader

/** What a link needs from the NATS connection it rides on. */
export interface SegmentCarrier {
  /** Publishes one segment to the other bridge; false if it cannot be handed to the client now. */
  publish(peer: string, header: SegmentHeader, body?: Uint8Array): void
  /** Largest segment body, from the server's `max_payload`. */
  readonly segmentSize: number
}

interface Unacked {
  seq: number
  more: boolean
  body: Buffer
}

const NEWLINE = 0x0a
/** The end of a header line followed by an attachment of `_size` bytes. */
const ATTACHMENT_SIZE = /"_size":(\d+)\}$/

/**
 * One link between two bridges over NATS, seen by the link protocol as an
 * ordinary message connection. Link messages are cut into numbered
 * segments; the other end acknowledges what it has taken in order, so a
 * segment lost when a NATS server dies is sent again and one received
 * twice is dropped: nothing is lost, nothing delivered twice. At most
 * `window` bytes are unacknowledged, so neither NATS nor the other bridge
 * ever holds more for this link.
 * @internal
 */
export class NatsLinkConnection
  extends EventEmitter<MessageConnectionEvents>
  implements MessageConnection
{
  readonly remoteAddress = 'nats'
  readonly remotePort = 0
  readonly closed: Promise<CloseInfo>
  /** The other bridge's id. */
  readonly peer: string
  /** Chosen by the end that started the link; every segment of it carries it both ways. */
  readonly epoch: string
  readonly #carrier: SegmentCarrier
  readonly #window: number
  readonly #maxQueued: number
  readonly #maxMessage: number
  readonly #rto: number
  readonly #opened = Date.now()
  #info: CloseInfo | undefined
  #resolve!: (info: CloseInfo) => void
  // Sending.
  #nextSeq = 1
  #acked = 0
  readonly #unacked: Unacked[] = []
  #inFlight = 0
  readonly #waiting: Array<{ more: boolean; body: Buffer }> = []
  #waitingBytes = 0
  #retransmitTimer: NodeJS.Timeout | undefined
  #backoff = 1
  /** When the oldest unacknowledged segment was sent or the last acknowledgement came. */
  #progress = Date.now()
  #wasBehind = false
  // Receiving.
  #expected = 1
  #parts: Buffer[] = []
  #partBytes = 0
  #ackDue = false
  #ackScheduled: false | 'soon' | 'later' = false
  #ackTimer: NodeJS.Timeout | undefined
  /** Bytes taken in since the last acknowledgement sent. */
  #unackedIn = 0
  readonly #ackDelay: number
  // Counters and heartbeat.
  #bytesSent = 0
  #bytesReceived = 0
  #lastHeard = Date.now()
  #lastPing = 0
  #heartbeat: NodeJS.Timeout | undefined
  /** Segments sent again. */
  retransmitted = 0

  constructor(carrier: SegmentCarrier, peer: string, epoch: string, limits: NatsLinkLimits = {}) {
    super()
    this.#carrier = carrier
    this.peer = peer
    this.epoch = epoch
    this.#window = limits.window ?? 1024 * 1024
    this.#maxQueued = limits.maxQueuedBytes ?? 8 * 1024 * 1024
    this.#maxMessage = limits.maxMessage ?? 16 * 1024 * 1024
    this.#rto = limits.retransmitTimeout ?? 1_000
    this.#ackDelay = limits.ackDelay ?? 20
    this.closed = new Promise((resolve) => {
      this.#resolve = resolve
    })
  }

  get isClosed(): boolean {
    return this.#info !== undefined
  }

  /** How long the link has been open, in ms. */
  get age(): number {
    return Date.now() - this.#opened
  }

  get needsDrain(): boolean {
    return this.#inFlight + this.#waitingBytes >= this.#window
  }

  get bytesSent(): number {
    return this.#bytesSent
  }

  get bytesReceived(): number {
    return this.#bytesReceived
  }

  get bytesQueued(): number {
    return this.#inFlight + this.#waitingBytes
  }

  send(message: object): boolean {
    return this.#message(JSON.stringify(message))
  }

  sendEncoded(frames: string): boolean {
    // Whole frames, several when a link's writes of one turn are joined:
    // each is a line, or a header line whose `_size` gives the bytes of
    // attachment after it. Each goes as a message of its own, without the
    // newline that ends a line.
    if (frames.indexOf('\n') === frames.length - 1) return this.#message(frames.slice(0, -1))
    const bytes = Buffer.from(frames)
    let sent = true
    for (let at = 0; at < bytes.length && sent; ) {
      let newline = bytes.indexOf(NEWLINE, at)
      if (newline === -1) newline = bytes.length
      const size = ATTACHMENT_SIZE.exec(
        bytes.toString('latin1', Math.max(at, newline - 32), newline),
      )
      if (size) {
        const end = newline + 1 + Number(size[1])
        sent = this.#message(bytes.subarray(at, end))
        at = end
      } else {
        sent = this.#message(bytes.subarray(at, newline))
        at = newline + 1
      }
    }
    return sent
  }

  sendWithAttachment(message: object, bytes: Uint8Array): boolean {
    return this.#message(circuitFrame({ ...message, _attachment: bytes }))
  }

  // Every message may carry an attachment here: it is delimited by the segments.
  enableAttachments(): void {}

  drained(signal?: AbortSignal): Promise<void> {
    return waitForDrain(this, { signal })
  }

  startHeartbeat(options: HeartbeatOptions): void {
    clearInterval(this.#heartbeat)
    const interval = options.interval ?? 5_000
    const timeout = options.timeout ?? 15_000
    this.#heartbeat = setInterval(
      () => {
        const now = Date.now()
        if (now - this.#lastHeard >= timeout) {
          // After a stall of this process, what the peer sent meanwhile may
          // still wait to be read: it is read before the link is judged.
          setImmediate(() => {
            if (Date.now() - this.#lastHeard >= timeout)
              this.close(
                'heartbeat timeout',
                new PeerTimeoutError(`nothing heard from bridge ${this.peer} in ${timeout} ms`),
              )
          })
        } else if (now - this.#lastHeard >= interval && now - this.#lastPing >= interval) {
          this.#lastPing = now
          options.ping()
        }
      },
      Math.max(10, Math.min(interval, timeout) / 4),
    )
  }

  /** Closes the link and tells the other bridge; idempotent. */
  close(reason = 'closed', error?: Error): Promise<CloseInfo> {
    if (!this.#info)
      this.#carrier.publish(this.peer, {
        epoch: this.epoch,
        ack: this.#expected - 1,
        reset: reason,
      })
    return this.finish(reason, error)
  }

  /** @internal Closes without telling the other bridge. */
  finish(reason: string, error?: Error): Promise<CloseInfo> {
    if (this.#info) return this.closed
    this.#info = error ? { reason, error } : { reason }
    clearInterval(this.#heartbeat)
    clearTimeout(this.#retransmitTimer)
    clearTimeout(this.#ackTimer)
    this.#unacked.length = 0
    this.#waiting.length = 0
    this.#inFlight = 0
    this.#waitingBytes = 0
    this.#parts = []
    this.emit('close', this.#info)
    this.#resolve(this.#info)
    return this.closed
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /**
   * @internal Sends every unacknowledged segment again: after a NATS
   * reconnect, or when the other end announces itself while nothing has
   * been acknowledged for `stalledFor` ms.
   */
  retransmit(stalledFor = 0): void {
    if (this.#info || this.#unacked.length === 0) return
    if (Date.now() - this.#progress < stalledFor) return
    for (const segment of this.#unacked) this.#publish(segment)
    this.retransmitted += this.#unacked.length
    this.#armRetransmit(true)
  }

  /** @internal One segment from the other bridge, with this link's epoch. */
  segment(header: SegmentHeader, body: Buffer | undefined): void {
    if (this.#info) return
    this.#lastHeard = Date.now()
    if (header.reset !== undefined) {
      this.finish(`closed by bridge ${this.peer}: ${header.reset}`)
      return
    }
    this.#acknowledged(header.ack)
    if (header.seq === undefined) return
    if (header.seq !== this.#expected) {
      // A duplicate, or one after a gap (go back N): the acknowledgement
      // tells the other end where this end stands.
      this.#scheduleAck(true)
      return
    }
    this.#expected++
    this.#unackedIn += body?.length ?? 0
    this.#scheduleAck()
    if (body && body.length > 0) {
      this.#bytesReceived += body.length
      this.#partBytes += body.length
      if (this.#partBytes > this.#maxMessage) {
        this.close(
          'message too large',
          new ProtocolError(
            ErrorCode.InvalidMessage,
            `a link message over NATS exceeded ${this.#maxMessage} bytes`,
          ),
        )
        return
      }
      this.#parts.push(body)
    }
    if (header.more) return
    const whole = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts)
    this.#parts = []
    this.#partBytes = 0
    const message = readCircuitFrame(whole)
    if (message instanceof ProtocolError) this.emit('invalid', message)
    else this.emit('message', message)
  }

  #message(record: string | Buffer): boolean {
    if (this.#info) return false
    const bytes = typeof record === 'string' ? Buffer.from(record) : record
    const size = this.#carrier.segmentSize
    if (bytes.length <= size) this.#queue(false, bytes)
    else
      for (let at = 0; at < bytes.length; at += size)
        this.#queue(at + size < bytes.length, bytes.subarray(at, at + size))
    if (this.#waitingBytes > this.#maxQueued) {
      this.close(
        'slow consumer',
        new SlowConsumerError(
          `more than ${this.#maxQueued} bytes waiting for bridge ${this.peer} to acknowledge`,
        ),
      )
      return false
    }
    this.#pump()
    return true
  }

  #queue(more: boolean, body: Buffer): void {
    this.#waiting.push({ more, body })
    this.#waitingBytes += body.length
  }

  #pump(): void {
    while (this.#waiting.length > 0 && this.#inFlight < this.#window) {
      const next = this.#waiting.shift()!
      this.#waitingBytes -= next.body.length
      if (this.#unacked.length === 0) this.#progress = Date.now()
      const segment: Unacked = { seq: this.#nextSeq++, more: next.more, body: next.body }
      this.#unacked.push(segment)
      this.#inFlight += segment.body.length
      this.#bytesSent += segment.body.length
      this.#publish(segment)
    }
    if (this.needsDrain) this.#wasBehind = true
    if (this.#unacked.length > 0 && !this.#retransmitTimer) this.#armRetransmit()
  }

  #publish(segment: Unacked): void {
    this.#ackDue = false
    this.#unackedIn = 0
    const header: SegmentHeader = { epoch: this.epoch, seq: segment.seq, ack: this.#expected - 1 }
    if (segment.more) header.more = true
    this.#carrier.publish(this.peer, header, segment.body)
  }

  #acknowledged(ack: number): void {
    if (ack <= this.#acked || ack >= this.#nextSeq) return
    this.#acked = ack
    this.#progress = Date.now()
    while (this.#unacked.length > 0 && this.#unacked[0]!.seq <= ack) {
      this.#inFlight -= this.#unacked.shift()!.body.length
    }
    this.#armRetransmit()
    this.#pump()
    if (this.#wasBehind && !this.needsDrain) {
      this.#wasBehind = false
      this.emit('drain')
    }
  }

  // Each time in a row that the timer fires without an acknowledgement it
  // waits twice as long (up to 16 times), so that a peer that is only busy
  // is not buried in copies; a reconnect or the peer's presence sends again
  // at once whatever the timer says.
  #armRetransmit(again = false): void {
    clearTimeout(this.#retransmitTimer)
    this.#retransmitTimer = undefined
    this.#backoff = again ? Math.min(this.#backoff * 2, 16) : 1
    if (this.#unacked.length === 0 || this.#info) return
    this.#retransmitTimer = setTimeout(() => {
      this.#retransmitTimer = undefined
      this.retransmit()
    }, this.#rto * this.#backoff)
  }

  // A segment sent back carries the acknowledgement; a pure one waits up
  // to `ackDelay` for such a segment, unless a quarter of the window has
  // arrived unacknowledged, or a duplicate or gap says the other end is
  // sending again.
  #scheduleAck(now = false): void {
    this.#ackDue = true
    if (now || this.#unackedIn >= this.#window / 4) {
      if (this.#ackScheduled === 'soon') return
      clearTimeout(this.#ackTimer)
      this.#ackScheduled = 'soon'
      setImmediate(() => this.#sendAck())
      return
    }
    if (this.#ackScheduled) return
    this.#ackScheduled = 'later'
    this.#ackTimer = setTimeout(() => this.#sendAck(), this.#ackDelay)
  }

  #sendAck(): void {
    this.#ackScheduled = false
    clearTimeout(this.#ackTimer)
    if (!this.#ackDue || this.#info) return
    this.#ackDue = false
    this.#unackedIn = 0
    this.#carrier.publish(this.peer, { epoch: this.epoch, ack: this.#expected - 1 })
  }
}
