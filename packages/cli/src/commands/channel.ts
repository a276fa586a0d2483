import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Connection } from '@autobus/bus'
import type { Command } from 'commander'
import { ExitCode } from '../exit.js'
import type { CommandHost } from '../host.js'
import { withTarget } from '../open.js'
import { seconds, TARGET_HELP } from '../options.js'
import { line } from '../output.js'
import { parseValue } from '../target.js'

/** Adds `autobus channel`: stdin to a channel, its messages to stdout (docs/cli.md). */
export function addChannelCommand(program: Command, host: CommandHost): void {
  program
    .command('channel')
    .description('open a channel: JSON lines from stdin go to it, its messages go to stdout')
    .argument('<target>', TARGET_HELP)
    .argument('<name>', 'channel name')
    .option('-w, --wait <seconds>', 'how long to wait for a matching service', seconds, 3)
    .action((text: string, name: string, options: { wait: number }) =>
      withTarget(host, text, options.wait, async (remote, target) => {
        // The channel lives on one connection, even through a proxy: when
        // that connection drops, the channel is over.
        const connection =
          target.kind === 'address'
            ? (remote as Connection)
            : await (remote as Exclude<typeof remote, Connection>).waitForBind()
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
          host.interrupted().then(() => 'interrupted' as const),
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
}
