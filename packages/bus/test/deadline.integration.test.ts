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
  it('waitForService and a proxy call time out within 10 % of their timeout', async () => {
    await using bus = await createBus({ discovery: false, host: '127.0.0.1' })
    const proxy = bus.singleServiceProxy({ type: 'nothing' })
    const timed = async (wait: () => Promise<unknown>) => {
      const started = performance.now()
      const error = await wait().then(
        () => undefined,
        (error: unknown) => error,
      )
      return { error, elapsed: performance.now() - started }
    }
    const [service, call] = await Promise.all([
      timed(() => bus.waitForService({ type: 'nothing' }, { timeout: 3_000 })),
      timed(() => proxy.call('add', [1, 2], { timeout: 3_500 })),
    ])
    expect(service.error).toBeInstanceOf(UnreachableError)
    expect(service.elapsed).toBeGreaterThanOrEqual(2_999)
    expect(service.elapsed).toBeLessThanOrEqual(3_300)
    expect(call.error).toBeInstanceOf(UnreachableError)
    expect(call.elapsed).toBeGreaterThanOrEqual(3_499)
    expect(call.elapsed).toBeLessThanOrEqual(3_850)
  }, 10_000)

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
