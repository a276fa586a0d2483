import { EventEmitter } from 'node:events'
import {
  ClosedError,
  type CloseInfo,
  decodeFrame,
  MessageType,
  ProtocolError,
  type SessionMessage,
  UnreachableError,
} from '@autobus/protocol'
import type { HeartbeatOptions, MessageConnection } from '@autobus/transport'
import {
  checkBye,
  checkClose,
  checkFrame,
  checkHello,
  checkOpen,
  checkRoutes,
  type HelloBody,
  LINK_VERSION,
  LinkMessage,
  type RoutesBody,
} from './wire.js'

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
  hello: [hello: HelloBody]
  routes: [update: RoutesBody]
  /** The other end opened a circuit to `service`. */
  open: [circuit: Circuit, service: string]
}

/**
 * One session relayed across a link: the two ends exchange session
 * messages as JSON text, unread, so a relay in the middle never parses them.
 */
export class Circuit extends EventEmitter<{ frame: [payload: string] }> {
  readonly id: number
  readonly link: Link
  readonly closed: Promise<CloseInfo>
  #resolve!: (info: CloseInfo) => void
  #info: CloseInfo | undefined

  /** @internal */
  constructor(link: Link, id: number) {
    super()
    this.link = link
    this.id = id
    this.closed = new Promise((resolve) => {
      this.#resolve = resolve
    })
  }

  get isClosed(): boolean {
    return this.#info !== undefined
  }

  /** Sends one session message (JSON text, no newline). False once closed. */
  send(payload: string): boolean {
    if (this.#info) return false
    return this.link.send(LinkMessage.Frame, [this.id, payload])
  }

  /** Closes the circuit and tells the other end; idempotent. */
  close(reason = 'closed'): CloseInfo {
    if (!this.#info) this.link.send(LinkMessage.Close, [this.id, reason])
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
  peer: HelloBody | undefined
  /** Why the other end said it was closing, if it did. */
  byeReason: string | undefined
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
  start(hello: HelloBody, timings: LinkTimings = {}): Promise<HelloBody> {
    this.send(LinkMessage.Hello, [hello])
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
      const onHello = (peer: HelloBody) => {
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
    return this.connection.send({ _type: MessageType.Notification, _command: 'fired', name, args })
  }

  /** Tells the other end about routes. */
  sendRoutes(update: RoutesBody): boolean {
    return this.send(LinkMessage.Routes, [update])
  }

  /** Opens a circuit to a service the other end advertised. */
  open(service: string): Circuit {
    const id = this.#nextCircuit
    this.#nextCircuit += 2
    const circuit = new Circuit(this, id)
    this.#circuits.set(id, circuit)
    this.counters.circuitsOut++
    this.send(LinkMessage.Open, [id, service])
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
      this.send(LinkMessage.Bye, [reason])
      this.connection.close(reason)
    }
    return this.closed
  }

  #invalid(): undefined {
    this.counters.invalid++
    return undefined
  }

  #receive(message: SessionMessage): undefined {
    if (message._type === MessageType.Response) return
    if (message._command === 'ping') {
      if (message._type === MessageType.Command)
        this.connection.send({ _type: MessageType.Response, _id: message._id })
      return
    }
    if (message._command !== 'fired') return this.#invalid()
    const args = message.args
    switch (message.name) {
      case LinkMessage.Hello: {
        if (!checkHello.Check(args)) return this.#invalid()
        const hello = args[0] as HelloBody
        if (hello.version !== LINK_VERSION || (this.peer && this.peer.id !== hello.id)) {
          this.close(`unsupported hello (version ${hello.version})`)
          return
        }
        this.peer = hello
        this.emit('hello', hello)
        return
      }
      case LinkMessage.Routes:
        if (!this.peer || !checkRoutes.Check(args)) return this.#invalid()
        this.emit('routes', args[0] as RoutesBody)
        return
      case LinkMessage.Open: {
        if (!this.peer || !checkOpen.Check(args)) return this.#invalid()
        const [id, service] = args as [number, string]
        // The other end numbers with the other parity; anything else, or a
        // number in use, is refused without touching open circuits.
        if (id % 2 === (this.initiator ? 1 : 0) || this.#circuits.has(id)) {
          this.#invalid()
          this.send(LinkMessage.Close, [id, 'circuit number in use'])
          return
        }
        // Each circuit may hold a connection to a service of this bus: the
        // other end cannot make this bridge open them without bound.
        if (this.#circuits.size >= this.#maxCircuits) {
          this.counters.refusedCircuits++
          this.send(LinkMessage.Close, [id, 'too many circuits'])
          return
        }
        const circuit = new Circuit(this, id)
        this.#circuits.set(id, circuit)
        this.counters.circuitsIn++
        this.emit('open', circuit, service)
        return
      }
      case LinkMessage.Frame: {
        if (!checkFrame.Check(args)) return this.#invalid()
        const circuit = this.#circuits.get(args[0] as number)
        if (circuit) circuit.emit('frame', args[1] as string)
        return
      }
      case LinkMessage.Close: {
        if (!checkClose.Check(args)) return this.#invalid()
        this.#circuits.get(args[0] as number)?.finish(args[1] as string)
        return
      }
      case LinkMessage.Bye:
        if (!checkBye.Check(args)) return this.#invalid()
        this.byeReason = args[0] as string
        return
      default:
        this.#invalid()
    }
  }
}

/**
 * One end of a circuit as a message connection, so an ordinary
 * `bindService` runs a session over it. Attachments are never negotiated
 * on it: stream bytes cross as base64, inside the link's own frames.
 */
export class CircuitConnection
  extends EventEmitter<import('@autobus/transport').MessageConnectionEvents>
  implements MessageConnection
{
  readonly remoteAddress = 'bridge'
  readonly remotePort = 0
  readonly closed: Promise<CloseInfo>
  readonly #circuit: Circuit

  constructor(circuit: Circuit) {
    super()
    this.#circuit = circuit
    this.closed = circuit.closed
    circuit.on('frame', (payload) => {
      const message = decodeFrame(payload)
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

  send(message: object): boolean {
    return this.#circuit.send(JSON.stringify(message))
  }

  sendEncoded(frame: string): boolean {
    return this.#circuit.send(frame.endsWith('\n') ? frame.slice(0, -1) : frame)
  }

  sendWithAttachment(): boolean {
    return false
  }

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
