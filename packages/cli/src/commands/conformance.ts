import { type Bus, createBus, Type } from '@autobus/bus'
import {
  type CheckResult,
  ConformanceService,
  checkService,
  formatResult,
  formatSummary,
  startReferenceService,
} from '@autobus/conformance'
import { type Command, InvalidArgumentError } from 'commander'
import { sleepUntilAborted } from '../example.js'
import type { CommandHost } from '../host.js'
import { parseTarget, UsageError } from '../target.js'

/**
 * The conformance service of docs/conformance.md, built with this
 * project's own service API: `autobus conformance --serve` publishes it, and
 * the kit's own tests check it.
 */
export function createConformanceService(bus: Bus) {
  const service = bus.createService({
    info: { type: ConformanceService.type },
    doc: 'The Autobus conformance service (docs/conformance.md).',
  })
  const signal = service.addEvent('signal', { doc: 'Fired by emit(x) with [x].' })
  const value = service.addObject<unknown>('value', { doc: 'Set by set(value); starts at 0.' }, 0)
  service
    .addFunction('echo', { doc: 'Returns its argument.', args: [Type.Unknown()] }, (x) => x)
    .addFunction(
      'add',
      { doc: 'Adds two numbers.', args: [Type.Number(), Type.Number()], result: Type.Number() },
      (a, b) => a + b,
    )
    .addFunction('fail', { doc: 'Fails with the given text.', args: [Type.String()] }, (text) => {
      throw new Error(text)
    })
    .addFunction(
      'sleep',
      {
        doc: 'Waits ms milliseconds, then returns ms.',
        args: [Type.Integer({ minimum: 0, maximum: 60_000 })],
      },
      // Stops waiting when the caller is gone or the service shuts down: the
      // kit leaves thousands of these running when it checks the in-flight
      // limit, and closes their session when done.
      (ms, { signal }) => sleepUntilAborted(ms, signal),
    )
    .addFunction('set', { doc: 'Sets the object "value".', args: [Type.Unknown()] }, (next) => {
      value.set(next)
    })
    .addFunction(
      'emit',
      { doc: 'Fires "signal" with its argument.', args: [Type.Unknown()] },
      (x) => {
        signal.fire(x)
      },
    )
    .addChannel('echo', { doc: 'Sends back every message.' }, (channel) => {
      channel.on('message', (message) => {
        if (!channel.isClosed) channel.send(message)
      })
    })
    .addStream('echo', { doc: 'Sends back every byte.' }, (stream) => {
      stream.pipe(stream)
    })
  return service
}

const positive = (value: string) => {
  const parsed = Number(value)
  if (!Number.isFinite(parsed) || parsed <= 0) throw new InvalidArgumentError('must be positive')
  return parsed
}

interface ConformanceOptions {
  client?: boolean
  serve?: boolean
  json?: boolean
  wait?: number
  timeout: number
  discoveryChecks: boolean
  maxFrame?: number
  maxPending?: number
}

/** What the conformance command needs from the program around it. */
export type ConformanceHost = CommandHost

function print(json: boolean | undefined, result: CheckResult): void {
  process.stdout.write(`${json ? JSON.stringify(result) : formatResult(result)}\n`)
}

/** Adds `autobus conformance` to the program (docs/cli.md, docs/conformance.md). */
export function addConformanceCommand(program: Command, host: ConformanceHost): void {
  program
    .command('conformance')
    .description(
      "check a peer's service against the protocol, or serve the reference service to check a client",
    )
    .argument('[target]', 'a conformance service: host:port/serviceId, or key=value filters')
    .option('--client', 'serve the reference service and report what a client does with it')
    .option('--serve', "publish this implementation's conformance service until interrupted")
    .option('--json', 'one JSON object per check, then {passed, failed, skipped}')
    .option(
      '-w, --wait <seconds>',
      'how long to wait for the service (default 3), or with --client for a client (default 60)',
      positive,
    )
    .option('-t, --timeout <seconds>', 'how long to wait for each expected answer', positive, 2)
    .option('--no-discovery-checks', 'skip the discovery checks (a peer that does not announce)')
    .option('--max-frame <bytes>', "the peer's frame limit (default 4 MiB)", positive)
    .option(
      '--max-pending <count>',
      "the peer's limit of commands in flight (default 10,000)",
      positive,
    )
    .action(async (text: string | undefined, options: ConformanceOptions) => {
      if (options.serve) return serve(host, options)
      if (options.client) return client(host, options)
      if (!text) throw new UsageError('conformance needs a target, --client or --serve')
      const target = parseTarget(text)
      const busOptions = host.busOptions(target.kind === 'filter')
      let address: { host: string; port: number; service: string } | undefined =
        target.kind === 'address' ? target : undefined
      if (target.kind === 'filter') {
        const bus = await createBus(busOptions)
        try {
          const found = await bus.waitForService(target.filter, {
            timeout: (options.wait ?? 3) * 1000,
          })
          address = { host: found.host, port: found.port, service: found.service }
        } finally {
          await bus.close()
        }
      }
      const report = await checkService(address!, {
        discoveryPort: options.discoveryChecks ? (busOptions.discoveryPort ?? 52722) : false,
        timeout: options.timeout * 1000,
        ...(options.maxFrame ? { maxFrame: options.maxFrame } : {}),
        ...(options.maxPending ? { maxPendingCalls: options.maxPending } : {}),
        onResult: (result) => print(options.json, result),
      })
      const { passed, failed, skipped } = report
      process.stdout.write(
        `${options.json ? JSON.stringify({ passed, failed, skipped }) : formatSummary(report)}\n`,
      )
      if (failed > 0) process.exitCode = 1
    })
}

async function serve(host: ConformanceHost, options: ConformanceOptions): Promise<void> {
  const bus = await createBus({ ...host.busOptions(true), holdOff: 0 })
  const publication = bus.publish(createConformanceService(bus))
  await publication.announced
  const ready = { ready: true, port: bus.port, service: publication.service.id }
  process.stdout.write(
    options.json
      ? `${JSON.stringify(ready)}\n`
      : `conformance service ${ready.service} on port ${ready.port}; Ctrl-C to stop\n`,
  )
  await host.interrupted()
  await bus.close('conformance service stopped')
}

async function client(host: ConformanceHost, options: ConformanceOptions): Promise<void> {
  const busOptions = host.busOptions(true)
  const reference = await startReferenceService({
    ...(busOptions.discoveryPort ? { discoveryPort: busOptions.discoveryPort } : {}),
    ...(busOptions.interfaces ? { interfaces: busOptions.interfaces } : {}),
    onEvent: (event) => {
      if (!options.json)
        process.stderr.write(
          `  session ${event.session}: ${event.what}${event.detail === undefined ? '' : ` ${JSON.stringify(event.detail)}`}\n`,
        )
    },
  })
  const ready = { ready: true, port: reference.port, service: reference.service }
  process.stdout.write(
    options.json
      ? `${JSON.stringify(ready)}\n`
      : `reference service ${ready.service} on port ${ready.port}; run the client now\n`,
  )
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    reference.finished,
    host.interrupted(),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, (options.wait ?? 60) * 1000)
    }),
  ])
  clearTimeout(timer)
  await reference.close()
  const report = reference.report()
  for (const result of report.results) print(options.json, result)
  const { passed, failed, skipped } = report
  process.stdout.write(
    `${options.json ? JSON.stringify({ passed, failed, skipped }) : formatSummary(report)}\n`,
  )
  if (failed > 0) process.exitCode = 1
}
