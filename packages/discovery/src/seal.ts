import {
  activeLogger,
  isSealed,
  type KeyRing,
  type Logger,
  readSealed,
  sealDatagram,
  verifySealed,
} from '@autobus/protocol'
import { type Clock, systemClock } from './clock.js'
import { type DiscoveryNetwork, delegateLink } from './network.js'

/** Options of {@link sealedNetwork}. */
export interface SealOptions {
  /** The keys: the current one seals, every one is accepted. */
  keys: KeyRing
  /**
   * How far a datagram's timestamp may be from this host's clock, either
   * way, in ms (default 30 s): older ones are dropped as replays, and small
   * clock skew between hosts is tolerated.
   */
  replayWindow?: number
  /**
   * Accept datagrams that are not sealed (default false), for a network
   * shared with peers that have no key, such as original Autobus 2 peers.
   * Sealed datagrams are still checked; what this bus sends is still sealed.
   */
  acceptUnsigned?: boolean
  /**
   * Nonces remembered to catch replays within the window (default 65,536).
   * When full, sealed datagrams are dropped (`replayCacheFull`) until the
   * oldest ones leave the window: only a key holder can fill it.
   */
  maxRemembered?: number
  clock?: Clock
  logger?: Logger
}

/** Why received datagrams were dropped, counted since the network was made. */
export interface SealDrops {
  /** Not sealed (and unsigned datagrams not accepted). */
  unsigned: number
  /** Sealed with a key id this bus does not hold. */
  unknownKey: number
  /** The tag does not match: forged, altered, or another secret under the same id. */
  badTag: number
  /** The timestamp is outside the replay window. */
  outsideWindow: number
  /** Seen before within the window (a replay, or a copy heard twice). */
  replayed: number
  /** Starts like a sealed datagram but is cut short or of another version. */
  malformed: number
  /** The nonce cache was full. */
  replayCacheFull: number
}

/** A discovery network that seals what it sends and checks what it receives. */
export interface SealedNetwork extends DiscoveryNetwork {
  /** Datagrams dropped, by reason. */
  readonly dropped: Readonly<SealDrops>
  /** Datagrams accepted: sealed and checked, or unsigned where accepted. */
  readonly accepted: { readonly sealed: number; readonly unsigned: number }
}

/**
 * Seals every datagram sent through `network` with the current key of the
 * ring and passes on only received datagrams that are sealed with a key of
 * the ring, within the replay window and not seen before
 * (docs/protocol.md §6.3). Queries, announcements, answers and goodbyes
 * alike: the layers above see plain datagrams, as without a key.
 *
 * @example
 * ```ts
 * const network = sealedNetwork(udpNetwork(), { keys: new KeyRing([key]) })
 * const discoverer = await createDiscoverer({ network })
 * ```
 */
export function sealedNetwork(network: DiscoveryNetwork, options: SealOptions): SealedNetwork {
  const { keys } = options
  const clock = options.clock ?? systemClock
  const window = options.replayWindow ?? 30_000
  const maxRemembered = options.maxRemembered ?? 65_536
  const log = activeLogger(options.logger)
  const dropped: SealDrops = {
    unsigned: 0,
    unknownKey: 0,
    badTag: 0,
    outsideWindow: 0,
    replayed: 0,
    malformed: 0,
    replayCacheFull: 0,
  }
  const accepted = { sealed: 0, unsigned: 0 }
  // Key id, timestamp and nonce → the time the entry can go (its timestamp leaves the
  // window then, so a replay of it is caught by the window instead).
  const seen = new Map<string, number>()
  const forget = (now: number) => {
    for (const [nonce, until] of seen) {
      // Entries go in roughly in time order; one still needed ends the sweep.
      if (until > now) break
      seen.delete(nonce)
    }
  }
  const drop = (reason: keyof SealDrops, from: string) => {
    dropped[reason]++
    log?.debug(`autobus:discovery datagram from ${from} dropped: ${reason}`)
  }
  const seal = (bytes: Buffer) => sealDatagram(bytes, keys.current, clock.now())
  return {
    dropped,
    accepted,
    async open(onDatagram) {
      const link = await network.open((bytes, from) => {
        if (!isSealed(bytes)) {
          if (!options.acceptUnsigned) return drop('unsigned', from.address)
          accepted.unsigned++
          return onDatagram(bytes, from)
        }
        const parts = readSealed(bytes)
        if (!parts) return drop('malformed', from.address)
        const key = keys.get(parts.keyId)
        if (!key) return drop('unknownKey', from.address)
        if (!verifySealed(parts, key)) return drop('badTag', from.address)
        const now = clock.now()
        if (Math.abs(now - parts.timestamp) > window) return drop('outsideWindow', from.address)
        // Key id, timestamp and nonce lie side by side in the header (with
        // the id's length first, so no two triples read alike): one slice
        // of it is the entry, with nothing to format.
        const nonce = parts.header.toString('latin1', 3)
        if (seen.has(nonce)) return drop('replayed', from.address)
        if (seen.size >= maxRemembered) {
          forget(now)
          if (seen.size >= maxRemembered) return drop('replayCacheFull', from.address)
        }
        seen.set(nonce, parts.timestamp + window)
        if (seen.size % 1024 === 0) forget(now)
        accepted.sealed++
        onDatagram(parts.payload, from)
      })
      return delegateLink(link, {
        broadcast: (bytes) => link.broadcast(seal(bytes)),
        unicast: (bytes, address, port) => link.unicast(seal(bytes), address, port),
      })
    },
  }
}
