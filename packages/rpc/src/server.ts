import { EventEmitter } from 'node:events'
import {
  BusyError,
  type Closable,
  ClosedError,
  ErrorCode,
  encodeFrame,
  Feature,
  Limits,
  MessageType,
  NotBoundError,
  PROTOCOL_VERSION,
  ProtocolError,
  RefusedError,
  type RequestMessage,
  SUPPORTED_FEATURES,
  UnknownServiceError,
  UnsupportedError,
} from '@autobus/protocol'
import {
  type CloseInfo,
  type ListenOptions,
  listen,
  type MessageConnection,
  type MessageServer,
  type ServerCounters,
} from '@autobus/transport'
import type { Validator } from 'typebox/compile'
import { type AccessControl, authorizeCommand } from './access.js'
import { checkArgs, type Service, type Subscriber } from './service.js'
import {
  type HandlerContext,
  Session,
  type SessionCounters,
  type SessionLimits,
} from './session.js'
import { TrafficCounter } from './traffic.js'

// Defined in the protocol so both ends read one list; the client side
// imports it from here.
export { SUPPORTED_FEATURES }

/** Where a server session finds services by id. @internal */
export interface ServiceRegistry {
  get(id: string): Service | undefined
  /** Counts a command or frame refused before reaching any service. */
  rejected(code: string): void
}

/** Options for serving services. */
export interface ServeOptions extends SessionLimits {
  /** Connections open at once on the listener (default 4,096); beyond it new ones are closed at once. */
  maxConnections?: number
  /** Connections open at once from one remote address (default 256); beyond it new ones are closed at once. */
  maxConnectionsPerAddress?: number
  /**
   * Bytes of a byte stream a client may send ahead of what the service has
   * read (default 2 MiB); data beyond it closes the session.
   */
  streamWindow?: number
  /** How long a connection may take to bind (default 10 s). */
  bindTimeout?: number
  /** Access rules: a denied command is answered `forbidden` and never runs (default: none, all allowed). */
  access?: AccessControl
  /** Heartbeat idle interval (default 5 s) and dead-peer timeout (default 15 s). */
  heartbeatInterval?: number
  heartbeatTimeout?: number
}

// The check a call passes on its way to the handler, without throwing: the
// hot path stays as small as it was, and the error is made (and counted)
// only for a call that fails it.
function argsFit(validators: readonly Validator[] | undefined, args: unknown[]): boolean {
  if (!validators) return true
  if (args.length > validators.length) return false
  for (let i = 0; i < validators.length; i++) if (!validators[i]!.Check(args[i])) return false
  return true
}

/** Throws the error a call that failed {@link argsFit} is answered with, counting it. */
function refuseCall(service: Service, name: string, args: unknown[]): never {
  try {
    const entry = service.lookup(service.functions, 'function', name)
    checkArgs('function', name, entry.validators, args)
  } catch (error) {
    service.metrics.rejected(name, error)
    throw error
  }
  throw new TypeError(`call of "${name}" refused for no reason`)
}

/** The service side of one client connection. */
class ServerSession extends Session implements Subscriber {
  readonly #registry: ServiceRegistry
  readonly #options: ServeOptions
  #service: Service | undefined
  #features = new Set<string>()
  #watching = new Set<string>()
  #listening = new Set<string>()
  #bindTimer: unknown

  #featureless = true

