import { execFileSync, spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createBridge } from '@autobus/bridge'
import { type Bus, type BusOptions, createBus, Type } from '@autobus/bus'
import { createDashboard, type Dashboard } from '@autobus/dashboard'
import { type Browser, chromium, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// The example service runs as a user runs it (the built CLI, its own
// process); the dashboard runs in this process, on a discovery port and
// interface of this suite's own.
const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const discoveryPort = 20_000 + ((process.pid + 29) % 20_000)
const env = {
  ...process.env,
  AUTOBUS_DISCOVERY_PORT: String(discoveryPort),
  AUTOBUS_INTERFACES: 'lo',
  NO_COLOR: '1',
}

/** The system's Chromium, found on the PATH; the browser tests are skipped without it. */
function systemChromium(): string | undefined {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('which', [name], { encoding: 'utf8' }).trim() || undefined
    } catch {}
  }
  return undefined
}
const chromiumPath = systemChromium()
if (!chromiumPath)
  console.warn(
    'dashboard browser tests skipped: no chromium on the PATH (apt-get install chromium)',
  )

type DiscoveryNetwork = NonNullable<BusOptions['network']>
type DatagramHandler = Parameters<DiscoveryNetwork['open']>[0]

/**
 * An in-memory discovery network on this host: every datagram reaches every
 * member at once. Services keep their real TCP listener, so probes work.
 */
function loopbackNetwork(): DiscoveryNetwork {
  const members = new Map<number, DatagramHandler>()
  let nextPort = 40_000
  return {
    open: async (handler) => {
      const port = nextPort++
      members.set(port, handler)
      const from = { address: '127.0.0.1', port, local: true }
      return {
        privatePort: port,
        sendFailures: 0,
        faults: { send: {}, rescan: {} },
        broadcast: (bytes) => {
          for (const member of [...members.values()]) member(bytes, from)
        },
        unicast: (bytes, _host, to) => members.get(to)?.(bytes, from),
        close: async () => {
          members.delete(port)
        },
      }
    },
  }
}

