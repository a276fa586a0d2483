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
