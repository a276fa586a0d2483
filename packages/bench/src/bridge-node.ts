/**
 * One end of the bridge benchmark in a process of its own:
 * `bridge-node.js home PORT SOCKET` serves an echo service and a bridge
 * listening on SOCKET; `bridge-node.js far PORT SOCKET` is a bus with a
 * bridge linking to it. Prints one JSON line once ready.
 *
 * The floor the bridges are measured against, with no Autobus code on the
 * way: `home` also relays byte for byte from `SOCKET.floor` to its own bus
 * port, and `bridge-node.js floor 0 SOCKET` relays byte for byte from a TCP
 * port to `SOCKET.floor`: the same sockets and processes as the bridge
 * pair, doing nothing but passing bytes on. `bridge-node.js relay PORT`
 * relays byte for byte from a TCP port of its own to PORT on loopback: one
 * process in the way and nothing else, the least any bridge in a process
 * of its own can cost.
 */
import { rmSync } from 'node:fs'
import { createConnection, createServer, type Socket } from 'node:net'
import { createBridge } from '@autobus/bridge'
import { createBus } from '@autobus/bus'

const [role, port, socket] = process.argv.slice(2)

/** Passes bytes both ways between each accepted socket and a new one to `to`. */
function relay(to: () => Socket) {
  return createServer((near) => {
    near.setNoDelay(true)
    const far = to()
    far.setNoDelay(true)
    near.pipe(far)
    far.pipe(near)
    near.on('error', () => far.destroy())
    far.on('error', () => near.destroy())
    near.on('close', () => far.destroy())
    far.on('close', () => near.destroy())
  })
}

if (role === 'floor' || role === 'relay') {
  const server = relay(() =>
    role === 'floor'
      ? createConnection(`${socket}.floor`)
      : createConnection(Number(port), '127.0.0.1'),
  )
  server.listen(0, '127.0.0.1', () => {
    const address = server.address() as { port: number }
    process.stdout.write(`${JSON.stringify({ port: address.port })}\n`)
  })
  process.on('SIGINT', () => process.exit(0))
  await new Promise(() => {})
}
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
  rmSync(`${socket}.floor`, { force: true })
  const floor = relay(() => createConnection(bus.port, '127.0.0.1'))
  await new Promise<void>((resolve) => floor.listen(`${socket}.floor`, resolve))
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
