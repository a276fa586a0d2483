import { randomBytes } from 'node:crypto'
import { EventEmitter, setMaxListeners } from 'node:events'
import { lstatSync, unlinkSync } from 'node:fs'
import type { Bus, Publication } from '@autobus/bus'
import type { DiscoveredService } from '@autobus/discovery'
import {
  activeLogger,
  BRIDGE_LINK_VERSION,
  type BridgeHello,
  BridgeMessage,
  type BridgeRouteEntry,
  type BridgeRoutes,
  type Closable,
  type CloseInfo,
  Feature,
  type Logger,
} from '@autobus/protocol'
import { bindService, createService } from '@autobus/rpc'
import {
  connect,
  type Endpoint,
  listen,
  type MessageConnection,
  type MessageServer,
  type SocketOptions,
} from '@autobus/transport'
import { formatLinkAddress, type LinkAddress, parseLinkAddress } from './address.js'
import {
  type Circuit,
  CircuitConnection,
  circuitFrame,
  Link,
  type LinkTimings,
  pacer,
  passFrame,
  TurnWriter,
} from './link.js'
import type { NatsBridgeOptions, NatsMesh } from './nats.js'
import { createStandIn, type StandIn } from './stand-in.js'

/** Info keys a bridge adds to every stand-in (and reads from others'). */
export const BridgedKeys = {
  /** `true` on a stand-in. */
  bridged: 'bridged',
  /** How many links away the origin is. */
  hops: 'hops',
  /** The publishing bridge's id, then the ids of the bridges on the way to the origin. */
  via: 'via',
} as const

/** Info key of the service each bridge publishes on its own bus to be known there. */
export const BRIDGE_MARKER_KEY = 'autobus.bridge'

/** Options for {@link createBridge}. */
export interface BridgeOptions extends LinkTimings {
  /** The bus this bridge joins; it stays open when the bridge closes. */
  bus: Bus
  /** Addresses to accept links on: `tcp://HOST:PORT`, `unix:PATH`, or endpoints. */
  listen?: readonly (LinkAddress | string)[]
  /** Addresses to link to, retried forever while the bridge is open. */
  connect?: readonly (LinkAddress | string)[]
  /** Longest path of links a route may take (default 8). */
  hopLimit?: number
  /** First delay before connecting again (default 100 ms); doubles up to `retryMax`. */
  retryInitial?: number
  /** Longest delay between two connection attempts (default 5 s). Every delay is jittered down by up to half. */
  retryMax?: number
  /** Routes kept from one link (default 10,000); more are counted and ignored. */
  maxRoutesPerLink?: number
  /** Circuits open at once on one link (default 4,096); the other end's beyond it are refused and counted. */
  maxCircuitsPerLink?: number
  /** Timeout of a call made through a stand-in (default 30 s). */
  callTimeout?: number
  /**
   * Sessions per stand-in passed on to the origin through circuits of
   * their own (default 16; 0 for none): this bridge then relays their
   * frames unread, which makes their calls cheaper. The stand-in serves
   * every further session itself, over its one session to the origin.
   */
  relayedSessions?: number
  /**
   * Options of the sockets links run on, passed to `@autobus/transport`'s
   * `connect` and `listen`. The bus's keys are used by default: links of a
   * keyed bus run over TLS 1.3 with the bus key, like its sessions.
   */
  socket?: SocketOptions
  /** Where links going up and down and refused routes are reported. */
  logger?: Logger
  /**
   * A NATS cluster to meet other bridges on: every bridge on the same
   * cluster and subject prefix links to every other (docs/bridges.md, "Over
   * NATS"). The NATS client is loaded only when this is given.
   */
  nats?: NatsBridgeOptions
}

/** A link going up or down. */
export interface LinkChange {
  up: boolean
  /** The other bridge's id. */
  peer: string
  /** The address connected to, or the address the other end came from. */
  address: string
  /** Why it went down. */
  reason?: string
}

