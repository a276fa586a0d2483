import {
  type Closable,
  ClosedError,
  Feature,
  Limits,
  PROTOCOL_VERSION,
  type RequestMessage,
  type ServiceDescription,
  UnknownNameError,
  UnsupportedError,
} from '@autobus/protocol'
import {
  type CloseInfo,
  type ConnectOptions,
  connect,
  type MessageConnection,
} from '@autobus/transport'
import type { TSchema } from 'typebox'
import {
  type Channel,
  DEFAULT_MAX_UNREAD_MESSAGES,
  type MessageCheck,
  messageCheck,
} from './channel.js'
import {
  type CallArgs,
  type CallRest,
  type CallResult,
  type ChannelName,
  type ClientChannel,
  type Contract,
  type ContractSection,
  declares,
  type EventArgs,
  type EventName,
  type FunctionName,
  type ObjectName,
  type ObjectValue,
  type StreamName,
} from './contract.js'
import { SUPPORTED_FEATURES } from './server.js'
import { type RequestOptions, Session, type SessionLimits } from './session.js'
import type { ByteStream } from './stream.js'

/** Undoes a listen or a watch. */
export interface Subscription {
  /** Stops delivery at once; tells the service when this was the last one. */
  close(): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

/** Receives an event's arguments. */
export type EventHandler<A extends unknown[] = unknown[]> = (...args: A) => void
/** Receives an object's value: the initial one, each change, then null when the connection dies. */
export type WatchHandler<T = unknown> = (value: T | null) => void

/** Options for {@link connectService}. */
export interface ConnectServiceOptions<C extends Contract = Contract>
  extends ConnectOptions,
    SessionLimits {
  /**
   * The service's contract: the connection's `call`, `listen`, `watch`,
   * `openChannel` and `openStream` are then typed by it, and a name it does
   * not declare is refused before anything is sent.
   */
  contract?: C
  /** Heartbeat idle interval (default 5 s) and dead-peer timeout (default 15 s). */
  heartbeatInterval?: number
  heartbeatTimeout?: number
  /** Features to offer; default all. An empty list binds like an original Autobus 2 client. */
  features?: readonly string[]
  /**
   * Messages a channel keeps while nothing reads it (default 1,024); one more
   * closes the channel. See {@link Channel}.
   */
  maxUnreadMessages?: number
}

/** Options for {@link Connection.openChannel}. */
export interface ChannelOptions extends RequestOptions {
  /** Overrides the connection's `maxUnreadMessages` for this channel. */
  maxUnreadMessages?: number
  /**
   * Schema every message from the service is checked against (default: the
   * contract's `reply` for the channel); one that does not match closes the
   * channel with `InvalidArgumentsError`.
   */
  reply?: TSchema
}

/** Where a service is: host and port (or a Unix socket path) and its id. */
export type ServiceAddress = ({ host: string; port: number } | { path: string }) & {
  service: string
}

/**
 * A connection to one service. It never reconnects: when it dies, pending
 * calls fail with `ConnectionLostError`, watchers get null, channels and
 * streams close, and `closed` resolves. Proxies do the rebinding. Given a
 * contract, it is typed by it; without one, names are strings and values
 * `unknown`.
 *
 * @example
 * ```ts
 * const connection = await connectService(
 *   { host: '127.0.0.1', port: 4000, service: id },
 *   { contract: calculator },
 * )
 * const sum: number = await connection.call('add', [1, 2])
 * connection.closed.then((info) => console.log('gone:', info.reason))
 * ```
 */
export class Connection<C extends Contract = Contract> implements Closable {
  /** The id of the service this connection is bound to. */
  readonly service: string
  /** Features both ends agreed on at bind. */
  readonly features: ReadonlySet<string>
  /** Resolves with the reason once the connection has closed. */
  readonly closed: Promise<CloseInfo>
  /** The contract it was opened with, if any. */
  readonly contract: C | undefined
  readonly #session: ClientSession

