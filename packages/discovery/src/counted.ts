import { type DiscoveryNetwork, delegateLink } from './network.js'

/** Datagrams through a discovery network, counted since it was made. */
export interface DatagramTraffic {
  /** Datagrams received, before any check (dropped ones included). */
  readonly received: number
  /** Bytes of those datagrams. */
  readonly bytesReceived: number
  /** Datagrams handed to the network to send: a broadcast counts once, however many interfaces it leaves by. */
  readonly sent: number
  /** Bytes of those datagrams. */
  readonly bytesSent: number
}

/** A discovery network that counts what passes through it. */
export interface CountedNetwork extends DiscoveryNetwork {
  readonly traffic: DatagramTraffic
}

/**
 * Counts the datagrams and bytes received and sent through `network`: a
 * few additions per datagram. Put it under a sealed network to count what
 * arrives before the seal is checked.
 *
 * @example
 * ```ts
 * const counted = countedNetwork(udpNetwork())
 * const discoverer = await createDiscoverer({ network: sealedNetwork(counted, { keys }) })
 * console.log(counted.traffic.received)
 * ```
 */
export function countedNetwork(network: DiscoveryNetwork): CountedNetwork {
  const traffic = { received: 0, bytesReceived: 0, sent: 0, bytesSent: 0 }
  return {
    traffic,
    async open(onDatagram) {
      const link = await network.open((bytes, from) => {
        traffic.received++
        traffic.bytesReceived += bytes.length
        onDatagram(bytes, from)
      })
      return delegateLink(link, {
        broadcast: (bytes) => {
          traffic.sent++
          traffic.bytesSent += bytes.length
          link.broadcast(bytes)
        },
        unicast: (bytes, address, port) => {
          traffic.sent++
          traffic.bytesSent += bytes.length
          link.unicast(bytes, address, port)
        },
      })
    },
  }
}
