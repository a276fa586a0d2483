import { EventEmitter } from 'node:events'
import {
  type Closable,
  ClosedError,
  type CloseInfo,
  InvalidArgumentsError,
} from '@autobus/protocol'
import type { TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import type { FlowCounter } from './metrics.js'

/** Why a channel closed. */
export interface ChannelCloseInfo extends CloseInfo {
  /** True if the other end closed it (or died), false if this end did. */
  byPeer: boolean
}

/** Events of a {@link Channel} whose incoming messages are of type `Receive`. */
export type ChannelEvents<Receive = unknown> = {
  /** A message from the other end (checked against its schema when there is one). */
  message: [message: Receive]
  /** The channel closed; emitted exactly once. */
  close: [info: ChannelCloseInfo]
}

/**
 * Default for how many messages a channel keeps while nothing reads it
 * (before the first `message` listener or iterator, or between two).
 */
export const DEFAULT_MAX_UNREAD_MESSAGES = 1_024

/**
 * Checks one incoming message against its schema: undefined when it
 * matches, else what is wrong. @internal
 */
export type MessageCheck = (message: unknown) => string | undefined

const checks = new WeakMap<TSchema, MessageCheck>()

/**
 * The check of a channel's incoming messages against `schema` (none without
 * one), compiled once per schema. @internal
 */
export function messageCheck(schema: TSchema | undefined): MessageCheck | undefined {
  if (schema === undefined) return undefined
  let check = checks.get(schema)
  if (!check) {
    const validator = Compile(schema)
    check = (message) => {
      if (validator.Check(message)) return undefined
      const error = validator.Errors(message)[0]
      const detail = error ? `${error.instancePath || ''} ${error.message}`.trim() : 'invalid'
      return `does not match the channel schema: ${detail}`
    }
    checks.set(schema, check)
  }
  return check
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
 * Typed by a contract, `Send` is what this end sends and `Receive` what it
 * gets: a client's channel sends the contract's `message` and receives its
 * `reply`, the service's the other way round. A message that arrives and
 * does not match its schema closes the channel (both ends are told, with a
 * reason starting "invalid message") and `closed` carries an
 * `InvalidArgumentsError`: it never reaches a listener.
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
export class Channel<Send = unknown, Receive = unknown>
  extends EventEmitter<ChannelEvents<Receive>>
  implements AsyncIterable<Receive>, Closable
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
  #check: MessageCheck | undefined

  /** @internal Counts this channel's messages (service side). */
  meter: FlowCounter | undefined

  /** @internal */
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

  /** @internal Sets the check of incoming messages (their schema's). */
  setCheck(check: MessageCheck | undefined): void {
    this.#check = check
  }

  /**
   * @internal What is wrong with an incoming message, or undefined if it
   * may be delivered.
   */
  checkMessage(message: unknown): string | undefined {
    return this.#check?.(message)
  }

  /**
   * @internal Closes the channel for an incoming message that does not
   * match its schema; the other end is told, and `closed` carries the error.
   */
  refuse(problem: string): void {
    if (this.#closeInfo) return
    const reason = `invalid message: ${problem}`
    this.#link.sendClose(this.id, reason)
    this.finish(reason, false, new InvalidArgumentsError(`channel "${this.name}": ${reason}`))
  }

  #flush(): void {
    this.#flushing = false
    while (this.#unread.length > 0 && this.listenerCount('message') > 0) {
      ;(this as EventEmitter).emit('message', this.#unread.shift())
    }
  }

  /** True once closed by either end. */
  get isClosed(): boolean {
    return this.#closeInfo !== undefined
  }

  /** Sends one JSON message to the other end. Throws `ClosedError` once closed. */
  send(message: Send): void {
    if (this.#closeInfo)
      throw new ClosedError(`channel "${this.name}" is closed: ${this.#closeInfo.reason}`)
    if (this.meter) this.meter.messagesOut++
    if (!this.#link.sendMessage(this.id, message === undefined ? null : message)) {
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
    ;(this as EventEmitter).emit('message', message)
  }

  /** @internal Marks the channel closed without telling the other end. */
  finish(reason: string, byPeer: boolean, error?: Error): void {
    if (this.#closeInfo) return
    const info: ChannelCloseInfo = error ? { reason, byPeer, error } : { reason, byPeer }
    this.#closeInfo = info
    this.#resolveClosed(info)
    this.emit('close', info)
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Receive> {
    // Take what arrived unread first, so a channel closed right after its
    // greeting still yields the greeting.
    const queue: unknown[] = this.#unread.splice(0)
    let wake: (() => void) | undefined
    const onMessage = (message: unknown) => {
      queue.push(message)
      wake?.()
    }
    const onClose = () => wake?.()
    const self = this as EventEmitter
    self.on('message', onMessage)
    this.on('close', onClose)
    try {
      while (true) {
        if (queue.length > 0) {
          yield queue.shift() as Receive
          continue
        }
        if (this.#closeInfo) return
        await new Promise<void>((resolve) => {
          wake = resolve
        })
        wake = undefined
      }
    } finally {
      self.off('message', onMessage)
      this.off('close', onClose)
    }
  }

  [Symbol.dispose](): void {
    this.close()
  }
}
