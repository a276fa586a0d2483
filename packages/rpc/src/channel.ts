import { EventEmitter } from 'node:events'
import { ClosedError } from '@autobus/protocol'

/** Why a channel closed. */
export interface ChannelCloseInfo {
  reason: string
  /** True if the other end closed it (or died), false if this end did. */
  byPeer: boolean
}

/** Events of a {@link Channel}. */
export type ChannelEvents = {
  /** A message from the other end. */
  message: [message: unknown]
  /** The channel closed; emitted exactly once. */
  close: [info: ChannelCloseInfo]
}

/** The two things a channel needs from its connection. @internal */
export interface ChannelLink {
  sendMessage(channel: number, message: unknown): boolean
  sendClose(channel: number, reason: string): void
}

/**
 * A named two-way session of JSON messages between a client and a service.
 * Either end may send at any time; both ends are told when the other closes
 * or its connection dies. Incoming messages arrive as `message` events and
 * through async iteration (which ends when the channel closes).
 *
 * @example
 * ```ts
 * const channel = await connection.openChannel('chat')
 * channel.send({ text: 'hello' })
 * for await (const message of channel) console.log(message)
 * ```
 */
export class Channel extends EventEmitter<ChannelEvents> implements AsyncIterable<unknown> {
  /** The channel's name on the service. */
  readonly name: string
  /** The channel's number on its connection. @internal */
  readonly id: number
  /** Resolves once the channel has closed. */
  readonly closed: Promise<ChannelCloseInfo>
  #link: ChannelLink
  #closeInfo: ChannelCloseInfo | undefined
  #resolveClosed!: (info: ChannelCloseInfo) => void

  /** @internal */
  constructor(link: ChannelLink, id: number, name: string) {
    super()
    this.#link = link
    this.id = id
    this.name = name
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
  }

  /** True once closed by either end. */
  get isClosed(): boolean {
    return this.#closeInfo !== undefined
  }

  /** Sends one JSON message to the other end. Throws `ClosedError` once closed. */
  send(message: unknown): void {
    if (this.#closeInfo)
      throw new ClosedError(`channel "${this.name}" is closed: ${this.#closeInfo.reason}`)
    if (message === undefined) message = null
    if (!this.#link.sendMessage(this.id, message)) {
      throw new ClosedError(`channel "${this.name}" is closed: connection closed`)
    }
  }

  /** Closes the channel; the other end is told. Idempotent. */
  close(reason = 'closed'): void {
    if (this.#closeInfo) return
    this.#link.sendClose(this.id, reason)
    this.finish(reason, false)
  }

  /** @internal Delivers a message from the other end. */
  deliver(message: unknown): void {
    if (!this.#closeInfo) this.emit('message', message)
  }

  /** @internal Marks the channel closed without telling the other end. */
  finish(reason: string, byPeer: boolean): void {
    if (this.#closeInfo) return
    const info = { reason, byPeer }
    this.#closeInfo = info
    this.#resolveClosed(info)
    this.emit('close', info)
  }

  async *[Symbol.asyncIterator](): AsyncIterator<unknown> {
    const queue: unknown[] = []
    let wake: (() => void) | undefined
    const onMessage = (message: unknown) => {
      queue.push(message)
      wake?.()
    }
    const onClose = () => wake?.()
    this.on('message', onMessage)
    this.on('close', onClose)
    try {
      while (true) {
        if (queue.length > 0) {
          yield queue.shift()
          continue
        }
        if (this.#closeInfo) return
        await new Promise<void>((resolve) => {
          wake = resolve
        })
        wake = undefined
      }
    } finally {
      this.off('message', onMessage)
      this.off('close', onClose)
    }
  }

  [Symbol.dispose](): void {
    this.close()
  }
}
