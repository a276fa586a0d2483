/**
 * One end of the bridge benchmark in a process of its own:
 * `bridge-node.js home PORT SOCKET` serves an echo service and a bridge
 * listening on SOCKET; `bridge-node.js far PORT SOCKET` is a bus with a
 * bridge linking to it. Prints one JSON line once ready.
 */
import { createBridge } from '@autobus/bridge'
import { createBus } from '@autobus/bus'

const [role, port, socket] = process.argv.slice(2)
/** Bytes the `flood` stream sends; the bench reads the same figure. */
const FLOOD_BYTES = 32 * 1024 * 1024
const bus = await createBus({
  discoveryPort: Number(port),
  interfaces: ['lo'],
  holdOff: 0,
  host: '127.0.0.1',
})
if (role === 'home') {
  const service = bus.createService({ info: { type: 'bench.bridge' } })
  service.addFunction('echo', {}, (x) => x)
  // Sends `size` bytes to whoever opens it, as fast as the reader takes them.
  service.addStream('flood', {}, (stream) => {
    const chunk = Buffer.alloc(64 * 1024, 1)
    void (async () => {
      for (let sent = 0; sent < FLOOD_BYTES && !stream.destroyed; sent += chunk.length)
        if (!stream.write(chunk)) await new Promise((resolve) => stream.once('drain', resolve))
      stream.end()
    })()
    stream.resume()
  })
  bus.publish(service)
  const bridge = createBridge({ bus, listen: [`unix:${socket}`] })
  await bridge.ready
  process.stdout.write(`${JSON.stringify({ port: bus.port, service: service.id })}\n`)
} else {
  const bridge = createBridge({ bus, connect: [`unix:${socket}`] })
  await bridge.ready
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`)
}
// Exit cleanly on an interrupt, so `--cpu-prof` can write its profile.
process.on('SIGINT', () => process.exit(0))
