import { EventEmitter } from 'node:events'
import {
  type AddDatagram,
  activeLogger,
  type Closable,
  type CloseInfo,
  DiscoveryDefaults,
  decodeDatagram,
  encodeDatagram,
  Limits,
  type Logger,
  ProtocolError,
} from '@autobus/protocol'
import { type ServiceChangesOptions, serviceChanges } from './changes.js'
import { type Clock, systemClock } from './clock.js'
import { jsonEqual, matchesFilter, type ServiceFilter } from './filter.js'
import {
  type DatagramSource,
  type DiscoveryLink,
  type DiscoveryNetwork,
  type NetworkFaults,
  udpNetwork,
} from './network.js'
import { type PeerOptions, withPeers } from './peers.js'
import { type Probe, probeService } from './probe.js'

/** A service found on the network. */
export interface DiscoveredService {
  /** The address its announcements came from. */
  readonly host: string
  readonly port: number
  /** The service id. */
  readonly service: string
  /** The announced info, with "host", "port" and "service" added. */
  readonly info: Readonly<Record<string, unknown>>
}

/**
 * One change to the table of services. A restart (same id, new port or new
 * info, from the same sender) is a `down` of the old service then an `up`
 * of the new one, both marked `restart: true`.
 */
export type ServiceChange =
  | { type: 'up'; service: DiscoveredService; restart?: true }
  | { type: 'down'; service: DiscoveredService; restart?: true }

/** Why a service appeared: new, or re-added after a restart. */
export type AppearCause = 'new' | 'changed'
/**
 * Why a service disappeared: a goodbye, a failed probe, a restart, or
 * eviction of an unverified entry from a full table.
 */
export type DisappearCause = 'goodbye' | 'expired' | 'changed' | 'evicted'

/** Events of a {@link Discoverer}. */
export type DiscovererEvents = {
  /** A service appeared (also after a restart, following `disappeared`). */
  appeared: [service: DiscoveredService, cause: AppearCause]
  /** A service went away: goodbye, failed probe, eviction, or before a restart. */
  disappeared: [service: DiscoveredService, cause: DisappearCause]
  /** A service restarted with a new port or info; emitted after disappeared + appeared. */
  changed: [service: DiscoveredService, previous: DiscoveredService]
}

/** Timings of a discoverer, in ms. */
export interface DiscovererTimings {
  /** Delays after start at which queries are sent (default `DiscoveryDefaults.querySchedule`: 0, 200, 1000, 3000, 7000). */
  querySchedule?: readonly number[]
  /** Interval assumed for announcers that do not state theirs (default 10 s). */
  announceInterval?: number
  /** Longest announced interval believed; longer ones are clamped (default 60 s). */
  maxInterval?: number
  /** A service silent for this many intervals is probed (default 2.5). */
  expiryIntervals?: number
  /** How long a probe may take (default 3 s). */
  probeTimeout?: number
}

/** Options for {@link createDiscoverer}. */
export interface DiscovererOptions extends DiscovererTimings, PeerOptions {
  network?: DiscoveryNetwork
  clock?: Clock
  /**
   * The liveness check (default: TCP connect and bind). Resolving `false`
   * means gone; rejecting means the check could not be made (e.g. out of
   * descriptors) and is tried again later.
   */
  probe?: Probe
  /** Most services kept at once (default 4,096). */
  maxServices?: number
  /** Most services kept from one source address (default 1,024). */
  maxServicesPerHost?: number
  /** Probes in flight at once (default 32). */
  maxProbes?: number
  /** Probes in flight to one host at once (default 4). */
  maxProbesPerHost?: number
  /**
   * Where services appearing and disappearing (with the cause), dropped
   * datagrams and contested ids are reported (default: nowhere).
   */
  logger?: Logger
  signal?: AbortSignal
}

