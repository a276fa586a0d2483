import { generateKey } from '@autobus/bus'
import { type Command, InvalidArgumentError } from 'commander'

const keyId = (value: string) => {
  if (!/^[A-Za-z0-9_-]{1,12}$/.test(value))
    throw new InvalidArgumentError('must be 1 to 12 letters, digits, "-" or "_"')
  return value
}

/**
 * `autobus keygen`: prints a new bus key, one line, for `AUTOBUS_KEY`, a
 * key file (`--key-file`) or `createBus({ key })`. Nothing is stored.
 */
export function addKeygenCommand(program: Command): void {
  program
    .command('keygen')
    .description('print a new bus key (one line: autobus-key-1:<id>:<secret>)')
    .option('--id <id>', 'the key id (default 8 random hex digits)', keyId)
    .action((options: { id?: string }) => {
      process.stdout.write(`${generateKey(options.id).text}\n`)
    })
}
