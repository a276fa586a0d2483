import { createHmac, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  ErrorCode,
  errorFromWire,
  ForbiddenError,
  generateKey,
  isSealed,
  KeyRing,
  parseKey,
  parseKeys,
  readSealed,
  sealDatagram,
  verifySealed,
} from '../src/index.js'

const vectors = JSON.parse(
  readFileSync(new URL('../vectors/security/sealed.json', import.meta.url), 'utf8'),
) as {
  key: string
  discoveryKey: string
  sessionKey: string
  valid: Array<{ timestamp: number; nonce: string; payload: string; tag: string; sealed: string }>
  invalid: Array<{ name: string; sealed: string; reason: string }>
}

describe('bus keys', () => {
  it('derive the keys of the vectors', () => {
    const key = parseKey(vectors.key)
    expect(key.id).toBe('test')
    expect(key.discoveryKey.toString('hex')).toBe(vectors.discoveryKey)
    expect(key.sessionKey.toString('hex')).toBe(vectors.sessionKey)
    expect(key.text).toBe(vectors.key)
  })

  it('generate keys that read back, with a given or random id', () => {
    const key = generateKey()
    expect(key.id).toMatch(/^[0-9a-f]{8}$/)
    expect(parseKey(key.text).discoveryKey).toEqual(key.discoveryKey)
    expect(generateKey('office').id).toBe('office')
  })

  it('refuse malformed keys with a clear error', () => {
    expect(() => parseKey('hello')).toThrow(/autobus-key-1/)
    expect(() => parseKey('autobus-key-1:way-too-long-id:AAAA')).toThrow(/key id/)
    expect(() => parseKey('autobus-key-1:a:AAAA')).toThrow(/32 bytes/)
    expect(() => generateKey('no spaces')).toThrow(/key id/)
  })

  it('read several keys from a list or a file', () => {
    const [a, b] = [generateKey('a'), generateKey('b')]
    expect(parseKeys(`${a.text},${b.text}`).map((key) => key.id)).toEqual(['a', 'b'])
    expect(parseKeys(`# keys\n${a.text}\n\n${b.text}\n`).map((key) => key.id)).toEqual(['a', 'b'])
  })
})

describe('key ring', () => {
  it('installs, uses and removes keys; the current one stays', () => {
    const [a, b] = [generateKey('a'), generateKey('b')]
    const ring = new KeyRing([a])
    expect(ring.current.id).toBe('a')
    ring.install(b.text)
    expect(ring.ids).toEqual(['a', 'b'])
    expect(() => ring.remove('a')).toThrow(/in use/)
    ring.use('b')
    expect(ring.remove('a')).toBe(true)
    expect(ring.ids).toEqual(['b'])
    expect(ring.get('a')).toBeUndefined()
    expect(() => ring.use('a')).toThrow(/not installed/)
    expect(() => new KeyRing([])).toThrow(/at least one/)
  })
})

describe('sealed datagrams', () => {
  const key = parseKey(vectors.key)

  it('match the vector byte for byte', () => {
    for (const vector of vectors.valid) {
      const sealed = sealDatagram(
        Buffer.from(vector.payload),
        key,
        vector.timestamp,
        Buffer.from(vector.nonce, 'hex'),
      )
      expect(sealed.toString('hex')).toBe(vector.sealed)
      const parts = readSealed(sealed)!
      expect(parts.keyId).toBe('test')
      expect(parts.timestamp).toBe(vector.timestamp)
      expect(parts.tag.toString('hex')).toBe(vector.tag)
      expect(parts.payload.toString()).toBe(vector.payload)
      expect(verifySealed(parts, key)).toBe(true)
    }
  })

  it('add at most 64 bytes', () => {
    const longest = generateKey('abcdefghijkl')
    const payload = Buffer.from('{"command":"query"}')
    expect(sealDatagram(payload, longest, Date.now()).byteLength - payload.byteLength).toBe(64)
  })

  it('carry the HMAC-SHA256 tag of RFC 2104 for every size, a datagram of 8 KiB included', () => {
    const key = generateKey('k1')
    for (const size of [0, 1, 63, 64, 200, 1_000, 1_100, 8_192, 300]) {
      const payload = randomBytes(size)
      const sealed = sealDatagram(payload, key, 1_700_000_000_123)
      const parts = readSealed(sealed)!
      const expected = createHmac('sha256', key.discoveryKey)
        .update(parts.header)
        .update(payload)
        .digest()
      expect(parts.tag.equals(expected)).toBe(true)
      expect(parts.timestamp).toBe(1_700_000_000_123)
      expect(parts.payload.equals(payload)).toBe(true)
      expect(verifySealed(parts, key)).toBe(true)
      if (size === 0) continue
      const at = sealed.byteLength - 1 - (size >> 1)
      sealed[at] = sealed[at]! ^ 1
      expect(verifySealed(readSealed(sealed)!, key)).toBe(false)
    }
  })

  for (const vector of vectors.invalid) {
    it(`find the fault: ${vector.name}`, () => {
      const bytes = Buffer.from(vector.sealed, 'hex')
      const parts = readSealed(bytes)
      const reason = !isSealed(bytes)
        ? 'unsigned'
        : !parts
          ? 'malformed'
          : parts.keyId !== key.id
            ? 'unknownKey'
            : verifySealed(parts, key)
              ? 'ok'
              : 'badTag'
      expect(reason).toBe(vector.reason)
    })
  }
})

describe('forbidden', () => {
  it('maps back to its class', () => {
    const error = errorFromWire({ text: 'no', code: ErrorCode.Forbidden })
    expect(error).toBeInstanceOf(ForbiddenError)
    expect(error.code).toBe('forbidden')
  })
})
