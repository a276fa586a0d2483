/** Matches an info key that is present, whatever its value. */
export interface PresentMatcher {
  readonly $present: true
}
/** Matches an info key that is absent. */
export interface AbsentMatcher {
  readonly $absent: true
}
/** Matches an info key that is absent or has another value. */
export interface NotEqualMatcher {
  readonly $ne: unknown
}
/** Matches an info key whose value is one of these. */
export interface OneOfMatcher {
  readonly $in: readonly unknown[]
}

/** A JSON value an info key is compared with for equality. */
export type FilterValue =
  | string
  | number
  | boolean
  | null
  | readonly FilterValue[]
  // An object whose only key starts with `$` would be read as a matcher:
  // a misspelt matcher (`{ $present: 'yes' }`) does not compile.
  | ({ readonly [key: string]: FilterValue } & {
      readonly $present?: never
      readonly $absent?: never
      readonly $ne?: never
      readonly $in?: never
    })

/** What one info key must be: a plain JSON value means "equal to". */
export type Matcher = PresentMatcher | AbsentMatcher | NotEqualMatcher | OneOfMatcher | FilterValue

/**
 * A filter on info objects: a service matches when every key matches.
 *
 * @example
 * ```ts
 * const filter: ServiceFilter = { type: 'speaker', room: oneOf('kitchen', 'hall'), muted: absent() }
 * ```
 */
export type ServiceFilter = Readonly<Record<string, Matcher>>

/** Matches a key that is present, whatever its value. */
export const present = (): PresentMatcher => ({ $present: true })
/** Matches a key that is absent. */
export const absent = (): AbsentMatcher => ({ $absent: true })
/** Matches a key that is absent or not equal to `value`. */
export const notEqual = (value: unknown): NotEqualMatcher => ({ $ne: value })
/** Matches a key equal to one of `values`. */
export const oneOf = (...values: unknown[]): OneOfMatcher => ({ $in: values })

function isMatcher(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const keys = Object.keys(value)
  return keys.length === 1 && ['$present', '$absent', '$ne', '$in'].includes(keys[0]!)
}

/** Deep equality of JSON values. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a)) {
    const other = b as unknown[]
    return a.length === other.length && a.every((item, i) => jsonEqual(item, other[i]))
  }
  const left = a as Record<string, unknown>
  const right = b as Record<string, unknown>
  const keys = Object.keys(left)
  return (
    keys.length === Object.keys(right).length &&
    keys.every((key) => Object.hasOwn(right, key) && jsonEqual(left[key], right[key]))
  )
}

/** True if `info` matches every key of `filter`. An empty filter matches all. */
export function matchesFilter(
  info: Readonly<Record<string, unknown>>,
  filter: ServiceFilter = {},
): boolean {
  for (const key of Object.keys(filter)) {
    // Read as it comes off the wire or a command line, not as typed.
    const matcher: unknown = filter[key]
    const has = Object.hasOwn(info, key)
    const value = has ? info[key] : undefined
    if (isMatcher(matcher)) {
      if ('$present' in matcher && !has) return false
      if ('$absent' in matcher && has) return false
      if ('$ne' in matcher && has && jsonEqual(value, matcher.$ne)) return false
      if (
        '$in' in matcher &&
        !(
          has &&
          Array.isArray(matcher.$in) &&
          matcher.$in.some((option) => jsonEqual(value, option))
        )
      )
        return false
    } else if (!has || !jsonEqual(value, matcher)) {
      return false
    }
  }
  return true
}
