import { format } from 'node:util'
import type { Logger } from '@autobus/protocol'

/**
 * The logger `AUTOBUS_DEBUG=1` and `DEBUG=autobus:*` install: one line per
 * event on stderr (or `write`), the level after the message's
 * `autobus:<layer>` prefix. An error detail shows its name and message, not
 * its stack, so each event stays one line that `grep` can pick out.
 */
export function stderrLogger(
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const line =
    (level: string) =>
    (message: string, ...details: unknown[]) => {
      const [prefix, ...rest] = message.split(' ')
      const text = [rest.join(' '), ...details.map(detail)].filter(Boolean).join(' ')
      const one = `${prefix} ${level} ${text}`.replace(/\s*\n\s*/g, ' ').trimEnd()
      write(`${one}\n`)
    }
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') }
}

function detail(value: unknown): string {
  if (value instanceof Error) return `(${value.name}: ${value.message})`
  return format('%o', value)
}
