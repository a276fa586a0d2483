import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// Three "hosts" on one bridge, each a network namespace of its own. Needs
// root and iproute2: CI runs as root, so this runs in CI.
const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const isRoot = process.getuid?.() === 0
const hasIp = (() => {
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()
const tag = `ab${process.pid % 10_000}`
const hosts = [1, 2, 3].map((n) => ({
  ns: `${tag}h${n}`,
  address: `10.199.${process.pid % 200}.${n}`,
}))
const switchNs = `${tag}sw`
const children = new Set<ChildProcess>()

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' })

function setUp() {
  ip('netns', 'add', switchNs)
  ip('-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge')
  ip('-n', switchNs, 'link', 'set', 'br0', 'up')
  hosts.forEach((host, i) => {
    const veth = `${tag}v${i}`
    ip('netns', 'add', host.ns)
    ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns)
    ip('link', 'set', veth, 'netns', switchNs)
    ip('-n', switchNs, 'link', 'set', veth, 'master', 'br0', 'up')
    ip('-n', host.ns, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0')
    ip('-n', host.ns, 'link', 'set', 'eth0', 'up')
    ip('-n', host.ns, 'link', 'set', 'lo', 'up')
  })
}

function tearDown() {
  for (const child of children) child.kill('SIGKILL')
  for (const ns of [...hosts.map((host) => host.ns), switchNs]) {
    try {
      ip('netns', 'del', ns)
    } catch {
      // Already gone.
    }
  }
}

/** Runs the CLI on one host; lines of its stdout arrive through next(). */
function onHost(host: (typeof hosts)[number], args: string[]) {
  const child = spawn('ip', ['netns', 'exec', host.ns, process.execPath, main, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NO_COLOR: '1', AUTOBUS_DISCOVERY_PORT: '', AUTOBUS_INTERFACES: '' },
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  const queue: string[] = []
  const waiters: Array<(line: string) => void> = []
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const waiter = waiters.shift()
    if (waiter) waiter(line)
    else queue.push(line)
  })
  const next = (): Promise<string> =>
    queue.length > 0
      ? Promise.resolve(queue.shift()!)
      : new Promise((resolve) => waiters.push(resolve))
  const exited = once(child, 'exit').then(([code]) => code as number)
  return { child, next, exited, json: async () => JSON.parse(await next()) }
}

async function example(host: (typeof hosts)[number], name: string) {
  const process = onHost(host, ['example', '--json', '--name', name, '--interval', '1'])
  const ready = await process.json()
  return { ...process, service: ready.service as string, port: ready.port as number }
}

describe.runIf(isRoot && hasIp)('discovery across hosts (network namespaces; needs root)', () => {
  beforeAll(setUp)
  afterAll(tearDown)

  it('finds services on other hosts, removes them on goodbye and on kill -9', async () => {
    const a = await example(hosts[0]!, 'a')
    const b = await example(hosts[1]!, 'b')
    const c = await example(hosts[0]!, 'c') // a second publishing process on one host

    // A late joiner gets the full list from its query.
    const list = onHost(hosts[2]!, ['list', '--json', '--wait', '1'])
    const seen: Array<{ host: string; service: string }> = []
    for (let i = 0; i < 3; i++) seen.push(await list.json())
    expect(await list.exited).toBe(0)
    expect(seen).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ host: hosts[0]!.address, service: a.service }),
        expect.objectContaining({ host: hosts[1]!.address, service: b.service }),
        expect.objectContaining({ host: hosts[0]!.address, service: c.service }),
      ]),
    )

    const follower = onHost(hosts[2]!, ['services', '--follow', '--json'])
    const ups = new Set<string>()
    while (ups.size < 3) ups.add((await follower.json()).service)

    // A graceful stop: goodbyes.
    a.child.kill('SIGTERM')
    const down = await follower.json()
    expect(down).toMatchObject({ event: 'down', service: a.service })

    // kill -9 sends nothing: the probe removes it (interval 1 s: 2.5 s + probe).
    b.child.kill('SIGKILL')
    const expired = await follower.json()
    expect(expired).toMatchObject({ event: 'down', service: b.service })

    follower.child.kill('SIGINT')
    c.child.kill('SIGTERM')
    expect(await follower.exited).toBe(0)
  }, 60_000)
})
