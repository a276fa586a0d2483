import type { Command } from 'commander'
import type { CommandHost } from '../host.js'
import { untilInterruptedOrLost, withTarget } from '../open.js'
import { seconds, TARGET_HELP } from '../options.js'
import { line } from '../output.js'

/** Adds `autobus listen`: an event's firings as JSON lines (docs/cli.md). */
export function addListenCommand(program: Command, host: CommandHost): void {
  program
    .command('listen')
    .description('print an event as JSON lines until interrupted')
    .argument('<target>', TARGET_HELP)
    .argument('<event>', 'event name')
    .option('-w, --wait <seconds>', 'how long to wait for a matching service', seconds, 3)
    .action((text: string, name: string, options: { wait: number }) =>
      withTarget(host, text, options.wait, async (connection, target) => {
        await connection.listen(name, (...args) => line(args))
        await untilInterruptedOrLost(host, connection, target)
      }),
    )
}
