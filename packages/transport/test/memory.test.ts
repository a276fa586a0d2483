import { once } from 'node:events'
import { describe, expect, it } from 'vitest'
import { createMemoryPair } from '../src/index.js'

describe('in-memory pair', () => {
  it('delivers messages through the same framing and closes both ends', async () => {
    const [a, b] = createMemoryPair()
    const received = once(b, 'message')
    a.send({ _type: 3, _command: 'fired', name: 'e', args: [1, 'two'] })
    expect((await received)[0]).toEqual({
      _type: 3,
      _command: 'fired',
      name: 'e',
      args: [1, 'two'],
    })
    a.close('done')
    expect(await a.closed).toEqual({ reason: 'done' })
    expect((await b.closed).reason).toBe('closed by peer')
    expect(a.send({})).toBe(false)
    a.close('again')
    expect(await a.closed).toEqual({ reason: 'done' })
  })
})
