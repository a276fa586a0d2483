import { readdirSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { Commands, decodeDatagram, decodeFrame, ProtocolError } from '../src/index.js'

interface Vector {
  name: string
  message?: unknown
  text?: string
  error?: string
}
interface VectorFile {
  kind: 'datagram' | 'frame'
  message: string
  valid: Vector[]
  invalid: Vector[]
}

const dir = new URL('../vectors/', import.meta.url)
const files = readdirSync(dir).filter((file) => file.endsWith('.json'))

function decode(kind: VectorFile['kind'], vector: Vector) {
  const text = vector.text ?? JSON.stringify(vector.message)
  return kind === 'datagram' ? decodeDatagram(Buffer.from(text)) : decodeFrame(text)
}

describe('conformance vectors', () => {
  it('cover every session command and every datagram', () => {
    const covered = new Set(files.map((file) => file.replace(/\.json$/, '')))
    for (const name of [...Object.keys(Commands), 'query', 'add', 'remove', 'envelope']) {
      expect(covered, name).toContain(name)
    }
  })

  for (const file of files) {
    const vectors = JSON.parse(readFileSync(new URL(file, dir), 'utf8')) as VectorFile
    describe(file, () => {
      for (const vector of vectors.valid) {
        it(`accepts: ${vector.name}`, () => {
          const decoded = decode(vectors.kind, vector)
          expect(decoded).not.toBeInstanceOf(ProtocolError)
        })
      }
      for (const vector of vectors.invalid) {
        it(`rejects with ${vector.error}: ${vector.name}`, () => {
          const decoded = decode(vectors.kind, vector)
          expect(decoded).toBeInstanceOf(ProtocolError)
          expect((decoded as ProtocolError).code).toBe(vector.error)
        })
      }
    })
  }
})
