import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  type Datagram,
  decodeDatagram,
  decodeFrame,
  ErrorCode,
  encodeDatagram,
  encodeFrame,
  Limits,
  ProtocolError,
} from '../src/index.js'

// What a receiver should see: the value as sent, less any __proto__ keys.
const expected = (value: unknown) =>
  JSON.parse(JSON.stringify(value), (key, item) => (key === '__proto__' ? undefined : item))

describe('decodeDatagram', () => {
  it('round-trips every datagram', () => {
    const port = fc.integer({ min: 1, max: 65535 })
    const service = fc.string({ minLength: 1, maxLength: 64 })
    const info = fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 3 }), {
      maxKeys: 5,
    })
    const datagram: fc.Arbitrary<Datagram> = fc.oneof(
      fc.constant({ command: 'query' as const }),
      fc.record({ command: fc.constant('add' as const), port, service, info }),
      fc.record({ command: fc.constant('remove' as const), port, service }),
    )
    fc.assert(
      fc.property(datagram, (value) => {
        const bytes = (() => {
          try {
            return encodeDatagram(value)
          } catch (error) {
            expect(error).toBeInstanceOf(ProtocolError)
            return undefined
          }
        })()
        if (bytes) expect(decodeDatagram(bytes)).toEqual(expected(value))
      }),
    )
  })

  it('turns random bytes into a ProtocolError, never an exception', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const decoded = decodeDatagram(bytes)
        if (!(decoded instanceof ProtocolError))
          expect(['query', 'add', 'remove']).toContain(decoded.command)
      }),
    )
  })

  it('refuses to encode an info that does not fit in one datagram', () => {
    const info = { blob: 'x'.repeat(Limits.maxDatagram) }
    expect(() => encodeDatagram({ command: 'add', port: 1, service: 's', info })).toThrow(
      expect.objectContaining({ code: ErrorCode.DatagramTooLarge }),
    )
  })
})

describe('decodeFrame', () => {
  it('round-trips calls with any JSON arguments', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0 }),
        fc.string({ minLength: 1 }),
        fc.array(fc.jsonValue({ maxDepth: 4 })),
        (id, name, args) => {
          const message = { _type: 1, _id: id, _command: 'call', name, args }
          const line = encodeFrame(message)
          expect(line.endsWith('\n')).toBe(true)
          expect(decodeFrame(line.slice(0, -1))).toEqual(expected(message))
        },
      ),
    )
  })

  it('turns random text into a ProtocolError, never an exception', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.string({ unit: 'binary' })), (text) => {
        const decoded = decodeFrame(text)
        if (!(decoded instanceof ProtocolError)) expect([1, 2, 3]).toContain(decoded._type)
      }),
    )
  })

  it('removes __proto__ keys so nothing can be polluted', () => {
    const text =
      '{"_type":1,"_id":1,"_command":"call","name":"f","args":[{"__proto__":{"polluted":1},"a":1}]}'
    const decoded = decodeFrame(text)
    expect(decoded).not.toBeInstanceOf(ProtocolError)
    const arg = (decoded as { args: Array<Record<string, unknown>> }).args[0]!
    expect(Object.hasOwn(arg, '__proto__')).toBe(false)
    expect({ ...arg }).toEqual({ a: 1 })
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('keeps the id of an invalid command so it can be answered', () => {
    const decoded = decodeFrame('{"_type":1,"_id":42,"_command":"launch"}')
    expect(decoded).toBeInstanceOf(ProtocolError)
    expect(decoded).toMatchObject({ code: ErrorCode.UnknownCommand, messageId: 42, messageType: 1 })
  })

  it('does not mistake brackets inside strings for nesting', () => {
    const text = JSON.stringify({
      _type: 1,
      _id: 1,
      _command: 'call',
      name: 'f',
      args: ['['.repeat(500)],
    })
    expect(decodeFrame(text)).toMatchObject({ args: ['['.repeat(500)] })
  })

  it('bounds nesting depth without overflowing the stack', () => {
    const deep = `{"_type":1,"_id":1,"_command":"call","name":"f","args":${'['.repeat(100_000)}${']'.repeat(100_000)}}`
    expect(decodeFrame(deep)).toMatchObject({ code: ErrorCode.TooDeep })
  })
})

