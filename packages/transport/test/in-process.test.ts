import { once } from 'node:events'
import type { SessionMessage } from '@autobus/protocol'
import { describe, expect, it } from 'vitest'
import { createInProcessPair } from '../src/index.js'

const fired = (n: number) => ({ _type: 3, _command: 'fired', name: 'e', args: [n] })

describe('in-process pair', () => {
  it('delivers every message of a turn, in order, once the turn has run', async () => {
    const [a, b] = createInProcessPair()
    const received: SessionMessage[] = []
    b.on('message', (message) => received.push(message))
    for (let n = 0; n < 5; n++) a.send(fired(n))
    expect(received).toEqual([])
    await Promise.resolve()
    await Promise.resolve()
    expect(received).toEqual([0, 1, 2, 3, 4].map(fired))
    expect(b.bytesReceived).toBe(a.bytesSent)
  })

  it('carries attachments between text frames, byte for byte', async () => {
    const [a, b] = createInProcessPair()
    a.enableAttachments()
    b.enableAttachments()
    const received: Array<SessionMessage & { _attachment?: Buffer }> = []
    b.on('message', (message) => received.push(message))
    const bytes = Buffer.from('line\none\n\u00e9')
    a.send(fired(1))
    a.sendWithAttachment({ _type: 3, _command: 'fired', name: 'data', args: [] }, bytes)
    a.send(fired(2))
    while (received.length < 3) await once(b, 'message')
    expect(received[0]).toEqual(fired(1))
    expect(received[1]!._attachment!.equals(bytes)).toBe(true)
    expect(received[2]).toEqual(fired(2))
  })

  it('names the first end to the second as it is told, and the second to the first as in-process', () => {
    const [a, b] = createInProcessPair({ remoteAddress: '127.0.0.1', peerKeyId: 'k1' })
    expect([b.remoteAddress, b.peerKeyId, b.remotePort]).toEqual(['127.0.0.1', 'k1', 0])
    expect([a.remoteAddress, a.peerKeyId]).toEqual(['in-process', undefined])
  })

  it('holds what arrives while paused, and hands it over in order on resume', async () => {
    const [a, b] = createInProcessPair()
    const received: SessionMessage[] = []
    b.on('message', (message) => received.push(message))
    b.pauseReading!()
    a.send(fired(1))
    a.send(fired(2))
    await new Promise((resolve) => setImmediate(resolve))
    expect(received).toEqual([])
    b.resumeReading!()
    await new Promise((resolve) => setImmediate(resolve))
    expect(received).toEqual([fired(1), fired(2)])
  })

  it('refuses bad frames as a socket does, and stays open', async () => {
    const [a, b] = createInProcessPair()
    const invalid: string[] = []
    b.on('invalid', (error) => invalid.push(error.code))
    a.sendEncoded('not json\n')
    a.sendEncoded(
      `{"_type":3,"_command":"fired","name":"e","args":${'['.repeat(80)}${']'.repeat(80)}}\n`,
    )
    a.send(fired(3))
    const [message] = await once(b, 'message')
    expect(message).toEqual(fired(3))
    expect(invalid).toEqual(['malformed_json', 'too_deep'])
    expect(b.isClosed).toBe(false)
  })

  it('closes the other end after what was sent before the close', async () => {
    const [a, b] = createInProcessPair()
    const received: SessionMessage[] = []
    b.on('message', (message) => received.push(message))
    a.send(fired(1))
    a.close('done')
    expect((await b.closed).reason).toBe('closed by peer')
    expect(received).toEqual([fired(1)])
    expect(a.send(fired(2))).toBe(false)
  })
})
