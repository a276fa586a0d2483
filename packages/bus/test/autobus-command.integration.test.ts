import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// The README's way to run `autobus` in this repository, `pnpm -s autobus …`,
// and `node scripts/autobus.mjs …`: stdout carries the command's output and
// nothing else, so `--json` can be piped into a parser.

const root = fileURLToPath(new URL('../../../', import.meta.url))
const cli = `${root}packages/cli/dist/main.js`

// Under `pnpm test` this is pnpm itself; otherwise the version the
// repository names, through npx.
const execpath = process.env.npm_execpath
const { packageManager } = JSON.parse(readFileSync(`${root}package.json`, 'utf8'))
const pnpm: [string, ...string[]] = execpath?.includes('pnpm')
  ? [process.execPath, execpath]
  : ['npx', '--yes', packageManager]

const discoveryPort = 20_000 + ((process.pid + 13) % 20_000)
const loopback = ['--interface', 'lo', '--discovery-port', String(discoveryPort)]

function run(file: string, args: readonly string[]) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(file, args, { cwd: root, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr })
    })
  })
}

function jsonLines(stdout: string): unknown[] {
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line))
}

describe('running autobus from the repository', () => {
  let example: ChildProcess
  beforeAll(async () => {
    example = spawn(process.execPath, [cli, 'example', '--json', '--name', 'piped', ...loopback], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const [ready] = await once(createInterface({ input: example.stdout! }), 'line')
    expect(JSON.parse(ready)).toMatchObject({ ready: true })
  })
  afterAll(async () => {
    const exited = once(example, 'exit')
    example.kill('SIGTERM')
    await exited
  })

  it('pnpm -s autobus list --json prints JSON lines and nothing else', async () => {
    const [file, ...args] = pnpm
    const listed = await run(file, [
      ...args,
      '-s',
      'autobus',
      'list',
      '--json',
      '--wait',
      '1',
      ...loopback,
    ])
    expect(listed.code).toBe(0)
    const services = jsonLines(listed.stdout)
    expect(services).toContainEqual(
      expect.objectContaining({ info: expect.objectContaining({ name: 'piped' }) }),
    )
  })

  it('node scripts/autobus.mjs list --json --wait 0.2 prints JSON lines or nothing', async () => {
    const listed = await run(process.execPath, [
      `${root}scripts/autobus.mjs`,
      'list',
      '--json',
      '--wait',
      '0.2',
      ...loopback,
    ])
    expect(listed.code).toBe(0)
    expect(() => jsonLines(listed.stdout)).not.toThrow()
  })
})
