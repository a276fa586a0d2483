import dgram from 'node:dgram'
import { once } from 'node:events'
import net from 'node:net'
import os from 'node:os'
import { afterEach, describe, expect, it, vi } from 'vitest'
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
  vi.restoreAllMocks()
  await Promise.all(open.splice(0).map((closable) => closable.close()))
})

/** A socket on the discovery port that only listens, as an original peer does. */
async function listener() {
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true })
  socket.bind(port)
  await once(socket, 'listening')
  const heard: Array<Record<string, unknown>> = []
  socket.on('message', (bytes) => heard.push(JSON.parse(bytes.toString())))
  return { heard, close: () => new Promise<void>((resolve) => socket.close(() => resolve())) }
}

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

describe('goodbyes and originals over real UDP', () => {
  it('gets all three goodbyes out before the socket closes', async () => {
    const ear = await listener()
    try {
      const created = await createPublisher({ network: network(), holdOff: 60_000 })
      created.publish({ service: 'leaving', port: 4010, info: {} })
      await created.close()
      await expect
        .poll(() => ear.heard.filter((datagram) => datagram.command === 'remove').length)
        .toBe(3)
    } finally {
      await ear.close()
    }
  })

  it('answers an original peer that queries from a throwaway port and listens only on the discovery port', async () => {
    const ear = await listener()
    try {
      // Announced long ago (as far as the newcomer knows): only answers can reach it.
      const created = await publisher()
      const published = created.publish({ service: 'svc-o', port: 4011, info: {} })
      await published.announced
      ear.heard.length = 0
      const throwaway = dgram.createSocket('udp4')
      throwaway.bind(0)
      await once(throwaway, 'listening')
      throwaway.setBroadcast(true)
      throwaway.send('{"command":"query"}', port, '127.255.255.255')
      await expect
        .poll(() => ear.heard.some((datagram) => datagram.service === 'svc-o'), { timeout: 3_000 })
        .toBe(true)
      throwaway.close()
    } finally {
      await ear.close()
    }
  })
})

describe('operating-system failures are counted, never fatal', () => {
  it('survives interface scans that fail with EMFILE and keeps the last good list', async () => {
    const created = await createPublisher({
      network: udpNetwork({ port, interfaces: ['lo'], interfaceRescan: 10 }),
      holdOff: 0,
    })
    open.push(created)
    const scan = vi.spyOn(os, 'networkInterfaces').mockImplementation(() => {
      throw Object.assign(new Error('uv_interface_addresses: too many open files'), {
        code: 'EMFILE',
      })
    })
    await expect.poll(() => created.stats.faults.rescan.EMFILE ?? 0).toBeGreaterThan(2)
    scan.mockRestore()
    const late = await discoverer()
    created.publish({ service: 'after-emfile', port: 4012, info: {} })
    await expect.poll(() => late.snapshot().map((s) => s.service)).toContain('after-emfile')
  })

  it('counts failed sends by code and tries each once more', async () => {
    const created = await createPublisher({ network: network(), holdOff: 60_000 })
    open.push(created)
    const send = vi.spyOn(dgram.Socket.prototype, 'send').mockImplementation(function (
      this: dgram.Socket,
      ...args: unknown[]
    ) {
      const callback = args.at(-1) as (error: Error | null) => void
      setImmediate(() => callback(Object.assign(new Error('send ENOBUFS'), { code: 'ENOBUFS' })))
    } as never)
    const ear = await listener()
    try {
      created.publish({ service: 'nobufs', port: 4013, info: {} })
      const closing = created.close()
      await closing
      // Three goodbyes, each tried twice: six failures, and the process is fine.
      expect(created.stats.faults.send).toEqual({ ENOBUFS: 6 })
      expect(send).toHaveBeenCalledTimes(6)
    } finally {
      send.mockRestore()
      await ear.close()
    }
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
