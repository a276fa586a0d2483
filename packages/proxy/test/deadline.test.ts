import { EventEmitter } from 'node:events'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { DiscovererEvents } from '@autobus/discovery'
import { UnreachableError } from '@autobus/protocol'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createDeadline, createSingleServiceProxy, type ServiceDirectory } from '../src/index.js'

// Forced collections every 50 ms: a deadline that the garbage collector can
// take away (AbortSignal.timeout() inside AbortSignal.any() on Node 20) then
// never fires, and these tests hang instead of passing.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
let collector: NodeJS.Timeout | undefined
beforeAll(() => {
  collector = setInterval(() => gc(), 50)
})
afterAll(() => clearInterval(collector))

class EmptyDirectory extends EventEmitter<DiscovererEvents> implements ServiceDirectory {
  snapshot() {
    return []
  }
}

/**
 * Runs `wait`, which must reject, and returns its outcome as it stood when a
 * plain timer of `timeout` ms, started just after it, fired. Node fires
 * timers of one length in the order they were started, and runs what a
 * timer's callback resolved before the next timer's: a deadline on time has
 * fired by then however late a loaded machine runs both; one that was
 * collected, or that waits for anything more, has not.
 */
function timed(
  wait: () => Promise<unknown>,
  timeout: number,
): Promise<{ elapsed: number; error: unknown } | undefined> {
  const started = performance.now()
  let outcome: { elapsed: number; error: unknown } | undefined
  wait().then(
    () => {
      outcome = { elapsed: performance.now() - started, error: new Error('resolved') }
    },
    (error: unknown) => {
      outcome = { elapsed: performance.now() - started, error }
    },
  )
  return new Promise((resolve) => setTimeout(() => resolve(outcome), timeout))
}

describe('deadlines under forced garbage collection', () => {
  it('a proxy wait and a proxy call time out on time: not early, and by the time a plain timer of the same length fires', async () => {
    const proxy = createSingleServiceProxy({
      directory: new EmptyDirectory(),
      connect: () => Promise.reject(new Error('unused')),
      filter: { type: 'nothing' },
    })
    const [wait, call] = await Promise.all([
      timed(() => proxy.waitForBind({ timeout: 3_000 }), 3_000),
      timed(() => proxy.call('add', [1, 2], { timeout: 3_500 }), 3_500),
    ])
    expect(wait?.error).toBeInstanceOf(UnreachableError)
    expect(wait?.elapsed).toBeGreaterThanOrEqual(2_999)
    expect(call?.error).toBeInstanceOf(UnreachableError)
    expect(call?.elapsed).toBeGreaterThanOrEqual(3_499)
    await proxy.close()
  })

  it('a deadline fires once, follows a given signal, and lets go when cleared', () => {
    vi.useFakeTimers()
    try {
      const fired = createDeadline(300)
      vi.advanceTimersByTime(299)
      expect(fired.signal.aborted).toBe(false)
      vi.advanceTimersByTime(1)
      expect(fired.expired).toBe(true)
      expect((fired.signal.reason as Error).name).toBe('TimeoutError')
      const cleared = createDeadline(50)
      cleared.clear()
      vi.advanceTimersByTime(100)
      expect(cleared.signal.aborted).toBe(false)
    } finally {
      vi.useRealTimers()
    }

    const controller = new AbortController()
    const followed = createDeadline(60_000, [controller.signal])
    controller.abort(new Error('stop'))
    expect(followed.signal.aborted).toBe(true)
    expect(followed.expired).toBe(false)
    expect((followed.signal.reason as Error).message).toBe('stop')
    followed.clear()

    const already = createDeadline(60_000, [AbortSignal.abort('early')])
    expect(already.signal.reason).toBe('early')
  })
})
