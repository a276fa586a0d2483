import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { connect } from 'node:net'
import { encodeDatagram, generateKey, sealDatagram } from '@autobus/protocol'
import { describe, expect, it } from 'vitest'
import {
  type BusMetrics,
  type BusOptions,
  createBus,
  META_SERVICE_ID,
  serveMetrics,
} from '../src/index.js'

// Each file has its own discovery port on loopback, so that no other test's
// datagrams are counted here.
const discoveryPort = 20_000 + ((process.pid + 53) % 20_000)
const onLoopback = { discoveryPort, interfaces: ['lo'], host: '127.0.0.1' } as const

async function sendDatagrams(...datagrams: Buffer[]): Promise<void> {
  const socket = createSocket('udp4')
  try {
    for (const bytes of datagrams) {
      await new Promise<void>((resolve, reject) =>
        socket.send(bytes, discoveryPort, '127.0.0.1', (error) =>
          error ? reject(error) : resolve(),
        ),
      )
    }
  } finally {
    socket.close()
  }
}

describe('discovery metrics', () => {
  it('counts datagrams in and out and a malformed one, in bus.metrics() and /metrics', async () => {
    await using bus = await createBus(onLoopback)
    await sendDatagrams(Buffer.from('{"command": "add", "port": "not a port"'))
    await expect.poll(() => bus.metrics().discovery?.dropped.malformed).toBe(1)
    const discovery = bus.metrics().discovery!
    expect(discovery.datagramsIn).toBeGreaterThanOrEqual(1)
    // Its own start-up queries.
    expect(discovery.datagramsOut).toBeGreaterThanOrEqual(1)
    expect(discovery.bytesOut).toBeGreaterThan(0)
    expect(bus.metrics().security).toEqual({
      keyed: false,
      handshakesFailed: 0,
      requestsDenied: 0,
    })
    // Any peer reads the same over the wire.
    const meta = await bus.connect({ host: '127.0.0.1', port: bus.port, service: META_SERVICE_ID })
    const remote = (await meta.call('stats', [])) as BusMetrics
    expect(remote.discovery?.dropped.malformed).toBe(1)
    expect(remote.security.requestsDenied).toBe(0)
    await using exporter = await serveMetrics(bus, { port: 0 })
    const text = await (await fetch(exporter.url)).text()
    expect(text).toContain('autobus_discovery_dropped_total{reason="malformed"} 1')
    expect(text).toMatch(/^autobus_discovery_datagrams_received_total [1-9]\d*$/m)
  })

  it('on a keyed bus, counts unsigned and replayed datagrams and failed handshakes', async () => {
    const key = generateKey()
    await using bus = await createBus({ ...onLoopback, key: [key] })
    const add = encodeDatagram({ command: 'add', port: 9, service: 'forged', info: {} })
    const sealed = sealDatagram(add, key, Date.now())
    const forged = sealDatagram(add, { ...generateKey(key.id) }, Date.now())
    const stranger = sealDatagram(add, generateKey('stranger'), Date.now())
    const stale = sealDatagram(add, key, Date.now() - 120_000)
    await sendDatagrams(add, sealed, sealed, forged, stranger, stale)
    await expect
      .poll(() => bus.metrics().discovery?.dropped)
      .toMatchObject({
        unsigned: 1,
        replayed: 1,
        badTag: 1,
        unknownKey: 1,
        outsideWindow: 1,
      })

    // Plain text to a TLS listener.
    const socket = connect(bus.port, '127.0.0.1')
    await once(socket, 'connect')
    socket.end('{"_type":1,"_id":1,"_command":"ping"}\n')
    await expect.poll(() => bus.metrics().security.handshakesFailed).toBe(1)
    expect(bus.metrics().security.keyed).toBe(true)
    await using exporter = await serveMetrics(bus, { port: 0 })
    const text = await (await fetch(exporter.url)).text()
    expect(text).toContain('autobus_discovery_dropped_total{reason="replayed"} 1')
    expect(text).toContain('autobus_discovery_dropped_total{reason="unsigned"} 1')
    expect(text).toContain('autobus_handshakes_failed_total 1')
  })

  it('counts conflicts, contested ids, probes and answers held back by the rate limits', async () => {
    type Network = NonNullable<BusOptions['network']>
    let deliver: Parameters<Network['open']>[0] | undefined
    const sent: Buffer[] = []
    const network: Network = {
      open: async (handler) => {
        deliver = handler
        return {
          privatePort: 40_000,
          sendFailures: 0,
          faults: { send: {}, rescan: {} },
          broadcast: (bytes) => void sent.push(bytes),
          unicast: (bytes) => void sent.push(bytes),
          close: async () => {},
        }
      },
    }
    await using bus = await createBus({ network, holdOff: 0, probeTimeout: 200 })
    const service = bus.createService()
    bus.publish(service)
    const from = (address: string) => ({ address, port: 52_722 })
    // Another host announces this bus's own id.
    deliver!(
      encodeDatagram({ command: 'add', port: 9, service: service.id, info: {} }),
      from('10.0.0.9'),
    )
    // One id from two hosts: the first is probed before anything changes.
    const twice = encodeDatagram({ command: 'add', port: 9, service: 'twice', info: {} })
    deliver!(twice, from('10.0.0.7'))
    deliver!(twice, from('10.0.0.8'))
    // A goodbye for it from a third host is not honoured.
    deliver!(encodeDatagram({ command: 'remove', port: 9, service: 'twice' }), from('10.0.0.5'))
    // Two queries at once: one answer, the other held back.
    const query = encodeDatagram({ command: 'query' })
    deliver!(query, from('10.0.0.6'))
    deliver!(query, from('10.0.0.6'))
    const discovery = bus.metrics().discovery!
    expect(discovery).toMatchObject({ conflicts: 1, contested: 1, probes: 1, services: 2 })
    expect(discovery.dropped.rateLimited).toBeGreaterThanOrEqual(1)
    expect(discovery.dropped.ignoredRemoves).toBe(1)
    expect(discovery.datagramsIn).toBe(6)
    expect(discovery.datagramsOut).toBe(sent.length)
    // Heard, never probed successfully: not verified.
    expect(bus.heard('twice')).toEqual({ lastHeard: expect.any(Number), verified: false })
    expect(Date.now() - bus.heard('twice')!.lastHeard).toBeLessThan(60_000)
    expect(bus.heard(service.id)?.verified).toBe(true)
    expect(bus.heard('nobody')).toBeUndefined()
  })
})
