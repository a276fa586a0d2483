import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const cli = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const discoveryPort = 20_000 + ((process.pid + 59) % 20_000)
const loopback = ['--interface', 'lo', '--discovery-port', String(discoveryPort)]

// The test's own DEBUG or AUTOBUS_DEBUG must not leak into the commands.
const quiet: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' }
delete quiet.DEBUG
delete quiet.AUTOBUS_DEBUG

function run(args: readonly string[], env: NodeJS.ProcessEnv) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [cli, ...args],
      { env, timeout: 30_000 },
      (error, stdout, stderr) => {
        resolve({
          code: error ? Number((error as { code?: unknown }).code ?? 1) : 0,
          stdout,
          stderr,
        })
      },
    )
  })
}

describe('logs of the autobus command', () => {
  let example: ChildProcess
  const exampleErr: string[] = []
  beforeAll(async () => {
    example = spawn(process.execPath, [cli, 'example', '--json', '--name', 'logged', ...loopback], {
      env: { ...quiet, AUTOBUS_DEBUG: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    createInterface({ input: example.stderr! }).on('line', (line) => exampleErr.push(line))
    const [ready] = await once(createInterface({ input: example.stdout! }), 'line')
    expect(JSON.parse(ready)).toMatchObject({ ready: true })
  })
  afterAll(async () => {
    const exited = once(example, 'exit')
    example.kill('SIGTERM')
    await exited
  })

  it('AUTOBUS_DEBUG=1 prints autobus: lines on stderr and leaves stdout to the output', async () => {
    const listed = await run(['list', '--json', '--wait', '0.3', ...loopback], {
      ...quiet,
      AUTOBUS_DEBUG: '1',
    })
    expect(listed.code).toBe(0)
    const lines = listed.stderr.split('\n').filter(Boolean)
    expect(lines.length).toBeGreaterThan(0)
    for (const line of lines) expect(line).toMatch(/^autobus:(transport|discovery|rpc|bus) /)
    expect(lines).toContainEqual(expect.stringMatching(/^autobus:bus info serving on port/))
    expect(lines).toContainEqual(
      expect.stringMatching(/^autobus:discovery info appeared \(new\): .*"name":"logged"/),
    )
    // stdout is JSON lines, one per service, and nothing else.
    const services = listed.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line))
    expect(services).toContainEqual(
      expect.objectContaining({ info: expect.objectContaining({ name: 'logged' }) }),
    )
    for (const line of exampleErr) expect(line).toMatch(/^autobus:(transport|discovery|rpc|bus) /)
    expect(exampleErr).toContainEqual(expect.stringMatching(/^autobus:bus info serving on port/))
    // Asked by `info`, the example logs the connection it accepts.
    const info = await run(['info', 'name=logged', '--json', ...loopback], quiet)
    expect(info.code).toBe(0)
    expect(info.stderr).toBe('')
    await expect
      .poll(() =>
        exampleErr.some((line) => /^autobus:transport debug connection accepted/.test(line)),
      )
      .toBe(true)
  })

  it('DEBUG=autobus:* does the same', async () => {
    const listed = await run(['list', '--json', '--wait', '0.3', ...loopback], {
      ...quiet,
      DEBUG: 'express,autobus:*',
    })
    expect(listed.code).toBe(0)
    expect(listed.stderr).toMatch(/^autobus:bus info serving on port/m)
  })

  it('says nothing on stderr by default', async () => {
    const listed = await run(['list', '--json', '--wait', '0.3', ...loopback], quiet)
    expect(listed.code).toBe(0)
    expect(listed.stderr).toBe('')
    expect(listed.stdout).toContain('"logged"')
  })
})
