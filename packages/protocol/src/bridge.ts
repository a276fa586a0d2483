import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import { describeErrors } from './discovery.js'
import { ErrorCode, ProtocolError } from './errors.js'

/**
 * Names of the bridge link's messages (docs/protocol.md §8.1). Each travels
 * as a session notification `fired` whose `name` is one of these and whose
 * `args` hold its body, so every session decoder frames and checks it.
 */
export const BridgeMessage = {
  Hello: 'bridge.hello',
  Routes: 'bridge.routes',
  Open: 'bridge.open',
  Frame: 'bridge.frame',
  Close: 'bridge.close',
  Bye: 'bridge.bye',
} as const
export type BridgeMessageName = (typeof BridgeMessage)[keyof typeof BridgeMessage]

/**
 * Version of the link protocol (§8.2). Version 2 carries each circuit's
 * session frames as attachments (§8.4); version 1 carried them as JSON text.
 */
export const BRIDGE_LINK_VERSION = 2

const BridgeId = Type.String({ minLength: 1, maxLength: 64 })
const ServiceId = Type.String({ minLength: 1, maxLength: 256 })
const CircuitId = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })
const Reason = Type.String({ maxLength: 1024 })

/** `bridge.hello`: who the sender is and which bridges share its bus. §8.2. */
export const BridgeHello = Type.Object({
  id: BridgeId,
  version: Type.Integer({ minimum: 1 }),
  mates: Type.Array(BridgeId, { maxItems: 1024 }),
})
export type BridgeHello = Static<typeof BridgeHello>

/** One route: a service the sender can reach, and the bridges on the way to it. §8.3. */
export const BridgeRouteEntry = Type.Object({
  service: ServiceId,
  info: Type.Record(Type.String(), Type.Unknown()),
  path: Type.Array(BridgeId, { maxItems: 64 }),
})
export type BridgeRouteEntry = Static<typeof BridgeRouteEntry>

/** `bridge.routes`: routes added (or replaced) and withdrawn. §8.3. */
export const BridgeRoutes = Type.Object({
  add: Type.Array(BridgeRouteEntry),
  remove: Type.Array(ServiceId),
})
export type BridgeRoutes = Static<typeof BridgeRoutes>

/** The `args` of each link message, by name. */
export const BridgeMessageArgs = {
  [BridgeMessage.Hello]: Type.Tuple([BridgeHello]),
  [BridgeMessage.Routes]: Type.Tuple([BridgeRoutes]),
  /** Circuit number and the service it goes to. §8.4. */
  [BridgeMessage.Open]: Type.Tuple([CircuitId, ServiceId]),
  /** Circuit number; the session frame is the message's attachment (§3.12). §8.4. */
  [BridgeMessage.Frame]: Type.Tuple([CircuitId]),
  /** Circuit number and why it closes. */
  [BridgeMessage.Close]: Type.Tuple([CircuitId, Reason]),
  /** Why the sender is closing the link. */
  [BridgeMessage.Bye]: Type.Tuple([Reason]),
} as const

/** A link message with its body checked. */
export type BridgeLinkMessage = {
  [K in BridgeMessageName]: { name: K; args: Static<(typeof BridgeMessageArgs)[K]> }
}[BridgeMessageName]

const validators = new Map(
  Object.entries(BridgeMessageArgs).map(([name, schema]) => [name, Compile(schema)]),
)

/**
 * Checks the `name` and `args` of a `fired` notification received on a
 * link. Returns the typed link message, or a `ProtocolError` saying why
 * not (`unknown_command` for a name that is not a link message); never
 * throws. A `bridge.frame` must also carry an attachment, which the
 * framing checks, not this.
 */
export function decodeBridgeMessage(message: {
  name?: unknown
  args?: unknown
}): BridgeLinkMessage | ProtocolError {
  const { name, args } = message
  const validator = typeof name === 'string' ? validators.get(name) : undefined
  if (!validator)
    return new ProtocolError(ErrorCode.UnknownCommand, `unknown link message ${String(name)}`)
  if (!validator.Check(args))
    return new ProtocolError(
      ErrorCode.InvalidMessage,
      `${name}: ${describeErrors(validator.Errors(args))}`,
    )
  return { name, args } as BridgeLinkMessage
}

// --- Links over NATS (§8.7) -------------------------------------------------

const NatsBridgeId = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' })

/** A bridge's presence, published on `PREFIX.bridges` (§8.7.2). */
export const NatsPresence = Type.Object({
  id: NatsBridgeId,
  version: Type.Integer({ minimum: 1 }),
})
export type NatsPresence = Static<typeof NatsPresence>

/**
 * The header line of a segment, published on `PREFIX.link.TO.FROM`
 * (§8.7.3): the link's epoch, the segment's number (absent on a pure
 * acknowledgement or a reset), the highest number taken in order from the
 * other end, whether the link message goes on in the next segment, and
 * why the link is closing (a reset).
 */
export const NatsSegmentHeader = Type.Object({
  epoch: Type.String({ minLength: 1, maxLength: 64 }),
  seq: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
  ack: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
  more: Type.Optional(Type.Boolean()),
  reset: Type.Optional(Reason),
})
export type NatsSegmentHeader = Static<typeof NatsSegmentHeader>

const presenceValidator = Compile(NatsPresence)
const segmentValidator = Compile(NatsSegmentHeader)

function parseJson(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString())
  } catch {
    return undefined
  }
}

/** Reads a presence payload (§8.7.2); a `ProtocolError` if it is not one. Never throws. */
export function decodeNatsPresence(payload: Uint8Array): NatsPresence | ProtocolError {
  const value = parseJson(payload)
  if (!presenceValidator.Check(value))
    return new ProtocolError(
      ErrorCode.InvalidMessage,
      `presence: ${value === undefined ? 'not JSON' : describeErrors(presenceValidator.Errors(value))}`,
    )
  return value
}

/**
 * Reads a segment payload (§8.7.3): the header line, and the bytes after
 * its newline (the body) if there is one. A `ProtocolError` if the header
 * is not one, or if a body comes without `seq`. Never throws.
 */
export function decodeNatsSegment(
  payload: Uint8Array,
): { header: NatsSegmentHeader; body?: Buffer } | ProtocolError {
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  const newline = bytes.indexOf(0x0a)
  const value = parseJson(newline === -1 ? bytes : bytes.subarray(0, newline))
  if (!segmentValidator.Check(value))
    return new ProtocolError(
      ErrorCode.InvalidMessage,
      `segment: ${value === undefined ? 'not JSON' : describeErrors(segmentValidator.Errors(value))}`,
    )
  if (newline === -1) return { header: value }
  if (value.seq === undefined)
    return new ProtocolError(ErrorCode.InvalidMessage, 'segment: a body without "seq"')
  return { header: value, body: bytes.subarray(newline + 1) }
}
