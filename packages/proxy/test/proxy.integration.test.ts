import { EventEmitter } from 'node:events'
import {
  type DiscoveredService,
  type DiscovererEvents,
  matchesFilter,
  type ServiceFilter,
} from '@autobus/discovery'
import { UnknownNameError, UnreachableError } from '@autobus/protocol'
import { connectService, createService, type RpcServer, serve } from '@autobus/rpc'
import Type from 'typebox'
import { afterEach, describe, expect, it } from 'vitest'
import {
  createMultiServiceProxy,
  createSingleServiceProxy,
  type ServiceDirectory,
} from '../src/index.js'

/** A directory the test fills by hand. */
class Directory extends EventEmitter<DiscovererEvents> implements ServiceDirectory {
  readonly table = new Map<string, DiscoveredService>()
  add(service: DiscoveredService) {
    this.table.set(service.service, service)
    this.emit('appeared', service, 'new')
  }
  remove(id: string) {
    const service = this.table.get(id)
    if (!service) return
    this.table.delete(id)
    this.emit('disappeared', service, 'goodbye')
  }
  snapshot(filter?: ServiceFilter) {
    return [...this.table.values()].filter(
      (service) => !filter || matchesFilter(service.info, filter),
    )
  }
}

const servers: RpcServer[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()))
})

async function thermometer(name: string, reading: number) {
  const service = createService({ info: { type: 'thermometer', name } })
  const temperature = service.addObject('temperature', { value: Type.Number() }, reading)
  const alarm = service.addEvent('alarm')
  service.addFunction('name', {}, () => name)
  service.addFunction('fail', {}, () => {
    throw new Error(`${name} failed`)
  })
  const server = await serve([service], { host: '127.0.0.1' })
  servers.push(server)
  const entry: DiscoveredService = {
    host: '127.0.0.1',
    port: server.port,
    service: service.id,
    info: { ...service.info, host: '127.0.0.1', port: server.port, service: service.id },
  }
  return { service, server, temperature, alarm, entry }
}

const connect = (service: DiscoveredService, options: { signal?: AbortSignal }) =>
  connectService(service, options)

describe('SingleServiceProxy', () => {
  it('binds, rebinds when its service dies, and keeps listeners and watchers across rebinds', async () => {
    const directory = new Directory()
    const kitchen = await thermometer('kitchen', 20)
    const hall = await thermometer('hall', 15)
    directory.add(kitchen.entry)
    directory.add(hall.entry)
    const proxy = createSingleServiceProxy({ directory, connect, filter: { type: 'thermometer' } })
    await proxy.waitForBind()
    expect(await proxy.call('name')).toBe('kitchen')
    const values: unknown[] = []
    await proxy.watch('temperature', (value) => values.push(value))
    const alarms: unknown[] = []
    await proxy.listen('alarm', (...args) => alarms.push(args))
    kitchen.temperature.set(21)
    kitchen.alarm.fire('hot')
    await expect.poll(() => alarms).toEqual([['hot']])

    // The kitchen service dies without a goodbye: its connection drops.
    const rebound = new Promise((resolve) => proxy.once('bound', resolve))
    await kitchen.server.close()
    await rebound
    expect(await proxy.call('name')).toBe('hall')
    expect(values).toEqual([20, 21, null, 15])
    hall.alarm.fire('cold')
    await expect.poll(() => alarms).toEqual([['hot'], ['cold']])
    await proxy.close()
  })

  it('rejects a watch or listen of a name the bound service does not have, and keeps nothing', async () => {
    const directory = new Directory()
    const kitchen = await thermometer('kitchen', 20)
    directory.add(kitchen.entry)
    const proxy = createSingleServiceProxy({ directory, connect, filter: { type: 'thermometer' } })
    await proxy.waitForBind()
    const seen: unknown[] = []
    await expect(proxy.watch('temperatur', (value) => seen.push(value))).rejects.toThrow(
      `service ${kitchen.service.id} has no object "temperatur"`,
    )
    await expect(proxy.listen('alrm', (...args) => seen.push(args))).rejects.toBeInstanceOf(
      UnknownNameError,
    )
    expect(seen).toEqual([])
    // The same names work once spelt right, and the failed ones left nothing behind.
    await proxy.watch('temperature', (value) => seen.push(value))
    expect(seen).toEqual([20])
    await proxy.close()
  })

  it('waits for a bind on call, or fails at once when asked to', async () => {
    const directory = new Directory()
    const proxy = createSingleServiceProxy({ directory, connect, filter: { type: 'thermometer' } })
    await expect(proxy.call('name', [], { waitForBind: false })).rejects.toBeInstanceOf(
      UnreachableError,
    )
    await expect(proxy.call('name', [], { timeout: 50 })).rejects.toBeInstanceOf(UnreachableError)
    const values: unknown[] = []
    await proxy.watch('temperature', (value) => values.push(value))
    const pending = proxy.call('name')
    const cellar = await thermometer('cellar', 12)
    directory.add(cellar.entry)
    expect(await pending).toBe('cellar')
    await expect.poll(() => values).toEqual([null, 12])
    directory.remove(cellar.entry.service)
    await expect.poll(() => proxy.isBound).toBe(false)
    expect(values).toEqual([null, 12, null])
    await proxy.close()
    await expect(proxy.waitForBind()).rejects.toBeInstanceOf(UnreachableError)
  })
})

