import { readFileSync } from 'node:fs'
import {
  createBridge,
  type LinkChange,
  type NatsBridgeOptions,
  parseLinkAddress,
} from '@autobus/bridge'
import { type BusOptions, createBus } from '@autobus/bus'
import { type Command, InvalidArgumentError, Option } from 'commander'
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
  relayedSessions?: number
  nats: string[]
  subjectPrefix?: string
  natsUser?: string
  natsPassword?: string
  natsToken?: string
  natsNkey?: string
  natsCreds?: string
  natsCa?: string
  natsCert?: string
  natsKey?: string
}

const natsServers = (value: string, previous: string[] = []) => {
  const servers = value
    .split(',')
    .map((server) => server.trim())
    .filter((server) => server.length > 0)
  for (const server of servers)
    if (!/^(nats|tls):\/\/[^/\s]+$/.test(server))
      throw new InvalidArgumentError(`"${server}": expected nats://HOST:PORT or tls://HOST:PORT`)
  if (servers.length === 0) throw new InvalidArgumentError('expected nats://HOST:PORT')
  return [...previous, ...servers]
}

const subjectPrefix = (value: string) => {
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(value))
    throw new InvalidArgumentError(
      'dot-separated tokens of letters, digits, "-" and "_" (no wildcards)',
    )
  return value
}

function readSecret(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim()
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`)
  }
}

/** The NATS options of a bridge from the command's; secrets come from files or the environment. */
function natsOptions(options: BridgeCommandOptions): NatsBridgeOptions | undefined {
  if (options.nats.length === 0) return undefined
  const tls =
    options.natsCa || options.natsCert || options.natsKey
      ? {
          ...(options.natsCa ? { caFile: options.natsCa } : {}),
          ...(options.natsCert ? { certFile: options.natsCert } : {}),
          ...(options.natsKey ? { keyFile: options.natsKey } : {}),
        }
      : undefined
  return {
    servers: options.nats,
    ...(options.subjectPrefix ? { prefix: options.subjectPrefix } : {}),
    ...(options.natsUser !== undefined
      ? { user: options.natsUser, pass: options.natsPassword ?? '' }
      : {}),
    ...(options.natsToken !== undefined ? { token: options.natsToken } : {}),
    ...(options.natsNkey ? { nkeySeed: readSecret(options.natsNkey) } : {}),
    ...(options.natsCreds ? { credsFile: options.natsCreds } : {}),
    ...(tls ? { tls } : {}),
  }
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

const relayedSessions = (value: string) => {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 4_096)
    throw new InvalidArgumentError('must be an integer from 0 to 4096')
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
    .option(
      '--nats <servers>',
      'meet every other bridge on a NATS cluster: nats://HOST:PORT, comma-separated or repeated, for failover',
      natsServers,
      [],
    )
    .option(
      '--subject-prefix <prefix>',
      'first token of the NATS subjects; bridges meet only on the same one (default autobus)',
      subjectPrefix,
    )
    .option('--nats-user <name>', 'NATS user name')
    .addOption(
      new Option('--nats-password <password>', 'NATS password').env('AUTOBUS_NATS_PASSWORD'),
    )
    .addOption(new Option('--nats-token <token>', 'NATS token').env('AUTOBUS_NATS_TOKEN'))
    .option('--nats-nkey <file>', 'file holding the NKey seed (SU…) to authenticate with')
    .option('--nats-creds <file>', 'NATS credentials file (user JWT and NKey seed)')
    .option('--nats-ca <file>', 'CA certificate(s) to verify the NATS servers with (PEM)')
    .option('--nats-cert <file>', 'client certificate for NATS TLS (PEM)')
    .option('--nats-key <file>', 'key of the client certificate (PEM)')
    .option('--hop-limit <n>', 'longest path of links a route may take (default 8)', hopLimit)
    .option(
      '--relayed-sessions <n>',
      'sessions per stand-in passed on to the origin unread (default 16; 0 for none)',
      relayedSessions,
    )
    .option(
      '--json',
      'print {"ready": true, id, listen} and then one line per link going up or down',
    )
    .action(async (options: BridgeCommandOptions) => {
      if (options.listen.length === 0 && options.connect.length === 0 && options.nats.length === 0)
        throw new UsageError('give at least one --listen, --connect or --nats address')
      const nats = natsOptions(options)
      const stopped = host.interrupted()
      // Stand-ins are announced at once: the hold-off that spreads a
      // starting program's announcements would only delay what crosses.
      const bus = await createBus({ ...host.busOptions(true), holdOff: 0 })
      const bridge = createBridge({
        bus,
        listen: options.listen,
        connect: options.connect,
        ...(nats ? { nats } : {}),
        ...(options.hopLimit ? { hopLimit: options.hopLimit } : {}),
        ...(options.relayedSessions !== undefined
          ? { relayedSessions: options.relayedSessions }
          : {}),
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
