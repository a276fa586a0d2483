import { once } from 'node:events'
import { describe, expect, it } from 'vitest'
import {
  type Bus,
  createBus,
  META_SERVICE_ID,
  RemoteError,
  Type,
  UnknownServiceError,
} from '../src/index.js'
import { closedAfterEach, onLoopback } from './buses.js'

// Buses on loopback only, on a discovery port of this suite's own.
const bus = closedAfterEach(onLoopback(7))

function greeter(target: Bus, name = 'greeter') {
  const service = target.createService({ info: { type: 'test.greeter', name }, doc: 'Greets' })
  const greeted = service.addEvent('greeted', { args: [Type.String()] })
  const count = service.addObject('count', { value: Type.Integer() }, 0)
  service.addFunction('hello', { doc: 'Says hello', args: [Type.String()] }, (who) => {
    count.set(count.value + 1)
    greeted.fire(who)
    return `Hello, ${who}, from ${name}!`
  })
  service.addFunction('boom', {}, () => {
    throw new RangeError('kaboom')
  })
  service.addChannel('echo', {}, (channel) =>
    channel.on('message', (message) => channel.send(message)),
  )
  service.addStream('echo', {}, (stream) => stream.pipe(stream))
  return service
}

describe('Bus', () => {
  it('discovers a service on another bus and uses every capability', async () => {
    const server = await bus()
    const client = await bus()
    server.publish(greeter(server))
    const found = await client.waitForService({ type: 'test.greeter' }, { timeout: 5_000 })
    expect(found.info).toMatchObject({
      type: 'test.greeter',
      hostname: expect.any(String),
      port: server.port,
    })
    const connection = await client.connect(found)
    expect(await connection.call('hello', ['Ada'])).toBe('Hello, Ada, from greeter!')
    await expect(connection.call('boom')).rejects.toBeInstanceOf(RemoteError)
    const counts: unknown[] = []
    await connection.watch('count', (value) => counts.push(value))
    const greetings: unknown[] = []
    await connection.listen('greeted', (who) => greetings.push(who))
    connection.notify('hello', ['Bob'])
    await expect.poll(() => greetings).toEqual(['Bob'])
    await expect.poll(() => counts).toEqual([1, 2])
    const channel = await connection.openChannel('echo')
    channel.send({ ping: 1 })
    expect((await once(channel, 'message'))[0]).toEqual({ ping: 1 })
    const stream = await connection.openStream('echo')
    stream.end('bytes!')
    const chunks: Buffer[] = []
    for await (const chunk of stream) chunks.push(chunk as Buffer)
    expect(Buffer.concat(chunks).toString()).toBe('bytes!')
    expect((await connection.describe()).functions.hello?.doc).toBe('Says hello')
  })

  it('serves the autobus meta-service, so host and port are enough', async () => {
    const server = await bus({ discovery: false })
    const service = server.publish(greeter(server)).service
    const client = await bus({ discovery: false })
    const meta = await client.connect({
      host: '127.0.0.1',
      port: server.port,
      service: META_SERVICE_ID,
    })
    const list = (await meta.call('list_services')) as Array<{
      service: string
      info: Record<string, unknown>
    }>
    expect(list).toEqual([
      { service: service.id, info: { type: 'test.greeter', name: 'greeter' }, doc: 'Greets' },
    ])
    const description = (await meta.call('describe', [service.id])) as {
      functions: Record<string, unknown>
    }
    expect(Object.keys(description.functions)).toEqual(['hello', 'boom'])
    await expect(meta.call('describe', ['nope'])).rejects.toBeInstanceOf(UnknownServiceError)
  })

  it('replays known services through changes() and reports goodbyes', async () => {
    const server = await bus()
    const client = await bus()
    const first = server.publish(greeter(server, 'one'))
    await client.waitForService({ name: 'one' }, { timeout: 5_000 })
    const stop = new AbortController()
    const changes = client
      .changes({
        replay: true,
        filter: { type: 'test.greeter' },
        signal: stop.signal,
      })
      [Symbol.asyncIterator]()
    const next = async () => {
      const { value } = await changes.next()
      return `${value!.type} ${value!.service.info.name}`
    }
    expect(await next()).toBe('up one')
    server.publish(greeter(server, 'two'))
    expect(await next()).toBe('up two')
    await first.unpublish()
    expect(await next()).toBe('down one')
    stop.abort()
    expect(await changes.next()).toEqual({ done: true, value: undefined })
  })

  it('honours an AbortSignal: before start-up it rejects, later it closes the bus', async () => {
    const stop = new AbortController()
    stop.abort(new Error('not now'))
    await expect(createBus({ discovery: false, signal: stop.signal })).rejects.toThrow('not now')
    const later = new AbortController()
    const running = await createBus({ discovery: false, signal: later.signal })
    later.abort()
    expect(await running.closed).toEqual({ reason: 'aborted' })
  })

  it('closes with one shape: closed and close() give the same reason, once', async () => {
    const closing = await bus()
    const closed = closing.closed
    expect(await closing.close('done here')).toEqual({ reason: 'done here' })
    expect(await closed).toEqual({ reason: 'done here' })
    expect(await closing.close('again')).toEqual({ reason: 'done here' })
  })

  it('rebinds a single-service proxy and fans out through a multi-service proxy', async () => {
    const a = await bus()
    const b = await bus()
    const client = await bus()
    const fromA = a.publish(greeter(a, 'a'))
    b.publish(greeter(b, 'b'))
    const all = client.multiServiceProxy({ type: 'test.greeter' })
    await expect.poll(() => all.services.size, { timeout: 5_000 }).toBe(2)
    const outcomes = await all.call('hello', ['you'])
    expect([...outcomes.values()].map((outcome) => outcome.ok && outcome.value).sort()).toEqual([
      'Hello, you, from a!',
      'Hello, you, from b!',
    ])
    const one = client.singleServiceProxy({ type: 'test.greeter', name: 'a' })
    expect(await one.call('hello', ['x'])).toBe('Hello, x, from a!')
    const values: unknown[] = []
    await one.watch('count', (value) => values.push(value))
    await fromA.unpublish()
    await expect.poll(() => values).toEqual([2, null])
    a.publish(greeter(a, 'a'))
    expect(await one.call('hello', ['again'], { timeout: 5_000 })).toBe('Hello, again, from a!')
    await expect.poll(() => values).toEqual([2, null, 0, 1])

    // Closing the bus closes every proxy it made, the multi-service one too.
    await client.close('done')
    expect(await all.closed).toEqual({ reason: 'done' })
    expect(await one.closed).toEqual({ reason: 'done' })
    expect(all.services.size).toBe(0)
  })

  it('works with discovery off, for services known in advance', async () => {
    const server = await bus({ discovery: false })
    const service = server.publish(greeter(server)).service
    expect(server.discovery).toBe(false)
    expect(server.services().map((s) => s.service)).toEqual([service.id])
    const client = await bus({ discovery: false })
    const connection = await client.connect({
      host: '127.0.0.1',
      port: server.port,
      service: service.id,
    })
    expect(await connection.call('hello', ['z'])).toBe('Hello, z, from greeter!')
    await client.close()
    expect(connection.isClosed).toBe(true)
    await expect(
      client.connect({ host: '127.0.0.1', port: server.port, service: service.id }),
    ).rejects.toThrow(/closed/)
  })
})
