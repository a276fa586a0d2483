import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeFrame, ErrorCode, ProtocolError, parseJsonObject } from '../src/index.js'

/** Depth of a decoded value: the object itself is depth 1. */
function depthOf(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0
  const children = Array.isArray(value) ? value : Object.values(value)
  return 1 + Math.max(0, ...children.map(depthOf))
}

describe('nesting depth, checked on the text', () => {
  it('agrees with the depth of the value for any JSON, strings full of brackets included', () => {
    const tricky = fc.constantFrom('[', ']', '{', '}', '"', '\\', '\\"', '[[[[', '\\\\"')
    const text = fc.array(tricky, { maxLength: 20 }).map((parts) => parts.join(''))
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        text,
        fc.integer(),
        fc.array(tie('node'), { maxLength: 3 }),
        fc.dictionary(text, tie('node'), { maxKeys: 3 }),
      ),
    })).node
    fc.assert(
      fc.property(value, fc.integer({ min: 1, max: 8 }), (inner, limit) => {
        const root = { _type: 1, _id: 1, _command: 'call', name: 'f', args: [inner] }
        const decoded = parseJsonObject(JSON.stringify(root), limit)
        const tooDeep = depthOf(root) > limit
        expect(decoded instanceof ProtocolError && decoded.code === ErrorCode.TooDeep).toBe(tooDeep)
      }),
      { numRuns: 500 },
    )
  })

  it('refuses 4 MiB of brackets where the limit is passed, keeping the id read before it', async () => {
    const half = 2 * 1024 * 1024
    const deep = `${'['.repeat(half)}${']'.repeat(half)}`
    const idFirst = decodeFrame(
      Buffer.from(`{"_type":1,"_id":"x\\"1","_command":"call","name":"f","args":${deep}}`),
    )
    expect(idFirst).toMatchObject({ code: 'too_deep', messageId: 'x"1', messageType: 1 })
    // Reading stops at the limit: an id that comes after it is not known,
    // and the frame gets an error report.
    const idLast = decodeFrame(`{"_type":1,"_command":"call","name":"f","args":${deep},"_id":2}`)
    expect(idLast).toMatchObject({ code: 'too_deep', messageType: 1 })
    expect((idLast as ProtocolError).messageId).toBeUndefined()
  })

  it('does not take an _id nested below the top level', () => {
    const text = `{"_type":1,"_command":"call","name":"f","args":[{"_id":5},${'['.repeat(70)}${']'.repeat(70)}]}`
    const decoded = decodeFrame(text) as ProtocolError
    expect(decoded.code).toBe('too_deep')
    expect(decoded.messageId).toBeUndefined()
  })
})
