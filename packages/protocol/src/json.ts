import { Limits } from './constants.js'
import { ErrorCode, ProtocolError } from './errors.js'

/** A JSON object as decoded from the wire. */
export type JsonObject = { [key: string]: unknown }

/**
 * Parses one JSON object from text. Returns a `ProtocolError` (never throws)
 * when the text is not JSON, is not an object, or nests deeper than
 * `maxDepth` (the object itself is depth 1). Own `__proto__` keys are removed
 * so that no later copy of the value can change an object's prototype.
 *
 * Depth is checked on the text, before any object is built: a hostile frame
 * of a few MiB of brackets costs one linear scan, not a parse into millions
 * of objects.
 */
export function parseJsonObject(
  text: string,
  maxDepth: number = Limits.maxDepth,
): JsonObject | ProtocolError {
  if (mayBeDeeperThan(text, maxDepth)) {
    const scan = scanDepth(text, maxDepth)
    if (scan.tooDeep) {
      // Keep what identifies the message so that it can still be answered.
      return new ProtocolError(ErrorCode.TooDeep, `nesting deeper than ${maxDepth}`, {
        ...(scan.id !== undefined ? { messageId: scan.id } : {}),
        ...(scan.type !== undefined ? { messageType: scan.type } : {}),
      })
    }
  }
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

// Text with no more opening brackets than levels allowed cannot be too deep,
// so most messages skip the scan. Counting with indexOf stays in native code;
// brackets inside strings only make the answer "maybe".
function mayBeDeeperThan(text: string, maxDepth: number): boolean {
  if (text.length <= maxDepth * 2) return false
  let open = 0
  for (let i = text.indexOf('{'); i !== -1; i = text.indexOf('{', i + 1))
    if (++open > maxDepth) return true
  for (let i = text.indexOf('['); i !== -1; i = text.indexOf('[', i + 1))
    if (++open > maxDepth) return true
  return false
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const COMMA = 0x2c

interface DepthScan {
  tooDeep: boolean
  /** The top-level `_id`, when it is a plain number or string. */
  id?: number | string
  /** The top-level `_type`, when it is a number. */
  type?: number
}

/** Index of the quote that closes the string opening at `start`, or -1. */
function endOfString(text: string, start: number): number {
  let end = text.indexOf('"', start + 1)
  while (end !== -1) {
    let backslashes = 0
    for (let i = end - 1; text.charCodeAt(i) === BACKSLASH; i--) backslashes++
    if (backslashes % 2 === 0) return end
    end = text.indexOf('"', end + 1)
  }
  return -1
}

/**
 * Measures nesting on the text itself (strings and their escapes skipped)
 * and picks up the top-level `_id` and `_type` on the way, so that a frame
 * refused as too deep can still be answered. Ill-formed text gives an
 * answer that does not matter: JSON.parse rejects it next.
 */
function scanDepth(text: string, maxDepth: number): DepthScan {
  const scan: DepthScan = { tooDeep: false }
  const length = text.length
  let depth = 0
  let expectKey = false
  let pending: '_id' | '_type' | undefined
  let i = 0
  while (i < length) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      const end = endOfString(text, i)
      if (end === -1) break
      if (depth === 1) {
        if (expectKey) {
          const key = end - i === 4 || end - i === 6 ? text.slice(i + 1, end) : ''
          pending = key === '_id' || key === '_type' ? key : undefined
          expectKey = false
        } else if (pending) {
          if (pending === '_id' && end - i <= 258) {
            const id = stringAt(text, i, end)
            if (id !== undefined && id.length <= 256) scan.id = id
          }
          pending = undefined
        }
      }
      i = end + 1
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      depth++
      if (depth > maxDepth) scan.tooDeep = true
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
        const d = text.charCodeAt(end)
        if (d === COMMA || d === CLOSE_OBJECT || d <= 0x20) break
        end++
      }
      const number = Number(text.slice(i, end))
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

function stringAt(text: string, start: number, end: number): string | undefined {
  try {
    return JSON.parse(text.slice(start, end + 1)) as string
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
