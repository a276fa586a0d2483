/**
 * Time as Autobus sees it; injected wherever behaviour depends on time
 * (heartbeats, deadlines, retries, discovery intervals) so that behaviour is
 * tested exactly under fake time.
 */
export interface Clock {
  now(): number
  setTimeout(run: () => void, ms: number): unknown
  clearTimeout(timer: unknown): void
}

/** The real clock. Timers do not keep the process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (run, ms) => {
    const timer = setTimeout(run, ms)
    timer.unref?.()
    return timer
  },
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
}
