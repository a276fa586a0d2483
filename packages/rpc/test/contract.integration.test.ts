import { RemoteError, UnknownNameError } from '@autobus/protocol'
import Type from 'typebox'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type Connection,
  type Contract,
  connectService,
  createService,
  defineContract,
  type RpcServer,
  type Service,
  serve,
} from '../src/index.js'

// The compiler is half of this file's test: `pnpm typecheck` fails if a
// `@ts-expect-error` line below compiles, or if a typed line does not.

const calculator = defineContract({
  functions: {
    add: { doc: 'Adds', args: [Type.Number(), Type.Number()], result: Type.Number() },
    greet: { args: [Type.String()], result: Type.String() },
    now: { args: [], result: Type.Integer() },
    lies: { args: [], result: Type.String() },
  },
  events: { ticked: { args: [Type.Integer(), Type.String()] } },
  objects: { counter: Type.Integer() },
  channels: { echo: { message: Type.String() } },
  streams: { bytes: {} },
})

function implement(options: { validateResults?: boolean } = {}) {
  return createService(
    calculator,
    {
      functions: {
        add: (a, b) => a + b,
        greet: (name) => `Hello, ${name}!`,
        now: () => 7,
        // A handler that breaks its promise at run time.
        lies: () => 42 as unknown as string,
      },
      objects: { counter: 0 },
      channels: { echo: (channel) => channel.on('message', (m) => channel.send(m)) },
      streams: { bytes: (stream) => stream.pipe(stream) },
    },
    { info: { type: 'test.contract' }, ...options },
  )
}

const open: { close(): Promise<unknown> }[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((thing) => thing.close()))
})

async function served(
  service: Service,
): Promise<{ server: RpcServer; address: { host: string; port: number; service: string } }> {
  const server = await serve([service], { port: 0, host: '127.0.0.1' })
  open.push(server)
  return { server, address: { host: '127.0.0.1', port: server.port, service: service.id } }
}

async function connected<C extends Contract>(service: Service, contract?: C) {
  const { address } = await served(service)
  const connection = await connectService(address, contract ? { contract } : {})
  open.push(connection)
  return connection as Connection<C>
}

describe('a service made from a contract', () => {
  it('is typed end to end and answers with typed results', async () => {
    const service = implement()
    const connection = await connected(service, calculator)

    const sum: number = await connection.call('add', [1, 2])
    const greeting: string = await connection.call('greet', ['you'])
    const now: number = await connection.call('now')
    expect([sum, greeting, now]).toEqual([3, 'Hello, you!', 7])

    // @ts-expect-error a string where a number goes
    await expect(connection.call('add', [1, 'two'])).rejects.toThrow(/argument 2/)
    // @ts-expect-error one argument short
    await expect(connection.call('add', [1])).rejects.toThrow()
    // @ts-expect-error one argument too many
    await expect(connection.call('add', [1, 2, 3])).rejects.toThrow(/takes 2 arguments/)
    // @ts-expect-error a name the contract does not declare
    await expect(connection.call('subtract', [1, 2])).rejects.toBeInstanceOf(UnknownNameError)
    // @ts-expect-error the result is a number, not a string
    const wrong: string = await connection.call('add', [1, 2])
    expect(wrong).toBe(3)

    const ticks: [number, string][] = []
    await connection.listen('ticked', (count, label) => ticks.push([count, label]))
    // @ts-expect-error the event fires with a number first
    await connection.listen('ticked', (count: string) => count)
    // @ts-expect-error no such event
    await expect(connection.listen('tocked', () => {})).rejects.toBeInstanceOf(UnknownNameError)

    const values: (number | null)[] = []
    await connection.watch('counter', (value) => values.push(value))
    // @ts-expect-error the value is a number (or null)
    await connection.watch('counter', (value: string) => value)

    service.event('ticked').fire(1, 'one')
    service.object('counter').set(5)
    // @ts-expect-error the counter is a number
    expect(() => service.object('counter').set('six')).toThrow()
    // @ts-expect-error the event's first argument is a number
    expect(() => service.event('ticked').fire('one', 'two')).toThrow()
    await expect.poll(() => ticks).toEqual([[1, 'one']])
    await expect.poll(() => values).toEqual([0, 5])

    const channel = await connection.openChannel('echo')
    open.push({ close: async () => channel.close() })
    // @ts-expect-error no such channel
    await expect(connection.openChannel('nope')).rejects.toBeInstanceOf(UnknownNameError)
  })

  it('checks results against the contract: a mismatch is answered as an error', async () => {
    const connection = await connected(implement(), calculator)
    const error = await connection.call('lies').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(RemoteError)
    expect(error).toMatchObject({ remoteName: 'InvalidResultError' })
    expect((error as Error).message).toMatch(/"lies" returned a result that does not match/)

    const unchecked = await connected(implement({ validateResults: false }), calculator)
    expect(await unchecked.call('lies')).toBe(42)
  })

  it('publishes the contract as its description', async () => {
    const connection = await connected(implement())
    const description = await connection.describe()
    expect(description.functions.add).toEqual({
      doc: 'Adds',
      args: [{ type: 'number' }, { type: 'number' }],
      result: { type: 'number' },
    })
    expect(description.events.ticked?.args).toEqual([{ type: 'integer' }, { type: 'string' }])
    expect(description.objects.counter?.value).toEqual({ type: 'integer' })
    expect(description.channels.echo?.message).toEqual({ type: 'string' })
    expect(Object.keys(description.streams)).toEqual(['bytes'])
  })

  it('refuses an implementation that does not match the contract', () => {
    const partial = { functions: { add: (a: number, b: number) => a + b } }
    // @ts-expect-error greet, now, lies, the counter, the channel and the stream are missing
    expect(() => createService(calculator, partial)).toThrow(/gives no functions "greet"/)
    const extra = defineContract({ functions: { one: { args: [], result: Type.Integer() } } })
    expect(() =>
      createService(extra, { functions: { one: () => 1, two: () => 2 } } as never),
    ).toThrow(/declares no functions "two"/)
    // @ts-expect-error the handler returns a string where the contract says integer
    createService(extra, { functions: { one: () => 'one' } })
  })

  it('is untyped without a contract, as before', async () => {
    const connection = await connected(implement())
    const sum = await connection.call('add', [1, 2])
    // @ts-expect-error unknown until checked
    const typed: number = sum
    expect(typed).toBe(3)
    await expect(connection.call('subtract', [1, 2])).rejects.toBeInstanceOf(UnknownNameError)
  })
})

describe('listens on one connection', () => {
  it('share one listen: a second concurrent listen waits for the answer and fails with it', async () => {
    const service = implement()
    const connection = await connected(service)
    const [first, second] = await Promise.allSettled([
      connection.listen('tocked', () => {}),
      connection.listen('tocked', () => {}),
    ])
    expect(first.status).toBe('rejected')
    expect(second.status).toBe('rejected')
    expect((second as PromiseRejectedResult).reason).toBeInstanceOf(UnknownNameError)

    const got: unknown[] = []
    const subscriptions = await Promise.all([
      connection.listen('ticked', (n) => got.push(['a', n])),
      connection.listen('ticked', (n) => got.push(['b', n])),
    ])
    expect(service.event('ticked').listenerCount).toBe(1)
    service.event('ticked').fire(1, 'x')
    await expect.poll(() => got.length).toBe(2)
    await subscriptions[0]!.close()
    expect(service.event('ticked').listenerCount).toBe(1)
    await subscriptions[1]!.close()
    expect(service.event('ticked').listenerCount).toBe(0)
  })
})
