import { EventEmitter } from 'node:events'
import { type DiscoveredService, matchesFilter, type ServiceFilter } from '@autobus/discovery'
import {
  Limits,
  RemoteError,
  type ServiceDescription,
  UnknownNameError,
  UnreachableError,
} from '@autobus/protocol'
import type {
  ByteStream,
  Channel,
  ChannelOptions,
  Connection,
  EventHandler,
  RequestOptions,
  Subscription,
  WatchHandler,
} from '@autobus/rpc'
import { createDeadline } from './deadline.js'
import { type Connector, HandlerRegistry, type ServiceDirectory } from './directory.js'

/** Options for a call through a proxy. */
export interface ProxyRequestOptions extends RequestOptions {
  /** Wait for a bind when unbound (default true); false fails at once. */
  waitForBind?: boolean
}

/** Options for {@link createSingleServiceProxy}. */
export interface SingleServiceProxyOptions {
  directory: ServiceDirectory
  connect: Connector
  /** Which services qualify (default all). */
  filter?: ServiceFilter
  /** Delay before retrying when every candidate failed (default 1 s). */
  retryDelay?: number
}

/** Events of a {@link SingleServiceProxy}. */
export type SingleServiceProxyEvents = {
  bound: [service: DiscoveredService]
  unbound: [service: DiscoveredService, reason: string]
}

type Why = { reason: string }

/**
 * Binds to one service matching a filter and rebinds when it goes away. Has
 * the interface of a {@link Connection}; listeners and watchers survive
 * rebinds (watchers see null while unbound, then the new service's value).
 */
export class SingleServiceProxy extends EventEmitter<SingleServiceProxyEvents> {
  readonly filter: ServiceFilter
  /** Resolves when the proxy is closed. */
  readonly closed: Promise<Why>
  readonly #directory: ServiceDirectory
  readonly #connect: Connector
  readonly #retryDelay: number
  readonly #listeners = new HandlerRegistry<EventHandler>()
  readonly #watchers = new HandlerRegistry<WatchHandler>()
  readonly #values = new Map<string, unknown>()
  #connection: Connection | undefined
  #service: DiscoveredService | undefined
  #binding = false
  #retryTimer: NodeJS.Timeout | undefined
  #closedWhy: Why | undefined
  #resolveClosed!: (why: Why) => void
  readonly #abort = new AbortController()

