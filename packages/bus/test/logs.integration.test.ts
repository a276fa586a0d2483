import { collectingLogger } from '@autobus/testkit'
import { describe, expect, it } from 'vitest'
import { createBus, Type } from '../src/index.js'

const discoveryPort = 20_000 + ((process.pid + 61) % 20_000)

describe('createBus({ logger })', () => {
  it('passes the logger to every layer', async () => {
    const { logger, lines } = collectingLogger()
    await using bus = await createBus({
      logger,
      discoveryPort,
      interfaces: ['lo'],
      host: '127.0.0.1',
      holdOff: 0,
    })
    const service = bus.createService({ info: { type: 'test.logs' } })
    service.addFunction('explode', { args: [Type.String()] }, (why) => {
      throw new RangeError(why)
    })
    bus.publish(service)
    const found = await bus.waitForService({ type: 'test.logs' }, { timeout: 5_000 })
    const connection = await bus.connect(found)
    await expect(connection.call('explode', ['out of range'])).rejects.toThrow('out of range')
    const has = (pattern: RegExp) => expect(lines).toContainEqual(expect.stringMatching(pattern))
    has(/^info autobus:bus serving on port \d+, discovery on port \d+$/)
    has(new RegExp(`^info autobus:discovery appeared \\(new\\): ${service.id} at 127\\.0\\.0\\.1:`))
    has(/^debug autobus:transport connection accepted from 127\.0\.0\.1:\d+/)
    has(
      new RegExp(
        `^error autobus:rpc function "explode" of service ${service.id} threw for 127\\.0\\.0\\.1 RangeError: out of range$`,
      ),
    )
  })
})
