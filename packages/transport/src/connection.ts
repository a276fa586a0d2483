import { isAscii } from 'node:buffer'
import { EventEmitter } from 'node:events'
import {
  activeLogger,
  type Clock,
  type Closable,
  type CloseInfo,
  decodeFrame,
  ErrorCode,
  encodeFrame,
  Limits,
  type Logger,
  PeerTimeoutError,
  type ProtocolError,
  type SessionMessage,
  SlowConsumerError,
  systemClock,
  tooDeepError,
} from '@autobus/protocol'

export type { CloseInfo }

/** Options shared by every framed connection. */
export interface ConnectionOptions {
  /** Largest frame accepted, in bytes (default 4 MiB). */
  maxFrame?: number
  /** Deepest nesting accepted in a message (default 64). */
  maxDepth?: number
  /** Bytes queued for a peer that does not read before it is dropped (default 8 MiB). */
  maxQueuedBytes?: number
  /**
   * How fast refused frames (too deep, not JSON, not a message) are read
   * from one peer, in bytes per second, after a first 4 MiB (default
   * 16 MiB/s). Beyond it the connection stops reading for a while, so one
   * peer sending junk cannot take the process's CPU from the others.
   */
  refusedBytesPerSecond?: number
  /**
   * While more than this many bytes wait for the peer to take them, read
   * nothing more from it, so that a peer pipelining requests faster than it
   * reads the answers cannot make this end queue them (default: always
   * read; a listener's connections default to 1 MiB). Only the serving end
   * of a connection should set it: if both ends stopped reading while
   * waiting for the other, neither would ever go on.
   */
  readWatermark?: number
  /** Where invalid frames and closes are reported (default: nowhere). */
  logger?: Logger
  /** Time for heartbeats (default the system clock); a fake one in tests. */
  clock?: Clock
}

/** Heartbeat settings; see {@link MessageConnection.startHeartbeat}. */
export interface HeartbeatOptions {
  /** Idle time after which `ping` is called (default 5 s). */
  interval?: number
  /** Silence after which the connection is closed as dead (default 15 s). */
  timeout?: number
  /** Sends one heartbeat to the peer. */
  ping: () => void
}

/** Events of a {@link MessageConnection}. */
export type MessageConnectionEvents = {
  /** A valid message arrived. */
  message: [message: SessionMessage]
  /** A frame arrived that is not a valid message; the connection stays open. */
  invalid: [error: ProtocolError]
  /** Everything queued has been handed to the socket. */
  drain: []
  /** The connection closed; emitted exactly once. */
  close: [info: CloseInfo]
}

/**
 * A connection that carries protocol messages, one JSON object per line.
 * Implemented over TCP, Unix sockets and in memory.
 */
export interface MessageConnection extends EventEmitter<MessageConnectionEvents>, Closable {
  /** Address of the peer (IP address, socket path or "memory"). */
  readonly remoteAddress: string
  /** Port of the peer, 0 where there is none. */
  readonly remotePort: number
  /**
   * On a keyed (TLS) connection, the id of the bus key the peer proved it
   * holds in the handshake: its identity for access rules.
   */
  readonly peerKeyId?: string
  /** On a connection with certificates (mutual TLS), the subject CN of the peer's certificate. */
  readonly peerSubject?: string
  /** True once the connection has closed. */
  readonly isClosed: boolean
  /** True while the peer is behind: producers should wait for `drain`. */
  readonly needsDrain: boolean
  /** Bytes received since the connection opened. */
  readonly bytesReceived: number
  /** Bytes handed to the medium since the connection opened. */
  readonly bytesSent: number
  /** Bytes handed to the medium and not yet taken by the peer. */
  readonly bytesQueued: number
  /** Resolves with the close reason once the connection has closed; never rejects. */
  readonly closed: Promise<CloseInfo>
  /** Queues one message. Returns false if the connection is closed. */
  send(message: object): boolean
  /**
   * Queues a message already encoded as one frame (JSON and a newline), so
   * a message sent to many peers is encoded once.
   */
  sendEncoded(frame: string): boolean
  /**
   * Queues a message followed by raw bytes (its attachment; docs/protocol.md
   * §3.12). Only for peers that negotiated attachments.
   */
  sendWithAttachment(message: object, bytes: Uint8Array): boolean
  /**
   * Reads attachments from now on: a frame with a numeric `_size` is
   * followed by that many raw bytes, handed over as `_attachment`.
   */
  enableAttachments(): void
  /**
   * From now on, hands each frame without an attachment to `handler` as its
   * text (without the newline), undecoded and unchecked, instead of emitting
   * it: for a relay that passes frames on to a peer that checks them. A
   * frame whose text mentions `"_size"` is still decoded and emitted as a
   * message (with its attachment, if attachments are enabled). `undefined`
   * goes back to emitting every frame.
   */
  readRaw?(handler: ((frame: string) => void) | undefined): void
  /**
   * Stops reading the peer's bytes until {@link resumeReading}: they wait
   * in the kernel, and TCP slows the peer down. For a relay whose onward
   * path is behind; idempotent.
   */
  pauseReading?(): void
  /** Reads the peer's bytes again after {@link pauseReading}; idempotent. */
  resumeReading?(): void
  /** Resolves when the peer has caught up (at once if it has). */
  drained(signal?: AbortSignal): Promise<void>
  /** Starts application heartbeats on this connection. */
  startHeartbeat(options: HeartbeatOptions): void
  /**
   * Closes the connection; idempotent. What was queued still goes out
   * (except to a peer dropped for not reading). `error` is the typed cause
   * handed on in {@link CloseInfo.error}. Resolves with {@link closed}.
   */
  close(reason?: string, error?: Error): Promise<CloseInfo>
}

