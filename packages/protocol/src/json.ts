import { Limits } from './constants.js'
import { ErrorCode, ProtocolError } from './errors.js'

/** A JSON object as decoded from the wire. */
export type JsonObject = { [key: string]: unknown }

/**
 * Parses one JSON object from text. Returns a `ProtocolError` (never throws)
 * when the text is not JSON, is not an object, or nests deeper than
 * `maxDepth`. Own `__proto__` keys are removed so that no later copy of the
 * value can change an object's prototype.
 */
export function parseJsonObject(
  text: string,
  maxDepth: number = Limits.maxDepth,
): JsonObject | ProtocolError {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (cause) {
    return new ProtocolError(ErrorCode.MalformedJson, 'not valid JSON', { cause })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return new ProtocolError(ErrorCode.MalformedJson, 'not a JSON object')
  }
  // Text with no more opening brackets than levels allowed cannot be too
  // deep, and text without the key needs no cleaning: most messages skip
  // the walk.
  if (mayBeDeeperThan(text, maxDepth) || text.includes('__proto__')) {
    const depthError = sanitize(value, maxDepth)
    if (depthError) {
      // Keep what identifies the message so that it can still be answered.
      const { _id: id, _type: type } = value as JsonObject
      return new ProtocolError(depthError.code, depthError.message, {
        ...(typeof id === 'number' || typeof id === 'string' ? { messageId: id } : {}),
        ...(typeof type === 'number' ? { messageType: type } : {}),
      })
    }
  }
  return value as JsonObject
}

function mayBeDeeperThan(text: string, maxDepth: number): boolean {
  if (text.length <= maxDepth * 2) return false
  // Counting opening brackets with indexOf stays in native code; brackets
  // inside strings only make the answer "maybe".
  let open = 0
  for (let i = text.indexOf('{'); i !== -1; i = text.indexOf('{', i + 1))
    if (++open > maxDepth) return true
  for (let i = text.indexOf('['); i !== -1; i = text.indexOf('[', i + 1))
    if (++open > maxDepth) return true
  return false
}

function sanitize(root: object, maxDepth: number): ProtocolError | undefined {
  const stack: Array<[unknown, number]> = [[root, 1]]
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!
    if (depth > maxDepth) {
      return new ProtocolError(ErrorCode.TooDeep, `nesting deeper than ${maxDepth}`)
    }
    if (Array.isArray(node)) {
      for (const item of node) {
        if (typeof item === 'object' && item !== null) stack.push([item, depth + 1])
      }
    } else {
      const record = node as Record<string, unknown>
      if (Object.hasOwn(record, '__proto__')) Reflect.deleteProperty(record, '__proto__')
      for (const key in record) {
        const item = record[key]
        if (typeof item === 'object' && item !== null) stack.push([item, depth + 1])
      }
    }
  }
  return undefined
}
