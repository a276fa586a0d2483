import { generateKey } from '@autobus/bus'
import { describe, expect, it } from 'vitest'
import { calculator, expectCarriedThenWithdrawn, inProcess, nextChange } from './buses.js'

// Two buses in this process: two broadcast domains that only a bridge joins.
const { bus, bridge, socketPath } = inProcess(7)

describe('a pair of bridges', () => {
  // A caller's session is passed on to the origin unread, or (beyond
  // `relayedSessions`, or with none) served by the stand-in: both carry
  // everything the same way.
  it.each([
    ['passed on to the origin', 16],
    ['served by the stand-in', 0],
  ])(
    'carries every capability of a service in a session %s, and withdraws it on goodbye',
    async (_, relayedSessions) => {
      const a = await bus()
      const b = await bus()
      const path = socketPath()
      const left = bridge({ bus: a, listen: [`unix:${path}`] })
      await left.ready
      const right = bridge({ bus: b, connect: [`unix:${path}`], relayedSessions })
      const service = calculator(a)
      const publication = a.publish(service)
      await publication.announced
      const seenOnA = Date.now()
      const found = await b.waitForService({ type: 'test.calc' }, { timeout: 5_000 })
      // Behaviour the spec promises: visible on the far bus within 1 s.
      expect(Date.now() - seenOnA).toBeLessThan(1_000)
      expect(found.service).toBe(service.id)
      expect(found.info).toMatchObject({
        type: 'test.calc',
        room: 'lab',
        bridged: true,
        hops: 1,
        via: [right.id, left.id],
      })
      expect(found.port).toBe(b.port)
      await expectCarriedThenWithdrawn(b, found, publication)
      expect(right.stats.relayedSessions).toBe(relayedSessions > 0 ? 1 : 0)
    },
  )

  it('passes on at most `relayedSessions` sessions per stand-in, and serves the others itself', async () => {
    const a = await bus()
    const b = await bus()
    const path = socketPath()
    const left = bridge({ bus: a, listen: [`unix:${path}`] })
    await left.ready
    const right = bridge({ bus: b, connect: [`unix:${path}`], relayedSessions: 2 })
    a.publish(calculator(a))
    const found = await b.waitForService({ type: 'test.calc' }, { timeout: 5_000 })
    const callers = await Promise.all([1, 2, 3, 4].map(() => b.connect(found)))
    const watched = callers.map(() => [] as unknown[])
    for (const [i, caller] of callers.entries()) {
      expect(await caller.call('add', [i, 0])).toBe(i)
      await caller.watch('total', (value) => watched[i]!.push(value))
    }
    expect(right.stats.relayedSessions).toBe(2)
    // Each passed-on session is a circuit of its own; the stand-in's one
    // session serves the other two.
    expect(right.links()[0]!.circuits).toBe(3)
    expect(await callers[3]!.call('add', [50, 44])).toBe(94)
    for (const values of watched) await expect.poll(() => values.at(-1)).toBe(100)
    // A session passed on and closed makes room for the next caller.
    await callers[0]!.close()
    await expect.poll(() => right.links()[0]!.circuits).toBe(2)
    const next = await b.connect(found)
    expect(await next.call('add', [1, 1])).toBe(2)
    expect(right.stats.relayedSessions).toBe(3)
    // Losing the link: every watcher, passed on or served, sees null.
    await left.close()
    for (const values of watched.slice(1)) await expect.poll(() => values.at(-1)).toBe(null)
  })

  it('links whichever side starts first, and withdraws all it learnt when the link goes', async () => {
    const a = await bus()
    const b = await bus()
    const path = socketPath()
    const right = bridge({ bus: b, connect: [`unix:${path}`] })
    const service = calculator(a)
    a.publish(service)
    await new Promise((resolve) => setTimeout(resolve, 100))
    const left = bridge({ bus: a, listen: [`unix:${path}`] })
    const up = nextChange(right, true)
    await left.ready
    expect((await up).peer).toBe(left.id)
    await b.waitForService({ type: 'test.calc' }, { timeout: 5_000 })
    const gone = new Promise<void>((resolve) =>
      b.on('disappeared', (service) => service.info.type === 'test.calc' && resolve()),
    )
    const down = nextChange(right, false)
    await left.close()
    await down
    await gone
    expect(b.services({ type: 'test.calc' })).toEqual([])
  })

  it('ends up with one link when both bridges connect to each other', async () => {
    const a = await bus()
    const b = await bus()
    const pathA = socketPath()
    const pathB = socketPath()
    const left = bridge({ bus: a, listen: [`unix:${pathA}`], connect: [`unix:${pathB}`] })
    const right = bridge({ bus: b, listen: [`unix:${pathB}`], connect: [`unix:${pathA}`] })
    await Promise.all([left.ready, right.ready])
    await expect.poll(() => left.links().length).toBe(1)
    await expect.poll(() => right.links().length).toBe(1)
    // It stays that way: the losing side waits instead of retrying.
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(left.links()).toHaveLength(1)
    expect(right.links()).toHaveLength(1)
    expect(left.links()[0]!.peer).toBe(right.id)
  })

  it('refuses a link back to its own bus', async () => {
    const a = await bus()
    const path = socketPath()
    const first = bridge({ bus: a, listen: [`unix:${path}`] })
    await first.ready
    const service = calculator(a)
    a.publish(service)
    // Give the first bridge's marker time to be seen on the bus.
    await expect.poll(() => a.services({ 'autobus.bridge': first.id }).length).toBe(1)
    const second = bridge({ bus: a, connect: [`unix:${path}`] })
    await second.ready
    await expect.poll(() => first.stats.refusedLinks + second.stats.refusedLinks).toBeGreaterThan(0)
    expect(first.links()).toEqual([])
    expect(a.services({ type: 'test.calc' })).toHaveLength(1)
  })

  it('holds a byte stream back end to end when the reader is slow, and ends channels and streams with the link', async () => {
    const a = await bus()
    const b = await bus()
    const path = socketPath()
    const left = bridge({ bus: a, listen: [`unix:${path}`] })
    await left.ready
    bridge({ bus: b, connect: [`unix:${path}`] })
    const service = a.createService({ info: { type: 'test.flood' } })
    const total = 16 * 1024 * 1024
    let written = 0
    service.addStream('flood', {}, (stream) => {
      const chunk = Buffer.alloc(64 * 1024, 1)
      void (async () => {
        while (written < total && !stream.destroyed) {
          written += chunk.length
          if (!stream.write(chunk)) await new Promise((resolve) => stream.once('drain', resolve))
        }
        stream.end()
      })()
    })
    service.addChannel('hold', {}, () => {})
    a.publish(service)
    const found = await b.waitForService({ type: 'test.flood' }, { timeout: 5_000 })
    const connection = await b.connect(found)
    const stream = await connection.openStream('flood')
    stream.pause()
    // Nothing reads: the writer is held back by the windows on the way
    // (one per session end), not buffered without end in the bridges.
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    expect(written).toBeLessThan(12 * 1024 * 1024)
    let received = 0
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length
    })
    stream.resume()
    await new Promise((resolve) => stream.on('end', resolve))
    expect(received).toBe(total)

    const channel = await connection.openChannel('hold')
    const stalled = await connection.openStream('flood')
    await left.close()
    expect((await channel.closed).byPeer).toBe(true)
    await expect.poll(() => stalled.destroyed).toBe(true)
  })

  it('with two links between two buses, shows each service once and keeps it when one link goes', async () => {
    const a = await bus()
    const b = await bus()
    const first = socketPath()
    const second = socketPath()
    const a1 = bridge({ bus: a, listen: [`unix:${first}`] })
    const a2 = bridge({ bus: a, listen: [`unix:${second}`] })
    await Promise.all([a1.ready, a2.ready])
    // One bridge on B with a link to each bridge of A: a route from A back
    // to A through B is refused, since A's bridges know each other.
    const b1 = bridge({ bus: b, connect: [`unix:${first}`, `unix:${second}`] })
    await expect.poll(() => b1.links().length).toBe(2)
    const service = calculator(a)
    a.publish(service)
    await expect.poll(() => b.services({ type: 'test.calc' }).length).toBe(1)
    const remote = b.createService({ info: { type: 'test.remote' } })
    remote.addFunction('ping', {}, () => 'pong')
    b.publish(remote)
    await expect.poll(() => a.services({ type: 'test.remote' }).length).toBe(1)
    // Settled: still one each, nothing sent back to where it came from.
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(b.services({ type: 'test.calc' })).toHaveLength(1)
    expect(a.services({ type: 'test.remote' })).toHaveLength(1)
    expect(a.services({ type: 'test.calc' })).toHaveLength(1)
    const [via] = b.services({ type: 'test.calc' })[0]!.info.via as string[]
    expect(via).toBe(b1.id)
    // The link carrying the stand-in goes: the other takes over.
    const carrying = (b.services({ type: 'test.calc' })[0]!.info.via as string[])[1]
    await (carrying === a1.id ? a1 : a2).close()
    await expect
      .poll(() => b.services({ type: 'test.calc' })[0]?.info.via as string[] | undefined)
      .toEqual([b1.id, carrying === a1.id ? a2.id : a1.id])
    const connection = await b.connect(b.services({ type: 'test.calc' })[0]!)
    expect(await connection.call('add', [2, 2])).toBe(4)
  })

  it('tells no route beyond the hop limit', async () => {
    const [a, b, c] = [await bus(), await bus(), await bus()]
    const [ab, bc] = [socketPath(), socketPath()]
    bridge({ bus: a, listen: [`unix:${ab}`], hopLimit: 1 })
    bridge({ bus: b, connect: [`unix:${ab}`], listen: [`unix:${bc}`], hopLimit: 1 })
    bridge({ bus: c, connect: [`unix:${bc}`], hopLimit: 1 })
    a.publish(calculator(a))
    const local = b.createService({ info: { type: 'test.local' } })
    b.publish(local)
    await b.waitForService({ type: 'test.calc' }, { timeout: 5_000 })
    const near = await c.waitForService({ type: 'test.local' }, { timeout: 5_000 })
    expect(near.info.hops).toBe(1)
    // A's service is two links from C: past the limit.
    await new Promise((resolve) => setTimeout(resolve, 500))
    expect(c.services({ type: 'test.calc' })).toEqual([])
  })

  it('links keyed buses over TLS with the bus key, and refuses a bridge without it', async () => {
    const key = generateKey().text
    const a = await bus({ key })
    const b = await bus({ key })
    const path = socketPath()
    const refused: string[] = []
    const logger = {
      debug() {},
      info() {},
      warn: (message: string) => refused.push(message),
      error() {},
    }
    const left = bridge({ bus: a, listen: [`unix:${path}`], socket: { logger } })
    await left.ready
    const right = bridge({ bus: b, connect: [`unix:${path}`] })
    const service = calculator(a)
    await a.publish(service).announced
    const found = await b.waitForService({ type: 'test.calc' }, { timeout: 5_000 })
    expect(found.service).toBe(service.id)
    const connection = await b.connect(found)
    expect(await connection.call('add', [1, 2])).toBe(3)
    expect(right.links()).toHaveLength(1)

    // A bridge on a bus without the key is refused in the handshake and
    // never gets a link up.
    const outsider = bridge({ bus: await bus(), connect: [`unix:${path}`] })
    let up = false
    outsider.on('link', (change) => {
      if (change.up) up = true
    })
    await expect
      .poll(() => refused.some((line) => line.includes('TLS handshake')), { timeout: 5_000 })
      .toBe(true)
    expect(up).toBe(false)
    expect(left.links()).toHaveLength(1)
  }, 20_000)
})
