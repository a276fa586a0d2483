import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { parseKey } from '@autobus/bus'
import { describe, expect, it } from 'vitest'

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const run = (args: string[]) =>
  promisify(execFile)(process.execPath, [main, ...args], { env: { ...process.env, NO_COLOR: '1' } })

describe('autobus keygen', () => {
  it('prints one new key a bus can read', async () => {
    const { stdout } = await run(['keygen'])
    const lines = stdout.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(parseKey(lines[0]!).id).toMatch(/^[0-9a-f]{8}$/)
    const again = await run(['keygen'])
    expect(again.stdout).not.toBe(stdout)
  })

  it('takes an id, and refuses a bad one with exit code 2', async () => {
    const { stdout } = await run(['keygen', '--id', 'office-1'])
    expect(parseKey(stdout).id).toBe('office-1')
    await expect(run(['keygen', '--id', 'no way'])).rejects.toMatchObject({ code: 2 })
  })
})