describe('decodeFrame: fired events', () => {
  const fired = (body: object) =>
    decodeFrame(JSON.stringify({ _type: 3, _command: 'fired', ...body }))

  it('accepts the common shape and names up to 1,024 code points', () => {
    expect(fired({ name: 'tick', args: [{ a: 1 }] })).not.toBeInstanceOf(ProtocolError)
    expect(fired({ name: 'x'.repeat(1024), args: [] })).not.toBeInstanceOf(ProtocolError)
    // 1,024 code points in 2,048 UTF-16 units: beyond the quick test, still valid.
    expect(fired({ name: '😀'.repeat(1024), args: [] })).not.toBeInstanceOf(ProtocolError)
  })

  it('refuses what the schema refuses', () => {
    for (const body of [
      { name: '', args: [] },
      { name: 'x'.repeat(1025), args: [] },
      { name: '😀'.repeat(1025), args: [] },
      { name: 7, args: [] },
      { name: 'tick', args: {} },
      { name: 'tick' },
      { args: [] },
    ]) {
      const decoded = fired(body)
      expect(decoded).toBeInstanceOf(ProtocolError)
      expect((decoded as ProtocolError).code).toBe(ErrorCode.InvalidMessage)
    }
  })
})

describe('decodeFrame of events as services encode them', () => {
  // A frame given as bytes never takes the shortcut for events: what it
  // decodes to is the reference.
  const same = (line: string) => {
    const fast = decodeFrame(line)
    const full = decodeFrame(Buffer.from(line))
    if (full instanceof ProtocolError) {
      expect(fast).toBeInstanceOf(ProtocolError)
      expect((fast as ProtocolError).code).toBe(full.code)
    } else {
      expect(fast).toEqual(full)
      expect(Object.getPrototypeOf(fast)).toBe(Object.prototype)
    }
  }
  const head = '{"_type":3,"_command":"fired","name":'

  it('decodes any event exactly as the full parse does', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 20, unit: 'binary' }),
        fc.array(fc.jsonValue({ maxDepth: 4 }), { maxLength: 4 }),
        (name, args) => {
          same(encodeFrame({ _type: 3, _command: 'fired', name, args }).slice(0, -1))
        },
      ),
      { numRuns: 500 },
    )
  })

  it('decodes any attachment header exactly as the full parse does', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 20, unit: 'binary' }),
        fc.array(fc.jsonValue({ maxDepth: 4 }), { maxLength: 4 }),
        fc.nat(),
        (name, args, size) => {
          same(encodeFrame({ _type: 3, _command: 'fired', name, args, _size: size }).slice(0, -1))
        },
      ),
      { numRuns: 500 },
    )
  })

  it('gives the full parse the last word on anything else', () => {
    const lines = [
      `${head}"tick","args":[1],"x":2}`,
      `${head}"frame","args":[7],"_size":120}`,
      `${head}"frame","args":[7],"_size":0}`,
      `${head}"frame","args":[7],"_size":007}`,
      `${head}"frame","args":[7],"_size":-1}`,
      `${head}"frame","args":[7],"_size":1.5}`,
      `${head}"frame","args":[7],"_size":1e3}`,
      `${head}"frame","args":[7],"_size":}`,
      `${head}"frame","args":[7],"_size":${'9'.repeat(20)}}`,
      `${head}"frame","args":[7],"x":1,"_size":3}`,
      `${head}"frame","args":[7],"_size":3,"_size":4}`,
      `${head}"frame","args":["],\\"_size\\":3}"],"_size":4}`,
      `${head}"frame","args":[7] ,"_size":3}`,
      `${head}"frame","args":{"a":1},"_size":3}`,
      `${head}"tick","args":[1],"args":[2]}`,
      `${head}"tick","args":[1]}}`,
      `${head}"tick","args":[1] }`,
      `${head}"tick","args":{"a":1}}`,
      `${head}"tick","args":[1]`,
      `${head}"","args":[1]}`,
      `${head}"ti\\"ck","args":[1]}`,
      `${head}"ti\\u0063k","args":[1]}`,
      `${head}"ti\tck","args":[1]}`,
      `${head}"${'n'.repeat(1025)}","args":[]}`,
      `${head}"tick","args":[{"__proto__":{"polluted":true}}]}`,
      `${head}"tick","args":[${'['.repeat(70)}${']'.repeat(70)}]}`,
      `${head}"tick","args":[1,]}`,
      `${head}"tick","args":[]}`,
    ]
    for (const line of lines) same(line)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})
