import { afterEach, describe, expect, it, vi } from 'vitest'
import { withEnvironment } from '../src/environment.js'
import { type Bus, createBus, generateKey, KeyRing } from '../src/index.js'
import { MAX_LOG_LINES_PER_SECOND, stderrLogger } from '../src/log.js'

// Discovery ports of this suite's own, on loopback only.
const discoveryPort = 20_000 + ((process.pid + 41) % 20_000)
const otherPort = 20_000 + ((process.pid + 43) % 20_000)
const buses: Bus[] = []
afterEach(async () => {
  vi.unstubAllEnvs()
  await Promise.all(buses.splice(0).map((bus) => bus.close()))
})

async function published(bus: Bus, type: string) {
  buses.push(bus)
  const service = bus.createService({ info: { type } })
  bus.publish(service)
  return service
}

describe('the environment', () => {
  it('sets the discovery port and interfaces of a bus that does not', async () => {
    vi.stubEnv('AUTOBUS_DISCOVERY_PORT', String(discoveryPort))
    vi.stubEnv('AUTOBUS_INTERFACES', 'lo')
    const service = await published(
      await createBus({ holdOff: 0, host: '127.0.0.1' }),
      'test.environment',
    )
    vi.unstubAllEnvs()
    const listener = await createBus({ discoveryPort, interfaces: ['lo'], host: '127.0.0.1' })
    buses.push(listener)
    const found = await listener.waitForService({ type: 'test.environment' }, { timeout: 5_000 })
    expect(found.service).toBe(service.id)
  })

  it('gives way to an option', async () => {
    vi.stubEnv('AUTOBUS_DISCOVERY_PORT', String(otherPort))
    vi.stubEnv('AUTOBUS_INTERFACES', 'no-such-interface')
    const options = { discoveryPort, interfaces: ['lo'], holdOff: 0, host: '127.0.0.1' }
    const service = await published(await createBus(options), 'test.option')
    // The listener is on the options' port whatever happens: if the
    // environment had won above, it would never hear of the service.
    vi.unstubAllEnvs()
    const listener = await createBus(options)
    buses.push(listener)
    const found = await listener.waitForService({ type: 'test.option' }, { timeout: 5_000 })
    expect(found.service).toBe(service.id)
  })

  it('is read as documented: empty is unset, undefined is not given, nonsense is an error', async () => {
    expect(
      withEnvironment({}, { AUTOBUS_DISCOVERY_PORT: '4000', AUTOBUS_INTERFACES: 'lo, eth0,' }),
    ).toEqual({ discoveryPort: 4000, interfaces: ['lo', 'eth0'] })
    expect(withEnvironment({}, { AUTOBUS_DISCOVERY_PORT: ' ', AUTOBUS_INTERFACES: ',' })).toEqual(
      {},
    )
    expect(
      withEnvironment({ discoveryPort: undefined, port: 9 }, { AUTOBUS_DISCOVERY_PORT: '4000' }),
    ).toEqual({ discoveryPort: 4000, port: 9 })
    for (const nonsense of ['abc', '0', '65536', '52722.5'])
      expect(() => withEnvironment({}, { AUTOBUS_DISCOVERY_PORT: nonsense })).toThrow(
        `AUTOBUS_DISCOVERY_PORT must be a port number (1-65535), not "${nonsense}"`,
      )
    vi.stubEnv('AUTOBUS_DISCOVERY_PORT', 'soon')
    await expect(createBus()).rejects.toBeInstanceOf(TypeError)
    // An option given makes a bad setting irrelevant.
    const bus = await createBus({ discoveryPort, interfaces: ['lo'], host: '127.0.0.1' })
    buses.push(bus)
  })

  it('turns the stderr log on with AUTOBUS_DEBUG=1 or DEBUG naming autobus, and only then', () => {
    const logger = (env: Readonly<Record<string, string | undefined>>) =>
      withEnvironment({}, env).logger
    for (const env of [
      { AUTOBUS_DEBUG: '1' },
      { AUTOBUS_DEBUG: 'true' },
      { DEBUG: 'autobus' },
      { DEBUG: 'autobus:*' },
      { DEBUG: 'express:*, autobus:*' },
      { DEBUG: '*' },
    ])
      expect(logger(env), JSON.stringify(env)).toBeDefined()
    for (const env of [
      {},
      { AUTOBUS_DEBUG: '0' },
      { AUTOBUS_DEBUG: '' },
      { DEBUG: 'express:*' },
      { DEBUG: '*,-autobus:*' },
    ])
      expect(logger(env), JSON.stringify(env)).toBeUndefined()
    expect(() => logger({ AUTOBUS_DEBUG: 'loud' })).toThrow(
      'AUTOBUS_DEBUG must be 1 or 0, not "loud"',
    )
    // A logger given in code wins.
    expect(withEnvironment({ logger: console }, { AUTOBUS_DEBUG: '1' }).logger).toBe(console)
  })

  it('prints one line per event, prefixed autobus:<layer>, the level and the error in it', () => {
    const lines: string[] = []
    const log = stderrLogger((line) => lines.push(line))
    log.error('autobus:rpc function "f" of service abc threw', new TypeError('bad\nthing'))
    log.debug('autobus:transport connection accepted from 127.0.0.1:4000 (1 open)')
    expect(lines).toEqual([
      'autobus:rpc error function "f" of service abc threw (TypeError: bad thing)\n',
      'autobus:transport debug connection accepted from 127.0.0.1:4000 (1 open)\n',
    ])
  })

  it('writes at most MAX_LOG_LINES_PER_SECOND lines a second and says how many it left out', () => {
    const lines: string[] = []
    let time = 0
    const log = stderrLogger(
      (line) => lines.push(line),
      () => time,
    )
    for (let i = 0; i < 1_000; i++) log.warn(`autobus:discovery malformed datagram ${i}`)
    expect(lines).toHaveLength(MAX_LOG_LINES_PER_SECOND)
    time = 1_000
    log.warn('autobus:discovery malformed datagram, a second later')
    expect(lines.slice(-2)).toEqual([
      `autobus:log warn ${1_000 - MAX_LOG_LINES_PER_SECOND} lines left out (over ${MAX_LOG_LINES_PER_SECOND} a second)\n`,
      'autobus:discovery warn malformed datagram, a second later\n',
    ])
  })
})

describe('AUTOBUS_KEY', () => {
  it('gives a bus its key ring, the first key in use', async () => {
    const [a, b] = [generateKey('a'), generateKey('b')]
    const options = withEnvironment({}, { AUTOBUS_KEY: `${a.text}, ${b.text}` })
    expect(options.key).toBeInstanceOf(KeyRing)
    expect((options.key as KeyRing).ids).toEqual(['a', 'b'])
    expect(withEnvironment({ key: b.text }, { AUTOBUS_KEY: a.text }).key).toBe(b.text)
  })

  it('names itself when it cannot be read', () => {
    expect(() => withEnvironment({}, { AUTOBUS_KEY: 'secret' })).toThrow(/AUTOBUS_KEY/)
  })

  it('is what createBus({ key }) takes too', async () => {
    const key = generateKey('k')
    const bus = await createBus({ key: key.text, discovery: false, host: '127.0.0.1' })
    buses.push(bus)
    expect(bus.keys?.current.id).toBe('k')
    const plain = await createBus({ discovery: false, host: '127.0.0.1' })
    buses.push(plain)
    expect(plain.keys).toBeUndefined()
  })
})
