import { performance } from 'node:perf_hooks'
import { Duplex } from 'node:stream'
import { ClosedError, type CloseInfo, Limits } from '@autobus/protocol'
import type { FlowCounter } from './metrics.js'

/** What a byte stream needs from its connection. @internal */
export interface StreamLink {
  sendData(stream: number, data: Uint8Array): boolean
  sendAck(stream: number, bytes: number): void
  sendEnd(stream: number): void
  sendClose(stream: number, reason: string): void
  /** Resolves when the connection can take more. */
  drained(): Promise<void>
}

/** Largest piece of a stream sent in one `stream_data` message. */
const MAX_PIECE = 256 * 1024

/**
 * A byte stream between a client and a service: a Node `Duplex` whose
 * backpressure reaches across the network. Each end may have at most the
 * other end's window of bytes unacknowledged; the receiver acknowledges bytes
 * as its reader takes them, so a slow reader slows the writer down. When the
 * other end aborts or the connection dies the stream is destroyed with an
 * error (`ConnectionLostError` or `ClosedError`); an unheard error never
 * crashes the process.
 *
 * Its lifecycle is a Node stream's, which it is: `closed` is Node's boolean
 * and `finished()` from `node:stream/promises` waits for the end. `close()`
 * and `[Symbol.asyncDispose]` have the shape every other Autobus thing has.
 */
export class ByteStream extends Duplex {
  /** The stream's name on the service. */
  readonly name: string
  /** @internal */
  readonly id: number
  #link: StreamLink
  #credit: number
  #creditWaiter: (() => void) | undefined
  #unacked = 0
  #receiveWindow: number
  #finished = false
  #remoteEnded = false

  /** @internal Counts this stream's bytes and waits (service side). */
  meter: FlowCounter | undefined

  /** @internal */
  constructor(
    link: StreamLink,
    id: number,
    name: string,
    sendWindow: number,
    receiveWindow: number = Limits.streamWindow,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: receiveWindow })
    this.#link = link
    this.id = id
    this.name = name
    this.#credit = sendWindow
    this.#receiveWindow = receiveWindow
    // A dead peer must never crash the process through an unheard 'error':
    // the error stays visible as `errored` and to any listener added.
    this.on('error', () => {})
  }

  /**
   * Aborts the stream (the other end is told, with `reason`) unless it has
   * already ended; idempotent. Resolves once it is closed, with the error
   * that ended it if there was one.
   */
  close(reason = 'closed'): Promise<CloseInfo> {
    const done = new Promise<CloseInfo>((resolve) => {
      const settle = () => {
        const error = this.errored ?? undefined
        resolve(error ? { reason: error.message, error } : { reason })
      }
      if (this.closed) settle()
      else this.once('close', settle)
    })
    if (!this.destroyed) this.destroy(this.#finished ? undefined : new ClosedError(reason))
    return done
  }

  override async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    this.#send(chunk).then(() => callback(), callback)
  }

  async #send(chunk: Buffer): Promise<void> {
    for (let offset = 0; offset < chunk.length; ) {
      const waitFrom = this.#credit <= 0 && this.meter ? performance.now() : 0
      while (this.#credit <= 0) {
        if (this.#finished) throw new ClosedError(`stream "${this.name}" is closed`)
        await new Promise<void>((resolve) => {
          this.#creditWaiter = resolve
        })
      }
      if (waitFrom) this.meter!.blockedMs += performance.now() - waitFrom
      if (this.#finished) throw new ClosedError(`stream "${this.name}" is closed`)
      const size = Math.min(MAX_PIECE, this.#credit, chunk.length - offset)
      const piece = chunk.subarray(offset, offset + size)
      offset += size
      this.#credit -= size
      const meter = this.meter
      if (meter) meter.bytesOut += size
      if (!this.#link.sendData(this.id, piece)) {
        throw new ClosedError(`stream "${this.name}" is closed: connection closed`)
      }
      if (meter) {
        const drainFrom = performance.now()
        await this.#link.drained()
        meter.blockedMs += performance.now() - drainFrom
      } else await this.#link.drained()
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (!this.#finished) this.#link.sendEnd(this.id)
    callback()
  }

  override _read(): void {
    this.#ack()
  }

  // Acknowledgements are batched (an eighth of the window at a time) so that
  // a fast stream does not send one per piece; the sender never waits on a
  // batch, since a stalled sender means a whole window is unacknowledged.
  #ack(): void {
    if (this.#finished || this.#unacked === 0) return
    if (this.#unacked < this.#receiveWindow / 8) return
    this.#link.sendAck(this.id, this.#unacked)
    this.#unacked = 0
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#finished) {
      this.#finished = true
      // Both ends said stream_end: the stream is complete, nothing to abort.
      if (error || !(this.#remoteEnded && this.writableFinished)) {
        this.#link.sendClose(this.id, error ? error.message : 'closed')
      }
    }
    this.#creditWaiter?.()
    callback(error)
  }

  /**
   * @internal Bytes from the other end. Returns false, taking nothing, when
   * they go beyond the window granted: a protocol error.
   */
  deliver(bytes: Buffer): boolean {
    if (this.#finished || this.destroyed) return true
    if (this.#unacked + bytes.length > this.#receiveWindow) return false
    this.#unacked += bytes.length
    if (this.meter) this.meter.bytesIn += bytes.length
    // Acknowledge while the reader keeps up; otherwise _read will.
    if (this.push(bytes)) this.#ack()
    return true
  }

  /** @internal The other end granted more credit. */
  credit(bytes: number): void {
    this.#credit += bytes
    const waiter = this.#creditWaiter
    this.#creditWaiter = undefined
    waiter?.()
  }

  /** @internal The other end will send no more. */
  remoteEnd(): void {
    this.#remoteEnded = true
    if (!this.destroyed) this.push(null)
  }

  /** @internal The other end aborted, or the connection died. */
  abort(error: Error): void {
    if (this.#finished) return
    this.#finished = true
    this.#creditWaiter?.()
    this.destroy(error)
  }
}
