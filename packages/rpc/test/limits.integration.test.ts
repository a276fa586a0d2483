import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { createInterface, type Interface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'

// Memory figures need the service in a process of its own (with --expose-gc,
// so "after" is measured after a full collection); the clients here are raw
// sockets that break the rules on purpose.
const fixture = fileURLToPath(new URL('./fixtures/limits-server.mjs', import.meta.url))
const MB = 1024 * 1024
const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`

interface Child {
  port: number
  service: string
  /**
   * RSS and JS heap in use once collections free nothing more, the highest
   * RSS the process has had, and the young generation's pages in memory.
   */
  rss(): Promise<{
    rss: number
    peak: number
    heapUsed: number
    young: number
    stats: Record<string, number>
  }>
  /** Resolves when the service has seen `count` sessions end. */
  closed(count: number): Promise<void>
}

const children: ChildProcess[] = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL')
})

async function startService(flags: string[] = []): Promise<Child> {
  const child = spawn(process.execPath, ['--expose-gc', ...flags, fixture], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  children.push(child)
  const lines: Interface = createInterface({ input: child.stdout! })
  const queue: any[] = []
  const waiters: Array<(line: any) => void> = []
  lines.on('line', (line) => {
    const value = JSON.parse(line)
    const waiter = waiters.shift()
    if (waiter) waiter(value)
    else queue.push(value)
  })
  const next = (): Promise<any> =>
    queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((r) => waiters.push(r))
  const ready = await next()
  return {
    port: ready.port,
    service: ready.service,
    rss: async () => {
      child.stdin!.write('rss\n')
      for (;;) {
        const line = await next()
        if ('rss' in line) return line
      }
    },
    closed: async (count) => {
      for (;;) if ((await next()).closed >= count) return
    },
  }
}

/** A raw client: writes whatever it is told, counts the responses it reads. */
async function rawClient(port: number) {
  const socket = net.connect({ host: '127.0.0.1', port })
  socket.on('error', () => {})
  await once(socket, 'connect')
  const responses: any[] = []
  let onResponse: (() => void) | undefined
  createInterface({ input: socket }).on('line', (line) => {
    responses.push(JSON.parse(line))
    onResponse?.()
  })
  const until = (done: () => boolean) =>
    new Promise<void>((resolve) => {
      if (done()) return resolve()
      onResponse = () => {
        if (!done()) return
        onResponse = undefined
        resolve()
      }
    })
  const command = (id: number, name: string, body: object) =>
    `${JSON.stringify({ _type: 1, _id: id, _command: name, ...body })}\n`
  return { socket, responses, until, command }
}

/** 100,000 pipelined calls to a function that would take ten minutes, on one connection. */
async function flood(service: Child) {
  const client = await rawClient(service.port)
  client.socket.write(client.command(1, 'bind', { service: service.service }))
  await client.until(() => client.responses.length === 1)
  for (let id = 2; id < 100_002; id += 1000) {
    let batch = ''
    for (let i = id; i < id + 1000; i++)
      batch += client.command(i, 'call', { name: 'slow', args: [] })
    client.socket.write(batch)
  }
  // The 10,000 that run are never answered; every other one is answered busy.
  await client.until(() => client.responses.length === 1 + 90_000)
  return client
}

/**
 * The service's size once it has served: a session bound, a few calls
 * answered, the session closed. Loading the code that serves costs a
 * process a little; what a flood leaves is measured from here.
 */
async function warmed(service: Child) {
  const client = await rawClient(service.port)
  client.socket.write(client.command(1, 'bind', { service: service.service }))
  for (let id = 2; id < 12; id++)
    client.socket.write(client.command(id, 'call', { name: 'quick', args: [] }))
  await client.until(() => client.responses.length === 11)
  client.socket.destroy()
  await service.closed(1)
  return service.rss()
}

/**
 * A legitimate client using the whole limit: 10,000 calls of 200 ms at
 * once, each answered. What the service keeps afterwards is its working
 * size: the state of 10,000 running handlers (here about 2 KB each, most
 * of it the handler's own timer, promise and abort listener) outlives
 * young-generation collections, and V8 then grows its young generation to
 * its largest (2 × 16 MB) for good, as it does in any process after some
 * megabytes of survivors. A flood must leave no more than that.
 */
async function fullyUsed(service: Child, sessions: number) {
  const client = await rawClient(service.port)
  client.socket.write(client.command(1, 'bind', { service: service.service }))
  await client.until(() => client.responses.length === 1)
  for (let id = 2; id < 10_002; id += 1000) {
    let batch = ''
    for (let i = id; i < id + 1000; i++)
      batch += client.command(i, 'call', { name: 'slow', args: [200] })
    client.socket.write(batch)
  }
  await client.until(() => client.responses.length === 10_001)
  expect(client.responses.filter((response) => response._error)).toEqual([])
  client.socket.destroy()
  await service.closed(sessions)
  return service.rss()
}

describe('what one session can make a service hold', () => {
  it('answers busy beyond the in-flight limit, stays within 64 MB and frees it all on disconnect', async () => {
    const service = await startService()
    const fresh = await warmed(service)
    const working = await fullyUsed(service, 2)
    expect(working.peak - fresh.rss).toBeLessThanOrEqual(64 * MB)
    const floods: Array<{ peak: number; after: number; besidesYoung: number }> = []
    for (let round = 1; round <= 2; round++) {
      const client = await flood(service)
      const busy = client.responses.filter((response) => response._error?.code === 'busy')
      expect(busy.length).toBeGreaterThanOrEqual(90_000)
      const during = await service.rss()
      expect(during.stats).toMatchObject({ running: 10_000, busy: 90_000 * round })
      client.socket.destroy()
      await service.closed(2 + round)
      const after = await service.rss()
      expect(after.stats.running).toBe(0)
      expect(after.peak - fresh.rss).toBeLessThanOrEqual(64 * MB)
      // Everything the session held is garbage once it has closed.
      expect(after.heapUsed - fresh.heapUsed).toBeLessThanOrEqual(4 * MB)
      expect(after.rss - working.rss).toBeLessThanOrEqual(16 * MB)
      // And from the fresh start, once V8's young generation is set aside.
      const besidesYoung = after.rss - fresh.rss - (after.young - fresh.young)
      expect(besidesYoung).toBeLessThanOrEqual(16 * MB)
      floods.push({ peak: during.peak - fresh.rss, after: after.rss - working.rss, besidesYoung })
    }
    console.log(
      `busy flood: working size +${mb(working.rss - fresh.rss)} over a fresh start (young generation +${mb(working.young - fresh.young)}); ${floods
        .map(
          (flood, i) =>
            `flood ${i + 1}: peak +${mb(flood.peak)} over the fresh start, RSS after ${flood.after < 0 ? '-' : '+'}${mb(Math.abs(flood.after))} over the working size, +${mb(flood.besidesYoung)} over the fresh start besides the young generation`,
        )
        .join('; ')}`,
    )
  }, 60_000)

  it('closes a session whose stream data goes beyond the window, and memory stays within 32 MB', async () => {
    const service = await startService()
    const start = (await service.rss()).rss
    const client = await rawClient(service.port)
    client.socket.write(
      client.command(1, 'bind', { service: service.service, features: ['streams', 'attachments'] }),
    )
    await client.until(() => client.responses.length === 1)
    client.socket.write(
      client.command(2, 'stream_open', { name: 'sink', stream: 1, window: 65_536 }),
    )
    await client.until(() => client.responses.length === 2)
    expect(client.responses[1]).toMatchObject({ _id: 2, window: 2 * MB })

    // Push up to 256 MiB without ever waiting for a stream_ack.
    const piece = Buffer.alloc(256 * 1024, 7)
    const header = `${JSON.stringify({ _type: 3, _command: 'stream_data', stream: 1, _size: piece.length })}\n`
    let pushed = 0
    let open = true
    const ended = once(client.socket, 'close').then(() => {
      open = false
    })
    while (open && pushed < 256 * MB) {
      client.socket.write(header)
      const more = client.socket.write(piece)
      pushed += piece.length
      if (!more) await Promise.race([once(client.socket, 'drain'), ended])
    }
    await ended
    expect(pushed).toBeLessThan(256 * MB)
    const report = client.responses.find((response) => response._id === null)
    expect(report?._error).toMatchObject({ code: 'invalid_message' })
    expect(report?._error.text).toMatch(/beyond the granted window/)
    const after = await service.rss()
    expect(after.stats.windowViolations).toBe(1)
    expect(after.peak - start).toBeLessThanOrEqual(32 * MB)
    console.log(`stream push: ${mb(pushed)} pushed, peak +${mb(after.peak - start)}`)
  }, 60_000)
})
