import { readFileSync } from 'node:fs'
import { BRIDGE_LINK_VERSION, ProtocolError } from '@autobus/protocol'
import { createMemoryPair } from '@autobus/transport'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { formatLinkAddress, parseLinkAddress } from '../src/index.js'
import { circuitFrame, Link, readCircuitFrame } from '../src/link.js'

const hello = (id: string, mates: string[] = [id]) => ({ id, version: BRIDGE_LINK_VERSION, mates })

function pair() {
  const [a, b] = createMemoryPair()
  return [new Link(a, true), new Link(b, false)] as const
}

afterEach(() => {
  vi.useRealTimers()
})

describe('link', () => {
  it('exchanges hellos and numbers circuits by side', async () => {
    const [left, right] = pair()
    const [fromRight, fromLeft] = await Promise.all([
      left.start(hello('left')),
      right.start(hello('right')),
    ])
    expect(fromRight.id).toBe('right')
    expect(fromLeft.id).toBe('left')
    const opened = new Promise<[number, string]>((resolve) =>
      right.once('open', (circuit, service) => resolve([circuit.id, service])),
    )
    const circuit = left.open('svc')
    expect(await opened).toEqual([circuit.id, 'svc'])
    expect(circuit.id % 2).toBe(1)
    expect(right.open('other').id % 2).toBe(0)
    await left.close('done')
    expect((await circuit.closed).reason).toMatch(/link lost/)
  })

  it('counts bad input and keeps going', async () => {
    const [a, b] = createMemoryPair()
    const link = new Link(b, false)
    const started = link.start(hello('me'))
    a.send({ _type: 3, _command: 'fired', name: 'bridge.routes', args: [{ add: [] }] })
    a.send({ _type: 3, _command: 'fired', name: 'bridge.nothing', args: [] })
    a.send({ _type: 3, _command: 'fired', name: 'bridge.hello', args: [{ id: 'x' }] })
    a.send({ _type: 3, _command: 'fired', name: 'bridge.hello', args: [hello('peer')] })
    await started
    // Odd numbers belong to the end that connected: this end's own parity is refused.
    a.send({ _type: 3, _command: 'fired', name: 'bridge.open', args: [2, 'svc'] })
    a.sendEncoded('{not json\n')
    await vi.waitFor(() => expect(link.counters.invalid).toBe(5))
    expect(link.isClosed).toBe(false)
    await link.close()
  })

  it('stays up while both ends answer, and closes within the timeout when one goes silent', async () => {
    vi.useFakeTimers({
      toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'Date'],
    })
    const [left, right] = pair()
    const timings = { heartbeatInterval: 1_000, heartbeatTimeout: 3_000 }
    const started = Promise.all([left.start(hello('l'), timings), right.start(hello('r'), timings)])
    await vi.waitFor(() => expect(left.peer).toBeDefined())
    await started
    for (let i = 0; i < 40; i++) {
      await vi.advanceTimersByTimeAsync(250)
      await new Promise((resolve) => setImmediate(resolve))
    }
    expect(left.isClosed).toBe(false)
    expect(right.isClosed).toBe(false)
    // The right end stops reading: the left end notices within its timeout.
    right.connection.removeAllListeners('message')
    const silentSince = Date.now()
    let closedAt = 0
    left.closed.then(() => {
      closedAt = Date.now()
    })
    for (let i = 0; i < 40 && closedAt === 0; i++) {
      await vi.advanceTimersByTimeAsync(250)
      await new Promise((resolve) => setImmediate(resolve))
    }
    expect(closedAt - silentSince).toBeLessThanOrEqual(3_500)
    expect((await left.closed).reason).toBe('peer timeout')
  })
})

describe('circuit frames', () => {
  const vectors = JSON.parse(
    readFileSync(new URL('../../protocol/vectors/bridge/frame.json', import.meta.url), 'utf8'),
  ) as { valid: Array<{ name: string; text: string; message: { args: [number] } }> }

  for (const vector of vectors.valid) {
    it(`reads the vector: ${vector.name}`, async () => {
      const [a, b] = createMemoryPair()
      const id = vector.message.args[0]
      // The other end opens the circuit, so this end has the other parity.
      const link = new Link(b, id % 2 === 0)
      const started = link.start(hello('me'))
      a.send({ _type: 3, _command: 'fired', name: 'bridge.hello', args: [hello('peer')] })
      await started
      a.send({ _type: 3, _command: 'fired', name: 'bridge.open', args: [id, 'svc'] })
      const circuit = await new Promise<import('../src/link.js').Circuit>((resolve) =>
        link.once('open', resolve),
      )
      const frame = new Promise<Buffer>((resolve) => circuit.once('frame', resolve))
      a.sendEncoded(vector.text)
      const message = readCircuitFrame(await frame)
      expect(message).not.toBeInstanceOf(ProtocolError)
      // Written back, it is the same bytes.
      expect(Buffer.from(circuitFrame(message as object))).toEqual(
        Buffer.from(vector.text.slice(vector.text.indexOf('\n') + 1)),
      )
      await link.close()
    })
  }

  it('refuses bytes after the newline that are not the announced attachment', () => {
    const bad = readCircuitFrame(
      Buffer.from('{"_type":3,"_command":"stream_end","stream":1}\nextra'),
    )
    expect(bad).toBeInstanceOf(ProtocolError)
  })
})

describe('link limits', () => {
  it('refuses circuits beyond its limit, and counts them', async () => {
    const [a, b] = createMemoryPair()
    const left = new Link(a, true)
    const right = new Link(b, false, 2)
    await Promise.all([left.start(hello('l')), right.start(hello('r'))])
    const circuits = [left.open('s'), left.open('s'), left.open('s')]
    expect((await circuits[2]!.closed).reason).toBe('too many circuits')
    expect(right.counters.refusedCircuits).toBe(1)
    expect(right.circuitCount).toBe(2)
    expect(circuits[0]!.isClosed).toBe(false)
    await left.close()
  })
})

describe('link addresses', () => {
  it('reads tcp and unix addresses and refuses others', () => {
    expect(parseLinkAddress('tcp://10.0.0.2:7000')).toEqual({ host: '10.0.0.2', port: 7000 })
    expect(parseLinkAddress('tcp://[::1]:7000')).toEqual({ host: '::1', port: 7000 })
    expect(parseLinkAddress('unix:/run/a.sock')).toEqual({ path: '/run/a.sock' })
    expect(parseLinkAddress('unix:///run/a.sock')).toEqual({ path: '/run/a.sock' })
    expect(formatLinkAddress({ host: 'h', port: 1 })).toBe('tcp://h:1')
    for (const bad of ['10.0.0.2:7000', 'tcp://h', 'tcp://h:99999', 'unix:', 'http://h:1'])
      expect(() => parseLinkAddress(bad)).toThrow(TypeError)
  })
})
