import { EventEmitter } from 'node:events'
import os from 'node:os'
import {
  createDiscoverer,
  createPublisher,
  type DiscoveredService,
  type Discoverer,
  type DiscovererEvents,
  type DiscovererTimings,
  type DiscoveryNetwork,
  matchesFilter,
  type PeerOptions,
  type Published,
  type Publisher,
  type PublisherTimings,
  type ServiceChange,
  type ServiceFilter,
  sharedNetwork,
  udpNetwork,
} from '@autobus/discovery'
import {
  activeLogger,
  ClosedError,
  DISCOVERY_PORT,
  type Logger,
  META_SERVICE_ID,
  UnreachableError,
} from '@autobus/protocol'
import {
  createDeadline,
  createMultiServiceProxy,
  createSingleServiceProxy,
  type MultiServiceProxy,
  type SingleServiceProxy,
} from '@autobus/proxy'
import {
  type Connection,
  type ConnectServiceOptions,
  type Contract,
  connectService,
  createService,
  type Implementation,
  type RpcServer,
  type ServeOptions,
  type Service,
  type ServiceOptions,
  serve,
} from '@autobus/rpc'
import { withEnvironment } from './environment.js'
import { createMetaService } from './meta.js'
import { type BusMetrics, collectMetrics } from './metrics.js'
import { ServiceTable } from './table.js'

/** Options for {@link createBus}. */
export interface BusOptions extends PublisherTimings, DiscovererTimings, ServeOptions, PeerOptions {
  /** Announce and discover services by UDP broadcast (default true). */
  discovery?: boolean
  /** TCP port for this bus's services (default 0: any free port). */
  port?: number
  /** Address the TCP listener binds (default all IPv4 addresses). */
  host?: string
  /** UDP discovery port (default 52722). */
  discoveryPort?: number
  /** Interfaces to announce on, by name or address (default all that broadcast, and loopback). */
  interfaces?: readonly string[]
  /** A discovery network to use instead of UDP (tests). */
  network?: DiscoveryNetwork
  /** Host name announced as "hostname" (default this host's, up to the first dot). */
  hostname?: string
  /**
   * Where every layer reports what it sees (default: nowhere, unless
   * `AUTOBUS_DEBUG=1` or `DEBUG=autobus:*` is set): any object with
   * `debug`, `info`, `warn` and `error`, so `console` or pino fit.
   */
  logger?: Logger
}

/** Something a bus can connect to. */
export type ServiceTarget = { host: string; port: number; service: string }

/** Options for replaying services already known to a new listener. */
export interface ServiceListenerOptions {
  /** Call the listener for every service already known first (default false). */
  replay?: boolean
  /** Only services matching this filter. */
  filter?: ServiceFilter
}

/** A published service; unpublish to take it down. */
export interface Publication {
  readonly service: Service
  /** The info as announced, with "hostname". */
  readonly info: Readonly<Record<string, unknown>>
  /** Resolves once the service has first been announced (at once without discovery). */
  readonly announced: Promise<void>
  /** Sends goodbyes and stops serving it; idempotent. */
  unpublish(): Promise<void>
}

/**
 * A bus: one per program. It serves its services on one TCP listener,
 * announces them (unless discovery is off), keeps the table of services on
 * the network, and connects to them directly or through proxies.
 */
export class Bus extends EventEmitter<DiscovererEvents> {
  readonly #server: RpcServer
  readonly #table = new ServiceTable()
  readonly #publisher: Publisher | undefined
  readonly #discoverer: Discoverer | undefined
  readonly #hostname: string
  readonly #local = new Map<string, { service: Service; published: Published | undefined }>()
  readonly #connections = new Set<Connection<Contract>>()
  readonly #proxies = new Set<SingleServiceProxy<Contract> | MultiServiceProxy<Contract>>()
  #closing: Promise<void> | undefined
  readonly #logger: Logger | undefined

