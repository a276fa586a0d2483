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
  queued = 0
  get bytesSent(): number {
    return this.queued
  }
  protected override get queuedBytes(): number {
    return this.queued
  }
  protected write(data: string | Uint8Array): void {
    this.queued += data.length
  }
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

describe('a serving end stops reading a peer that does not take its answers', () => {
  it('pauses above the read watermark and reads again once the peer has drained', async () => {
    const connection = new FedConnection({ readWatermark: 1_000 })
    connection.on('message', (message) =>
      connection.send({ _type: 2, _id: message._id, pad: 'x'.repeat(100) }),
    )
    const request = (id: number) => `{"_type":1,"_id":${id},"_command":"ping"}\n`
    connection.feed(request(1))
    expect(connection.reading).toEqual([])
    // Answers joined in one turn are written when the turn ends.
    connection.feed(Array.from({ length: 20 }, (_, i) => request(i + 2)).join(''))
    await Promise.resolve()
    expect(connection.queued).toBeGreaterThan(1_000)
    expect(connection.reading.map(([reading]) => reading)).toEqual([false])
    connection.queued = 0
    connection.emit('drain')
    expect(connection.reading.map(([reading]) => reading)).toEqual([false, true])
    connection.close()
  })

  it('always reads when no watermark is set (the connecting end)', async () => {
    const connection = new FedConnection()
    connection.on('message', (message) =>
      connection.send({ _type: 2, _id: message._id, pad: 'x'.repeat(100_000) }),
    )
    for (let i = 0; i < 50; i++) connection.feed(`{"_type":1,"_id":${i},"_command":"ping"}\n`)
    await Promise.resolve()
    expect(connection.reading).toEqual([])
    connection.close()
  })
})

describe('text of every kind reads the same', () => {
  it('decodes ASCII chunks, UTF-8 chunks and characters split between chunks alike', () => {
    const connection = new FedConnection()
    const messages: unknown[] = []
    connection.on('message', (message) => messages.push(message))
    const frame = (id: number, text: string) =>
      `${JSON.stringify({ _type: 1, _id: id, _command: 'call', name: 'f', args: [text] })}\n`
    connection.feed(frame(1, 'plain') + frame(2, 'also plain'))
    connection.feed(frame(3, 'héllo wörld') + frame(4, 'plain after'))
    const split = Buffer.from(frame(5, '🚌 bus') + frame(6, 'end'))
    const cut = split.indexOf(Buffer.from('🚌')) + 2
    connection.feed(split.subarray(0, cut))
    connection.feed(split.subarray(cut))
    expect(messages.map((message) => (message as { args: string[] }).args[0])).toEqual([
      'plain',
      'also plain',
      'héllo wörld',
      'plain after',
      '🚌 bus',
      'end',
    ])
    connection.close()
  })
})

describe('reading paused by its owner', () => {
  it('stays paused through the end of a refused-frame pause until resumed, and resumes once', () => {
    vi.useFakeTimers({ now: 0 })
    const connection = new FedConnection({ refusedBytesPerSecond: MiB })
    connection.pauseReading()
    connection.pauseReading()
    expect(connection.reading).toEqual([[false, 0]])
    // Refused frames pause reading for their own reason; when that pause
    // ends, the owner's still holds.
    for (let i = 0; i < 3; i++) connection.feed(deep)
    vi.advanceTimersByTime(10_000)
    expect(connection.reading.filter(([reading]) => reading)).toEqual([])
    connection.resumeReading()
    connection.resumeReading()
    expect(connection.reading.filter(([reading]) => reading)).toEqual([[true, 10_000]])
  })

  it('is not resumed by its owner while a refused-frame pause runs', () => {
    vi.useFakeTimers({ now: 0 })
    const connection = new FedConnection({ refusedBytesPerSecond: MiB })
    for (let i = 0; i < 3; i++) connection.feed(deep)
    connection.pauseReading()
    connection.resumeReading()
    expect(connection.reading.filter(([reading]) => reading)).toEqual([])
    vi.advanceTimersByTime(10_000)
    expect(connection.reading.filter(([reading]) => reading)).toEqual([[true, expect.any(Number)]])
  })
})