/** One link as {@link Bridge.links} shows it. */
export interface LinkState {
  peer: string
  address: string
  initiator: boolean
  routes: number
  circuits: number
  invalid: number
  refusedCircuits: number
}

/** Counters of a bridge; bad input is counted, never thrown. */
export interface BridgeStats {
  /** Routes refused: a loop (a bridge of this bus on the path), over the hop limit, or over `maxRoutesPerLink`. */
  refusedRoutes: number
  /** Links refused: to this bridge itself, to a bridge on this bus, or a duplicate. */
  refusedLinks: number
  /** Invalid link messages, over links that have closed (`links()` has the open ones'). */
  invalidMessages: number
  /** Circuits refused over `maxCircuitsPerLink`, over links that have closed. */
  refusedCircuits: number
  /** Circuits relayed from one link to another or to a service of this bus. */
  relayed: number
  /** Sessions bound to a stand-in that were passed on to the origin (see `relayedSessions`). */
  relayedSessions: number
}

/** A route a bridge chose for one service. */
export interface BridgeRoute {
  service: string
  /** Bridge ids on the way to the origin; empty for a service of this bus. */
  path: readonly string[]
  /** The other bridge it goes through, if it is not on this bus. */
  via?: string
}

type BridgeEvents = { link: [change: LinkChange] }

/**
 * A bridge: joins its bus to other buses through links to other bridges.
 * It tells its peers which services it can reach, and publishes on its
 * bus a stand-in for every service it learns of.
 */
export interface Bridge extends Closable, EventEmitter<BridgeEvents> {
  /** This bridge's generated id. */
  readonly id: string
  /** Resolves once listening and known on its bus. */
  readonly ready: Promise<void>
  /** The addresses it listens on, with the ports actually bound. */
  readonly listening: readonly string[]
  /** Links up now. */
  links(): LinkState[]
  /** The route chosen for every service it knows. */
  routes(): BridgeRoute[]
  readonly stats: Readonly<BridgeStats>
}

interface LocalRoute {
  kind: 'local'
  path: string[]
  /** Ties go to the lower: '' for a service of this bus, else the publishing bridge's id. */
  tie: string
  info: Record<string, unknown>
  target: { host: string; port: number }
}
interface LinkRoute {
  kind: 'link'
  path: string[]
  tie: string
  info: Record<string, unknown>
  link: Link
}
type Route = LocalRoute | LinkRoute

/** A stand-in being made, published, or taken down. */
interface Slot {
  key: string
  route: LinkRoute
  stopped: boolean
  standIn?: StandIn
  publication?: Publication
  circuit?: Circuit
  done: Promise<void>
}

const NOT_SENT_ON = new Set(['host', 'port', 'service', 'bridged', 'hops', 'via'])
/** Frames a relay holds for a service it is still connecting to. */
const MAX_EARLY_FRAMES = 64

function routeKey(route: Route | undefined): string {
  if (!route) return ''
  return `${route.kind === 'link' ? route.link.peer!.id : 'local'}|${route.path.join(',')}|${JSON.stringify(route.info)}`
}

function better(a: Route, b: Route): boolean {
  if (a.path.length !== b.path.length) return a.path.length < b.path.length
  return a.tie < b.tie
}

