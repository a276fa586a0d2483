import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { createInterface, type Interface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { runToExit } from '@autobus/testkit'
import { afterEach, describe, expect, it } from 'vitest'

// The CLI runs as a user runs it: the built binary, in its own process, on a
// discovery port and interface of this suite's own.
const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const env = {
  ...process.env,
  AUTOBUS_DISCOVERY_PORT: String(20_000 + ((process.pid + 13) % 20_000)),
  AUTOBUS_INTERFACES: 'lo',
  NO_COLOR: '1',
}
const running = new Set<ChildProcess>()
afterEach(() => {
  for (const child of running) child.kill('SIGKILL')
  running.clear()
})

interface Started {
  child: ChildProcess
  lines: Interface
  /** Lines read and not yet taken by `next`. */
  queued: string[]
  next(): Promise<string>
}

function start(args: string[]): Started {
  const child = spawn(process.execPath, [main, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] })
  running.add(child)
  child.once('exit', () => running.delete(child))
  const lines = createInterface({ input: child.stdout! })
  const queue: string[] = []
  const waiters: Array<(line: string) => void> = []
  lines.on('line', (line) => {
    const waiter = waiters.shift()
    if (waiter) waiter(line)
    else queue.push(line)
  })
  return {
    child,
    lines,
    queued: queue,
    next: () =>
      queue.length > 0
        ? Promise.resolve(queue.shift()!)
        : new Promise((resolve) => waiters.push(resolve)),
  }
}

/** Runs the CLI to its end; stdin gets `input`, then ends. */
async function run(
  args: string[],
  input = '',
  environment: NodeJS.ProcessEnv = env,
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  return runToExit(process.execPath, [main, ...args], { env: environment, input }).exited
}

async function example(name: string) {
  const started = start(['example', '--json', '--name', name])
  const ready = JSON.parse(await started.next()) as {
    ready: boolean
    port: number
    service: string
  }
  expect(ready).toMatchObject({
    ready: true,
    port: expect.any(Number),
    service: expect.any(String),
  })
  return { ...started, ready }
}

