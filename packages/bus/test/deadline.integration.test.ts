import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBus, UnreachableError } from '../src/index.js'

// Forced collections every 50 ms: a deadline that the garbage collector can
// take away (AbortSignal.timeout() inside AbortSignal.any() on Node 20) then
// never fires, and this test hangs instead of passing.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
let collector: NodeJS.Timeout | undefined
beforeAll(() => {
  collector = setInterval(() => gc(), 50)
})
afterAll(() => clearInterval(collector))

describe('bus deadlines under forced garbage collection', () => {
  it('waitForService and a proxy call time out on time: not early, and by the time a plain timer of the same length fires', async () => {
    await using bus = await createBus({ discovery: false, host: '127.0.0.1' })
    const proxy = bus.singleServiceProxy({ type: 'nothing' })
    // Node fires timers of the same length in the order they were started,
    // and runs what a timer's callback resolved before the next timer's. So a
    // plain timer started just after a deadline finds it fired if it is on
    // time, however late a loaded machine runs both; a deadline that was
    // collected, or that waits for anything more, has not.
    const timed = (wait: () => Promise<unknown>, timeout: number) => {
      const started = performance.now()
      let outcome: { error: unknown; elapsed: number } | undefined
      wait().then(
        () => {
          outcome = { error: undefined, elapsed: performance.now() - started }
        },
        (error: unknown) => {
          outcome = { error, elapsed: performance.now() - started }
        },
      )
      return new Promise<typeof outcome>((resolve) => setTimeout(() => resolve(outcome), timeout))
    }
    const [service, call] = await Promise.all([
      timed(() => bus.waitForService({ type: 'nothing' }, { timeout: 3_000 }), 3_000),
      timed(() => proxy.call('add', [1, 2], { timeout: 3_500 }), 3_500),
    ])
    expect(service?.error).toBeInstanceOf(UnreachableError)
    expect(service?.elapsed).toBeGreaterThanOrEqual(2_999)
    expect(call?.error).toBeInstanceOf(UnreachableError)
    expect(call?.elapsed).toBeGreaterThanOrEqual(3_499)
  })

  it('waitForService honours an abort and an already-known service', async () => {
    await using bus = await createBus({ discovery: false, host: '127.0.0.1' })
    const controller = new AbortController()
    const waiting = bus.waitForService({ type: 'late' }, { signal: controller.signal })
    controller.abort(new Error('no longer needed'))
    await expect(waiting).rejects.toThrow('no longer needed')
    const publication = bus.publish(bus.createService({ info: { type: 'late' } }))
    await expect(bus.waitForService({ type: 'late' }, { timeout: 0 })).resolves.toMatchObject({
      service: publication.service.id,
    })
  })
})
