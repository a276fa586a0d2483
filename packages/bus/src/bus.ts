import { X509Certificate } from 'node:crypto'
import { EventEmitter } from 'node:events'
import os from 'node:os'
import {
  countedNetwork,
  createDiscoverer,
  createPublisher,
  type DatagramTraffic,
  type DiscoveredService,
  type Discoverer,
  type DiscovererEvents,
  type DiscovererTimings,
  type DiscoveryNetwork,
  keyedProbe,
  matchesFilter,
  type PeerOptions,
  type Published,
  type Publisher,
  type PublisherTimings,
  type SealDrops,
  type SealedNetwork,
  type ServiceChange,
  type ServiceChangesOptions,
  type ServiceFilter,
  type ServiceHeard,
  sealedNetwork,
  sharedNetwork,
  udpNetwork,
} from '@autobus/discovery'
import {
  activeLogger,
  type BusKey,
  type Closable,
  ClosedError,
  type CloseInfo,
  DISCOVERY_PORT,
  KeyRing,
  type Logger,
  META_SERVICE_ID,
  parseKeys,
  type SessionCertificate,
  UnreachableError,
} from '@autobus/protocol'
import {
  createDeadline,
  createMultiServiceProxy,
  createSingleServiceProxy,
  type MultiServiceProxy,
  type MultiServiceProxyOptions,
  type SingleServiceProxy,
  type SingleServiceProxyOptions,
} from '@autobus/proxy'
import {
  type AccessControl,
  type AccessPolicy,
  type Connection,
  type ConnectServiceOptions,
  type Contract,
  connectService,
  createAccessControl,
  createService,
  type Implementation,
  type RpcServer,
  type ServeOptions,
  type Service,
  type ServiceOptions,
  serve,
} from '@autobus/rpc'
import { createInProcessPair, type MessageConnection } from '@autobus/transport'
import { withEnvironment } from './environment.js'
import { createMetaService } from './meta.js'
import { type BusMetrics, collectMetrics } from './metrics.js'
import { ServiceTable } from './table.js'

