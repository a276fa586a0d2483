import { once } from 'node:events'
import { describe, expect, it } from 'vitest'
import { createMemoryPair } from '../src/index.js'

describe('reading frames raw', () => {
  it('hands frames on as their text, and still decodes those with an attachment', async () => {
    const [a, b] = createMemoryPair()
    b.enableAttachments()
    const raw: string[] = []
    const messages: unknown[] = []
    b.readRaw?.((frame) => raw.push(frame))
    b.on('message', (message) => messages.push(message))
    // Not even JSON: a relay passes it on, and the end that reads it refuses it.
    a.sendEncoded('{"_type":1,"_id":7,"_command":"call","name":"echo","args":[1]}\nnot json\n \n')
    a.sendWithAttachment({ _type: 3, _command: 'fired', name: 'e', args: [] }, Buffer.from('xyz'))
    const last = once(b, 'message')
    await last
    expect(raw).toEqual([
      '{"_type":1,"_id":7,"_command":"call","name":"echo","args":[1]}',
      'not json',
    ])
    expect(messages).toHaveLength(1)
    expect((messages[0] as { _attachment: Buffer })._attachment.toString()).toBe('xyz')
    b.readRaw?.(undefined)
    const next = once(b, 'message')
    a.send({ _type: 3, _command: 'fired', name: 'e', args: [2] })
    expect((await next)[0]).toEqual({ _type: 3, _command: 'fired', name: 'e', args: [2] })
    a.close()
  })
})
