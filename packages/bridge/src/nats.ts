import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import {
  BRIDGE_LINK_VERSION,
  decodeNatsPresence,
  decodeNatsSegment,
  type Logger,
  ProtocolError,
} from '@autobus/protocol'
import type { MessageConnection } from '@autobus/transport'
import type { NatsConnection, ConnectionOptions as NatsConnectionOptions, Subscription } from 'nats'
import {
  NatsLinkConnection,
  type NatsLinkLimits,
  type SegmentCarrier,
  type SegmentHeader,
} from './nats-link.js'

/**
 * How a bridge meets other bridges over a NATS cluster (docs/bridges.md,
 * "Over NATS"). Every bridge on the same cluster and prefix links to every
 * other one.
 */
export interface NatsBridgeOptions extends NatsLinkLimits {
  /**
   * Cluster members to connect to, `nats://HOST:PORT` (or `tls://`), tried
   * in this order: the client fails over to the next (and to members the
   * cluster tells it of) without losing its subscriptions.
   */
  servers: readonly string[]
  /** First token of every subject (default `autobus`); bridges meet only on the same prefix. */
  prefix?: string
  /** User name, with `pass`. */
  user?: string
  /** Password of `user`. */
  pass?: string
  /** Authentication token. */
  token?: string
  /** NKey seed (`SU…`), for NKey authentication. */
  nkeySeed?: string
  /** Path of a `.creds` file (a user JWT and its NKey seed). */
  credsFile?: string
  /** TLS to the servers: file paths or PEM text of the CA, certificate and key. */
  tls?: {
    caFile?: string
    certFile?: string
    keyFile?: string
    ca?: string
    cert?: string
    key?: string
  }
  /** How often a bridge says it is there (default 1 s). */
  announceInterval?: number
  /** Client name shown by the server (default `autobus-bridge-ID`). */
  name?: string
}

/** What the mesh needs from its bridge. */
export interface NatsMeshHost {
  id: string
  /** Hands a link to the bridge, which runs the link protocol on it. */
  adopt(connection: MessageConnection, initiator: boolean, address: string): void
  retryInitial: number
  retryMax: number
  logger?: Logger | undefined
}

interface PeerState {
  link?: NatsLinkConnection
  /** Epochs of links to it that closed lately, whose stray segments are refused. */
  closed: string[]
  failures: number
  notBefore: number
}

const ID = /^[A-Za-z0-9_-]{1,64}$/
const PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/
/** Time without acknowledgement after which a peer's presence makes a link send again. */
const STALLED = 250
/** Room for a segment's header line under the server's `max_payload`. */
const HEADER_ROOM = 256

/** Checks a subject prefix; throws `TypeError` for one NATS would read as several or as wildcards. */
export function checkSubjectPrefix(prefix: string): string {
  if (!PREFIX.test(prefix))
    throw new TypeError(
      `"${prefix}": a subject prefix is dot-separated tokens of letters, digits, "-" and "_"`,
    )
  return prefix
}

/**
 * The NATS side of a bridge: one client connection, the presence of the
 * other bridges, and one link to each of them.
 * @internal
 */
export class NatsMesh implements SegmentCarrier {
  readonly #options: NatsBridgeOptions
  readonly #host: NatsMeshHost
  readonly #prefix: string
  readonly #peers = new Map<string, PeerState>()
  #nc: NatsConnection | undefined
  #subscriptions: Subscription[] = []
  #announcer: NodeJS.Timeout | undefined
  #connected: Promise<void> = Promise.resolve()
  #retry: NodeJS.Timeout | undefined
  #wake: (() => void) | undefined
  #closed = false
  segmentSize = 1024 * 1024 - HEADER_ROOM
  /** Segments that could not be read (bad subject or header), counted. */
  invalid = 0

  constructor(options: NatsBridgeOptions, host: NatsMeshHost) {
    this.#options = options
    this.#host = host
    this.#prefix = checkSubjectPrefix(options.prefix ?? 'autobus')
    if (options.servers.length === 0) throw new TypeError('at least one NATS server is needed')
  }

  get address(): string {
    return `nats:${this.#prefix}`
  }

