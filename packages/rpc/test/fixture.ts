import { createMemoryPair } from '@autobus/transport'
import Type from 'typebox'
import { bindService, type ConnectServiceOptions, createService } from '../src/index.js'
import { RpcServer } from '../src/server.js'

/** A service with one of everything, as the tests use it. */
export function calculator() {
  const service = createService({ info: { type: 'test.calculator' }, doc: 'Test service' })
  let ticks = 0
  const ticked = service.addEvent('ticked', { doc: 'Fired by tick', args: [Type.Integer()] })
  const counter = service.addObject('counter', { doc: 'A counter', value: Type.Integer() }, 0)
  service
    .addFunction(
      'add',
      { doc: 'Adds', args: [Type.Number(), Type.Number()], result: Type.Number() },
      (a, b) => a + b,
    )
    .addFunction('echo', { args: [Type.Unknown()] }, (value) => value)
    .addFunction('fail', { args: [Type.String()] }, (message) => {
      const error = new Error(message)
      error.name = 'CustomError'
      throw error
    })
    .addFunction(
      'sleep',
      { args: [Type.Integer({ minimum: 0 })] },
      (ms) => new Promise((resolve) => setTimeout(() => resolve(ms), ms)),
    )
    .addFunction('tick', {}, () => {
      ticks++
      ticked.fire(ticks)
      return ticks
    })
    .addFunction('increment', {}, () => {
      counter.set(counter.value + 1)
      return counter.value
    })
    .addFunction('untyped', {}, (...args: unknown[]) => args.length)
    .addChannel('echo', { doc: 'Echoes' }, (channel) => {
      channel.on('message', (message) => {
        if (message === 'close') channel.close('asked to')
        else channel.send(message)
      })
    })
    .addChannel('refuse', {}, () => {
      throw new Error('not today')
    })
    .addChannel('numbers', { message: Type.Number() }, (channel) => {
      channel.on('message', (message) => channel.send(message))
    })
    .addStream('echo', { doc: 'Echoes bytes' }, (stream) => {
      stream.pipe(stream)
    })
  return { service, ticked, counter }
}

/** A served calculator and a client bound to it over memory. */
export async function memoryPair(options: ConnectServiceOptions = {}) {
  const fixture = calculator()
  const server = new RpcServer(undefined)
  server.add(fixture.service)
  const [client, serverEnd] = createMemoryPair()
  server.accept(serverEnd)
  const connection = await bindService(client, fixture.service.id, options)
  return { ...fixture, server, connection, serverEnd }
}
