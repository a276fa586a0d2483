import { EventEmitter } from 'node:events'
import {
  BRIDGE_LINK_VERSION,
  type BridgeHello,
  BridgeMessage,
  type BridgeRoutes,
  ClosedError,
  type CloseInfo,
  decodeBridgeMessage,
  decodeFrame,
  ErrorCode,
  MessageType,
  ProtocolError,
  type SessionMessage,
  UnreachableError,
} from '@autobus/protocol'
import type { HeartbeatOptions, MessageConnection } from '@autobus/transport'

/** Link timings, in ms. */
export interface LinkTimings {
  /** How long the other end may take to say hello (default 10 s). */
  helloTimeout?: number
  /** Idle time after which a link is pinged (default 1 s). */
  heartbeatInterval?: number
  /** Silence after which a link is closed as dead (default 3 s). */
  heartbeatTimeout?: number
}

/** Counters of one link; bad input is counted, never thrown. */
export interface LinkCounters {
  /** Link messages that did not match their schema, or came out of turn. */
  invalid: number
  /** Circuits opened by the other end. */
  circuitsIn: number
  /** Circuits opened by this end. */
  circuitsOut: number
  /** Circuits the other end opened beyond `maxCircuits`, refused. */
  refusedCircuits: number
}

type LinkEvents = {
  /** The other end's hello arrived again with new bus mates. */
  hello: [hello: BridgeHello]
  routes: [update: BridgeRoutes]
  /** The other end opened a circuit to `service`. */
  open: [circuit: Circuit, service: string]
}

/**
 * Joins text frames sent in one turn of the event loop into one write, the
 * first one included. A relay sends in bursts (one frame for each frame of
 * a chunk it read); the transport writes the first frame of a turn at once
 * and joins the rest, which would be two writes, two wake-ups of the
 * reader, and the burst split in two at every hop after.
 */
export class TurnWriter {
  readonly #write: (text: string) => unknown
  #text = ''
  #scheduled = false

  constructor(write: (text: string) => unknown) {
    this.#write = write
  }

  /** Queues text (whole frames, newlines included) for the end of this turn. */
  add(text: string): void {
    this.#text += text
    if (!this.#scheduled) {
      this.#scheduled = true
      queueMicrotask(this.flush)
    }
  }

  /** Writes what is queued now: before anything that must not overtake it. */
  readonly flush = (): void => {
    this.#scheduled = false
    if (this.#text === '') return
    const text = this.#text
    this.#text = ''
    this.#write(text)
  }
}

/**
 * One session relayed across a link: the two ends exchange session
 * frames as attachments of link messages, so a relay in the middle passes
 * their bytes on without parsing them.
 */
export class Circuit extends EventEmitter<{ frame: [bytes: Buffer] }> {
  readonly id: number
  readonly link: Link
  readonly closed: Promise<CloseInfo>
  #resolve!: (info: CloseInfo) => void
  #info: CloseInfo | undefined
  /** The link message every frame of this circuit goes in, made once. */
  readonly #header: object
  /** The same, as text up to the value of `_size`. */
  readonly #prefix: string

  /** @internal */
  constructor(link: Link, id: number) {
    super()
    this.link = link
    this.id = id
    this.#header = {
      _type: MessageType.Notification,
      _command: 'fired',
      name: BridgeMessage.Frame,
      args: [id],
    }
    this.#prefix = `${JSON.stringify(this.#header).slice(0, -1)},"_size":`
    this.closed = new Promise((resolve) => {
      this.#resolve = resolve
    })
  }

  get isClosed(): boolean {
    return this.#info !== undefined
  }

