import { DISCOVERY_PORT, readSealed } from '@autobus/protocol'
import type { DatagramHandler, DiscoveryLink, DiscoveryNetwork } from '../src/index.js'

interface Member {
  host: string
  port: number
  handler: DatagramHandler
}

/** Records one sent datagram. */
export interface Sent {
  at: number
  from: string
  to: string
  bytes: number
  datagram: Record<string, unknown>
  /** The bytes as sent (sealed, with a key). */
  raw: Buffer
}

/**
 * An in-memory broadcast network of several hosts. Delivery is synchronous
 * so that fake time alone decides when things happen. With
 * `dropsBroadcast`, a broadcast reaches only the sender's own host (a
 * Docker bridge, a cloud VPC). A unicast to the discovery port reaches the
 * member of that host opened last, as on Linux.
 */
export class MemoryNetwork {
  readonly members = new Set<Member>()
  readonly sent: Sent[] = []
  readonly #dropsBroadcast: boolean
  #nextPort = 40_000

  constructor(options: { dropsBroadcast?: boolean } = {}) {
    this.#dropsBroadcast = options.dropsBroadcast ?? false
  }

  host(address: string): DiscoveryNetwork {
    return {
      open: async (handler) => {
        const member: Member = { host: address, port: this.#nextPort++, handler }
        this.members.add(member)
        const deliver = (bytes: Buffer, to: Member) =>
          to.handler(bytes, {
            address: member.host,
            port: member.port,
            local: to.host === member.host,
          })
        const record = (bytes: Buffer, to: string) => {
          this.sent.push({
            at: Date.now(),
            from: `${member.host}:${member.port}`,
            to,
            bytes: bytes.byteLength,
            // A sealed datagram is recorded by what it carries.
            datagram: JSON.parse((readSealed(bytes)?.payload ?? bytes).toString()),
            raw: bytes,
          })
        }
        const link: DiscoveryLink = {
          privatePort: member.port,
          sendFailures: 0,
          faults: { send: {}, rescan: {} },
          broadcast: (bytes) => {
            record(bytes, '*')
            for (const other of [...this.members])
              if (!this.#dropsBroadcast || other.host === member.host) deliver(bytes, other)
          },
          unicast: (bytes, host, port) => {
            record(bytes, `${host}:${port}`)
            const members = [...this.members].filter((other) => other.host === host)
            const to =
              port === DISCOVERY_PORT
                ? members.at(-1)
                : members.find((other) => other.port === port)
            if (to) deliver(bytes, to)
          },
          close: async () => {
            this.members.delete(member)
          },
        }
        return link
      },
    }
  }

  /** Injects raw bytes as if broadcast from `host` (a 127.x address is every member's own). */
  inject(bytes: Buffer | string, host = '10.0.0.99', port = 50_000): void {
    for (const member of [...this.members])
      member.handler(Buffer.from(bytes), {
        address: host,
        port,
        local: member.host === host || host.startsWith('127.'),
      })
  }

  /** Bytes sent to `address` (by unicast to it, or by broadcast). */
  bytesTo(address: string, { broadcast = true } = {}): number {
    let total = 0
    for (const sent of this.sent)
      if (sent.to.startsWith(`${address}:`) || (broadcast && sent.to === '*')) total += sent.bytes
    return total
  }

  commands(command: string): Sent[] {
    return this.sent.filter((sent) => sent.datagram.command === command)
  }
}
