// Takes docs/dashboard.png: the built CLI's example service, a dashboard on
// a discovery port of its own, a few calls, and the system's Chromium.
// Run after `pnpm build`: node packages/cli/scripts/dashboard-screenshot.mjs
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createBus } from '@autobus/bus'
import { createDashboard } from '@autobus/dashboard'
import { chromium } from 'playwright-core'

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const output = fileURLToPath(new URL('../../../docs/dashboard.png', import.meta.url))
const discoveryPort = 40_000 + (process.pid % 10_000)
const env = {
  ...process.env,
  AUTOBUS_DISCOVERY_PORT: String(discoveryPort),
  AUTOBUS_INTERFACES: 'lo',
}

const examples = []
for (const name of ['kitchen', 'hall', 'garage']) {
  const child = spawn(process.execPath, [main, 'example', '--json', '--name', name], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const [line] = await once(createInterface({ input: child.stdout }), 'line')
  examples.push({ child, ...JSON.parse(line) })
}
const bus = await createBus({ discoveryPort, interfaces: ['lo'] })
const dashboard = await createDashboard({ bus, port: 0, statsInterval: 500 })
const browser = await chromium.launch({
  executablePath: execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim(),
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
})
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  await page.goto(dashboard.url)
  const first = examples[0]
  await page.locator(`#services li[data-id="${first.service}"]`).click()
  await page.locator('[data-function="add"]').waitFor()
  const connection = await bus.connect({
    host: '127.0.0.1',
    port: first.port,
    service: first.service,
  })
  // Some traffic for the charts and the live log: a few seconds of calls.
  const until = Date.now() + 6_000
  let round = 0
  while (Date.now() < until) {
    round++
    await Promise.all(
      Array.from({ length: 5 + (round % 7) }, () => connection.call('add', [round, 1])),
    )
    if (round % 10 === 0) await connection.call('tick', [])
    if (round % 15 === 0) await connection.call('increment', [])
    if (round % 12 === 0) await connection.call('fail', ['not today']).catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const add = page.locator('[data-function="add"]')
  await add.locator('textarea').fill('[2, 3]')
  await add.locator('button').click()
  await page.locator('[data-function="add"] .outcome.ok').waitFor()
  await page.evaluate(() => document.getElementById('right').scrollTo(0, 0))
  await page.screenshot({ path: output })
  console.log(`wrote ${output}`)
} finally {
  await browser.close()
  await dashboard.close()
  await bus.close()
  for (const example of examples) example.child.kill('SIGTERM')
}