  /** @internal Use {@link createSingleServiceProxy}. */
  constructor(options: SingleServiceProxyOptions) {
    super()
    this.filter = options.filter ?? {}
    this.#directory = options.directory
    this.#connect = options.connect
    this.#retryDelay = options.retryDelay ?? 1_000
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
    clearTimeout(this.#retryTimer)
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
        this.#retryTimer = setTimeout(() => void this.#bind(), this.#retryDelay)
        this.#retryTimer.unref()
      }
    } finally {
      this.#binding = false
    }
  }

  async #adopt(service: DiscoveredService, connection: Connection): Promise<void> {
    this.#connection = connection
    this.#service = service
    connection.onClose((info) => this.#lost(service, connection, info.reason))
    // Re-establish every listen and watch on the new connection.
    await Promise.all([
      ...[...this.#listeners.names()].map((name) =>
        this.#listenOn(connection, name).catch(() => {}),
      ),
      ...[...this.#watchers.names()].map((name) => this.#watchOn(connection, name).catch(() => {})),
    ])
    if (this.#connection === connection) this.emit('bound', service)
  }

  #lost(service: DiscoveredService, connection: Connection, reason: string): void {
    if (this.#connection !== connection) return
    this.#connection = undefined
    this.#service = undefined
    this.emit('unbound', service, reason)
    void this.#bind()
  }

  #listenOn(connection: Connection, name: string): Promise<Subscription> {
    return connection.listen(name, (...args) => {
      if (this.#connection !== connection) return
      for (const handler of this.#listeners.get(name)) handler(...args)
    })
  }

  #watchOn(connection: Connection, name: string): Promise<Subscription> {
    return connection.watch(name, (value) => {
      // A dead connection's null is delivered here too: the watcher sees
      // null while unbound.
      if (this.#connection !== connection && value !== null) return
      this.#values.set(name, value)
      for (const handler of this.#watchers.get(name)) handler(value)
    })
  }

  /** Resolves with the connection once bound; rejects on timeout, abort or close. */
  async waitForBind(options: RequestOptions = {}): Promise<Connection> {
    if (this.#connection) return this.#connection
    if (this.#closedWhy) throw new UnreachableError(`proxy is closed: ${this.#closedWhy.reason}`)
    const timeout = options.timeout ?? Limits.callTimeout
    const deadline = createDeadline(timeout, [this.#abort.signal, options.signal])
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
  async call(
    name: string,
    args: readonly unknown[] = [],
    options: ProxyRequestOptions = {},
  ): Promise<unknown> {
    const started = performance.now()
    const connection = await this.#connected(options)
    const timeout =
      options.timeout === undefined
        ? undefined
        : Math.max(1, options.timeout - (performance.now() - started))
    return connection.call(name, args, { ...options, timeout })
  }

  /** Fire-and-forget to the bound service; throws if unbound. */
  notify(name: string, args: readonly unknown[] = []): void {
    if (!this.#connection)
      throw new UnreachableError(`no service matching ${JSON.stringify(this.filter)} is bound`)
    this.#connection.notify(name, args)
  }

  /** Calls a function and hands the outcome to one of two callbacks. */
  callback(
    name: string,
    args: readonly unknown[],
    onResult: (result: unknown) => void,
    onError: (error: Error) => void = () => {},
    options: ProxyRequestOptions = {},
  ): void {
    this.call(name, args, options).then(onResult, onError)
  }

  /**
   * Listens to an event on whichever service is bound, across rebinds. If a
   * service is bound now and answers that it has no such event, rejects
   * (with its `UnknownNameError`, or the `RemoteError` of an original
   * Autobus 2 service) and keeps nothing.
   */
  async listen(name: string, handler: EventHandler): Promise<Subscription> {
    const first = this.#listeners.add(name, handler)
    const subscription = this.#listeners.subscription(name, handler)
    if (first && this.#connection) {
      try {
        await this.#listenOn(this.#connection, name)
      } catch (error) {
        if (refusedByService(error)) {
          await subscription.close()
          throw error
        }
      }
    }
    return subscription
  }

  /**
   * Watches an object on whichever service is bound; null while unbound. If
   * a service is bound now and answers that it has no such object, rejects
   * as {@link SingleServiceProxy.listen} does.
   */
  async watch(name: string, handler: WatchHandler): Promise<Subscription> {
    const first = this.#watchers.add(name, handler)
    const subscription = this.#watchers.subscription(name, handler)
    const connection = this.#connection
    if (first && connection) {
      try {
        await this.#watchOn(connection, name)
      } catch (error) {
        if (refusedByService(error)) {
          await subscription.close()
          throw error
        }
        handler(null)
      }
    } else {
      handler(connection ? (this.#values.get(name) ?? null) : null)
    }
    return subscription
  }

  /** Opens a channel on the bound service (it closes if that service goes). */
  async openChannel(
    name: string,
    options: ProxyRequestOptions & ChannelOptions = {},
  ): Promise<Channel> {
    return (await this.#connected(options)).openChannel(name, options)
  }

  /** Opens a byte stream on the bound service. */
  async openStream(name: string, options: ProxyRequestOptions = {}): Promise<ByteStream> {
    return (await this.#connected(options)).openStream(name, options)
  }

  /** Describes the bound service. */
  async describe(options: ProxyRequestOptions = {}): Promise<ServiceDescription> {
    return (await this.#connected(options)).describe(options)
  }

  /** Calls `listener` once the proxy is closed (at once if it is). */
  onClose(listener: (why: Why) => void): () => void {
    let active = true
    this.closed.then((why) => active && listener(why))
    return () => {
      active = false
    }
  }

  /** Unbinds and stops rebinding; idempotent. */
  async close(reason = 'proxy closed'): Promise<Why> {
    if (!this.#closedWhy) {
      this.#closedWhy = { reason }
      this.#abort.abort()
      clearTimeout(this.#retryTimer)
      this.#directory.off('appeared', this.#onAppeared)
      this.#directory.off('disappeared', this.#onDisappeared)
      const connection = this.#connection
      this.#connection = undefined
      this.#service = undefined
      await connection?.close(reason)
      this.#resolveClosed(this.#closedWhy)
    }
    return this.closed
  }

  [Symbol.asyncDispose](): Promise<unknown> {
    return this.close()
  }
}

/**
 * True if the service itself answered that it will not do this (an unknown
 * name, or an original service's plain error), as opposed to the connection
 * failing, which a rebind may cure.
 */
function refusedByService(error: unknown): boolean {
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
export function createSingleServiceProxy(options: SingleServiceProxyOptions): SingleServiceProxy {
  return new SingleServiceProxy(options)
}
