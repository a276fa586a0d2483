import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'
import { Limits } from './constants.js'
import { ErrorCode, ProtocolError } from './errors.js'
import { parseJsonObject } from './json.js'

const Port = Type.Integer({ minimum: 1, maximum: 65535 })
const ServiceId = Type.String({ minLength: 1, maxLength: 256 })

/**
 * Asks every publisher to announce its services. docs/protocol.md §2.1.
 * `reply: "unicast"` says the asker listens on the query's source port, so
 * answers may go there; without it (original peers) answers are broadcast.
 */
export const QueryDatagram = Type.Object({
  command: Type.Literal('query'),
  reply: Type.Optional(Type.String({ maxLength: 64 })),
})
export type QueryDatagram = Static<typeof QueryDatagram>

/** A service is available at (sender address, port) under `service`. §2.1. */
export const AddDatagram = Type.Object({
  command: Type.Literal('add'),
  port: Port,
  service: ServiceId,
  info: Type.Record(Type.String(), Type.Unknown()),
  /** Extension: the sender's announcement interval in ms, for expiry. */
  interval: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000 })),
})
export type AddDatagram = Static<typeof AddDatagram>

/** A service is going away (a goodbye). §2.1. */
export const RemoveDatagram = Type.Object({
  command: Type.Literal('remove'),
  port: Port,
  service: ServiceId,
})
export type RemoveDatagram = Static<typeof RemoveDatagram>

/** Any discovery datagram. */
export type Datagram = QueryDatagram | AddDatagram | RemoveDatagram

const validators = {
  query: Compile(QueryDatagram),
  add: Compile(AddDatagram),
  remove: Compile(RemoveDatagram),
} as const

/**
 * Decodes one received datagram of up to `Limits.maxReceivedDatagram` bytes
 * (twice what a peer may send: original peers read that much). Never throws:
 * anything that is not a valid datagram comes back as a `ProtocolError`.
 * Unknown keys are ignored.
 */
export function decodeDatagram(bytes: Uint8Array): Datagram | ProtocolError {
  if (bytes.byteLength > Limits.maxReceivedDatagram) {
    return new ProtocolError(ErrorCode.DatagramTooLarge, `datagram of ${bytes.byteLength} bytes`)
  }
  const value = parseJsonObject(bytes)
  if (value instanceof ProtocolError) return value
  const command = value.command
  if (typeof command !== 'string') {
    return new ProtocolError(ErrorCode.InvalidMessage, 'datagram has no "command"')
  }
  if (!Object.hasOwn(validators, command)) {
    return new ProtocolError(ErrorCode.UnknownCommand, `unknown datagram command "${command}"`)
  }
  const validator = validators[command as keyof typeof validators]
  if (!validator.Check(value)) {
    return new ProtocolError(ErrorCode.InvalidMessage, describeErrors(validator.Errors(value)))
  }
  return value as Datagram
}

/**
 * Encodes a datagram. Throws a `ProtocolError` with code
 * `datagram_too_large` if it would exceed the datagram limit.
 */
export function encodeDatagram(datagram: Datagram): Buffer {
  const bytes = Buffer.from(JSON.stringify(datagram), 'utf8')
  if (bytes.byteLength > Limits.maxDatagram) {
    throw new ProtocolError(
      ErrorCode.DatagramTooLarge,
      `datagram of ${bytes.byteLength} bytes exceeds the ${Limits.maxDatagram}-byte limit`,
    )
  }
  return bytes
}

/** @internal Shared by the session decoder. */
export function describeErrors(
  errors: ReadonlyArray<{ instancePath: string; message: string }>,
): string {
  const first = errors[0]
  if (!first) return 'invalid message'
  return `${first.instancePath || '/'} ${first.message}`
}
