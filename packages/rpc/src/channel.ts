import { EventEmitter } from 'node:events'
import { type Closable, ClosedError, type CloseInfo } from '@autobus/protocol'
import type { FlowCounter } from './metrics.js'

/** Why a channel closed. */
export interface ChannelCloseInfo extends CloseInfo {
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

/**
 * Default for how many messages a channel keeps while nothing reads it
 * (before the first `message` listener or iterator, or between two).
 */
export const DEFAULT_MAX_UNREAD_MESSAGES = 1_024

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
 * Messages that arrive while nothing reads the channel — typically a
 * greeting the other end sends as soon as the channel opens, before
 * `openChannel` has even resolved — are kept, in order, and handed to the
 * first `message` listener or iterator that attaches. At most
 * `maxUnreadMessages` (default {@link DEFAULT_MAX_UNREAD_MESSAGES}) are kept:
 * one more closes the channel (both ends are told, with reason
 * "too many unread messages") rather than dropping messages silently.
 *
 * @example
 * ```ts
 * const channel = await connection.openChannel('chat')
 * channel.send({ text: 'hello' })
 * for await (const message of channel) console.log(message)
 * ```
 */
export class Channel
  extends EventEmitter<ChannelEvents>
  implements AsyncIterable<unknown>, Closable
{
  /** The channel's name on the service. */
  readonly name: string
  /** The channel's number on its connection. @internal */
  readonly id: number
  /** Resolves once the channel has closed, whichever end closed it; never rejects. */
  readonly closed: Promise<ChannelCloseInfo>
  #link: ChannelLink
  #closeInfo: ChannelCloseInfo | undefined
  #resolveClosed!: (info: ChannelCloseInfo) => void
  /** Messages that arrived while nothing read the channel, oldest first. */
  #unread: unknown[] = []
  #maxUnread = DEFAULT_MAX_UNREAD_MESSAGES
  #flushing = false

  /** @internal */
  /** @internal Counts this channel's messages (service side). */
  meter: FlowCounter | undefined

  constructor(link: ChannelLink, id: number, name: string) {
    super()
    this.#link = link
    this.id = id
    this.name = name
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    ;(this as EventEmitter).on('newListener', (event: string | symbol) => {
      // The listener is added after this event, so hand over on a later tick;
      // a listener attached right after `openChannel` resolves gets it all.
      if (event === 'message' && this.#unread.length > 0 && !this.#flushing) {
        this.#flushing = true
        process.nextTick(() => this.#flush())
      }
    })
  }

  /** How many messages arrived and were not read yet (see the class notes). */
  get unreadCount(): number {
    return this.#unread.length
  }

  /** @internal Sets how many unread messages are kept (see the class notes). */
  setMaxUnread(limit: number): void {
    if (!Number.isInteger(limit) || limit < 0)
      throw new TypeError('maxUnreadMessages must be a non-negative integer')
    this.#maxUnread = limit
  }

  #flush(): void {
    this.#flushing = false
    while (this.#unread.length > 0 && this.listenerCount('message') > 0) {
      this.emit('message', this.#unread.shift())
    }
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
    if (this.meter) this.meter.messagesOut++
    if (!this.#link.sendMessage(this.id, message)) {
      throw new ClosedError(`channel "${this.name}" is closed: connection closed`)
    }
  }

  /** Closes the channel; the other end is told. Idempotent; resolves with {@link closed}. */
  close(reason = 'closed'): Promise<ChannelCloseInfo> {
    if (!this.#closeInfo) {
      this.#link.sendClose(this.id, reason)
      this.finish(reason, false)
    }
    return this.closed
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** @internal Delivers a message from the other end. */
  deliver(message: unknown): void {
    if (this.#closeInfo) return
    if (this.meter) this.meter.messagesIn++
    // Behind earlier unread messages, or with no reader: keep it, in order.
    if (this.#unread.length > 0 || this.listenerCount('message') === 0) {
      if (this.#unread.length >= this.#maxUnread) {
        this.close('too many unread messages')
        return
      }
      this.#unread.push(message)
      return
    }
    this.emit('message', message)
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
    // Take what arrived unread first, so a channel closed right after its
    // greeting still yields the greeting.
    const queue: unknown[] = this.#unread.splice(0)
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