  /** @internal Use {@link connectService}. */
  constructor(
    session: ClientSession,
    service: string,
    features: ReadonlySet<string>,
    contract?: C,
  ) {
    this.#session = session
    this.service = service
    this.features = features
    this.contract = contract
    this.closed = session.connection.closed
  }

  #check(section: ContractSection, name: string): void {
    checkName(name)
    if (!declares(this.contract, section, name))
      throw new UnknownNameError(`the contract declares no ${section} "${name}"`)
  }

  /** Host (or socket path) and port of the service. */
  get remoteAddress(): string {
    return this.#session.connection.remoteAddress
  }

  get remotePort(): number {
    return this.#session.connection.remotePort
  }

  /** True once the connection has closed. */
  get isClosed(): boolean {
    return this.#session.isClosed
  }

  /**
   * Calls a function and resolves with its result. Rejects with
   * `RemoteError` if it threw, `InvalidArgumentsError`, `UnknownNameError`,
   * `CallTimeoutError` (default 30 s) or `ConnectionLostError`.
   */
  call<N extends FunctionName<C>>(
    name: N,
    ...rest: CallRest<C, N, RequestOptions>
  ): Promise<CallResult<C, N>>
  async call(
    name: string,
    args: readonly unknown[] = [],
    options: RequestOptions = {},
  ): Promise<unknown> {
    this.#check('functions', name)
    // The frame is encoded before this returns, so the caller's array is not kept.
    const response = await this.#session.request('call', { name, args: args as unknown[] }, options)
    return response.result ?? null
  }

  /** Calls a function without waiting: no response is sent or awaited. */
  notify<N extends FunctionName<C>>(
    name: N,
    ...rest: [] extends CallArgs<C, N> ? [args?: CallArgs<C, N>] : [args: CallArgs<C, N>]
  ): void
  notify(name: string, args: readonly unknown[] = []): void {
    this.#check('functions', name)
    if (!this.#session.notify('call', { name, args: args as unknown[] })) {
      throw new ClosedError('connection is closed')
    }
  }

  /** Calls a function and hands the outcome to one of two callbacks. */
  callback<N extends FunctionName<C>>(
    name: N,
    args: CallArgs<C, N>,
    onResult: (result: CallResult<C, N>) => void,
    onError: (error: Error) => void = () => {},
    options: RequestOptions = {},
  ): void {
    const call = this.call as (...rest: unknown[]) => Promise<CallResult<C, N>>
    call.call(this, name, args, options).then(onResult, onError)
  }

  /**
   * Listens to an event until the returned subscription is closed. Rejects
   * with `UnknownNameError` if the service (or the contract) has no such
   * event.
   */
  async listen<N extends EventName<C>>(
    name: N,
    handler: EventHandler<EventArgs<C, N>>,
    options: RequestOptions = {},
  ): Promise<Subscription> {
    this.#check('events', name)
    return this.#session.listen(name, handler as EventHandler, options)
  }

  /**
   * Watches an object: the handler gets its current value, then each change,
   * then null if the connection dies.
   */
  async watch<N extends ObjectName<C>>(
    name: N,
    handler: WatchHandler<ObjectValue<C, N>>,
    options: RequestOptions = {},
  ): Promise<Subscription> {
    this.#check('objects', name)
    return this.#session.watch(name, handler as WatchHandler, options)
  }

  /**
   * Opens a channel; rejects with `RefusedError` if the service refuses.
   * Messages that arrive before you attach a `message` listener or start
   * iterating are kept for you (up to `maxUnreadMessages`).
   */
  async openChannel<N extends ChannelName<C>>(
    name: N,
    options: ChannelOptions = {},
  ): Promise<ClientChannel<C, N>> {
    this.#check('channels', name)
    const check = messageCheck(options.reply ?? this.contract?.channels?.[name]?.reply)
    return this.#session.openChannel(name, options, check) as Promise<ClientChannel<C, N>>
  }

