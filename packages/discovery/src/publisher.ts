import { EventEmitter } from 'node:events'
import os from 'node:os'
import {
  type AddDatagram,
  activeLogger,
  type Closable,
  type CloseInfo,
  DISCOVERY_PORT,
  DiscoveryDefaults,
  decodeDatagram,
  encodeDatagram,
  type Logger,
  ProtocolError,
  type QueryDatagram,
} from '@autobus/protocol'
import { type Clock, type Random, systemClock } from './clock.js'
import {
  type DatagramSource,
  type DiscoveryLink,
  type DiscoveryNetwork,
  type NetworkFaults,
  udpNetwork,
} from './network.js'
import { type PeerOptions, withPeers } from './peers.js'

/** Announcement timings, in ms; every one has a documented default. */
export interface PublisherTimings {
  /** Mean announcement interval (default 10 s). */
  announceInterval?: number
  /** Relative jitter of each interval (default 0.25, i.e. ±25 %). */
  announceJitter?: number
  /** Delay before a new service's first announcement (default 1 s; 0 allowed). */
  holdOff?: number
  /** Shortest and longest delay before answering a query (default 20–120 ms). */
  answerDelayMin?: number
  answerDelayMax?: number
  /** Extra answer window per service beyond the tenth (default 2 ms). */
  answerDelayPerService?: number
  /** Goodbyes sent when a service goes away (default 3), and the gap (default 20 ms). */
  goodbyeCount?: number
  goodbyeGap?: number
  /** A service answers one asker address, or broadcasts an answer, at most once per this (default 1 s). */
  answerInterval?: number
  /** How long an asker's answer budget is remembered after its last query (default 10 s). */
  askerMemory?: number
}

/**
 * Limits on answers, so that a query with a forged source cannot turn a bus
 * into an amplifier aimed at that source.
 */
export interface PublisherLimits {
  /** Unicast answer bytes an asker address gets before it has sent more queries (default 8,192). */
  answerBurst?: number
  /** Unicast answer bytes earned per query byte received from that address (default 1.5). */
  answerCredit?: number
  /** Asker addresses with an answer budget at once (default 1,024); others are answered by broadcast. */
  maxAskers?: number
}

/** Options for {@link createPublisher}. */
export interface PublisherOptions extends PublisherTimings, PublisherLimits, PeerOptions {
  /** The network (default real UDP broadcast on port 52722). */
  network?: DiscoveryNetwork
  clock?: Clock
  random?: Random
  /** Host name added to every info as "hostname" (default this host's, up to the first dot). */
  hostname?: string
  /** Where dropped datagrams and conflicts over our ids are reported (default: nowhere). */
  logger?: Logger
  /** Closing the publisher (with goodbyes) when this aborts. */
  signal?: AbortSignal
}

/** A service to announce. */
export interface Publication {
  service: string
  port: number
  info: Record<string, unknown>
}

/** Handle of a published service. */
export interface Published {
  readonly service: string
  /** The info as announced (with "hostname"). */
  readonly info: Readonly<Record<string, unknown>>
  /** Resolves once the first announcement has been sent (after the hold-off). */
  readonly announced: Promise<void>
  /** Sends goodbyes and stops announcing; idempotent. */
  unpublish(): Promise<void>
}

/** Another host announced (or said goodbye for) one of this publisher's services. */
export interface ServiceConflict {
  /** The service id. */
  readonly service: string
  /** What the other host sent. */
  readonly command: 'add' | 'remove'
  /** Where it came from. */
  readonly from: DatagramSource
}

/** Events of a {@link Publisher}. */
export type PublisherEvents = {
  /**
   * Another host claimed one of this publisher's ids (a replay, a forgery,
   * or a copied id). The publisher has re-announced the service at once.
   */
  conflict: [conflict: ServiceConflict]
}

/** Counters of a {@link Publisher}. */
export interface PublisherStats {
  /** Datagrams dropped as malformed. */
  readonly malformed: number
  /** Conflicts reported (see {@link PublisherEvents}). */
  readonly conflicts: number
  /** Answers sent by unicast to a marked query's source. */
  readonly unicastAnswers: number
  /** Answers sent by broadcast (unmarked queries, and unicast budgets used up). */
  readonly broadcastAnswers: number
  /** Answers not sent: the same asker or service was answered less than `answerInterval` ago. */
  readonly suppressedAnswers: number
  /** Failures of the operating system while sending or scanning interfaces. */
  readonly faults: NetworkFaults
}

