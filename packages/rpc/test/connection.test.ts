import { once } from 'node:events'
import {
  BusyError,
  CallTimeoutError,
  ConnectionLostError,
  InvalidArgumentsError,
  RefusedError,
  RemoteError,
  UnknownNameError,
} from '@autobus/protocol'
import { manualClock } from '@autobus/testkit'
import { describe, expect, it } from 'vitest'
import { memoryPair } from './fixture.js'

describe('functions', () => {
  it('returns results, validates arguments first and carries remote errors', async () => {
    const { connection } = await memoryPair()
    expect(await connection.call('add', [2, 3])).toBe(5)
    expect(await connection.call('echo', [{ a: [1, 'x'] }])).toEqual({ a: [1, 'x'] })
    expect(await connection.call('untyped', [1, 2, 3])).toBe(3)
    await expect(connection.call('add', [1, 'two'])).rejects.toBeInstanceOf(InvalidArgumentsError)
    await expect(connection.call('add', [1, 2, 3])).rejects.toThrow(/takes 2 arguments, got 3/)
    await expect(connection.call('echo', [1, 2])).rejects.toThrow(/takes 1 argument, got 2/)
    await expect(connection.call('nope')).rejects.toBeInstanceOf(UnknownNameError)
    const error = (await connection.call('fail', ['it broke']).catch((e: Error) => e)) as Error
    expect(error).toBeInstanceOf(RemoteError)
    expect(error).toMatchObject({
      message: 'it broke',
      remoteName: 'CustomError',
      remoteStack: undefined,
    })
  })

  it('supports fire-and-forget and callbacks', async () => {
    const { connection, counter } = await memoryPair()
    connection.notify('increment')
    await expect.poll(() => counter.value).toBe(1)
    const result = await new Promise((resolve, reject) =>
      connection.callback('add', [1, 1], resolve, reject),
    )
    expect(result).toBe(2)
    const error = await new Promise((resolve) =>
      connection.callback('fail', ['x'], () => {}, resolve),
    )
    expect(error).toBeInstanceOf(RemoteError)
  })

  it('times out, honours abort signals and refuses past the pending limit', async () => {
    const { connection } = await memoryPair({ maxPendingCalls: 2 })
    await expect(connection.call('sleep', [200], { timeout: 20 })).rejects.toBeInstanceOf(
      CallTimeoutError,
    )
    const controller = new AbortController()
    const aborted = connection.call('sleep', [200], { signal: controller.signal })
    controller.abort(new Error('no longer needed'))
    await expect(aborted).rejects.toThrow('no longer needed')
    const slow = [connection.call('sleep', [50]), connection.call('sleep', [50])]
    await expect(connection.call('add', [1, 2])).rejects.toBeInstanceOf(BusyError)
    await Promise.all(slow)
  })

  it('times out each call on its own deadline, whatever the order they were sent in', async () => {
    const time = manualClock()
    const { connection } = await memoryPair({ clock: time.clock })
    const settled: string[] = []
    const track = (name: string, promise: Promise<unknown>) =>
      promise.then(
        () => settled.push(`${name} ok`),
        (error: Error) => settled.push(`${name} ${error.name}`),
      )
    const all = Promise.all([
      track('long', connection.call('sleep', [60_000], { timeout: 2_000 })),
      track('slow', connection.call('sleep', [60_000], { timeout: 100 })),
      track('short', connection.call('sleep', [60_000], { timeout: 30 })),
      track('fast', connection.call('add', [1, 2], { timeout: 1_000 })),
    ])
    await expect.poll(() => settled).toEqual(['fast ok'])
    time.advance(29)
    expect(settled).toEqual(['fast ok'])
    time.advance(1)
    await expect.poll(() => settled).toEqual(['fast ok', 'short CallTimeoutError'])
    time.advance(69)
    expect(settled).toEqual(['fast ok', 'short CallTimeoutError'])
    time.advance(1)
    await expect
      .poll(() => settled)
      .toEqual(['fast ok', 'short CallTimeoutError', 'slow CallTimeoutError'])
    time.advance(1_900)
    await all
    expect(settled).toEqual([
      'fast ok',
      'short CallTimeoutError',
      'slow CallTimeoutError',
      'long CallTimeoutError',
    ])
  })

  it('rejects pending calls with ConnectionLostError when the connection dies', async () => {
    const { connection, serverEnd } = await memoryPair()
    const pending = connection.call('sleep', [10_000])
    serverEnd.close('server died')
    const error = (await pending.catch((e: Error) => e)) as Error
    expect(error).toBeInstanceOf(ConnectionLostError)
    expect(error.message).toMatch(/may have run/)
    await expect(connection.call('add', [1, 2])).rejects.toBeInstanceOf(ConnectionLostError)
  })
})

