import { InvalidArgumentsError } from '@autobus/protocol'
import Type from 'typebox'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type Channel,
  type ChannelCloseInfo,
  connectService,
  createService,
  defineContract,
  type RpcServer,
  serve,
} from '../src/index.js'

// The compiler is half of this file's test: `pnpm typecheck` fails if a
// `@ts-expect-error` line below compiles, or if a typed line does not.

const chat = defineContract({
  channels: {
    room: {
      doc: 'Say something, hear everyone',
      message: Type.Object({ text: Type.String() }),
      reply: Type.Object({ from: Type.String(), text: Type.String() }),
    },
    loose: {},
  },
})

const open: { close(): Promise<unknown> }[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((thing) => thing.close()))
})

/** A chat service; `misbehave` makes it send a reply that breaks the contract. */
async function chatService(options: { misbehave?: boolean } = {}) {
  const opened: Channel<{ from: string; text: string }, { text: string }>[] = []
  const service = createService(chat, {
    channels: {
      room: (channel) => {
        opened.push(channel)
        channel.on('message', (message) => {
          const text: string = message.text
          // @ts-expect-error: the service sends replies, not client messages
          if (text === 'never') channel.send({ text })
          if (options.misbehave)
            channel.send({ from: 42 } as unknown as { from: string; text: string })
          else channel.send({ from: 'room', text })
        })
      },
      loose: (channel) => channel.on('message', (message: unknown) => channel.send(message)),
    },
  })
  const server: RpcServer = await serve([service], { port: 0, host: '127.0.0.1' })
  open.push(server)
  const address = { host: '127.0.0.1', port: server.port, service: service.id }
  const connection = await connectService(address, { contract: chat })
  open.push(connection)
  return { server, connection, opened }
}

describe('a channel typed by its contract', () => {
  it('sends and receives the contract’s types in both directions', async () => {
    const { connection } = await chatService()
    const room = await connection.openChannel('room')
    room.send({ text: 'hello' })
    // Compiled, never run: sent, it would close the channel.
    // @ts-expect-error: a client sends `message` values
    const _wrong = () => room.send({ from: 'me', text: 1 })
    // @ts-expect-error: no such channel in the contract
    await expect(connection.openChannel('lobby')).rejects.toThrow(/declares no channels "lobby"/)
    for await (const reply of room) {
      const from: string = reply.from
      // @ts-expect-error: a reply has no number fields
      const wrong: number = reply.text
      expect({ from, wrong }).toEqual({ from: 'room', wrong: 'hello' })
      break
    }
    const loose = await connection.openChannel('loose')
    loose.send(123)
    const [echoed] = (await new Promise((resolve) =>
      loose.once('message', (m) => resolve([m])),
    )) as [unknown]
    expect(echoed).toBe(123)
  })

  it('closes the channel on a client message that breaks the schema, counted, with a typed error at the service', async () => {
    const { server, connection, opened } = await chatService()
    const room = await connection.openChannel('room')
    room.send({ text: 'fine' })
    await new Promise((resolve) => room.once('message', resolve))
    room.send({ text: 7 } as unknown as { text: string })
    const atClient: ChannelCloseInfo = await room.closed
    expect(atClient.byPeer).toBe(true)
    expect(atClient.reason).toMatch(/^invalid message: does not match the channel schema/)
    const atService = await opened[0]!.closed
    expect(atService.error).toBeInstanceOf(InvalidArgumentsError)
    expect(server.stats.invalidChannelMessages).toBe(1)
    // The connection itself is unhurt.
    const again = await connection.openChannel('room')
    again.send({ text: 'still here' })
    const [reply] = (await new Promise((resolve) =>
      again.once('message', (m) => resolve([m])),
    )) as [{ text: string }]
    expect(reply.text).toBe('still here')
  })

  it('closes the channel on a service reply that breaks the schema, with a typed error at the client', async () => {
    const { connection, opened } = await chatService({ misbehave: true })
    const room = await connection.openChannel('room')
    let delivered = 0
    room.on('message', () => delivered++)
    room.send({ text: 'hello' })
    const info = await room.closed
    expect(info.byPeer).toBe(false)
    expect(info.error).toBeInstanceOf(InvalidArgumentsError)
    expect(info.reason).toMatch(/^invalid message: does not match the channel schema/)
    expect(delivered).toBe(0)
    expect((await opened[0]!.closed).byPeer).toBe(true)
  })

  it('publishes both schemas in the description', async () => {
    const { connection } = await chatService()
    const description = await connection.describe()
    expect(description.channels.room).toEqual({
      doc: 'Say something, hear everyone',
      message: { ...chat.channels.room.message },
      reply: { ...chat.channels.room.reply },
    })
    expect(description.channels.loose).toEqual({})
  })

  it('types a channel added one by one from its spec', () => {
    const service = createService()
    service.addChannel('numbers', { message: Type.Number(), reply: Type.String() }, (channel) => {
      channel.on('message', (n) => channel.send(n.toFixed(1)))
      // @ts-expect-error: this end sends strings
      channel.send(1)
    })
    expect(service.describe().channels.numbers).toEqual({
      message: { type: 'number' },
      reply: { type: 'string' },
    })
  })
})
