/**
 * One end of the NATS bridge benchmark in a process of its own:
 * `nats-bridge-node.js ROLE PORT OPTIONS` with ROLE `home` (an echo
 * service), `far` (nothing but the bridge) or `site:N` (N services), a
 * discovery port, and the bridge's options as JSON (`listen`, `connect`,
 * `nats`). Prints one JSON line once ready; a site prints a second one
 * (`{"settled":true}`) once its bus has `expect` bridged services, when
 * OPTIONS has `expect`.
 */
import { createBridge } from '@autobus/bridge'
import { createBus } from '@autobus/bus'

const [role, port, json] = process.argv.slice(2) as [string, string, string]
const { expect, ...options } = JSON.parse(json) as { expect?: number } & Record<string, unknown>
const bus = await createBus({
  discoveryPort: Number(port),
  interfaces: ['lo'],
  holdOff: 0,
  host: '127.0.0.1',
  // Every stand-in elsewhere holds a session to its origin here, all from one address.
  maxConnectionsPerAddress: 16_384,
})
let service: { id: string } | undefined
if (role === 'home') {
  const echo = bus.createService({ info: { type: 'bench.nats-bridge' } })
  echo.addFunction('echo', {}, (x) => x)
  bus.publish(echo)
  service = echo
} else if (role.startsWith('site:')) {
  const count = Number(role.slice(5))
  for (let i = 0; i < count; i++) {
    const many = bus.createService({ info: { type: 'bench.site', site: port, n: i } })
    many.addFunction('echo', {}, (x) => x)
    bus.publish(many)
  }
}
const bridge = createBridge({ bus, ...options })
await bridge.ready
process.stdout.write(`${JSON.stringify({ port: bus.port, service: service?.id, id: bridge.id })}\n`)
if (process.env.AUTOBUS_BENCH_DEBUG) {
  bridge.on('link', (change) => {
    if (!change.up) process.stderr.write(`${port}: link down ${change.reason}\n`)
  })
  setInterval(() => {
    process.stderr.write(
      `${port}: ${bus.services({ bridged: true }).length} bridged, links ${bridge.links().length}, routes ${bridge.routes().length}\n`,
    )
  }, 2_000).unref()
}
if (expect !== undefined) {
  const settled = () => bus.services({ bridged: true }).length >= expect
  await new Promise<void>((resolve) => {
    if (settled()) return resolve()
    const check = () => {
      if (!settled()) return
      bus.off('appeared', check)
      resolve()
    }
    bus.on('appeared', check)
  })
  process.stdout.write(`${JSON.stringify({ settled: true })}\n`)
}
process.on('SIGINT', () => process.exit(0))
