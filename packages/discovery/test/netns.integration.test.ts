import { fileURLToPath } from 'node:url'
import {
  canUseNamespaces,
  createLan,
  type Host,
  type Lan,
  type LineProcess,
} from '@autobus/testkit'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// Hostile peers on other hosts (network namespaces; needs root, so it runs
// in CI). The participants run from the built package (pnpm build first).
const peer = fileURLToPath(new URL('./fixtures/peer.mjs', import.meta.url))
const run = (host: Host, ...args: string[]) => host.node(peer, args)

/** Reads lines until one matches; every line read is kept in `seen`. */
async function until<T = any>(
  process: LineProcess,
  match: (line: any) => boolean,
  seen: any[] = [],
): Promise<T> {
  for (;;) {
    const line = await process.json()
    seen.push(line)
    if (match(line)) return line
  }
}

/** Fails if `promise` takes longer than `ms`: a protocol timing, not a speed. */
function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

describe.runIf(canUseNamespaces)(
  'discovery against hostile hosts (network namespaces; needs root)',
  () => {
    let lan: Lan
    const spawned: LineProcess[] = []
    const start = (host: Host, ...args: string[]) => {
      const process = run(host, ...args)
      spawned.push(process)
      return process
    }
    beforeAll(() => {
      lan = createLan(3)
    })
    afterAll(async () => {
      for (const process of spawned) process.kill()
      await lan.close()
    })

    it('keeps a service listed under forged removes and replayed adds; nothing reaches the impostor', async () => {
      const [h1, h2, h3] = lan.hosts as [Host, Host, Host]
      const service = start(h1, 'publish', 'victim', '1000')
      await service.json()
      const watcher = start(h2, 'discover')
      const seen: any[] = []
      await until(watcher, (line) => line.event === 'up' && line.service === 'victim', seen)

      const impostor = start(h3, 'impostor', 'victim', '50')
      const conflict = until(service, (line) => line.conflict !== undefined)
      const report = await until(impostor, (line) => line.done)
      await until(
        watcher,
        (line) => line.stats?.ignoredRemoves >= 50 && line.stats?.contested >= 50,
        seen,
      )
      expect(seen.filter((line) => line.event === 'down')).toEqual([])
      expect(report.connections).toBe(0)
      expect((await conflict).conflict).toMatchObject({
        service: 'victim',
        from: { address: h3.address },
      })
    }, 30_000)

    it('shows a service started after 10,000 forged adds (interval 1 h) on another host within 3 s', async () => {
      const [h1, h2, h3] = lan.hosts as [Host, Host, Host]
      const prefix = h3.address.replace(/\.\d+$/, '')
      const addresses = [101, 102, 103, 104].map((n) => `${prefix}.${n}`)
      for (const address of addresses)
        h3.exec('ip', ['addr', 'add', `${address}/24`, 'dev', 'eth0'])
      const watcher = start(h2, 'discover')
      await until(watcher, (line) => line.stats !== undefined)
      const flood = start(h3, 'flood', '2500', ...addresses)
      expect((await flood.json()).sent).toBe(10_000)
      await until(watcher, (line) => line.stats?.size === 4_096)
      const service = start(h1, 'publish', 'late', '10000')
      await service.json()
      await within(
        3_000,
        until(watcher, (line) => line.event === 'up' && line.service === 'late'),
        'the late service on another host',
      )
      service.kill('SIGTERM')
    }, 30_000)

    it('lets an original client on another host find a running service within 3 s by querying', async () => {
      const [h1, h2] = lan.hosts as [Host, Host, Host]
      // Announced once, then not for a minute: only an answer can reach the newcomer.
      const service = start(h1, 'publish', 'for-originals', '60000')
      await service.json()
      const original = start(h2, 'original')
      const heard = await within(
        3_000,
        until(original, (line) => line.heard === 'for-originals'),
        'an answer on the discovery port',
      )
      expect(heard.from).toBe(h1.address)
      service.kill('SIGTERM')
    }, 30_000)

    it('gets all three goodbyes to another host', async () => {
      const [h1, h2] = lan.hosts as [Host, Host, Host]
      const ear = start(h2, 'ear')
      await ear.json()
      const service = start(h1, 'publish', 'leaving', '60000')
      await service.json()
      service.kill('SIGTERM')
      await until(service, (line) => line.closed)
      const removes: any[] = []
      while (removes.length < 3)
        removes.push(
          await until(
            ear,
            (line) => line.datagram.command === 'remove' && line.datagram.service === 'leaving',
          ),
        )
      expect(removes.map((line) => line.from)).toEqual([h1.address, h1.address, h1.address])
    }, 30_000)
  },
)
