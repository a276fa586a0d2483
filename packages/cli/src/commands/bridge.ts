import { createBridge, type LinkChange, parseLinkAddress } from '@autobus/bridge'
import { type BusOptions, createBus } from '@autobus/bus'
import { type Command, InvalidArgumentError } from 'commander'
import { UsageError } from '../target.js'

/** What the bridge command needs from the program it is added to. */
export interface BridgeCommandHost {
  /** Bus options from the global options (`--discovery-port`, `--interface`). */
  busOptions(discovery: boolean): BusOptions
  /** Resolves on SIGINT or SIGTERM. */
  interrupted(): Promise<void>
}

interface BridgeCommandOptions {
  listen: string[]
  connect: string[]
  json?: boolean
  hopLimit?: number
}

const address = (value: string, previous: string[] = []) => {
  try {
    parseLinkAddress(value)
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message)
  }
  return [...previous, value]
}

const hopLimit = (value: string) => {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > 64)
    throw new InvalidArgumentError('must be an integer from 1 to 64')
  return parsed
}

function line(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`)
}

/**
 * `autobus bridge`: joins this machine's bus to others through links to
 * other bridges (docs/bridges.md), until interrupted.
 */
export function addBridgeCommand(program: Command, host: BridgeCommandHost): void {
  program
    .command('bridge')
    .description(
      'join this bus to other buses: link to other bridges and stand in for their services',
    )
    .option(
      '--listen <address>',
      'accept links on tcp://HOST:PORT or unix:PATH (repeatable)',
      address,
      [],
    )
    .option(
      '--connect <address>',
      'link to a bridge at tcp://HOST:PORT or unix:PATH (repeatable; retried forever)',
      address,
      [],
    )
    .option('--hop-limit <n>', 'longest path of links a route may take (default 8)', hopLimit)
    .option(
      '--json',
      'print {"ready": true, id, listen} and then one line per link going up or down',
    )
    .action(async (options: BridgeCommandOptions) => {
      if (options.listen.length === 0 && options.connect.length === 0)
        throw new UsageError('give at least one --listen or --connect address')
      const stopped = host.interrupted()
      // Stand-ins are announced at once: the hold-off that spreads a
      // starting program's announcements would only delay what crosses.
      const bus = await createBus({ ...host.busOptions(true), holdOff: 0 })
      const bridge = createBridge({
        bus,
        listen: options.listen,
        connect: options.connect,
        ...(options.hopLimit ? { hopLimit: options.hopLimit } : {}),
      })
      const report = (change: LinkChange) => {
        if (options.json) line({ link: change.up ? 'up' : 'down', ...change })
        else
          process.stdout.write(
            `link ${change.up ? 'up' : 'down'}: ${change.peer} (${change.address})${change.reason ? `: ${change.reason}` : ''}\n`,
          )
      }
      bridge.on('link', report)
      try {
        await bridge.ready
        if (options.json) line({ ready: true, id: bridge.id, listen: bridge.listening })
        else
          process.stdout.write(
            `bridge ${bridge.id}${bridge.listening.length > 0 ? ` listening on ${bridge.listening.join(', ')}` : ''}; Ctrl-C to stop\n`,
          )
        await stopped
      } finally {
        await bridge.close('bridge stopped')
        await bus.close('bridge stopped')
      }
    })
}
