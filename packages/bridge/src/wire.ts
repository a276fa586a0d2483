import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'

/**
 * The bridge link's messages (docs/protocol.md §8). Each travels as a
 * session notification `fired` whose `name` says which one and whose
 * `args` hold its body, so every session decoder frames and checks it.
 */
export const LinkMessage = {
  Hello: 'bridge.hello',
  Routes: 'bridge.routes',
  Open: 'bridge.open',
  Frame: 'bridge.frame',
  Close: 'bridge.close',
  Bye: 'bridge.bye',
} as const

/** Version of the link protocol spoken by this implementation. */
export const LINK_VERSION = 1

const BridgeId = Type.String({ minLength: 1, maxLength: 64 })
const Path = Type.Array(BridgeId, { maxItems: 64 })
const CircuitId = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })

/** `bridge.hello`: who the sender is and which bridges share its bus. */
export const HelloBody = Type.Object({
  id: BridgeId,
  version: Type.Integer({ minimum: 1 }),
  mates: Type.Array(BridgeId, { maxItems: 1024 }),
})
export type HelloBody = Static<typeof HelloBody>

/** One route: a service the sender can reach, and the bridges on the way to it. */
export const RouteEntry = Type.Object({
  service: Type.String({ minLength: 1, maxLength: 256 }),
  info: Type.Record(Type.String(), Type.Unknown()),
  path: Path,
})
export type RouteEntry = Static<typeof RouteEntry>

/** `bridge.routes`: routes added (or replaced) and withdrawn. */
export const RoutesBody = Type.Object({
  add: Type.Array(RouteEntry),
  remove: Type.Array(Type.String({ minLength: 1, maxLength: 256 })),
})
export type RoutesBody = Static<typeof RoutesBody>

/** `bridge.open` args: circuit number and service id. */
export const OpenArgs = Type.Tuple([CircuitId, Type.String({ minLength: 1, maxLength: 256 })])
/** `bridge.frame` args: circuit number and one session message as JSON text. */
export const FrameArgs = Type.Tuple([CircuitId, Type.String()])
/** `bridge.close` args: circuit number and reason. */
export const CloseArgs = Type.Tuple([CircuitId, Type.String({ maxLength: 1024 })])

export const checkHello = Compile(Type.Tuple([HelloBody]))
export const checkRoutes = Compile(Type.Tuple([RoutesBody]))
export const checkOpen = Compile(OpenArgs)
export const checkFrame = Compile(FrameArgs)
export const checkClose = Compile(CloseArgs)
export const checkBye = Compile(Type.Tuple([Type.String({ maxLength: 1024 })]))
