/** Why something closed: a connection, a session, a channel, a proxy, a bus. */
export interface CloseInfo {
  /** A short human-readable reason, e.g. "closed by peer", "slow consumer". */
  reason: string
  /** The error behind the close, if any. */
  error?: Error
}

/**
 * The one lifecycle shape of everything in Autobus that owns sockets, timers
 * or subscriptions: a `closed` promise that resolves (never rejects) once,
 * an idempotent `close()` that resolves with the same information once
 * everything is released, and `[Symbol.asyncDispose]` so `await using` works.
 *
 * @example
 * ```ts
 * import type { Closable } from '@autobus/protocol'
 *
 * async function report(thing: Closable): Promise<void> {
 *   const { reason } = await thing.closed
 *   console.log('closed:', reason)
 * }
 * ```
 */
export interface Closable {
  /** Resolves with the reason once closed, whoever closed it. */
  readonly closed: Promise<CloseInfo>
  /** Closes; idempotent. Resolves with the same value as {@link Closable.closed}. */
  close(reason?: string): Promise<CloseInfo>
  /** Same as `close()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>
}