describe('autobus CLI', () => {
  it('lists, describes and calls the example service', async () => {
    const a = await example('a')
    const list = await run(['list', '--json', '--wait', '0.5'])
    expect(list.code).toBe(0)
    const entries = list.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
    expect(entries).toContainEqual(
      expect.objectContaining({
        port: a.ready.port,
        service: a.ready.service,
        info: expect.objectContaining({ type: 'autobus.example', name: 'a' }),
      }),
    )
    const table = await run(['list', '--filter', 'name=a', '--wait', '0.5'])
    expect(table.stdout).toContain(a.ready.service)
    expect(table.stdout).toContain('1 service(s)')

    expect(await run(['call', 'type=autobus.example', 'add', '1', '2'])).toMatchObject({
      code: 0,
      stdout: '3\n',
    })
    expect(await run(['call', 'type=autobus.example,name=a', 'echo', 'hello world'])).toMatchObject(
      { code: 0, stdout: '"hello world"\n' },
    )
    const direct = `127.0.0.1:${a.ready.port}/${a.ready.service}`
    expect(await run(['call', direct, 'echo', '{"x":[1,2]}'])).toMatchObject({
      code: 0,
      stdout: '{"x":[1,2]}\n',
    })
    const failed = await run(['call', direct, 'fail', 'it broke'])
    expect(failed).toMatchObject({ code: 1, stdout: '' })
    expect(failed.stderr).toContain('it broke')
    expect(await run(['call', direct, 'echo', 'a', 'b'])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'error: function "echo" takes 1 argument, got 2\n',
    })
    // No answer in time is "no answer", exit code 3, as in docs/cli.md.
    const late = await run(['call', direct, 'sleep', '5000', '--timeout', '0.2'])
    expect(late).toMatchObject({ code: 3, stdout: '' })
    expect(late.stderr).toMatch(/^error: no response to "call" within \d+ ms; it may have run\n$/)
    const info = await run(['info', direct])
    expect(info.stdout).toContain('add(number, number) -> number')
    expect(info.stdout).toContain('Channels')
    const json = JSON.parse((await run(['info', direct, '--json'])).stdout)
    expect(Object.keys(json.functions)).toEqual([
      'echo',
      'add',
      'fail',
      'sleep',
      'tick',
      'increment',
    ])
  })

  it('fans a call out with --multiple', async () => {
    const a = await example('a')
    const b = await example('b')
    const result = await run([
      'call',
      'type=autobus.example',
      'echo',
      'hi',
      '--multiple',
      '--wait',
      '1',
    ])
    expect(result.code).toBe(0)
    expect(JSON.parse(result.stdout)).toEqual({
      [a.ready.service]: { result: 'hi' },
      [b.ready.service]: { result: 'hi' },
    })
  })

  it('listens to events and talks on a channel', async () => {
    const a = await example('a')
    const direct = `127.0.0.1:${a.ready.port}/${a.ready.service}`
    const listener = start(['listen', direct, 'ticked'])
    await new Promise((resolve) => setTimeout(resolve, 500))
    await run(['call', direct, 'tick'])
    expect(await listener.next()).toBe('[1]')
    listener.child.kill('SIGINT')
    expect((await once(listener.child, 'exit'))[0]).toBe(0)

    const channel = await run(['channel', direct, 'echo'], '{"a":1}\nplain text\n')
    expect(channel.code).toBe(0)
    expect(channel.stdout).toBe('{"a":1}\n"plain text"\n')
  })

  it('keeps watching through a filter while the service restarts', async () => {
    const first = await example('w')
    const watcher = start(['watch', 'name=w', 'counter'])
    expect(await watcher.next()).toBe('0')
    await run(['call', 'name=w', 'increment'])
    expect(await watcher.next()).toBe('1')
    first.child.kill('SIGTERM')
    expect((await once(first.child, 'exit'))[0]).toBe(0)
    expect(await watcher.next()).toBe('null')
    await example('w')
    expect(await watcher.next()).toBe('0')
    const closed = once(watcher.lines, 'close')
    watcher.child.kill('SIGINT')
    expect((await once(watcher.child, 'exit'))[0]).toBe(0)
    // Ctrl-C ends the output: no `null` from closing the proxy after it.
    await closed
    expect(watcher.queued).toEqual([])
  })

  it('rebinds a filter target to another instance when its service is killed with -9', async () => {
    const first = await example('k')
    const watcher = start(['watch', 'name=k', 'counter'])
    expect(await watcher.next()).toBe('0')
    await run(['call', `127.0.0.1:${first.ready.port}/${first.ready.service}`, 'increment'])
    expect(await watcher.next()).toBe('1')
    const second = await example('k')
    first.child.kill('SIGKILL')
    expect(await watcher.next()).toBe('null')
    expect(await watcher.next()).toBe('0')
    await run(['call', `127.0.0.1:${second.ready.port}/${second.ready.service}`, 'increment'])
    expect(await watcher.next()).toBe('1')
    watcher.child.kill('SIGINT')
    expect((await once(watcher.child, 'exit'))[0]).toBe(0)
  })

  it('follows services as they come and go', async () => {
    // Following is what `services` does; `--follow` is accepted and the same.
    const followers = [start(['services', '--json']), start(['services', '--follow', '--json'])]
    await new Promise((resolve) => setTimeout(resolve, 300))
    const a = await example('f')
    for (const follower of followers) {
      const up = JSON.parse(await follower.next())
      expect(up).toMatchObject({
        event: 'up',
        service: a.ready.service,
        port: a.ready.port,
        at: expect.any(Number),
      })
    }
    a.child.kill('SIGTERM')
    for (const follower of followers) {
      const down = JSON.parse(await follower.next())
      expect(down).toMatchObject({ event: 'down', service: a.ready.service })
      follower.child.kill('SIGINT')
      expect((await once(follower.child, 'exit'))[0]).toBe(0)
    }
  })

  it('reports mistakes with one line and documented exit codes', async () => {
    expect((await run(['--help'])).code).toBe(0)
    expect((await run(['call', '--help'])).stdout).toContain('--multiple')
    const unknown = await run(['frobnicate'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain("unknown command 'frobnicate'")
    expect((await run(['call', '127.0.0.1:80', 'f'])).code).toBe(2)
    expect((await run(['call', 'a=1,,', 'f', '--wait', '0.3'])).code).toBe(3)
    expect((await run(['list', '--wait', 'soon'])).code).toBe(2)
    const setting = await run(['list'], undefined, { ...env, AUTOBUS_DISCOVERY_PORT: 'soon' })
    expect(setting).toEqual({
      code: 2,
      stdout: '',
      stderr: 'error: AUTOBUS_DISCOVERY_PORT must be a port number (1-65535), not "soon"\n',
    })
    const missing = await run(['call', 'type=no.such.thing', 'f', '--wait', '0.3'])
    expect(missing.code).toBe(3)
    expect(missing.stderr.trim().split('\n')).toHaveLength(1)
    expect((await run(['call', '127.0.0.1:1/none', 'f'])).code).toBe(3)
    const none = await run(['call', 'type=no.such.thing', 'f', '--multiple', '--wait', '0.3'])
    expect(none).toEqual({
      code: 3,
      stdout: '',
      stderr: 'error: no service matching {"type":"no.such.thing"} within 300 ms\n',
    })
  })

  it('prints its version', async () => {
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
    for (const flag of ['--version', '-V'])
      expect(await run([flag])).toEqual({ code: 0, stdout: `${manifest.version}\n`, stderr: '' })
  })

  it('takes a bare key as a filter term, in a target and with --filter', async () => {
    const a = await example('bare')
    // Every service announces "hostname"; only the example given --name has "name".
    const info = await run(['info', 'hostname', '--json'])
    expect(info.code).toBe(0)
    expect(JSON.parse(info.stdout)).toMatchObject({ service: a.ready.service })
    expect(await run(['call', 'name,!nothing', 'echo', '1'])).toMatchObject({
      code: 0,
      stdout: '1\n',
    })
    const listed = (filter: string) =>
      run(['list', '--json', '--wait', '0.5', '--filter', filter]).then(({ stdout }) =>
        stdout
          .split('\n')
          .filter(Boolean)
          .map((line) => JSON.parse(line).service),
      )
    expect(await listed('name')).toEqual([a.ready.service])
    expect(await listed('!name')).toEqual([])
    // Whatever is typed after the key, a mistyped address is still a mistake.
    expect((await run(['info', 'localhost/x'])).code).toBe(2)
  })
})

describe('autobus output', () => {
  const plain = { ...env } as NodeJS.ProcessEnv
  delete plain.NO_COLOR
  delete plain.FORCE_COLOR
  const list = (environment: NodeJS.ProcessEnv) =>
    run(['list', '--wait', '0.2'], undefined, environment)

  it('carries no escape code in a pipe or with NO_COLOR, and colours only when asked', async () => {
    const piped = await list(plain)
    expect(piped.stdout).toContain('│ host')
    expect(piped.stdout).not.toContain('\x1b')
    const noColour = await list({ ...plain, NO_COLOR: '1', FORCE_COLOR: '1' })
    expect(noColour.stdout).not.toContain('\x1b')
    expect((await list({ ...plain, FORCE_COLOR: '0' })).stdout).not.toContain('\x1b')
    const forced = await list({ ...plain, FORCE_COLOR: '1' })
    expect(forced.stdout).toContain('\x1b[1mhost')
    // A header in red reads like an error.
    expect(forced.stdout).not.toContain('\x1b[31m')
    const mistake = await run(['frobnicate'], undefined, plain)
    expect(mistake.stderr).toContain("unknown command 'frobnicate'")
    expect(mistake.stderr).not.toContain('\x1b')
  })
})