/** Starts `autobus example --json`; resolves with its id once it has announced. */
async function startExample() {
  const child = spawn(process.execPath, [main, 'example', '--json', '--name', 'dash'], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const lines = createInterface({ input: child.stdout! })
  const [line] = (await once(lines, 'line')) as [string]
  const ready = JSON.parse(line) as { service: string; port: number }
  return { child, id: ready.service, port: ready.port, at: Date.now() }
}

let bus: Bus
let dashboard: Dashboard

beforeAll(async () => {
  bus = await createBus({ discoveryPort, interfaces: ['lo'] })
  dashboard = await createDashboard({
    bus,
    port: 0,
    statsInterval: 200,
    heardInterval: 200,
    securityInterval: 200,
  })
})
afterAll(async () => {
  await dashboard?.close()
  await bus?.close()
})

describe('dashboard HTTP', () => {
  it('serves the services as JSON and every bus figures as Prometheus text', async () => {
    const example = await startExample()
    try {
      await bus.waitForService({ type: 'autobus.example', name: 'dash' }, { timeout: 5_000 })
      const services = (await (await fetch(`${dashboard.url}api/services`)).json()) as Array<{
        id: string
        port: number
      }>
      expect(services).toContainEqual(
        expect.objectContaining({ id: example.id, port: example.port }),
      )
      const connection = await bus.connect({
        host: '127.0.0.1',
        port: example.port,
        service: example.id,
      })
      await connection.call('add', [1, 2])
      const response = await fetch(`${dashboard.url}metrics`)
      expect(response.headers.get('content-type')).toContain('text/plain')
      const text = await response.text()
      expect(text).toMatch(
        new RegExp(
          `autobus_function_calls_total\\{bus="[^"]+",service="${example.id}",function="add"\\} 1`,
        ),
      )
      const json = { 'content-type': 'application/json' }
      const missing = await fetch(`${dashboard.url}api/services/nope/call`, {
        method: 'POST',
        headers: json,
        body: '{}',
      })
      expect(missing.status).toBe(404)
      // Another site's page, through a browser on this machine, cannot call.
      const call = `${dashboard.url}api/services/${example.id}/call`
      const body = JSON.stringify({ name: 'add', args: [1, 1] })
      const foreign = await fetch(call, {
        method: 'POST',
        headers: { ...json, origin: 'http://evil.example' },
        body,
      })
      expect(foreign.status).toBe(403)
      expect((await fetch(call, { method: 'POST', body })).status).toBe(415)
      expect(await (await fetch(call, { method: 'POST', headers: json, body })).json()).toEqual({
        result: 2,
      })
    } finally {
      example.child.kill('SIGTERM')
      await once(example.child, 'exit')
    }
  })
})

describe.runIf(chromiumPath)('dashboard in a browser', () => {
  let browser: Browser
  let page: Page
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: chromiumPath!,
      // Root in CI and containers: Chromium's sandbox needs a user namespace it may not get.
      args: ['--no-sandbox', '--disable-dev-shm-usage'],
    })
    page = await browser.newPage()
    await page.goto(dashboard.url)
    await page.locator('#status.live').waitFor()
  })
  afterAll(async () => {
    await browser?.close()
  })

  it('shows the example service live: calls, errors, the counter, the call rate, its goodbye', async () => {
    const example = await startExample()
    const item = page.locator(`#services li[data-id="${example.id}"]`)
    await item.waitFor({ timeout: 10_000 })
    // Heard by its announcement; no probe has had a reason to reach it.
    await expect.poll(() => item.locator('.heard').textContent()).toMatch(/^heard \d+ s ago$/)
    expect(await item.getAttribute('data-verified')).toBe('false')

    await item.click()
    await expect.poll(() => page.locator('#heard').textContent()).toContain('not verified')
    const add = page.locator('[data-function="add"]')
    await add.locator('textarea').fill('[2, 3]')
    await add.locator('button').click()
    await expect.poll(() => add.locator('.outcome').textContent()).toBe('5')

    const fail = page.locator('[data-function="fail"]')
    await fail.locator('textarea').fill('["broken on purpose"]')
    await fail.locator('button').click()
    await expect.poll(() => fail.locator('.outcome').textContent()).toContain('broken on purpose')
    expect(await fail.locator('.outcome').getAttribute('class')).toContain('error')

    // Another client increments the counter; the page follows without a reload.
    const connection = await bus.connect({
      host: '127.0.0.1',
      port: example.port,
      service: example.id,
    })
    const counter = page.locator('[data-object="counter"] .value')
    await expect.poll(() => counter.textContent()).toBe('0')
    await connection.call('increment', [])
    await expect.poll(() => counter.textContent()).toBe('1')
    await connection.call('increment', [])
    await expect.poll(() => counter.textContent()).toBe('2')

    // The call-rate chart moves while calls are made.
    const rate = async () => {
      const latest = await page.locator('[data-chart="calls"]').getAttribute('data-latest')
      return latest ? (JSON.parse(latest) as number[])[0]! : 0
    }
    const points = async () =>
      Number(await page.locator('[data-chart="calls"]').getAttribute('data-points'))
    // First a quiet moment, so that a rate above zero is these calls' own.
    await expect.poll(rate, { timeout: 5_000 }).toBe(0)
    const before = await points()
    const calling = setInterval(() => {
      void connection.call('echo', [1]).catch(() => {})
    }, 10)
    try {
      await expect.poll(rate, { timeout: 5_000 }).toBeGreaterThan(0)
      expect(await points()).toBeGreaterThan(before)
    } finally {
      clearInterval(calling)
    }

    // Goodbye: the example says it on SIGTERM.
    example.child.kill('SIGTERM')
    await once(example.child, 'exit')
    // Well before it would expire unheard (2.5 × its 10 s interval).
    await item.waitFor({ state: 'detached', timeout: 10_000 })
  })

  it('lists a thousand services, filters them and shows one', async () => {
    // The thousand come over an in-memory discovery network: the page's work
    // is the point here, not a thousand UDP announcements.
    const network = loopbackNetwork()
    await using many = await createBus({ network, holdOff: 0 })
    await using watcher = await createBus({ network, holdOff: 0 })
    await using board = await createDashboard({ bus: watcher, port: 0 })
    for (let index = 0; index < 1_000; index++) {
      const service = many.createService({ info: { type: 'sensor', name: `sensor-${index}` } })
      many.publish(service)
    }
    await expect
      .poll(() => watcher.services({ type: 'sensor' }).length, { timeout: 60_000 })
      .toBe(1_000)
    const other = await browser.newPage()
    try {
      await other.goto(board.url)
      await expect
        .poll(() => other.locator('#services li').count(), { timeout: 20_000 })
        .toBe(1_000)
      // The closing quote of the info's JSON: sensor-417 and not sensor-4170.
      await other.locator('#filter').fill('sensor-417"')
      await expect.poll(() => other.locator('#services li:visible').count()).toBe(1)
      await expect(other.locator('#count').textContent()).resolves.toBe('1 of 1000 service(s)')
    } finally {
      await other.close()
    }
  })

  it('shows rejected datagrams, denied requests and the bridges between buses', async () => {
    // A malformed datagram on the discovery port, as anyone on the network can send.
    const socket = createSocket('udp4')
    await new Promise<void>((resolve, reject) =>
      socket.send('{"command": "add"', discoveryPort, '127.0.0.1', (error) =>
        error ? reject(error) : resolve(),
      ),
    )
    socket.close()
    await page.locator('#security summary').click()
    const malformed = page.locator('#dropped [data-reason="malformed"] .count')
    await expect.poll(async () => Number(await malformed.textContent())).toBeGreaterThan(0)

    // A bus with access rules refuses a call; the page shows it against that bus.
    const guarded = await createBus({
      discoveryPort,
      interfaces: ['lo'],
      host: '127.0.0.1',
      holdOff: 0,
      access: {
        default: 'allow',
        rules: [{ effect: 'deny', actions: ['call'], member: 'secret' }],
      },
    })
    // A second bus, on a discovery port of its own: only a bridge joins the two.
    const far = await createBus({
      discoveryPort: discoveryPort + 1,
      interfaces: ['lo'],
      host: '127.0.0.1',
      holdOff: 0,
    })
    const near = createBridge({ bus: guarded, listen: ['tcp://127.0.0.1:0'] })
    try {
      const service = guarded.createService({ info: { type: 'vault' } })
      service.addFunction('secret', { args: [] }, () => 'hidden')
      guarded.publish(service)
      const found = await bus.waitForService({ type: 'vault' }, { timeout: 5_000 })
      const connection = await bus.connect(found)
      await expect(connection.call('secret', [])).rejects.toThrow()
      const denied = page.locator(`#denied [data-bus="127.0.0.1:${guarded.port}"] .denied`)
      await expect.poll(() => denied.textContent(), { timeout: 5_000 }).toBe('1')

      await near.ready
      const farBridge = createBridge({ bus: far, connect: [near.listening[0]!] })
      try {
        const remote = far.createService({ info: { type: 'far-away' } })
        remote.addFunction('ping', { args: [Type.String()] }, (text) => text)
        far.publish(remote)
        await page.locator('#bridges').waitFor({ state: 'visible', timeout: 5_000 })
        await page.locator(`#bridge-graph [data-bridge="${near.id}"]`).waitFor({ timeout: 5_000 })
        await page.locator(`#bridge-graph [data-bridge="${farBridge.id}"]`).waitFor()
        const key = [near.id, farBridge.id].sort().join('|')
        await page.locator(`#bridge-graph [data-link="${key}"]`).waitFor({ timeout: 5_000 })
        expect(
          await page.locator(`#bridge-graph [data-bridge="${near.id}"]`).textContent(),
        ).toContain(`127.0.0.1:${guarded.port}`)
      } finally {
        await farBridge.close()
      }
    } finally {
      await near.close()
      await far.close()
      await guarded.close()
    }
  })

  it('filters the list', async () => {
    const example = await startExample()
    try {
      const item = page.locator(`#services li[data-id="${example.id}"]`)
      await item.waitFor({ timeout: 10_000 })
      await page.locator('#filter').fill('no-such-service')
      await expect.poll(() => item.isHidden()).toBe(true)
      await page.locator('#filter').fill('dash')
      await expect.poll(() => item.isVisible()).toBe(true)
    } finally {
      example.child.kill('SIGTERM')
      await once(example.child, 'exit')
    }
  })
})

describe('autobus dashboard', () => {
  it('serves until SIGTERM, then exits 0', async () => {
    const child = spawn(process.execPath, [main, 'dashboard', '--port', '0', '--json'], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const lines = createInterface({ input: child.stdout! })
    const [line] = (await once(lines, 'line')) as [string]
    const ready = JSON.parse(line) as { ready: boolean; url: string }
    expect(ready.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    expect((await fetch(`${ready.url}api/services`)).status).toBe(200)
    expect(await (await fetch(ready.url)).text()).toContain('<title>Autobus dashboard</title>')
    expect((await fetch(`${ready.url}vendor/uplot.js`)).status).toBe(200)
    child.kill('SIGTERM')
    const [code] = (await once(child, 'exit')) as [number]
    expect(code).toBe(0)
  })
})
