import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import {
  AutobusError,
  type Bus,
  type BusOptions,
  type Connection,
  createBus,
  type DiscoveredService,
  RemoteError,
  type ServiceDescription,
  type SingleServiceProxy,
  UnreachableError,
} from '@autobus/bus'
import Table from 'cli-table3'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { err, out } from './colour.js'
import { addDashboardCommand } from './commands/dashboard.js'
import { addTypesCommand } from './commands/types.js'
import { addConformanceCommand } from './conformance.js'
import { createExampleService } from './example.js'
import { parseFilter, parseTarget, parseValue, type Target, UsageError } from './target.js'

/** Exit codes; see docs/cli.md. */
export const ExitCode = {
  Ok: 0,
  /** The remote side failed (a remote error, a refused open). */
  Failed: 1,
  /** The command line is wrong. */
  Usage: 2,
  /** No answer: no matching service, it could not be reached, or it did not answer in time. */
  Unreachable: 3,
} as const

interface GlobalOptions {
  discoveryPort?: number
  interface?: string[]
}

const TARGET_HELP =
  'host:port/serviceId, or filter terms joined by commas: key=value, key!=value, key, !key'

const collect = (value: string, previous: string[] = []) => [...previous, value]
const seconds = (value: string) => {
  const parsed = Number(value)
  if (!Number.isFinite(parsed) || parsed < 0)
    throw new InvalidArgumentError('must be a number of seconds')
  return parsed
}
const port = (value: string) => {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > 65535)
    throw new InvalidArgumentError('must be a port number')
  return parsed
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const line = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`)

/** Resolves on SIGINT or SIGTERM. */
function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      resolve()
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
}

/** The command line's settings; `createBus` reads the environment for the rest. */
function busOptions(global: GlobalOptions, discovery: boolean): BusOptions {
  const options: BusOptions = { discovery }
  if (global.discoveryPort) options.discoveryPort = global.discoveryPort
  if (global.interface && global.interface.length > 0) options.interfaces = global.interface
  return options
}

function printableService(service: DiscoveredService) {
  return { host: service.host, port: service.port, service: service.service, info: service.info }
}

function withoutAddressKeys(info: Readonly<Record<string, unknown>>) {
  const { host: _host, port: _port, service: _service, ...rest } = info
  return rest
}

/** Connects to a target: directly, or through a single-service proxy for a filter. */
async function open(
  bus: Bus,
  target: Target,
  waitSeconds: number,
): Promise<Connection | SingleServiceProxy> {
  if (target.kind === 'address') return bus.connect(target)
  const proxy = bus.singleServiceProxy(target.filter)
  await proxy.waitForBind({ timeout: waitSeconds * 1000 })
  return proxy
}

function describeText(description: ServiceDescription): string {
  const text: string[] = []
  text.push(
    `${out.bold(description.service)}  ${JSON.stringify(withoutAddressKeys(description.info))}`,
  )
  if (description.doc) text.push(`  ${description.doc}`)
  const types = (schemas?: ReadonlyArray<Record<string, unknown>>) =>
    (schemas ?? [])
      .map((schema) => (typeof schema.type === 'string' ? schema.type : 'any'))
      .join(', ')
  const section = (
    title: string,
    entries: Record<string, { doc?: string | undefined }>,
    signature: (name: string, entry: any) => string,
  ) => {
    const names = Object.keys(entries)
    if (names.length === 0) return
    text.push('', out.bold(title))
    for (const name of names) {
      const entry = entries[name]!
      text.push(
        `  ${out.cyan(signature(name, entry))}${entry.doc ? `  ${out.dim(entry.doc)}` : ''}`,
      )
    }
  }
  section('Functions', description.functions, (name, entry) => {
    const result =
      entry.result && typeof entry.result.type === 'string' ? ` -> ${entry.result.type}` : ''
    return `${name}(${types(entry.args)})${result}`
  })
  section('Events', description.events, (name, entry) => `${name}(${types(entry.args)})`)
  section(
    'Objects',
    description.objects,
    (name, entry) => `${name}${entry.value?.type ? `: ${entry.value.type}` : ''}`,
  )
  section('Channels', description.channels, (name) => name)
  section('Streams', description.streams, (name) => name)
  return text.join('\n')
}

/** Opens a target on a new bus, runs `use`, and closes the bus. */
async function withTarget(
  global: GlobalOptions,
  text: string,
  waitSeconds: number,
  use: (connection: Connection | SingleServiceProxy) => Promise<void>,
): Promise<void> {
  const target = parseTarget(text)
  const bus = await createBus(busOptions(global, target.kind === 'filter'))
  try {
    await use(await open(bus, target, waitSeconds))
  } finally {
    await bus.close()
  }
}

/** This package's version: `src/` and `dist/` both sit next to its package.json. */
function version(): string {
  const manifest = readFileSync(new URL('../package.json', import.meta.url), 'utf8')
  return (JSON.parse(manifest) as { version: string }).version
}

/** Builds the program; `run` parses and executes it. */
export function createProgram(): Command {
  const program = new Command('autobus')
    .description('Find, inspect and use Autobus services on the network.')
    .option(
      '--discovery-port <port>',
      'UDP discovery port (default 52722, or $AUTOBUS_DISCOVERY_PORT)',
      port,
    )
    .option(
      '--interface <name>',
      'announce and discover only on this interface (repeatable; or $AUTOBUS_INTERFACES)',
      collect,
    )
    .version(version(), '-V, --version', 'print the version of @autobus/cli')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(err.red(text)) })

  const globals = () => program.opts<GlobalOptions>()

  program
    .command('list')
    .description('list the services on the network')
    .option('-f, --filter <term>', 'key=value, key!=value, key or !key (repeatable)', collect, [])
    .option('-w, --wait <seconds>', 'how long to listen for services', seconds, 1)
    .option('--json', 'one JSON object per line: {host, port, service, info}')
    .action(async (options: { filter: string[]; wait: number; json?: boolean }) => {
      const filter = parseFilter(options.filter)
      const bus = await createBus(busOptions(globals(), true))
      try {
        await sleep(options.wait * 1000)
        const services = bus
          .services(filter)
          .filter((service) => !bus.localServices.has(service.service))
        if (options.json) {
          for (const service of services) line(printableService(service))
          return
        }
        // cli-table3 colours on its own (a red header, grey borders) whatever
        // the output is: its style is turned off and the header is bold only
        // where colour is wanted.
        const table = new Table({
          head: ['host', 'port', 'service', 'info'].map((title) => out.bold(title)),
          style: { head: [], border: out.isColorSupported ? ['grey'] : [] },
        })
        for (const service of services) {
          table.push([
            service.host,
            String(service.port),
            service.service,
            JSON.stringify(withoutAddressKeys(service.info)),
          ])
        }
        process.stdout.write(`${table.toString()}\n${out.dim(`${services.length} service(s)`)}\n`)
      } finally {
        await bus.close()
      }
    })

  program
    .command('services')
    .description('print services as they appear and disappear until interrupted')
    // Following is what `services` does (`list` prints the list once):
    // `--follow` is accepted so that a command line written with it works.
    .addOption(new Option('--follow').hideHelp())
    .option('-f, --filter <term>', 'key=value, key!=value, key or !key (repeatable)', collect, [])
    .option('--json', 'one JSON object per line: {event, host, port, service, info, at}')
    .action(async (options: { filter: string[]; json?: boolean }) => {
      const filter = parseFilter(options.filter)
      const bus = await createBus(busOptions(globals(), true))
      const controller = new AbortController()
      void interrupted().then(() => controller.abort())
      try {
        for await (const change of bus.changes({ filter, signal: controller.signal })) {
          const record = {
            event: change.type,
            ...printableService(change.service),
            ...(change.restart ? { restart: true } : {}),
            at: Date.now(),
          }
          if (options.json) line(record)
          else {
            const colour =
              change.type === 'up' ? out.green : change.type === 'down' ? out.red : out.yellow
            process.stdout.write(
              `${colour(change.type.padEnd(7))} ${record.host}:${record.port}/${record.service}  ${JSON.stringify(withoutAddressKeys(change.service.info))}\n`,
            )
          }
        }
      } finally {
        await bus.close()
      }
    })

  program
    .command('info')
    .description("describe a service's functions, events, objects, channels and streams")
    .argument('<target>', TARGET_HELP)
    .option('-w, --wait <seconds>', 'how long to wait for a matching service', seconds, 3)
    .option('--json', 'print the description as JSON')
    .action((text: string, options: { wait: number; json?: boolean }) =>
      withTarget(globals(), text, options.wait, async (connection) => {
        const description = await connection.describe()
        if (options.json) line(description)
        else process.stdout.write(`${describeText(description)}\n`)
      }),
    )

  program
    .command('call')
    .description('call a function and print its result as JSON')
    .argument('<target>', TARGET_HELP)
    .argument('<function>', 'function name')
    .argument('[args...]', 'arguments: JSON values; anything that is not JSON is a string')
    .option('-m, --multiple', 'call every matching service; print {serviceId: outcome}')
    .option('-t, --timeout <seconds>', 'how long to wait for the result', seconds, 30)
    .option('-w, --wait <seconds>', 'how long to wait for matching services', seconds, 3)
    .action(
      async (
        text: string,
        name: string,
        rawArgs: string[],
        options: { multiple?: boolean; timeout: number; wait: number },
      ) => {
        const target = parseTarget(text)
        const args = rawArgs.map(parseValue)
        const bus = await createBus(busOptions(globals(), target.kind === 'filter'))
        try {
          if (options.multiple) {
            if (target.kind !== 'filter') throw new UsageError('--multiple needs a filter target')
            const proxy = bus.multiServiceProxy(target.filter)
            // Nothing matching is exit code 3, as for a single target; once
            // one service answers, the others get a moment to be found too.
            await bus.waitForService(target.filter, { timeout: options.wait * 1000 })
            await sleep(Math.min(options.wait * 1000, 1000))
            const outcomes = await proxy.call(name, args, { timeout: options.timeout * 1000 })
            if (outcomes.size === 0) {
              throw new UnreachableError(
                `no service matching ${JSON.stringify(target.filter)} could be reached`,
              )
            }
            const printable = Object.fromEntries(
              [...outcomes].map(([id, outcome]) => [
                id,
                outcome.ok ? { result: outcome.value } : { error: outcome.error.message },
              ]),
            )
            line(printable)
            if ([...outcomes.values()].some((outcome) => !outcome.ok))
              process.exitCode = ExitCode.Failed
            return
          }
          const connection = await open(bus, target, options.wait)
          line(await connection.call(name, args, { timeout: options.timeout * 1000 }))
        } finally {
          await bus.close()
        }
      },
    )

  program
    .command('listen')
    .description('print an event as JSON lines until interrupted')
    .argument('<target>', TARGET_HELP)
    .argument('<event>', 'event name')
    .option('-w, --wait <seconds>', 'how long to wait for a matching service', seconds, 3)
    .action((text: string, name: string, options: { wait: number }) =>
      withTarget(globals(), text, options.wait, async (connection) => {
        await connection.listen(name, (...args) => line(args))
        await untilInterruptedOrLost(connection)
      }),
    )

  program
    .command('watch')
    .description("print an object's value, then each change, as JSON lines until interrupted")
    .argument('<target>', TARGET_HELP)
    .argument('<object>', 'object name')
    .option('-w, --wait <seconds>', 'how long to wait for a matching service', seconds, 3)
    .action((text: string, name: string, options: { wait: number }) =>
      withTarget(globals(), text, options.wait, async (connection) => {
        // Closing the bus unbinds the proxy, which tells its watchers `null`:
        // that is the end of this command, not a value to print.
        let ended = false
        await connection.watch(name, (value) => {
          if (!ended) line(value)
        })
        await untilInterruptedOrLost(connection)
        ended = true
      }),
    )

  program
    .command('channel')
    .description('open a channel: JSON lines from stdin go to it, its messages go to stdout')
    .argument('<target>', TARGET_HELP)
    .argument('<name>', 'channel name')
    .option('-w, --wait <seconds>', 'how long to wait for a matching service', seconds, 3)
    .action((text: string, name: string, options: { wait: number }) =>
      withTarget(globals(), text, options.wait, async (target) => {
        // The channel lives on one connection, even through a proxy: when
        // that connection drops, the channel is over.
        const connection = 'waitForBind' in target ? await target.waitForBind() : target
        const channel = await connection.openChannel(name)
        channel.on('message', (message) => line(message))
        const input = createInterface({ input: process.stdin })
        input.on('line', (text) => {
          if (text.trim() === '' || channel.isClosed) return
          channel.send(parseValue(text))
        })
        const inputDone = new Promise<void>((resolve) => input.once('close', resolve))
        const outcome = await Promise.race([
          inputDone.then(() => 'input' as const),
          channel.closed.then(() => 'closed' as const),
          interrupted().then(() => 'interrupted' as const),
        ])
        if (outcome === 'input') {
          // Give the service a moment to answer what was just sent.
          await Promise.race([sleep(500), channel.closed])
        }
        if (outcome === 'closed') {
          if (connection.isClosed) {
            process.stderr.write(`connection closed: ${(await connection.closed).reason}\n`)
            process.exitCode = ExitCode.Unreachable
          } else process.stderr.write(`channel closed: ${(await channel.closed).reason}\n`)
        }
        channel.close('done')
        input.close()
        // Reading stdin would keep the process alive until it ends.
        process.stdin.destroy()
      }),
    )

  program
    .command('example')
    .description('publish the example service until interrupted')
    .option('--json', 'print {"ready": true, host, port, service} once announced')
    .option('--name <name>', 'add "name" to the info object')
    .option('--discovery-off', 'do not announce (reach it by host:port/serviceId)')
    .option(
      '--interval <seconds>',
      'announcement interval (default 10); others expire it after 2.5 intervals',
      seconds,
    )
    .action(
      async (options: {
        json?: boolean
        name?: string
        discoveryOff?: boolean
        interval?: number
      }) => {
        // Listening for the signals before anything starts: a stop asked for
        // while starting up still closes the bus and says goodbye.
        const stopped = interrupted()
        const bus = await createBus({
          ...busOptions(globals(), !options.discoveryOff),
          ...(options.interval ? { announceInterval: options.interval * 1000 } : {}),
        })
        const publication = bus.publish(
          createExampleService(bus, options.name ? { name: options.name } : {}),
        )
        await publication.announced
        const ready = {
          ready: true,
          host: publication.info.hostname,
          port: bus.port,
          service: publication.service.id,
        }
        if (options.json) line(ready)
        else
          process.stdout.write(
            `example service ${out.bold(ready.service)} on port ${ready.port}; Ctrl-C to stop\n`,
          )
        await stopped
        await bus.close('example stopped')
      },
    )

  addConformanceCommand(program, {
    busOptions: (discovery) => busOptions(globals(), discovery),
    interrupted,
  })

  addTypesCommand(program, { busOptions: (discovery) => busOptions(globals(), discovery) })
  addDashboardCommand(program, {
    busOptions: (discovery) => busOptions(globals(), discovery),
    interrupted,
  })
  program.addOption(new Option('--no-color', 'plain output').hideHelp())
  return program
}

/** Waits for Ctrl-C; a direct connection that dies first ends with exit code 3. */
async function untilInterruptedOrLost(connection: Connection | SingleServiceProxy): Promise<void> {
  // A proxy keeps going across restarts (it closes only when closed); a
  // direct connection ends with its peer.
  const outcome = await Promise.race([
    interrupted().then(() => 'interrupted' as const),
    connection.closed.then(() => 'lost' as const),
  ])
  if (outcome === 'lost') {
    process.stderr.write(`connection closed: ${(await connection.closed).reason}\n`)
    process.exitCode = ExitCode.Unreachable
  }
}

/** Runs the CLI; resolves with the exit code. */
export async function run(argv: readonly string[]): Promise<number> {
  const program = createProgram()
  try {
    await program.parseAsync(argv as string[], { from: 'user' })
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.Ok
  } catch (error) {
    return report(error)
  }
}

function report(error: unknown): number {
  if (error instanceof CommanderError) {
    if (error.exitCode === 0) return ExitCode.Ok
    return ExitCode.Usage
  }
  const message = error instanceof Error ? error.message : String(error)
  process.stderr.write(`${err.red('error:')} ${message}\n`)
  if (error instanceof UsageError || error instanceof TypeError) return ExitCode.Usage
  if (error instanceof RemoteError) return ExitCode.Failed
  if (
    error instanceof AutobusError &&
    (error.code === 'unreachable' ||
      error.code === 'unknown_service' ||
      error.code === 'connection_lost' ||
      error.code === 'timeout')
  ) {
    return ExitCode.Unreachable
  }
  return ExitCode.Failed
}
