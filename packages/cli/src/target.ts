import type { ServiceFilter } from '@autobus/bus'

/** A service named directly, or a filter on info objects. */
export type Target =
  | { kind: 'address'; host: string; port: number; service: string }
  | { kind: 'filter'; filter: ServiceFilter }

/** A command-line mistake: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** A JSON value if the text is JSON, else the text itself. */
export function parseValue(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/**
 * Parses filter terms: `key=value` (equal; the value is JSON if it parses,
 * else a string), `key!=value` (not equal), `key` (present), `!key` (absent).
 */
export function parseFilter(terms: readonly string[]): ServiceFilter {
  const filter: Record<string, ServiceFilter[string]> = {}
  // A value is a JSON value or a string: what the filter compares with.
  const value = (text: string) => parseValue(text) as ServiceFilter[string]
  for (const term of terms) {
    const notEqual = term.indexOf('!=')
    const equal = term.indexOf('=')
    if (notEqual > 0) filter[term.slice(0, notEqual)] = { $ne: value(term.slice(notEqual + 2)) }
    else if (equal > 0) filter[term.slice(0, equal)] = value(term.slice(equal + 1))
    else if (term.startsWith('!') && term.length > 1) filter[term.slice(1)] = { $absent: true }
    else if (term.length > 0 && !term.includes('=')) filter[term] = { $present: true }
    else throw new UsageError(`invalid filter "${term}": use key=value, key!=value, key or !key`)
  }
  return filter
}

/** Parses `host:port/serviceId`, or comma-separated filter terms. */
export function parseTarget(text: string, extraFilters: readonly string[] = []): Target {
  const address = /^(\[[^\]]+\]|[^/:=!,]+):(\d{1,5})\/(.+)$/.exec(text)
  if (address) {
    const port = Number(address[2])
    if (port < 1 || port > 65535) throw new UsageError(`invalid port in "${text}"`)
    return {
      kind: 'address',
      host: address[1]!.replace(/^\[|\]$/g, ''),
      port,
      service: address[3]!,
    }
  }
  const terms = [...text.split(',').filter(Boolean), ...extraFilters]
  // A bare `key` is a filter term, but `host:port` or `host/service` without
  // `=` is an address with a part missing, not a key anyone meant.
  if (terms.length === 0 || (!text.includes('=') && /[:/]/.test(text))) {
    throw new UsageError(
      `invalid target "${text}": use host:port/serviceId or filter terms (key=value, key!=value, key, !key)`,
    )
  }
  return { kind: 'filter', filter: parseFilter(terms) }
}