/**
 * Resolves when `connection` has caught up: at once if it is not behind or
 * has closed, else at its next `drain` or `close`; rejects with the
 * signal's reason if `signal` aborts first. What a
 * {@link MessageConnection.drained} of one's own needs, given `needsDrain`,
 * `isClosed` and the two events.
 *
 * @example
 * ```ts
 * class MyConnection extends EventEmitter<MessageConnectionEvents> implements MessageConnection {
 *   // …
 *   drained(signal?: AbortSignal): Promise<void> {
 *     return waitForDrain(this, { signal })
 *   }
 * }
 * ```
 */
export function waitForDrain(
  connection: EventEmitter<MessageConnectionEvents> &
    Pick<MessageConnection, 'needsDrain' | 'isClosed'>,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<void> {
  const { signal } = options
  if (!connection.needsDrain || connection.isClosed) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const done = () => {
      connection.off('drain', done)
      connection.off('close', done)
      signal?.removeEventListener('abort', abort)
      resolve()
    }
    const abort = () => {
      connection.off('drain', done)
      connection.off('close', done)
      reject(signal!.reason)
    }
    if (signal?.aborted) return abort()
    connection.once('drain', done)
    connection.once('close', done)
    signal?.addEventListener('abort', abort, { once: true })
  })
}

const NEWLINE = 0x0a
/** Refused bytes read at full speed before {@link ConnectionOptions.refusedBytesPerSecond} applies. */
const REFUSED_BURST = 4 * 1024 * 1024
const REFUSED_BYTES_PER_SECOND = 16 * 1024 * 1024

/** True for a line of nothing but spaces, tabs and carriage returns: skipped, like an empty one. */
function isBlank(line: Buffer | string): boolean {
  if (typeof line === 'string') {
    for (let i = 0; i < line.length; i++) {
      const code = line.charCodeAt(i)
      if (code !== 0x20 && code !== 0x09 && code !== 0x0d) return false
    }
    return true
  }
  for (const byte of line) if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0d) return false
  return true
}

/**
 * Shared framing, queueing and heartbeat logic. Subclasses move the bytes.
 * @internal
 */
