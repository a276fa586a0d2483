import dns from 'node:dns'
import net from 'node:net'
import { DISCOVERY_PORT } from '@autobus/protocol'
import { type Clock, systemClock } from './clock.js'
import {
  type DatagramHandler,
  type DiscoveryLink,
  type DiscoveryNetwork,
  delegateLink,
} from './network.js'

/** Resolves a host name to its IPv4 addresses. */
export type PeerResolver = (host: string) => Promise<readonly string[]>

/**
 * Unicast peers, for networks that drop broadcast (Docker bridges, WSL,
 * cloud VPCs, some Wi-Fi): every datagram broadcast is also sent to each
 * peer's discovery port.
 */
export interface PeerOptions {
  /**
   * Hosts that also get every query, announcement and goodbye: `"10.0.0.5"`,
   * `"host-b"` or `"host-b:52722"` (default port: this side's discovery
   * port). Host names are resolved, and resolved again from time to time.
   */
  peers?: readonly string[]
  /** How often host names among the peers are resolved again, in ms (default 30 s). */
  peerResolveInterval?: number
  /** Resolves a peer's host name (default `dns.lookup`, IPv4 only). */
  resolvePeer?: PeerResolver
  /**
   * Datagrams kept for peers whose names have not resolved yet, sent to
   * each once it does (default 64): a bus's first query and first
   * announcements leave before any lookup can answer.
   */
  peerBacklog?: number
}

/** One entry of a peer list, parsed. */
export interface PeerAddress {
  readonly host: string
  /** Undefined: the discovery port of the side that sends. */
  readonly port?: number
}

/** Default interval between two resolutions of a peer's host name, in ms. */
export const PEER_RESOLVE_INTERVAL = 30_000

/** Default number of datagrams kept for peers whose names have not resolved yet. */
export const PEER_BACKLOG = 64

/**
 * Parses one peer entry (`host` or `host:port`). Throws a `TypeError` naming
 * the entry when it is not one.
 */
export function parsePeer(entry: string): PeerAddress {
  const text = typeof entry === 'string' ? entry.trim() : ''
  const match = /^([^\s:]+)(?::(\d{1,5}))?$/.exec(text)
  const port = match?.[2] === undefined ? undefined : Number(match[2])
  if (!match || (port !== undefined && (port < 1 || port > 65535)))
    throw new TypeError(`invalid peer "${String(entry)}": expected host or host:port`)
  return port === undefined ? { host: match[1]! } : { host: match[1]!, port }
}

/**
 * Parses a comma-separated peer list, as `AUTOBUS_PEERS` holds it; blank
 * entries are skipped.
 */
export function parsePeerList(text: string | undefined): string[] {
  return (text ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      parsePeer(entry)
      return entry
    })
}

const lookup: PeerResolver = async (host) =>
  (await dns.promises.lookup(host, { family: 4, all: true })).map((found) => found.address)

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'UNKNOWN'
}

/**
 * Wraps a link so that whatever it broadcasts also goes by unicast to each
 * peer. Host names are resolved in the background: what was broadcast
 * before a name first resolved (the last `peerBacklog`) is sent to it then,
 * and a failed resolution keeps the last addresses; failures are counted by
 * error code in `faults.resolve`.
 */
export function withPeers(
  link: DiscoveryLink,
  options: PeerOptions & { clock?: Clock },
): DiscoveryLink {
  const entries = (options.peers ?? []).map(parsePeer)
  if (entries.length === 0) return link
  const clock = options.clock ?? systemClock
  const resolve = options.resolvePeer ?? lookup
  const every = options.peerResolveInterval ?? PEER_RESOLVE_INTERVAL
  const keep = options.peerBacklog ?? PEER_BACKLOG
  const defaultPort = link.discoveryPort ?? DISCOVERY_PORT
  const resolveFaults: Record<string, number> = {}
  const addresses = new Map<PeerAddress, readonly string[]>()
  const named: PeerAddress[] = []
  for (const entry of entries) {
    if (net.isIPv4(entry.host)) addresses.set(entry, [entry.host])
    else named.push(entry)
  }
  const unresolved = new Set(named)
  const backlog: Buffer[] = []
  let closed = false
  let timer: unknown
  const resolveAll = async () => {
    await Promise.all(
      named.map(async (entry) => {
        try {
          const found = (await resolve(entry.host)).filter((address) => net.isIPv4(address))
          if (found.length === 0) {
            resolveFaults.ENOTFOUND = (resolveFaults.ENOTFOUND ?? 0) + 1
            return
          }
          addresses.set(entry, found)
          if (closed || !unresolved.delete(entry)) return
          for (const bytes of backlog)
            for (const address of found) link.unicast(bytes, address, entry.port ?? defaultPort)
          if (unresolved.size === 0) backlog.length = 0
        } catch (error) {
          const code = errorCode(error)
          resolveFaults[code] = (resolveFaults[code] ?? 0) + 1
        }
      }),
    )
    if (!closed) timer = clock.setTimeout(() => void resolveAll(), every)
  }
  if (named.length > 0) void resolveAll()
  const sendToPeers = (bytes: Buffer) => {
    for (const [entry, found] of addresses)
      for (const address of found) link.unicast(bytes, address, entry.port ?? defaultPort)
  }
  return delegateLink(link, {
    get faults() {
      return { ...link.faults, resolve: { ...(link.faults.resolve ?? {}), ...resolveFaults } }
    },
    broadcast(bytes) {
      link.broadcast(bytes)
      sendToPeers(bytes)
      if (unresolved.size === 0 || keep <= 0) return
      backlog.push(bytes)
      if (backlog.length > keep) backlog.shift()
    },
    close() {
      closed = true
      clock.clearTimeout(timer)
      return link.close()
    },
  })
}

/**
 * Lets several participants of one program (a bus's publisher and
 * discoverer) share one link: one socket on the discovery port per
 * program. A datagram unicast to a host's discovery port reaches only the
 * socket bound there last, so a program with two would lose a peer's
 * queries to its discoverer or its announcements to its publisher. The
 * shared link closes when the last participant closes it.
 */
export function sharedNetwork(network: DiscoveryNetwork): DiscoveryNetwork {
  const handlers = new Set<DatagramHandler>()
  let opening: Promise<DiscoveryLink> | undefined
  let users = 0
  return {
    async open(onDatagram) {
      handlers.add(onDatagram)
      users++
      opening ??= network.open((bytes, from) => {
        for (const handler of handlers) handler(bytes, from)
      })
      let link: DiscoveryLink
      try {
        link = await opening
      } catch (error) {
        handlers.delete(onDatagram)
        users--
        opening = undefined
        throw error
      }
      let closing: Promise<void> | undefined
      return delegateLink(link, {
        close() {
          closing ??= (async () => {
            handlers.delete(onDatagram)
            users--
            if (users === 0) {
              opening = undefined
              await link.close()
            }
          })()
          return closing
        },
      })
    },
  }
}
