import Type, { type Static, type TSchema } from 'typebox'
import { Compile, type Validator } from 'typebox/compile'
import { Limits } from './constants.js'
import { describeErrors } from './discovery.js'
import { ErrorCode, ProtocolError, type WireError } from './errors.js'
import { type JsonObject, mayBeDeeperThan, parseJsonObject } from './json.js'

/** `_type` values. docs/protocol.md §3.2. */
export const MessageType = { Command: 1, Response: 2, Notification: 3 } as const
export type MessageType = (typeof MessageType)[keyof typeof MessageType]

/** A message id: chosen by the sender of a command, echoed by its response. */
export type MessageId = number | string

const MAX_NAME_LENGTH = 1024
const Name = Type.String({ minLength: 1, maxLength: MAX_NAME_LENGTH })
const Args = Type.Array(Type.Unknown())
const LocalId = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })
const Empty = Type.Object({})

/** The `_error` object of a failed response. */
export const WireErrorSchema = Type.Object({
  text: Type.String(),
  code: Type.Optional(Type.String()),
  name: Type.Optional(Type.String()),
})

/** Features a peer can offer at bind. docs/protocol.md §3.4. */
export const Feature = {
  /** Typed error codes in `_error.code`. */
  Errors: 'errors',
  /** The `describe` command. */
  Describe: 'describe',
  /** `ping` heartbeats on idle connections. */
  Heartbeat: 'heartbeat',
  /** Channels (`channel_open`, `channel_message`, `channel_close`). */
  Channels: 'channels',
  /** Byte streams (`stream_open`, `stream_data`, `stream_ack`, …). */
  Streams: 'streams',
  /** Raw bytes after a frame with `_size` (stream data without base64). */
  Attachments: 'attachments',
} as const
export type Feature = (typeof Feature)[keyof typeof Feature]

/**
 * The features this implementation offers at bind (a client) and accepts
 * (a service): all of them. Here, so both ends and other tools read one list.
 */
export const SUPPORTED_FEATURES: readonly Feature[] = [
  Feature.Errors,
  Feature.Describe,
  Feature.Heartbeat,
  Feature.Channels,
  Feature.Streams,
  Feature.Attachments,
]

/** JSON Schema of a value, as published by introspection. */
const JsonSchema = Type.Record(Type.String(), Type.Unknown())
const Doc = Type.Optional(Type.String())

/** How a service describes itself. docs/protocol.md §3.8. */
export const ServiceDescription = Type.Object({
  service: Type.String(),
  info: Type.Record(Type.String(), Type.Unknown()),
  doc: Doc,
  functions: Type.Record(
    Type.String(),
    Type.Object({
      doc: Doc,
      args: Type.Optional(Type.Array(JsonSchema)),
      result: Type.Optional(JsonSchema),
    }),
  ),
  events: Type.Record(
    Type.String(),
    Type.Object({ doc: Doc, args: Type.Optional(Type.Array(JsonSchema)) }),
  ),
  objects: Type.Record(Type.String(), Type.Object({ doc: Doc, value: Type.Optional(JsonSchema) })),
  channels: Type.Record(
    Type.String(),
    Type.Object({
      doc: Doc,
      message: Type.Optional(JsonSchema),
      reply: Type.Optional(JsonSchema),
    }),
  ),
  streams: Type.Record(Type.String(), Type.Object({ doc: Doc })),
})
export type ServiceDescription = Static<typeof ServiceDescription>

/**
 * Every session command: the body of its request and of its response (keys
 * beside `_type`, `_id`, `_command`). One entry per command of
 * docs/protocol.md §3.5–§3.8.
 */
