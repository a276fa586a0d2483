import { once } from 'node:events'
import net from 'node:net'

/** What the stand-in received, line by line, per connection. */
export type Received = Array<Record<string, any>>

/**
 * A stand-in for an original Autobus 2 service, over raw TCP and sharing no
 * code with the implementation under test. It behaves as the original does
 * (see the wire facts): it answers `bind` with `{"service": id}`, puts `_id`
 * on every message it sends, follows every `watch` with a `changed` carrying
 * the current value, refuses a second watch of the same object, never
 * answers `unwatch` or `unlisten` (an unwatch is followed by a `changed`
 * with null instead), and answers errors with `{"text"}` only.
 */
export class OriginalService {
  readonly received: Received = []
  readonly values = new Map<string, unknown>()
  readonly #server: net.Server
  readonly #sockets = new Set<{
    socket: net.Socket
    watching: Set<string>
    listening: Set<string>
  }>()
  #nextId = 1

  /**
   * @param id the service id
   * @param watchAnswer 'value': the watch response has the value (and the
   *   `changed` repeats it); 'bare': the value comes only in the `changed`
   */
  constructor(
    readonly id: string,
    readonly watchAnswer: 'value' | 'bare',
    readonly events: readonly string[] = [],
  ) {
    this.#server = net.createServer((socket) => this.#accept(socket))
  }

  async listen(): Promise<number> {
    this.#server.listen(0, '127.0.0.1')
    await once(this.#server, 'listening')
    return (this.#server.address() as net.AddressInfo).port
  }

  /** Sets an object's value and tells its watchers. */
  set(name: string, value: unknown): void {
    this.values.set(name, value)
    for (const peer of this.#sockets)
      if (peer.watching.has(name)) this.#changed(peer.socket, name, value)
  }

  fire(name: string, ...args: unknown[]): void {
    for (const peer of this.#sockets)
      if (peer.listening.has(name))
        this.#send(peer.socket, { _type: 3, _id: this.#nextId++, _command: 'fired', name, args })
  }

  /** Waits until a line matching `match` has been received. */
  async receivedLine(match: (line: Record<string, any>) => boolean): Promise<Record<string, any>> {
    while (true) {
      const found = this.received.find(match)
      if (found) return found
      await new Promise((resolve) => this.#server.once('line', resolve))
    }
  }

  close(): void {
    for (const peer of this.#sockets) peer.socket.destroy()
    this.#server.close()
  }

  #send(socket: net.Socket, message: object): void {
    socket.write(`${JSON.stringify(message)}\n`)
  }

  #changed(socket: net.Socket, name: string, value: unknown): void {
    this.#send(socket, { _type: 3, _id: this.#nextId++, _command: 'changed', name, value })
  }

  #accept(socket: net.Socket): void {
    const peer = { socket, watching: new Set<string>(), listening: new Set<string>() }
    this.#sockets.add(peer)
    socket.on('close', () => this.#sockets.delete(peer))
    socket.on('error', () => {})
    socket.setEncoding('utf8')
    let buffer = ''
    socket.on('data', (text: string) => {
      buffer += text
      let end = buffer.indexOf('\n')
      while (end >= 0) {
        const line = JSON.parse(buffer.slice(0, end))
        buffer = buffer.slice(end + 1)
        this.received.push(line)
        this.#handle(peer, line)
        this.#server.emit('line', line)
        end = buffer.indexOf('\n')
      }
    })
  }

  #handle(
    peer: { socket: net.Socket; watching: Set<string>; listening: Set<string> },
    line: Record<string, any>,
  ): void {
    const { socket } = peer
    const answer = (body: object) => {
      if (line._type === 1) this.#send(socket, { _type: 2, _id: line._id, ...body })
    }
    const fail = (text: string) => answer({ _error: { text } })
    switch (line._command) {
      case 'bind':
        if (line.service !== this.id) {
          fail(`No such service ${line.service}`)
          socket.end()
        } else answer({ service: this.id })
        return
      case 'call':
        if (line.name === 'double') answer({ result: line.args[0] * 2 })
        else fail(`No such function ${line.name}`)
        return
      case 'watch': {
        const name = line.name as string
        if (!this.values.has(name)) {
          fail(`No such object ${name}`)
          return
        }
        if (peer.watching.has(name)) {
          fail(`Already watching ${name}`)
          return
        }
        peer.watching.add(name)
        answer(this.watchAnswer === 'value' ? { name, value: this.values.get(name) } : { name })
        this.#changed(socket, name, this.values.get(name))
        return
      }
      case 'unwatch':
        if (peer.watching.delete(line.name)) this.#changed(socket, line.name, null)
        return
      case 'listen':
        if (!this.events.includes(line.name)) {
          fail(`No such event ${line.name}`)
          return
        }
        peer.listening.add(line.name)
        answer({})
        return
      case 'unlisten':
        peer.listening.delete(line.name)
        return
      default:
        fail(`No such command ${line._command}`)
    }
  }
}
