import net from 'node:net'

/** One frame as the kit received it: the parsed object, or the raw text when it is not one. */
export type Frame = Record<string, unknown> & { _attachment?: Buffer }

/**
 * A session at the byte level, for checking a peer: it sends exactly what a
 * check asks for (invalid frames included) and keeps every frame received,
 * so a check can look for a frame it expects and notice one it does not.
 * It answers the peer's `ping`, `changed` and `fired` commands so that a
 * peer's heartbeat does not end a session in the middle of a check.
 */
export class RawSession {
  readonly #socket: net.Socket
  readonly #inbox: Frame[] = []
  readonly #waiters = new Set<() => void>()
  #buffer: Buffer = Buffer.alloc(0)
  #attachments = false
  #pending: { frame: Frame; remaining: number; parts: Buffer[] } | undefined
  #closed = false
  #nextId = 1
  /** Text lines that were not JSON objects. */
  readonly garbage: string[] = []
  /** Resolves when the peer (or this end) closes the connection. */
  readonly closed: Promise<void>

  private constructor(socket: net.Socket) {
    this.#socket = socket
    this.closed = new Promise((resolve) => {
      const done = () => {
        this.#closed = true
        this.#wake()
        resolve()
      }
      socket.once('close', done)
    })
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => this.#receive(chunk))
  }

  /** Connects to a peer's listener. */
  static open(host: string, port: number, timeout: number): Promise<RawSession> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port })
      const timer = setTimeout(() => {
        socket.destroy()
        reject(new Error(`no connection to ${host}:${port} within ${timeout} ms`))
      }, timeout)
      socket.once('connect', () => {
        clearTimeout(timer)
        socket.setNoDelay(true)
        resolve(new RawSession(socket))
      })
      socket.once('error', (error) => {
        clearTimeout(timer)
        reject(error)
      })
    })
  }

  get isClosed(): boolean {
    return this.#closed
  }

  /** From now on a frame with a numeric `_size` is followed by that many raw bytes. */
  enableAttachments(): void {
    this.#attachments = true
  }

  /** A fresh message id, unique on this session. */
  id(): string {
    return `k${this.#nextId++}`
  }

  /** Writes one line (a newline is added). */
  sendText(text: string): void {
    if (!this.#closed) this.#socket.write(`${text}\n`)
  }

  /** Writes raw bytes. */
  sendBytes(bytes: Uint8Array): void {
    if (!this.#closed) this.#socket.write(bytes)
  }

  /** Writes one message as a frame. */
  send(message: object): void {
    this.sendText(JSON.stringify(message))
  }

  /** Sends a command and waits for its response (undefined: closed or no answer in time). */
  async request(
    command: string,
    body: Record<string, unknown>,
    timeout: number,
  ): Promise<Frame | undefined> {
    const id = this.id()
    this.send({ _type: 1, _id: id, _command: command, ...body })
    return this.response(id, timeout)
  }

  /** Sends a notification. */
  notify(command: string, body: Record<string, unknown>): void {
    this.send({ _type: 3, _command: command, ...body })
  }

  /** Waits for the response with this id. */
  response(id: unknown, timeout: number): Promise<Frame | undefined> {
    return this.next((frame) => frame._type === 2 && frame._id === id, timeout)
  }

  /**
   * Takes the first received frame that matches, waiting up to `timeout` ms
   * for one. Frames that do not match stay for later checks.
   */
  async next(match: (frame: Frame) => boolean, timeout: number): Promise<Frame | undefined> {
    const deadline = Date.now() + timeout
    for (;;) {
      const index = this.#inbox.findIndex(match)
      if (index !== -1) return this.#inbox.splice(index, 1)[0]
      const left = deadline - Date.now()
      if (this.#closed || left <= 0) return undefined
      await new Promise<void>((resolve) => {
        const timer = setTimeout(wake, left)
        function wake() {
          clearTimeout(timer)
          resolve()
        }
        this.#waiters.add(wake)
      })
    }
  }

  /** Frames received and not yet taken. */
  peek(match: (frame: Frame) => boolean = () => true): Frame[] {
    return this.#inbox.filter(match)
  }

  /** Takes every received frame that matches (all by default). */
  drain(match: (frame: Frame) => boolean = () => true): Frame[] {
    const taken = this.#inbox.filter(match)
    for (const frame of taken) this.#inbox.splice(this.#inbox.indexOf(frame), 1)
    return taken
  }

  /** Waits until the peer closes the connection; false if it stays open for `timeout` ms. */
  async waitClosed(timeout: number): Promise<boolean> {
    if (this.#closed) return true
    let timer: NodeJS.Timeout | undefined
    const expired = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeout)
    })
    const outcome = await Promise.race([this.closed.then(() => true), expired])
    clearTimeout(timer)
    return outcome
  }

  /** Closes the connection. */
  close(): void {
    this.#socket.destroy()
  }

  #wake(): void {
    const waiters = [...this.#waiters]
    this.#waiters.clear()
    for (const wake of waiters) wake()
  }

  #receive(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk])
    for (;;) {
      if (this.#pending) {
        const take = Math.min(this.#pending.remaining, this.#buffer.length)
        this.#pending.parts.push(this.#buffer.subarray(0, take))
        this.#pending.remaining -= take
        this.#buffer = this.#buffer.subarray(take)
        if (this.#pending.remaining > 0) break
        const { frame, parts } = this.#pending
        this.#pending = undefined
        frame._attachment = Buffer.concat(parts)
        this.#deliver(frame)
        continue
      }
      const end = this.#buffer.indexOf(0x0a)
      if (end === -1) break
      const text = this.#buffer.toString('utf8', 0, end).replace(/\r$/, '')
      this.#buffer = this.#buffer.subarray(end + 1)
      if (text.trim() === '') continue
      let frame: unknown
      try {
        frame = JSON.parse(text)
      } catch {
        frame = undefined
      }
      if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) {
        this.garbage.push(text)
        continue
      }
      const size = (frame as Frame)._size
      if (this.#attachments && typeof size === 'number' && size >= 0) {
        this.#pending = { frame: frame as Frame, remaining: size, parts: [] }
        continue
      }
      this.#deliver(frame as Frame)
    }
    this.#wake()
  }

  #deliver(frame: Frame): void {
    if (frame._type === 1 && ['ping', 'changed', 'fired'].includes(frame._command as string)) {
      this.send({ _type: 2, _id: frame._id })
      // A changed or fired sent as a command is still what a check looks for.
      if (frame._command === 'ping') return
    }
    this.#inbox.push(frame)
  }
}
