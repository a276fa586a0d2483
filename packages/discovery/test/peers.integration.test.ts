import dgram from 'node:dgram'
import { once } from 'node:events'
import { describe, expect, it } from 'vitest'
import { createPublisher, udpNetwork } from '../src/index.js'

// Peers over real UDP on loopback, with real name resolution.
const port = 20_000 + ((process.pid + 7) % 20_000)

describe('unicast peers over real UDP', () => {
  it('resolves a peer’s host name and sends it the announcements and the goodbyes; a name that does not resolve is counted', async () => {
    const peer = dgram.createSocket('udp4')
    peer.bind(0, '127.0.0.1')
    await once(peer, 'listening')
    const heard: Array<Record<string, unknown>> = []
    peer.on('message', (bytes) => heard.push(JSON.parse(bytes.toString())))
    const publisher = await createPublisher({
      network: udpNetwork({ port, interfaces: ['lo'] }),
      peers: [`localhost:${peer.address().port}`, 'no-such-host.invalid'],
      holdOff: 0,
    })
    try {
      publisher.publish({ service: 'to-a-peer', port: 4000, info: {} })
      await expect.poll(() => heard.map((datagram) => datagram.command)).toContain('add')
      await expect.poll(() => Object.values(publisher.stats.faults.resolve ?? {})).toEqual([1])
    } finally {
      await publisher.close()
    }
    await expect
      .poll(() => heard.filter((datagram) => datagram.command === 'remove'))
      .toHaveLength(3)
    peer.close()
  })
})
