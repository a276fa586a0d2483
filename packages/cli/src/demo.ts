#!/usr/bin/env node
/**
 * The Autobus demo: starts the example service in other processes and shows
 * every capability from this one, with readable output.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { type BusOptions, createBus, type RemoteError } from '@autobus/bus'
import { out as pc } from './colour.js'
import { EXAMPLE_TYPE } from './example.js'

const main = fileURLToPath(new URL('./main.js', import.meta.url))
const started = Date.now()
const children = new Set<ChildProcess>()

const stamp = () => pc.dim(`[${((Date.now() - started) / 1000).toFixed(1).padStart(4)}s]`)
const step = (title: string) => console.log(`\n${stamp()} ${pc.bold(pc.cyan(title))}`)
const say = (text: string) => console.log(`${stamp()}   ${text}`)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const json = (value: unknown) => pc.green(JSON.stringify(value))

/** Starts `autobus example` in a new process and waits until it is announced. */
async function startExample(
  name: string,
): Promise<{ child: ChildProcess; service: string; port: number }> {
  const child = spawn(process.execPath, [main, 'example', '--json', '--name', name], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  children.add(child)
  child.once('exit', () => children.delete(child))
  const lines = createInterface({ input: child.stdout! })
  const [first] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(() => [undefined]),
  ])) as [string | undefined]
  if (!first) throw new Error(`example ${name} exited before it was ready`)
  const ready = JSON.parse(first) as { service: string; port: number }
  say(
    `started example ${pc.bold(name)} in process ${child.pid}: service ${ready.service.slice(0, 8)}… on port ${ready.port}`,
  )
  return { child, ...ready }
}

/**
 * The discovery settings the example processes read from the environment
 * (`AUTOBUS_DISCOVERY_PORT`, `AUTOBUS_INTERFACES`), so the demo can run on a
 * port or an interface of its own and still find them.
 */
function discoverySettings(): BusOptions {
  const options: BusOptions = {}
  const port = Number(process.env.AUTOBUS_DISCOVERY_PORT)
  if (Number.isInteger(port) && port > 0) options.discoveryPort = port
  const interfaces = process.env.AUTOBUS_INTERFACES?.split(',').filter(Boolean)
  if (interfaces && interfaces.length > 0) options.interfaces = interfaces
  return options
}

async function stop(child: ChildProcess, signal: NodeJS.Signals) {
  const exited = once(child, 'exit')
  child.kill(signal)
  await exited
}

