import { EventEmitter } from 'node:events'
import net from 'node:net'
import { activeLogger, Limits, type Logger, UnreachableError } from '@autobus/protocol'
import { type ConnectionOptions, FramedConnection, type MessageConnection } from './connection.js'

/** How long a graceful close waits for queued bytes before it resets. */
const LINGER_MS = 2_000

/** Options for the sockets behind framed connections. */
export interface SocketOptions extends ConnectionOptions {
  /** TCP keepalive probe delay in ms (default 5 s); 0 turns keepalive off. */
  keepAlive?: number
}

class SocketConnection extends FramedConnection {
  readonly remoteAddress: string
  readonly remotePort: number
  readonly #socket: net.Socket

  constructor(socket: net.Socket, options: SocketOptions = {}) {
    super(options)
    this.#socket = socket
    this.remoteAddress =
      socket.remoteAddress ?? (socket.address() as { address?: string }).address ?? 'unix'
    this.remotePort = socket.remotePort ?? 0
    const keepAlive = options.keepAlive ?? 5_000
    if (keepAlive > 0) socket.setKeepAlive(true, keepAlive)
    socket.setNoDelay(true)
    socket.on('data', (chunk: Buffer) => this.receive(chunk))
    socket.on('drain', () => this.emit('drain'))
    socket.on('error', (error) => this.close(error.message, error))
    socket.on('end', () => this.close('closed by peer'))
    socket.on('close', () => this.close('closed by peer'))
  }

  get needsDrain(): boolean {
    return this.#socket.writableNeedDrain
  }

  get bytesSent(): number {
    return this.#socket.bytesWritten
  }

  protected get queuedBytes(): number {
    return this.#socket.writableLength
  }

  protected write(data: string | Uint8Array): void {
    if (!this.#socket.destroyed) this.#socket.write(data)
  }

  protected destroy(graceful: boolean): void {
    const socket = this.#socket
    if (socket.destroyed) return
    if (!graceful) {
      socket.destroy()
      return
    }
    socket.end()
    setTimeout(() => socket.destroy(), LINGER_MS).unref()
  }
}

/** Wraps an already connected socket (TCP or Unix) as a message connection. */
export function fromSocket(socket: net.Socket, options: SocketOptions = {}): MessageConnection {
  return new SocketConnection(socket, options)
}

/** Where to connect: a TCP host and port, or a Unix socket path. */
export type Endpoint = { host: string; port: number } | { path: string }

/** Options for {@link connect}. */
export interface ConnectOptions extends SocketOptions {
  /** Give up after this many ms (default 10 s). */
  timeout?: number
  /** Abort the attempt. */
  signal?: AbortSignal
}

/**
 * Opens a message connection to a TCP endpoint or a Unix socket.
 * Rejects with {@link UnreachableError} when it cannot be made in time.
 *
 * @example
 * ```ts
 * const connection = await connect({ host: '127.0.0.1', port: 4000 })
 * connection.on('message', (message) => console.log(message))
 * connection.send({ _type: 1, _id: 1, _command: 'bind', service: 'abc' })
 * ```
 */
export function connect(
  endpoint: Endpoint,
  options: ConnectOptions = {},
): Promise<MessageConnection> {
  const timeout = options.timeout ?? 10_000
  const where = 'path' in endpoint ? endpoint.path : `${endpoint.host}:${endpoint.port}`
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) return reject(options.signal.reason)
    const socket =
      'path' in endpoint
        ? net.connect({ path: endpoint.path })
        : net.connect({ host: endpoint.host, port: endpoint.port })
    const timer = setTimeout(
      () => fail(new UnreachableError(`connecting to ${where} timed out after ${timeout} ms`)),
      timeout,
    )
    const abort = () => fail(options.signal!.reason as Error)
    options.signal?.addEventListener('abort', abort, { once: true })
    const cleanup = () => {
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', abort)
      socket.off('error', onError)
      socket.off('connect', onConnect)
    }
    function fail(error: Error) {
      cleanup()
      socket.destroy()
      reject(error)
    }
    function onError(error: NodeJS.ErrnoException) {
      fail(
        new UnreachableError(`cannot connect to ${where}: ${error.code ?? error.message}`, {
          cause: error,
        }),
      )
    }
    function onConnect() {
      cleanup()
      resolve(new SocketConnection(socket, options))
    }
    socket.once('error', onError)
    socket.once('connect', onConnect)
  })
}

/** Events of a {@link MessageServer}. */
export type MessageServerEvents = {
  /** A peer connected. */
  connection: [connection: MessageConnection]
  /** Accepting failed (e.g. EMFILE); the server keeps listening. */
  warning: [error: Error]
}

/** What a {@link MessageServer} has accepted and refused since it started. */
export interface ServerCounters {
  /** Connections open now. */
  open: number
  /** Connections accepted. */
  accepted: number
  /** Connections closed at once because `maxConnections` were open. */
  refusedTotal: number
  /** Connections closed at once because `maxConnectionsPerAddress` were open from their address. */
  refusedPerAddress: number
  /**
   * Accept errors reported by the runtime; accepting goes on by itself. (Out
   * of descriptors, libuv closes the connections it cannot keep without
   * reporting them: the caps keep a server from getting there.)
   */
  acceptErrors: number
}

