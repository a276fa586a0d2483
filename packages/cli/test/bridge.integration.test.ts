import { execFile } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { createBus } from '@autobus/bus'
import { type LineProcess, spawnLines } from '@autobus/testkit'
import { afterEach, describe, expect, it } from 'vitest'

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const env = { ...process.env, NO_COLOR: '1', AUTOBUS_DISCOVERY_PORT: '', AUTOBUS_INTERFACES: '' }
const base = 20_000 + ((process.pid + 43) % 20_000)
const running: LineProcess[] = []
afterEach(() => {
  for (const child of running.splice(0)) child.kill()
})

function bridge(port: number, args: string[]): LineProcess {
  const child = spawnLines(
    process.execPath,
    [main, '--discovery-port', String(port), '--interface', 'lo', 'bridge', '--json', ...args],
    { env },
  )
  running.push(child)
  return child
}

describe('autobus bridge', () => {
  it('joins two buses on one machine through a Unix socket and reports its links', async () => {
    const socket = join(tmpdir(), `autobus-cli-bridge-${process.pid}.sock`)
    const left = bridge(base, ['--listen', `unix:${socket}`])
    const ready = await left.json()
    expect(ready).toEqual({ ready: true, id: expect.any(String), listen: [`unix:${socket}`] })
    const right = bridge(base + 1, ['--connect', `unix:${socket}`])
    const rightReady = await right.json()
    expect(await right.json()).toMatchObject({ link: 'up', up: true, peer: ready.id })
    expect(await left.json()).toMatchObject({ link: 'up', peer: rightReady.id })

    await using far = await createBus({ discoveryPort: base + 1, interfaces: ['lo'] })
    await using home = await createBus({ discoveryPort: base, interfaces: ['lo'], holdOff: 0 })
    const service = home.createService({ info: { type: 'test.cli-bridge' } })
    service.addFunction('twice', {}, (x) => Number(x) * 2)
    home.publish(service)
    const found = await far.waitForService({ type: 'test.cli-bridge' }, { timeout: 5_000 })
    expect(found.info).toMatchObject({ bridged: true, hops: 1 })
    const connection = await far.connect(found)
    expect(await connection.call('twice', [21])).toBe(42)

    left.kill('SIGTERM')
    expect(await left.exited).toBe(0)
    expect(await right.json()).toMatchObject({ link: 'down', peer: ready.id })
  })

  it('needs an address', async () => {
    const run = promisify(execFile)(process.execPath, [main, 'bridge'], { env })
    await expect(run).rejects.toMatchObject({ code: 2 })
  })
})