export const Commands = {
  bind: {
    request: Type.Object({
      service: Type.String({ maxLength: 256 }),
      version: Type.Optional(Type.Integer()),
      features: Type.Optional(Type.Array(Type.String(), { maxItems: 64 })),
    }),
    response: Type.Object({
      version: Type.Optional(Type.Integer()),
      features: Type.Optional(Type.Array(Type.String(), { maxItems: 64 })),
    }),
  },
  call: {
    request: Type.Object({ name: Name, args: Args }),
    response: Type.Object({ result: Type.Optional(Type.Unknown()) }),
  },
  watch: {
    request: Type.Object({ name: Name }),
    response: Type.Object({
      name: Type.Optional(Type.String()),
      value: Type.Optional(Type.Unknown()),
    }),
  },
  unwatch: {
    request: Type.Object({ name: Name }),
    response: Type.Object({ value: Type.Optional(Type.Unknown()) }),
  },
  changed: {
    request: Type.Object({ name: Name, value: Type.Unknown() }),
    response: Empty,
  },
  listen: { request: Type.Object({ name: Name }), response: Empty },
  unlisten: { request: Type.Object({ name: Name }), response: Empty },
  fired: {
    request: Type.Object({ name: Name, args: Args }),
    response: Empty,
  },
  describe: {
    request: Empty,
    response: Type.Object({ description: ServiceDescription }),
  },
  ping: { request: Empty, response: Empty },
  channel_open: {
    request: Type.Object({ name: Name, channel: LocalId }),
    response: Empty,
  },
  channel_message: {
    request: Type.Object({ channel: LocalId, message: Type.Unknown() }),
    response: Empty,
  },
  channel_close: {
    request: Type.Object({ channel: LocalId, reason: Type.Optional(Type.String()) }),
    response: Empty,
  },
  stream_open: {
    request: Type.Object({ name: Name, stream: LocalId, window: Type.Integer({ minimum: 1 }) }),
    response: Type.Object({ window: Type.Integer({ minimum: 1 }) }),
  },
  stream_data: {
    // `data` (base64), or with the attachments feature `_size` raw bytes after the frame.
    request: Type.Object({
      stream: LocalId,
      data: Type.Optional(Type.String()),
      _size: Type.Optional(Type.Integer({ minimum: 0 })),
    }),
    response: Empty,
  },
  stream_ack: {
    request: Type.Object({ stream: LocalId, bytes: Type.Integer({ minimum: 1 }) }),
    response: Empty,
  },
  stream_end: { request: Type.Object({ stream: LocalId }), response: Empty },
  stream_close: {
    request: Type.Object({ stream: LocalId, reason: Type.Optional(Type.String()) }),
    response: Empty,
  },
} as const satisfies Record<string, { request: TSchema; response: TSchema }>

/** The name of a session command. */
export type CommandName = keyof typeof Commands

/** The body of a command's request. */
export type RequestBody<C extends CommandName> = Static<(typeof Commands)[C]['request']>
/** The body of a command's response. */
export type ResponseBody<C extends CommandName> = Static<(typeof Commands)[C]['response']>

/** A decoded command or notification (`_type` 1 or 3). */
export type RequestMessage<C extends CommandName = CommandName> = {
  [K in C]: RequestBody<K> & {
    _type: typeof MessageType.Command | typeof MessageType.Notification
    _id?: MessageId
    _command: K
  }
}[C]

/** A decoded response (`_type` 2). Its body is checked by `checkResponse`. */
export type ResponseMessage = JsonObject & {
  _type: typeof MessageType.Response
  /** null in an error report about a frame whose id could not be read. */
  _id: MessageId | null
  _error?: WireError
}

/** Any decoded session message. */
export type SessionMessage = RequestMessage | ResponseMessage

const requestValidators = new Map<string, Validator>()
const responseValidators = new Map<string, Validator>()
for (const [name, spec] of Object.entries(Commands)) {
  requestValidators.set(name, Compile(spec.request))
  responseValidators.set(name, Compile(spec.response))
}
const wireErrorValidator = Compile(WireErrorSchema)

/** Longest string `_id` accepted, in code points like every length of the spec. docs/protocol.md §3.2. */
export const MAX_ID_LENGTH = 256

/**
 * True if `id` is a valid message id: a safe integer (|id| ≤ 2^53 − 1) or a
 * string of at most 256 characters. Anything else (1.5, 1e400, a long
 * string) could not be echoed back exactly.
 */
