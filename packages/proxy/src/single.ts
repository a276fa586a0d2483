import { EventEmitter } from 'node:events'
import { type DiscoveredService, matchesFilter, type ServiceFilter } from '@autobus/discovery'
import {
  CallTimeoutError,
  type Clock,
  type Closable,
  type CloseInfo,
  Limits,
  RemoteError,
  type ServiceDescription,
  systemClock,
  UnknownNameError,
  UnreachableError,
} from '@autobus/protocol'
import type {
  ByteStream,
  CallArgs,
  CallRest,
  CallResult,
  ChannelName,
  ChannelOptions,
  ClientChannel,
  Connection,
  Contract,
  EventArgs,
  EventHandler,
  EventName,
  FunctionName,
  ObjectName,
  ObjectValue,
  RequestOptions,
  StreamName,
  Subscription,
  WatchHandler,
} from '@autobus/rpc'
import { createDeadline } from './deadline.js'
import { type Connector, checkDeclared, type ServiceDirectory, subscription } from './directory.js'

/** Options for a call through a proxy. */
export interface ProxyRequestOptions extends RequestOptions {
  /** Wait for a bind when unbound (default true); false fails at once. */
  waitForBind?: boolean
}

/** Options for {@link createSingleServiceProxy}. */
export interface SingleServiceProxyOptions<C extends Contract = Contract> {
  directory: ServiceDirectory
  connect: Connector
  /** Which services qualify (default all). */
  filter?: ServiceFilter
  /** Delay before retrying when every candidate failed (default 1 s). */
  retryDelay?: number
  /** Times retries, waits for a bind and calls' deadlines (default the system clock). */
  clock?: Clock
  /**
   * The services' contract: calls, listens and watches are then typed by
   * it, and a name it does not declare is refused at once, bound or not.
   */
  contract?: C
}

/** Events of a {@link SingleServiceProxy}. */
export type SingleServiceProxyEvents = {
  bound: [service: DiscoveredService]
  unbound: [service: DiscoveredService, reason: string]
}

/**
 * One name's handlers and the one subscription the proxy holds for them on
 * the bound connection: closed when the last handler goes, made again on
 * each new connection.
 */
interface Owned<H> {
  readonly handlers: Set<H>
  /** The subscription on the current connection, once asked for. */
  current: { connection: Connection; ready: Promise<Subscription> } | undefined
  /** The object's last value on the current connection, if known (watches). */
  value?: unknown
  known?: boolean
}

function release(owned: Owned<unknown>): void {
  const current = owned.current
  owned.current = undefined
  // A subscription that failed needs no undoing.
  current?.ready.then(
    (held) => held.close(),
    () => {},
  )
}

/**
 * Binds to one service matching a filter and rebinds when it goes away. Has
 * the interface of a {@link Connection}; listeners and watchers survive
 * rebinds (watchers see null while unbound, then the new service's value).
 * It holds one subscription per event or object on the bound connection,
 * however many handlers share it, and undoes it when the last one goes.
 */
