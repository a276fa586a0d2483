import { afterEach, describe, expect, it, vi } from 'vitest'
import { createMemoryPair } from '../src/index.js'

afterEach(() => {
  vi.useRealTimers()
})

describe('heartbeats to a silent peer (docs/protocol.md §3.3)', () => {
  it('ping after the interval, again every half interval, and close at the timeout', () => {
    vi.useFakeTimers()
    const [a] = createMemoryPair()
    const pings: number[] = []
    const start = Date.now()
    a.startHeartbeat({
      interval: 5_000,
      timeout: 15_000,
      ping: () => pings.push(Date.now() - start),
    })
    vi.advanceTimersByTime(14_999)
    expect(a.isClosed).toBe(false)
    expect(pings).toEqual([5_000, 7_500, 10_000, 12_500])
    vi.advanceTimersByTime(1)
    expect(a.isClosed).toBe(true)
  })
})
