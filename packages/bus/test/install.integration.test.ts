import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
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
  'dashboard',
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

  it('types a strict program by a contract from `autobus types`, which runs against `autobus example`', async () => {
    // The example service, reached by address: no discovery timing involved.
    const example = spawn(
      join(app, 'node_modules/.bin/autobus'),
      ['example', '--json', '--discovery-off'],
      { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    try {
      const [first] = (await once(createInterface({ input: example.stdout! }), 'line')) as [string]
      const ready = JSON.parse(first) as { port: number; service: string }
      const target = `127.0.0.1:${ready.port}/${ready.service}`

      const typed = await run(join(app, 'node_modules/.bin/autobus'), ['types', target], {
        cwd: app,
        env,
      })
      expect(typed).toMatchObject({ code: 0, stderr: '' })
      writeFileSync(join(app, 'example-contract.mts'), typed.stdout)
      writeFileSync(join(app, 'program.mts'), typedProgram)
      // The same program without the markers: each of those lines, and only
      // those, must fail.
      writeFileSync(
        join(app, 'unmarked.mts'),
        typedProgram.replaceAll('@ts-expect-error', 'expected to fail:'),
      )
      writeFileSync(
        join(app, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            exactOptionalPropertyTypes: true,
            noUncheckedIndexedAccess: true,
            module: 'nodenext',
            moduleResolution: 'nodenext',
            target: 'es2022',
            lib: ['es2023'],
            types: ['node'],
            typeRoots: [join(root, 'node_modules/@types')],
            // The packages' own declarations are checked by their build.
            skipLibCheck: true,
            outDir: 'out',
          },
          files: ['program.mts', 'unmarked.mts'],
        }),
      )
      // One compiler run for both; it emits despite the unmarked errors.
      const tsc = join(root, 'node_modules/typescript/bin/tsc')
      const compiled = await run(process.execPath, [tsc, '-p', '.'], { cwd: app, timeout: 60_000 })
      const errors = [...compiled.stdout.matchAll(/^(\w+)\.mts\((\d+),\d+\): error/gm)]
      // The program compiles as it is: every `@ts-expect-error` line is an
      // error there (an unused one would itself be an error).
      expect(errors.filter((m) => m[1] !== 'unmarked').map((m) => m[0])).toEqual([])
      const expected = typedProgram
        .split('\n')
        .flatMap((text, i) => (text.includes('@ts-expect-error') ? [i + 2] : []))
      expect(expected.length).toBeGreaterThanOrEqual(12)
      const failing = new Set(errors.map((m) => Number(m[2])))
      expect([...failing].sort((a, b) => a - b)).toEqual(expected)

      const ran = await run(process.execPath, ['out/program.mjs', target], { cwd: app, env })
      expect(ran).toMatchObject({ code: 0, stderr: '' })
      expect(JSON.parse(ran.stdout)).toEqual({
        sum: 3,
        tick: 1,
        ticks: [1],
        counter: 1,
        counts: [0, 1],
        echoed: { a: [1, 'x'] },
      })
    } finally {
      example.kill('SIGINT')
    }
  }, 120_000)
})

/**
 * A strict program a user writes against the example service, typed by the
 * contract `autobus types` printed. Each `@ts-expect-error` marks a line
 * the compiler must refuse.
 */