  /**
   * Loads the client and reads the credentials (throwing if they cannot be
   * read), then connects in the background, retrying forever, and starts
   * meeting other bridges.
   */
  async start(): Promise<void> {
    // Loaded only by bridges that use NATS.
    const nats = await import('nats')
    const o = this.#options
    const authenticators = []
    if (o.nkeySeed)
      authenticators.push(nats.nkeyAuthenticator(new TextEncoder().encode(o.nkeySeed)))
    if (o.credsFile) authenticators.push(nats.credsAuthenticator(await readFile(o.credsFile)))
    const options: NatsConnectionOptions = {
      servers: [...o.servers],
      name: o.name ?? `autobus-bridge-${this.#host.id}`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      // Until the first connection this bridge retries itself, so that
      // closing it is never held up by servers that do not answer.
      timeout: 5_000,
      // In the order given, so that a site lists its nearest member first.
      noRandomize: true,
      // A server that goes silent without closing the socket is left
      // within a few seconds.
      pingInterval: 2_000,
      maxPingOut: 2,
      // A bridge does not need its own announcements back.
      noEcho: true,
      ...(o.user !== undefined ? { user: o.user, pass: o.pass ?? '' } : {}),
      ...(o.token !== undefined ? { token: o.token } : {}),
      ...(authenticators.length > 0 ? { authenticator: authenticators } : {}),
      ...(o.tls ? { tls: o.tls } : {}),
    }
    this.#connected = this.#connect(() => nats.connect(options))
  }

