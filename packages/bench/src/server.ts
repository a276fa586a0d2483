/**
 * One benchmark server per process: `node server.js <system> [natsPort]`.
 * Prints a Ready line on stdout, then serves until killed. The same
 * operations everywhere: echo a payload, fire N events, set an object N
 * times, echo channel messages, sink a byte stream.
 */
import net from 'node:net'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createBus, Type } from '@autobus/bus'
import { JoinedWriter } from './joined-writer.js'
import type { Ready, System } from './payload.js'

const system = process.argv[2] as System
// A clean exit on SIGTERM lets --cpu-prof write its profile.
process.on('SIGTERM', () => process.exit(0))
const ready = (value: Omit<Ready, 'ready'>) =>
  process.stdout.write(`${JSON.stringify({ ready: true, ...value })}\n`)
const rss = () => {
  globalThis.gc?.()
  return process.memoryUsage().rss
}

/** Runs `count` steps in slices, yielding to the event loop so sockets drain. */
async function sliced(
  count: number,
  step: (i: number) => void,
  needsDrain: () => boolean = () => false,
) {
  for (let i = 0; i < count; i++) {
    step(i)
    if (i % 256 === 255) {
      do await new Promise((resolve) => setImmediate(resolve))
      while (needsDrain())
    }
  }
}

const loopDelay = monitorEventLoopDelay({ resolution: 1 })
loopDelay.enable()

async function autobus() {
  // Every benchmark client comes from 127.0.0.1: the per-address cap (256 by
  // default, against floods from one host) would refuse the idle-connection
  // scenario's thousand.
  const bus = await createBus({
    discovery: false,
    host: '127.0.0.1',
    maxConnectionsPerAddress: 4_096,
  })
  const service = bus.createService({ info: { type: 'bench' } })
  const tick = service.addEvent('tick')
  const value = service.addObject<unknown>('value', {}, 0)
  service
    .addFunction('echo', { args: [Type.Unknown()] }, (payload) => payload)
    .addFunction('fire', { args: [Type.Integer(), Type.Unknown()] }, async (count, payload) => {
      await sliced(count, () => tick.fire(payload))
      return count
    })
    .addFunction('set', { args: [Type.Unknown()] }, (next) => {
      value.set(next)
      return null
    })
    .addFunction('bump', { args: [Type.Integer()] }, async (count) => {
      await sliced(count, (i) => value.set(i + 1))
      return count
    })
    .addFunction('rss', {}, () => rss())
    // The longest this process's event loop was held since the last ask (ms):
    // tells the service's own stalls from the machine's scheduling.
    .addFunction('loopDelay', {}, () => {
      const max = loopDelay.max / 1e6
      loopDelay.reset()
      return max
    })
    // This process's CPU time (user + system) in ms, for costs per unit of input.
    .addFunction('cpu', {}, () => {
      const usage = process.cpuUsage()
      return (usage.user + usage.system) / 1000
    })
    .addChannel('echo', {}, (channel) => channel.on('message', (message) => channel.send(message)))
    .addStream('sink', {}, (stream) => {
      stream.on('data', () => {})
      stream.on('end', () => stream.end())
    })
  bus.publish(service)
  ready({ port: bus.port, service: service.id })
}