const typedProgram = `import * as autobus from '@autobus/bus'
import {
  type Connection,
  createBus,
  defineContract,
  type MultiServiceProxy,
  type SingleServiceProxy,
  Type,
} from '@autobus/bus'
import * as discovery from '@autobus/discovery'
import * as proxies from '@autobus/proxy'
import * as rpc from '@autobus/rpc'
import example from './example-contract.mjs'

const [address] = process.argv.slice(2)
const [, host, port, service] = /^(.+):(\\d+)\\/(.+)$/.exec(address ?? '') ?? []
const bus = await createBus({ discovery: false })
try {
  const connection = await bus.connect(
    { host: host ?? '', port: Number(port), service: service ?? '' },
    { contract: example },
  )
  const ticks: number[] = []
  const counts: (number | null)[] = []
  await connection.listen('ticked', (count) => {
    ticks.push(count)
  })
  await connection.watch('counter', (value) => {
    counts.push(value)
  })
  const sum: number = await connection.call('add', [1, 2])
  const tick: number = await connection.call('tick')
  const counter: number = await connection.call('increment')
  const echoed: unknown = await connection.call('echo', [{ a: [1, 'x'] }])
  // The service sends its event and change before the answer to the call.
  console.log(JSON.stringify({ sum, tick, ticks, counter, counts, echoed }))
} finally {
  await bus.close()
}

export function wrong(
  connection: Connection<typeof example>,
  proxy: SingleServiceProxy<typeof example>,
  all: MultiServiceProxy<typeof example>,
): void {
  // @ts-expect-error a string where a number goes
  void connection.call('add', [1, 'two'])
  // @ts-expect-error one argument short
  void connection.call('add', [1])
  // @ts-expect-error one argument too many
  void connection.call('add', [1, 2, 3])
  // @ts-expect-error a name the contract does not declare
  void connection.call('subtract', [1, 2])
  // @ts-expect-error the result is a number
  const text: Promise<string> = connection.call('add', [1, 2])
  // @ts-expect-error the event's argument is a number
  void connection.listen('ticked', (count: string) => count)
  // @ts-expect-error no such event
  void connection.listen('tocked', () => {})
  // @ts-expect-error the object's value is a number (or null)
  void connection.watch('counter', (value: string) => value)
  // @ts-expect-error no such channel
  void connection.openChannel('chat')
  // @ts-expect-error a string where a number goes, through a proxy
  void proxy.call('add', ['1', 2])
  // @ts-expect-error the result is a number, through a proxy
  const later: Promise<string> = proxy.call('tick')
  // @ts-expect-error no such event, on every member of a multi-service proxy
  void all.listen('tocked', () => {})
  void all.call('add', [1, 2]).then((outcomes) => {
    for (const outcome of outcomes.values())
      // @ts-expect-error each outcome holds a number
      if (outcome.ok) outcome.value.toUpperCase()
  })
  void text
  void later
}

// Classes stay private: each thing comes from its factory, and only errors
// are values to check with instanceof.
export function constructed(thing: unknown): void {
  // @ts-expect-error RpcServer is a type: serve() makes one
  void new rpc.RpcServer(undefined)
  // @ts-expect-error Connection is a type: connectService() or bus.connect() makes one
  void new autobus.Connection()
  // @ts-expect-error Service is a type: createService() makes one
  void new rpc.Service({})
  // @ts-expect-error Channel is a type: openChannel() makes one
  void new rpc.Channel()
  // @ts-expect-error ByteStream is a type: openStream() makes one
  void new autobus.ByteStream()
  // @ts-expect-error AccessControl is a type: createAccessControl() makes one
  void new autobus.AccessControl({ default: 'allow', rules: [] })
  // @ts-expect-error SingleServiceProxy is a type: createSingleServiceProxy() makes one
  void new proxies.SingleServiceProxy({})
  // @ts-expect-error MultiServiceProxy is a type: bus.multiServiceProxy() makes one
  void new autobus.MultiServiceProxy({})
  // @ts-expect-error nothing to check instanceof against
  void (thing instanceof autobus.Connection)
  // @ts-expect-error helpers are not exported
  void discovery.serviceChanges
  void (thing instanceof autobus.RemoteError)
}

const chat = defineContract({
  channels: {
    room: { message: Type.Object({ text: Type.String() }), reply: Type.String() },
  },
})

// A channel sends and receives the contract's types, at both ends.
export async function chatting(
  connection: Connection<typeof chat>,
  proxy: SingleServiceProxy<typeof chat>,
): Promise<void> {
  const room = await connection.openChannel('room')
  room.send({ text: 'hello' })
  // @ts-expect-error a client sends { text: string }
  room.send('hello')
  room.on('message', (reply) => console.log(reply.toUpperCase()))
  // @ts-expect-error replies are strings
  room.on('message', (reply: number) => reply)
  for await (const reply of room) {
    // @ts-expect-error replies are strings, iterated too
    const length: number = reply
    void length
  }
  const lobby = await proxy.openChannel('room')
  // @ts-expect-error a client sends { text: string }, through a proxy too
  lobby.send({ text: 1 })
  const bus = await createBus({ discovery: false })
  bus.createService(chat, {
    channels: {
      room: (channel) => {
        channel.on('message', (message) => channel.send(message.text))
        // @ts-expect-error the service sends strings
        channel.send({ text: 'hello' })
      },
    },
  })
}
`
