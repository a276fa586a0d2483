/**
 * The conformance service: what a peer publishes so that the kit can check
 * its service side. docs/conformance.md defines it; this is the same
 * contract as constants.
 */
export const ConformanceService = {
  /** Info `type` of a conformance service. */
  type: 'autobus.conformance',
  /** Functions: `echo(x)` → x; `add(a, b)` → a + b (two numbers, validated); `fail(text)` throws with that text; `sleep(ms)` waits, → ms; `set(value)` sets object `value`, → null; `emit(x)` fires event `signal` with [x], → null. */
  functions: ['echo', 'add', 'fail', 'sleep', 'set', 'emit'],
  /** The event `emit` fires. */
  event: 'signal',
  /** The object `set` changes; its initial value is 0. */
  object: 'value',
  /** The channel that sends back every message, and the stream that sends back every byte. */
  channel: 'echo',
  stream: 'echo',
} as const

/** Every feature of docs/protocol.md §3.4, as the kit offers them. */
export const ALL_FEATURES = [
  'errors',
  'describe',
  'heartbeat',
  'channels',
  'streams',
  'attachments',
] as const

/**
 * The key the kit puts in its own discovery queries: it can take an answer
 * by unicast to the port the query came from (docs/protocol.md §2.4).
 */
export const QUERY_MARKER: Readonly<Record<string, unknown>> = { reply: 'unicast' }
