import { createBus } from '@autobus/bus'
import type { Command } from 'commander'
import { out } from '../colour.js'
import { createExampleService } from '../example.js'
import type { CommandHost } from '../host.js'
import { seconds } from '../options.js'
import { line } from '../output.js'

/** Adds `autobus example`: publishes the example service (docs/cli.md). */
export function addExampleCommand(program: Command, host: CommandHost): void {
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
        const stopped = host.interrupted()
        const bus = await createBus({
          ...host.busOptions(!options.discoveryOff),
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
}
