import { fileURLToPath } from 'node:url'
import {
  canUseNamespaces,
  createRoutedLans,
  type Host,
  type LineProcess,
  type RoutedLans,
} from '@autobus/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// Two LANs joined by a router (network namespaces; needs root): broadcast
// stays on its LAN, so only unicast peers let discovery cross. The programs
// run from the built packages (pnpm build first).
const main = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url))
const watch = fileURLToPath(new URL('./fixtures/watch.mjs', import.meta.url))
const env = (peers: string) => ({
  ...process.env,
  NO_COLOR: '1',
  AUTOBUS_DISCOVERY_PORT: '',
  AUTOBUS_INTERFACES: '',
  AUTOBUS_PEERS: peers,
})

/** Reads JSON lines until one matches. */
async function until(process: LineProcess, match: (line: any) => boolean): Promise<any> {
  for (;;) {
    const line = await process.json()
    if (match(line)) return line
  }
}

async function lines(process: LineProcess): Promise<any[]> {
  const found: any[] = []
  for (;;) {
    try {
      found.push(await process.json())
    } catch {
      return found
    }
  }
}

describe.runIf(canUseNamespaces)(
  'discovery across a router that drops broadcast (network namespaces; needs root)',
  () => {
    let routed: RoutedLans
    let a: Host
    let b: Host
    const spawned: LineProcess[] = []
    const start = (process: LineProcess) => {
      spawned.push(process)
      return process
    }
    beforeAll(() => {
      routed = createRoutedLans([1, 1])
      ;[[a], [b]] = routed.lans as [[Host], [Host]]
    })
    afterAll(async () => {
      for (const process of spawned) process.kill()
      await routed.close()
    })

    it('finds a service on the other LAN through AUTOBUS_PEERS, and not without', async () => {
      const service = start(a.node(main, ['example', '--json', '--name', 'far'], { env: env('') }))
      const ready = await service.json()

      const alone = start(b.node(main, ['list', '--json', '--wait', '1'], { env: env('') }))
      expect(await lines(alone)).toEqual([])

      const list = start(b.node(main, ['list', '--json', '--wait', '1'], { env: env(a.address) }))
      const found = await lines(list)
      expect(await list.exited).toBe(0)
      expect(found).toEqual([
        expect.objectContaining({ host: a.address, port: ready.port, service: ready.service }),
      ])
      service.kill('SIGTERM')
      await service.exited
    }, 30_000)

    it('gets announcements and goodbyes across when both sides list each other', async () => {
      const watcher = start(b.node(watch, [], { env: env(`${a.address}:52722`) }))
      await until(watcher, (line) => line.ready)
      const service = start(
        a.node(main, ['example', '--json', '--name', 'leaving'], { env: env(b.address) }),
      )
      const ready = await service.json()
      expect(await until(watcher, (line) => line.service === ready.service)).toMatchObject({
        event: 'up',
        host: a.address,
      })
      service.kill('SIGTERM')
      expect(await until(watcher, (line) => line.event === 'down')).toEqual({
        event: 'down',
        cause: 'goodbye',
        host: a.address,
        service: ready.service,
      })
      watcher.kill('SIGTERM')
    }, 30_000)
  },
)
