import type { MessageConnection } from '@autobus/transport'

/**
 * Bytes in and out over a server's sessions: read from the open connections
 * when asked, and kept from each one as it closes, so nothing is counted on
 * the hot path. @internal
 */
export class TrafficCounter {
  readonly #open = new Set<MessageConnection>()
  #closedIn = 0
  #closedOut = 0

  add(connection: MessageConnection): void {
    this.#open.add(connection)
    connection.once('close', () => {
      this.#open.delete(connection)
      this.#closedIn += connection.bytesReceived
      this.#closedOut += connection.bytesSent
    })
  }

  totals(): { bytesIn: number; bytesOut: number; bytesQueued: number } {
    let bytesIn = this.#closedIn
    let bytesOut = this.#closedOut
    let bytesQueued = 0
    for (const connection of this.#open) {
      bytesIn += connection.bytesReceived
      bytesOut += connection.bytesSent
      bytesQueued += connection.bytesQueued
    }
    return { bytesIn, bytesOut, bytesQueued }
  }
}
