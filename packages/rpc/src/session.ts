import {
  type AutobusError,
  activeLogger,
  BusyError,
  CallTimeoutError,
  type Clock,
  type Closable,
  ClosedError,
  type CommandName,
  ConnectionLostError,
  checkResponse,
  ErrorCode,
  errorFromWire,
  errorToWire,
  Limits,
  type Logger,
  type MessageId,
  MessageType,
  ProtocolError,
  type RequestBody,
  type RequestMessage,
  type ResponseBody,
  type ResponseMessage,
  type SessionMessage,
  systemClock,
} from '@autobus/protocol'
import type { CloseInfo, MessageConnection } from '@autobus/transport'
import { Channel, type ChannelLink } from './channel.js'
import { ByteStream, type StreamLink } from './stream.js'

/** Options every request may take. */
export interface RequestOptions {
  /** Give up after this many ms (default 30 s); the command may still run. */
  timeout?: number
  /** Cancel waiting; the command may still run. */
  signal?: AbortSignal
}

interface Pending {
  command: CommandName
  resolve: (body: any) => void
  reject: (error: Error) => void
  /** When to give up (ms since epoch), or Infinity. */
  deadline: number
  timeout: number
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
}

/**
 * What a handler gets besides its arguments: typed functions receive it as
 * the parameter after their declared arguments, every handler as `this`.
 *
 * @example
 * ```ts
 * service.addFunction('sleep', { args: [Type.Integer()] }, (ms, { signal }) =>
 *   new Promise((resolve, reject) => {
 *     const timer = setTimeout(() => resolve(ms), ms)
 *     signal.addEventListener('abort', () => {
 *       clearTimeout(timer)
 *       reject(signal.reason)
 *     })
 *   }),
 * )
 * ```
 */
export interface CallContext {
  /**
   * Aborted when the answer can no longer be delivered or is no longer
   * wanted: the caller's session closed, or the service is shutting down
   * (the caller is then answered with `closed` at once).
   */
  readonly signal: AbortSignal
  /**
   * Who sent the command: its address and, on a keyed session, its key id
   * (or with certificates, its certificate's subject CN).
   */
  readonly peer: {
    readonly address: string
    readonly keyId?: string | undefined
    readonly subject?: string | undefined
  }
}

/**
 * A command or notification being handled: the handler's `this` and, while
 * its promise is pending, all the session keeps of it. Up to
 * `maxPendingCalls` of these live per session, long enough to outlive
 * young-generation collections, so it holds the message's id and nothing
 * else of it, and the abort controller is made only if the handler asks
 * for its signal.
 * @internal
 */
export class HandlerContext implements CallContext {
  #controller: AbortController | undefined
  #reason: unknown
  readonly #connection: MessageConnection
  /** The command's id; undefined for a notification, which is not answered. */
  readonly id: MessageId | undefined
  /**
   * The handler's value is a function's return value, answered as
   * `{ result }` (null for undefined), so a running call needs no second
   * promise to wrap it.
   */
  answersResult = false

  constructor(connection: MessageConnection, id: MessageId | undefined) {
    this.#connection = connection
    this.id = id
  }

  get peer() {
    const connection = this.#connection
    return {
      address: connection.remoteAddress,
      keyId: connection.peerKeyId,
      subject: connection.peerSubject,
    }
  }

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController()
      if (this.#reason !== undefined) this.#controller.abort(this.#reason)
    }
    return this.#controller.signal
  }

  abort(reason: unknown): void {
    if (this.#reason !== undefined) return
    this.#reason = reason
    this.#controller?.abort(reason)
  }
}

/** Counters a session keeps about what its peer sent. */
export interface SessionCounters {
  /** Commands answered `busy` because the in-flight limit was reached. */
  busy: number
  /** Notifications dropped because the in-flight limit was reached. */
  dropped: number
  /** Sessions closed for sending stream data beyond the granted window. */
  windowViolations: number
  /** Channels closed for an incoming message that did not match its schema. */
  invalidChannelMessages: number
}

