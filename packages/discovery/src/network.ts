import dgram from 'node:dgram'
import os from 'node:os'
import { activeLogger, DISCOVERY_PORT, DiscoveryDefaults, type Logger } from '@autobus/protocol'

/** Where a datagram came from. */
export interface DatagramSource {
  address: string
  port: number
  /**
   * True when it came from this host (a loopback address or one of this
   * host's own addresses): a host hears its own broadcasts through several
   * addresses, and they all stand for the same sender.
   */
  local?: boolean
}

/** Receives datagrams. */
export type DatagramHandler = (bytes: Buffer, from: DatagramSource) => void

/**
 * Failures of the operating system, counted by error code (`ENOBUFS`,
 * `EMFILE`, `EADDRNOTAVAIL`, …). None is fatal: a failed send is retried
 * once, a failed interface scan keeps the last good list until the next.
 */
export interface NetworkFaults {
  readonly send: Readonly<Record<string, number>>
  readonly rescan: Readonly<Record<string, number>>
  /** Failed resolutions of peers' host names (see `PeerOptions`). */
  readonly resolve?: Readonly<Record<string, number>>
}

/**
 * One participant's access to the discovery network: it hears what is
 * broadcast to the discovery port and what is sent to its own private port,
 * and sends from that private port.
 */
export interface DiscoveryLink {
  /** The private port answers can be sent to. */
  readonly privatePort: number
  /** The discovery port it listens on, where peers' datagrams go (default 52722). */
  readonly discoveryPort?: number
  /** Sends to the discovery port of every broadcast address in use. */
  broadcast(bytes: Buffer): void
  /** Sends to one address and port. */
  unicast(bytes: Buffer, address: string, port: number): void
  /** Datagrams that could not be sent (no route, interface down, no buffers). */
  readonly sendFailures: number
  /** The same failures and failed interface scans, by error code. */
  readonly faults: NetworkFaults
  /** Closes once every datagram handed to it has left (or failed). */
  close(): Promise<void>
}

/** Opens links; real UDP by default, an in-memory network in tests. */
export interface DiscoveryNetwork {
  open(onDatagram: DatagramHandler): Promise<DiscoveryLink>
}

/**
 * A link that is `link` except for what `own` defines (its getters and
 * methods are kept as they are, so counters stay live): how a network
 * wrapped around another changes only what it is about.
 */
export function delegateLink(link: DiscoveryLink, own: Partial<DiscoveryLink>): DiscoveryLink {
  const base: DiscoveryLink = {
    get privatePort() {
      return link.privatePort
    },
    get discoveryPort() {
      return link.discoveryPort
    },
    get sendFailures() {
      return link.sendFailures
    },
    get faults() {
      return link.faults
    },
    broadcast: (bytes) => link.broadcast(bytes),
    unicast: (bytes, address, port) => link.unicast(bytes, address, port),
    close: () => link.close(),
  }
  return Object.defineProperties(base, Object.getOwnPropertyDescriptors(own))
}

/** Options of the UDP discovery network. */
export interface UdpNetworkOptions {
  /** The discovery port (default 52722). */
  port?: number
  /**
   * Interfaces to announce on, by name or IPv4 address (default every up
   * IPv4 interface that can broadcast, and loopback).
   */
  interfaces?: readonly string[]
  /** How often interfaces are scanned for changes, in ms (default 5 s). */
  interfaceRescan?: number
  /** Address the shared socket binds (default all). */
  bindAddress?: string
  /** Delay before a failed send is tried once more, in ms (default 100). */
  sendRetryDelay?: number
  /** Longest wait in `close()` for datagrams still being sent, in ms (default 1 s). */
  closeTimeout?: number
  /** Where send and interface-scan failures are reported (default: nowhere). */
  logger?: Logger
}

function toInt(address: string): number {
  return address.split('.').reduce((sum, part) => sum * 256 + Number(part), 0) >>> 0
}

function toAddress(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join('.')
}

interface InterfaceScan {
  /** Where broadcasts go. */
  broadcast: string[]
  /** Every IPv4 address of this host. */
  local: Set<string>
}

// os.networkInterfaces() throws when the process is out of descriptors
// (EMFILE): callers catch it and keep what they had.
function scanInterfaces(only?: readonly string[]): InterfaceScan {
  const found = new Set<string>()
  const local = new Set<string>()
  const interfaces = os.networkInterfaces()
  for (const [name, addresses] of Object.entries(interfaces)) {
    for (const entry of addresses ?? []) {
      if (entry.family !== 'IPv4') continue
      local.add(entry.address)
      if (only && !only.includes(name) && !only.includes(entry.address)) continue
      if (entry.internal) {
        found.add('127.255.255.255')
        continue
      }
      // A /32 (point-to-point) has no broadcast address.
      if (entry.netmask === '255.255.255.255') continue
      const mask = toInt(entry.netmask)
      found.add(toAddress((toInt(entry.address) & mask) | (~mask >>> 0)))
    }
  }
  if (!only) found.add('127.255.255.255')
  return { broadcast: [...found], local }
}