/** Counters of a {@link Discoverer}. */
export interface DiscovererStats {
  /** Datagrams dropped as malformed. */
  readonly malformed: number
  /** New services dropped because the table (or its share for one host) was full of verified ones. */
  readonly overCapacity: number
  /** Unverified services evicted to make room. */
  readonly evicted: number
  /** `remove`s ignored because they did not come from the service's own address. */
  readonly ignoredRemoves: number
  /** `add`s for a known id from another address (the owner is probed, not replaced). */
  readonly contested: number
  /** Probes made (silent services, contested ids, services heard under pressure). */
  readonly probes: number
  /** Probes the service failed: it was removed. */
  readonly failedProbes: number
  /** Probes put off because too many were in flight. */
  readonly probesDeferred: number
  /** Probes that could not be made (local failure) and will be tried again. */
  readonly inconclusiveProbes: number
  /** Probes in flight now. */
  readonly probesInFlight: number
  /** Failures of the operating system while sending or scanning interfaces. */
  readonly faults: NetworkFaults
}

interface Entry {
  service: DiscoveredService
  announced: Record<string, unknown>
  /** The owner is this host (heard through loopback or an own address). */
  local: boolean
  lastSeen: number
  interval: number
  /** A probe has succeeded: never evicted for a newcomer. */
  verified: boolean
  probing: boolean
  /** No probe before this time (after a success or an inconclusive attempt). */
  quietUntil: number
  /** The latest other address claiming this id, admitted if the owner fails its probe. */
  challenger?: { datagram: AddDatagram; from: DatagramSource }
}

/** What a discoverer knows of a service's liveness; see {@link Discoverer.heard}. */
export interface ServiceHeard {
  /** When it was last heard: an announcement, or a probe it answered (the discoverer's clock, ms). */
  readonly lastHeard: number
  /** True once a probe has reached it: its address really serves it. */
  readonly verified: boolean
}

/** Keeps the table of services on the network. */
export interface Discoverer extends EventEmitter<DiscovererEvents>, Closable {
  /** The services known now, optionally filtered. */
  snapshot(filter?: ServiceFilter): DiscoveredService[]
  /** Changes as an async iterable; ends when the discoverer closes or `signal` aborts. */
  changes(options?: ServiceChangesOptions): AsyncIterable<ServiceChange>
  /** Sends a query now (the start-up schedule does this by itself). */
  query(): void
  /** Counters of dropped, ignored and deferred things. */
  readonly stats: DiscovererStats
  /** When a service in the table was last heard from, and whether a probe has reached it. */
  heard(service: string): ServiceHeard | undefined
  /** Stops listening and ends every `changes()` iterable; idempotent. */
  close(reason?: string): Promise<CloseInfo>
}

// Marked: this discoverer listens on the private port the query leaves from.
/** Where a service heard from this host itself is listed. */
const LOOPBACK = '127.0.0.1'

const QUERY = encodeDatagram({ command: 'query', reply: 'unicast' })

