import { setTimeout as sleep } from 'node:timers/promises'
import { createBus } from '@autobus/bus'
import Table from 'cli-table3'
import type { Command } from 'commander'
import { out } from '../colour.js'
import type { CommandHost } from '../host.js'
import { collect, seconds } from '../options.js'
import { line, printableService, withoutAddressKeys } from '../output.js'
import { parseFilter } from '../target.js'

/** Adds `autobus list`: the services on the network, once (docs/cli.md). */
export function addListCommand(program: Command, host: CommandHost): void {
  program
    .command('list')
    .description('list the services on the network')
    .option('-f, --filter <term>', 'key=value, key!=value, key or !key (repeatable)', collect, [])
    .option('-w, --wait <seconds>', 'how long to listen for services', seconds, 1)
    .option('--json', 'one JSON object per line: {host, port, service, info}')
    .action(async (options: { filter: string[]; wait: number; json?: boolean }) => {
      const filter = parseFilter(options.filter)
      const bus = await createBus(host.busOptions(true))
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
}
