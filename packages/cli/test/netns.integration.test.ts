import { fileURLToPath } from 'node:url'
import { canUseNamespaces, createLan, type Host, type Lan } from '@autobus/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// Three "hosts" on one bridge, each a network namespace of its own. Needs
// root and iproute2: CI runs as root, so this runs in CI.
const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const env = { ...process.env, NO_COLOR: '1', AUTOBUS_DISCOVERY_PORT: '', AUTOBUS_INTERFACES: '' }
const cli = (host: Host, args: string[]) => host.node(main, args, { env })

async function example(host: Host, name: string) {
  const process = cli(host, ['example', '--json', '--name', name, '--interval', '1'])
  const ready = await process.json()
  return { ...process, service: ready.service as string, port: ready.port as number }
}

describe.runIf(canUseNamespaces)('discovery across hosts (network namespaces; needs root)', () => {
  let lan: Lan
  beforeAll(() => {
    lan = createLan(3)
  })
  afterAll(() => lan.close())

  it('finds services on other hosts, removes them on goodbye and on kill -9', async () => {
    const [h1, h2, h3] = lan.hosts as [Host, Host, Host]
    const a = await example(h1, 'a')
    const b = await example(h2, 'b')
    const c = await example(h1, 'c') // a second publishing process on one host

    // A late joiner gets the full list from its query.
    const list = cli(h3, ['list', '--json', '--wait', '1'])
    const seen: Array<{ host: string; service: string }> = []
    for (let i = 0; i < 3; i++) seen.push(await list.json())
    expect(await list.exited).toBe(0)
    expect(seen).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ host: h1.address, service: a.service }),
        expect.objectContaining({ host: h2.address, service: b.service }),
        expect.objectContaining({ host: h1.address, service: c.service }),
      ]),
    )

    const follower = cli(h3, ['services', '--follow', '--json'])
    const ups = new Set<string>()
    while (ups.size < 3) ups.add((await follower.json()).service)

    // A graceful stop: goodbyes.
    a.kill('SIGTERM')
    const down = await follower.json()
    expect(down).toMatchObject({ event: 'down', service: a.service })

    // kill -9 sends nothing: the probe removes it (interval 1 s: 2.5 s + probe).
    b.kill('SIGKILL')
    const expired = await follower.json()
    expect(expired).toMatchObject({ event: 'down', service: b.service })

    follower.kill('SIGINT')
    c.kill('SIGTERM')
    expect(await follower.exited).toBe(0)
  }, 60_000)
})
