import { format } from 'node:util'
import type { Logger } from '@autobus/protocol'

/** How many lines the debug logger writes per second at most. */
export const MAX_LOG_LINES_PER_SECOND = 200

/**
 * The logger `AUTOBUS_DEBUG=1` and `DEBUG=autobus:*` install: one line per
 * event on stderr (or `write`), the level after the message's
 * `autobus:<layer>` prefix. An error detail shows its name and message, not
 * its stack, so each event stays one line that `grep` can pick out. A flood
 * of bad input must not become a flood of output: beyond
 * {@link MAX_LOG_LINES_PER_SECOND} lines in a second the rest are counted,
 * and one line says how many were left out.
 */
export function stderrLogger(
  write: (line: string) => void = (line) => process.stderr.write(line),
  now: () => number = Date.now,
): Logger {
  let windowStart = Number.NEGATIVE_INFINITY
  let written = 0
  let suppressed = 0
  const admit = (): boolean => {
    const time = now()
    if (time - windowStart >= 1_000) {
      if (suppressed > 0)
        write(
          `autobus:log warn ${suppressed} lines left out (over ${MAX_LOG_LINES_PER_SECOND} a second)\n`,
        )
      windowStart = time
      written = 0
      suppressed = 0
    }
    if (written < MAX_LOG_LINES_PER_SECOND) {
      written++
      return true
    }
    suppressed++
    return false
  }
  const line =
    (level: string) =>
    (message: string, ...details: unknown[]) => {
      if (!admit()) return
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
