import { readFileSync } from 'node:fs'
import { AutobusError, type BusOptions } from '@autobus/bus'
import { Command, CommanderError, Option } from 'commander'
import { err } from './colour.js'
import { addBridgeCommand } from './commands/bridge.js'
import { addCallCommand } from './commands/call.js'
import { addChannelCommand } from './commands/channel.js'
import { addConformanceCommand } from './commands/conformance.js'
import { addDashboardCommand } from './commands/dashboard.js'
import { addExampleCommand } from './commands/example.js'
import { addInfoCommand } from './commands/info.js'
import { addKeygenCommand } from './commands/keygen.js'
import { addListCommand } from './commands/list.js'
import { addListenCommand } from './commands/listen.js'
import { addServicesCommand } from './commands/services.js'
import { addTypesCommand } from './commands/types.js'
import { addWatchCommand } from './commands/watch.js'
import { ExitCode, exitCodeByErrorCode } from './exit.js'
import { type CommandHost, interrupted } from './host.js'
import { collect, port } from './options.js'
import { UsageError } from './target.js'

export { ExitCode } from './exit.js'

interface GlobalOptions {
  discoveryPort?: number
  interface?: string[]
  keyFile?: string
}

/** The command line's settings; `createBus` reads the environment for the rest. */
function busOptions(global: GlobalOptions, discovery: boolean): BusOptions {
  const options: BusOptions = { discovery }
  if (global.discoveryPort) options.discoveryPort = global.discoveryPort
  if (global.interface && global.interface.length > 0) options.interfaces = global.interface
  if (global.keyFile) options.key = readKeyFile(global.keyFile)
  return options
}

function readKeyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    throw new UsageError(`cannot read the key file ${path}: ${(error as Error).message}`)
  }
}

/** This package's version: `src/` and `dist/` both sit next to its package.json. */
function version(): string {
  const manifest = readFileSync(new URL('../package.json', import.meta.url), 'utf8')
  return (JSON.parse(manifest) as { version: string }).version
}

/** Builds the program; `run` parses and executes it. */
export function createProgram(): Command {
  const program = new Command('autobus')
    .description('Find, inspect and use Autobus services on the network.')
    .option(
      '--discovery-port <port>',
      'UDP discovery port (default 52722, or $AUTOBUS_DISCOVERY_PORT)',
      port,
    )
    .option(
      '--interface <name>',
      'announce and discover only on this interface (repeatable; or $AUTOBUS_INTERFACES)',
      collect,
    )
    .option('--key-file <path>', 'bus key(s), one per line, the first in use (or $AUTOBUS_KEY)')
    .version(version(), '-V, --version', 'print the version of @autobus/cli')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(err.red(text)) })

  const host: CommandHost = {
    busOptions: (discovery) => busOptions(program.opts<GlobalOptions>(), discovery),
    interrupted,
  }

  addListCommand(program, host)
  addServicesCommand(program, host)
  addInfoCommand(program, host)
  addCallCommand(program, host)
  addListenCommand(program, host)
  addWatchCommand(program, host)
  addChannelCommand(program, host)
  addExampleCommand(program, host)
  addConformanceCommand(program, host)
  addBridgeCommand(program, host)
  addTypesCommand(program, host)
  addKeygenCommand(program)

  addDashboardCommand(program, host)
  program.addOption(new Option('--no-color', 'plain output').hideHelp())
  return program
}

/** Runs the CLI; resolves with the exit code. */
export async function run(argv: readonly string[]): Promise<number> {
  const program = createProgram()
  try {
    await program.parseAsync(argv as string[], { from: 'user' })
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.Ok
  } catch (error) {
    return report(error)
  }
}

function report(error: unknown): number {
  if (error instanceof CommanderError) {
    if (error.exitCode === 0) return ExitCode.Ok
    return ExitCode.Usage
  }
  const message = error instanceof Error ? error.message : String(error)
  process.stderr.write(`${err.red('error:')} ${message}\n`)
  if (error instanceof UsageError || error instanceof TypeError) return ExitCode.Usage
  if (error instanceof AutobusError) return exitCodeByErrorCode[error.code]
  return ExitCode.Failed
}
