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
  override name = 'ForbiddenError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Forbidden, message, options)
  }
}

/** `bind` named a service the peer does not serve. */
export class UnknownServiceError extends AutobusError {
  override name = 'UnknownServiceError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.UnknownService, message, options)
  }
}

/** A function, event, object, channel or stream that the service lacks. */
export class UnknownNameError extends AutobusError {
  override name = 'UnknownNameError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.UnknownName, message, options)
  }
}

/** Arguments that do not match the declared types; the handler did not run. */
export class InvalidArgumentsError extends AutobusError {
  override name = 'InvalidArgumentsError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.InvalidArguments, message, options)
  }
}

/** A remote handler threw. `remoteName` is the thrown error's name. */
export class RemoteError extends AutobusError {
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
  override name = 'BusyError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Busy, message, options)
  }
}

/** No response in time. The command may still have run. */
export class CallTimeoutError extends AutobusError {
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
  override name = 'ConnectionLostError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.ConnectionLost, message, options)
  }
}

/** The service refused to open a channel or stream. */
export class RefusedError extends AutobusError {
  override name = 'RefusedError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Refused, message, options)
  }
}

/** The thing used is already closed. */
export class ClosedError extends AutobusError {
  override name = 'ClosedError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Closed, message, options)
  }
}

/** The peer did not negotiate the feature this needs. */
export class UnsupportedError extends AutobusError {
  override name = 'UnsupportedError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Unsupported, message, options)
  }
}

/** A connection could not be made: refused, no route, or timed out. */
export class UnreachableError extends AutobusError {
  override name = 'UnreachableError'
  constructor(message: string, options?: ErrorOptions) {
    super(ErrorCode.Unreachable, message, options)
  }
}

/** A command came before `bind`. */
export class NotBoundError extends AutobusError {
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

/** Turns a received `_error` back into the class that was sent. */
export function errorFromWire(wire: WireError): AutobusError {
  const text = typeof wire.text === 'string' ? wire.text : 'remote error'
  switch (wire.code) {
    case ErrorCode.UnknownService:
      return new UnknownServiceError(text)
    case ErrorCode.UnknownName:
      return new UnknownNameError(text)
    case ErrorCode.InvalidArguments:
      return new InvalidArgumentsError(text)
    case ErrorCode.Busy:
      return new BusyError(text)
    case ErrorCode.Timeout:
      return new CallTimeoutError(text)
    case ErrorCode.ConnectionLost:
      return new ConnectionLostError(text)
    case ErrorCode.Refused:
      return new RefusedError(text)
    case ErrorCode.Closed:
      return new ClosedError(text)
    case ErrorCode.Unsupported:
      return new UnsupportedError(text)
    case ErrorCode.NotBound:
      return new NotBoundError(text)
    case ErrorCode.Forbidden:
      return new ForbiddenError(text)
    case ErrorCode.Unreachable:
      return new UnreachableError(text)
    case ErrorCode.MalformedJson:
    case ErrorCode.FrameTooLarge:
    case ErrorCode.DatagramTooLarge:
    case ErrorCode.TooDeep:
    case ErrorCode.InvalidMessage:
    case ErrorCode.UnknownCommand:
      return new ProtocolError(wire.code, text)
    default: {
      const name = typeof wire.name === 'string' ? wire.name : 'Error'
      const stack = typeof wire.stack === 'string' ? wire.stack : undefined
      return new RemoteError(text, name, stack === undefined ? undefined : { stack })
    }
  }
}