export function isMessageId(id: unknown): id is MessageId {
  if (typeof id !== 'string') return Number.isSafeInteger(id)
  // A code point is one or two UTF-16 units: only lengths in between need counting.
  if (id.length <= MAX_ID_LENGTH) return true
  if (id.length > 2 * MAX_ID_LENGTH) return false
  let points = 0
  for (const _ of id) if (++points > MAX_ID_LENGTH) return false
  return true
}

/** True if `name` is a command of this protocol. */
export function isCommandName(name: string): name is CommandName {
  return requestValidators.has(name)
}

/**
 * Decodes one frame (a line without its newline, as UTF-8 bytes or text).
 * Never throws: an invalid frame comes back as a `ProtocolError` that
 * carries `_id` and `_type` when they could be read, so the receiver can
 * answer it.
 */
export function decodeFrame(
  frame: string | Uint8Array,
  maxDepth: number = Limits.maxDepth,
): SessionMessage | ProtocolError {
  if (typeof frame === 'string' && frame.startsWith(FIRED_HEAD)) {
    const fired = decodePlainFired(frame, maxDepth)
    if (fired) return fired
  }
  const value = parseJsonObject(frame, maxDepth)
  if (value instanceof ProtocolError) return value
  const type = value._type
  const id = value._id
  const hasId = isMessageId(id)
  if (type !== 1 && type !== 2 && type !== 3) {
    return new ProtocolError(
      ErrorCode.InvalidMessage,
      '"_type" must be 1, 2 or 3',
      hasId ? { messageId: id } : {},
    )
  }
  const context = hasId ? { messageId: id, messageType: type } : { messageType: type }
  // A notification is never answered, so its `_id` (originals send one on
  // every message) is not looked at. Elsewhere an id that cannot be echoed
  // exactly makes the frame invalid; it is answered with an error report.
  if (
    id !== undefined &&
    !hasId &&
    type !== MessageType.Notification &&
    !(id === null && type === MessageType.Response)
  ) {
    return new ProtocolError(
      ErrorCode.InvalidMessage,
      `"_id" must be a safe integer or a string of at most ${MAX_ID_LENGTH} characters`,
      context,
    )
  }
  if (type === MessageType.Response) {
    if (!hasId && id !== null)
      return new ProtocolError(ErrorCode.InvalidMessage, 'response without "_id"', context)
    if (value._error !== undefined && !wireErrorValidator.Check(value._error)) {
      return new ProtocolError(
        ErrorCode.InvalidMessage,
        '"_error" must be an object with "text"',
        context,
      )
    }
    return value as ResponseMessage
  }
  if (type === MessageType.Command && !hasId) {
    return new ProtocolError(ErrorCode.InvalidMessage, 'command without "_id"', context)
  }
  const command = value._command
  if (typeof command !== 'string') {
    return new ProtocolError(ErrorCode.InvalidMessage, 'missing "_command"', context)
  }
  // Events are most of the traffic a subscriber reads: their common shape
  // is accepted by a few direct tests; anything else (a long or empty name,
  // odd args) goes to the compiled validator, which decides and explains.
  if (command === 'fired' && isPlainFired(value)) return value as RequestMessage
  const validator = requestValidators.get(command)
  if (!validator) {
    return new ProtocolError(ErrorCode.UnknownCommand, `unknown command "${command}"`, context)
  }
  if (!validator.Check(value)) {
    return new ProtocolError(
      ErrorCode.InvalidMessage,
      `${command}: ${describeErrors(validator.Errors(value))}`,
      context,
    )
  }
  return value as RequestMessage
}

/** How a service encodes every event it fires, up to the event's name. */
const FIRED_HEAD = `{"_type":${MessageType.Notification},"_command":"fired","name":"`
const ARGS_KEY = '","args":'
const SIZE_KEY = ',"_size":'
const BACKSLASH = 0x5c
const CLOSE_OBJECT = 0x7d
const CLOSE_ARRAY = 0x5d