class BridgeImpl extends EventEmitter<BridgeEvents> implements Bridge {
  readonly id = randomBytes(6).toString('hex')
  readonly ready: Promise<void>
  readonly closed: Promise<CloseInfo>
  readonly stats: BridgeStats = {
    refusedRoutes: 0,
    refusedLinks: 0,
    invalidMessages: 0,
    refusedCircuits: 0,
    relayed: 0,
    relayedSessions: 0,
  }
  listening: string[] = []
  readonly #bus: Bus
  readonly #options: BridgeOptions
  readonly #log: Logger | undefined
  readonly #hopLimit: number
  readonly #abort = new AbortController()
  readonly #servers: MessageServer[] = []
  /** Every link not yet closed, established or not. */
  readonly #open = new Set<Link>()
  /** Links past hello, with what they taught and what they were told. */
  readonly #links = new Map<
    Link,
    { learnt: Map<string, BridgeRouteEntry>; told: Map<string, string> }
  >()
  readonly #addresses = new Map<Link, string>()
  /** Links carried over NATS, to the other bridges of the same cluster and prefix. */
  readonly #overNats = new WeakSet<Link>()
  readonly #local = new Map<string, LocalRoute>()
  /** Marker service id → bridge id, for the bridges on this bus (this one included). */
  readonly #mates = new Map<string, string>()
  readonly #best = new Map<string, Route>()
  readonly #slots = new Map<string, Slot>()
  readonly #timers = new Set<NodeJS.Timeout>()
  /** Stand-ins that failed in a row, per service: each try waits twice as long. */
  readonly #failures = new Map<string, number>()
  readonly #queued = new Map<Link, BridgeRoutes>()
  #flushing = false
  #marker: Publication | undefined
  #nats: NatsMesh | undefined
  #closing: Promise<CloseInfo> | undefined
  #resolveClosed!: (info: CloseInfo) => void
  readonly #unwatch: Array<() => void> = []