class UdpDiscoverer extends EventEmitter<DiscovererEvents> implements Discoverer {
  #link!: DiscoveryLink
  readonly #clock: Clock
  readonly #probe: Probe
  readonly #t: Required<DiscovererTimings>
  readonly #max: number
  readonly #maxPerHost: number
  readonly #maxProbes: number
  readonly #maxProbesPerHost: number
  readonly #table = new Map<string, Entry>()
  /** Unverified entries, least recently heard first: the eviction order. */
  readonly #unverified = new Map<string, Entry>()
  readonly #perHost = new Map<string, number>()
  readonly #probesPerHost = new Map<string, number>()
  readonly #timers = new Set<unknown>()
  #sweepTimer: unknown
  #counts = {
    malformed: 0,
    overCapacity: 0,
    evicted: 0,
    ignoredRemoves: 0,
    contested: 0,
    probes: 0,
    failedProbes: 0,
    probesDeferred: 0,
    inconclusiveProbes: 0,
  }
  #probesInFlight = 0
  #closing: Promise<CloseInfo> | undefined
  readonly #stopped = new AbortController()
  readonly closed: Promise<CloseInfo>
  #resolveClosed!: (info: CloseInfo) => void
  readonly #log: Logger | undefined

  constructor(options: DiscovererOptions) {
    super()
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    const log = activeLogger(options.logger)
    this.#log = log
    if (log) {
      const name = (service: DiscoveredService) =>
        `${service.service} at ${service.host}:${service.port} ${JSON.stringify(service.info)}`
      this.on('appeared', (service, cause) =>
        log.info(`autobus:discovery appeared (${cause}): ${name(service)}`),
      )
      this.on('disappeared', (service, cause) =>
        log.info(`autobus:discovery disappeared (${cause}): ${name(service)}`),
      )
    }
    this.#clock = options.clock ?? systemClock
    this.#probe = options.probe ?? probeService
    this.#max = options.maxServices ?? Limits.maxServices
    this.#maxPerHost = options.maxServicesPerHost ?? Limits.maxServicesPerHost
    this.#maxProbes = options.maxProbes ?? DiscoveryDefaults.maxProbes
    this.#maxProbesPerHost = options.maxProbesPerHost ?? DiscoveryDefaults.maxProbesPerHost
    this.#t = {
      querySchedule: options.querySchedule ?? DiscoveryDefaults.querySchedule,
      announceInterval: options.announceInterval ?? DiscoveryDefaults.announceInterval,
      maxInterval: options.maxInterval ?? DiscoveryDefaults.maxInterval,
      expiryIntervals: options.expiryIntervals ?? DiscoveryDefaults.expiryIntervals,
      probeTimeout: options.probeTimeout ?? DiscoveryDefaults.probeTimeout,
    }
  }

  /** @internal */
  start(link: DiscoveryLink): void {
    this.#link = link
    for (const delay of this.#t.querySchedule) this.#later(delay, () => this.query())
    this.#scheduleSweep()
  }

  get stats(): DiscovererStats {
    return { ...this.#counts, probesInFlight: this.#probesInFlight, faults: this.#link.faults }
  }

  heard(service: string): ServiceHeard | undefined {
    const entry = this.#table.get(service)
    return entry && { lastHeard: entry.lastSeen, verified: entry.verified }
  }

  #later(delay: number, run: () => void): void {
    const timer = this.#clock.setTimeout(() => {
      this.#timers.delete(timer)
      if (!this.#closing) run()
    }, delay)
    this.#timers.add(timer)
  }

  query(): void {
    if (!this.#closing) this.#link.broadcast(QUERY)
  }

  snapshot(filter?: ServiceFilter): DiscoveredService[] {
    const all = [...this.#table.values()].map((entry) => entry.service)
    return filter ? all.filter((service) => matchesFilter(service.info, filter)) : all
  }

  changes(options: ServiceChangesOptions = {}): AsyncIterable<ServiceChange> {
    return serviceChanges(this, this.#stopped.signal, options)
  }

  /** @internal */
  receive(bytes: Buffer, from: DatagramSource): void {
    if (this.#closing) return
    const datagram = decodeDatagram(bytes)
    if (datagram instanceof ProtocolError) {
      this.#counts.malformed++
      this.#log?.warn(
        `autobus:discovery dropped a datagram from ${from.address}:${from.port}: ${datagram.code}: ${datagram.message}`,
      )
      return
    }
    if (datagram.command === 'add') this.#heard(datagram, from)
    else if (datagram.command === 'remove') {
      const entry = this.#table.get(datagram.service)
      if (!entry || entry.service.port !== datagram.port) return
      // A goodbye counts only from where the service is: anyone can send one.
      if (this.#isOwner(entry, from)) this.#remove(entry, 'goodbye')
      else {
        this.#counts.ignoredRemoves++
        this.#log?.warn(
          `autobus:discovery ignored a remove of ${datagram.service} from ${from.address}: not the service's own address`,
        )
      }
    }
  }

  // Not the port: original peers send from throwaway ports, and a sender
  // that can forge the owner's address can forge its port as well.
  #isOwner(entry: Entry, from: DatagramSource): boolean {
    return entry.service.host === from.address || (entry.local && from.local === true)
  }

  #heard(datagram: AddDatagram, from: DatagramSource): void {
    const entry = this.#table.get(datagram.service)
    if (!entry) {
      this.#admit(datagram, from)
      return
    }
    if (!this.#isOwner(entry, from)) {
      this.#contest(entry, datagram, from)
      return
    }
    if (entry.service.port === datagram.port && jsonEqual(entry.announced, datagram.info)) {
      entry.lastSeen = this.#clock.now()
      entry.interval = this.#interval(datagram)
      if (!entry.verified) {
        this.#unverified.delete(entry.service.service)
        this.#unverified.set(entry.service.service, entry)
        // Under pressure, a service heard again is checked, so that once
        // it passes no flood of newcomers can push it out.
        if (this.#underPressure(entry.service.host)) this.#startProbe(entry)
      }
      return
    }
    // Info never changes while a service lives: a change is a restart.
    const next = this.#entry(datagram, from)
    this.#delete(entry)
    this.emit('disappeared', entry.service, 'changed')
    this.#insert(next)
    this.emit('appeared', next.service, 'changed')
    this.emit('changed', next.service, entry.service)
  }

  #interval(datagram: AddDatagram): number {
    return Math.min(datagram.interval ?? this.#t.announceInterval, this.#t.maxInterval)
  }

  // A host hears its own services' broadcasts once per interface and once
  // through loopback, in no fixed order. Listing them all at 127.0.0.1 (as a
  // Bus lists its own) keeps the address the same whichever copy comes
  // first, and loopback reaches a service listening on every interface.
  #entry(datagram: AddDatagram, from: DatagramSource): Entry {
    const host = from.local === true ? LOOPBACK : from.address
    const service: DiscoveredService = Object.freeze({
      host,
      port: datagram.port,
      service: datagram.service,
      info: Object.freeze({
        ...datagram.info,
        host,
        port: datagram.port,
        service: datagram.service,
      }),
    })
    return {
      service,
      announced: datagram.info,
      local: from.local === true,
      lastSeen: this.#clock.now(),
      interval: this.#interval(datagram),
      verified: false,
      probing: false,
      quietUntil: 0,
    }
  }

  // A full table (or a host's full share) makes room by evicting the
  // unverified entry heard least recently; verified ones are never pushed
  // out, so a flood of forged adds cannot lock a real service out for long.
  #admit(datagram: AddDatagram, from: DatagramSource): void {
    const host = from.local === true ? LOOPBACK : from.address
    let victim: Entry | undefined
    if ((this.#perHost.get(host) ?? 0) >= this.#maxPerHost) {
      victim = this.#oldestUnverified(host)
      if (!victim) {
        this.#counts.overCapacity++
        this.#log?.warn(
          `autobus:discovery dropped ${datagram.service} from ${host}: ${this.#maxPerHost} services from that host (maxServicesPerHost)`,
        )
        return
      }
    } else if (this.#table.size >= this.#max) {
      victim = this.#oldestUnverified()
      if (!victim) {
        this.#counts.overCapacity++
        this.#log?.warn(
          `autobus:discovery dropped ${datagram.service} from ${host}: ${this.#max} services known (maxServices)`,
        )
        return
      }
    }
    if (victim) {
      this.#counts.evicted++
      this.#remove(victim, 'evicted')
    }
    const entry = this.#entry(datagram, from)
    this.#insert(entry)
    this.emit('appeared', entry.service, 'new')
  }

  #oldestUnverified(host?: string): Entry | undefined {
    for (const entry of this.#unverified.values())
      if (!entry.probing && (host === undefined || entry.service.host === host)) return entry
    return undefined
  }

  #underPressure(host: string): boolean {
    return (
      this.#table.size * 4 >= this.#max * 3 ||
      (this.#perHost.get(host) ?? 0) * 4 >= this.#maxPerHost * 3
    )
  }

  #insert(entry: Entry): void {
    const { service, host } = entry.service
    this.#table.set(service, entry)
    if (!entry.verified) this.#unverified.set(service, entry)
    this.#perHost.set(host, (this.#perHost.get(host) ?? 0) + 1)
  }

  #delete(entry: Entry): void {
    const { service, host } = entry.service
    this.#table.delete(service)
    this.#unverified.delete(service)
    const left = (this.#perHost.get(host) ?? 1) - 1
    if (left > 0) this.#perHost.set(host, left)
    else this.#perHost.delete(host)
  }

  // Another address claims a known id: a replay, a forgery, or a service
  // that really moved. Only a failed probe of the owner lets it move.
  #contest(entry: Entry, datagram: AddDatagram, from: DatagramSource): void {
    this.#counts.contested++
    this.#log?.warn(
      `autobus:discovery ${from.address} claims ${entry.service.service}, known at ${entry.service.host}: probing the owner`,
    )
    entry.challenger = { datagram, from }
    this.#startProbe(entry)
  }

  #remove(entry: Entry, cause: DisappearCause): void {
    if (this.#table.get(entry.service.service) !== entry) return
    this.#delete(entry)
    this.emit('disappeared', entry.service, cause)
  }

  #scheduleSweep(): void {
    const every = Math.max(100, Math.min(1_000, this.#t.announceInterval / 4))
    this.#sweepTimer = this.#clock.setTimeout(() => {
      if (this.#closing) return
      this.#sweep()
      this.#scheduleSweep()
    }, every)
  }

  // Services silent for too long are probed; those that fail go.
  #sweep(): void {
    const now = this.#clock.now()
    for (const entry of this.#table.values()) {
      if (now - entry.lastSeen >= entry.interval * this.#t.expiryIntervals) this.#startProbe(entry)
    }
  }

  // Probes are capped in total and per host, so that forged adds naming a
  // victim cannot turn every bus into a connection flood against it.
  #startProbe(entry: Entry): void {
    if (entry.probing || this.#clock.now() < entry.quietUntil) return
    const { host, port, service } = entry.service
    const toHost = this.#probesPerHost.get(host) ?? 0
    if (this.#probesInFlight >= this.#maxProbes || toHost >= this.#maxProbesPerHost) {
      this.#counts.probesDeferred++
      return
    }
    this.#probesInFlight++
    this.#counts.probes++
    this.#probesPerHost.set(host, toHost + 1)
    entry.probing = true
    let settled: Promise<boolean | undefined>
    try {
      settled = this.#probe({ host, port, service }, this.#t.probeTimeout, {
        clock: this.#clock,
        signal: this.#stopped.signal,
      }).then(
        (alive) => alive === true,
        () => undefined,
      )
    } catch {
      settled = Promise.resolve(undefined)
    }
    void settled.then((alive) => {
      this.#probesInFlight--
      const left = (this.#probesPerHost.get(host) ?? 1) - 1
      if (left > 0) this.#probesPerHost.set(host, left)
      else this.#probesPerHost.delete(host)
      entry.probing = false
      if (this.#closing || this.#table.get(service) !== entry) return
      const now = this.#clock.now()
      const challenger = entry.challenger
      entry.challenger = undefined
      if (alive === true) {
        entry.lastSeen = now
        entry.verified = true
        this.#unverified.delete(service)
        // One probe answers every claim made while it ran, and the next
        // few seconds' worth: a replay loop gets no probe per datagram.
        entry.quietUntil = now + this.#t.probeTimeout
      } else if (alive === false) {
        this.#counts.failedProbes++
        this.#remove(entry, 'expired')
        if (challenger) this.#heard(challenger.datagram, challenger.from)
      } else {
        this.#counts.inconclusiveProbes++
        this.#log?.debug(
          `autobus:discovery could not probe ${entry.service.service} at ${entry.service.host}:${entry.service.port}; trying later`,
        )
        entry.quietUntil = now + this.#t.probeTimeout
      }
    })
  }

  close(reason = 'discoverer closing'): Promise<CloseInfo> {
    this.#closing ??= (async () => {
      this.#stopped.abort()
      this.#clock.clearTimeout(this.#sweepTimer)
      for (const timer of this.#timers) this.#clock.clearTimeout(timer)
      this.#timers.clear()
      await this.#link.close()
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
 * Creates a discoverer: it queries the network at start (and each of
 * `peers` by unicast), listens for
 * announcements and goodbyes, and probes services that fall silent.
 *
 * @example
 * ```ts
 * await using discoverer = await createDiscoverer()
 * discoverer.on('appeared', (service) => console.log('up', service.info))
 * for await (const change of discoverer.changes()) console.log(change.type, change.service.service)
 * ```
 */
export async function createDiscoverer(options: DiscovererOptions = {}): Promise<Discoverer> {
  const discoverer = new UdpDiscoverer(options)
  const link = await (options.network ?? udpNetwork({ logger: options.logger })).open(
    (bytes, from) => discoverer.receive(bytes, from),
  )
  try {
    discoverer.start(withPeers(link, options))
  } catch (error) {
    await link.close()
    throw error
  }
  options.signal?.addEventListener('abort', () => void discoverer.close('aborted'), {
    once: true,
  })
  return discoverer
}
