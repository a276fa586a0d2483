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
  type ServiceChangesOptions,
  type ServiceFilter,
  sharedNetwork,
  udpNetwork,
} from '@autobus/discovery'
import {
  activeLogger,
  type Closable,
  ClosedError,
  type CloseInfo,
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
  connectService,
  createService,
  type RpcServer,
  type ServeOptions,
  type Service,
  type ServiceOptions,
  serve,
} from '@autobus/rpc'
import { withEnvironment } from './environment.js'
import { createMetaService } from './meta.js'
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
  /**
   * Gives up on start-up (rejecting with the signal's reason, with nothing
   * left open) if it aborts before the bus is ready; closes the bus if it
   * aborts later.
   */
  signal?: AbortSignal
}

/** Something a bus can connect to. */
export type ServiceTarget = { host: string; port: number; service: string }

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
 * the network, and connects to them directly or through proxies. Made by
 * {@link createBus}; the class behind it is not exported.
 */
// An interface that extends the class: the type follows the class as it
// grows, and nobody outside can construct one or subclass it.
export interface Bus extends LocalBus {}

class LocalBus extends EventEmitter<DiscovererEvents> implements Closable {
  readonly #server: RpcServer
  readonly #table = new ServiceTable()
  readonly #publisher: Publisher | undefined
  readonly #discoverer: Discoverer | undefined
  readonly #hostname: string
  readonly #local = new Map<string, { service: Service; published: Published | undefined }>()
  readonly #connections = new Set<Connection>()
  readonly #proxies = new Set<SingleServiceProxy | MultiServiceProxy>()
  #closing: Promise<CloseInfo> | undefined
  /** Resolves with the reason once the bus has closed and released everything; never rejects. */
  readonly closed: Promise<CloseInfo>
  #resolveClosed!: (info: CloseInfo) => void
  readonly #logger: Logger | undefined

  constructor(
    server: RpcServer,
    publisher: Publisher | undefined,
    discoverer: Discoverer | undefined,
    hostname: string,
    logger?: Logger,
  ) {
    super()
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    this.#logger = activeLogger(logger)
    this.#server = server
    this.#publisher = publisher
    this.#discoverer = discoverer
    this.#hostname = hostname
    if (discoverer) this.#table.attach(discoverer)
    this.#table.on('appeared', (service, cause) => this.emit('appeared', service, cause))
    this.#table.on('disappeared', (service, cause) => this.emit('disappeared', service, cause))
    this.#table.on('changed', (service, previous) => this.emit('changed', service, previous))
    server.add(createMetaService(() => [...this.#local.values()].map((entry) => entry.service)))
  }

  /** The TCP port this bus serves on. */
  get port(): number {
    return this.#server.port
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
   * Creates a service, ready to define and then publish.
   *
   * @example
   * ```ts
   * const service = bus.createService({ info: { type: 'greeter' } })
   * service.addFunction('hello', { args: [Type.String()] }, (name) => `Hello, ${name}!`)
   * const publication = bus.publish(service)
   * ```
   */
  createService(options: ServiceOptions = {}): Service {
    return createService(options)
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

  /**
   * Changes to the table as an async iterable; ends when the bus closes or
   * `signal` aborts. With `replay`, an `up` for every service already known
   * comes first; with `filter`, only matching services. For callbacks, the
   * bus emits `appeared`, `disappeared` and `changed` as the discoverer does.
   *
   * @example
   * ```ts
   * for await (const change of bus.changes({ replay: true, filter: { type: 'speaker' } })) {
   *   if (change.type === 'up') list.add(change.service.service)
   *   else list.delete(change.service.service)
   * }
   * ```
   */
  changes(options: ServiceChangesOptions = {}): AsyncIterable<ServiceChange> {
    return this.#table.changes(options)
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
      const appeared = (service: DiscoveredService) => {
        if (!matchesFilter(service.info, filter)) return
        stop()
        deadline.clear()
        signal.removeEventListener('abort', abort)
        resolve(service)
      }
      const stop = () => this.#table.off('appeared', appeared)
      this.#table.on('appeared', appeared)
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
   * port and id. The connection is closed when the bus closes.
   */
  async connect(target: ServiceTarget, options: ConnectServiceOptions = {}): Promise<Connection> {
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
    connection.onClose(() => this.#connections.delete(connection))
    return connection
  }

  /**
   * A proxy bound to one service matching `filter`, rebinding as services
   * come and go.
   */
  singleServiceProxy(filter: ServiceFilter = {}): SingleServiceProxy {
    this.#ensureOpen()
    const proxy = createSingleServiceProxy({
      directory: this.#table,
      connect: (s, o) => this.connect(s, o),
      filter,
    })
    this.#proxies.add(proxy)
    proxy.onClose(() => this.#proxies.delete(proxy))
    return proxy
  }

  /** A proxy bound to every service matching `filter`. */
  multiServiceProxy(filter: ServiceFilter = {}): MultiServiceProxy {
    this.#ensureOpen()
    const proxy = createMultiServiceProxy({
      directory: this.#table,
      connect: (s, o) => this.connect(s, o),
      filter,
    })
    this.#proxies.add(proxy)
    return proxy
  }

  /**
   * Closes the bus: sends goodbyes for its services, closes proxies and
   * connections with a reason, and releases every socket. Idempotent.
   */
  close(reason = 'bus closing'): Promise<CloseInfo> {
    this.#closing ??= (async () => {
      await Promise.all([...this.#proxies].map((proxy) => proxy.close(reason)))
      await Promise.all([...this.#connections].map((connection) => connection.close(reason)))
      await this.#publisher?.close(reason)
      await this.#discoverer?.close(reason)
      this.#table.close()
      await this.#server.close(reason)
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
  const { signal, ...options } = withEnvironment(given)
  signal?.throwIfAborted()
  const bus = await startBus(options, signal)
  if (signal?.aborted) {
    await bus.close('aborted')
    throw signal.reason
  }
  signal?.addEventListener('abort', () => void bus.close('aborted'), { once: true })
  return bus
}

async function startBus(options: BusOptions, signal: AbortSignal | undefined): Promise<Bus> {
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
    return new LocalBus(server, undefined, undefined, hostname, options.logger)
  const network = sharedNetwork(
    options.network ??
      udpNetwork({
        port: options.discoveryPort ?? DISCOVERY_PORT,
        ...(options.interfaces ? { interfaces: options.interfaces } : {}),
        ...(log ? { logger: log } : {}),
      }),
  )
  try {
    signal?.throwIfAborted()
    const peers = options.peers ?? []
    const publisher = await createPublisher({ ...options, peers, network, hostname })
    const discoverer = await createDiscoverer({ ...options, peers, network }).catch(
      async (error) => {
        await publisher.close()
        throw error
      },
    )
    return new LocalBus(server, publisher, discoverer, hostname, options.logger)
  } catch (error) {
    await server.close()
    throw error
  }
}
