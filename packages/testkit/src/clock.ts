/** A clock that moves only when told to; fits `Clock` of `@autobus/protocol`. */
export interface ManualClock {
  readonly clock: {
    now(): number
    setTimeout(run: () => void, ms: number): unknown
    clearTimeout(timer: unknown): void
  }
  /** Moves time on by `ms`, running every timer it passes, earliest first. */
  advance(ms: number): void
  /** Timers set and not yet run or cleared. */
  readonly pending: number
}

/**
 * A clock for timing tests: nothing happens until `advance`, so a timer is
 * checked to the millisecond without waiting for it.
 *
 * @example
 * ```ts
 * const time = manualClock()
 * const connection = await connectService(target, { clock: time.clock })
 * time.advance(30_000) // a call sent before this has now timed out
 * ```
 */
export function manualClock(): ManualClock {
  let now = 0
  let nextId = 1
  const timers = new Map<number, { at: number; run: () => void }>()
  return {
    clock: {
      now: () => now,
      setTimeout: (run, ms) => {
        const id = nextId++
        timers.set(id, { at: now + Math.max(0, ms), run })
        return id
      },
      clearTimeout: (id) => {
        timers.delete(id as number)
      },
    },
    advance(ms) {
      const end = now + ms
      for (;;) {
        let due: [number, { at: number; run: () => void }] | undefined
        for (const entry of timers)
          if (entry[1].at <= end && (!due || entry[1].at < due[1].at)) due = entry
        if (!due) break
        timers.delete(due[0])
        now = due[1].at
        due[1].run()
      }
      now = end
    },
    get pending() {
      return timers.size
    },
  }
}
