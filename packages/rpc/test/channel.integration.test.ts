import { afterEach, describe, expect, it } from 'vitest'
import { type Channel, connectService, createService, type RpcServer, serve } from '../src/index.js'

const servers: RpcServer[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()))
})

/** The guide's own example: a channel that greets as soon as it opens. */
async function greeter(extra: (channel: Channel) => void = () => {}) {
  const service = createService({ info: { type: 'test.greeter' } })
  service.addChannel('log', { doc: 'Greets, then echoes' }, (channel) => {
    channel.send({ hello: true })
    extra(channel)
    channel.on('message', (message) => channel.send(message))
  })
  const server = await serve([service], { host: '127.0.0.1' })
  servers.push(server)
  return { host: '127.0.0.1', port: server.port, service: service.id }
}

const nextMessage = (channel: Channel) =>
  new Promise<unknown>((resolve) => channel.once('message', resolve))

describe('a channel keeps what arrives before anyone reads it', () => {
  it('hands the greeting to a listener attached after openChannel resolves, 20 times in a row', async () => {
    const address = await greeter()
    const connection = await connectService(address)
    for (let i = 0; i < 20; i++) {
      const channel = await connection.openChannel('log')
      const received: unknown[] = []
      channel.on('message', (message) => received.push(message))
      channel.send(i)
      await expect.poll(() => received).toEqual([{ hello: true }, i])
      channel.close()
    }
    await connection.close()
  })

  it('hands the greeting to async iteration, 20 times in a row', async () => {
    const address = await greeter()
    const connection = await connectService(address)
    for (let i = 0; i < 20; i++) {
      const channel = await connection.openChannel('log')
      channel.send(i)
      const received: unknown[] = []
      for await (const message of channel) {
        received.push(message)
        if (received.length === 2) break
      }
      expect(received).toEqual([{ hello: true }, i])
      channel.close()
    }
    await connection.close()
  })

  it('keeps messages in order between two readers and yields them even after a close', async () => {
    const address = await greeter((channel) => {
      channel.send('second')
      channel.send('third')
      channel.close('said it all')
    })
    const connection = await connectService(address)
    const channel = await connection.openChannel('log')
    await channel.closed
    expect(channel.unreadCount).toBe(3)
    expect(await nextMessage(channel)).toEqual({ hello: true })
    const rest: unknown[] = []
    for await (const message of channel) rest.push(message)
    expect(rest).toEqual(['second', 'third'])
    await connection.close()
  })

  it('closes the channel, telling both ends, when more than maxUnreadMessages arrive unread', async () => {
    let serverSide: Channel | undefined
    const address = await greeter((channel) => {
      serverSide = channel
      for (let i = 0; i < 5; i++) channel.send(i)
    })
    const connection = await connectService(address, { maxUnreadMessages: 4 })
    const channel = await connection.openChannel('log')
    expect(await channel.closed).toEqual({ reason: 'too many unread messages', byPeer: false })
    expect(await serverSide!.closed).toEqual({ reason: 'too many unread messages', byPeer: true })
    // What was kept is still readable, in order.
    const kept: unknown[] = []
    for await (const message of channel) kept.push(message)
    expect(kept).toEqual([{ hello: true }, 0, 1, 2])
    // A per-channel limit overrides the connection's.
    const roomy = await connection.openChannel('log', { maxUnreadMessages: 10 })
    roomy.send('still open')
    const seen: unknown[] = []
    for await (const message of roomy) {
      seen.push(message)
      if (message === 'still open') break
    }
    expect(seen).toEqual([{ hello: true }, 0, 1, 2, 3, 4, 'still open'])
    await connection.close()
  })
})