/** Session limits. */
export interface SessionLimits {
  /**
   * Commands awaiting a response, per direction (default 10,000): the
   * requests this end may have outstanding, and the commands and
   * notifications from the peer whose handlers may run at once. Beyond it a
   * command is answered `busy` without running and a notification is
   * dropped.
   */
  maxPendingCalls?: number
  /** Watches, listens, channels and streams, each (default 1,024). */
  maxSubscriptions?: number
  /** Default time a request waits (default 30 s). */
  callTimeout?: number
  /**
   * Where handlers that throw, `busy` answers and window violations are
   * reported (default: nowhere); also given to the transport.
   */
  logger?: Logger
  /** Time for request deadlines and the bind timeout (default the system clock). */
  clock?: Clock
}

/**
 * What both ends of a session share: sending commands and matching their
 * responses, answering invalid frames, and the channels and streams
 * multiplexed over the connection.
 * @internal
 */
export abstract class Session implements ChannelLink, StreamLink, Closable {
  readonly connection: MessageConnection
  protected readonly maxPendingCalls: number
  protected readonly maxSubscriptions: number
  protected readonly callTimeout: number
  protected readonly clock: Clock
  /** Undefined when nobody listens, so `this.log?.…` builds no message. */
  protected readonly log: Logger | undefined
  protected readonly channels = new Map<number, Channel>()
  protected readonly streams = new Map<number, ByteStream>()
  #nextId = 1
  #pending = new Map<MessageId, Pending>()
  #inFlight = new Set<HandlerContext>()
  // The busy answer around its id, encoded once per session.
  #busyFrame: [string, string] | undefined
  readonly #counters: SessionCounters