  async #connect(connect: () => Promise<NatsConnection>): Promise<void> {
    for (let attempt = 0; !this.#closed; attempt++) {
      try {
        await this.#joined(await connect())
        return
      } catch (error) {
        if (attempt === 0)
          this.#host.logger?.warn(
            `autobus:bridge no NATS server yet (${(error as Error).message}); retrying`,
          )
      }
      const ceiling = Math.min(
        this.#host.retryMax,
        this.#host.retryInitial * 2 ** Math.min(attempt, 30),
      )
      await new Promise<void>((resolve) => {
        this.#wake = resolve
        this.#retry = setTimeout(resolve, ceiling * (0.5 + Math.random() / 2))
      })
    }
  }

  /** Resolves once connected to a NATS server the first time (or closed before). */
  get connected(): Promise<void> {
    return this.#connected
  }

  async #joined(nc: NatsConnection): Promise<void> {
    if (this.#closed) {
      await nc.close()
      return
    }
    this.#nc = nc
    this.#sized()
    void this.#watchStatus(nc)
    this.#subscriptions.push(
      nc.subscribe(`${this.#prefix}.bridges`, {
        callback: (error, message) => {
          if (!error) this.#presence(message.data)
        },
      }),
      nc.subscribe(`${this.#prefix}.link.${this.#host.id}.*`, {
        callback: (error, message) => {
          if (!error) this.#received(message.subject, message.data)
        },
      }),
    )
    // The subscriptions are in place before anyone is told to use them.
    await nc.flush().catch(() => {})
    if (this.#closed) return
    this.#announce()
    this.#announcer = setInterval(() => this.#announce(), this.#options.announceInterval ?? 1_000)
  }

  #sized(): void {
    const max = this.#nc?.info?.max_payload
    if (typeof max === 'number' && max > HEADER_ROOM * 2) this.segmentSize = max - HEADER_ROOM
  }

  async #watchStatus(nc: NatsConnection): Promise<void> {
    for await (const status of nc.status()) {
      if (this.#closed) return
      if (status.type === 'disconnect')
        this.#host.logger?.warn(
          `autobus:bridge NATS server ${String(status.data)} lost; failing over`,
        )
      if (status.type === 'reconnect') {
        this.#host.logger?.info(`autobus:bridge NATS reconnected to ${String(status.data)}`)
        this.#sized()
        // The client subscribed again; what was in flight may be lost.
        this.#announce()
        for (const peer of this.#peers.values()) peer.link?.retransmit()
      }
    }
  }

  #announce(): void {
    if (this.#closed || !this.#nc) return
    this.#nc.publish(
      `${this.#prefix}.bridges`,
      Buffer.from(JSON.stringify({ id: this.#host.id, version: BRIDGE_LINK_VERSION })),
    )
  }

  #peer(id: string): PeerState {
    let peer = this.#peers.get(id)
    if (!peer) {
      peer = { closed: [], failures: 0, notBefore: 0 }
      this.#peers.set(id, peer)
    }
    return peer
  }

  #presence(data: Uint8Array): void {
    const presence = decodeNatsPresence(data)
    if (presence instanceof ProtocolError) {
      this.invalid++
      return
    }
    const { id, version } = presence
    if (id === this.#host.id || version !== BRIDGE_LINK_VERSION) return
    const known = this.#peers.has(id)
    const peer = this.#peer(id)
    if (peer.link) {
      // It may have just come back from a failover: what it missed goes
      // again, unless acknowledgements are still coming.
      peer.link.retransmit(STALLED)
      return
    }
    // The bridge with the lower id starts the link; the other one makes
    // itself heard at once so that a newcomer need not wait a period.
    if (this.#host.id > id) {
      if (!known) this.#announce()
      return
    }
    if (Date.now() < peer.notBefore) return
    this.#open(id, peer, randomBytes(8).toString('hex'), true)
  }

  #open(id: string, peer: PeerState, epoch: string, initiator: boolean): NatsLinkConnection {
    const link = new NatsLinkConnection(this, id, epoch, this.#options)
    peer.link = link
    link.closed.then(() => {
      if (peer.link === link) peer.link = undefined
      peer.closed.push(epoch)
      if (peer.closed.length > 8) peer.closed.shift()
      // A link refused or lost soon after it opened is tried again later
      // and later (doubling up to retryMax, jittered), like a connect.
      peer.failures = link.age < 10_000 ? peer.failures + 1 : 0
      const ceiling = Math.min(
        this.#host.retryMax,
        this.#host.retryInitial * 2 ** Math.min(peer.failures, 30),
      )
      peer.notBefore = Date.now() + ceiling * (0.5 + Math.random() / 2)
    })
    this.#host.adopt(link, initiator, `${this.address}/${id}`)
    return link
  }

  #received(subject: string, data: Uint8Array): void {
    const from = subject.slice(subject.lastIndexOf('.') + 1)
    const segment = decodeNatsSegment(data)
    if (segment instanceof ProtocolError || !ID.test(from) || from === this.#host.id) {
      this.invalid++
      return
    }
    const { header, body } = segment
    const peer = this.#peer(from)
    if (peer.link?.epoch === header.epoch) {
      peer.link.segment(header, body)
      return
    }
    if (header.reset !== undefined) return
    // The first segment of a link the other bridge started: a link it
    // started before is over (it would not start another otherwise).
    if (
      from < this.#host.id &&
      header.seq === 1 &&
      !peer.closed.includes(header.epoch) &&
      !this.#closed
    ) {
      peer.link?.finish('link started again by the other bridge')
      this.#open(from, peer, header.epoch, false).segment(header, body)
      return
    }
    this.publish(from, { epoch: header.epoch, ack: 0, reset: 'no such link' })
  }

  publish(peer: string, header: SegmentHeader, body?: Uint8Array): void {
    const nc = this.#nc
    if (!nc || nc.isClosed()) return
    const line = JSON.stringify(header)
    let payload: Uint8Array
    if (body) {
      const head = Buffer.byteLength(line)
      const buffer = Buffer.allocUnsafe(head + 1 + body.byteLength)
      buffer.write(line, 0, 'utf8')
      buffer[head] = 0x0a
      buffer.set(body, head + 1)
      payload = buffer
    } else payload = Buffer.from(line)
    try {
      nc.publish(`${this.#prefix}.link.${peer}.${this.#host.id}`, payload)
    } catch {
      // Closed or draining: the link's heartbeat ends it.
    }
  }

  /** Closes every link and the client connection. */
  async close(reason: string): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#announcer)
    clearTimeout(this.#retry)
    this.#wake?.()
    for (const peer of this.#peers.values()) await peer.link?.close(reason)
    const nc = this.#nc
    if (nc && !nc.isClosed()) {
      try {
        await nc.flush()
      } catch {
        // Disconnected: nothing more can go out.
      }
      await nc.close()
    }
  }
}
