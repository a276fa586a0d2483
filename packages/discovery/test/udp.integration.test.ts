import { once } from 'node:events'
import net from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import {
  createDiscoverer,
  createPublisher,
  type Discoverer,
  type Publisher,
  probeService,
  udpNetwork,
} from '../src/index.js'

// A port of its own, so that this suite never meets a real bus on 52722.
const port = 20_000 + (process.pid % 20_000)
const network = () => udpNetwork({ port, interfaces: ['lo'] })
const open: Array<Publisher | Discoverer> = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((closable) => closable.close()))
})

async function publisher() {
  const created = await createPublisher({ network: network(), holdOff: 0 })
  open.push(created)
  return created
}

async function discoverer() {
  const created = await createDiscoverer({ network: network(), probe: async () => true })
  open.push(created)
  return created
}

describe('discovery over real UDP on loopback', () => {
  it('finds a late joiner the services already there, and forgets them on goodbye', async () => {
    const first = await publisher()
    const second = await publisher()
    const a = first.publish({ service: 'svc-a', port: 4001, info: { type: 'test' } })
    second.publish({ service: 'svc-b', port: 4002, info: { type: 'test' } })
    await new Promise((resolve) => setTimeout(resolve, 50))
    const late = await discoverer()
    await expect
      .poll(() =>
        late
          .snapshot()
          .map((s) => s.service)
          .sort(),
      )
      .toEqual(['svc-a', 'svc-b'])
    const found = late.snapshot({ type: 'test' }).find((s) => s.service === 'svc-a')!
    expect(found).toMatchObject({
      host: '127.0.0.1',
      port: 4001,
      info: { type: 'test', host: '127.0.0.1', port: 4001, service: 'svc-a' },
    })
    await a.unpublish()
    await expect.poll(() => late.snapshot().map((s) => s.service)).toEqual(['svc-b'])
  })

  it('lets two discoverers and two publishers share the port in one process', async () => {
    const [one, two] = [await discoverer(), await discoverer()]
    const pub = await publisher()
    pub.publish({ service: 'svc-c', port: 4003, info: {} })
    await expect.poll(() => one.snapshot().length).toBe(1)
    await expect.poll(() => two.snapshot().length).toBe(1)
  })
})

describe('the liveness probe', () => {
  it('passes only when the port answers bind for that service id', async () => {
    const server = net.createServer((socket) => {
      socket.setEncoding('utf8')
      socket.on('data', (text: string) => {
        const request = JSON.parse(text.split('\n')[0]!)
        const body = request.service === 'alive' ? {} : { _error: { text: 'no such service' } }
        socket.end(`${JSON.stringify({ _type: 2, _id: request._id, ...body })}\n`)
      })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const serverPort = (server.address() as net.AddressInfo).port
    expect(
      await probeService({ host: '127.0.0.1', port: serverPort, service: 'alive' }, 1_000),
    ).toBe(true)
    expect(
      await probeService({ host: '127.0.0.1', port: serverPort, service: 'other' }, 1_000),
    ).toBe(false)
    server.close()
    expect(
      await probeService({ host: '127.0.0.1', port: serverPort, service: 'alive' }, 1_000),
    ).toBe(false)
  })
})