async function raw() {
  // Listening connections, each with its writes joined per turn as the
  // transport joins them; answers to one chunk of requests are one write.
  const listeners = new Map<net.Socket, JoinedWriter>()
  const server = net.createServer((socket) => {
    socket.setNoDelay(true)
    socket.on('close', () => listeners.delete(socket))
    socket.on('error', () => {})
    let buffer = ''
    socket.setEncoding('utf8')
    socket.on('data', (text: string) => {
      buffer += text
      let end = buffer.indexOf('\n')
      let out = ''
      while (end >= 0) {
        const request = JSON.parse(buffer.slice(0, end))
        buffer = buffer.slice(end + 1)
        if (request.op === 'echo')
          out += `${JSON.stringify({ id: request.id, result: request.payload })}\n`
        else if (request.op === 'fire') {
          // Fire to every connection that asked to listen: each event
          // encoded once (as an application firing it would), the same
          // line to every listener.
          const payload = request.payload
          void sliced(request.count, () => {
            const line = `${JSON.stringify({ event: 'tick', args: [payload] })}\n`
            for (const writer of listeners.values()) writer.write(line)
          })
        } else if (request.op === 'listen') listeners.set(socket, new JoinedWriter(socket))
        else if (request.op === 'rss')
          out += `${JSON.stringify({ id: request.id, result: rss() })}\n`
        end = buffer.indexOf('\n')
      }
      if (out) socket.write(out)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  ready({ port: (server.address() as net.AddressInfo).port })
}

/** A raw TCP sink for the stream comparison: counts bytes, closes at the end. */
async function rawSink() {
  const server = net.createServer((socket) => {
    socket.on('data', () => {})
    socket.on('end', () => socket.end())
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  ready({ port: (server.address() as net.AddressInfo).port })
}

async function moleculer() {
  const { ServiceBroker } = (await import('moleculer')).default
  // Static discovery: every node lists the others (see clients.ts for the ports).
  const port = Number(process.argv[3])
  const clients = ['bench-client', ...Array.from({ length: 10 }, (_, i) => `bench-sub-${i}`)]
  const subscribers = Number(process.argv[4] ?? 0)
  const urls = clients
    .map((nodeID, i) => `127.0.0.1:${port + 1 + i}/${nodeID}`)
    .slice(0, subscribers > 0 ? 1 + subscribers : 1)
    .slice(subscribers > 0 ? 1 : 0)
  const broker = new ServiceBroker({
    nodeID: 'bench-server',
    logger: false,
    transporter: { type: 'TCP', options: { udpDiscovery: false, port, urls } },
  })
  broker.createService({
    name: 'bench',
    actions: {
      echo: (ctx: any) => ctx.params.payload,
      fire: async (ctx: any) => {
        await sliced(ctx.params.count, () => broker.broadcast('bench.tick', ctx.params.payload))
        return ctx.params.count
      },
    },
  })
  await broker.start()
  ready({ port })
}

async function zeromq() {
  const zmq = await import('zeromq')
  const router = new zmq.Router()
  await router.bind('tcp://127.0.0.1:0')
  const port = Number(router.lastEndpoint!.split(':').pop())
  ready({ port })
  for await (const [identity, message] of router) {
    const request = JSON.parse(message!.toString())
    await router.send([identity!, JSON.stringify({ id: request.id, result: request.payload })])
  }
}

async function nats() {
  const { connect, JSONCodec } = await import('nats')
  const natsPort = Number(process.argv[3])
  const connection = await connect({ servers: `127.0.0.1:${natsPort}` })
  const codec = JSONCodec()
  const subscription = connection.subscribe('bench.echo')
  ready({ port: natsPort })
  for await (const message of subscription) {
    const request = codec.decode(message.data) as { payload: unknown }
    message.respond(codec.encode({ result: request.payload }))
  }
}

/** `publisher <count> <discoveryPort> [intervalMs]`: announces count services. */
async function publisher() {
  const { createPublisher, udpNetwork } = await import('@autobus/discovery')
  const [count, port, interval] = process.argv.slice(3).map(Number)
  const created = await createPublisher({
    network: udpNetwork({ port: port!, interfaces: ['lo'] }),
    holdOff: 0,
    ...(interval ? { announceInterval: interval } : {}),
  })
  for (let i = 0; i < count!; i++)
    created.publish({
      service: `bench-${process.pid}-${i}`,
      port: 1000 + i,
      info: { type: 'bench', i },
    })
  ready({ port: port! })
}

/** `discoverer <count> <discoveryPort>`: RSS growth until `count` services are known. */
async function discoverer() {
  const { createDiscoverer, udpNetwork } = await import('@autobus/discovery')
  const [count, port] = process.argv.slice(3).map(Number)
  const before = rss()
  const created = await createDiscoverer({
    network: udpNetwork({ port: port!, interfaces: ['lo'] }),
    probe: async () => true,
    maxServices: count! + 10,
  })
  const deadline = Date.now() + 20_000
  while (created.snapshot().length < count! && Date.now() < deadline)
    await new Promise((resolve) => setTimeout(resolve, 50))
  const seen = created.snapshot().length
  const grown = rss() - before
  ready({
    port: port!,
    ...({ seen, bytes_per_1000_services: (grown / Math.max(1, seen)) * 1000 } as object),
  })
}

const servers: Record<string, () => Promise<void>> = {
  autobus,
  raw,
  'raw-sink': rawSink,
  moleculer,
  zeromq,
  nats,
  publisher,
  discoverer,
}
const run = servers[system]
if (!run) {
  process.stderr.write(`unknown system ${system}\n`)
  process.exit(2)
}
await run()
