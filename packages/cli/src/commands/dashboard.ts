import { type BusOptions, createBus } from '@autobus/bus'
import { createDashboard } from '@autobus/dashboard'
import { type Command, InvalidArgumentError } from 'commander'

/** What the `dashboard` command needs from the program that registers it. */
export interface DashboardHost {
  /** The bus options of the command line, with discovery on or off. */
  busOptions(discovery: boolean): BusOptions
  /** Resolves on SIGINT or SIGTERM. */
  interrupted(): Promise<void>
}

const portNumber = (value: string) => {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65535)
    throw new InvalidArgumentError('must be a port number (0 for any free port)')
  return parsed
}

/** Adds `autobus dashboard`: a live web page of the services on the network. */
export function addDashboardCommand(program: Command, host: DashboardHost): void {
  program
    .command('dashboard')
    .description('serve a live web dashboard of the services on the network until interrupted')
    .option('-p, --port <port>', 'HTTP port', portNumber, 7770)
    .option(
      '--host <address>',
      'address to listen on (anyone who reaches it can call functions)',
      '127.0.0.1',
    )
    .option('--json', 'print {"ready": true, url} once serving')
    .action(async (options: { port: number; host: string; json?: boolean }) => {
      const stopped = host.interrupted()
      const bus = await createBus(host.busOptions(true))
      try {
        const dashboard = await createDashboard({ bus, port: options.port, host: options.host })
        if (options.json)
          process.stdout.write(`${JSON.stringify({ ready: true, url: dashboard.url })}\n`)
        else process.stdout.write(`dashboard at ${dashboard.url}; Ctrl-C to stop\n`)
        await stopped
        await dashboard.close('dashboard stopped')
      } finally {
        await bus.close('dashboard stopped')
      }
    })
}