  constructor(
    connection: MessageConnection,
    registry: ServiceRegistry,
    options: ServeOptions,
    counters: SessionCounters,
  ) {
    super(connection, options, counters)
    this.#registry = registry
    this.#options = options
    this.#bindTimer = this.clock.setTimeout(
      () => connection.close('bind timeout'),
      options.bindTimeout ?? Limits.bindTimeout,
    )
  }

  /** The id of the service this session is bound to, once bound. */
  get boundTo(): string | undefined {
    return this.#service?.id
  }

  protected override get exposeStacks(): boolean {
    return this.#service?.exposeStacks ?? false
  }

  sendEncoded(frame: string): boolean {
    return this.connection.sendEncoded(frame)
  }

  #require(feature: string): void {
    if (!this.#features.has(feature))
      throw new UnsupportedError(`the client did not negotiate "${feature}"`)
  }

  // An original client relies on a `changed` after each watch for the
  // current value (it sends `watch` as a notification), and an original
  // service follows `unwatch` with `changed` null: a session that bound
  // without features gets both.
  #tellValue(name: string, value: unknown): void {
    if (!this.#featureless) return
    queueMicrotask(() =>
      this.connection.sendEncoded(
        encodeFrame({ _type: MessageType.Notification, _command: 'changed', name, value }),
      ),
    )
  }

  protected handle(message: RequestMessage, context: HandlerContext): unknown {
    const service = this.#service
    if (message._command === 'bind') {
      const relay =
        this.#service || this.#options.access
          ? undefined
          : this.#registry.get(message.service)?.relay
      if (relay?.(this.connection, message)) {
        this.clock.clearTimeout(this.#bindTimer)
        this.detach()
        return undefined
      }
      return this.#bind(message.service, message.features)
    }
    if (message._command === 'ping') return {}
    if (!service) {
      if (message._command === 'changed' || message._command === 'fired') return {}
      this.#registry.rejected(ErrorCode.NotBound)
      throw new NotBoundError(`"${message._command}" before "bind"`)
    }
    if (this.handleTraffic(message)) return undefined
    if (this.#options.access) {
      try {
        authorizeCommand(this.#options.access, context.peer, service, message)
      } catch (error) {
        service.metrics.rejected(message._command === 'call' ? message.name : undefined, error)
        throw error
      }
    }
    switch (message._command) {
      case 'call': {
        const entry = service.functions.get(message.name)
        if (entry === undefined || !argsFit(entry.validators, message.args))
          refuseCall(service, message.name, message.args)
        const validators = entry.validators
        let result: unknown
        try {
          if (validators) {
            // The context goes after the declared arguments, wherever the
            // caller stopped.
            const args = message.args.slice()
            args.length = validators.length
            args.push(context)
            result = entry.handler.apply(context, args)
          } else {
            result = entry.handler.apply(context, message.args)
          }
        } catch (error) {
          this.#threw(service, message.name, error)
          throw error
        }
        if (result instanceof Promise) {
          // The session answers the settled value as `{ result }`: a running
          // call holds no wrapping promise of its own.
          context.answersResult = true
          if (!this.log) return result
          const name = message.name
          return result.then(undefined, (error: unknown) => {
            this.#threw(service, name, error)
            throw error
          })
        }
        return { result: result ?? null }
      }
      case 'watch': {
        const entry = service.lookup(service.objects, 'object', message.name)
        if (!this.#watching.has(message.name)) {
          if (this.#watching.size >= this.maxSubscriptions)
            throw new BusyError(`${this.maxSubscriptions} objects already watched`)
          this.#watching.add(message.name)
          entry.watchers.add(this)
        }
        this.#tellValue(message.name, entry.value)
        return { name: message.name, value: entry.value }
      }
      case 'unwatch': {
        const entry = service.lookup(service.objects, 'object', message.name)
        const watched = this.#watching.delete(message.name)
        entry.watchers.delete(this)
        if (watched) this.#tellValue(message.name, null)
        return { name: message.name, value: null }
      }
      case 'listen': {
        const entry = service.lookup(service.events, 'event', message.name)
        if (!this.#listening.has(message.name)) {
          if (this.#listening.size >= this.maxSubscriptions)
            throw new BusyError(`${this.maxSubscriptions} events already listened to`)
          this.#listening.add(message.name)
          entry.listeners.add(this)
        }
        return {}
      }
      case 'unlisten': {
        const entry = service.lookup(service.events, 'event', message.name)
        this.#listening.delete(message.name)
        entry.listeners.delete(this)
        return {}
      }
      case 'describe':
        this.#require(Feature.Describe)
        return { description: service.describe() }
      case 'channel_open':
        return this.#openChannel(service, message.name, message.channel)
      case 'stream_open':
        return this.#openStream(service, message.name, message.stream, message.window)
      // A client has nothing to tell a service with these; an original peer
      // may still send them as commands, and they are answered.
      case 'changed':
      case 'fired':
        return {}
      default:
        throw new ProtocolError(
          ErrorCode.UnknownCommand,
          `"${message._command}" is not a command a client sends`,
        )
    }
  }

  // The caller gets the error as its answer; the service side would
  // otherwise never hear of it.
  #threw(service: Service, name: string, error: unknown): void {
    this.log?.error(
      `autobus:rpc function "${name}" of service ${service.id} threw for ${this.connection.remoteAddress}`,
      error,
    )
  }

  #bind(id: string, offered: string[] | undefined) {
    if (this.#service) throw new NotBoundError(`already bound to ${this.#service.id}`)
    const service = this.#registry.get(id)
    if (!service) {
      this.#registry.rejected(ErrorCode.UnknownService)
      // The spec says the connection closes after the error response.
      setImmediate(() => this.connection.close('unknown service'))
      throw new UnknownServiceError(`no service "${id}" here`)
    }
    this.clock.clearTimeout(this.#bindTimer)
    this.#service = service
    if (!offered) return {}
    this.#featureless = false
    this.#features = new Set(
      offered.filter((feature) => (SUPPORTED_FEATURES as readonly string[]).includes(feature)),
    )
    if (this.#features.has(Feature.Attachments)) this.enableAttachments()
    if (this.#features.has(Feature.Heartbeat)) {
      this.connection.startHeartbeat({
        interval: this.#options.heartbeatInterval,
        timeout: this.#options.heartbeatTimeout,
        ping: () => {
          this.request('ping', {}).catch(() => {})
        },
      })
    }
    return { version: PROTOCOL_VERSION, features: [...this.#features] }
  }

  async #openChannel(service: Service, name: string, id: number) {
    this.#require(Feature.Channels)
    const entry = service.lookup(service.channels, 'channel', name)
    if (this.channels.has(id)) throw new RefusedError(`channel ${id} is already open`)
    const channel = this.addChannel(id, name)
    channel.setCheck(entry.check)
    service.metrics.opened('channel', name, channel)
    try {
      await entry.onOpen(channel)
    } catch (error) {
      channel.finish('refused', false)
      throw new RefusedError(
        `channel "${name}" refused: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      )
    }
    return {}
  }

  async #openStream(service: Service, name: string, id: number, window: number) {
    this.#require(Feature.Streams)
    const entry = service.lookup(service.streams, 'stream', name)
    if (this.streams.has(id)) throw new RefusedError(`stream ${id} is already open`)
    const receiveWindow = this.#options.streamWindow ?? Limits.streamWindow
    const stream = this.addStream(id, name, window, receiveWindow)
    service.metrics.opened('stream', name, stream)
    try {
      await entry.onOpen(stream)
    } catch (error) {
      this.streams.delete(id)
      throw new RefusedError(
        `stream "${name}" refused: ${error instanceof Error ? error.message : String(error)}`,
        { cause: error },
      )
    }
    return { window: receiveWindow }
  }

  protected override onInvalid(error: ProtocolError): void {
    this.#registry.rejected(error.code)
  }

  protected cleanup(_info: CloseInfo): void {
    this.clock.clearTimeout(this.#bindTimer)
    const service = this.#service
    if (!service) return
    for (const name of this.#watching) service.objects.get(name)?.watchers.delete(this)
    for (const name of this.#listening) service.events.get(name)?.listeners.delete(this)
  }
}

/** Counters of an {@link RpcServer}; see {@link RpcServer.stats}. */
export interface RpcServerStats extends SessionCounters, Omit<ServerCounters, 'open'> {
  /** Sessions open now. */
  sessions: number
  /** Handlers running now, over every session. */
  running: number
  /** Bytes received and sent over every session since the server started. */
  bytesIn: number
  bytesOut: number
  /** Bytes sent and not yet taken by the peers now. */
  bytesQueued: number
  /**
   * Frames and commands refused before reaching a service, by wire code:
   * unreadable frames (`invalid_message`, `too_deep`, …), commands before
   * `bind` (`not_bound`), binds to no such service (`unknown_service`).
   * Commands answered busy are counted in `busy`.
   */
  rejectedByCode: Record<string, number>
}

/**
 * Serves services to clients: one listener, many services, chosen by each
 * connection's `bind`.
 */
export class RpcServer
  extends EventEmitter<{ connection: [MessageConnection] }>
  implements ServiceRegistry, Closable
{
  readonly #services = new Map<string, Service>()
  readonly #options: ServeOptions
  readonly #listener: MessageServer | undefined
  readonly #sessions = new Set<ServerSession>()
  readonly #counters: SessionCounters = {
    busy: 0,
    dropped: 0,
    windowViolations: 0,
    invalidChannelMessages: 0,
  }
  readonly #traffic = new TrafficCounter()
  readonly #rejected = new Map<string, number>()
  #closing: Promise<CloseInfo> | undefined
  /** Resolves with the reason once the server has closed; never rejects. */
  readonly closed: Promise<CloseInfo>
  #resolveClosed!: (info: CloseInfo) => void

  /** @internal Use {@link serve}. */
  constructor(listener: MessageServer | undefined, options: ServeOptions = {}) {
    super()
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    this.#listener = listener
    this.#options = options
    listener?.on('connection', (connection) => this.accept(connection))
  }

  /** The TCP port clients connect to (0 without a listener). */
  get port(): number {
    return this.#listener?.port ?? 0
  }

  /**
   * What clients were refused or made to wait, counted since the server
   * started: connections refused by the caps and accept failures (from the
   * listener), commands answered `busy` and notifications dropped at the
   * in-flight limit, sessions closed for ignoring a stream window.
   */
  get stats(): RpcServerStats {
    const listener = this.#listener?.counters
    return {
      sessions: this.#sessions.size,
      running: [...this.#sessions].reduce((sum, session) => sum + session.inFlight, 0),
      accepted: listener?.accepted ?? 0,
      refusedTotal: listener?.refusedTotal ?? 0,
      refusedPerAddress: listener?.refusedPerAddress ?? 0,
      acceptErrors: listener?.acceptErrors ?? 0,
      ...(listener?.handshakeFailures !== undefined
        ? { handshakeFailures: listener.handshakeFailures }
        : {}),
      ...this.#counters,
      ...this.#traffic.totals(),
      rejectedByCode: Object.fromEntries(this.#rejected),
    }
  }

  /** @internal */
  rejected(code: string): void {
    this.#rejected.set(code, (this.#rejected.get(code) ?? 0) + 1)
  }

  /** The services served, by id. */
  get services(): ReadonlyMap<string, Service> {
    return this.#services
  }

  get(id: string): Service | undefined {
    return this.#services.get(id)
  }

  /** Starts serving a service. */
  add(service: Service): void {
    if (this.#services.has(service.id))
      throw new TypeError(`a service with id "${service.id}" is already served`)
    this.#services.set(service.id, service)
  }

  /** Stops serving a service; connections bound to it are closed. */
  remove(id: string, reason = 'service removed'): boolean {
    if (!this.#services.delete(id)) return false
    const error = new ClosedError(`service ${id} is going away (${reason}); the call was aborted`)
    for (const session of this.#sessions)
      if (session.boundTo === id) session.shutdown(reason, error)
    return true
  }

  /** Serves one connection, e.g. one end of an in-memory pair. */
  accept(connection: MessageConnection): void {
    if (this.#closing) {
      connection.close('server closing')
      return
    }
    const session = new ServerSession(connection, this, this.#options, this.#counters)
    this.#sessions.add(session)
    this.#traffic.add(connection)
    connection.once('close', () => this.#sessions.delete(session))
    this.emit('connection', connection)
  }

  /**
   * Closes the listener and every connection; idempotent. Running handlers
   * are aborted (their `signal`) and their callers answered with `closed`
   * at once.
   */
  close(reason = 'server closing'): Promise<CloseInfo> {
    this.#closing ??= (async () => {
      const error = new ClosedError(`service closing (${reason}); the call was aborted`)
      for (const session of [...this.#sessions]) session.shutdown(reason, error)
      await this.#listener?.close(reason)
      this.#resolveClosed({ reason })
      return this.closed
    })()
    return this.#closing
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

/**
 * Serves services on a TCP port (or Unix socket) without discovery.
 *
 * @example
 * ```ts
 * const server = await serve([service], { port: 4000 })
 * console.log(`serving ${service.id} on port ${server.port}`)
 * ```
 */
export async function serve(
  services: Service[],
  options: ServeOptions & ListenOptions = {},
): Promise<RpcServer> {
  const listener = await listen(options)
  const server = new RpcServer(listener, options)
  for (const service of services) server.add(service)
  return server
}