async function demo() {
  console.log(pc.bold('Autobus demo: services found and used with no server and no configuration.'))
  step('1. Start the example service in another process')
  const a = await startExample('A')

  step('2. Discover it over UDP broadcast')
  await using bus = await createBus(discoverySettings())
  // Runs beside the demo; it ends when the bus closes.
  void (async () => {
    for await (const { type, service } of bus.changes({ filter: { type: EXAMPLE_TYPE } }))
      say(
        `${type === 'up' ? pc.green('appeared') : pc.red('disappeared')}: example ${service.info.name} at ${service.host}:${service.port}`,
      )
  })()
  const found = await bus.waitForService({ type: EXAMPLE_TYPE, name: 'A' }, { timeout: 10_000 })
  say(`info: ${json(found.info)}`)

  step('3. Functions: await a result, fire-and-forget, callback style, remote errors')
  const connection = await bus.connect(found)
  say(`add(2, 3) = ${json(await connection.call('add', [2, 3]))}`)
  say(`echo({hello: "bus"}) = ${json(await connection.call('echo', [{ hello: 'bus' }]))}`)
  try {
    await connection.call('add', [2, 'three'])
  } catch (error) {
    say(`add(2, "three") is refused before it runs: ${pc.yellow((error as Error).message)}`)
  }
  try {
    await connection.call('fail', ['something broke'])
  } catch (error) {
    say(
      `fail() throws remotely → ${pc.yellow(`${(error as RemoteError).name}: ${(error as Error).message}`)}`,
    )
  }
  connection.notify('increment')
  say('increment() sent fire-and-forget (no response awaited)')
  await new Promise<void>((resolve) =>
    connection.callback('sleep', [50], (result) => {
      say(`sleep(50) answered through a callback: ${json(result)}`)
      resolve()
    }),
  )

  step('4. Events and watched objects')
  const ticked = await connection.listen('ticked', (count) => say(`event ticked(${json(count)})`))
  const counter = await connection.watch('counter', (value) =>
    say(`object counter = ${json(value)}`),
  )
  await connection.call('tick')
  await connection.call('tick')
  await connection.call('increment')
  await sleep(100)
  // A watcher gets null when its connection closes; stopping both here keeps
  // that null from showing up under a later step.
  await Promise.all([ticked.close(), counter.close()])

  step('5. A channel: a two-way session of JSON messages')
  const channel = await connection.openChannel('echo')
  channel.on('message', (message) => say(`channel ← ${json(message)}`))
  for (const message of [{ seq: 1 }, 'two', [3]]) {
    say(`channel → ${json(message)}`)
    channel.send(message)
  }
  await sleep(100)
  channel.close('done')
  say('channel closed; the service is told')

  step('6. A byte stream with end-to-end backpressure')
  const stream = await connection.openStream('echo')
  const payload = Buffer.alloc(4 * 1024 * 1024, 7)
  const before = Date.now()
  const chunks: Buffer[] = []
  stream.on('data', (chunk: Buffer) => chunks.push(chunk))
  stream.end(payload)
  await once(stream, 'end')
  const echoed = Buffer.concat(chunks)
  say(
    `sent 4 MiB and got ${echoed.length === payload.length && echoed.equals(payload) ? 'all of it back, intact' : 'something else'} in ${Date.now() - before} ms`,
  )

  step('7. Introspection')
  const description = await connection.describe()
  say(`functions: ${Object.keys(description.functions).join(', ')}`)
  say(
    `events: ${Object.keys(description.events).join(', ')}; objects: ${Object.keys(description.objects).join(', ')}`,
  )
  say(
    `channels: ${Object.keys(description.channels).join(', ')}; streams: ${Object.keys(description.streams).join(', ')}`,
  )
  await connection.close()

  step('8. A single-service proxy rebinds when its service dies')
  const proxy = bus.singleServiceProxy({ type: EXAMPLE_TYPE })
  proxy.on('bound', (service) => say(`proxy ${pc.green('bound')} to example ${service.info.name}`))
  proxy.on('unbound', (service, reason) =>
    say(`proxy ${pc.red('unbound')} from example ${service.info.name}: ${reason}`),
  )
  await proxy.waitForBind()
  const proxyCounter = await proxy.watch('counter', (value) =>
    say(`proxy sees counter = ${json(value)}`),
  )
  const b = await startExample('B')
  await bus.waitForService({ name: 'B' }, { timeout: 10_000 })
  say(`killing example A with SIGKILL (no goodbye)…`)
  await stop(a.child, 'SIGKILL')
  await proxy.waitForBind({ timeout: 10_000 })
  await sleep(100)
  say(`increment() through the proxy = ${json(await proxy.call('increment'))}`)

  step('9. A multi-service proxy over two instances')
  const c = await startExample('C')
  const all = bus.multiServiceProxy({ type: EXAMPLE_TYPE })
  await bus.waitForService({ name: 'C' }, { timeout: 10_000 })
  while (all.services.size < 2) await once(all, 'bound')
  await all.listen('ticked', (source, count) =>
    say(`ticked(${json(count)}) from example ${source.info.name}`),
  )
  const outcomes = await all.call('echo', ['hi'])
  for (const [id, outcome] of outcomes) {
    const name = all.services.get(id)?.info.name
    say(
      `echo("hi") on ${name}: ${outcome.ok ? json(outcome.value) : pc.red(outcome.error.message)}`,
    )
  }
  await all.call('tick')
  await sleep(100)

  step('10. Graceful stops send goodbyes')
  await proxyCounter.close()
  await proxy.close()
  await all.close()
  await Promise.all([stop(b.child, 'SIGTERM'), stop(c.child, 'SIGTERM')])
  await sleep(300)
  say(pc.bold(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`))
}

try {
  await demo()
} catch (error) {
  console.error(pc.red(`demo failed: ${error instanceof Error ? error.stack : String(error)}`))
  process.exitCode = 1
} finally {
  for (const child of children) child.kill('SIGKILL')
}
