import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { codeBlocks } from './code-blocks.js'

// What a new user does: pack every published package (the README's
// `pnpm pack:all`), install the tarballs with npm into a project of their
// own, and run the README's example there. Packs and installs once.

const root = fileURLToPath(new URL('../../../', import.meta.url))
const published = [
  'protocol',
  'transport',
  'discovery',
  'rpc',
  'proxy',
  'bus',
  'bridge',
  'cli',
  'conformance',
]

interface Ran {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs a program to its end; `timeout` only stops one that hangs. */
function run(
  file: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number },
): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { ...options, timeout: options.timeout ?? 20_000, killSignal: 'SIGKILL' },
      (error, stdout, stderr) => {
        const failed = error as (Error & { code?: number; signal?: NodeJS.Signals }) | null
        resolve({
          code: typeof failed?.code === 'number' ? failed.code : failed ? null : 0,
          signal: failed?.signal ?? null,
          stdout,
          stderr,
        })
      },
    )
  })
}

// npm in the app must not inherit the settings pnpm passes to its scripts.
const env = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !name.toLowerCase().startsWith('npm_')),
)

const readmeExample = codeBlocks('README.md', readFileSync(`${root}README.md`, 'utf8')).filter(
  (block) => block.marker?.kind === 'run',
)

describe('installing the packed packages into a new project', () => {
  const work = mkdtempSync(join(tmpdir(), 'autobus-install-'))
  const app = join(work, 'app')
  let tarballs: string[] = []

  beforeAll(async () => {
    const missing = published.filter((name) => !existsSync(`${root}packages/${name}/dist/index.js`))
    if (missing.length > 0)
      throw new Error(`build first (pnpm build): no dist/ in ${missing.join(', ')}`)
    // Packs what is built: `pnpm test` has just built it, and building here
    // would rewrite dist/ under other suites that run it.
    const packed = await run(
      process.execPath,
      [`${root}scripts/pack-all.mjs`, join(work, 'packs'), '--no-build'],
      { cwd: root, timeout: 60_000 },
    )
    expect(packed.stderr).not.toMatch(/ERR|error/i)
    expect(packed.code).toBe(0)
    tarballs = packed.stdout.trim().split('\n')

    // No "type": "module": the README says the file must be .mjs then.
    mkdirSync(app)
    writeFileSync(join(app, 'package.json'), '{ "name": "app", "private": true }\n')
    const installed = await run(
      'npm',
      ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs],
      { cwd: app, env, timeout: 120_000 },
    )
    expect(installed.stderr.replace(/^npm warn Unknown user config.*\n/gm, '')).toBe('')
    expect(installed.code).toBe(0)
  }, 180_000)

  afterAll(() => rmSync(work, { recursive: true, force: true }))

  it('packs every published package with its licence, and none of the private ones', () => {
    const names = tarballs.map((path) => /\/autobus-(\w+)-[^/]*\.tgz$/.exec(path)?.[1])
    expect(names.sort()).toEqual([...published].sort())
    for (const name of published) {
      const manifest = JSON.parse(
        readFileSync(join(app, 'node_modules/@autobus', name, 'package.json'), 'utf8'),
      )
      expect(JSON.stringify(manifest.dependencies ?? {})).not.toContain('workspace:')
      expect(existsSync(join(app, 'node_modules/@autobus', name, 'LICENSE'))).toBe(true)
    }
  })

  it("runs the README's example, which prints its line and exits by itself", async () => {
    expect(readmeExample).toHaveLength(1)
    const [example] = readmeExample
    const file = example!.marker?.kind === 'run' ? example!.marker.as : ''
    writeFileSync(join(app, file), example!.code)
    // A discovery port of its own, for a Bus that reads it, so no other
    // greeter on this machine can answer.
    const port = String(20_000 + ((process.pid + 11) % 20_000))
    const ran = await run(process.execPath, [file], {
      cwd: app,
      env: { ...env, AUTOBUS_DISCOVERY_PORT: port },
      timeout: 15_000,
    })
    expect(ran.signal).toBe(null) // not killed: it ended on its own
    expect(ran).toMatchObject({ code: 0, stdout: 'Hello, world!\n', stderr: '' })
  })

  it('loads with require() from CommonJS, and with import() where require() cannot', async () => {
    const script = [
      'async function main() {',
      "  const { createBus } = await import('@autobus/bus')",
      '  console.log(typeof createBus)',
      '}',
      'try {',
      "  console.log(typeof require('@autobus/bus').createBus)",
      '} catch (error) {',
      '  console.log(error.code)',
      '}',
      'main()',
    ].join('\n')
    writeFileSync(join(app, 'load.cjs'), script)
    const [major, minor] = process.versions.node.split('.').map(Number) as [number, number]
    const requireWorks = major > 20 || (major === 20 && minor >= 19)
    const loaded = await run(process.execPath, ['load.cjs'], { cwd: app, env })
    expect(loaded.stdout).toBe(
      requireWorks ? 'function\nfunction\n' : 'ERR_REQUIRE_ESM\nfunction\n',
    )
    if (!requireWorks) return
    // What an earlier Node.js 20 does, as the README says.
    const before = await run(process.execPath, ['--no-experimental-require-module', 'load.cjs'], {
      cwd: app,
      env,
    })
    expect(before.stdout).toBe('ERR_REQUIRE_ESM\nfunction\n')
  })

  it('installs the autobus command, whose --json output is JSON lines only', async () => {
    const listed = await run(
      join(app, 'node_modules/.bin/autobus'),
      ['list', '--json', '--wait', '0.2', '--interface', 'lo'],
      { cwd: app, env },
    )
    expect(listed.code).toBe(0)
    for (const line of listed.stdout.split('\n').filter(Boolean))
      expect(() => JSON.parse(line)).not.toThrow()
  })
})
