import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type Bus,
  type BusOptions,
  createBus,
  type DiscoveredService,
  InvalidArgumentsError,
  type Publication,
  RemoteError,
  Type,
  UnknownNameError,
} from '@autobus/bus'
import { afterEach, expect } from 'vitest'
import { type Bridge, createBridge, type LinkChange } from '../src/index.js'

/**
 * Buses and bridges in the test's own process, each bus on a discovery
 * port of its own on loopback: broadcast domains that only bridges join.
 * Everything made is closed after each test, last made first. `seed`
 * keeps each test file's ports apart from the others'.
 */
export function inProcess(seed: number) {
  const base = 21_000 + ((process.pid * seed) % 15_000)
  let nextPort = 0
  const closing: Array<{ close(): Promise<unknown> }> = []
  afterEach(async () => {
    for (const thing of closing.splice(0).reverse()) await thing.close()
  })

  /** Closes `thing` after the test. */
  function closeAfter<T extends { close(): Promise<unknown> }>(thing: T): T {
    closing.push(thing)
    return thing
  }

  return {
    closeAfter,
    async bus(options: BusOptions = {}): Promise<Bus> {
      return closeAfter(
        await createBus({
          discoveryPort: base + nextPort++,
          interfaces: ['lo'],
          holdOff: 0,
          host: '127.0.0.1',
          ...options,
        }),
      )
    },
    /** A bridge that retries links quickly. */
    bridge(options: Parameters<typeof createBridge>[0]): Bridge {
      return closeAfter(createBridge({ retryInitial: 20, retryMax: 200, ...options }))
    },
    socketPath(): string {
      return join(tmpdir(), `autobus-bridge-${process.pid}-${seed}-${nextPort++}.sock`)
    },
  }
}

/** The next time `target`'s link to a peer goes up (or down). */
export function nextChange(target: Bridge, up: boolean): Promise<LinkChange> {
  return new Promise((resolve) => {
    const on = (change: LinkChange) => {
      if (change.up !== up) return
      target.off('link', on)
      resolve(change)
    }
    target.on('link', on)
  })
}

/**
 * A service with one of each capability: `add` (which fires `added` and
 * sets `total`), `boom` (throws), an `echo` channel that greets with
 * `'hello'` and an `echo` byte stream.
 */
export function calculator(target: Bus) {
  const service = target.createService({ info: { type: 'test.calc', room: 'lab' }, doc: 'Adds' })
  const added = service.addEvent('added', { args: [Type.Number()] })
  const total = service.addObject('total', { value: Type.Number() }, 0)
  service.addFunction('add', { doc: 'Adds', args: [Type.Number(), Type.Number()] }, (a, b) => {
    total.set(total.value + a + b)
    added.fire(a + b)
    return a + b
  })
  service.addFunction('boom', {}, () => {
    throw new RangeError('kaboom')
  })
  service.addChannel('echo', {}, (channel) => {
    channel.send('hello')
    channel.on('message', (message) => channel.send(message))
  })
  service.addStream('echo', {}, (stream) => stream.pipe(stream))
  return service
}

/**
 * Uses every capability of the {@link calculator} published as
 * `publication`, through its stand-in `found` on the far bus `far`, and
 * checks each; then unpublishes it and checks that `far` hears the goodbye
 * within 1 s and the watch ends.
 */
export async function expectCarriedThenWithdrawn(
  far: Bus,
  found: DiscoveredService,
  publication: Publication,
): Promise<void> {
  const connection = await far.connect(found)
  expect(await connection.call('add', [1, 2])).toBe(3)
  await expect(connection.call('add', ['x'])).rejects.toBeInstanceOf(InvalidArgumentsError)
  await expect(connection.call('nothing')).rejects.toBeInstanceOf(UnknownNameError)
  const boom = (await connection.call('boom').catch((error) => error)) as RemoteError
  expect(boom).toBeInstanceOf(RemoteError)
  expect(boom.code).toBe('remote_error')
  expect(boom.remoteName).toBe('RangeError')
  const description = await connection.describe()
  expect(description.functions.add?.args).toHaveLength(2)
  expect(description.doc).toBe('Adds')

  const events: unknown[] = []
  await connection.listen('added', (sum) => events.push(sum))
  const values: unknown[] = []
  await connection.watch('total', (value) => values.push(value))
  expect(values).toEqual([3])
  connection.notify('add', [2, 2])
  const result = await new Promise((resolve, reject) =>
    connection.callback('add', [5, 5], resolve, reject),
  )
  expect(result).toBe(10)
  await expect.poll(() => values).toEqual([3, 7, 17])
  expect(events).toEqual([4, 10])

  const channel = await connection.openChannel('echo')
  const iterator = channel[Symbol.asyncIterator]()
  expect((await iterator.next()).value).toBe('hello')
  channel.send({ n: 1 })
  expect((await iterator.next()).value).toEqual({ n: 1 })
  channel.close()

  // Bytes that differ along the way, so that a piece out of place shows.
  const stream = await connection.openStream('echo')
  const payload = Buffer.alloc(3 * 1024 * 1024)
  for (let i = 0; i < payload.length; i++) payload[i] = i % 251
  const received: Buffer[] = []
  stream.on('data', (chunk: Buffer) => received.push(chunk))
  stream.end(payload)
  await new Promise((resolve) => stream.on('end', resolve))
  expect(Buffer.concat(received).equals(payload)).toBe(true)

  const gone = new Promise<number>((resolve) =>
    far.on('disappeared', (service) => {
      if (service.info.type === 'test.calc') resolve(Date.now())
    }),
  )
  const goodbye = Date.now()
  await publication.unpublish()
  expect((await gone) - goodbye).toBeLessThan(1_000)
  await expect.poll(() => values.at(-1)).toBe(null)
}
