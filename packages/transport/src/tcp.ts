import { EventEmitter } from 'node:events'
import net from 'node:net'
import tls from 'node:tls'
import {
  activeLogger,
  type Closable,
  type CloseInfo,
  type KeyRing,
  Limits,
  ListenError,
  type Logger,
  type SessionCertificate,
  tlsCertificateClientOptions,
  tlsCertificateServerOptions,
  tlsClientOptions,
  tlsServerOptions,
  UnreachableError,
} from '@autobus/protocol'
import { type ConnectionOptions, FramedConnection, type MessageConnection } from './connection.js'

/** How long a graceful close waits for queued bytes before it resets. */
const LINGER_MS = 2_000
/** Bytes queued for a peer beyond which a listener's connection stops reading it. */
const SERVED_READ_WATERMARK = 1024 * 1024

/** Options for the sockets behind framed connections. */
export interface SocketOptions extends ConnectionOptions {
  /** TCP keepalive probe delay in ms (default 5 s); 0 turns keepalive off. */
  keepAlive?: number
  /**
   * The bus keys. With them every connection is TLS 1.3 with a pre-shared
   * key derived from the bus key (docs/protocol.md §6.4): a listener
   * accepts any key of the ring and refuses everything else, plaintext
   * included, in the handshake; a client connects with the current key.
   */
  keys?: KeyRing
  /**
   * Certificates (mutual TLS 1.3) instead of the key's PSK: both ends
   * present a certificate signed by the authority, and the peer's identity
   * is its certificate's subject CN. Wins over `keys` for connections.
   */
  certificate?: SessionCertificate
}

class SocketConnection extends FramedConnection {
  readonly remoteAddress: string
  readonly remotePort: number
  readonly peerKeyId: string | undefined
  readonly peerSubject: string | undefined
  readonly #socket: net.Socket

  constructor(socket: net.Socket, options: SocketOptions = {}, peerKeyId?: string) {
    super(options)
    this.#socket = socket
    this.peerKeyId = peerKeyId
    if (socket instanceof tls.TLSSocket && options.certificate) {
      const subject = socket.getPeerCertificate()?.subject?.CN
      this.peerSubject = Array.isArray(subject) ? subject[0] : subject
    }
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

  protected override setReading(reading: boolean): void {
    if (reading) this.#socket.resume()
    else this.#socket.pause()
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
    const keys = options.keys
    const certificate = options.certificate
    const secured = keys !== undefined || certificate !== undefined
    const socket = certificate
      ? tls.connect({ ...endpoint, ...tlsCertificateClientOptions(certificate) })
      : keys
        ? tls.connect({ ...endpoint, ...tlsClientOptions(keys) })
        : 'path' in endpoint
          ? net.connect({ path: endpoint.path })
          : net.connect({ host: endpoint.host, port: endpoint.port })
    // No Nagle from the first byte: the client's Finished and its first
    // frame would otherwise wait for an ACK the server has no reason to hurry.
    if (secured) socket.setNoDelay(true)
    // With a key the connection is made once the handshake is done.
    const connected = secured ? 'secureConnect' : 'connect'
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
      socket.off(connected, onConnect)
    }
    function fail(error: Error) {
      cleanup()
      socket.destroy()
      reject(error)
    }
    function onError(error: NodeJS.ErrnoException) {
      const code = error.code ?? error.message
      fail(
        new UnreachableError(
          secured && (code.startsWith('ERR_SSL') || code.includes('CERT'))
            ? `the TLS handshake with ${where} failed (${code}): ${certificate ? 'its certificate is not from the authority, or it refused ours' : `it does not hold key "${keys!.current.id}", or has no key`}`
            : `cannot connect to ${where}: ${code}`,
          { cause: error },
        ),
      )
    }
    function onConnect() {
      cleanup()
      resolve(new SocketConnection(socket, options))
    }
    socket.once('error', onError)
    socket.once(connected, onConnect)
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
  /**
   * With a key: connections closed because the TLS handshake failed (no
   * key, a wrong key, plaintext, or no handshake within `handshakeTimeout`).
   */
  handshakeFailures?: number
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
  /** With a key: how long a connection may take to finish the TLS handshake (default 10 s). */
  handshakeTimeout?: number
}

/** A listener that accepts message connections. */
export interface MessageServer extends EventEmitter<MessageServerEvents>, Closable {
  /** The bound TCP port (0 for Unix sockets). */
  readonly port: number
  /** Accepted and refused connections, counted since the server started. */
  readonly counters: Readonly<ServerCounters>
  /**
   * Stops accepting and closes every open connection with `reason`;
   * idempotent. Resolves once the port is released.
   */
  close(reason?: string): Promise<CloseInfo>
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
  readonly closed: Promise<CloseInfo>
  #resolveClosed!: (info: CloseInfo) => void
  #closing = false
  readonly #connectionOptions: SocketOptions

