import os from 'node:os'
import {
  type AddDatagram,
  DISCOVERY_PORT,
  DiscoveryDefaults,
  decodeDatagram,
  encodeDatagram,
  ProtocolError,
} from '@autobus/protocol'
import { type Clock, type Random, systemClock } from './clock.js'
import {
  type DatagramSource,
  type DiscoveryLink,
  type DiscoveryNetwork,
  udpNetwork,
} from './network.js'

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
}

/** Options for {@link createPublisher}. */
export interface PublisherOptions extends PublisherTimings {
  /** The network (default real UDP broadcast on port 52722). */
  network?: DiscoveryNetwork
  clock?: Clock
  random?: Random
  /** Host name added to every info as "hostname" (default this host's, up to the first dot). */
  hostname?: string
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

interface Entry {
  datagram: Buffer
  goodbye: Buffer
  timer: unknown
  answering: Set<string>
  onAnnounced: () => void
}

/** Announces local services; answers queries. */
export interface Publisher extends AsyncDisposable {
  /**
   * Starts announcing a service. Throws `ProtocolError` (code
   * `datagram_too_large`) if its info does not fit in one datagram.
   */
  publish(publication: Publication): Published
  /** Services being announced, by id. */
  readonly services: ReadonlyMap<string, Readonly<Record<string, unknown>>>
  /** Datagrams dropped as malformed. */
  readonly malformed: number
  /** Sends goodbyes for every service and closes the sockets; idempotent. */
  close(): Promise<void>
}

class UdpPublisher implements Publisher {
  readonly #link: DiscoveryLink
  readonly #clock: Clock
  readonly #random: Random
  readonly #t: Required<PublisherTimings>
  readonly #hostname: string
  readonly #entries = new Map<string, Entry>()
  readonly #infos = new Map<string, Readonly<Record<string, unknown>>>()
  #malformed = 0
  #closing: Promise<void> | undefined

  constructor(link: DiscoveryLink, options: PublisherOptions) {
    this.#link = link
    this.#clock = options.clock ?? systemClock
    this.#random = options.random ?? Math.random
    this.#hostname = options.hostname ?? os.hostname().split('.')[0]!
    this.#t = {
      announceInterval: options.announceInterval ?? DiscoveryDefaults.announceInterval,
      announceJitter: options.announceJitter ?? DiscoveryDefaults.announceJitter,
      holdOff: options.holdOff ?? DiscoveryDefaults.holdOff,
      answerDelayMin: options.answerDelayMin ?? DiscoveryDefaults.answerDelayMin,
      answerDelayMax: options.answerDelayMax ?? DiscoveryDefaults.answerDelayMax,
      answerDelayPerService:
        options.answerDelayPerService ?? DiscoveryDefaults.answerDelayPerService,
      goodbyeCount: options.goodbyeCount ?? DiscoveryDefaults.goodbyeCount,
      goodbyeGap: options.goodbyeGap ?? DiscoveryDefaults.goodbyeGap,
    }
  }

  get services(): ReadonlyMap<string, Readonly<Record<string, unknown>>> {
    return this.#infos
  }

  get malformed(): number {
    return this.#malformed
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
      answering: new Set(),
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
    const datagram = decodeDatagram(bytes)
    if (datagram instanceof ProtocolError) {
      this.#malformed++
      return
    }
    if (datagram.command === 'query') this.#answer(from)
  }

  // Each service answers after its own random delay within a window that
  // widens with the number of services, so that many answers to one query
  // do not arrive at once.
  #answer(to: DatagramSource): void {
    const count = this.#entries.size
    if (count === 0) return
    const { answerDelayMin: min, answerDelayMax: max, answerDelayPerService: per } = this.#t
    const window = max - min + per * Math.max(0, count - 10)
    // A query from the shared discovery port cannot be answered by unicast:
    // any process on that host sharing the port might get it.
    const shared = to.port === DISCOVERY_PORT
    const key = shared ? '*' : `${to.address}:${to.port}`
    for (const [service, entry] of this.#entries) {
      if (entry.answering.has(key)) continue
      entry.answering.add(key)
      this.#clock.setTimeout(
        () => {
          entry.answering.delete(key)
          if (this.#entries.get(service) !== entry) return
          if (shared) this.#link.broadcast(entry.datagram)
          else this.#link.unicast(entry.datagram, to.address, to.port)
        },
        min + this.#random() * window,
      )
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      const goodbyes = [...this.#entries.values()].map((entry) => {
        this.#clock.clearTimeout(entry.timer)
        return entry.goodbye
      })
      this.#entries.clear()
      this.#infos.clear()
      if (goodbyes.length > 0) await this.#goodbyes(goodbyes)
      await this.#link.close()
    })()
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

/**
 * Creates a publisher: it announces services by UDP broadcast at randomized
 * intervals, answers queries, and says goodbye when a service goes away.
 *
 * @example
 * ```ts
 * await using publisher = await createPublisher()
 * const published = publisher.publish({ service: id, port: 4000, info: { type: 'speaker' } })
 * // later
 * await published.unpublish()
 * ```
 */
export async function createPublisher(options: PublisherOptions = {}): Promise<Publisher> {
  let publisher: UdpPublisher | undefined
  const link = await (options.network ?? udpNetwork()).open((bytes, from) =>
    publisher?.receive(bytes, from),
  )
  publisher = new UdpPublisher(link, options)
  const created = publisher
  options.signal?.addEventListener('abort', () => void created.close(), { once: true })
  return publisher
}
