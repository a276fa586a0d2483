import { readdirSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  decodeBridgeMessage,
  decodeFrame,
  ProtocolError,
  type SessionMessage,
} from '../src/index.js'

interface Vector {
  name: string
  message: { name?: unknown; args?: unknown }
  text?: string
  error?: string
}
interface VectorFile {
  kind: 'bridge'
  message: string
  valid: Vector[]
  invalid: Vector[]
}

const dir = new URL('../vectors/bridge/', import.meta.url)
const files = readdirSync(dir).filter((file) => file.endsWith('.json'))

describe('bridge link vectors (§8)', () => {
  it('cover every link message', () => {
    const covered = files.map((file) => `bridge.${file.replace(/\.json$/, '')}`).sort()
    expect(covered).toEqual(
      [
        'bridge.bye',
        'bridge.close',
        'bridge.frame',
        'bridge.hello',
        'bridge.open',
        'bridge.routes',
      ].sort(),
    )
  })

  for (const file of files) {
    const vectors = JSON.parse(readFileSync(new URL(file, dir), 'utf8')) as VectorFile
    describe(file, () => {
      for (const vector of vectors.valid) {
        it(`accepts: ${vector.name}`, () => {
          // Every link message is first a session frame (§8.1).
          const frame = decodeFrame(JSON.stringify(vector.message))
          expect(frame).not.toBeInstanceOf(ProtocolError)
          const decoded = decodeBridgeMessage(frame as SessionMessage & typeof vector.message)
          expect(decoded).not.toBeInstanceOf(ProtocolError)
          if (vector.text === undefined) return
          // The bytes on the link: the header line, then exactly `_size` bytes.
          const bytes = Buffer.from(vector.text)
          const newline = bytes.indexOf(0x0a)
          const header = decodeFrame(bytes.subarray(0, newline)) as { _size?: number }
          expect(header).toEqual(vector.message)
          const circuitFrame = bytes.subarray(newline + 1)
          expect(circuitFrame.length).toBe(header._size)
          // The circuit frame is a session frame, and its own attachment if it has one.
          const inner = circuitFrame.indexOf(0x0a)
          const session = decodeFrame(inner === -1 ? circuitFrame : circuitFrame.subarray(0, inner))
          expect(session).not.toBeInstanceOf(ProtocolError)
          if (inner !== -1)
            expect(circuitFrame.length - inner - 1).toBe((session as { _size?: number })._size)
        })
      }
      for (const vector of vectors.invalid) {
        it(`rejects with ${vector.error}: ${vector.name}`, () => {
          const decoded = decodeBridgeMessage(vector.message)
          expect(decoded).toBeInstanceOf(ProtocolError)
          expect((decoded as ProtocolError).code).toBe(vector.error)
        })
      }
    })
  }

  it('refuses a name that is no link message', () => {
    const decoded = decodeBridgeMessage({ name: 'bridge.nothing', args: [] })
    expect((decoded as ProtocolError).code).toBe('unknown_command')
  })
})
