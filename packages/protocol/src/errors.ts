/**
 * The wire error codes. Every error that crosses the wire carries one of
 * these in `_error.code`; an unknown or missing code is read as
 * `remote_error`. See docs/protocol.md §3.9.
 */
export const ErrorCode = {
  /** A frame or datagram is not a JSON object. */
  MalformedJson: 'malformed_json',
  /** A frame is longer than the frame limit. */
  FrameTooLarge: 'frame_too_large',
  /** A datagram, or the datagram an info would need, is over the limit. */
  DatagramTooLarge: 'datagram_too_large',
  /** Arrays and objects nest deeper than the limit. */
  TooDeep: 'too_deep',
  /** A required field is missing or has the wrong type. */
  InvalidMessage: 'invalid_message',
  /** `_command` names no command this peer knows. */
  UnknownCommand: 'unknown_command',
  /** A command other than `bind` came before `bind`. */
  NotBound: 'not_bound',
  /** `bind` named a service id this listener does not serve. */
  UnknownService: 'unknown_service',
  /** A function, event, object, channel or stream name is not defined. */
  UnknownName: 'unknown_name',
  /** Arguments do not match the function's declared types or count. */
  InvalidArguments: 'invalid_arguments',
  /** The handler threw; `_error.name` holds the thrown error's name. */
  RemoteError: 'remote_error',
  /** A per-connection limit was reached; the command was not run. */
  Busy: 'busy',
  /** The command did not get a response in time. */
  Timeout: 'timeout',
  /** The connection closed while the command was in flight. */
  ConnectionLost: 'connection_lost',
  /** The service refused to open a channel or stream. */
  Refused: 'refused',
  /** The channel, stream or connection is already closed. */
  Closed: 'closed',
  /** The peer did not negotiate the feature this command needs. */
  Unsupported: 'unsupported',
  /** A connection could not be made (refused, unreachable, timed out). */
  Unreachable: 'unreachable',
  /** An access rule denies this command to this peer; the handler did not run. */
  Forbidden: 'forbidden',
} as const

/** One of the wire error codes. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

const codes = new Set<string>(Object.values(ErrorCode))

/** True if `code` is one of the wire error codes. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && codes.has(code)
}

/** The `_error` object of a failed response, as it travels on the wire. */
export interface WireError {
  text: string
  code?: string
  name?: string
  [key: string]: unknown
}

/** Base class of every error Autobus raises; `code` is its wire code. */
export class AutobusError extends Error {
  static override readonly name: string = 'AutobusError'
  override name = 'AutobusError'
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
  }
}

/**
 * Bytes that are not a valid message: bad JSON, too large, too deep,
 * missing or ill-typed fields, an unknown command. Carries the message's
 * `_id` and `_type` when they could be read, so a response can be sent.
 */
export class ProtocolError extends AutobusError {
  static override readonly name: string = 'ProtocolError'
  override name = 'ProtocolError'
  readonly messageId: number | string | undefined
  readonly messageType: number | undefined
  constructor(
    code: ErrorCode,
    message: string,
    options?: ErrorOptions & { messageId?: number | string; messageType?: number },
  ) {
    super(code, message, options)
    this.messageId = options?.messageId
    this.messageType = options?.messageType
  }
}

/** An access rule denies the command to this peer; the handler did not run. */
export class ForbiddenError extends AutobusError {
  static override readonly name: string = 'ForbiddenError'
  override name = 'ForbiddenError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Forbidden, message, options)
  }
}

/** `bind` named a service the peer does not serve. */
export class UnknownServiceError extends AutobusError {
  static override readonly name: string = 'UnknownServiceError'
  override name = 'UnknownServiceError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.UnknownService, message, options)
  }
}

/** A function, event, object, channel or stream that the service lacks. */
export class UnknownNameError extends AutobusError {
  static override readonly name: string = 'UnknownNameError'
  override name = 'UnknownNameError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.UnknownName, message, options)
  }
}

/** Arguments that do not match the declared types; the handler did not run. */
export class InvalidArgumentsError extends AutobusError {
  static override readonly name: string = 'InvalidArgumentsError'
  override name = 'InvalidArgumentsError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.InvalidArguments, message, options)
  }
}

/** A remote handler threw. `remoteName` is the thrown error's name. */
export class RemoteError extends AutobusError {
  static override readonly name: string = 'RemoteError'
  override name = 'RemoteError'
  readonly remoteName: string
  readonly remoteStack: string | undefined
  constructor(message: string, remoteName = 'Error', options?: ErrorOptions & { stack?: string }) {
    super(ErrorCode.RemoteError, message, options)
    this.remoteName = remoteName
    this.remoteStack = options?.stack
  }
}

/** A per-connection limit was reached; nothing was run. */
export class BusyError extends AutobusError {
  static override readonly name: string = 'BusyError'
  override name = 'BusyError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Busy, message, options)
  }
}

/** No response in time. The command may still have run. */
export class CallTimeoutError extends AutobusError {
  static override readonly name: string = 'CallTimeoutError'
  override name = 'CallTimeoutError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Timeout, message, options)
  }
}

/**
 * The connection closed while a command was in flight. The command may have
 * run on the service: it is never retried.
 */
