import { fileURLToPath } from 'node:url'
import { canUseNamespaces, createLan, type Host, type Lan } from '@autobus/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// Three hosts: the service, a host that floods it with connections, and a
// host with a legitimate client. Needs root (network namespaces); CI has it.
const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const flood = fileURLToPath(new URL('./fixtures/flood.mjs', import.meta.url))
const env = { ...process.env, NO_COLOR: '1', AUTOBUS_DISCOVERY_PORT: '', AUTOBUS_INTERFACES: '' }

async function call(host: Host, target: string) {
  const client = host.node(main, ['call', target, 'echo', '"still here"', '--timeout', '10'], {
    env,
  })
  const [line, code] = await Promise.all([client.next(), client.exited])
  return { result: JSON.parse(line), code }
}

describe.runIf(canUseNamespaces)(
  'a connection flood from one host (network namespaces; needs root)',
  () => {
    let lan: Lan
    beforeAll(() => {
      lan = createLan(3)
    })
    afterAll(() => lan.close())

    it('survives 20,000 connection attempts and serves another host during and after', async () => {
      const [h1, h2, h3] = lan.hosts as [Host, Host, Host]
      const example = h1.node(main, ['example', '--json'], { env })
      try {
        const ready = await example.json()
        const target = `${h1.address}:${ready.port}/${ready.service}`
        const attacker = h2.node(flood, [h1.address, String(ready.port), '20000'], {
          stdio: ['pipe', 'pipe', 'inherit'],
        })
        expect(await attacker.json()).toEqual({ flooding: true })
        // During the flood: the flood does not end before this call is done.
        expect(await call(h3, target)).toEqual({ result: 'still here', code: 0 })
        attacker.child.stdin!.write('stop\n')
        const done = await attacker.json()
        expect(done).toMatchObject({ done: true })
        expect(done.attempts).toBeGreaterThanOrEqual(20_000)
        // Two seconds after the flood ended (part of the scenario, not a wait for something).
        await new Promise((resolve) => setTimeout(resolve, 2_000))
        expect(await call(h3, target)).toEqual({ result: 'still here', code: 0 })
        expect(example.child.exitCode).toBeNull()
        console.log(`flood: ${JSON.stringify(done)}`)
      } finally {
        example.kill('SIGKILL')
      }
    }, 90_000)
  },
)
