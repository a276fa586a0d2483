import { InvalidArgumentError } from 'commander'

/** The help text of a `<target>` argument. */
export const TARGET_HELP =
  'host:port/serviceId, or filter terms joined by commas: key=value, key!=value, key, !key'

/** Parses a repeatable option into the list of its values. */
export const collect = (value: string, previous: string[] = []) => [...previous, value]

/** Parses a non-negative number of seconds. */
export const seconds = (value: string) => {
  const parsed = Number(value)
  if (!Number.isFinite(parsed) || parsed < 0)
    throw new InvalidArgumentError('must be a number of seconds')
  return parsed
}

/** Parses a TCP or UDP port number. */
export const port = (value: string) => {
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > 65535)
    throw new InvalidArgumentError('must be a port number')
  return parsed
}
