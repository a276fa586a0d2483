import { afterEach } from 'vitest'
import { type Bus, type BusOptions, createBus } from '../src/index.js'

/**
 * A test file's buses: each made with `defaults` under the call's own
 * options, all closed after each test.
 */
export function closedAfterEach(defaults: BusOptions): (options?: BusOptions) => Promise<Bus> {
  const buses: Bus[] = []
  afterEach(async () => {
    await Promise.all(buses.splice(0).map((bus) => bus.close()))
  })
  return async (options = {}) => {
    const created = await createBus({ ...defaults, ...options })
    buses.push(created)
    return created
  }
}

/**
 * Buses on loopback only, on a discovery port of the test file's own
 * (`seed` tells the files apart), announcing at once.
 */
export function onLoopback(seed: number): BusOptions {
  return {
    discoveryPort: 20_000 + ((process.pid + seed) % 20_000),
    interfaces: ['lo'],
    holdOff: 0,
    host: '127.0.0.1',
  }
}
