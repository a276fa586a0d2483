import { SlowConsumerError } from '@autobus/protocol'
import { describe, expect, it } from 'vitest'
import { NatsLinkConnection, type SegmentCarrier, type SegmentHeader } from '../src/nats-link.js'

type Segment = { header: SegmentHeader; body: Buffer | undefined }

/**
 * Two link ends joined by a carrier that may lose, repeat or hold back
 * segments, as NATS may when a server dies.
 */
function pair(
  options: {
    segmentSize?: number
    window?: number
    maxQueuedBytes?: number
    maxMessage?: number
  } = {},
) {
  const queues: Record<string, Segment[]> = { a: [], b: [] }
  let fate: (segment: Segment) => 'deliver' | 'drop' | 'twice' | 'hold' = () => 'deliver'
  const held: Array<[string, Segment]> = []
  const carrier = (self: string): SegmentCarrier => ({
    segmentSize: options.segmentSize ?? 1024,
    publish(peer, header, body) {
      const segment = { header: { ...header }, body: body ? Buffer.from(body) : undefined }
      const what = fate(segment)
      if (what === 'drop') return
      if (what === 'hold') held.push([peer, segment])
      else queues[peer]!.push(segment)
      if (what === 'twice') queues[peer]!.push(segment)
      void self
    },
  })
  const limits = { retransmitTimeout: 20, ...options }
  const a = new NatsLinkConnection(carrier('a'), 'b', 'e1', limits)
  const b = new NatsLinkConnection(carrier('b'), 'a', 'e1', limits)
  const ends: Record<string, NatsLinkConnection> = { a, b }
  // Delivery on later ticks, as a client would.
  const timer = setInterval(() => {
    for (const name of ['a', 'b']) {
      for (const segment of queues[name]!.splice(0))
        ends[name]!.segment(segment.header, segment.body)
    }
  }, 1)
  return {
    a,
    b,
    held,
    release() {
      for (const [peer, segment] of held.splice(0)) queues[peer]!.push(segment)
    },
    setFate(next: typeof fate) {
      fate = next
    },
    stop: () => clearInterval(timer),
  }
}

function collect(end: NatsLinkConnection): unknown[] {
  const received: unknown[] = []
  end.on('message', (message) => received.push((message as { n?: unknown }).n))
  return received
}

describe('a link over NATS', () => {
  it('delivers every message once and in order when segments are lost, repeated and late', async () => {
    const link = pair({ segmentSize: 64 })
    const received = collect(link.b)
    // A fixed sequence of chances, the same on every run.
    let seed = 42
    const chance = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
      return seed / 2 ** 31
    }
    link.setFate(() => {
      const roll = chance()
      if (roll < 0.1) return 'drop'
      if (roll < 0.2) return 'twice'
      if (roll < 0.25) return 'hold'
      return 'deliver'
    })
    const sent: number[] = []
    for (let n = 0; n < 200; n++) {
      // Some span several segments.
      link.a.send({
        _type: 3,
        _command: 'fired',
        name: 'x',
        args: ['y'.repeat(n % 3 === 0 ? 150 : 1)],
        n,
      })
      sent.push(n)
    }
    setTimeout(() => link.release(), 50)
    await expect.poll(() => received.length, { timeout: 5_000 }).toBe(200)
    link.release()
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(received).toEqual(sent)
    expect(link.a.retransmitted).toBeGreaterThan(0)
    link.stop()
  })

  it('carries an attachment cut in segments, whole', async () => {
    const link = pair({ segmentSize: 100 })
    const got = new Promise<Buffer>((resolve) =>
      link.b.on('message', (message) =>
        resolve((message as unknown as { _attachment: Buffer })._attachment),
      ),
    )
    const bytes = Buffer.alloc(1_000, 9)
    link.a.sendWithAttachment({ _type: 3, _command: 'fired', name: 'f', args: [1] }, bytes)
    expect((await got).equals(bytes)).toBe(true)
    link.stop()
  })

  it('carries the frames of one turn joined in one write as a message each', async () => {
    const link = pair({ segmentSize: 100 })
    const received: Array<{ n?: number; _attachment?: Buffer }> = []
    link.b.on('message', (message) => received.push(message as (typeof received)[number]))
    // Circuit frames of one turn: a header and `_size` bytes of text that
    // may hold newlines, then a line, then another header and its text.
    const frame = (n: number, text: string) =>
      `${JSON.stringify({ _type: 3, _command: 'fired', name: 'f', args: [n], _size: Buffer.byteLength(text) })}\n${text}`
    link.a.sendEncoded(
      `${frame(1, '{"a":1}\n{"é":2}\n')}${JSON.stringify({ _type: 3, _command: 'fired', name: 'g', args: [], n: 2 })}\n${frame(3, 'x'.repeat(250))}`,
    )
    await expect.poll(() => received.length).toBe(3)
    expect(received[0]!._attachment!.toString()).toBe('{"a":1}\n{"é":2}\n')
    expect(received[1]!.n).toBe(2)
    expect(received[2]!._attachment!.toString()).toBe('x'.repeat(250))
    expect(link.b.bytesReceived).toBeGreaterThan(250)
    link.stop()
  })

  it('asks producers to wait beyond the window and says when to go on', async () => {
    const link = pair({ segmentSize: 100, window: 300 })
    link.setFate(() => 'hold')
    for (let n = 0; n < 5; n++)
      link.a.send({ _type: 3, _command: 'fired', name: 'x', args: ['z'.repeat(80)], n })
    expect(link.a.needsDrain).toBe(true)
    // Only the window's worth (and the segment that crossed it) went to NATS.
    const inFlight = link.held.reduce((sum, [, segment]) => sum + (segment.body?.length ?? 0), 0)
    expect(inFlight).toBeLessThanOrEqual(300 + 100)
    expect(link.a.bytesQueued).toBeGreaterThan(inFlight)
    const drained = link.a.drained()
    link.setFate(() => 'deliver')
    link.release()
    await drained
    expect(link.a.needsDrain).toBe(false)
    link.stop()
  })

  it('drops a peer that acknowledges nothing once too much waits, with a typed reason', async () => {
    const link = pair({ segmentSize: 100, window: 100, maxQueuedBytes: 1_000 })
    link.setFate(() => 'drop')
    for (let n = 0; n < 20 && !link.a.isClosed; n++)
      link.a.send({ _type: 3, _command: 'fired', name: 'x', args: ['z'.repeat(80)], n })
    const info = await link.a.closed
    expect(info.reason).toBe('slow consumer')
    expect(info.error).toBeInstanceOf(SlowConsumerError)
    link.stop()
  })

  it('closes on a message over maxMessage, and the other end with it', async () => {
    const link = pair({ segmentSize: 100, maxMessage: 500 })
    link.a.send({ _type: 3, _command: 'fired', name: 'x', args: ['z'.repeat(800)] })
    expect((await link.b.closed).reason).toBe('message too large')
    expect((await link.a.closed).reason).toMatch(/closed by bridge b: message too large/)
    link.stop()
  })

  it('closes when nothing is heard within the heartbeat timeout', async () => {
    const link = pair()
    link.setFate(() => 'drop')
    let pings = 0
    link.a.startHeartbeat({ interval: 20, timeout: 100, ping: () => pings++ })
    const info = await link.a.closed
    expect(info.reason).toBe('heartbeat timeout')
    expect(pings).toBeGreaterThan(0)
    link.stop()
  })
})
