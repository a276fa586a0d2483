import { EventEmitter } from 'node:events'
import {
  DiscoveryDefaults,
  decodeDatagram,
  encodeDatagram,
  Limits,
  ProtocolError,
} from '@autobus/protocol'
import { serviceChanges } from './changes.js'
import { type Clock, systemClock } from './clock.js'
import { jsonEqual, matchesFilter, type ServiceFilter } from './filter.js'
import {
  type DatagramSource,
  type DiscoveryLink,
  type DiscoveryNetwork,
  udpNetwork,
} from './network.js'
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

/** One change to the table of services. */
export type ServiceChange =
  | { type: 'up'; service: DiscoveredService }
  | { type: 'down'; service: DiscoveredService }
  | { type: 'changed'; service: DiscoveredService; previous: DiscoveredService }

/** Why a service appeared: new, or re-added after its info changed. */
export type AppearCause = 'new' | 'changed'
/** Why a service disappeared: a goodbye, a failed probe, or a change of info. */
export type DisappearCause = 'goodbye' | 'expired' | 'changed'

/** Events of a {@link Discoverer}. */
export type DiscovererEvents = {
  /** A service appeared (also after a change, following `disappeared`). */
  appeared: [service: DiscoveredService, cause: AppearCause]
  /** A service went away: goodbye, failed probe, or before a change. */
  disappeared: [service: DiscoveredService, cause: DisappearCause]
  /** A service's info or port changed; emitted after disappeared + appeared. */
  changed: [service: DiscoveredService, previous: DiscoveredService]
}

/** Timings of a discoverer, in ms. */
export interface DiscovererTimings {
  /** Delays after start at which queries are sent (default 0, 200, 1000, 3000, 7000). */
  querySchedule?: readonly number[]
  /** Interval assumed for announcers that do not state theirs (default 10 s). */
  announceInterval?: number
  /** A service silent for this many intervals is probed (default 2.5). */
  expiryIntervals?: number
  /** How long a probe may take (default 3 s). */
  probeTimeout?: number
}

/** Options for {@link createDiscoverer}. */
export interface DiscovererOptions extends DiscovererTimings {
  network?: DiscoveryNetwork
  clock?: Clock
  /** The liveness check (default: TCP connect and bind). */
  probe?: Probe
  /** Most services kept at once (default 4,096); more are dropped and counted. */
  maxServices?: number
  signal?: AbortSignal
}

interface Entry {
  service: DiscoveredService
  announced: Record<string, unknown>
  lastSeen: number
  interval: number
  probing: boolean
}

/** Keeps the table of services on the network. */
export interface Discoverer extends EventEmitter<DiscovererEvents>, AsyncDisposable {
  /** The services known now, optionally filtered. */
  snapshot(filter?: ServiceFilter): DiscoveredService[]
  /** Changes as an async iterable; ends when the discoverer closes or `signal` aborts. */
  changes(options?: { signal?: AbortSignal; filter?: ServiceFilter }): AsyncIterable<ServiceChange>
  /** Sends a query now (the start-up schedule does this by itself). */
  query(): void
  /** Counters: malformed datagrams dropped, services dropped over the cap. */
  readonly stats: { readonly malformed: number; readonly overCapacity: number }
  close(): Promise<void>
}

const QUERY = encodeDatagram({ command: 'query' })

class UdpDiscoverer extends EventEmitter<DiscovererEvents> implements Discoverer {
  #link!: DiscoveryLink
  readonly #clock: Clock
  readonly #probe: Probe
  readonly #t: Required<DiscovererTimings>
  readonly #max: number
  readonly #table = new Map<string, Entry>()
  readonly #timers = new Set<unknown>()
  #sweepTimer: unknown
  #malformed = 0
  #overCapacity = 0
  #closing: Promise<void> | undefined
  readonly #closed = new AbortController()

  constructor(options: DiscovererOptions) {
    super()
    this.#clock = options.clock ?? systemClock
    this.#probe = options.probe ?? probeService
    this.#max = options.maxServices ?? Limits.maxServices
    this.#t = {
      querySchedule: options.querySchedule ?? [0, 200, 1_000, 3_000, 7_000],
      announceInterval: options.announceInterval ?? DiscoveryDefaults.announceInterval,
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

  get stats() {
    return { malformed: this.#malformed, overCapacity: this.#overCapacity }
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

  changes(
    options: { signal?: AbortSignal; filter?: ServiceFilter } = {},
  ): AsyncIterable<ServiceChange> {
    return serviceChanges(this, this.#closed.signal, options)
  }

  /** @internal */
  receive(bytes: Buffer, from: DatagramSource): void {
    if (this.#closing) return
    const datagram = decodeDatagram(bytes)
    if (datagram instanceof ProtocolError) {
      this.#malformed++
      return
    }
    if (datagram.command === 'add') {
      const entry = this.#table.get(datagram.service)
      const interval = datagram.interval ?? this.#t.announceInterval
      if (
        entry &&
        entry.service.port === datagram.port &&
        jsonEqual(entry.announced, datagram.info)
      ) {
        entry.lastSeen = this.#clock.now()
        entry.interval = interval
        return
      }
      if (!entry && this.#table.size >= this.#max) {
        this.#overCapacity++
        return
      }
      const service: DiscoveredService = Object.freeze({
        host: from.address,
        port: datagram.port,
        service: datagram.service,
        info: Object.freeze({
          ...datagram.info,
          host: from.address,
          port: datagram.port,
          service: datagram.service,
        }),
      })
      const next: Entry = {
        service,
        announced: datagram.info,
        lastSeen: this.#clock.now(),
        interval,
        probing: false,
      }
      if (entry) {
        // Info never changes while a service lives: a change is a restart.
        this.#table.delete(datagram.service)
        this.emit('disappeared', entry.service, 'changed')
        this.#table.set(datagram.service, next)
        this.emit('appeared', service, 'changed')
        this.emit('changed', service, entry.service)
      } else {
        this.#table.set(datagram.service, next)
        this.emit('appeared', service, 'new')
      }
    } else if (datagram.command === 'remove') {
      const entry = this.#table.get(datagram.service)
      if (entry && entry.service.port === datagram.port) this.#remove(entry, 'goodbye')
    }
  }

  #remove(entry: Entry, cause: DisappearCause): void {
    if (this.#table.get(entry.service.service) !== entry) return
    this.#table.delete(entry.service.service)
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
      if (entry.probing || now - entry.lastSeen < entry.interval * this.#t.expiryIntervals) continue
      entry.probing = true
      const { host, port, service } = entry.service
      this.#probe({ host, port, service }, this.#t.probeTimeout)
        .catch(() => false)
        .then((alive) => {
          entry.probing = false
          if (this.#closing) return
          if (alive) entry.lastSeen = this.#clock.now()
          else this.#remove(entry, 'expired')
        })
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed.abort()
      this.#clock.clearTimeout(this.#sweepTimer)
      for (const timer of this.#timers) this.#clock.clearTimeout(timer)
      this.#timers.clear()
      await this.#link.close()
    })()
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

/**
 * Creates a discoverer: it queries the network at start, listens for
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
  const link = await (options.network ?? udpNetwork()).open((bytes, from) =>
    discoverer.receive(bytes, from),
  )
  discoverer.start(link)
  options.signal?.addEventListener('abort', () => void discoverer.close(), { once: true })
  return discoverer
}