  constructor(
    connection: MessageConnection,
    limits: SessionLimits = {},
    counters: SessionCounters = {
      busy: 0,
      dropped: 0,
      windowViolations: 0,
      invalidChannelMessages: 0,
    },
  ) {
    this.#counters = counters
    this.connection = connection
    this.maxPendingCalls = limits.maxPendingCalls ?? Limits.maxPendingCalls
    this.maxSubscriptions = limits.maxSubscriptions ?? Limits.maxSubscriptions
    this.callTimeout = limits.callTimeout ?? Limits.callTimeout
    this.clock = limits.clock ?? systemClock
    this.log = activeLogger(limits.logger)
    connection.on('message', (message) => this.#receive(message))
    connection.on('invalid', (error) => this.#invalid(error))
    connection.on('close', (info) => this.#closed(info))
  }

  #detached = false

  /**
   * Stops reading and answering the connection's messages for good: another
   * owner has taken it over (a {@link SessionRelay}). Closing still cleans up.
   */
  protected detach(): void {
    this.#detached = true
  }

  /** Handles a command or notification from the peer; the result is the response body. */
  protected abstract handle(
    message: RequestMessage,
    context: HandlerContext,
  ): unknown | Promise<unknown>
  /**
   * Takes a notification that needs no handler context (a client's events,
   * most of what it reads) before one is made; false hands it to `handle`.
   */
  protected deliver(_message: RequestMessage): boolean {
    return false
  }
  /** Called once when the connection closes, after pending requests are rejected. */
  protected abstract cleanup(info: CloseInfo): void

  get isClosed(): boolean {
    return this.connection.isClosed
  }

  /** Resolves with the reason once the session's connection has closed; never rejects. */
  get closed(): Promise<CloseInfo> {
    return this.connection.closed
  }

  /** Closes the session's connection; idempotent. Resolves with {@link closed}. */
  close(reason?: string): Promise<CloseInfo> {
    return this.connection.close(reason)
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }

  /** Sends a command and resolves with its response body. */
  request<C extends CommandName>(
    command: C,
    body: RequestBody<C>,
    options: RequestOptions = {},
  ): Promise<ResponseBody<C>> {
    if (this.connection.isClosed) {
      return Promise.reject(
        new ConnectionLostError(`connection is closed; "${command}" was not sent`),
      )
    }
    if (this.#pending.size >= this.maxPendingCalls) {
      return Promise.reject(
        new BusyError(`${this.maxPendingCalls} commands already await a response`),
      )
    }
    const signal = options.signal
    if (signal?.aborted) return Promise.reject(signal.reason)
    const id = this.#nextId++
    return new Promise((resolve, reject) => {
      const timeout = options.timeout ?? this.callTimeout
      const deadline =
        timeout > 0 && Number.isFinite(timeout)
          ? this.clock.now() + timeout
          : Number.POSITIVE_INFINITY
      const pending: Pending = {
        command,
        resolve,
        reject,
        deadline,
        timeout,
        signal,
        onAbort: undefined,
      }
      if (deadline < this.#alarmAt) this.#arm(deadline)
      if (signal) {
        pending.onAbort = () => {
          this.#settle(id)
          reject(signal.reason)
        }
        signal.addEventListener('abort', pending.onAbort, { once: true })
      }
      this.#pending.set(id, pending)
      this.connection.send({ _type: MessageType.Command, _id: id, _command: command, ...body })
    })
  }

  /** Sends a notification (a command that gets no response). */
  notify<C extends CommandName>(command: C, body: RequestBody<C>): boolean {
    return this.connection.send({
      _type: MessageType.Notification,
      _id: this.#nextId++,
      _command: command,
      ...body,
    })
  }

  // One timer per session, armed for the earliest deadline, rather than one
  // per request: a request that is answered in time costs no timer work.
  #alarm: unknown
  #alarmAt = Number.POSITIVE_INFINITY

  #arm(at: number): void {
    if (this.#alarm !== undefined) this.clock.clearTimeout(this.#alarm)
    this.#alarmAt = at
    this.#alarm = this.clock.setTimeout(() => this.#expire(), Math.max(0, at - this.clock.now()))
  }

  #expire(): void {
    this.#alarm = undefined
    this.#alarmAt = Number.POSITIVE_INFINITY
    const now = this.clock.now()
    let next = Number.POSITIVE_INFINITY
    for (const [id, pending] of this.#pending) {
      if (pending.deadline <= now) {
        this.#settle(id)
        pending.reject(
          new CallTimeoutError(
            `no response to "${pending.command}" within ${Math.round(pending.timeout)} ms; it may have run`,
          ),
        )
      } else if (pending.deadline < next) next = pending.deadline
    }
    if (next < Number.POSITIVE_INFINITY) this.#arm(next)
  }

  #settle(id: MessageId): Pending | undefined {
    const pending = this.#pending.get(id)
    if (!pending) return undefined
    this.#pending.delete(id)
    if (pending.onAbort) pending.signal!.removeEventListener('abort', pending.onAbort)
    return pending
  }

  #receive(message: SessionMessage): void {
    if (this.#detached) return
    if (message._type === MessageType.Response) {
      this.#response(message)
      return
    }
    // What the peer may make this end hold is bounded: beyond the limit a
    // command is refused before its handler runs.
    if (this.#inFlight.size >= this.maxPendingCalls) {
      if (message._type === MessageType.Command) {
        this.#counters.busy++
        this.log?.warn(
          `autobus:rpc answered busy to "${message._command}" from ${this.#peer()}: ${this.maxPendingCalls} commands running (maxPendingCalls)`,
        )
        // From a template: a flood of these costs little more than its bytes.
        this.#busyFrame ??= [
          '{"_type":2,"_id":',
          `,"_error":${JSON.stringify(
            errorToWire(
              new BusyError(`${this.maxPendingCalls} commands are already running on this session`),
            ),
          )}}\n`,
        ]
        const id = message._id
        this.connection.sendEncoded(
          this.#busyFrame[0] +
            (typeof id === 'number' ? id : JSON.stringify(id)) +
            this.#busyFrame[1],
        )
      } else {
        this.#counters.dropped++
        this.log?.warn(
          `autobus:rpc dropped "${message._command}" from ${this.#peer()}: ${this.maxPendingCalls} commands running (maxPendingCalls)`,
        )
      }
      return
    }
    if (message._type === MessageType.Notification && this.deliver(message)) return
    const context = new HandlerContext(
      this.connection,
      message._type === MessageType.Command ? message._id : undefined,
    )
    let result: unknown
    try {
      result = this.handle(message, context)
    } catch (error) {
      this.#answer(context, undefined, error)
      return
    }
    if (result instanceof Promise) {
      this.#inFlight.add(context)
      result.then(
        (body) => this.#settled(context, body, undefined),
        (error) => this.#settled(context, undefined, error),
      )
    } else {
      this.#answer(context, result, undefined)
    }
  }

  #settled(call: HandlerContext, body: unknown, error: unknown): void {
    if (this.#inFlight.delete(call)) this.#answer(call, body, error)
  }

  #peer(): string {
    const { remoteAddress, remotePort } = this.connection
    return remotePort ? `${remoteAddress}:${remotePort}` : remoteAddress
  }