describe('MultiServiceProxy', () => {
  it('fans out calls, tags events and keeps a live map of values', async () => {
    const directory = new Directory()
    const a = await thermometer('a', 1)
    const b = await thermometer('b', 2)
    directory.add(a.entry)
    const proxy = createMultiServiceProxy({ directory, connect, filter: { type: 'thermometer' } })
    const bound: string[] = []
    proxy.on('bound', (service) => bound.push(service.info.name as string))
    directory.add(b.entry)
    await expect.poll(() => proxy.services.size).toBe(2)
    const outcomes = await proxy.call('name')
    expect(outcomes.get(a.service.id)).toEqual({ ok: true, value: 'a' })
    expect(outcomes.get(b.service.id)).toEqual({ ok: true, value: 'b' })
    const failures = await proxy.call('fail')
    expect(failures.get(a.service.id)).toMatchObject({ ok: false, error: { message: 'a failed' } })

    const events: string[] = []
    await proxy.listen('alarm', (source, ...args) => events.push(`${source.info.name}:${args[0]}`))
    await proxy.watch('temperature', () => {})
    a.alarm.fire('x')
    b.alarm.fire('y')
    await expect.poll(() => events.sort()).toEqual(['a:x', 'b:y'])
    b.temperature.set(5)
    await expect
      .poll(() => Object.fromEntries(proxy.values('temperature')))
      .toEqual({ [a.service.id]: 1, [b.service.id]: 5 })

    const unbound = new Promise((resolve) => proxy.once('unbound', resolve))
    directory.remove(a.entry.service)
    await unbound
    expect([...proxy.values('temperature').keys()]).toEqual([b.service.id])
    expect(proxy.notify('name')).toBe(1)
    await proxy.close()
  })
})