  /** Opens a byte stream (a Node Duplex with end-to-end backpressure). */
  async openStream(name: StreamName<C>, options: RequestOptions = {}): Promise<ByteStream> {
    this.#check('streams', name)
    return this.#session.openStream(name, options)
  }

  /** The service's functions, events, objects, channels and streams. */
  async describe(options: RequestOptions = {}): Promise<ServiceDescription> {
    if (!this.features.has(Feature.Describe))
      throw new UnsupportedError('the service does not support "describe"')
    return (await this.#session.request('describe', {}, options)).description
  }

  /** Closes the connection; idempotent. Resolves with the same value as `closed`. */
  close(reason = 'closed by client'): Promise<CloseInfo> {
    this.#session.connection.close(reason)
    return this.closed
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

function checkName(name: unknown): void {
  if (typeof name !== 'string' || name.length === 0)
    throw new TypeError('name must be a non-empty string')
}

/**
 * One watched object on a connection. The initial value may come in the
 * watch's response or, from an original Autobus 2 service, only in the
 * `changed` that follows it; a `changed` that repeats the response's value
 * right after it is that echo, not a change, and is not delivered again.
 */
/** One listened event on a connection: one `listen` sent, however many handlers. */
interface Listened {
  handlers: Set<EventHandler>
  /** Settles when the service has answered the one `listen`. */
  ready: Promise<void>
}

interface Watched {
  handlers: Set<WatchHandler>
  value: unknown
  /** pending: no response yet; waiting: answered without a value; live: value known. */
  state: 'pending' | 'waiting' | 'live'
  /** A `changed` arrived before the response was handled (it is newer). */
  changedEarly: boolean
  /** The next `changed` may be the echo of the response's value. */
  echo: boolean
  ready: Promise<void>
}

class ClientSession extends Session {
  #listeners = new Map<string, Listened>()
  #watchers = new Map<string, Watched>()
  /**
   * Objects unwatched on an original service, which says so with a `changed`
   * of null instead of a response; that null is not a value of a new watch.
   */
  #unwatching = new Set<string>()
  #nextLocalId = 1

  protected override deliver(message: RequestMessage): boolean {
    if (message._command !== 'fired') return false
    const entry = this.#listeners.get(message.name)
    if (entry) deliverEvent(entry.handlers, message.args)
    return true
  }

  protected handle(message: RequestMessage): unknown {
    if (this.handleTraffic(message)) return undefined
    switch (message._command) {
      case 'fired': {
        const entry = this.#listeners.get(message.name)
        if (entry) deliverEvent(entry.handlers, message.args)
        return {}
      }
      case 'changed': {
        if (message.value === null && this.#unwatching.delete(message.name)) return {}
        const entry = this.#watchers.get(message.name)
        if (entry) this.#changed(entry, message.value)
        return {}
      }
      case 'ping':
        return {}
      default:
        throw new UnsupportedError(`"${message._command}" is not a service command`)
    }
  }

  #changed(entry: Watched, value: unknown): void {
    if (entry.state === 'pending') {
      entry.value = value
      entry.changedEarly = true
      return
    }
    if (entry.state === 'live' && entry.echo && sameJson(value, entry.value)) {
      entry.echo = false
      return
    }
    entry.echo = false
    entry.state = 'live'
    entry.value = value
    for (const handler of [...entry.handlers]) safely(() => handler(value))
  }

  /**
   * An original Autobus 2 service (a session without features) never
   * answers `unwatch` or `unlisten`, so they go as notifications: closing a
   * subscription never waits for an answer that will not come.
   */
  #unsubscribe(command: 'unwatch' | 'unlisten', name: string): Promise<void> {
    if (this.isClosed) return Promise.resolve()
    if (this.features.size === 0) {
      if (command === 'unwatch') this.#unwatching.add(name)
      this.notify(command, { name })
      return Promise.resolve()
    }
    return this.request(command, { name }).then(
      () => {},
      () => {},
    )
  }

  /**
   * Every listen on a name shares the first one's request: a second listen
   * returns only once the service has confirmed, and fails with it.
   */
  async listen(
    name: string,
    handler: EventHandler,
    options: RequestOptions,
  ): Promise<Subscription> {
    let entry = this.#listeners.get(name)
    if (!entry) {
      const created: Listened = { handlers: new Set(), ready: Promise.resolve() }
      created.ready = this.request('listen', { name }, options).then(
        () => {},
        (error) => {
          if (this.#listeners.get(name) === created) this.#listeners.delete(name)
          throw error
        },
      )
      entry = created
      this.#listeners.set(name, entry)
    }
    const listened = entry
    // Added before the answer: an event fired right after it is not missed.
    listened.handlers.add(handler)
    try {
      await listened.ready
    } catch (error) {
      listened.handlers.delete(handler)
      throw error
    }
    return subscription(async () => {
      if (!listened.handlers.delete(handler) || listened.handlers.size > 0) return
      if (this.#listeners.get(name) !== listened) return
      this.#listeners.delete(name)
      await this.#unsubscribe('unlisten', name)
    })
  }

  async watch(name: string, handler: WatchHandler, options: RequestOptions): Promise<Subscription> {
    let entry = this.#watchers.get(name)
    if (!entry) {
      const created: Watched = {
        handlers: new Set(),
        value: null,
        state: 'pending',
        changedEarly: false,
        echo: false,
        ready: Promise.resolve(),
      }
      const answered = this.request('watch', { name }, options).finally(() => {
        // Any `changed` answering an earlier unwatch came before this response.
        this.#unwatching.delete(name)
      })
      created.ready = answered.then((response) => {
        if (created.changedEarly) {
          created.state = 'live'
        } else if (response.value !== undefined) {
          created.value = response.value
          created.state = 'live'
          created.echo = true
        } else {
          created.state = 'waiting'
        }
      })
      entry = created
      this.#watchers.set(name, entry)
      try {
        await entry.ready
      } catch (error) {
        if (this.#watchers.get(name) === entry) this.#watchers.delete(name)
        throw error
      }
    } else {
      await entry.ready
    }
    const watched = entry
    watched.handlers.add(handler)
    // Without a value yet, the handler gets the first `changed`.
    if (watched.state === 'live') handler(watched.value)
    return subscription(async () => {
      if (!watched.handlers.delete(handler) || watched.handlers.size > 0) return
      if (this.#watchers.get(name) === watched) this.#watchers.delete(name)
      await this.#unsubscribe('unwatch', name)
    })
  }

  async openChannel(name: string, options: ChannelOptions, check?: MessageCheck): Promise<Channel> {
    if (!this.features.has(Feature.Channels))
      throw new UnsupportedError('the service does not support channels')
    const id = this.#nextLocalId++
    // Registered before the request: a greeting sent with the open is kept.
    const channel = this.addChannel(id, name)
    channel.setCheck(check)
    channel.setMaxUnread(options.maxUnreadMessages ?? this.maxUnreadMessages)
    try {
      await this.request('channel_open', { name, channel: id }, options)
    } catch (error) {
      channel.finish('refused', false)
      throw error
    }
    return channel
  }

  async openStream(
    name: string,
    options: RequestOptions,
  ): Promise<import('./stream.js').ByteStream> {
    if (!this.features.has(Feature.Streams))
      throw new UnsupportedError('the service does not support streams')
    const id = this.#nextLocalId++
    const receiveWindow = Limits.streamWindow
    let stream: ByteStream | undefined
    // Register first so data that follows the response at once is not lost.
    stream = this.addStream(id, name, 0, receiveWindow)
    try {
      const response = await this.request(
        'stream_open',
        { name, stream: id, window: receiveWindow },
        options,
      )
      stream.credit(response.window)
    } catch (error) {
      this.streams.delete(id)
      stream.destroy()
      throw error
    }
    return stream
  }

  features: ReadonlySet<string> = new Set()
  maxUnreadMessages = DEFAULT_MAX_UNREAD_MESSAGES

  protected cleanup(): void {
    this.#listeners.clear()
    for (const entry of this.#watchers.values()) {
      for (const handler of entry.handlers) safely(() => handler(null))
    }
    this.#watchers.clear()
  }
}

/**
 * Calls each handler of an event. One handler (the usual case) is called
 * without copying the set or making a closure per event; with more, a
 * handler that unsubscribes another does not change who hears this event.
 */
function deliverEvent(handlers: Set<EventHandler>, args: unknown[]): void {
  if (handlers.size === 1) {
    for (const handler of handlers) callSafely(handler, args)
    return
  }
  for (const handler of [...handlers]) callSafely(handler, args)
}

function callSafely(handler: EventHandler, args: unknown[]): void {
  try {
    handler(...args)
  } catch (error) {
    // A user's handler that throws must not break the session; report it.
    queueMicrotask(() => {
      throw error
    })
  }
}

function safely(run: () => void): void {
  try {
    run()
  } catch (error) {
    // A user's handler that throws must not break the session; report it.
    queueMicrotask(() => {
      throw error
    })
  }
}

function sameJson(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b)
}

function subscription(close: () => Promise<void>): Subscription {
  let closing: Promise<void> | undefined
  const once = () => {
    closing ??= close()
    return closing
  }
  return { close: once, [Symbol.asyncDispose]: once }
}

/**
 * Binds a connection to a service over an existing message connection (any
 * transport, e.g. an in-memory pair). The only other way to get a
 * {@link Connection} than {@link connectService}.
 *
 * @example
 * ```ts
 * import { connect } from '@autobus/transport'
 *
 * const transport = await connect({ path: '/run/thermostat.sock' })
 * const connection = await bindService(transport, 'thermostat-1', { contract: thermostat })
 * ```
 */
export async function bindService<const C extends Contract = Contract>(
  connection: MessageConnection,
  service: string,
  options: Omit<ConnectServiceOptions<C>, keyof ConnectOptions> & RequestOptions = {},
): Promise<Connection<C>> {
  const session = new ClientSession(connection, options)
  if (options.maxUnreadMessages !== undefined) session.maxUnreadMessages = options.maxUnreadMessages
  const offered = options.features ?? SUPPORTED_FEATURES
  try {
    const response = await session.request(
      'bind',
      offered.length > 0
        ? { service, version: PROTOCOL_VERSION, features: [...offered] }
        : { service },
      { timeout: options.timeout ?? Limits.bindTimeout, signal: options.signal },
    )
    const features = new Set(
      (response.features ?? []).filter((feature) => offered.includes(feature)),
    )
    session.features = features
    if (features.has(Feature.Attachments)) session.enableAttachments()
    if (features.has(Feature.Heartbeat)) {
      connection.startHeartbeat({
        interval: options.heartbeatInterval,
        timeout: options.heartbeatTimeout,
        ping: () => {
          session.request('ping', {}).catch(() => {})
        },
      })
    }
    return new Connection(session, service, features, options.contract)
  } catch (error) {
    connection.close('bind failed')
    throw error
  }
}

/**
 * Connects to a service by host, port and id (or socket path and id) and
 * binds to it.
 *
 * @example
 * ```ts
 * const connection = await connectService({ host: '192.168.1.20', port: 4000, service: 'c0ffee' })
 * const typed = await connectService(address, { contract: calculator })
 * ```
 */
export async function connectService<const C extends Contract = Contract>(
  address: ServiceAddress,
  options: ConnectServiceOptions<C> = {},
): Promise<Connection<C>> {
  if (typeof address?.service !== 'string' || address.service.length === 0) {
    throw new TypeError('a service id is needed')
  }
  const endpoint =
    'path' in address ? { path: address.path } : { host: address.host, port: address.port }
  const connection = await connect(endpoint, options)
  return bindService(connection, address.service, options)
}