  /** Handlers running for the peer's commands and notifications. */
  get inFlight(): number {
    return this.#inFlight.size
  }

  /**
   * Ends the session from this side: every running handler is aborted and
   * its caller answered with `error` at once, then the connection closes
   * (what was queued still goes out).
   */
  shutdown(reason: string, error: AutobusError): void {
    for (const call of [...this.#inFlight]) {
      this.#inFlight.delete(call)
      this.#answer(call, undefined, error)
      call.abort(error)
    }
    this.connection.close(reason)
  }

  #answer(call: HandlerContext, body: unknown, error: unknown): void {
    const id = call.id
    if (id === undefined || this.#detached) return
    if (error !== undefined) {
      this.connection.send({
        _type: MessageType.Response,
        _id: id,
        _error: errorToWire(error, { stack: this.exposeStacks }),
      })
    } else if (call.answersResult) {
      this.connection.send({ _type: MessageType.Response, _id: id, result: body ?? null })
    } else {
      this.connection.send({
        _type: MessageType.Response,
        _id: id,
        ...(body as object | undefined),
      })
    }
  }

  protected get exposeStacks(): boolean {
    return false
  }

  #response(message: ResponseMessage): void {
    if (message._id === null) {
      this.onErrorReport(message)
      return
    }
    const pending = this.#settle(message._id)
    if (!pending) return
    if (message._error) {
      pending.reject(errorFromWire(message._error))
      return
    }
    const invalid = checkResponse(pending.command, message)
    if (invalid) {
      pending.reject(invalid)
      return
    }
    pending.resolve(message)
  }

  // A command gets its error as its response; a frame whose id could not be
  // read gets an error report (a response with a null id).
  // A detached session still answers frames nobody can read: its relay
  // could not pass them on either.
  #invalid(error: ProtocolError): void {
    const { messageId: id, messageType: type } = error
    if (type === MessageType.Command && id !== undefined) {
      this.connection.send({ _type: MessageType.Response, _id: id, _error: errorToWire(error) })
    } else if (type === MessageType.Response && id !== undefined) {
      if (!this.#detached) this.#settle(id)?.reject(error)
    } else if (type !== MessageType.Notification) {
      this.connection.send({ _type: MessageType.Response, _id: null, _error: errorToWire(error) })
    }
    this.onInvalid(error)
  }

  /** Hook for error reports from the peer about frames it could not read. */
  protected onErrorReport(_report: ResponseMessage): void {}

  /** Hook for invalid frames (e.g. counting them). */
  protected onInvalid(_error: ProtocolError): void {}

