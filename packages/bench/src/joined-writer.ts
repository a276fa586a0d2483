import type net from 'node:net'

/**
 * Writes lines to a socket the way the transport does (`sendEncoded`): the
 * first line of a turn of the event loop goes out at once, later ones in
 * the same turn are joined and written together when the turn ends. The
 * raw floor needs it to be a floor: one write per line costs a syscall
 * each, which Autobus does not pay.
 */
export class JoinedWriter {
  readonly #socket: net.Socket
  #text = ''
  #scheduled = false

  constructor(socket: net.Socket) {
    this.#socket = socket
  }

  write(line: string): void {
    if (this.#scheduled) {
      this.#text += line
      return
    }
    this.#scheduled = true
    queueMicrotask(this.#flush)
    this.#socket.write(line)
  }

  #flush = (): void => {
    this.#scheduled = false
    if (this.#text === '') return
    const text = this.#text
    this.#text = ''
    if (!this.#socket.destroyed) this.#socket.write(text)
  }
}