  constructor(server: net.Server, options: ListenOptions, identities?: WeakMap<object, string>) {
    super()
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    this.#server = server
    // The serving end stops reading a peer that does not take its answers;
    // the connecting end always reads (see ConnectionOptions.readWatermark).
    this.#connectionOptions = {
      ...options,
      readWatermark: options.readWatermark ?? SERVED_READ_WATERMARK,
    }
    this.#maxConnections = options.maxConnections ?? Limits.maxConnections
    this.#maxPerAddress = options.maxConnectionsPerAddress ?? Limits.maxConnectionsPerAddress
    this.#log = activeLogger(options.logger)
    if (server instanceof tls.Server) {
      this.counters.handshakeFailures = 0
      // Connections still in their handshake are not yet counted against
      // the caps below: the listener's own cap bounds them.
      server.maxConnections = this.#maxConnections
      server.on('secureConnection', (socket: tls.TLSSocket) =>
        this.#accept(socket, identities?.get(socket)),
      )
      server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
        this.counters.handshakeFailures! += 1
        this.#log?.warn(
          `autobus:transport TLS handshake from ${socket.remoteAddress ?? 'a local socket'} failed: ${error.code ?? error.message}`,
        )
      })
    } else server.on('connection', (socket) => this.#accept(socket))
    server.on('error', (error: NodeJS.ErrnoException) => this.#acceptFailed(error))
  }

  #accept(socket: net.Socket, peerKeyId?: string): void {
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
      if (address === undefined || socket instanceof tls.TLSSocket) socket.destroy()
      else socket.resetAndDestroy()
      return
    }
    const connection = new SocketConnection(socket, this.#connectionOptions, peerKeyId)
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

  close(reason = 'server closing'): Promise<CloseInfo> {
    if (!this.#closing) {
      this.#closing = true
      this.#server.close(() => this.#resolveClosed({ reason }))
      for (const connection of this.#connections) void connection.close(reason)
    }
    return this.closed
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
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
    const identities = new WeakMap<object, string>()
    const handshakeTimeout = options.handshakeTimeout ?? 10_000
    const server = options.certificate
      ? tls.createServer({
          noDelay: true,
          handshakeTimeout,
          ...tlsCertificateServerOptions(options.certificate),
        })
      : options.keys
        ? tls.createServer({
            noDelay: true,
            handshakeTimeout,
            ...tlsServerOptions(options.keys, (socket, id) => identities.set(socket, id)),
          })
        : net.createServer({ noDelay: true })
    const onError = (error: NodeJS.ErrnoException) =>
      reject(
        new ListenError(`cannot listen: ${error.message}`, {
          cause: error,
          ...(error.code ? { systemCode: error.code } : {}),
        }),
      )
    server.once('error', onError)
    const ready = () => {
      server.off('error', onError)
      resolve(new SocketServer(server, options, identities))
    }
    if (options.path) server.listen({ path: options.path }, ready)
    else
      server.listen(
        { port: options.port ?? 0, host: options.host ?? '0.0.0.0', backlog: 1024 },
        ready,
      )
  })
}