/**
 * The directed broadcast address of every up IPv4 interface (or those
 * named), plus 127.255.255.255 so processes on this host hear each other.
 * Throws what `os.networkInterfaces()` throws (e.g. `EMFILE`).
 */
export function broadcastAddresses(only?: readonly string[]): string[] {
  return scanInterfaces(only).broadcast
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'UNKNOWN'
}

function count(counts: Record<string, number>, error: unknown): void {
  const code = errorCode(error)
  counts[code] = (counts[code] ?? 0) + 1
}

function bindSocket(
  port: number,
  address: string | undefined,
  shared: boolean,
): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: shared })
    socket.once('error', reject)
    socket.bind({ port, address, exclusive: !shared }, () => {
      socket.off('error', reject)
      socket.setBroadcast(true)
      // A send error on one interface must never take the process down.
      socket.on('error', () => {})
      resolve(socket)
    })
  })
}

/** Real UDP: a socket shared on the discovery port and a private one. */
export function udpNetwork(options: UdpNetworkOptions = {}): DiscoveryNetwork {
  const port = options.port ?? DISCOVERY_PORT
  const retryDelay = options.sendRetryDelay ?? 100
  const closeTimeout = options.closeTimeout ?? 1_000
  const log = activeLogger(options.logger)
  return {
    async open(onDatagram) {
      const shared = await bindSocket(port, options.bindAddress, true)
      const own = await bindSocket(0, undefined, false).catch((error) => {
        shared.close()
        throw error
      })
      const faults = { send: {} as Record<string, number>, rescan: {} as Record<string, number> }
      let scan: InterfaceScan = {
        broadcast: options.interfaces ? [] : ['127.255.255.255'],
        local: new Set(['127.0.0.1']),
      }
      const rescan = () => {
        try {
          scan = scanInterfaces(options.interfaces)
        } catch (error) {
          // Keep the last good list; the next rescan tries again.
          count(faults.rescan, error)
          log?.warn(`autobus:discovery scanning interfaces failed: ${errorCode(error)}`, error)
        }
      }
      rescan()
      const rescanTimer = setInterval(
        rescan,
        options.interfaceRescan ?? DiscoveryDefaults.interfaceRescan,
      )
      rescanTimer.unref()

      const receive = (bytes: Buffer, rinfo: dgram.RemoteInfo) =>
        onDatagram(bytes, {
          address: rinfo.address,
          port: rinfo.port,
          local: rinfo.address.startsWith('127.') || scan.local.has(rinfo.address),
        })
      shared.on('message', receive)
      own.on('message', receive)

      let failures = 0
      let sending = 0
      let closing = false
      let closed: Promise<void> | undefined
      let drained: (() => void) | undefined
      const retries = new Map<NodeJS.Timeout, () => void>()
      const settle = () => {
        sending--
        if (sending === 0) drained?.()
      }
      const send = (bytes: Buffer, address: string, to: number, retry: boolean) => {
        const failed = (error: unknown) => {
          failures++
          count(faults.send, error)
          log?.warn(
            `autobus:discovery sending to ${address}:${to} failed: ${errorCode(error)}${retry ? ' (tried again)' : ''}`,
          )
          if (!retry) return
          // Out of buffers or descriptors is usually brief: one more try,
          // at once when closing (it may be the last goodbye).
          const again = () => send(bytes, address, to, false)
          if (closing) {
            again()
            return
          }
          const timer = setTimeout(() => {
            retries.delete(timer)
            again()
          }, retryDelay)
          timer.unref()
          retries.set(timer, again)
        }
        sending++
        try {
          own.send(bytes, to, address, (error) => {
            if (error) failed(error)
            settle()
          })
        } catch (error) {
          failed(error)
          settle()
        }
      }
      return {
        privatePort: own.address().port,
        discoveryPort: port,
        get sendFailures() {
          return failures
        },
        faults,
        broadcast(bytes) {
          for (const address of scan.broadcast) send(bytes, address, port, true)
        },
        unicast: (bytes, address, to) => send(bytes, address, to, true),
        close() {
          closed ??= (async () => {
            closing = true
            clearInterval(rescanTimer)
            // Retries still waiting (a goodbye among them) go now, not never.
            for (const [timer, again] of retries) {
              clearTimeout(timer)
              again()
            }
            retries.clear()
            // A datagram handed to send() has not left until its callback:
            // closing the socket before that drops it (it was the last goodbye).
            if (sending > 0) {
              await new Promise<void>((resolve) => {
                const timer = setTimeout(resolve, closeTimeout)
                drained = () => {
                  clearTimeout(timer)
                  resolve()
                }
              })
            }
            await Promise.all(
              [shared, own].map(
                (socket) => new Promise<void>((resolve) => socket.close(() => resolve())),
              ),
            )
          })()
          return closed
        },
      }
    },
  }
}
