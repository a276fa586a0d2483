import { type Bus, Type } from '@autobus/bus'

/** Info `type` of the example service. */
export const EXAMPLE_TYPE = 'autobus.example'

/**
 * The example service: one of everything, documented in docs/cli.md.
 *
 * - `echo(x)` returns x; `add(a, b)` adds two numbers (validated);
 *   `fail(message)` throws with that message; `sleep(ms)` waits, returns ms;
 *   `tick()` fires `ticked` with the tick count; `increment()` increments
 *   object `counter` (from 0) and returns the new value.
 * - Channel `echo` and stream `echo` send back what they receive.
 */
export function createExampleService(bus: Bus, extraInfo: Record<string, unknown> = {}) {
  const service = bus.createService({
    info: { type: EXAMPLE_TYPE, ...extraInfo },
    doc: 'The Autobus example service: one of every capability.',
  })
  let ticks = 0
  const ticked = service.addEvent('ticked', {
    doc: 'Fired by tick() with the tick count.',
    args: [Type.Integer()],
  })
  const counter = service.addObject(
    'counter',
    { doc: 'Incremented by increment(); starts at 0.', value: Type.Integer() },
    0,
  )
  service
    .addFunction(
      'echo',
      { doc: 'Returns its argument.', args: [Type.Unknown()], result: Type.Unknown() },
      (x) => x,
    )
    .addFunction(
      'add',
      { doc: 'Adds two numbers.', args: [Type.Number(), Type.Number()], result: Type.Number() },
      (a, b) => a + b,
    )
    .addFunction(
      'fail',
      { doc: 'Throws an error with the given message.', args: [Type.String()] },
      (message) => {
        throw new Error(message)
      },
    )
    .addFunction(
      'sleep',
      {
        doc: 'Waits ms milliseconds, then returns ms.',
        args: [Type.Integer({ minimum: 0, maximum: 600_000 })],
      },
      // Stops waiting when the caller is gone or the service shuts down, so
      // a pending sleep never holds the process up.
      (ms, { signal }) => sleepUntilAborted(ms, signal),
    )
    .addFunction(
      'tick',
      {
        doc: 'Fires "ticked" with the tick count and returns it.',
        args: [],
        result: Type.Integer(),
      },
      () => {
        ticks++
        ticked.fire(ticks)
        return ticks
      },
    )
    .addFunction(
      'increment',
      { doc: 'Increments "counter" and returns the new value.', args: [], result: Type.Integer() },
      () => {
        counter.set(counter.value + 1)
        return counter.value
      },
    )
    .addChannel('echo', { doc: 'Sends back every message it receives.' }, (channel) => {
      channel.on('message', (message) => {
        if (!channel.isClosed) channel.send(message)
      })
    })
    .addStream('echo', { doc: 'Sends back every byte it receives.' }, (stream) => {
      stream.pipe(stream)
    })
  return service
}

/** Resolves with `ms` after `ms` milliseconds, or rejects with the signal's reason as soon as it aborts. */
export function sleepUntilAborted(ms: number, signal: AbortSignal): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', abort)
      resolve(ms)
    }, ms)
    const abort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    signal.addEventListener('abort', abort, { once: true })
  })
}
