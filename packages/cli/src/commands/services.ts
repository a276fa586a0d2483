import { createBus } from '@autobus/bus'
import { type Command, Option } from 'commander'
import { out } from '../colour.js'
import type { CommandHost } from '../host.js'
import { collect } from '../options.js'
import { line, printableService, withoutAddressKeys } from '../output.js'
import { parseFilter } from '../target.js'

/** Adds `autobus services`: services as they appear and disappear (docs/cli.md). */
export function addServicesCommand(program: Command, host: CommandHost): void {
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
      const bus = await createBus(host.busOptions(true))
      const controller = new AbortController()
      void host.interrupted().then(() => controller.abort())
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
}
