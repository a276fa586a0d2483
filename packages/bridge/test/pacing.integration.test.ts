import { once } from 'node:events'
import { createConnection } from 'node:net'
import { connect, listen, type MessageConnection, type MessageServer } from '@autobus/transport'
import { afterEach, describe, expect, it } from 'vitest'
import { Link, pacer } from '../src/link.js'

const closing: Array<{ close(): Promise<unknown> }> = []
afterEach(async () => {
  for (const thing of closing.splice(0).reverse()) await thing.close()
})

/** A listener on loopback and the first connection it accepts. */
async function accepting(): Promise<{
  server: MessageServer
  accepted: Promise<MessageConnection>
}> {
  const server = await listen({ port: 0, host: '127.0.0.1' })
  closing.push(server)
  const accepted = once(server, 'connection').then(
    ([connection]) => connection as MessageConnection,
  )
  return { server, accepted }
}

describe('a relay feeding a link', () => {
  it('stops reading its sender while the link is behind, so the link stays under its limit and nothing is lost', async () => {
    // The link's far end does not read at first: the link falls behind.
    const far = await accepting()
    const link = new Link(await connect({ host: '127.0.0.1', port: far.server.port }), true)
    closing.push(link)
    const farEnd = await far.accepted
    farEnd.pauseReading!()
    farEnd.enableAttachments()
    const frames: Buffer[] = []
    farEnd.on('message', (message) => {
      const bytes = (message as { _attachment?: Buffer })._attachment
      if (bytes) frames.push(bytes)
    })

    // The sender writes 24 MiB of frames as fast as its socket takes them:
    // three times the link's 8 MiB limit.
    const near = await accepting()
    const sender = createConnection(near.server.port, '127.0.0.1')
    const source = await near.accepted
    const circuit = link.open('service')
    const paced = pacer(link, source)
    let pauses = 0
    const pause = source.pauseReading!.bind(source)
    source.pauseReading = () => {
      pauses++
      pause()
    }
    let largestQueue = 0
    source.readRaw!((frame) => {
      circuit.send(frame)
      paced()
      largestQueue = Math.max(largestQueue, link.connection.bytesQueued)
    })
    const count = 24 * 1024
    const body = 'x'.repeat(1_000)
    const written = (async () => {
      for (let i = 0; i < count; i++) {
        const line = `{"_type":3,"_command":"fired","name":"n","args":[${i},"${body}"]}\n`
        if (!sender.write(line)) await once(sender, 'drain')
      }
    })()
    // Held: the sender is paused, and the link is still open.
    while (pauses === 0) await new Promise((resolve) => setImmediate(resolve))
    expect(link.isClosed).toBe(false)
    // The far end reads again: everything arrives, in order, once.
    farEnd.resumeReading!()
    await written
    while (frames.length < count) await once(farEnd, 'message')
    sender.destroy()
    expect(link.isClosed).toBe(false)
    expect(largestQueue).toBeLessThan(8 * 1024 * 1024)
    expect(frames.map((bytes) => JSON.parse(bytes.toString()).args[0])).toEqual(
      Array.from({ length: count }, (_, i) => i),
    )
  })
})