export class ConnectionLostError extends AutobusError {
  static override readonly name: string = 'ConnectionLostError'
  override name = 'ConnectionLostError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.ConnectionLost, message, options)
  }
}

/** The service refused to open a channel or stream. */
export class RefusedError extends AutobusError {
  static override readonly name: string = 'RefusedError'
  override name = 'RefusedError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Refused, message, options)
  }
}

/** The thing used is already closed. */
export class ClosedError extends AutobusError {
  static override readonly name: string = 'ClosedError'
  override name = 'ClosedError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Closed, message, options)
  }
}

/** The peer did not negotiate the feature this needs. */
export class UnsupportedError extends AutobusError {
  static override readonly name: string = 'UnsupportedError'
  override name = 'UnsupportedError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Unsupported, message, options)
  }
}

/** A connection could not be made: refused, no route, or timed out. */
export class UnreachableError extends AutobusError {
  static override readonly name: string = 'UnreachableError'
  override name = 'UnreachableError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Unreachable, message, options)
  }
}

/**
 * The peer stopped reading and too much was queued for it: the connection
 * was dropped. Its wire code is `busy` (a per-connection limit).
 */
export class SlowConsumerError extends AutobusError {
  static override readonly name: string = 'SlowConsumerError'
  override name = 'SlowConsumerError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Busy, message, options)
  }
}

/**
 * Nothing was heard from the peer within the heartbeat timeout: the
 * connection was closed as dead. Its wire code is `connection_lost`.
 */
export class PeerTimeoutError extends AutobusError {
  static override readonly name: string = 'PeerTimeoutError'
  override name = 'PeerTimeoutError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.ConnectionLost, message, options)
  }
}

/**
 * A listener could not be opened (the port is in use, the address is not
 * this host's, no permission). Local only: it never travels on the wire, so
 * it has no wire code; `systemCode` is the system's (e.g. `EADDRINUSE`).
 */
export class ListenError extends Error {
  static override readonly name: string = 'ListenError'
  override name = 'ListenError'
  readonly systemCode: string | undefined
  constructor(message: string, options?: ErrorOptions & { systemCode?: string }) {
    super(message, options)
    this.systemCode = options?.systemCode
  }
}

/** A command came before `bind`. */
export class NotBoundError extends AutobusError {
  static override readonly name: string = 'NotBoundError'
  override name = 'NotBoundError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.NotBound, message, options)
  }
}

/** Turns any thrown value into the `_error` object sent on the wire. */
export function errorToWire(error: unknown, options: { stack?: boolean } = {}): WireError {
  if (error instanceof RemoteError) {
    return { text: error.message, code: error.code, name: error.remoteName }
  }
  if (error instanceof AutobusError) {
    return { text: error.message, code: error.code, name: error.name }
  }
  const name = error instanceof Error ? error.name : 'Error'
  const text = error instanceof Error ? error.message : String(error)
  const wire: WireError = { text, code: ErrorCode.RemoteError, name }
  if (options.stack && error instanceof Error && error.stack) wire.stack = error.stack
  return wire
}

/**
 * The class each wire code is read back as. One entry per code, so a new
 * code does not compile until it has a class here.
 */
const fromWire = {
  malformed_json: (text) => new ProtocolError(ErrorCode.MalformedJson, text),
  frame_too_large: (text) => new ProtocolError(ErrorCode.FrameTooLarge, text),
  datagram_too_large: (text) => new ProtocolError(ErrorCode.DatagramTooLarge, text),
  too_deep: (text) => new ProtocolError(ErrorCode.TooDeep, text),
  invalid_message: (text) => new ProtocolError(ErrorCode.InvalidMessage, text),
  unknown_command: (text) => new ProtocolError(ErrorCode.UnknownCommand, text),
  not_bound: (text) => new NotBoundError(text),
  forbidden: (text) => new ForbiddenError(text),
  unknown_service: (text) => new UnknownServiceError(text),
  unknown_name: (text) => new UnknownNameError(text),
  invalid_arguments: (text) => new InvalidArgumentsError(text),
  remote_error: (text, wire) => {
    const name = typeof wire.name === 'string' ? wire.name : 'Error'
    const stack = typeof wire.stack === 'string' ? wire.stack : undefined
    return new RemoteError(text, name, stack === undefined ? undefined : { stack })
  },
  busy: (text) => new BusyError(text),
  timeout: (text) => new CallTimeoutError(text),
  connection_lost: (text) => new ConnectionLostError(text),
  refused: (text) => new RefusedError(text),
  closed: (text) => new ClosedError(text),
  unsupported: (text) => new UnsupportedError(text),
  unreachable: (text) => new UnreachableError(text),
} satisfies Record<ErrorCode, (text: string, wire: WireError) => AutobusError>

/**
 * Turns a received `_error` back into the class that was sent; an unknown or
 * missing code is a {@link RemoteError}.
 */
export function errorFromWire(wire: WireError): AutobusError {
  const text = typeof wire.text === 'string' ? wire.text : 'remote error'
  const code = isErrorCode(wire.code) ? wire.code : ErrorCode.RemoteError
  return fromWire[code](text, wire)
}
