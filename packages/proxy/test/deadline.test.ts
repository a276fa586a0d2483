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

/** Runs `wait`, which must reject, and returns how long it took in ms. */
async function timed(wait: () => Promise<unknown>): Promise<{ elapsed: number; error: unknown }> {
  const started = performance.now()
  const error = await wait().then(
    () => new Error('resolved'),
    (error: unknown) => error,
  )
  return { elapsed: performance.now() - started, error }
}

const within10Percent = (elapsed: number, timeout: number) => {
  expect(elapsed).toBeGreaterThanOrEqual(timeout - 1)
  expect(elapsed).toBeLessThanOrEqual(timeout * 1.1)
}

describe('deadlines under forced garbage collection', () => {
  it('a proxy wait and a proxy call time out within 10 % of their timeout', async () => {
    const proxy = createSingleServiceProxy({
      directory: new EmptyDirectory(),
      connect: () => Promise.reject(new Error('unused')),
      filter: { type: 'nothing' },
    })
    const [wait, call] = await Promise.all([
      timed(() => proxy.waitForBind({ timeout: 3_000 })),
      timed(() => proxy.call('add', [1, 2], { timeout: 3_500 })),
    ])
    expect(wait.error).toBeInstanceOf(UnreachableError)
    within10Percent(wait.elapsed, 3_000)
    expect(call.error).toBeInstanceOf(UnreachableError)
    within10Percent(call.elapsed, 3_500)
    await proxy.close()
  }, 10_000)

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
