import { RemoteError } from '@autobus/protocol'
import { afterEach, describe, expect, it } from 'vitest'
import { connectService } from '../src/index.js'
import { OriginalService } from './original-service.js'

const standIns: OriginalService[] = []
afterEach(() => {
  for (const standIn of standIns.splice(0)) standIn.close()
})

async function original(watchAnswer: 'value' | 'bare') {
  const standIn = new OriginalService('legacy-1', watchAnswer, ['button'])
  standIn.values.set('light', 'on')
  standIns.push(standIn)
  const port = await standIn.listen()
  // A call timeout far longer than the test: nothing below may wait for an
  // answer the original never sends.
  const connection = await connectService(
    { host: '127.0.0.1', port, service: standIn.id },
    { callTimeout: 600_000 },
  )
  return { standIn, connection }
}

describe('our client against an original Autobus 2 service', () => {
  for (const watchAnswer of ['value', 'bare'] as const) {
    it(`watches, unwatches at once and watches again (watch answered ${watchAnswer === 'value' ? 'with' : 'without'} the value)`, async () => {
      const { standIn, connection } = await original(watchAnswer)
      // The original answers bind with {"service": id} and no features.
      expect(connection.features.size).toBe(0)
      expect(connection.service).toBe('legacy-1')
      expect(await connection.call('double', [21])).toBe(42)

      const values: unknown[] = []
      const subscription = await connection.watch('light', (value) => values.push(value))
      await expect.poll(() => values).toEqual(['on'])
      standIn.set('light', 'off')
      await expect.poll(() => values).toEqual(['on', 'off'])

      // Closing does not wait: the original never answers an unwatch.
      await subscription.close()
      const unwatch = await standIn.receivedLine((line) => line._command === 'unwatch')
      expect(unwatch).toMatchObject({ _type: 3, name: 'light' })

      // Watching again at once works (the original refuses only a second
      // watch of an object still watched) and its `changed` null from the
      // unwatch is not taken for the new value.
      const again: unknown[] = []
      await connection.watch('light', (value) => again.push(value))
      standIn.set('light', 'dim')
      await expect.poll(() => again).toEqual(['off', 'dim'])
      expect(values).toEqual(['on', 'off'])
      expect(standIn.received.filter((line) => line._command === 'watch')).toHaveLength(2)
      await connection.close()
      expect(again.at(-1)).toBeNull()
    })
  }

  it('listens and unlistens without waiting for an answer, and reads plain errors', async () => {
    const { standIn, connection } = await original('value')
    const presses: unknown[] = []
    const subscription = await connection.listen('button', (...args) => presses.push(args))
    standIn.fire('button', 'pressed')
    await expect.poll(() => presses).toEqual([['pressed']])
    await subscription.close()
    expect(await standIn.receivedLine((line) => line._command === 'unlisten')).toMatchObject({
      _type: 3,
      name: 'button',
    })
    const error = await connection.listen('buton', () => {}).catch((e: Error) => e)
    expect(error).toBeInstanceOf(RemoteError)
    expect((error as Error).message).toBe('No such event buton')
    await connection.close()
  })
})
