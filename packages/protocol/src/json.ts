import { Limits } from './constants.js'
import { ErrorCode, ProtocolError } from './errors.js'

/** A JSON object as decoded from the wire. */
export type JsonObject = { [key: string]: unknown }

/**
 * Parses one JSON object from UTF-8 bytes or text. Returns a
 * `ProtocolError` (never throws) when the input is not JSON, is not an
 * object, or nests deeper than `maxDepth` (the object itself is depth 1).
 * Own `__proto__` keys are removed so that no later copy of the value can
 * change an object's prototype.
 *
 * Depth is checked on the bytes, before any string or object is built, and
 * reading stops where the limit is passed: a hostile frame of a few MiB of
 * brackets costs a few hundred bytes of scanning, not a parse into millions
 * of objects. The `_id` and `_type` seen at the top level before that point
 * are kept on the error, so that the frame can still be answered.
 */
export function parseJsonObject(
  input: string | Uint8Array,
  maxDepth: number = Limits.maxDepth,
): JsonObject | ProtocolError {
  if (mayBeDeeperThan(input, maxDepth)) {
    const error = tooDeepError(typeof input === 'string' ? Buffer.from(input) : input, maxDepth)
    if (error) return error
  }
  const text =
    typeof input === 'string'
      ? input
      : Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('utf8')
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (cause) {
    return new ProtocolError(ErrorCode.MalformedJson, 'not valid JSON', { cause })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return new ProtocolError(ErrorCode.MalformedJson, 'not a JSON object')
  }
  if (text.includes('__proto__')) removeProtoKeys(value)
  return value as JsonObject
}

/**
 * The `too_deep` error for a frame, or for the beginning of one, that nests
 * deeper than `maxDepth`; undefined when it does not (or, for a beginning,
 * not yet). Lets a receiver refuse a long frame from its first bytes and
 * drop the rest unread.
 */
export function tooDeepError(
  bytes: Uint8Array,
  maxDepth: number = Limits.maxDepth,
): ProtocolError | undefined {
  if (!mayBeDeeperThan(bytes, maxDepth)) return undefined
  const scan = scanDepth(bytes, maxDepth)
  if (!scan.tooDeep) return undefined
  return new ProtocolError(ErrorCode.TooDeep, `nesting deeper than ${maxDepth}`, {
    ...(scan.id !== undefined ? { messageId: scan.id } : {}),
    ...(scan.type !== undefined ? { messageType: scan.type } : {}),
  })
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const COMMA = 0x2c

// Input with no more opening brackets than levels allowed cannot be too
// deep, so most messages skip the scan. Counting with indexOf stays in
// native code; brackets inside strings only make the answer "maybe".
/** @internal */
export function mayBeDeeperThan(input: string | Uint8Array, maxDepth: number): boolean {
  if (input.length <= maxDepth * 2) return false
  let open = 0
  if (typeof input === 'string') {
    for (let i = input.indexOf('{'); i !== -1; i = input.indexOf('{', i + 1))
      if (++open > maxDepth) return true
    for (let i = input.indexOf('['); i !== -1; i = input.indexOf('[', i + 1))
      if (++open > maxDepth) return true
    return false
  }
  for (let i = input.indexOf(OPEN_OBJECT); i !== -1; i = input.indexOf(OPEN_OBJECT, i + 1))
    if (++open > maxDepth) return true
  for (let i = input.indexOf(OPEN_ARRAY); i !== -1; i = input.indexOf(OPEN_ARRAY, i + 1))
    if (++open > maxDepth) return true
  return false
}

interface DepthScan {
  tooDeep: boolean
  /** The top-level `_id` before the limit was passed, when it is a valid id. */
  id?: number | string
  /** The top-level `_type` before the limit was passed, when it is an integer. */
  type?: number
}

/** Index of the quote that closes the string opening at `start`, or -1. */
function endOfString(bytes: Uint8Array, start: number): number {
  let end = bytes.indexOf(QUOTE, start + 1)
  while (end !== -1) {
    let backslashes = 0
    for (let i = end - 1; bytes[i] === BACKSLASH; i--) backslashes++
    if (backslashes % 2 === 0) return end
    end = bytes.indexOf(QUOTE, end + 1)
  }
  return -1
}

function textOf(bytes: Uint8Array, start: number, end: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8', start, end)
}

/**
 * Measures nesting on the UTF-8 bytes (no byte of a multi-byte character is
 * ASCII, so brackets and quotes are found exactly; strings and their escapes
 * are skipped) and stops as soon as the limit is passed. Picks up the
 * top-level `_id` and `_type` on the way. Ill-formed input gives an answer
 * that does not matter: JSON.parse rejects it next.
 */
function scanDepth(bytes: Uint8Array, maxDepth: number): DepthScan {
  const scan: DepthScan = { tooDeep: false }
  const length = bytes.length
  let depth = 0
  let expectKey = false
  let pending: '_id' | '_type' | undefined
  let i = 0
  while (i < length) {
    const c = bytes[i]!
    if (c === QUOTE) {
      const end = endOfString(bytes, i)
      if (end === -1) break
      if (depth === 1) {
        if (expectKey) {
          const key = end - i === 4 || end - i === 6 ? textOf(bytes, i + 1, end) : ''
          pending = key === '_id' || key === '_type' ? key : undefined
          expectKey = false
        } else if (pending) {
          if (pending === '_id' && end - i <= 258) {
            const id = stringAt(textOf(bytes, i, end + 1))
            if (id !== undefined && id.length <= 256) scan.id = id
          }
          pending = undefined
        }
      }
      i = end + 1
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > maxDepth) {
        scan.tooDeep = true
        return scan
      }
      if (depth === 1) expectKey = c === OPEN_OBJECT
      else pending = undefined
      i++
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--
      i++
    } else if (c === COMMA) {
      if (depth === 1) expectKey = true
      i++
    } else if (depth === 1 && pending && (c === 0x2d || (c >= 0x30 && c <= 0x39))) {
      let end = i + 1
      while (end < length && end - i < 32) {
        const d = bytes[end]!
        if (d === COMMA || d === CLOSE_OBJECT || d <= 0x20) break
        end++
      }
      const number = Number(textOf(bytes, i, end))
      if (pending === '_type') {
        if (Number.isInteger(number)) scan.type = number
      } else if (Number.isSafeInteger(number)) scan.id = number
      pending = undefined
      i = end
    } else {
      i++
    }
  }
  return scan
}

function stringAt(json: string): string | undefined {
  try {
    const value: unknown = JSON.parse(json)
    return typeof value === 'string' ? value : undefined
  } catch {
    return undefined
  }
}

function removeProtoKeys(root: object): void {
  const stack: unknown[] = [root]
  while (stack.length > 0) {
    const node = stack.pop()
    if (Array.isArray(node)) {
      for (const item of node) if (typeof item === 'object' && item !== null) stack.push(item)
    } else {
      const record = node as Record<string, unknown>
      if (Object.hasOwn(record, '__proto__')) Reflect.deleteProperty(record, '__proto__')
      for (const key in record) {
        const item = record[key]
        if (typeof item === 'object' && item !== null) stack.push(item)
      }
    }
  }
}
