import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Bus, type BusOptions, createBus, Type } from '@autobus/bus'
import { afterEach } from 'vitest'
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