/** Options for {@link listen}. */
export interface ListenOptions extends SocketOptions {
  /**
   * Connections open at once (default 4,096). One more is closed as soon as
   * it is accepted, so a flood cannot use up the process's descriptors.
   */
  maxConnections?: number
  /**
   * Connections open at once from one remote address (default 256), so one
   * host cannot take every slot from the others.
   */
  maxConnectionsPerAddress?: number
  /** TCP port (0 picks a free one); ignored with `path`. */
  port?: number
  /** Address to bind (default all IPv4 addresses). */
  host?: string
  /** Unix socket path instead of TCP. */
  path?: string
}

/** A listener that accepts message connections. */
export interface MessageServer extends EventEmitter<MessageServerEvents> {
  /** The bound TCP port (0 for Unix sockets). */
  readonly port: number
  /** Accepted and refused connections, counted since the server started. */
  readonly counters: Readonly<ServerCounters>
  /** Stops accepting and closes every open connection; idempotent. */
  close(reason?: string): Promise<void>
  [Symbol.asyncDispose](): Promise<void>
}

class SocketServer extends EventEmitter<MessageServerEvents> implements MessageServer {
  readonly #server: net.Server
  readonly #connections = new Set<MessageConnection>()
  readonly #perAddress = new Map<string, number>()
  readonly #maxConnections: number
  readonly #maxPerAddress: number
  readonly #log: Logger | undefined
  readonly counters: ServerCounters = {
    open: 0,
    accepted: 0,
    refusedTotal: 0,
    refusedPerAddress: 0,
    acceptErrors: 0,
  }
  #closing: Promise<void> | undefined

  constructor(server: net.Server, options: ListenOptions) {
    super()
    this.#server = server
    this.#maxConnections = options.maxConnections ?? Limits.maxConnections
    this.#maxPerAddress = options.maxConnectionsPerAddress ?? Limits.maxConnectionsPerAddress
    this.#log = activeLogger(options.logger)
    server.on('connection', (socket) => this.#accept(socket, options))
    server.on('error', (error: NodeJS.ErrnoException) => this.#acceptFailed(error))
  }

  #accept(socket: net.Socket, options: ListenOptions): void {
    // Unix socket peers have no address: only the total cap applies to them.
    const address = socket.remoteAddress
    const fromAddress = address === undefined ? 0 : (this.#perAddress.get(address) ?? 0)
    const full = this.#connections.size >= this.#maxConnections
    if (full || fromAddress >= this.#maxPerAddress) {
      if (full) this.counters.refusedTotal++
      else this.counters.refusedPerAddress++
      this.#log?.warn(
        full
          ? `autobus:transport connection from ${address ?? 'a local socket'} refused: ${this.#maxConnections} connections open (maxConnections)`
          : `autobus:transport connection from ${address} refused: ${this.#maxPerAddress} connections open from that address (maxConnectionsPerAddress)`,
      )
      socket.on('error', () => {})
      // A reset, not a FIN: the descriptor is freed now and no TIME_WAIT
      // state is left behind for a flood to pile up.
      if (address === undefined) socket.destroy()
      else socket.resetAndDestroy()
      return
    }
    const connection = new SocketConnection(socket, options)
    this.#connections.add(connection)
    if (address !== undefined) this.#perAddress.set(address, fromAddress + 1)
    this.counters.accepted++
    this.counters.open = this.#connections.size
    this.#log?.debug(
      `autobus:transport connection accepted from ${connection.remoteAddress}${connection.remotePort ? `:${connection.remotePort}` : ''} (${this.#connections.size} open)`,
    )
    connection.once('close', () => {
      this.#connections.delete(connection)
      this.counters.open = this.#connections.size
      if (address === undefined) return
      const left = (this.#perAddress.get(address) ?? 1) - 1
      if (left > 0) this.#perAddress.set(address, left)
      else this.#perAddress.delete(address)
    })
    this.emit('connection', connection)
  }

  // Out of descriptors (EMFILE/ENFILE), libuv accepts and closes what it
  // cannot keep (with a descriptor it holds in reserve) and keeps listening,
  // so accepting resumes by itself once descriptors are free; those closes
  // are not reported to us. An accept error that does surface is counted and
  // reported, never thrown.
  #acceptFailed(error: NodeJS.ErrnoException): void {
    this.counters.acceptErrors++
    this.#log?.warn(
      `autobus:transport accepting a connection failed: ${error.code ?? error.message}`,
      error,
    )
    this.emit('warning', error)
  }

  get port(): number {
    const address = this.#server.address()
    return typeof address === 'object' && address ? address.port : 0
  }

  close(reason = 'server closing'): Promise<void> {
    this.#closing ??= new Promise((resolve) => {
      this.#server.close(() => resolve())
      for (const connection of this.#connections) connection.close(reason)
    })
    return this.#closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

/**
 * Listens for message connections on a TCP port or a Unix socket path.
 *
 * @example
 * ```ts
 * const server = await listen({ port: 0 })
 * server.on('connection', (connection) => connection.on('message', console.log))
 * ```
 */
export function listen(options: ListenOptions = {}): Promise<MessageServer> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ noDelay: true })
    const onError = (error: Error) =>
      reject(new UnreachableError(`cannot listen: ${error.message}`, { cause: error }))
    server.once('error', onError)
    const ready = () => {
      server.off('error', onError)
      resolve(new SocketServer(server, options))
    }
    if (options.path) server.listen({ path: options.path }, ready)
    else
      server.listen(
        { port: options.port ?? 0, host: options.host ?? '0.0.0.0', backlog: 1024 },
        ready,
      )
  })
}
