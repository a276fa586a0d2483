import type { ServiceDescription } from '@autobus/bus'
import type { Command } from 'commander'
import { out } from '../colour.js'
import type { CommandHost } from '../host.js'
import { withTarget } from '../open.js'
import { seconds, TARGET_HELP } from '../options.js'
import { line, withoutAddressKeys } from '../output.js'

function describeText(description: ServiceDescription): string {
  const text: string[] = []
  text.push(
    `${out.bold(description.service)}  ${JSON.stringify(withoutAddressKeys(description.info))}`,
  )
  if (description.doc) text.push(`  ${description.doc}`)
  const types = (schemas?: ReadonlyArray<Record<string, unknown>>) =>
    (schemas ?? [])
      .map((schema) => (typeof schema.type === 'string' ? schema.type : 'any'))
      .join(', ')
  const section = (
    title: string,
    entries: Record<string, { doc?: string | undefined }>,
    signature: (name: string, entry: any) => string,
  ) => {
    const names = Object.keys(entries)
    if (names.length === 0) return
    text.push('', out.bold(title))
    for (const name of names) {
      const entry = entries[name]!
      text.push(
        `  ${out.cyan(signature(name, entry))}${entry.doc ? `  ${out.dim(entry.doc)}` : ''}`,
      )
    }
  }
  section('Functions', description.functions, (name, entry) => {
    const result =
      entry.result && typeof entry.result.type === 'string' ? ` -> ${entry.result.type}` : ''
    return `${name}(${types(entry.args)})${result}`
  })
  section('Events', description.events, (name, entry) => `${name}(${types(entry.args)})`)
  section(
    'Objects',
    description.objects,
    (name, entry) => `${name}${entry.value?.type ? `: ${entry.value.type}` : ''}`,
  )
  section('Channels', description.channels, (name) => name)
  section('Streams', description.streams, (name) => name)
  return text.join('\n')
}

/** Adds `autobus info`: a service's description (docs/cli.md). */
export function addInfoCommand(program: Command, host: CommandHost): void {
  program
    .command('info')
    .description("describe a service's functions, events, objects, channels and streams")
    .argument('<target>', TARGET_HELP)
    .option('-w, --wait <seconds>', 'how long to wait for a matching service', seconds, 3)
    .option('--json', 'print the description as JSON')
    .action((text: string, options: { wait: number; json?: boolean }) =>
      withTarget(host, text, options.wait, async (connection) => {
        const description = await connection.describe()
        if (options.json) line(description)
        else process.stdout.write(`${describeText(description)}\n`)
      }),
    )
}