describe('events and objects', () => {
  it('delivers events to every local listener until unsubscribed', async () => {
    const { connection, ticked } = await memoryPair()
    const a: unknown[] = []
    const b: unknown[] = []
    const subA = await connection.listen('ticked', (n) => a.push(n))
    const subB = await connection.listen('ticked', (n) => b.push(n))
    expect(ticked.listenerCount).toBe(1)
    await connection.call('tick')
    await expect.poll(() => a).toEqual([1])
    await subA.close()
    await connection.call('tick')
    await expect.poll(() => b).toEqual([1, 2])
    expect(a).toEqual([1])
    await subB.close()
    await expect.poll(() => ticked.listenerCount).toBe(0)
    await expect(connection.listen('nope', () => {})).rejects.toBeInstanceOf(UnknownNameError)
  })

  it('gives watchers the initial value, each change, then null when the connection dies', async () => {
    const { connection, counter } = await memoryPair()
    counter.set(10)
    const seen: unknown[] = []
    await connection.watch('counter', (value) => seen.push(value))
    counter.set(11)
    await connection.call('increment')
    await expect.poll(() => seen).toEqual([10, 11, 12])
    const second: unknown[] = []
    await connection.watch('counter', (value) => second.push(value))
    expect(second).toEqual([12])
    await connection.close()
    expect(seen).toEqual([10, 11, 12, null])
    expect(second).toEqual([12, null])
  })
})

describe('channels', () => {
  it('carries messages both ways, as events and as an async iterable', async () => {
    const { connection } = await memoryPair()
    const channel = await connection.openChannel('echo')
    channel.send({ hello: 'world' })
    channel.send([1, 2])
    const received: unknown[] = []
    for await (const message of channel) {
      received.push(message)
      if (received.length === 2) break
    }
    expect(received).toEqual([{ hello: 'world' }, [1, 2]])
    channel.send('close')
    expect(await channel.closed).toEqual({ reason: 'asked to', byPeer: true })
    expect(() => channel.send(1)).toThrow(/closed/)
  })

  it('tells the service when the client closes or dies', async () => {
    const { connection, service } = await memoryPair()
    const serviceSide: Array<Promise<unknown>> = []
    service.addChannel('watched', {}, (channel) => {
      serviceSide.push(channel.closed)
    })
    const first = await connection.openChannel('watched')
    first.close('bye')
    await expect.poll(() => serviceSide.length).toBe(1)
    expect(await serviceSide[0]).toEqual({ reason: 'bye', byPeer: true })
    const second = await connection.openChannel('watched')
    await connection.close('client died')
    expect(await serviceSide[1]).toMatchObject({
      byPeer: true,
      reason: expect.stringMatching(/connection lost/),
    })
    expect((await second.closed).reason).toMatch(/connection lost/)
  })

  it('reports refusals and validates messages against the schema', async () => {
    const { connection } = await memoryPair()
    await expect(connection.openChannel('refuse')).rejects.toBeInstanceOf(RefusedError)
    await expect(connection.openChannel('nope')).rejects.toBeInstanceOf(UnknownNameError)
    const numbers = await connection.openChannel('numbers')
    numbers.send(4)
    expect((await once(numbers, 'message'))[0]).toBe(4)
    numbers.send('not a number')
    expect((await numbers.closed).reason).toMatch(/invalid message/)
  })
})

describe('streams', () => {
  it('echoes a large payload with backpressure end to end', async () => {
    const { connection } = await memoryPair()
    const stream = await connection.openStream('echo')
    const payload = Buffer.alloc(3 * 1024 * 1024)
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff
    const chunks: Buffer[] = []
    stream.on('data', (chunk: Buffer) => chunks.push(chunk))
    const ended = once(stream, 'end')
    stream.end(payload)
    await ended
    expect(Buffer.concat(chunks).equals(payload)).toBe(true)
  })

  it('errors the stream when the connection dies', async () => {
    const { connection, serverEnd } = await memoryPair()
    const stream = await connection.openStream('echo')
    const errored = once(stream, 'error')
    serverEnd.close('gone')
    const [error] = await errored
    expect(error).toBeInstanceOf(ConnectionLostError)
  })
})

describe('connection lifecycle', () => {
  it('describes the service', async () => {
    const { connection, service } = await memoryPair()
    const description = await connection.describe()
    expect(description.service).toBe(service.id)
    expect(description.functions.add).toMatchObject({
      doc: 'Adds',
      args: [{ type: 'number' }, { type: 'number' }],
    })
    expect(description.events.ticked?.doc).toBe('Fired by tick')
    expect(description.objects.counter?.value).toEqual({ type: 'integer' })
    expect(Object.keys(description.channels)).toEqual(['echo', 'refuse', 'numbers'])
    expect(description.streams.echo?.doc).toBe('Echoes bytes')
  })

  it('resolves closed with the reason even when read after the connection died', async () => {
    const { connection } = await memoryPair()
    await connection.close('done here')
    const info = await connection.closed
    expect(info).toEqual({ reason: 'done here' })
  })

  it('rejects argument misuse with a clear TypeError', async () => {
    const { connection } = await memoryPair()
    await expect(connection.call(42 as unknown as string)).rejects.toBeInstanceOf(TypeError)
  })
})