interface Entry {
  datagram: Buffer
  goodbye: Buffer
  timer: unknown
  /** Still published. */
  live: boolean
  /** A broadcast answer is scheduled. */
  broadcastPending: boolean
  lastBroadcastAnswer: number
  onAnnounced: () => void
}

/** An address that sent marked queries: its unicast answer budget. */
interface Asker {
  credit: number
  lastQuery: number
  /** When each of its sockets (by port) was last answered. */
  answeredAt: Map<number, number>
}

/** Sockets of one address whose last answer is remembered. */
const MAX_ASKER_PORTS = 64

/** Announces local services; answers queries. */
export interface Publisher extends EventEmitter<PublisherEvents>, Closable {
  /**
   * Starts announcing a service. Throws `ProtocolError` (code
   * `datagram_too_large`) if its info does not fit in one datagram.
   */
  publish(publication: Publication): Published
  /** Services being announced, by id. */
  readonly services: ReadonlyMap<string, Readonly<Record<string, unknown>>>
  /** Datagrams dropped as malformed. */
  readonly malformed: number
  /** Counters of answers, conflicts and failures. */
  readonly stats: PublisherStats
  /** Sends goodbyes for every service and closes the sockets; idempotent. */
  close(reason?: string): Promise<CloseInfo>
}

