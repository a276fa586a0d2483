import { setTimeout as sleep } from 'node:timers/promises'
import { createBus, UnreachableError } from '@autobus/bus'
import type { Command } from 'commander'
import { ExitCode } from '../exit.js'
import type { CommandHost } from '../host.js'
import { openTarget } from '../open.js'
import { seconds, TARGET_HELP } from '../options.js'
import { line } from '../output.js'
import { parseTarget, parseValue, UsageError } from '../target.js'

/** Adds `autobus call`: calls a function on one service or on every match (docs/cli.md). */
export function addCallCommand(program: Command, host: CommandHost): void {
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
        const bus = await createBus(host.busOptions(target.kind === 'filter'))
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
          const connection = await openTarget(bus, target, options.wait)
          line(await connection.call(name, args, { timeout: options.timeout * 1000 }))
        } finally {
          await bus.close()
        }
      },
    )
}
