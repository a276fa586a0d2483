import { afterEach, describe, expect, it, vi } from 'vitest'
import { FramedConnection } from '../src/connection.js'

afterEach(() => {
  vi.useRealTimers()
})

/** A connection fed by hand that records when it stops and starts reading. */
class FedConnection extends FramedConnection {
  readonly remoteAddress = 'test'
  readonly remotePort = 0
  readonly reading: Array<[reading: boolean, at: number]> = []
  get needsDrain(): boolean {
    return false
  }
  protected get queuedBytes(): number {
    return 0
  }
  protected write(): void {}
  protected destroy(): void {}
  protected override setReading(reading: boolean): void {
    this.reading.push([reading, Date.now()])
  }
  feed(bytes: string | Buffer): void {
    this.receive(Buffer.from(bytes))
  }
}

const MiB = 1024 * 1024
const half = 1_000_000
// About 2 MB, refused for its depth from its first bytes.
const deep = `{"_type":1,"_id":1,"_command":"call","name":"f","args":[${'['.repeat(half)}${']'.repeat(half)}]}\n`

describe('refused frames are read within a budget', () => {
  it('reads 4 MiB of refused frames at once, then pauses reading until the budget has refilled', () => {
    vi.useFakeTimers({ now: 0 })
    const connection = new FedConnection({ refusedBytesPerSecond: MiB })
    const invalid: string[] = []
    connection.on('invalid', (error) => invalid.push(error.code))
    connection.feed(deep)
    connection.feed(deep)
    expect(connection.reading).toEqual([])
    // The third frame goes past the 4 MiB burst by about 1.8 MB: at 1 MiB/s
    // that is a pause of about 1.7 s.
    connection.feed(deep)
    expect(invalid).toEqual(['too_deep', 'too_deep', 'too_deep'])
    const over = 3 * Buffer.byteLength(deep) - 3 - 4 * MiB
    const pause = Math.ceil((over / MiB) * 1000)
    expect(connection.reading).toEqual([[false, 0]])
    vi.advanceTimersByTime(pause - 1)
    expect(connection.reading).toEqual([[false, 0]])
    vi.advanceTimersByTime(1)
    expect(connection.reading).toEqual([
      [false, 0],
      [true, pause],
    ])
    // Valid messages never use the budget.
    const messages: unknown[] = []
    connection.on('message', (message) => messages.push(message))
    for (let i = 0; i < 1_000; i++) connection.feed('{"_type":1,"_id":2,"_command":"ping"}\n')
    expect(messages).toHaveLength(1_000)
    expect(connection.reading).toHaveLength(2)
    connection.close()
  })

  it('stops no timer of its own after close', () => {
    vi.useFakeTimers({ now: 0 })
    const connection = new FedConnection({ refusedBytesPerSecond: MiB })
    for (let i = 0; i < 3; i++) connection.feed(deep)
    expect(connection.reading).toEqual([[false, 0]])
    connection.close()
    vi.runAllTimers()
    expect(connection.reading).toEqual([[false, 0]])
  })
})
