/**
 * The `autobus` command-line tool, and the example service it publishes.
 *
 * @example
 * ```sh
 * autobus list
 * autobus call type=autobus.example add 1 2
 * ```
 *
 * @packageDocumentation
 */
export { createProgram, ExitCode, run } from './cli.js'
export {
  addConformanceCommand,
  type ConformanceHost,
  createConformanceService,
} from './commands/conformance.js'
export { createExampleService, EXAMPLE_TYPE } from './example.js'
export type { CommandHost } from './host.js'
export { parseFilter, parseTarget, type Target, UsageError } from './target.js'