  constructor(options: BridgeOptions) {
    super()
    this.#bus = options.bus
    // A keyed bus keys its links too: TLS 1.3 with the bus key, as its
    // sessions, so a bridge without the key cannot join.
    const keys = options.bus.keys
    this.#options = keys ? { ...options, socket: { keys, ...options.socket } } : options
    this.#log = activeLogger(options.logger)
    this.#hopLimit = options.hopLimit ?? 8
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    // Every stand-in being made and every connection attempt listens to
    // this one signal, a thousand at once behind a busy bridge.
    setMaxListeners(0, this.#abort.signal)
    this.ready = this.#start()
    this.ready.catch(() => {})
  }

  get #mateIds(): Set<string> {
    return new Set([this.id, ...this.#mates.values()])
  }

  async #start(): Promise<void> {
    const bus = this.#bus
    const appeared = (service: DiscoveredService) => this.#appeared(service)
    const disappeared = (service: DiscoveredService) => this.#disappeared(service)
    bus.on('appeared', appeared)
    bus.on('disappeared', disappeared)
    this.#unwatch.push(
      () => bus.off('appeared', appeared),
      () => bus.off('disappeared', disappeared),
    )
    for (const service of bus.services()) this.#appeared(service)
    const marker = createService({
      info: { [BRIDGE_MARKER_KEY]: this.id },
      doc: 'An Autobus bridge: its links and routes.',
    })
    marker.addFunction('links', { doc: 'Links up now' }, () => this.links())
    marker.addFunction('routes', { doc: 'The route chosen for every service' }, () => this.routes())
    this.#marker = bus.publish(marker)
    for (const given of this.#options.listen ?? []) {
      const address = typeof given === 'string' ? parseLinkAddress(given) : given
      if ('path' in address) removeStaleSocket(address.path)
      const server = await listen({
        ...this.#options.socket,
        ...('path' in address
          ? { path: address.path }
          : { host: address.host, port: address.port }),
      })
      this.#servers.push(server)
      this.listening.push(
        formatLinkAddress('path' in address ? address : { host: address.host, port: server.port }),
      )
      server.on('connection', (connection) => {
        if (this.#closing) return connection.close('bridge closing')
        const link = this.#adopt(
          connection,
          false,
          connection.remotePort
            ? `${connection.remoteAddress}:${connection.remotePort}`
            : formatLinkAddress(address),
        )
        link.start(this.#hello(), this.#options).catch(() => {})
      })
    }
    for (const given of this.#options.connect ?? []) {
      const address = typeof given === 'string' ? parseLinkAddress(given) : given
      void this.#connectLoop(address)
    }
    if (this.#options.nats) {
      const { NatsMesh } = await import('./nats.js')
      this.#nats = new NatsMesh(this.#options.nats, {
        id: this.id,
        adopt: (connection, initiator, address) => {
          if (this.#closing) return void connection.close('bridge closing')
          const link = this.#adopt(connection, initiator, address)
          this.#overNats.add(link)
          link.start(this.#hello(), this.#options).catch(() => {})
        },
        retryInitial: this.#options.retryInitial ?? 100,
        retryMax: this.#options.retryMax ?? 5_000,
        logger: this.#log,
      })
      await this.#nats.start()
    }
  }

  #hello(): BridgeHello {
    return { id: this.id, version: BRIDGE_LINK_VERSION, mates: [...this.#mateIds] }
  }

  // --- this bus ------------------------------------------------------------

  #appeared(service: DiscoveredService): void {
    const info = service.info
    const marker = info[BRIDGE_MARKER_KEY]
    if (typeof marker === 'string') {
      if (marker !== this.id) {
        this.#mates.set(service.service, marker)
        this.#matesChanged()
      }
      return
    }
    const via = info[BridgedKeys.via]
    const bridged = info[BridgedKeys.bridged] === true && Array.isArray(via)
    if (bridged && via[0] === this.id) return
    const path = bridged ? via.slice(1).filter((id): id is string => typeof id === 'string') : []
    this.#local.set(service.service, {
      kind: 'local',
      path,
      tie: bridged ? String(via[0]) : '',
      info: carried(info),
      target: { host: service.host, port: service.port },
    })
    this.#reconsider(service.service)
  }

  #disappeared(service: DiscoveredService): void {
    if (this.#mates.delete(service.service)) {
      this.#matesChanged()
      return
    }
    const known = this.#local.get(service.service)
    if (!known || known.target.port !== service.port || known.target.host !== service.host) return
    this.#local.delete(service.service)
    this.#reconsider(service.service)
  }

  #matesChanged(): void {
    const hello = this.#hello()
    for (const link of this.#links.keys()) {
      if (this.#refuseLoop(link, link.peer!)) continue
      link.send(BridgeMessage.Hello, [hello])
    }
    this.#reconsiderAll()
  }

  // --- links ---------------------------------------------------------------

  #adopt(connection: MessageConnection, initiator: boolean, address: string): Link {
    const link = new Link(connection, initiator, this.#options.maxCircuitsPerLink ?? 4_096)
    this.#open.add(link)
    this.#addresses.set(link, address)
    link.on('hello', (peer) => {
      if (this.#links.has(link)) this.#peerChanged(link, peer)
      else this.#established(link, peer)
    })
    link.on('routes', (update) => this.#learn(link, update))
    link.on('open', (circuit, service) => this.#relay(circuit, service))
    link.closed.then((info) => {
      this.#open.delete(link)
      this.#addresses.delete(link)
      this.stats.invalidMessages += link.counters.invalid
      this.stats.refusedCircuits += link.counters.refusedCircuits
      const state = this.#links.get(link)
      if (!state) return
      this.#links.delete(link)
      this.#queued.delete(link)
      for (const service of state.learnt.keys()) this.#reconsider(service)
      const reason = link.byeReason ?? info.reason
      this.emit('link', { up: false, peer: link.peer!.id, address, reason })
    })
    return link
  }

  #refuseLoop(link: Link, peer: BridgeHello): boolean {
    const mates = this.#mateIds
    let reason: string | undefined
    if (peer.id === this.id) reason = 'loop: linked to itself'
    else if (mates.has(peer.id) || peer.mates.includes(this.id))
      reason = 'loop: the other bridge is on this bus'
    if (!reason) return false
    this.stats.refusedLinks++
    this.#log?.warn(`autobus:bridge link refused: ${reason}`)
    link.close(reason)
    return true
  }

  #established(link: Link, peer: BridgeHello): void {
    if (this.#closing || this.#refuseLoop(link, peer)) return
    const other = [...this.#links.keys()].find((known) => known.peer!.id === peer.id)
    if (other) {
      // Both ends keep the link made by the bridge with the lower id (the
      // older one if the same bridge made both), so two bridges that
      // connect to each other end up with one link.
      const maker = (candidate: Link) => (candidate.initiator ? this.id : peer.id)
      const loser = maker(link) < maker(other) ? other : link
      this.stats.refusedLinks++
      loser.close('duplicate link')
      if (loser === link) return
    }
    this.#links.set(link, { learnt: new Map(), told: new Map() })
    const address = this.#addresses.get(link)!
    this.#log?.info(`autobus:bridge link to ${peer.id} up (${address})`)
    this.emit('link', { up: true, peer: peer.id, address })
    for (const service of this.#best.keys()) this.#tell(link, service)
  }

  #peerChanged(link: Link, peer: BridgeHello): void {
    if (this.#refuseLoop(link, peer)) return
    for (const service of this.#best.keys()) this.#tell(link, service)
  }

  async #connectLoop(address: Endpoint): Promise<void> {
    const signal = this.#abort.signal
    const initial = this.#options.retryInitial ?? 100
    const max = this.#options.retryMax ?? 5_000
    let attempt = 0
    while (!signal.aborted) {
      try {
        const connection = await connect(address, {
          ...this.#options.socket,
          timeout: Math.max(max, 1_000),
          signal,
        })
        const link = this.#adopt(connection, true, formatLinkAddress(address))
        const peer = await link.start(this.#hello(), this.#options)
        const info = await link.closed
        if (this.#links.size === 0 || !link.isClosed) attempt = 0
        if ((link.byeReason ?? info.reason) === 'duplicate link') {
          attempt = 0
          const winner = [...this.#links.keys()].find((known) => known.peer!.id === peer.id)
          if (winner) await Promise.race([winner.closed, aborted(signal)])
        } else {
          attempt = 0
        }
      } catch {
        // Unreachable, refused or gone before hello: try again later.
      }
      if (signal.aborted) return
      const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 30))
      attempt++
      await this.#sleep(ceiling * (0.5 + Math.random() / 2))
    }
  }

  #sleep(ms: number): Promise<void> {
    const signal = this.#abort.signal
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        this.#timers.delete(timer)
        signal.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      this.#timers.add(timer)
      signal.addEventListener('abort', done, { once: true })
    })
  }

  // --- routes --------------------------------------------------------------

  #learn(link: Link, update: BridgeRoutes): void {
    const state = this.#links.get(link)
    if (!state) return
    const peer = link.peer!.id
    const touched = new Set<string>()
    for (const service of update.remove) {
      if (state.learnt.delete(service)) touched.add(service)
    }
    const limit = this.#options.maxRoutesPerLink ?? 10_000
    for (const entry of update.add) {
      // The sender puts itself first: anything else is not a route it may give.
      if (entry.path[0] !== peer) {
        link.counters.invalid++
        continue
      }
      if (!state.learnt.has(entry.service) && state.learnt.size >= limit) {
        this.stats.refusedRoutes++
        continue
      }
      state.learnt.set(entry.service, entry)
      touched.add(entry.service)
    }
    for (const service of touched) this.#reconsider(service)
  }

  #acceptable(path: readonly string[]): boolean {
    if (path.length === 0 || path.length > this.#hopLimit) return false
    const mates = this.#mateIds
    if (path.some((id) => mates.has(id))) return false
    return new Set(path).size === path.length
  }

  #reconsiderAll(): void {
    const services = new Set<string>([...this.#best.keys(), ...this.#local.keys()])
    for (const state of this.#links.values()) for (const id of state.learnt.keys()) services.add(id)
    for (const service of services) this.#reconsider(service)
  }

  #reconsider(service: string): void {
    if (this.#closing) return
    let best: Route | undefined = this.#local.get(service)
    // Another bridge's stand-in whose route left this bus and came back is a
    // loop, not a route (it can be seen before that bridge learns so).
    if (best && best.path.length > 0 && !this.#acceptable(best.path)) best = undefined
    for (const [link, state] of this.#links) {
      const entry = state.learnt.get(service)
      if (!entry) continue
      if (!this.#acceptable(entry.path)) {
        this.stats.refusedRoutes++
        continue
      }
      const route: LinkRoute = {
        kind: 'link',
        path: entry.path,
        tie: `${this.id}/${link.peer!.id}`,
        info: entry.info,
        link,
      }
      if (!best || better(route, best)) best = route
    }
    if (routeKey(best) === routeKey(this.#best.get(service))) return
    if (best) this.#best.set(service, best)
    else {
      this.#best.delete(service)
      this.#failures.delete(service)
    }
    for (const link of this.#links.keys()) this.#tell(link, service)
    this.#syncStandIn(service)
  }

  /** Tells one link the route to one service, or withdraws it, if that changed. */
  #tell(link: Link, service: string): void {
    const state = this.#links.get(link)!
    const best = this.#best.get(service)
    const peer = link.peer!
    let entry: BridgeRouteEntry | undefined
    if (
      best &&
      !(best.kind === 'link' && best.link === link) &&
      // Every bridge on the NATS cluster links to every other one, so each
      // already hears this route from the bridge it was learnt from:
      // passing it on over NATS would only make route traffic grow with
      // the square of the sites (docs/protocol.md §8.7.4).
      !(best.kind === 'link' && this.#overNats.has(best.link) && this.#overNats.has(link)) &&
      best.path.length + 1 <= this.#hopLimit &&
      !best.path.includes(peer.id) &&
      !best.path.some((id) => peer.mates.includes(id))
    ) {
      entry = { service, info: best.info, path: [this.id, ...best.path] }
    }
    const key = entry ? JSON.stringify(entry) : undefined
    if (state.told.get(service) === key) return
    let queued = this.#queued.get(link)
    if (!queued) {
      queued = { add: [], remove: [] }
      this.#queued.set(link, queued)
    }
    if (entry && key) {
      state.told.set(service, key)
      queued.add.push(entry)
    } else {
      state.told.delete(service)
      queued.remove.push(service)
    }
    if (!this.#flushing) {
      this.#flushing = true
      setImmediate(() => this.#flush())
    }
  }

  // Routes that change together go in one message; an add and a remove of
  // the same service in one batch keep their order (removes go first, and a
  // service withdrawn then re-added is only added).
  #flush(): void {
    this.#flushing = false
    for (const [link, update] of this.#queued) {
      const added = new Map(update.add.map((entry) => [entry.service, entry]))
      const remove = [...new Set(update.remove)].filter(
        (service) => !added.has(service) && !this.#links.get(link)?.told.has(service),
      )
      const add = [...added.values()].filter(
        (entry) => this.#links.get(link)?.told.get(entry.service) === JSON.stringify(entry),
      )
      for (let i = 0; i < Math.max(add.length, remove.length); i += 500) {
        link.sendRoutes({ add: add.slice(i, i + 500), remove: remove.slice(i, i + 500) })
      }
    }
    this.#queued.clear()
  }

  // --- stand-ins -----------------------------------------------------------

  #syncStandIn(service: string): void {
    const best = this.#best.get(service)
    const want = best?.kind === 'link' ? best : undefined
    const slot = this.#slots.get(service)
    const key = routeKey(want)
    if (slot && slot.key === key) return
    const previous = slot ? this.#stopSlot(service, slot, 'route changed') : Promise.resolve()
    if (!want) return
    const next: Slot = { key, route: want, stopped: false, done: Promise.resolve() }
    this.#slots.set(service, next)
    next.done = previous.then(() => this.#runSlot(service, next))
  }

  async #runSlot(service: string, slot: Slot): Promise<void> {
    if (slot.stopped) return
    const route = slot.route
    const circuit = route.link.open(service)
    slot.circuit = circuit
    try {
      const up = await bindService(new CircuitConnection(circuit), service, {
        features: [
          Feature.Errors,
          Feature.Describe,
          Feature.Channels,
          Feature.Streams,
          Feature.Attachments,
        ],
        signal: this.#abort.signal,
      })
      const info = {
        ...route.info,
        [BridgedKeys.bridged]: true,
        [BridgedKeys.hops]: route.path.length,
        [BridgedKeys.via]: [this.id, ...route.path],
      }
      const standIn = await createStandIn(up, info, {
        signal: this.#abort.signal,
        relay: () => route.link.open(service),
        ...(this.#options.relayedSessions === undefined
          ? {}
          : { maxRelayed: this.#options.relayedSessions }),
        onRelayed: () => {
          this.stats.relayedSessions++
        },
        ...(this.#options.callTimeout ? { callTimeout: this.#options.callTimeout } : {}),
      })
      slot.standIn = standIn
      if (slot.stopped) return
      slot.publication = this.#bus.publish(standIn.service)
      this.#failures.delete(service)
      up.closed.then((closed) => this.#lost(service, slot, closed.reason))
    } catch (error) {
      if (slot.stopped) return
      this.#log?.warn(
        `autobus:bridge no stand-in for ${service}: ${error instanceof Error ? error.message : String(error)}`,
      )
      circuit.close('stand-in failed')
      this.#failures.set(service, (this.#failures.get(service) ?? 0) + 1)
      this.#lost(service, slot, 'stand-in failed')
    }
  }

  #stopSlot(service: string, slot: Slot, reason: string): Promise<void> {
    if (this.#slots.get(service) === slot) this.#slots.delete(service)
    if (slot.stopped) return slot.done
    slot.stopped = true
    slot.done = slot.done.then(async () => {
      slot.standIn?.lose()
      await slot.publication?.unpublish()
      slot.circuit?.close(reason)
    })
    return slot.done
  }

  /**
   * The session behind a stand-in ended: take it down, and try again while
   * a route remains, after 250 ms, doubling up to 30 s while it keeps failing.
   */
  #lost(service: string, slot: Slot, reason: string): void {
    if (slot.stopped || this.#slots.get(service) !== slot) return
    void this.#stopSlot(service, slot, reason).then(() => {
      if (this.#closing) return
      const failures = this.#failures.get(service) ?? 0
      const timer = setTimeout(
        () => {
          this.#timers.delete(timer)
          if (!this.#slots.has(service)) this.#syncStandIn(service)
        },
        Math.min(30_000, 250 * 2 ** failures),
      )
      this.#timers.add(timer)
    })
  }

  // --- relays --------------------------------------------------------------

  #relay(circuit: Circuit, service: string): void {
    const best = this.#best.get(service)
    if (!best || this.#closing) {
      circuit.close(`no route to service ${service}`)
      return
    }
    this.stats.relayed++
    if (best.kind === 'link') {
      if (best.link === circuit.link) {
        circuit.close(`no route to service ${service}`)
        return
      }
      const next = best.link.open(service)
      // A frame without attachment goes on as text: one write with its
      // header rather than two.
      const pass = (to: Circuit) => (bytes: Buffer) =>
        to.send(bytes.indexOf(0x0a) === -1 ? bytes.toString() : bytes)
      circuit.on('frame', pass(next))
      next.on('frame', pass(circuit))
      next.closed.then((info) => circuit.close(info.reason))
      circuit.closed.then((info) => next.close(info.reason))
      return
    }
    let early: Buffer[] | undefined = []
    let real: MessageConnection | undefined
    let writer: TurnWriter | undefined
    const toService = (bytes: Buffer) => {
      if (real && writer) {
        if (!passFrame(bytes, circuit, writer, real)) circuit.close('invalid frame')
      } else if (early && early.length < MAX_EARLY_FRAMES) early.push(bytes)
      else circuit.close('too many frames before the service answered')
    }
    circuit.on('frame', toService)
    // A service of this bus's own server (listed at 127.0.0.1 on its port)
    // is reached within the process: no socket, no system call, no wake-up.
    const own = best.target.port === this.#bus.port && best.target.host === '127.0.0.1'
    const opened = own
      ? Promise.resolve(this.#bus.connectInProcess())
      : connect(best.target, { ...this.#options.socket, signal: this.#abort.signal })
    opened.then(
      (connection) => {
        if (circuit.isClosed) {
          connection.close('circuit closed')
          return
        }
        real = connection
        writer = new TurnWriter((text) => connection.sendEncoded(text))
        // The service sends attachments only if the far end's bind asked for
        // them; reading them is harmless otherwise.
        connection.enableAttachments()
        // The service's frames go on as the text it wrote: the far end
        // decodes and checks them, so the relay need not.
        const paced = pacer(circuit.link, connection)
        connection.readRaw?.((frame) => {
          circuit.send(frame)
          paced()
        })
        connection.on('message', (message) => {
          circuit.send(circuitFrame(message))
          paced()
        })
        connection.closed.then((info) => circuit.close(info.reason))
        circuit.closed.then((info) => {
          writer?.flush()
          connection.close(info.reason)
        })
        for (const bytes of early ?? []) toService(bytes)
        early = undefined
      },
      (error: Error) => circuit.close(`cannot reach service ${service}: ${error.message}`),
    )
  }

  // --- views and lifecycle -------------------------------------------------

  links(): LinkState[] {
    return [...this.#links].map(([link, state]) => ({
      peer: link.peer!.id,
      address: this.#addresses.get(link)!,
      initiator: link.initiator,
      routes: state.learnt.size,
      circuits: link.circuitCount,
      invalid: link.counters.invalid,
      refusedCircuits: link.counters.refusedCircuits,
    }))
  }

  routes(): BridgeRoute[] {
    return [...this.#best].map(([service, route]) => ({
      service,
      path: [...route.path],
      ...(route.kind === 'link' ? { via: route.link.peer!.id } : {}),
    }))
  }

  close(reason = 'bridge closing'): Promise<CloseInfo> {
    this.#closing ??= (async () => {
      this.#abort.abort(new Error(reason))
      for (const stop of this.#unwatch) stop()
      for (const timer of this.#timers) clearTimeout(timer)
      await this.ready.catch(() => {})
      await Promise.all(this.#servers.map((server) => server.close(reason)))
      await Promise.all(
        [...this.#slots].map(([service, slot]) => this.#stopSlot(service, slot, reason)),
      )
      await Promise.all([...this.#open].map((link) => link.close(reason)))
      await this.#nats?.close(reason)
      await this.#marker?.unpublish()
      const info = { reason }
      this.#resolveClosed(info)
      return info
    })()
    return this.#closing
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

function carried(info: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const kept: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(info)) if (!NOT_SENT_ON.has(key)) kept[key] = value
  return kept
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve()
    else signal.addEventListener('abort', () => resolve(), { once: true })
  })
}

// A socket file left by a bridge that was killed would make listening fail;
// only a socket is removed, never another kind of file.
function removeStaleSocket(path: string): void {
  try {
    // A plain `lstatSync` of a socket leaves Node's shared stat buffer
    // saying "socket", and Node 20's module loader then stops resolving
    // symlinks early: with pnpm's layout, a module loaded later (the NATS
    // client) fails to find its own dependencies. The bigint form and
    // `unlinkSync` leave that buffer alone.
    if (lstatSync(path, { bigint: true }).isSocket()) unlinkSync(path)
  } catch {
    // Nothing there.
  }
}

/**
 * Creates a bridge on a bus: it listens and connects as told, and from then
 * on makes the services of every bus it is linked to (directly or through
 * other bridges) usable on its own, and its own on theirs.
 *
 * @example
 * ```ts
 * await using bus = await createBus()
 * await using bridge = createBridge({ bus, listen: ['tcp://0.0.0.0:7010'] })
 * await bridge.ready
 * bridge.on('link', (change) => console.log(change.up ? 'up' : 'down', change.peer))
 * ```
 */
export function createBridge(options: BridgeOptions): Bridge {
  return new BridgeImpl(options)
}