/**
 * Events are most of what a subscriber reads, and they come as a service
 * encodes them: the fixed head, a plain name, the arguments, `}` (or an
 * attachment's `_size` and `}`, as a bridge link sends each circuit
 * frame). For such a frame only the arguments go to `JSON.parse`: the envelope, whose keys
 * every kind of message shares, is the costly part of parsing it (in a
 * client that has parsed responses too, about half of the time per event).
 * The result is the same value `parseJsonObject` would give, and a frame
 * that is not exactly this shape (an escape or a control character in the
 * name, another key, spaces, `__proto__` anywhere, nesting that may be too
 * deep) returns undefined and takes the full path.
 */
function decodePlainFired(line: string, maxDepth: number): RequestMessage | undefined {
  const nameStart = FIRED_HEAD.length
  const nameEnd = line.indexOf('"', nameStart)
  if (nameEnd <= nameStart || nameEnd - nameStart > MAX_NAME_LENGTH) return undefined
  if (!line.startsWith(ARGS_KEY, nameEnd) || line.charCodeAt(line.length - 1) !== CLOSE_OBJECT)
    return undefined
  // The arguments end the frame, or only an attachment's `_size` follows
  // them (a bridge link's circuit frames are all of that shape).
  let argsEnd = line.length - 1
  let size: number | undefined
  if (line.charCodeAt(argsEnd - 1) !== CLOSE_ARRAY) {
    const at = line.lastIndexOf(SIZE_KEY)
    if (at === -1 || line.charCodeAt(at - 1) !== CLOSE_ARRAY) return undefined
    size = plainCount(line, at + SIZE_KEY.length, argsEnd)
    if (size === undefined) return undefined
    argsEnd = at
  }
  for (let i = nameStart; i < nameEnd; i++) {
    const code = line.charCodeAt(i)
    if (code < 0x20 || code === BACKSLASH) return undefined
  }
  if (mayBeDeeperThan(line, maxDepth) || line.includes('__proto__')) return undefined
  const argsStart = nameEnd + ARGS_KEY.length
  if (line.charCodeAt(argsStart) !== 0x5b) return undefined
  let args: unknown
  try {
    // Whatever else is between the arguments and the end (another key, a
    // second `}`) makes this slice invalid JSON, so the frame goes the
    // full way.
    args = JSON.parse(line.slice(argsStart, argsEnd))
  } catch {
    return undefined
  }
  if (!Array.isArray(args)) return undefined
  const fired = {
    _type: MessageType.Notification,
    _command: 'fired',
    name: line.slice(nameStart, nameEnd),
    args,
  } as RequestMessage & { _size?: number }
  if (size !== undefined) fired._size = size
  return fired
}

/** The decimal digits from `start` to `end` as a count: none, a sign, a leading zero or too many are undefined. */
function plainCount(line: string, start: number, end: number): number | undefined {
  if (end <= start || end - start > 15 || (line.charCodeAt(start) === 0x30 && end - start > 1))
    return undefined
  let value = 0
  for (let i = start; i < end; i++) {
    const digit = line.charCodeAt(i) - 0x30
    if (digit < 0 || digit > 9) return undefined
    value = value * 10 + digit
  }
  return value
}

/**
 * A sufficient test for the `fired` request schema: a name of 1 to 1,024
 * UTF-16 units has 1 to 1,024 code points, and `args` is an array. False
 * says nothing; the compiled validator then has the last word.
 */
function isPlainFired(value: JsonObject): boolean {
  const name = value.name
  return (
    typeof name === 'string' &&
    name.length >= 1 &&
    name.length <= MAX_NAME_LENGTH &&
    Array.isArray(value.args)
  )
}

/**
 * Checks a response body against the schema of the command it answers.
 * Returns undefined when it fits, or the `ProtocolError` describing why not.
 */
export function checkResponse(
  command: CommandName,
  response: ResponseMessage,
): ProtocolError | undefined {
  const validator = responseValidators.get(command)!
  const messageId = response._id
  if (validator.Check(response)) return undefined
  return new ProtocolError(
    ErrorCode.InvalidMessage,
    `${command} response: ${describeErrors(validator.Errors(response))}`,
    {
      ...(messageId === null ? {} : { messageId }),
      messageType: MessageType.Response,
    },
  )
}

/** Encodes a message as one frame: compact JSON and a newline. */
export function encodeFrame(message: object): string {
  return `${JSON.stringify(message)}\n`
}
