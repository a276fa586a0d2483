import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'

/** One entry of a vector file (docs/protocol.md §7). */
export interface Vector {
  name: string
  command?: string
  message?: unknown
  text?: string
  error?: string
}

/** One vector file. */
export interface VectorFile {
  file: string
  kind: 'datagram' | 'frame' | 'response'
  message: string
  valid: Vector[]
  invalid: Vector[]
}

/** The directory of the vectors shipped with `@autobus/protocol`. */
export function defaultVectorDirectory(): string {
  const require = createRequire(import.meta.url)
  return join(dirname(require.resolve('@autobus/protocol/package.json')), 'vectors')
}

/** Reads every vector file of a directory. */
export function loadVectors(directory: string = defaultVectorDirectory()): VectorFile[] {
  return readdirSync(directory)
    .filter((file) => file.endsWith('.json'))
    .sort()
    .map((file) => ({
      file,
      ...(JSON.parse(readFileSync(join(directory, file), 'utf8')) as Omit<VectorFile, 'file'>),
    }))
}

/** The bytes a vector stands for: its raw `text`, or its message as JSON. */
export function vectorText(vector: Vector): string {
  return vector.text ?? JSON.stringify(vector.message)
}