export abstract class FramedConnection
  extends EventEmitter<MessageConnectionEvents>
  implements MessageConnection
{
  abstract readonly remoteAddress: string
  abstract readonly remotePort: number
  readonly closed: Promise<CloseInfo>
  protected readonly maxFrame: number
  protected readonly maxDepth: number
  protected readonly maxQueuedBytes: number
  #closeInfo: CloseInfo | undefined
  #resolveClosed!: (info: CloseInfo) => void
  #partial: Buffer[] = []
  #partialLength = 0
  // A long line already refused from its first bytes: the rest is counted
  // (the frame limit still applies) but neither kept nor read.
  #refused: ProtocolError | undefined
  // Frames queued this turn: text joined as it comes; with attachments,
  // the pieces in order.
  #outboxText = ''
  #outboxParts: Array<string | Uint8Array> | undefined
  #attachments = false
  #raw: ((frame: string) => void) | undefined
  #pending: (SessionMessage & { _attachment?: Buffer }) | undefined
  #pendingParts: Buffer[] = []
  #pendingRemaining = 0
  #flushScheduled = false
  // Refused bytes a peer may still send before reading pauses (a token
  // bucket: REFUSED_BURST at most, refilled at refusedBytesPerSecond).
  readonly #refusedRate: number
  #refusedBudget = REFUSED_BURST
  #refusedBudgetAt = 0
  #readPause: NodeJS.Timeout | undefined
  readonly #readWatermark: number
  // Not reading until the peer has taken what is queued for it.
  #awaitingDrain = false
  readonly #clock: Clock
  #lastReceived: number
  #heartbeatTimer: unknown

  constructor(options: ConnectionOptions = {}) {
    super()
    this.maxFrame = options.maxFrame ?? Limits.maxFrame
    this.maxDepth = options.maxDepth ?? Limits.maxDepth
    this.maxQueuedBytes = options.maxQueuedBytes ?? Limits.maxQueuedBytes
    this.#refusedRate = options.refusedBytesPerSecond ?? REFUSED_BYTES_PER_SECOND
    this.#readWatermark = options.readWatermark ?? Number.POSITIVE_INFINITY
    this.#clock = options.clock ?? systemClock
    this.#lastReceived = this.#clock.now()
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    // Listeners only when someone listens to the log, so a silent
    // connection pays nothing per frame.
    const log = activeLogger(options.logger)
    if (log) {
      const peer = () => `${this.remoteAddress}${this.remotePort ? `:${this.remotePort}` : ''}`
      this.on('invalid', (error) =>
        log.warn(`autobus:transport invalid frame from ${peer()}: ${error.code}: ${error.message}`),
      )
      this.once('close', ({ reason, error }) => {
        if (error) log.info(`autobus:transport connection with ${peer()} closed: ${reason}`, error)
        else log.debug(`autobus:transport connection with ${peer()} closed: ${reason}`)
      })
    }
  }

  get isClosed(): boolean {
    return this.#closeInfo !== undefined
  }

  abstract get needsDrain(): boolean

  /** Bytes handed to the medium but not yet taken by the peer. */
  protected abstract get queuedBytes(): number
  /** Hands text or bytes to the medium. */
  protected abstract write(data: string | Uint8Array): void
  /** Stops taking bytes from the peer (they wait in the kernel), or starts again. */
  protected setReading(_reading: boolean): void {}

  abstract get bytesSent(): number
  #bytesReceived = 0

  get bytesReceived(): number {
    return this.#bytesReceived
  }

  get bytesQueued(): number {
    return this.queuedBytes
  }
  /** Tears the medium down; `graceful` lets queued bytes go out first. */
  protected abstract destroy(graceful: boolean): void

  send(message: object): boolean {
    return this.sendEncoded(encodeFrame(message))
  }

  sendWithAttachment(message: object, bytes: Uint8Array): boolean {
    if (this.#closeInfo) return false
    const header = encodeFrame({ ...message, _size: bytes.byteLength })
    if (!this.#flushScheduled) {
      this.#startTurn()
      this.write(header)
      this.write(bytes)
      this.#checkQueue()
      return true
    }
    this.#outboxParts ??= []
    const parts = this.#outboxParts
    if (this.#outboxText) parts.push(this.#outboxText)
    this.#outboxText = ''
    parts.push(header, bytes)
    return true
  }

  enableAttachments(): void {
    this.#attachments = true
  }

  readRaw(handler: ((frame: string) => void) | undefined): void {
    this.#raw = handler
  }

  #writeOutbox(): void {
    const parts = this.#outboxParts
    const text = this.#outboxText
    this.#outboxText = ''
    if (!parts) {
      if (text) this.write(text)
      return
    }
    this.#outboxParts = undefined
    if (text) parts.push(text)
    for (const part of parts) this.write(part)
  }

  // The first frame of a turn of the event loop is written at once (one
  // message waits for nothing); frames sent later in the same turn are
  // joined and written together when the turn ends (pipelined messages cost
  // one write, not one each).
  sendEncoded(frame: string): boolean {
    if (this.#closeInfo) return false
    if (this.#flushScheduled) {
      this.#outboxText += frame
      return true
    }
    this.#startTurn()
    this.write(frame)
    this.#checkQueue()
    return true
  }

  #startTurn(): void {
    this.#flushScheduled = true
    queueMicrotask(this.#flush)
  }

  #flush = (): void => {
    this.#flushScheduled = false
    if (this.#closeInfo || (this.#outboxText === '' && !this.#outboxParts)) return
    this.#writeOutbox()
    this.#checkQueue()
  }

  #checkQueue(): void {
    const queued = this.queuedBytes
    if (queued > this.#readWatermark && !this.#awaitingDrain && queued <= this.maxQueuedBytes) {
      this.#awaitingDrain = true
      this.setReading(false)
      this.once('drain', this.#drainedForReading)
    }
    if (queued > this.maxQueuedBytes) {
      this.close(
        'slow consumer',
        new SlowConsumerError(`peer is not reading; over ${this.maxQueuedBytes} bytes queued`),
      )
    }
  }

  #drainedForReading = (): void => {
    this.#awaitingDrain = false
    if (!this.#readPause && !this.#paused && !this.#closeInfo) this.setReading(true)
  }

  #paused = false

  pauseReading(): void {
    if (this.#paused || this.#closeInfo) return
    this.#paused = true
    this.setReading(false)
  }

  resumeReading(): void {
    if (!this.#paused) return
    this.#paused = false
    if (!this.#readPause && !this.#awaitingDrain && !this.#closeInfo) this.setReading(true)
  }

  drained(signal?: AbortSignal): Promise<void> {
    return waitForDrain(this, { signal })
  }

  /**
   * Feeds received text that holds whole frames only (each with its
   * newline), as a peer in the same process wrote it: each line is read
   * as {@link receive} would read it, without the round trip through bytes.
   * Text after a frame that announces an attachment goes to {@link receive}.
   */
  protected receiveText(text: string): void {
    if (this.#pending || this.#partialLength > 0) {
      this.receive(Buffer.from(text))
      return
    }
    this.#lastReceived = this.#clock.now()
    this.#bytesReceived += Buffer.byteLength(text)
    let start = 0
    while (start < text.length && !this.#closeInfo) {
      const end = this.#pending ? -1 : text.indexOf('\n', start)
      if (end === -1 || end - start > this.maxFrame) {
        // An attachment, or not whole frames: read as bytes, limits and all.
        const rest = Buffer.from(text.slice(start))
        this.#bytesReceived -= rest.byteLength
        this.receive(rest)
        return
      }
      this.receiveLine(text.slice(start, end))
      start = end + 1
    }
  }

  /** Feeds received bytes; splits them into frames and decodes each. */
  protected receive(chunk: Buffer): void {
    this.#lastReceived = this.#clock.now()
    this.#bytesReceived += chunk.byteLength
    let start = 0
    // Frames are nearly always ASCII: then the chunk is made text once and
    // each whole line is a slice of it (byte and character offsets agree),
    // rather than one UTF-8 decode per frame. Parsed values are copies, so
    // no message keeps the chunk's text alive.
    let text: string | undefined
    while (!this.#closeInfo) {
      if (this.#pending) {
        start = this.#takeAttachment(chunk, start)
        if (this.#pending) return
        continue
      }
      const end = chunk.indexOf(NEWLINE, start)
      if (end === -1) {
        if (start < chunk.length) {
          const piece = start === 0 ? chunk : chunk.subarray(start)
          if (this.#partialLength === 0) this.#refused = tooDeepError(piece, this.maxDepth)
          if (!this.#refused) this.#partial.push(piece)
          this.#partialLength += piece.length
          // A line that never ends is cut off as soon as it is too long.
          if (this.#partialLength > this.maxFrame) this.#frameTooLarge()
        }
        return
      }
      const refused = this.#refused
      if (refused) {
        if (this.#partialLength + end - start > this.maxFrame) {
          this.#frameTooLarge()
          return
        }
        const length = this.#partialLength + end - start
        this.#refused = undefined
        this.#partialLength = 0
        start = end + 1
        this.emit('invalid', refused)
        this.#chargeRefused(length)
        continue
      }
      let line: Buffer | string
      if (this.#partialLength > 0) {
        if (this.#partialLength + end - start > this.maxFrame) {
          this.#frameTooLarge()
          return
        }
        this.#partial.push(chunk.subarray(start, end))
        line = Buffer.concat(this.#partial)
        this.#partial = []
        this.#partialLength = 0
      } else {
        if (end - start > this.maxFrame) {
          this.#frameTooLarge()
          return
        }
        text ??= isAscii(chunk) ? chunk.toString('latin1') : ''
        line = text === '' ? chunk.subarray(start, end) : text.slice(start, end)
      }
      start = end + 1
      this.receiveLine(line)
    }
  }

  /**
   * Decodes one line and emits it (after its attachment, if it has one).
   * A line that arrived in pieces goes to the decoder as bytes, so that a
   * long frame refused for its depth never becomes a string.
   */
  protected receiveLine(line: Buffer | string): void {
    if (isBlank(line)) return
    if (this.#raw) {
      const text = typeof line === 'string' ? line : line.toString('utf8')
      if (!text.includes('"_size"')) {
        this.#raw(text)
        return
      }
    }
    const message = decodeFrame(line, this.maxDepth)
    if (message instanceof Error) {
      this.emit('invalid', message)
      this.#chargeRefused(line.length)
      return
    }
    const size = (message as { _size?: unknown })._size
    if (this.#attachments && typeof size === 'number') {
      if (!Number.isInteger(size) || size < 0 || size > this.maxFrame) {
        this.#frameTooLarge()
        return
      }
      this.#pending = message
      this.#pendingRemaining = size
      if (size === 0) this.#finishAttachment()
      return
    }
    this.emit('message', message)
  }

  #takeAttachment(chunk: Buffer, start: number): number {
    const take = Math.min(this.#pendingRemaining, chunk.length - start)
    if (take > 0) this.#pendingParts.push(chunk.subarray(start, start + take))
    this.#pendingRemaining -= take
    if (this.#pendingRemaining === 0) this.#finishAttachment()
    return start + take
  }

  #finishAttachment(): void {
    const message = this.#pending!
    const parts = this.#pendingParts
    message._attachment = parts.length === 1 ? parts[0]! : Buffer.concat(parts)
    this.#pending = undefined
    this.#pendingParts = []
    this.emit('message', message)
  }

  // Reading and dropping junk is cheap per byte but not free: a peer
  // pushing refused frames as fast as loopback goes would keep a core busy
  // and, on a small machine, delay every other connection's calls. Past its
  // budget, the peer's bytes wait in the kernel (and TCP slows it down)
  // until the budget has refilled.
  #chargeRefused(bytes: number): void {
    const now = Date.now()
    const refill = ((now - this.#refusedBudgetAt) / 1000) * this.#refusedRate
    this.#refusedBudget = Math.min(REFUSED_BURST, this.#refusedBudget + refill) - bytes
    this.#refusedBudgetAt = now
    if (this.#refusedBudget >= 0 || this.#readPause || this.#closeInfo) return
    const wait = Math.ceil((-this.#refusedBudget / this.#refusedRate) * 1000)
    this.setReading(false)
    this.#readPause = setTimeout(() => {
      this.#readPause = undefined
      if (!this.#awaitingDrain && !this.#paused && !this.#closeInfo) this.setReading(true)
    }, wait)
  }

  #frameTooLarge(): void {
    this.close(
      'frame too large',
      new Error(`frame over the ${this.maxFrame}-byte limit (${ErrorCode.FrameTooLarge})`),
    )
  }

  startHeartbeat(options: HeartbeatOptions): void {
    if (this.#closeInfo || this.#heartbeatTimer !== undefined) return
    const interval = options.interval ?? Limits.heartbeatInterval
    const timeout = options.timeout ?? Limits.heartbeatTimeout
    const tick = Math.max(50, Math.min(interval, timeout) / 2)
    const clock = this.#clock
    this.#lastReceived = clock.now()
    const check = () => {
      const silent = clock.now() - this.#lastReceived
      if (silent >= timeout) {
        this.close(
          'peer timeout',
          new PeerTimeoutError(`nothing heard from the peer for ${silent} ms`),
        )
        return
      }
      if (silent >= interval) options.ping()
      if (!this.#closeInfo) this.#heartbeatTimer = clock.setTimeout(check, tick)
    }
    this.#heartbeatTimer = clock.setTimeout(check, tick)
  }

  close(reason = 'closed', error?: Error): Promise<CloseInfo> {
    if (this.#closeInfo) return this.closed
    const info: CloseInfo = error ? { reason, error } : { reason }
    this.#closeInfo = info
    if (this.#heartbeatTimer !== undefined) this.#clock.clearTimeout(this.#heartbeatTimer)
    if (this.#readPause) clearTimeout(this.#readPause)
    // What was sent before close() still goes out, except to a peer that
    // does not read: that is what got it dropped.
    const slow = error instanceof SlowConsumerError
    if (!slow) this.#writeOutbox()
    this.destroy(!slow && error === undefined)
    this.#resolveClosed(info)
    this.emit('close', info)
    return this.closed
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
