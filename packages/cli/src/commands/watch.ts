import type { Command } from 'commander'
import type { CommandHost } from '../host.js'
import { untilInterruptedOrLost, withTarget } from '../open.js'
import { seconds, TARGET_HELP } from '../options.js'
import { line } from '../output.js'

/** Adds `autobus watch`: an object's value, then each change (docs/cli.md). */
export function addWatchCommand(program: Command, host: CommandHost): void {
  program
    .command('watch')
    .description("print an object's value, then each change, as JSON lines until interrupted")
    .argument('<target>', TARGET_HELP)
    .argument('<object>', 'object name')
    .option('-w, --wait <seconds>', 'how long to wait for a matching service', seconds, 3)
    .action((text: string, name: string, options: { wait: number }) =>
      withTarget(host, text, options.wait, async (connection, target) => {
        // Closing the bus unbinds the proxy, which tells its watchers `null`:
        // that is the end of this command, not a value to print.
        let ended = false
        await connection.watch(name, (value) => {
          if (!ended) line(value)
        })
        await untilInterruptedOrLost(host, connection, target)
        ended = true
      }),
    )
}
