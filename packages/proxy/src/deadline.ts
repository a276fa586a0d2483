import type { Clock } from '@autobus/protocol'

/** Timers that keep the process alive while a deadline runs. */
const nativeTimers = {
  setTimeout: (run: () => void, ms: number): unknown => setTimeout(run, ms),
  clearTimeout: (timer: unknown) => clearTimeout(timer as NodeJS.Timeout),
}

/**
 * A time limit owned by whoever waits: an AbortController aborted by our
 * own `setTimeout`, or by any of the given signals. The timer is held by
 * the event loop until it fires or {@link Deadline.clear} is called, so it
 * cannot be garbage-collected early the way `AbortSignal.timeout()` inside
 * `AbortSignal.any()` can on Node 20 (it then never fires).
 */
export interface Deadline {
  /** Aborts when the time is up or any given signal aborts. */
  readonly signal: AbortSignal
  /** True once aborted because the time was up (not by a given signal). */
  readonly expired: boolean
  /** Stops the timer and lets go of the given signals; call it once done. */
  clear(): void
}

/**
 * Starts a deadline of `timeout` ms (0 or less: on the next turn of the event
 * loop; Infinity: none) that also follows `signals`, timed by `clock` if one
 * is given (tests pass a fake one). Always `clear()` it when the wait is over.
 *
 * @example
 * ```ts
 * const deadline = createDeadline(3_000, [options.signal])
 * try {
 *   await somethingThatTakes({ signal: deadline.signal })
 * } finally {
 *   deadline.clear()
 * }
 * ```
 */
export function createDeadline(
  timeout: number,
  signals: ReadonlyArray<AbortSignal | undefined> = [],
  clock?: Clock,
): Deadline {
  const controller = new AbortController()
  let expired = false
  let timer: unknown
  const followed: AbortSignal[] = []
  const clear = () => {
    if (timer !== undefined) (clock ?? nativeTimers).clearTimeout(timer)
    timer = undefined
    for (const signal of followed.splice(0)) signal.removeEventListener('abort', onAbort)
  }
  function onAbort(this: AbortSignal) {
    clear()
    controller.abort(this.reason)
  }
  for (const signal of signals) {
    if (!signal) continue
    if (signal.aborted) {
      controller.abort(signal.reason)
      clear()
      break
    }
    signal.addEventListener('abort', onAbort, { once: true })
    followed.push(signal)
  }
  if (!controller.signal.aborted && Number.isFinite(timeout)) {
    // Not unref'd with the native timers: a program waiting for something
    // with a deadline must live to see the deadline.
    timer = (clock ?? nativeTimers).setTimeout(
      () => {
        timer = undefined
        expired = true
        clear()
        controller.abort(new DOMException('deadline expired', 'TimeoutError'))
      },
      Math.max(0, timeout),
    )
  }
  return {
    signal: controller.signal,
    get expired() {
      return expired
    },
    clear,
  }
}
