import { once } from 'node:events'
import net from 'node:net'

/**
 * A deliberately small, independent peer that speaks raw newline-delimited
 * JSON over a socket, as an original Autobus 2 client or service would: it
 * shares no code with the implementation under test.
 */
export class LinePeer {
  readonly lines: Array<Record<string, any>> = []
  readonly socket: net.Socket
  #buffer = ''
  #waiters: Array<() => void> = []
  closed: Promise<void>

  constructor(socket: net.Socket) {
    this.socket = socket
    socket.setEncoding('utf8')
    socket.on('data', (text: string) => {
      this.#buffer += text
      let index = this.#buffer.indexOf('\n')
      while (index >= 0) {
        const line = this.#buffer.slice(0, index)
        this.#buffer = this.#buffer.slice(index + 1)
        if (line) this.lines.push(JSON.parse(line))
        index = this.#buffer.indexOf('\n')
      }
      for (const wake of this.#waiters.splice(0)) wake()
    })
    socket.on('error', () => {})
    this.closed = once(socket, 'close').then(() => {
      for (const wake of this.#waiters.splice(0)) wake()
    })
  }

  static async connect(port: number): Promise<LinePeer> {
    const socket = net.connect({ host: '127.0.0.1', port })
    await once(socket, 'connect')
    return new LinePeer(socket)
  }

  send(message: unknown): void {
    this.socket.write(`${typeof message === 'string' ? message : JSON.stringify(message)}\n`)
  }

  /** Waits for the first received line that matches. */
  async next(
    match: (line: Record<string, any>) => boolean,
    timeout = 5_000,
  ): Promise<Record<string, any>> {
    const deadline = Date.now() + timeout
    while (true) {
      const index = this.lines.findIndex(match)
      if (index >= 0) return this.lines.splice(index, 1)[0]!
      if (this.socket.destroyed || Date.now() > deadline) throw new Error('no matching line')
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve)
        setTimeout(resolve, 50)
      })
    }
  }

  response(id: number | string | null) {
    return this.next((line) => line._type === 2 && line._id === id)
  }

  async call(id: number, command: string, body: Record<string, unknown> = {}) {
    this.send({ _type: 1, _id: id, _command: command, ...body })
    return this.response(id)
  }

  close(): void {
    this.socket.destroy()
  }
}
