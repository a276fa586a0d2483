import { ClosedError } from '@autobus/protocol'
import Type from 'typebox'
import { describe, expect, it } from 'vitest'
import { type CallContext, connectService, createService, serve } from '../src/index.js'

describe('closing a server while calls run', () => {
  it('aborts the handlers and answers their callers with ClosedError at once', async () => {
    const service = createService()
    const aborted: unknown[] = []
    let started!: () => void
    let count = 0
    const running = new Promise<void>((resolve) => {
      started = () => {
        if (++count === 2) resolve()
      }
    })
    service
      .addFunction('wait', { args: [Type.Integer()] }, (_ms, { signal }) => {
        started()
        return new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            aborted.push(signal.reason)
            reject(signal.reason)
          })
        })
      })
      .addFunction('untyped', {}, function (this: CallContext) {
        started()
        return new Promise((_resolve, reject) => {
          this.signal.addEventListener('abort', () => {
            aborted.push(this.signal.reason)
            reject(this.signal.reason)
          })
        })
      })
    const server = await serve([service], { host: '127.0.0.1' })
    const connection = await connectService({
      host: '127.0.0.1',
      port: server.port,
      service: service.id,
    })
    const typed = connection.call('wait', [600_000]).catch((error: Error) => error)
    const untyped = connection.call('untyped').catch((error: Error) => error)
    await running
    expect(server.stats.running).toBe(2)
    const closed = server.close('maintenance')
    const [first, second] = await Promise.all([typed, untyped])
    expect(first).toBeInstanceOf(ClosedError)
    expect((first as Error).message).toMatch(/maintenance/)
    expect(second).toBeInstanceOf(ClosedError)
    expect(aborted).toHaveLength(2)
    expect(aborted[0]).toBeInstanceOf(ClosedError)
    await closed
  })

  it('gives a typed handler the context after its declared arguments, whatever was sent', async () => {
    const service = createService()
    service.addFunction('shape', { args: [Type.Integer(), Type.Unknown()] }, (...args: unknown[]) =>
      args.map((arg) => (arg instanceof Object ? 'context' : (arg ?? null))),
    )
    await using server = await serve([service], { host: '127.0.0.1' })
    const connection = await connectService({
      host: '127.0.0.1',
      port: server.port,
      service: service.id,
    })
    expect(await connection.call('shape', [1])).toEqual([1, null, 'context'])
    await connection.close()
  })
})
