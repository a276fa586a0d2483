import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { decodeFrame, decodeNatsPresence, decodeNatsSegment, ProtocolError } from '../src/index.js'

interface Vector {
  name: string
  payload: string
  header?: unknown
  body?: string
  joined?: string
  error?: string
}
interface VectorFile {
  kind: 'bridge-nats'
  message: 'presence' | 'segment'
  valid: Vector[]
  invalid: Vector[]
}

const dir = new URL('../vectors/bridge-nats/', import.meta.url)
const read = (file: string) => JSON.parse(readFileSync(new URL(file, dir), 'utf8')) as VectorFile

describe('links over NATS (§8.7)', () => {
  const presence = read('presence.json')
  for (const vector of presence.valid)
    it(`accepts the presence: ${vector.name}`, () => {
      expect(decodeNatsPresence(Buffer.from(vector.payload))).not.toBeInstanceOf(ProtocolError)
    })
  for (const vector of presence.invalid)
    it(`rejects the presence: ${vector.name}`, () => {
      const decoded = decodeNatsPresence(Buffer.from(vector.payload))
      expect((decoded as ProtocolError).code).toBe(vector.error)
    })

  const segment = read('segment.json')
  let parts: Buffer[] = []
  for (const vector of segment.valid)
    it(`accepts the segment: ${vector.name}`, () => {
      const decoded = decodeNatsSegment(Buffer.from(vector.payload))
      expect(decoded).not.toBeInstanceOf(ProtocolError)
      const { header, body } = decoded as Exclude<typeof decoded, ProtocolError>
      expect(header).toEqual(vector.header)
      expect(body?.toString()).toBe(vector.body)
      if (body && header.more) parts.push(body)
      if (vector.joined !== undefined) {
        // The bodies of a message cut in segments, joined, are the link message.
        const whole = Buffer.concat([...parts, body!])
        parts = []
        expect(whole.toString()).toBe(vector.joined)
        expect(decodeFrame(whole)).not.toBeInstanceOf(ProtocolError)
      }
    })
  for (const vector of segment.invalid)
    it(`rejects the segment: ${vector.name}`, () => {
      const decoded = decodeNatsSegment(Buffer.from(vector.payload))
      expect((decoded as ProtocolError).code).toBe(vector.error)
    })
})
