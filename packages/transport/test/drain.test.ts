import { EventEmitter } from 'node:events'
import { describe, expect, it } from 'vitest'
import { type MessageConnectionEvents, waitForDrain } from '../src/index.js'

/** Just what waitForDrain reads: the two flags and the two events. */
class Behind extends EventEmitter<MessageConnectionEvents> {
  needsDrain = true
  isClosed = false
}

describe('waitForDrain', () => {
  it('resolves at once for a connection that is not behind, or closed', async () => {
    const caughtUp = new Behind()
    caughtUp.needsDrain = false
    await waitForDrain(caughtUp)
    const closed = new Behind()
    closed.isClosed = true
    await waitForDrain(closed)
    expect(caughtUp.listenerCount('drain') + closed.listenerCount('drain')).toBe(0)
  })

  it('resolves at the next drain or close and leaves no listener behind', async () => {
    for (const event of ['drain', 'close'] as const) {
      const connection = new Behind()
      let settled = false
      const waiting = waitForDrain(connection).then(() => {
        settled = true
      })
      await Promise.resolve()
      expect(settled).toBe(false)
      if (event === 'drain') connection.emit('drain')
      else connection.emit('close', { reason: 'gone' })
      await waiting
      expect(connection.listenerCount('drain') + connection.listenerCount('close')).toBe(0)
    }
  })

  it("rejects with the signal's reason, aborted before or while waiting", async () => {
    const connection = new Behind()
    const reason = new Error('stop')
    await expect(waitForDrain(connection, { signal: AbortSignal.abort(reason) })).rejects.toBe(
      reason,
    )
    const controller = new AbortController()
    const waiting = waitForDrain(connection, { signal: controller.signal })
    controller.abort(reason)
    await expect(waiting).rejects.toBe(reason)
    expect(connection.listenerCount('drain') + connection.listenerCount('close')).toBe(0)
  })
})