class UdpPublisher extends EventEmitter<PublisherEvents> implements Publisher {
  readonly #link: DiscoveryLink
  readonly #clock: Clock
  readonly #random: Random
  readonly #t: Required<PublisherTimings> & Required<PublisherLimits>
  readonly #hostname: string
  readonly #entries = new Map<string, Entry>()
  readonly #infos = new Map<string, Readonly<Record<string, unknown>>>()
  /** By address, least recent query first. */
  readonly #askers = new Map<string, Asker>()
  #counts = {
    malformed: 0,
    conflicts: 0,
    unicastAnswers: 0,
    broadcastAnswers: 0,
    suppressedAnswers: 0,
  }
  #closing: Promise<CloseInfo> | undefined
  readonly closed: Promise<CloseInfo>
  #resolveClosed!: (info: CloseInfo) => void
  readonly #log: Logger | undefined

  constructor(link: DiscoveryLink, options: PublisherOptions) {
    super()
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    this.#link = link
    this.#log = activeLogger(options.logger)
    this.#clock = options.clock ?? systemClock
    this.#random = options.random ?? Math.random
    this.#hostname = options.hostname ?? os.hostname().split('.')[0]!
    const d = DiscoveryDefaults
    this.#t = {
      announceInterval: options.announceInterval ?? d.announceInterval,
      announceJitter: options.announceJitter ?? d.announceJitter,
      holdOff: options.holdOff ?? d.holdOff,
      answerDelayMin: options.answerDelayMin ?? d.answerDelayMin,
      answerDelayMax: options.answerDelayMax ?? d.answerDelayMax,
      answerDelayPerService: options.answerDelayPerService ?? d.answerDelayPerService,
      goodbyeCount: options.goodbyeCount ?? d.goodbyeCount,
      goodbyeGap: options.goodbyeGap ?? d.goodbyeGap,
      answerInterval: options.answerInterval ?? d.answerInterval,
      askerMemory: options.askerMemory ?? d.askerMemory,
      answerBurst: options.answerBurst ?? d.answerBurst,
      answerCredit: options.answerCredit ?? d.answerCredit,
      maxAskers: options.maxAskers ?? d.maxAskers,
    }
  }

  get services(): ReadonlyMap<string, Readonly<Record<string, unknown>>> {
    return this.#infos
  }

  get malformed(): number {
    return this.#counts.malformed
  }

  get stats(): PublisherStats {
    return { ...this.#counts, faults: this.#link.faults }
  }

  publish({ service, port, info }: Publication): Published {
    if (this.#closing) throw new Error('publisher is closed')
    if (typeof service !== 'string' || service.length === 0)
      throw new TypeError('service id must be a non-empty string')
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new TypeError(`invalid port ${port}`)
    if (this.#entries.has(service)) throw new TypeError(`service "${service}" is already published`)
    const announcedInfo = Object.freeze({ hostname: this.#hostname, ...info })
    const add: AddDatagram = {
      command: 'add',
      port,
      service,
      info: announcedInfo,
      // The wire allows 100 ms to 1 h (docs/protocol.md §2.1).
      interval: Math.min(3_600_000, Math.max(100, Math.round(this.#t.announceInterval))),
    }
    let onAnnounced!: () => void
    const announced = new Promise<void>((resolve) => {
      onAnnounced = resolve
    })
    const entry: Entry = {
      datagram: encodeDatagram(add),
      goodbye: encodeDatagram({ command: 'remove', port, service }),
      timer: undefined,
      live: true,
      broadcastPending: false,
      lastBroadcastAnswer: Number.NEGATIVE_INFINITY,
      onAnnounced,
    }
    this.#entries.set(service, entry)
    this.#infos.set(service, announcedInfo)
    entry.timer = this.#clock.setTimeout(() => this.#announce(service), this.#t.holdOff)
    let gone: Promise<void> | undefined
    return {
      service,
      info: announcedInfo,
      announced,
      unpublish: () => {
        gone ??= this.#unpublish(service)
        return gone
      },
    }
  }

  #announce(service: string): void {
    const entry = this.#entries.get(service)
    if (!entry) return
    this.#link.broadcast(entry.datagram)
    entry.onAnnounced()
    const { announceInterval: interval, announceJitter: jitter } = this.#t
    const next = interval * (1 - jitter + 2 * jitter * this.#random())
    entry.timer = this.#clock.setTimeout(() => this.#announce(service), next)
  }

  async #unpublish(service: string): Promise<void> {
    const entry = this.#entries.get(service)
    if (!entry) return
    entry.live = false
    this.#entries.delete(service)
    this.#infos.delete(service)
    this.#clock.clearTimeout(entry.timer)
    await this.#goodbyes([entry.goodbye])
  }

  async #goodbyes(datagrams: Buffer[]): Promise<void> {
    for (let i = 0; i < this.#t.goodbyeCount; i++) {
      if (i > 0)
        await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, this.#t.goodbyeGap))
      for (const datagram of datagrams) this.#link.broadcast(datagram)
    }
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
    if (datagram.command === 'query') this.#answer(datagram, bytes.byteLength, from)
    else if (!from.local) {
      const entry = this.#entries.get(datagram.service)
      if (!entry) return
      // Our id from another host: tell everyone where the service really is.
      this.#counts.conflicts++
      this.#log?.warn(
        `autobus:discovery ${from.address} sent ${datagram.command} for our ${datagram.service}: announcing where it is`,
      )
      this.#broadcastAnswer(entry, 0)
      this.emit('conflict', { service: datagram.service, command: datagram.command, from })
    }
  }

  #delay(): number {
    const { answerDelayMin: min, answerDelayMax: max, answerDelayPerService: per } = this.#t
    return min + this.#random() * (max - min + per * Math.max(0, this.#entries.size - 10))
  }

  // Each service answers after its own random delay within a window that
  // widens with the number of services, so that many answers to one query
  // do not arrive at once.
  #answer(query: QueryDatagram, size: number, to: DatagramSource): void {
    if (this.#entries.size === 0) return
    // Original peers query from a throwaway port and listen only on the
    // discovery port, and a unicast to the shared discovery port reaches
    // only one of the processes bound to it: both get broadcasts.
    const asker =
      query.reply === 'unicast' && to.port !== DISCOVERY_PORT ? this.#asker(to, size) : undefined
    if (!asker) {
      for (const entry of this.#entries.values()) this.#broadcastAnswer(entry, this.#delay())
      return
    }
    // Once a second per address; on this host, per asking socket, since its
    // processes share the address and each must get its answers. A remote
    // asker answered less than a second ago still hears the broadcasts.
    const now = this.#clock.now()
    const socket = to.local ? to.port : 0
    if (now - (asker.answeredAt.get(socket) ?? Number.NEGATIVE_INFINITY) < this.#t.answerInterval) {
      this.#counts.suppressedAnswers += this.#entries.size
      if (!to.local)
        for (const entry of this.#entries.values()) this.#broadcastAnswer(entry, this.#delay())
      return
    }
    asker.answeredAt.delete(socket)
    asker.answeredAt.set(socket, now)
    if (asker.answeredAt.size > MAX_ASKER_PORTS)
      asker.answeredAt.delete(asker.answeredAt.keys().next().value!)
    for (const [service, entry] of this.#entries) {
      this.#clock.setTimeout(() => {
        if (this.#entries.get(service) !== entry) return
        // Beyond the budget, broadcast (at most once a second per service)
        // instead: the asker hears it, and it cannot be aimed at anyone.
        // This host's own processes are no target to protect.
        if (!to.local) {
          if (asker.credit < entry.datagram.byteLength) {
            this.#broadcastAnswer(entry, 0)
            return
          }
          asker.credit -= entry.datagram.byteLength
        }
        this.#counts.unicastAnswers++
        this.#link.unicast(entry.datagram, to.address, to.port)
      }, this.#delay())
    }
  }

  // The answer budget of an address: a small burst, then only what its own
  // queries earn, so what a forged source receives is bounded by what was
  // sent in its name. Undefined when the table of askers is full.
  #asker(from: DatagramSource, size: number): Asker | undefined {
    const now = this.#clock.now()
    for (const [address, asker] of this.#askers) {
      if (now - asker.lastQuery <= this.#t.askerMemory) break
      this.#askers.delete(address)
    }
    let asker = this.#askers.get(from.address)
    if (asker) this.#askers.delete(from.address)
    else if (this.#askers.size >= this.#t.maxAskers) return undefined
    else
      asker = {
        credit: this.#t.answerBurst,
        lastQuery: now,
        answeredAt: new Map(),
      }
    asker.lastQuery = now
    asker.credit = Math.min(this.#t.answerBurst, asker.credit + size * this.#t.answerCredit)
    this.#askers.set(from.address, asker)
    return asker
  }

  #broadcastAnswer(entry: Entry, delay: number): void {
    if (
      entry.broadcastPending ||
      this.#clock.now() - entry.lastBroadcastAnswer < this.#t.answerInterval
    ) {
      this.#counts.suppressedAnswers++
      return
    }
    entry.broadcastPending = true
    const send = () => {
      entry.broadcastPending = false
      if (!entry.live) return
      entry.lastBroadcastAnswer = this.#clock.now()
      this.#counts.broadcastAnswers++
      this.#link.broadcast(entry.datagram)
    }
    if (delay <= 0) send()
    else this.#clock.setTimeout(send, delay)
  }

  close(reason = 'publisher closing'): Promise<CloseInfo> {
    this.#closing ??= (async () => {
      const goodbyes = [...this.#entries.values()].map((entry) => {
        this.#clock.clearTimeout(entry.timer)
        entry.live = false
        return entry.goodbye
      })
      this.#entries.clear()
      this.#infos.clear()
      if (goodbyes.length > 0) await this.#goodbyes(goodbyes)
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
 * Creates a publisher: it announces services by UDP broadcast (and to each
 * of `peers` by unicast) at randomized intervals, answers queries (rate-limited per asker and per service), says
 * goodbye when a service goes away, and reports other hosts claiming its ids.
 *
 * @example
 * ```ts
 * await using publisher = await createPublisher()
 * publisher.on('conflict', ({ service, from }) => console.warn(`${from.address} claims ${service}`))
 * const published = publisher.publish({ service: id, port: 4000, info: { type: 'speaker' } })
 * // later
 * await published.unpublish()
 * ```
 */
export async function createPublisher(options: PublisherOptions = {}): Promise<Publisher> {
  let publisher: UdpPublisher | undefined
  const opened = await (options.network ?? udpNetwork({ logger: options.logger })).open(
    (bytes, from) => publisher?.receive(bytes, from),
  )
  let link: DiscoveryLink
  try {
    link = withPeers(opened, options)
  } catch (error) {
    await opened.close()
    throw error
  }
  publisher = new UdpPublisher(link, options)
  const created = publisher
  options.signal?.addEventListener('abort', () => void created.close('aborted'), { once: true })
  return publisher
}