describe('subscriptions a proxy owns', () => {
  it('hold one listen and one watch per name, undone when the last handler goes', async () => {
    const directory = new Directory()
    const kitchen = await thermometer('kitchen', 20)
    directory.add(kitchen.entry)
    await using proxy = createSingleServiceProxy({ directory, connect })
    await proxy.waitForBind()
    const first = await proxy.listen('alarm', () => {})
    const second = await proxy.listen('alarm', () => {})
    const watch = await proxy.watch('temperature', () => {})
    expect(kitchen.alarm.listenerCount).toBe(1)
    expect(kitchen.temperature.watcherCount).toBe(1)
    await first.close()
    expect(kitchen.alarm.listenerCount).toBe(1)
    await second.close()
    await watch.close()
    await expect.poll(() => kitchen.alarm.listenerCount).toBe(0)
    await expect.poll(() => kitchen.temperature.watcherCount).toBe(0)
  })

  it('deliver once after listen, close, listen', async () => {
    const directory = new Directory()
    const kitchen = await thermometer('kitchen', 20)
    directory.add(kitchen.entry)
    await using proxy = createSingleServiceProxy({ directory, connect })
    await proxy.waitForBind()
    await (await proxy.listen('alarm', () => {})).close()
    const got: unknown[] = []
    await proxy.listen('alarm', (...args) => got.push(args))
    kitchen.alarm.fire('once')
    kitchen.alarm.fire('twice')
    await expect.poll(() => got).toEqual([['once'], ['twice']])
    // A call answered after both events: nothing else was on the way.
    await proxy.call('name')
    expect(got).toEqual([['once'], ['twice']])
  })

  it('move to the new service on rebind, and unknown names reject', async () => {
    const directory = new Directory()
    const kitchen = await thermometer('kitchen', 20)
    const hall = await thermometer('hall', 15)
    directory.add(kitchen.entry)
    await using proxy = createSingleServiceProxy({ directory, connect })
    await proxy.waitForBind()
    const held = await proxy.listen('alarm', () => {})
    await expect(proxy.listen('typo', () => {})).rejects.toBeInstanceOf(UnknownNameError)
    directory.add(hall.entry)
    const rebound = new Promise((resolve) => proxy.once('bound', resolve))
    directory.remove(kitchen.entry.service)
    await rebound
    expect(hall.alarm.listenerCount).toBe(1)
    await held.close()
    await expect.poll(() => hall.alarm.listenerCount).toBe(0)
  })

  it('with a contract, refuse undeclared names even while unbound', async () => {
    const { defineContract } = await import('@autobus/rpc')
    const contract = defineContract({
      functions: { name: { args: [], result: Type.String() } },
      events: { alarm: { args: [] } },
    })
    const directory = new Directory()
    await using proxy = createSingleServiceProxy({ directory, connect, contract })
    // @ts-expect-error not in the contract
    await expect(proxy.listen('typo', () => {})).rejects.toBeInstanceOf(UnknownNameError)
    // @ts-expect-error not in the contract
    await expect(proxy.call('nope')).rejects.toBeInstanceOf(UnknownNameError)
    const kitchen = await thermometer('kitchen', 20)
    directory.add(kitchen.entry)
    const name: string = await proxy.call('name')
    expect(name).toBe('kitchen')
  })

  it('with a contract, check what the service sends on a channel against its reply schema', async () => {
    const { defineContract } = await import('@autobus/rpc')
    const contract = defineContract({
      channels: { readings: { message: Type.Literal('next'), reply: Type.Number() } },
    })
    const service = createService({ info: { type: 'thermometer' } })
    // The service says more than the contract lets it.
    service.addChannel('readings', {}, (channel) => {
      channel.on('message', () => {
        channel.send(20.5)
        channel.send('warm')
      })
    })
    const server = await serve([service], { host: '127.0.0.1' })
    servers.push(server)
    const directory = new Directory()
    directory.add({
      host: '127.0.0.1',
      port: server.port,
      service: service.id,
      info: { ...service.info },
    })
    await using proxy = createSingleServiceProxy({ directory, connect, contract })
    const readings = await proxy.openChannel('readings')
    const received: number[] = []
    readings.on('message', (reading) => received.push(reading))
    readings.send('next')
    const closed = await readings.closed
    expect(received).toEqual([20.5])
    expect(closed.reason).toMatch(/^invalid message/)
    expect(closed.error?.name).toBe('InvalidArgumentsError')
  })
})