  /** @internal Use {@link createBus}. */
  constructor(
    server: RpcServer,
    publisher: Publisher | undefined,
    discoverer: Discoverer | undefined,
    hostname: string,
    logger?: Logger,
  ) {
    super()
    this.#logger = activeLogger(logger)
    this.#server = server
    this.#publisher = publisher
    this.#discoverer = discoverer
    this.#hostname = hostname
    if (discoverer) this.#table.attach(discoverer)
    this.#table.on('appeared', (service, cause) => this.emit('appeared', service, cause))
    this.#table.on('disappeared', (service, cause) => this.emit('disappeared', service, cause))
    this.#table.on('changed', (service, previous) => this.emit('changed', service, previous))
    server.add(
      createMetaService(
        () => [...this.#local.values()].map((entry) => entry.service),
        () => this.metrics(),
      ),
    )
  }

  /** The TCP port this bus serves on. */
  get port(): number {
    return this.#server.port
  }

  /**
   * A snapshot of this bus's figures: per function calls, errors by code and
   * latency; per event fires and deliveries; per object changes and
   * watchers; sessions and what was refused. Peers read the same with the
   * meta-service's `stats` function; `renderPrometheus` turns it into text and `serveMetrics` serves that.
   */
  metrics(): BusMetrics {
    return collectMetrics(
      this.#server.stats,
      [...this.#local.values()].map((entry) => entry.service),
    )
  }

  /** True if this bus announces and discovers. */
  get discovery(): boolean {
    return this.#discoverer !== undefined
  }

  /** This bus's own services, by id. */
  get localServices(): ReadonlyMap<string, Service> {
    return new Map([...this.#local].map(([id, entry]) => [id, entry.service]))
  }

  #ensureOpen(): void {
    if (this.#closing) throw new ClosedError('bus is closed')
  }

  /**
   * Creates a service, ready to publish: from a contract and its
   * implementation (every handler checked by the compiler), or from options
   * alone, to define things on one by one.
   *
   * @example
   * ```ts
   * const greeter = defineContract({
   *   functions: { hello: { args: [Type.String()], result: Type.String() } },
   * })
   * const service = bus.createService(greeter, {
   *   functions: { hello: (name) => `Hello, ${name}!` },
   * }, { info: { type: 'greeter' } })
   * const publication = bus.publish(service)
   * ```
   */
  createService<const C extends Contract>(
    contract: C,
    implementation: Implementation<C>,
    options?: ServiceOptions,
  ): Service<C>
  createService(options?: ServiceOptions): Service
  createService(
    first: Contract | ServiceOptions = {},
    implementation?: Implementation<Contract>,
    options: ServiceOptions = {},
  ): Service<Contract> {
    return implementation === undefined
      ? createService(first as ServiceOptions)
      : createService(first as Contract, implementation, options)
  }

  /**
   * Serves a service on this bus and announces it (after the hold-off).
   * Its info must fit in one datagram. Define everything before publishing:
   * a service's info never changes while it lives.
   */
  publish(service: Service): Publication {
    this.#ensureOpen()
    if (service.id === META_SERVICE_ID || this.#local.has(service.id)) {
      throw new TypeError(`a service with id "${service.id}" is already published on this bus`)
    }
    const published = this.#publisher?.publish({
      service: service.id,
      port: this.port,
      info: { ...service.info },
    })
    const info = published?.info ?? Object.freeze({ hostname: this.#hostname, ...service.info })
    this.#server.add(service)
    this.#local.set(service.id, { service, published })
    this.#table.addLocal(
      Object.freeze({
        host: '127.0.0.1',
        port: this.port,
        service: service.id,
        info: Object.freeze({ ...info, host: '127.0.0.1', port: this.port, service: service.id }),
      }),
    )
    let gone: Promise<void> | undefined
    return {
      service,
      info,
      announced: published?.announced ?? Promise.resolve(),
      unpublish: () => {
        gone ??= this.#unpublish(service.id)
        return gone
      },
    }
  }

  async #unpublish(id: string): Promise<void> {
    const entry = this.#local.get(id)
    if (!entry) return
    this.#local.delete(id)
    this.#table.removeLocal(id)
    await entry.published?.unpublish()
    this.#server.remove(id, 'service unpublished')
  }

  /** The services known now (this bus's and the network's), optionally filtered. */
  services(filter?: ServiceFilter): DiscoveredService[] {
    return this.#table.snapshot(filter)
  }

  /** The same as {@link Bus.services}; lets a bus serve as a proxy's directory. */
  snapshot(filter?: ServiceFilter): DiscoveredService[] {
    return this.#table.snapshot(filter)
  }

  /** Changes to the table as an async iterable. */
  changes(
    options: { signal?: AbortSignal; filter?: ServiceFilter } = {},
  ): AsyncIterable<ServiceChange> {
    return this.#table.changes(options)
  }

  /**
   * Calls `listener` for every service that appears (with `replay`, first
   * for every service already known). Returns a function that removes it.
   */
  onServiceAppeared(
    listener: (service: DiscoveredService) => void,
    options: ServiceListenerOptions = {},
  ): () => void {
    return this.onServiceChange((appeared, service) => appeared && listener(service), options)
  }

  /** Calls `listener` for every service that disappears. Returns a remover. */
  onServiceDisappeared(
    listener: (service: DiscoveredService) => void,
    options: ServiceListenerOptions = {},
  ): () => void {
    return this.onServiceChange((appeared, service) => !appeared && listener(service), {
      ...options,
      replay: false,
    })
  }

  /**
   * One listener for both: called with `true` when a service appears and
   * `false` when one disappears, so nothing is missed between two
   * registrations. With `replay`, first called with `true` for every
   * service already known.
   *
   * @example
   * ```ts
   * bus.onServiceChange((appeared, service) => {
   *   if (appeared) list.add(service.service)
   *   else list.delete(service.service)
   * }, { replay: true, filter: { type: 'speaker' } })
   * ```
   */
  onServiceChange(
    listener: (appeared: boolean, service: DiscoveredService) => void,
    options: ServiceListenerOptions = {},
  ): () => void {
    const keep = (service: DiscoveredService) =>
      !options.filter || matchesFilter(service.info, options.filter)
    const up = (service: DiscoveredService) => keep(service) && listener(true, service)
    const down = (service: DiscoveredService) => keep(service) && listener(false, service)
    if (options.replay)
      for (const service of this.#table.snapshot(options.filter)) listener(true, service)
    this.#table.on('appeared', up)
    this.#table.on('disappeared', down)
    return () => {
      this.#table.off('appeared', up)
      this.#table.off('disappeared', down)
    }
  }

  /**
   * Resolves with the first service matching `filter`, waiting for one to
   * appear; rejects on timeout (default 30 s) or abort.
   */
  waitForService(
    filter: ServiceFilter = {},
    options: { timeout?: number; signal?: AbortSignal } = {},
  ): Promise<DiscoveredService> {
    const known = this.#table.snapshot(filter)[0]
    if (known) return Promise.resolve(known)
    const timeout = options.timeout ?? 30_000
    return new Promise((resolve, reject) => {
      const deadline = createDeadline(timeout, [options.signal])
      const signal = deadline.signal
      const stop = this.onServiceAppeared(
        (service) => {
          stop()
          deadline.clear()
          signal.removeEventListener('abort', abort)
          resolve(service)
        },
        { filter },
      )
      const abort = () => {
        stop()
        deadline.clear()
        reject(
          options.signal?.aborted
            ? options.signal.reason
            : new UnreachableError(
                `no service matching ${JSON.stringify(filter)} within ${timeout} ms`,
              ),
        )
      }
      if (signal.aborted) abort()
      else signal.addEventListener('abort', abort, { once: true })
    })
  }

  /**
   * Connects to a service: one discovered, or one known in advance by host,
   * port and id. The connection is closed when the bus closes. With a
   * `contract`, the connection is typed by it.
   *
   * @example
   * ```ts
   * const connection = await bus.connect(target, { contract: calculator })
   * const sum: number = await connection.call('add', [1, 2])
   * ```
   */
  async connect<const C extends Contract = Contract>(
    target: ServiceTarget,
    options: ConnectServiceOptions<C> = {},
  ): Promise<Connection<C>> {
    this.#ensureOpen()
    if (
      !target ||
      typeof target.host !== 'string' ||
      !Number.isInteger(target.port) ||
      typeof target.service !== 'string'
    ) {
      throw new TypeError('connect needs { host, port, service }')
    }
    const connection = await connectService(
      { host: target.host, port: target.port, service: target.service },
      this.#logger ? { logger: this.#logger, ...options } : options,
    )
    this.#connections.add(connection)
    connection.closed.then(() => this.#connections.delete(connection))
    return connection
  }

  /**
   * A proxy bound to one service matching `filter`, rebinding as services
   * come and go. With a `contract`, it is typed by it.
   *
   * @example
   * ```ts
   * const calculator = bus.singleServiceProxy({ type: 'calculator' }, { contract })
   * const sum: number = await calculator.call('add', [1, 2])
   * ```
   */
  singleServiceProxy<const C extends Contract = Contract>(
    filter: ServiceFilter = {},
    options: { contract?: C } = {},
  ): SingleServiceProxy<C> {
    this.#ensureOpen()
    const proxy = createSingleServiceProxy<C>({
      directory: this.#table,
      connect: (s, o) => this.connect(s, o),
      filter,
      ...(options.contract ? { contract: options.contract } : {}),
    })
    this.#keep(proxy)
    return proxy
  }

  /**
   * A proxy bound to every service matching `filter`; it binds in the
   * background, so `await proxy.waitForBind()` before a first call that
   * needs a service. With a `contract`, it is typed by it.
   */
  multiServiceProxy<const C extends Contract = Contract>(
    filter: ServiceFilter = {},
    options: { contract?: C } = {},
  ): MultiServiceProxy<C> {
    this.#ensureOpen()
    const proxy = createMultiServiceProxy<C>({
      directory: this.#table,
      connect: (s, o) => this.connect(s, o),
      filter,
      ...(options.contract ? { contract: options.contract } : {}),
    })
    this.#keep(proxy)
    return proxy
  }

  /** Closes the proxy with the bus, and forgets it once closed either way. */
  #keep(proxy: SingleServiceProxy<Contract> | MultiServiceProxy<Contract>): void {
    this.#proxies.add(proxy)
    proxy.closed.then(() => this.#proxies.delete(proxy))
  }

  /**
   * Closes the bus: sends goodbyes for its services, closes proxies and
   * connections with a reason, and releases every socket. Idempotent.
   */
  close(reason = 'bus closing'): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all([...this.#proxies].map((proxy) => proxy.close(reason)))
      await Promise.all([...this.#connections].map((connection) => connection.close(reason)))
      await this.#publisher?.close()
      await this.#discoverer?.close()
      this.#table.close()
      await this.#server.close(reason)
    })()
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

/**
 * Creates a bus: one per program.
 *
 * Options not given are read from the environment where it sets them
 * (`AUTOBUS_DISCOVERY_PORT`, `AUTOBUS_INTERFACES`, `AUTOBUS_PEERS`, `AUTOBUS_DEBUG`; see the guide's
 * "Environment"); an option given here wins.
 *
 * @example
 * ```ts
 * await using bus = await createBus()
 * const service = bus.createService({ info: { type: 'greeter' } })
 * service.addFunction('hello', { args: [Type.String()] }, (name) => `Hello, ${name}!`)
 * bus.publish(service)
 *
 * const greeter = bus.singleServiceProxy({ type: 'greeter' })
 * console.log(await greeter.call('hello', ['world']))
 * ```
 */
export async function createBus(given: BusOptions = {}): Promise<Bus> {
  const options = withEnvironment(given)
  const hostname = options.hostname ?? os.hostname().split('.')[0]!
  const server = await serve([], {
    ...options,
    port: options.port ?? 0,
    host: options.host ?? '0.0.0.0',
  })
  const log = activeLogger(options.logger)
  log?.info(
    `autobus:bus serving on port ${server.port}${options.discovery === false ? ', no discovery' : `, discovery on port ${options.discoveryPort ?? DISCOVERY_PORT}`}`,
  )
  if (options.discovery === false)
    return new Bus(server, undefined, undefined, hostname, options.logger)
  const network = sharedNetwork(
    options.network ??
      udpNetwork({
        port: options.discoveryPort ?? DISCOVERY_PORT,
        ...(options.interfaces ? { interfaces: options.interfaces } : {}),
        ...(log ? { logger: log } : {}),
      }),
  )
  try {
    const peers = options.peers ?? []
    const publisher = await createPublisher({ ...options, peers, network, hostname })
    const discoverer = await createDiscoverer({ ...options, peers, network }).catch(
      async (error) => {
        await publisher.close()
        throw error
      },
    )
    return new Bus(server, publisher, discoverer, hostname, options.logger)
  } catch (error) {
    await server.close()
    throw error
  }
}
