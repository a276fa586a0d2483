import { format } from 'node:util'
import type { Logger } from '@autobus/protocol'

/**
 * A logger that writes one line per event to stderr (or `write`), the level
 * after the message's `autobus:<layer>` prefix; an error detail is shown by
 * its name and message, not its stack, so each event stays one line.
 *
 * @example
 * ```ts
 * const bus = await createBus({ logger: stderrLogger() })
 * ```
 */
export function stderrLogger(
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const line =
    (level: string) =>
    (message: string, ...details: unknown[]) => {
      const [prefix, ...rest] = message.split(' ')
      const text = [rest.join(' '), ...details.map(detail)].filter(Boolean).join(' ')
      write(`${prefix} ${level} ${text}`.replace(/\s*\n\s*/g, ' ').trimEnd() + '\n')
    }
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') }
}

function detail(value: unknown): string {
  if (value instanceof Error) return `(${value.name}: ${value.message})`
  return format('%o', value)
}