/** Options for {@link createBus}. */
export interface BusOptions
  extends PublisherTimings,
    DiscovererTimings,
    Omit<ServeOptions, 'access'>,
    PeerOptions {
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
  /**
   * The bus key, which turns security on (default `AUTOBUS_KEY`, else none):
   * discovery datagrams are sealed and checked, sessions run over TLS 1.3
   * with a key derived from it. Text as `autobus keygen` prints it (several,
   * separated by commas or new lines: the first is used, all are accepted),
   * parsed keys, or a {@link KeyRing} to roll keys while running.
   */
  key?: string | BusKey | readonly (string | BusKey)[] | KeyRing
  /**
   * Certificates for sessions (mutual TLS 1.3) instead of the key's PSK:
   * this bus's certificate and key and the authority every peer's must be
   * signed by; a peer's identity for access rules is its certificate's
   * subject CN. Discovery is still sealed with the key, if there is one.
   */
  certificate?: SessionCertificate
  /**
   * With a key: also accept discovery datagrams that are not sealed
   * (default false), for a network shared with keyless peers such as
   * original Autobus 2 peers. Their services still cannot be called over a
   * keyed session.
   */
  acceptUnsigned?: boolean
  /** With a key: how far a datagram's timestamp may be from this host's clock, in ms (default 30 s). */
  replayWindow?: number
  /**
   * Access rules for this bus's services (default `AUTOBUS_ACCESS`, else
   * none: everything allowed): rules, a JSON file of rules (read again
   * whenever it changes), or an {@link AccessControl}. See docs/security.md.
   */
  access?: string | AccessPolicy | AccessControl
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

/** What a keyed bus has refused, counted since it started; see {@link Bus.securityStats}. */
export interface BusSecurityStats {
  /** Discovery datagrams dropped, by reason (unsigned, unknown key, bad tag, outside the window, replayed, …). */
  datagramsDropped: Readonly<SealDrops>
  /** Discovery datagrams accepted: sealed, and unsigned where `acceptUnsigned` allows. */
  datagramsAccepted: { readonly sealed: number; readonly unsigned: number }
  /** Connections whose TLS handshake failed (no key, a wrong key, plaintext). */
  handshakeFailures: number
  /** Commands answered `forbidden` by the access rules. */
  forbidden: number
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
  readonly #connections = new Set<Connection<Contract>>()
  readonly #proxies = new Set<SingleServiceProxy<Contract> | MultiServiceProxy<Contract>>()
  #closing: Promise<CloseInfo> | undefined
  /** Resolves with the reason once the bus has closed and released everything; never rejects. */
  readonly closed: Promise<CloseInfo>
  #resolveClosed!: (info: CloseInfo) => void
  readonly #logger: Logger | undefined
  readonly #keys: KeyRing | undefined
  readonly #sealed: SealedNetwork | undefined
  readonly #access: AccessControl | undefined
  readonly #certificate: SessionCertificate | undefined
  readonly #traffic: DatagramTraffic | undefined

  constructor(
    server: RpcServer,
    publisher: Publisher | undefined,
    discoverer: Discoverer | undefined,
    hostname: string,
    logger?: Logger,
    keys?: KeyRing,
    sealed?: SealedNetwork,
    access?: AccessControl,
    certificate?: SessionCertificate,
    traffic?: DatagramTraffic,
  ) {
    super()
    this.#traffic = traffic
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    this.#certificate = certificate
    this.#keys = keys
    this.#sealed = sealed
    this.#access = access
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
      createMetaService(() => [...this.#local.values()].map((entry) => entry.service), {
        ...(access ? { access } : {}),
        announced: discoverer !== undefined,
        metrics: () => this.metrics(),
      }),
    )
  }

  /** The TCP port this bus serves on. */
  get port(): number {
    return this.#server.port
  }

  /** The subject CN of this bus's certificate ('' for none), read once. */
  #subject: string | undefined

  /**
   * A connection to this bus's own server within this program, with no
   * socket on the way: for code in the same process that speaks the
   * protocol to the bus's services (a bridge relaying to them). The server
   * sees it as a peer at 127.0.0.1 holding this bus's current key, or its
   * certificate's subject, so access rules and limits apply as to a
   * connection from this host. Closed with the bus.
   */
  connectInProcess(): MessageConnection {
    this.#subject ??= this.#certificate
      ? (/(?:^|\n)CN=([^\n]*)/.exec(new X509Certificate(this.#certificate.cert).subject)?.[1] ?? '')
      : ''
    // The current key is read each time: keys roll while the bus runs.
    const [near, far] = createInProcessPair({
      remoteAddress: '127.0.0.1',
      ...(this.#keys ? { peerKeyId: this.#keys.current.id } : {}),
      ...(this.#subject ? { peerSubject: this.#subject } : {}),
    })
    this.#server.accept(far)
    return near
  }

  /**
   * The bus's keys when it has one (`key` or `AUTOBUS_KEY`): install, use
   * and remove keys here to roll them while running (docs/security.md).
   */
  get keys(): KeyRing | undefined {
    return this.#keys
  }

  /** The access rules in force, if any; change them with `setPolicy` or in their file. */
  get access(): AccessControl | undefined {
    return this.#access
  }

  /** What this bus's key and access rules have kept out (undefined with neither). */
  get securityStats(): BusSecurityStats | undefined {
    if (!this.#keys && !this.#access) return undefined
    return {
      forbidden: this.#access?.denied ?? 0,
      datagramsDropped: { ...(this.#sealed?.dropped ?? emptyDrops) },
      datagramsAccepted: { ...(this.#sealed?.accepted ?? { sealed: 0, unsigned: 0 }) },
      handshakeFailures: this.#server.stats.handshakeFailures ?? 0,
    }
  }

  /**
   * A snapshot of this bus's figures: per function calls, errors by code and
   * latency; per event fires and deliveries; per object changes and
   * watchers; sessions and what was refused. Peers read the same with the
   * meta-service's `stats` function; `renderPrometheus` turns it into text and `serveMetrics` serves that.
   */
  metrics(): BusMetrics {
    const server = this.#server.stats
    const discoverer = this.#discoverer
    const publisher = this.#publisher
    return collectMetrics(
      server,
      [...this.#local.values()].map((entry) => entry.service),
      {
        keyed: this.#keys !== undefined || this.#certificate !== undefined,
        handshakesFailed: server.handshakeFailures ?? 0,
        requestsDenied: this.#access?.denied ?? 0,
      },
      discoverer && publisher && this.#traffic
        ? {
            traffic: this.#traffic,
            discoverer: discoverer.stats,
            publisher: publisher.stats,
            seal: this.#sealed?.dropped,
            services: this.#table.size,
          }
        : undefined,
    )
  }

  /**
   * When a service in the table was last heard from (ms since the epoch)
   * and whether a probe has reached it; this bus's own services are heard
   * now and verified. Undefined for a service not in the table.
   */
  heard(service: string): ServiceHeard | undefined {
    if (this.#local.has(service)) return { lastHeard: Date.now(), verified: true }
    return this.#discoverer?.heard(service)
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
      {
        ...(this.#logger ? { logger: this.#logger } : {}),
        ...(this.#keys ? { keys: this.#keys } : {}),
        ...(this.#certificate ? { certificate: this.#certificate } : {}),
        ...options,
      },
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
    return this.#keep(createSingleServiceProxy<C>(this.#proxyOptions(filter, options.contract)))
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
    return this.#keep(createMultiServiceProxy<C>(this.#proxyOptions(filter, options.contract)))
  }

  /** What either kind of proxy needs: this bus's services, and its way to connect. */
  #proxyOptions<C extends Contract>(
    filter: ServiceFilter,
    contract: C | undefined,
  ): SingleServiceProxyOptions<C> & MultiServiceProxyOptions<C> {
    return {
      directory: this.#table,
      connect: (service, options) => this.connect(service, options),
      filter,
      ...(contract ? { contract } : {}),
    }
  }

  /** Closes the proxy with the bus, and forgets it once closed either way. */
  #keep<P extends SingleServiceProxy<Contract> | MultiServiceProxy<Contract>>(proxy: P): P {
    this.#proxies.add(proxy)
    proxy.closed.then(() => this.#proxies.delete(proxy))
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
      this.#access?.close()
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
  const keys = keyRing(options.key)
  const access = await accessControl(options.access, options.logger)
  const hostname = options.hostname ?? os.hostname().split('.')[0]!
  const { access: _rules, ...serveOptions } = options
  const server = await serve([], {
    ...serveOptions,
    port: options.port ?? 0,
    host: options.host ?? '0.0.0.0',
    ...(keys ? { keys } : {}),
    ...(access ? { access } : {}),
  })
  const log = activeLogger(options.logger)
  log?.info(
    `autobus:bus serving on port ${server.port}${options.discovery === false ? ', no discovery' : `, discovery on port ${options.discoveryPort ?? DISCOVERY_PORT}`}`,
  )
  if (options.discovery === false)
    return new LocalBus(
      server,
      undefined,
      undefined,
      hostname,
      options.logger,
      keys,
      undefined,
      access,
      options.certificate,
    )
  const plain =
    options.network ??
    udpNetwork({
      port: options.discoveryPort ?? DISCOVERY_PORT,
      ...(options.interfaces ? { interfaces: options.interfaces } : {}),
      ...(log ? { logger: log } : {}),
    })
  // Counted under the seal, so that what the seal drops is counted as received.
  const counted = countedNetwork(plain)
  const sealed = keys
    ? sealedNetwork(counted, {
        keys,
        ...(options.acceptUnsigned ? { acceptUnsigned: true } : {}),
        ...(options.replayWindow !== undefined ? { replayWindow: options.replayWindow } : {}),
        ...(log ? { logger: log } : {}),
      })
    : undefined
  const network = sharedNetwork(sealed ?? counted)
  try {
    signal?.throwIfAborted()
    const peers = options.peers ?? []
    const publisher = await createPublisher({ ...options, peers, network, hostname })
    const discoverer = await createDiscoverer({
      ...options,
      peers,
      network,
      ...(keys || options.certificate ? { probe: keyedProbe(keys, options.certificate) } : {}),
    }).catch(async (error) => {
      await publisher.close()
      throw error
    })
    return new LocalBus(
      server,
      publisher,
      discoverer,
      hostname,
      options.logger,
      keys,
      sealed,
      access,
      options.certificate,
      counted.traffic,
    )
  } catch (error) {
    await server.close()
    access?.close()
    throw error
  }
}

const emptyDrops: SealDrops = {
  unsigned: 0,
  unknownKey: 0,
  badTag: 0,
  outsideWindow: 0,
  replayed: 0,
  malformed: 0,
  replayCacheFull: 0,
}

function keyRing(key: BusOptions['key']): KeyRing | undefined {
  if (key === undefined) return undefined
  if (key instanceof KeyRing) return key
  if (typeof key === 'string') return new KeyRing(parseKeys(key))
  return new KeyRing(Array.isArray(key) ? key : [key as BusKey])
}

/**
 * The class is private to `@autobus/rpc`, so this cannot be `instanceof`; of
 * the three forms the option takes, only rules already in force can authorize.
 */
function isAccessControl(access: string | AccessPolicy | AccessControl): access is AccessControl {
  return typeof (access as Partial<AccessControl>).authorize === 'function'
}

async function accessControl(
  access: BusOptions['access'],
  logger: Logger | undefined,
): Promise<AccessControl | undefined> {
  if (access === undefined || isAccessControl(access)) return access
  if (typeof access === 'string')
    return createAccessControl({ file: access, ...(logger ? { logger } : {}) })
  return createAccessControl(access)
}
