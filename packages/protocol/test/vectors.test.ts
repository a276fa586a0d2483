import { readdirSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  type CommandName,
  Commands,
  checkResponse,
  decodeDatagram,
  decodeFrame,
  ProtocolError,
  type ResponseMessage,
} from '../src/index.js'

interface Vector {
  name: string
  command?: CommandName
  message?: unknown
  text?: string
  error?: string
}
interface VectorFile {
  kind: 'datagram' | 'frame' | 'response'
  message: string
  valid: Vector[]
  invalid: Vector[]
}

const dir = new URL('../vectors/', import.meta.url)
const files = readdirSync(dir).filter((file) => file.endsWith('.json'))

function decode(kind: VectorFile['kind'], vector: Vector) {
  const text = vector.text ?? JSON.stringify(vector.message)
  if (kind === 'datagram') return decodeDatagram(Buffer.from(text))
  const decoded = decodeFrame(text)
  if (kind !== 'response' || decoded instanceof ProtocolError) return decoded
  // A response is checked against the command it answers; a failed one fits any.
  const response = decoded as ResponseMessage
  if (response._error) return decoded
  return checkResponse(vector.command!, response) ?? decoded
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