  /**
   * Sends one circuit frame (see {@link readCircuitFrame}): text (a frame
   * without attachment) goes out with its link header as one string, so
   * the transport joins it with the rest of the turn's writes; bytes go as
   * an attachment. `size` is the text's length in bytes, if the caller has
   * it. False once closed.
   */
  send(frame: string | Uint8Array, size?: number): boolean {
    if (this.#info || this.link.isClosed) return false
    if (typeof frame === 'string') {
      this.link.writer.add(`${this.#prefix}${size ?? Buffer.byteLength(frame)}}\n${frame}`)
      return true
    }
    this.link.writer.flush()
    return this.link.connection.sendWithAttachment(this.#header, frame)
  }

  /** Closes the circuit and tells the other end; idempotent. */
  close(reason = 'closed'): CloseInfo {
    if (!this.#info) this.link.send(BridgeMessage.Close, [this.id, reason])
    return this.finish(reason)
  }

  /** @internal Closes without telling the other end. */
  finish(reason: string): CloseInfo {
    if (this.#info) return this.#info
    this.#info = { reason }
    this.link.forget(this.id)
    this.#resolve(this.#info)
    return this.#info
  }
}

/**
 * A link between two bridges over one message connection: a hello each way,
 * then routes and circuits multiplexed on it. The end that connected numbers
 * its circuits odd, the end that accepted even, so they never clash.
 */
export class Link extends EventEmitter<LinkEvents> {
  readonly connection: MessageConnection
  /** True for the end that connected. */
  readonly initiator: boolean
  readonly counters: LinkCounters = {
    invalid: 0,
    circuitsIn: 0,
    circuitsOut: 0,
    refusedCircuits: 0,
  }
  readonly closed: Promise<CloseInfo>
  /** The other end's hello, once it has arrived. */
  peer: BridgeHello | undefined
  /** Why the other end said it was closing, if it did. */
  byeReason: string | undefined
  /** Circuits' text frames, joined per turn; flushed before any other link message. */
  readonly writer: TurnWriter
  readonly #circuits = new Map<number, Circuit>()
  #nextCircuit: number
  #nextPing = 1

  readonly #maxCircuits: number

  /** `maxCircuits`: circuits open at once on the link (default 4,096); the other end's beyond it are refused. */
  constructor(connection: MessageConnection, initiator: boolean, maxCircuits = 4_096) {
    super()
    this.#maxCircuits = maxCircuits
    this.connection = connection
    this.initiator = initiator
    this.#nextCircuit = initiator ? 1 : 2
    this.closed = connection.closed
    this.writer = new TurnWriter((text) => connection.sendEncoded(text))
    // Circuit frames travel as attachments (§8.4).
    connection.enableAttachments()
    connection.on('message', (message) => this.#receive(message))
    connection.on('invalid', () => {
      this.counters.invalid++
    })
    connection.once('close', (info) => {
      for (const circuit of [...this.#circuits.values()])
        circuit.finish(`link lost: ${info.reason}`)
    })
  }

  get isClosed(): boolean {
    return this.connection.isClosed
  }

  /**
   * Says hello and waits for the other end's. Resolves with it; rejects
   * (closing the link) on timeout, a wrong version or a closed link.
   */
  start(hello: BridgeHello, timings: LinkTimings = {}): Promise<BridgeHello> {
    this.send(BridgeMessage.Hello, [hello])
    const heartbeat: HeartbeatOptions = {
      interval: timings.heartbeatInterval ?? 1_000,
      timeout: timings.heartbeatTimeout ?? 3_000,
      // A command, so that the other end answers: silence both ways is what
      // the heartbeat measures.
      ping: () =>
        this.connection.send({
          _type: MessageType.Command,
          _id: this.#nextPing++,
          _command: 'ping',
        }),
    }
    this.connection.startHeartbeat(heartbeat)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => fail(new UnreachableError('no hello from the other bridge in time')),
        timings.helloTimeout ?? 10_000,
      )
      const fail = (error: Error) => {
        cleanup()
        this.close(error.message)
        reject(error)
      }
      const onHello = (peer: BridgeHello) => {
        cleanup()
        resolve(peer)
      }
      const onClose = (info: CloseInfo) => {
        cleanup()
        reject(new ClosedError(`link closed before hello: ${info.reason}`))
      }
      const cleanup = () => {
        clearTimeout(timer)
        this.off('hello', onHello)
        this.connection.off('close', onClose)
      }
      this.on('hello', onHello)
      this.connection.once('close', onClose)
    })
  }

  /** Sends one link message; false once the link is closed. */
  send(name: string, args: unknown[]): boolean {
    // A circuit's close must not overtake its last frames.
    this.writer.flush()
    return this.connection.send({ _type: MessageType.Notification, _command: 'fired', name, args })
  }

  /** Tells the other end about routes. */
  sendRoutes(update: BridgeRoutes): boolean {
    return this.send(BridgeMessage.Routes, [update])
  }

  /** Opens a circuit to a service the other end advertised. */
  open(service: string): Circuit {
    const id = this.#nextCircuit
    this.#nextCircuit += 2
    const circuit = new Circuit(this, id)
    this.#circuits.set(id, circuit)
    this.counters.circuitsOut++
    this.send(BridgeMessage.Open, [id, service])
    return circuit
  }

  /** @internal */
  forget(id: number): void {
    this.#circuits.delete(id)
  }

  /** How many circuits are open on this link. */
  get circuitCount(): number {
    return this.#circuits.size
  }

  /** Says why and closes the link; idempotent. */
  close(reason = 'closed'): Promise<CloseInfo> {
    if (!this.connection.isClosed) {
      this.send(BridgeMessage.Bye, [reason])
      this.connection.close(reason)
    }
    return this.closed
  }

  #invalid(): undefined {
    this.counters.invalid++
    return undefined
  }

  #receive(message: SessionMessage & { _attachment?: Buffer }): undefined {
    if (message._type === MessageType.Response) return
    if (message._command === 'ping') {
      if (message._type === MessageType.Command)
        this.connection.send({ _type: MessageType.Response, _id: message._id })
      return
    }
    if (message._command !== 'fired') return this.#invalid()
    // The hot path first, checked by hand: one per session message relayed.
    if (message.name === BridgeMessage.Frame) {
      const args = message.args
      const id = args.length === 1 ? args[0] : undefined
      const bytes = message._attachment
      if (typeof id !== 'number' || !bytes) return this.#invalid()
      this.#circuits.get(id)?.emit('frame', bytes)
      return
    }
    const decoded = decodeBridgeMessage(message)
    if (decoded instanceof ProtocolError) return this.#invalid()
    switch (decoded.name) {
      case BridgeMessage.Hello: {
        const hello = decoded.args[0]
        if (hello.version !== BRIDGE_LINK_VERSION || (this.peer && this.peer.id !== hello.id)) {
          this.close(`unsupported hello (version ${hello.version})`)
          return
        }
        this.peer = hello
        this.emit('hello', hello)
        return
      }
      case BridgeMessage.Routes:
        if (!this.peer) return this.#invalid()
        this.emit('routes', decoded.args[0])
        return
      case BridgeMessage.Open: {
        if (!this.peer) return this.#invalid()
        const [id, service] = decoded.args
        // The other end numbers with the other parity; anything else, or a
        // number in use, is refused without touching open circuits.
        if (id % 2 === (this.initiator ? 1 : 0) || this.#circuits.has(id)) {
          this.#invalid()
          this.send(BridgeMessage.Close, [id, 'circuit number in use'])
          return
        }
        // Each circuit may hold a connection to a service of this bus: the
        // other end cannot make this bridge open them without bound.
        if (this.#circuits.size >= this.#maxCircuits) {
          this.counters.refusedCircuits++
          this.send(BridgeMessage.Close, [id, 'too many circuits'])
          return
        }
        const circuit = new Circuit(this, id)
        this.#circuits.set(id, circuit)
        this.counters.circuitsIn++
        this.emit('open', circuit, service)
        return
      }
      case BridgeMessage.Close:
        this.#circuits.get(decoded.args[0])?.finish(decoded.args[1])
        return
      case BridgeMessage.Bye:
        this.byeReason = decoded.args[0]
        return
      default:
        // A frame without its attachment was taken above; nothing else is left.
        this.#invalid()
    }
  }
}

/**
 * Paces a relay that feeds a link from one connection: once the link is
 * behind (its socket wants a drain), `source` stops being read until the
 * link has caught up, so the bytes wait in the kernel and the sender slows
 * down. A link is shared by every circuit on it: without this, one fast
 * sender could queue past the link's limit and close it for all. Call the
 * result after each frame passed on.
 */
export function pacer(link: Link, source: MessageConnection): () => void {
  let held = false
  return () => {
    if (held || !link.connection.needsDrain) return
    held = true
    source.pauseReading?.()
    void link.connection.drained().then(() => {
      held = false
      source.resumeReading?.()
    })
  }
}

const NEWLINE = 0x0a
const NEWLINE_BYTES = Buffer.from([NEWLINE])

/**
 * Reads one circuit frame (§8.4): a session frame's JSON text, then, if it
 * has an attachment, a newline and the attachment's bytes. Returns the
 * session message, or a `ProtocolError`.
 */
export function readCircuitFrame(
  bytes: Buffer,
): (SessionMessage & { _attachment?: Buffer }) | ProtocolError {
  const newline = bytes.indexOf(NEWLINE)
  if (newline === -1) return decodeFrame(bytes)
  const message = decodeFrame(bytes.subarray(0, newline))
  if (message instanceof ProtocolError) return message
  const attachment = bytes.subarray(newline + 1)
  if ((message as { _size?: unknown })._size !== attachment.length)
    return new ProtocolError(
      ErrorCode.InvalidMessage,
      'circuit frame: the bytes after the newline are not the attachment "_size" announces',
    )
  return Object.assign(message, { _attachment: attachment })
}

/**
 * Passes one circuit frame from a circuit on to `to`, the end of a session
 * that is not a circuit. A frame without a newline is one frame, queued
 * unread on `writer` (whose frames join the turn's other writes); one with
 * a newline is a frame and its attachment, checked, sent after what
 * `writer` holds. False, counted on the link, when the bytes after the
 * newline are not the attachment its frame announces: the caller then
 * closes the circuit.
 */
export function passFrame(
  bytes: Buffer,
  circuit: Circuit,
  writer: TurnWriter,
  to: MessageConnection,
): boolean {
  if (bytes.indexOf(NEWLINE) === -1) {
    writer.add(`${bytes.toString()}\n`)
    return true
  }
  writer.flush()
  const message = readCircuitFrame(bytes)
  if (message instanceof ProtocolError) {
    circuit.link.counters.invalid++
    return false
  }
  const { _attachment, _size, ...header } = message as typeof message & { _size?: number }
  to.sendWithAttachment(header, _attachment!)
  return true
}

/**
 * Writes one session message as a circuit frame: its JSON text, and its
 * attachment after a newline if it has one.
 */
export function circuitFrame(message: object & { _attachment?: Uint8Array }): string | Buffer {
  const attachment = message._attachment
  if (!attachment) return JSON.stringify(message)
  const { _attachment, ...header } = message
  return Buffer.concat([
    Buffer.from(JSON.stringify({ ...header, _size: attachment.byteLength })),
    NEWLINE_BYTES,
    attachment,
  ])
}

/**
 * One end of a circuit as a message connection, so an ordinary
 * `bindService` runs a session over it, attachments included.
 */
export class CircuitConnection
  extends EventEmitter<import('@autobus/transport').MessageConnectionEvents>
  implements MessageConnection
{
  readonly remoteAddress = 'bridge'
  readonly remotePort = 0
  readonly closed: Promise<CloseInfo>
  readonly #circuit: Circuit
  #bytesReceived = 0
  #bytesSent = 0

  constructor(circuit: Circuit) {
    super()
    this.#circuit = circuit
    this.closed = circuit.closed
    circuit.on('frame', (bytes) => {
      this.#bytesReceived += bytes.length
      const message = readCircuitFrame(bytes)
      if (message instanceof ProtocolError) this.emit('invalid', message)
      else this.emit('message', message)
    })
    circuit.closed.then((info) => this.emit('close', info))
  }

  get isClosed(): boolean {
    return this.#circuit.isClosed
  }

  get needsDrain(): boolean {
    return this.#circuit.link.connection.needsDrain
  }

  /** Bytes of this circuit's frames received (their payload, without the link's framing). */
  get bytesReceived(): number {
    return this.#bytesReceived
  }

  /** Bytes of this circuit's frames sent (their payload, without the link's framing). */
  get bytesSent(): number {
    return this.#bytesSent
  }

  // Queued bytes belong to the link, which all circuits share.
  get bytesQueued(): number {
    return 0
  }

  send(message: object): boolean {
    return this.#sent(JSON.stringify(message))
  }

  sendEncoded(frame: string): boolean {
    return this.#sent(frame.endsWith('\n') ? frame.slice(0, -1) : frame)
  }

  sendWithAttachment(message: object, bytes: Uint8Array): boolean {
    return this.#sent(circuitFrame({ ...message, _attachment: bytes }))
  }

  #sent(frame: string | Uint8Array): boolean {
    const size = typeof frame === 'string' ? Buffer.byteLength(frame) : frame.byteLength
    this.#bytesSent += size
    return this.#circuit.send(frame, size)
  }

  // Frames with attachments are read whole, whether or not they were asked for.
  enableAttachments(): void {}

  drained(signal?: AbortSignal): Promise<void> {
    return this.#circuit.link.connection.drained(signal)
  }

  // The link has its own heartbeat; a circuit dies with it.
  startHeartbeat(): void {}

  close(reason = 'closed'): Promise<CloseInfo> {
    this.#circuit.close(reason)
    return this.closed
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
