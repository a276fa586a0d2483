import dgram from 'node:dgram'
import os from 'node:os'
import { DISCOVERY_PORT, DiscoveryDefaults } from '@autobus/protocol'

/** Where a datagram came from. */
export interface DatagramSource {
  address: string
  port: number
}

/** Receives datagrams. */
export type DatagramHandler = (bytes: Buffer, from: DatagramSource) => void

/**
 * One participant's access to the discovery network: it hears what is
 * broadcast to the discovery port and what is sent to its own private port,
 * and sends from that private port.
 */
export interface DiscoveryLink {
  /** The private port answers can be sent to. */
  readonly privatePort: number
  /** Sends to the discovery port of every broadcast address in use. */
  broadcast(bytes: Buffer): void
  /** Sends to one address and port. */
  unicast(bytes: Buffer, address: string, port: number): void
  /** Datagrams that could not be sent (no route, interface down). */
  readonly sendFailures: number
  close(): Promise<void>
}

/** Opens links; real UDP by default, an in-memory network in tests. */
export interface DiscoveryNetwork {
  open(onDatagram: DatagramHandler): Promise<DiscoveryLink>
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
}

function toInt(address: string): number {
  return address.split('.').reduce((sum, part) => sum * 256 + Number(part), 0) >>> 0
}

function toAddress(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join('.')
}

/**
 * The directed broadcast address of every up IPv4 interface (or those
 * named), plus 127.255.255.255 so processes on this host hear each other.
 */
export function broadcastAddresses(only?: readonly string[]): string[] {
  const found = new Set<string>()
  const interfaces = os.networkInterfaces()
  for (const [name, addresses] of Object.entries(interfaces)) {
    for (const entry of addresses ?? []) {
      if (entry.family !== 'IPv4') continue
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
  return [...found]
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
  return {
    async open(onDatagram) {
      const shared = await bindSocket(port, options.bindAddress, true)
      const own = await bindSocket(0, undefined, false).catch((error) => {
        shared.close()
        throw error
      })
      const receive = (bytes: Buffer, rinfo: dgram.RemoteInfo) =>
        onDatagram(bytes, { address: rinfo.address, port: rinfo.port })
      shared.on('message', receive)
      own.on('message', receive)
      let targets = broadcastAddresses(options.interfaces)
      const rescan = setInterval(() => {
        targets = broadcastAddresses(options.interfaces)
      }, options.interfaceRescan ?? DiscoveryDefaults.interfaceRescan)
      rescan.unref()
      let failures = 0
      const send = (bytes: Buffer, address: string, to: number) => {
        try {
          own.send(bytes, to, address, (error) => {
            if (error) failures++
          })
        } catch {
          failures++
        }
      }
      return {
        privatePort: own.address().port,
        get sendFailures() {
          return failures
        },
        broadcast(bytes) {
          for (const address of targets) send(bytes, address, port)
        },
        unicast: send,
        async close() {
          clearInterval(rescan)
          await Promise.all(
            [shared, own].map(
              (socket) => new Promise<void>((resolve) => socket.close(() => resolve())),
            ),
          )
        },
      }
    },
  }
}
