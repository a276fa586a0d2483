import { execFile } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { hasNatsServer, type LineProcess, spawnLines } from '@autobus/testkit'
import { afterEach, describe, expect, it } from 'vitest'

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const env = { ...process.env, NO_COLOR: '1', AUTOBUS_DISCOVERY_PORT: '', AUTOBUS_INTERFACES: '' }
const base = 20_000 + ((process.pid + 71) % 20_000)
const running: LineProcess[] = []
afterEach(() => {
  for (const child of running.splice(0)) child.kill()
})

function bridge(port: number, args: string[], extra: NodeJS.ProcessEnv = {}): LineProcess {
  const child = spawnLines(
    process.execPath,
    [main, '--discovery-port', String(port), '--interface', 'lo', 'bridge', '--json', ...args],
    { env: { ...env, ...extra } },
  )
  running.push(child)
  return child
}

describe('autobus bridge --nats', () => {
  it('refuses an address that is not nats:// or tls://, and a prefix with wildcards', async () => {
    for (const args of [
      ['--nats', 'http://a:4222'],
      ['--nats', 'nats://a:4222', '--subject-prefix', 'a.*'],
    ]) {
      const run = promisify(execFile)(process.execPath, [main, 'bridge', ...args], { env })
      await expect(run).rejects.toMatchObject({ code: expect.any(Number) })
    }
  })

  it.runIf(hasNatsServer)(
    'links two bridges through a NATS server with user and password',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'autobus-cli-nats-'))
      const port = 24_000 + (process.pid % 4_000)
      const config = join(dir, 'auth.conf')
      writeFileSync(
        config,
        `listen: 127.0.0.1:${port}\nauthorization { users [ { user: bridge, password: s3cret } ] }\n`,
      )
      const server = spawnLines('sh', ['-c', 'exec nats-server -c "$0" 2>&1', config])
      running.push(server)
      while (!(await server.next()).includes('Server is ready'));
      const url = `nats://127.0.0.1:${port}`
      const auth = ['--nats-user', 'bridge']
      const left = bridge(base, ['--nats', url, ...auth], { AUTOBUS_NATS_PASSWORD: 's3cret' })
      const right = bridge(base + 1, ['--nats', url, ...auth], { AUTOBUS_NATS_PASSWORD: 's3cret' })
      const [a, b] = [await left.json(), await right.json()]
      expect(a).toMatchObject({ ready: true })
      expect(await right.json()).toMatchObject({ link: 'up', peer: a.id })
      expect(await left.json()).toMatchObject({ link: 'up', peer: b.id })
    },
  )
})