describe('MultiServiceProxy subscriptions and binding', () => {
  it('waits for the first bind, owns one listen per service, and rejects a name none has', async () => {
    const directory = new Directory()
    const kitchen = await thermometer('kitchen', 20)
    const hall = await thermometer('hall', 15)
    directory.add(kitchen.entry)
    directory.add(hall.entry)
    await using proxy = createMultiServiceProxy({ directory, connect })
    const services = await proxy.waitForBind()
    expect(services.size).toBeGreaterThan(0)
    await expect.poll(() => proxy.services.size).toBe(2)
    const got: unknown[] = []
    const held = await proxy.listen('alarm', (source, ...args) =>
      got.push([source.info.name, ...args]),
    )
    await (await proxy.listen('alarm', () => {})).close()
    expect([kitchen.alarm.listenerCount, hall.alarm.listenerCount]).toEqual([1, 1])
    kitchen.alarm.fire('hot')
    await expect.poll(() => got).toEqual([['kitchen', 'hot']])
    await expect(proxy.listen('typo', () => {})).rejects.toBeInstanceOf(UnknownNameError)
    await held.close()
    await expect.poll(() => kitchen.alarm.listenerCount + hall.alarm.listenerCount).toBe(0)
  })

  it('times out waiting for a bind when nothing matches', async () => {
    const directory = new Directory()
    await using proxy = createMultiServiceProxy({ directory, connect })
    await expect(proxy.waitForBind({ timeout: 10 })).rejects.toBeInstanceOf(UnreachableError)
    const closed = proxy.close('done')
    expect(await proxy.closed).toEqual({ reason: 'done' })
    expect(await closed).toEqual({ reason: 'done' })
  })
})

/** A clock whose time moves only when the test says. */
function fakeClock() {
  let now = 0
  const timers = new Map<number, { at: number; run: () => void }>()
  let next = 1
  return {
    now: () => now,
    setTimeout(run: () => void, ms: number) {
      timers.set(next, { at: now + ms, run })
      return next++
    },
    clearTimeout(timer: unknown) {
      timers.delete(timer as number)
    },
    get pending() {
      return timers.size
    },
    advance(ms: number) {
      now += ms
      for (const [id, timer] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
        if (timer.at > now) continue
        timers.delete(id)
        timer.run()
      }
    },
  }
}

describe('proxy timing under an injected clock', () => {
  it('retries a failed bind after retryDelay, not before', async () => {
    const directory = new Directory()
    const kitchen = await thermometer('kitchen', 20)
    directory.add(kitchen.entry)
    const clock = fakeClock()
    let attempts = 0
    let fail = true
    const flaky = (service: DiscoveredService, options: { signal?: AbortSignal }) => {
      attempts++
      return fail ? Promise.reject(new UnreachableError('not now')) : connect(service, options)
    }
    await using proxy = createSingleServiceProxy({
      directory,
      connect: flaky,
      retryDelay: 1_000,
      clock,
    })
    await expect.poll(() => clock.pending).toBe(1)
    expect(attempts).toBe(1)
    clock.advance(999)
    expect(attempts).toBe(1)
    fail = false
    clock.advance(1)
    expect(attempts).toBe(2)
    expect(await proxy.call('name')).toBe('kitchen')
  })

  it('gives up waiting for a bind when the clock says the time is up', async () => {
    const clock = fakeClock()
    await using proxy = createSingleServiceProxy({ directory: new Directory(), connect, clock })
    const waiting = proxy.waitForBind({ timeout: 5_000 })
    let settled = false
    waiting
      .then(
        () => {},
        () => {},
      )
      .finally(() => {
        settled = true
      })
    clock.advance(4_999)
    await new Promise(setImmediate)
    expect(settled).toBe(false)
    clock.advance(1)
    await expect(waiting).rejects.toBeInstanceOf(UnreachableError)
  })

  it('stops a listen when its signal aborts before the service answers, keeping nothing', async () => {
    const directory = new Directory()
    const kitchen = await thermometer('kitchen', 20)
    directory.add(kitchen.entry)
    await using proxy = createSingleServiceProxy({ directory, connect })
    await proxy.waitForBind()
    const controller = new AbortController()
    const listening = proxy.listen('alarm', () => {}, { signal: controller.signal })
    controller.abort(new Error('changed my mind'))
    await expect(listening).rejects.toThrow('changed my mind')
    await expect.poll(() => kitchen.alarm.listenerCount).toBe(0)
    // Nothing was kept: the next listen asks again and holds.
    await proxy.listen('alarm', () => {})
    expect(kitchen.alarm.listenerCount).toBe(1)
  })
})