  #closed(info: CloseInfo): void {
    if (this.#alarm !== undefined) this.clock.clearTimeout(this.#alarm)
    if (this.#inFlight.size > 0) {
      const reason = new ConnectionLostError(`connection lost: ${info.reason}`)
      const calls = [...this.#inFlight]
      this.#inFlight.clear()
      for (const call of calls) call.abort(reason)
    }
    const pending = [...this.#pending.keys()]
    for (const id of pending) {
      const entry = this.#settle(id)!
      entry.reject(
        new ConnectionLostError(
          `connection lost (${info.reason}) while awaiting "${entry.command}"; it may have run`,
          {
            cause: info.error,
          },
        ),
      )
    }
    for (const channel of this.channels.values())
      channel.finish(`connection lost: ${info.reason}`, true)
    this.channels.clear()
    const error = new ConnectionLostError(`connection lost: ${info.reason}`)
    for (const stream of this.streams.values()) stream.abort(error)
    this.streams.clear()
    this.cleanup(info)
  }

  // Channel and stream traffic, the same in both directions.

  sendMessage(channel: number, message: unknown): boolean {
    return this.notify('channel_message', { channel, message })
  }

  sendClose(channel: number, reason: string): void {
    this.channels.delete(channel)
    this.notify('channel_close', { channel, reason })
  }

  #attachments = false

  /** Stream data travels as raw attachments from now on. */
  enableAttachments(): void {
    this.#attachments = true
    this.connection.enableAttachments()
  }

  sendData(stream: number, data: Uint8Array): boolean {
    if (this.#attachments) {
      return this.connection.sendWithAttachment(
        { _type: MessageType.Notification, _command: 'stream_data', stream },
        data,
      )
    }
    const base64 = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64')
    return this.notify('stream_data', { stream, data: base64 })
  }

  sendAck(stream: number, bytes: number): void {
    this.notify('stream_ack', { stream, bytes })
  }

  sendEnd(stream: number): void {
    this.notify('stream_end', { stream })
  }

  drained(): Promise<void> {
    return this.connection.drained()
  }

  protected addChannel(id: number, name: string): Channel {
    if (this.channels.size >= this.maxSubscriptions)
      throw new BusyError(`${this.maxSubscriptions} channels already open`)
    const channel = new Channel(this, id, name)
    this.channels.set(id, channel)
    channel.once('close', () => this.channels.delete(id))
    return channel
  }

  protected addStream(
    id: number,
    name: string,
    sendWindow: number,
    receiveWindow: number,
  ): ByteStream {
    if (this.streams.size >= this.maxSubscriptions)
      throw new BusyError(`${this.maxSubscriptions} streams already open`)
    const stream = new ByteStream(
      {
        sendData: (s, d) => this.sendData(s, d),
        sendAck: (s, b) => this.sendAck(s, b),
        sendEnd: (s) => this.sendEnd(s),
        sendClose: (s, reason) => {
          this.streams.delete(s)
          this.notify('stream_close', { stream: s, reason })
        },
        drained: () => this.drained(),
      },
      id,
      name,
      sendWindow,
      receiveWindow,
    )
    this.streams.set(id, stream)
    stream.once('close', () => this.streams.delete(id))
    return stream
  }

  /** Handles the channel and stream commands; returns false for any other. */
  protected handleTraffic(message: RequestMessage): boolean {
    switch (message._command) {
      case 'channel_message':
        this.#deliverChannelMessage(message.channel, message.message)
        return true
      case 'channel_close': {
        const channel = this.channels.get(message.channel)
        this.channels.delete(message.channel)
        channel?.finish(message.reason ?? 'closed by peer', true)
        return true
      }
      case 'stream_data': {
        const attachment = (message as { _attachment?: Buffer })._attachment
        const bytes =
          attachment ??
          (message.data === undefined ? undefined : Buffer.from(message.data, 'base64'))
        if (bytes && this.streams.get(message.stream)?.deliver(bytes) === false) {
          // The sender ignored the window: what it pushes would otherwise
          // be buffered without bound.
          this.#counters.windowViolations++
          this.log?.warn(
            `autobus:rpc closing the session with ${this.#peer()}: stream ${message.stream} sent beyond its window`,
          )
          const error = new ProtocolError(
            ErrorCode.InvalidMessage,
            `stream ${message.stream}: data beyond the granted window`,
          )
          this.connection.send({
            _type: MessageType.Response,
            _id: null,
            _error: errorToWire(error),
          })
          // A plain close, so that the report goes out first.
          this.connection.close('stream window exceeded')
        }
        return true
      }
      case 'stream_ack':
        this.streams.get(message.stream)?.credit(message.bytes)
        return true
      case 'stream_end':
        this.streams.get(message.stream)?.remoteEnd()
        return true
      case 'stream_close': {
        const stream = this.streams.get(message.stream)
        this.streams.delete(message.stream)
        stream?.abort(new ClosedError(`stream closed by peer: ${message.reason ?? 'closed'}`))
        return true
      }
      default:
        return false
    }
  }

  #deliverChannelMessage(id: number, message: unknown): void {
    const channel = this.channels.get(id)
    if (!channel) return
    const problem = channel.checkMessage(message)
    if (problem === undefined) {
      channel.deliver(message)
      return
    }
    this.#counters.invalidChannelMessages++
    channel.refuse(problem)
  }
}
