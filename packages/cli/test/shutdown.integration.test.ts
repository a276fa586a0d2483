import { fileURLToPath } from 'node:url'
import { ClosedError, createBus } from '@autobus/bus'
import { spawnLines } from '@autobus/testkit'
import { describe, expect, it } from 'vitest'

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))

/** Rejects if `promise` has not settled within `ms`: a bound on shutdown logic, not on speed. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms)
  })
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer))
}

describe('autobus example stops while a call is running', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`on ${signal}: the caller gets ClosedError and the process exits within 1 s`, async () => {
      // A discovery port of its own, so the goodbyes go out without disturbing other tests.
      const discoveryPort = String(40_000 + (process.pid % 10_000) + (signal === 'SIGINT' ? 1 : 0))
      const example = spawnLines(process.execPath, [main, 'example', '--json'], {
        env: {
          ...process.env,
          NO_COLOR: '1',
          AUTOBUS_DISCOVERY_PORT: discoveryPort,
          AUTOBUS_INTERFACES: 'lo',
        },
      })
      try {
        const ready = await example.json()
        await using client = await createBus({ discovery: false })
        const connection = await client.connect({
          host: '127.0.0.1',
          port: ready.port,
          service: ready.service,
        })
        const sleeping = connection.call('sleep', [600_000]).catch((error: Error) => error)
        // Answered in order: once echo is back, sleep is running on the service.
        expect(await connection.call('echo', ['here'])).toBe('here')
        example.kill(signal)
        const error = await within(sleeping, 1_000, 'the answer to the running call')
        expect(error).toBeInstanceOf(ClosedError)
        expect(await within(example.exited, 1_000, 'exiting')).toBe(0)
      } finally {
        example.kill()
      }
    })
  }
})