export class SingleServiceProxy<C extends Contract = Contract>
  extends EventEmitter<SingleServiceProxyEvents>
  implements Closable
{
  readonly filter: ServiceFilter
  /** The contract it was made with, if any. */
  readonly contract: C | undefined
  /** Resolves with the reason once the proxy is closed. */
  readonly closed: Promise<CloseInfo>
  readonly #directory: ServiceDirectory
  readonly #connect: Connector
  readonly #retryDelay: number
  readonly #clock: Clock | undefined
  readonly #listens = new Map<string, Owned<EventHandler>>()
  readonly #watches = new Map<string, Owned<WatchHandler>>()
  #connection: Connection | undefined
  #service: DiscoveredService | undefined
  #binding = false
  #retryTimer: unknown
  #closedWhy: CloseInfo | undefined
  #closing: Promise<CloseInfo> | undefined
  #resolveClosed!: (info: CloseInfo) => void
  readonly #abort = new AbortController()

  /** @internal Use {@link createSingleServiceProxy}. */
  constructor(options: SingleServiceProxyOptions<C>) {
    super()
    this.filter = options.filter ?? {}
    this.contract = options.contract
    this.#directory = options.directory
    this.#connect = options.connect
    this.#retryDelay = options.retryDelay ?? 1_000
    this.#clock = options.clock
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    this.#directory.on('appeared', this.#onAppeared)
    this.#directory.on('disappeared', this.#onDisappeared)
    void this.#bind()
  }

  /** The service bound now, if any. */
  get service(): DiscoveredService | undefined {
    return this.#service
  }

  /** True while bound to a service. */
  get isBound(): boolean {
    return this.#connection !== undefined
  }

  get isClosed(): boolean {
    return this.#closedWhy !== undefined
  }

  #onAppeared = (service: DiscoveredService) => {
    if (!this.#connection && matchesFilter(service.info, this.filter)) void this.#bind()
  }

  #onDisappeared = (service: DiscoveredService) => {
    if (this.#service?.service === service.service) this.#connection?.close('service disappeared')
  }

  async #bind(): Promise<void> {
    if (this.#binding || this.#connection || this.#closedWhy) return
    this.#binding = true
    this.#cancelRetry()
    try {
      const candidates = this.#directory.snapshot(this.filter)
      for (const candidate of candidates) {
        if (this.#closedWhy) return
        const connection = await this.#connect(candidate, { signal: this.#abort.signal }).catch(
          () => undefined,
        )
        if (!connection) continue
        if (this.#closedWhy) {
          await connection.close('proxy closed')
          return
        }
        await this.#adopt(candidate, connection)
        return
      }
      // Every candidate failed: try again later, and at every new appearance.
      if (candidates.length > 0) {
        // The system clock's timers do not hold the process up.
        this.#retryTimer = (this.#clock ?? systemClock).setTimeout(() => {
          this.#retryTimer = undefined
          void this.#bind()
        }, this.#retryDelay)
      }
    } finally {
      this.#binding = false
    }
  }

  #cancelRetry(): void {
    if (this.#retryTimer !== undefined) (this.#clock ?? systemClock).clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
  }

  async #adopt(service: DiscoveredService, connection: Connection): Promise<void> {
    this.#connection = connection
    this.#service = service
    connection.closed.then((info) => this.#lost(service, connection, info.reason))
    // Move every listen and watch to the new connection.
    await Promise.all([
      ...[...this.#listens].map(([name, owned]) => this.#listenOn(connection, name, owned)),
      ...[...this.#watches].map(([name, owned]) => this.#watchOn(connection, name, owned)),
    ])
    if (this.#connection === connection) this.emit('bound', service)
  }

  #lost(service: DiscoveredService, connection: Connection, reason: string): void {
    if (this.#connection !== connection) return
    this.#connection = undefined
    this.#service = undefined
    // The subscriptions died with the connection.
    for (const owned of [...this.#listens.values(), ...this.#watches.values()]) {
      if (owned.current?.connection === connection) owned.current = undefined
    }
    this.emit('unbound', service, reason)
    void this.#bind()
  }

  /** Subscribes `owned` on `connection`; settles when the service has answered. */
  #listenOn(
    connection: Connection,
    name: string,
    owned: Owned<EventHandler>,
    options: RequestOptions = {},
  ): Promise<void> {
    const ready = connection.listen(
      name,
      (...args) => {
        if (this.#connection !== connection || this.#listens.get(name) !== owned) return
        for (const handler of [...owned.handlers]) handler(...args)
      },
      options,
    )
    return this.#hold(owned, connection, ready)
  }

  /** Keeps a subscription as the current one until it fails, so the next handler asks again. */
  #hold(
    owned: Owned<unknown>,
    connection: Connection,
    ready: Promise<Subscription>,
  ): Promise<void> {
    const current = { connection, ready }
    owned.current = current
    return ready.then(
      () => {},
      (error) => {
        if (owned.current === current) owned.current = undefined
        throw error
      },
    )
  }

  #watchOn(
    connection: Connection,
    name: string,
    owned: Owned<WatchHandler>,
    options: RequestOptions = {},
  ): Promise<void> {
    owned.known = false
    const ready = connection.watch(
      name,
      (value) => {
        // A dead connection's null is delivered here too: the watcher sees
        // null while unbound.
        if (this.#connection !== connection && value !== null) return
        if (this.#watches.get(name) !== owned) return
        owned.value = value
        owned.known = true
        for (const handler of [...owned.handlers]) handler(value)
      },
      options,
    )
    return this.#hold(owned, connection, ready)
  }

  /**
   * Adds a handler to a name's one subscription, making it on the bound
   * connection if it is the first. A refusal by the service (an unknown
   * name) rejects and keeps nothing; a dying connection does not, as the
   * next bind subscribes again.
   */
  async #subscribe<H>(
    table: Map<string, Owned<H>>,
    name: string,
    handler: H,
    on: (
      connection: Connection,
      name: string,
      owned: Owned<H>,
      options: RequestOptions,
    ) => Promise<void>,
    delivered: (owned: Owned<H>) => void,
    options: RequestOptions,
  ): Promise<Subscription> {
    let owned = table.get(name)
    if (!owned) {
      owned = { handlers: new Set(), current: undefined }
      table.set(name, owned)
    }
    const entry = owned
    const connection = this.#connection
    if (connection && entry.current?.connection !== connection)
      void on(connection, name, entry, options).catch(() => {})
    const remove = () => {
      if (!entry.handlers.delete(handler) || entry.handlers.size > 0) return
      if (table.get(name) === entry) table.delete(name)
      release(entry)
    }
    const pending = entry.current
    if (pending) {
      try {
        await pending.ready
      } catch (error) {
        // Refused by the service, or given up on by the caller: nothing is
        // kept. A connection that died instead is followed by a rebind.
        if (
          refusedByService(error) ||
          options.signal?.aborted ||
          error instanceof CallTimeoutError
        ) {
          if (entry.handlers.size === 0 && table.get(name) === entry) table.delete(name)
          throw error
        }
      }
    }
    entry.handlers.add(handler)
    delivered(entry)
    return subscription(async () => remove())
  }

  /** Resolves with the connection once bound; rejects on timeout, abort or close. */
  async waitForBind(options: RequestOptions = {}): Promise<Connection> {
    if (this.#connection) return this.#connection
    if (this.#closedWhy) throw new UnreachableError(`proxy is closed: ${this.#closedWhy.reason}`)
    const timeout = options.timeout ?? Limits.callTimeout
    const deadline = createDeadline(timeout, [this.#abort.signal, options.signal], this.#clock)
    const signal = deadline.signal
    return new Promise((resolve, reject) => {
      const done = () => {
        deadline.clear()
        this.off('bound', onBound)
        signal.removeEventListener('abort', onAbort)
      }
      const onBound = () => {
        done()
        resolve(this.#connection!)
      }
      const onAbort = () => {
        done()
        if (options.signal?.aborted) reject(options.signal.reason)
        else if (this.#closedWhy)
          reject(new UnreachableError(`proxy is closed: ${this.#closedWhy.reason}`))
        else
          reject(
            new UnreachableError(
              `no service matching ${JSON.stringify(this.filter)} bound within ${timeout} ms`,
            ),
          )
      }
      if (signal.aborted) {
        onAbort()
        return
      }
      this.on('bound', onBound)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  async #connected(options: ProxyRequestOptions): Promise<Connection> {
    if (this.#connection) return this.#connection
    if (options.waitForBind === false) {
      throw new UnreachableError(`no service matching ${JSON.stringify(this.filter)} is bound`)
    }
    return this.waitForBind(options)
  }

  /** Calls a function on the bound service (waiting for a bind if need be). */
  call<N extends FunctionName<C>>(
    name: N,
    ...rest: CallRest<C, N, ProxyRequestOptions>
  ): Promise<CallResult<C, N>>
  async call(
    name: string,
    args: readonly unknown[] = [],
    options: ProxyRequestOptions = {},
  ): Promise<unknown> {
    checkDeclared(this.contract, 'functions', name)
    const now = () => (this.#clock ? this.#clock.now() : performance.now())
    const started = now()
    const connection = await this.#connected(options)
    const timeout =
      options.timeout === undefined ? undefined : Math.max(1, options.timeout - (now() - started))
    return connection.call(name, args, { ...options, timeout })
  }

  /** Fire-and-forget to the bound service; throws if unbound. */
  notify<N extends FunctionName<C>>(
    name: N,
    ...rest: [] extends CallArgs<C, N> ? [args?: CallArgs<C, N>] : [args: CallArgs<C, N>]
  ): void
  notify(name: string, args: readonly unknown[] = []): void {
    checkDeclared(this.contract, 'functions', name)
    if (!this.#connection)
      throw new UnreachableError(`no service matching ${JSON.stringify(this.filter)} is bound`)
    this.#connection.notify(name, args)
  }

  /** Calls a function and hands the outcome to one of two callbacks. */
  callback<N extends FunctionName<C>>(
    name: N,
    args: CallArgs<C, N>,
    onResult: (result: CallResult<C, N>) => void,
    onError: (error: Error) => void = () => {},
    options: ProxyRequestOptions = {},
  ): void {
    const call = this.call as (...rest: unknown[]) => Promise<CallResult<C, N>>
    call.call(this, name, args, options).then(onResult, onError)
  }

  /**
   * Listens to an event on whichever service is bound, across rebinds. An
   * event the contract does not declare, or that the bound service says it
   * does not have (`UnknownNameError`, or an original Autobus 2 service's
   * `RemoteError`), rejects and keeps nothing; so does an abort of
   * `options.signal` (or its timeout) before the service has answered.
   */
  async listen<N extends EventName<C>>(
    name: N,
    handler: EventHandler<EventArgs<C, N>>,
    options: RequestOptions = {},
  ): Promise<Subscription> {
    checkDeclared(this.contract, 'events', name)
    return this.#subscribe(
      this.#listens,
      name,
      handler as EventHandler,
      (c, n, o, r) => this.#listenOn(c, n, o, r),
      () => {},
      options,
    )
  }

  /**
   * Watches an object on whichever service is bound: the handler gets its
   * value now (null while unbound), then each change. Unknown names reject
   * as {@link SingleServiceProxy.listen} does.
   */
  async watch<N extends ObjectName<C>>(
    name: N,
    handler: WatchHandler<ObjectValue<C, N>>,
    options: RequestOptions = {},
  ): Promise<Subscription> {
    checkDeclared(this.contract, 'objects', name)
    const deliver = handler as WatchHandler
    return this.#subscribe(
      this.#watches,
      name,
      deliver,
      (c, n, o, r) => this.#watchOn(c, n, o, r),
      (owned) => {
        // Bound but not yet told: the first value reaches every handler.
        if (!this.#connection) deliver(null)
        else if (owned.known) deliver(owned.value ?? null)
      },
      options,
    )
  }

  /** Opens a channel on the bound service (it closes if that service goes). */
  async openChannel<N extends ChannelName<C>>(
    name: N,
    options: ProxyRequestOptions & ChannelOptions = {},
  ): Promise<ClientChannel<C, N>> {
    checkDeclared(this.contract, 'channels', name)
    // The connection is not typed by the contract: the check of replies is
    // handed over with the open.
    const reply = this.contract?.channels?.[name]?.reply
    const connection = await this.#connected(options)
    return connection.openChannel(name, reply ? { ...options, reply } : options) as Promise<
      ClientChannel<C, N>
    >
  }

  /** Opens a byte stream on the bound service. */
  async openStream(name: StreamName<C>, options: ProxyRequestOptions = {}): Promise<ByteStream> {
    checkDeclared(this.contract, 'streams', name)
    return (await this.#connected(options)).openStream(name, options)
  }

  /** Describes the bound service. */
  async describe(options: ProxyRequestOptions = {}): Promise<ServiceDescription> {
    return (await this.#connected(options)).describe(options)
  }

  /**
   * Unbinds and stops rebinding; idempotent. Resolves with the same value
   * as `closed` once the connection is closed.
   */
  close(reason = 'proxy closed'): Promise<CloseInfo> {
    this.#closing ??= (async () => {
      const info = { reason }
      this.#closedWhy = info
      this.#abort.abort()
      this.#cancelRetry()
      this.#directory.off('appeared', this.#onAppeared)
      this.#directory.off('disappeared', this.#onDisappeared)
      const connection = this.#connection
      this.#connection = undefined
      this.#service = undefined
      this.#listens.clear()
      this.#watches.clear()
      await connection?.close(reason)
      this.#resolveClosed(info)
      return info
    })()
    return this.#closing
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

/**
 * True if the service itself answered that it will not do this (an unknown
 * name, or an original service's plain error), as opposed to the connection
 * failing, which a rebind may cure.
 */
export function refusedByService(error: unknown): boolean {
  return error instanceof UnknownNameError || error instanceof RemoteError
}

/**
 * Creates a proxy bound to one service matching `filter`, rebinding to
 * another match when its service disappears or its connection dies.
 *
 * @example
 * ```ts
 * const speaker = createSingleServiceProxy({ directory: discoverer, connect, filter: { type: 'speaker' } })
 * await speaker.call('say', ['hello'])
 * ```
 */
export function createSingleServiceProxy<const C extends Contract = Contract>(
  options: SingleServiceProxyOptions<C>,
): SingleServiceProxy<C> {
  return new SingleServiceProxy(options)
}
