import type { IncomingMessage, ServerResponse } from 'node:http'

/** Comment lines sent this often keep proxies and idle timeouts from closing a quiet stream. */
const KEEPALIVE_MS = 15_000

/**
 * One Server-Sent Events response: named events with JSON data. It removes
 * itself from `registry` when the page goes away.
 */
export class EventStream {
  readonly closed: Promise<void>
  #ended = false
  readonly #response: ServerResponse
  readonly #keepalive: NodeJS.Timeout

  constructor(
    request: IncomingMessage,
    response: ServerResponse,
    /** What the stream follows: "services", or a service id. */
    readonly topic: string,
    registry: Set<EventStream>,
    /** Bytes a page may leave unread before its stream is cut off. */
    readonly maxBufferedBytes: number,
  ) {
    this.#response = response
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    })
    response.write(': live\n\n')
    registry.add(this)
    this.#keepalive = setInterval(() => response.write(': keepalive\n\n'), KEEPALIVE_MS)
    this.#keepalive.unref()
    this.closed = new Promise((resolve) => {
      const done = () => {
        this.#ended = true
        clearInterval(this.#keepalive)
        registry.delete(this)
        resolve()
      }
      request.once('close', done)
      response.once('close', done)
    })
  }

  /** Sends one event; a slow page that stops reading is cut off rather than buffered without end. */
  send(event: string, data: unknown): void {
    if (this.#ended) return
    if (this.#response.writableLength > this.maxBufferedBytes) {
      this.end()
      return
    }
    this.#response.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
  }

  /** True once the page has gone or the stream was ended. */
  get ended(): boolean {
    return this.#ended
  }

  end(): void {
    if (this.#ended) return
    this.#ended = true
    this.#response.end()
  }
}
