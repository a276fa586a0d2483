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
  /** RSS and JS heap in use after a full collection, and the highest RSS the process has had. */
  rss(): Promise<{ rss: number; peak: number; heapUsed: number; stats: Record<string, number> }>
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

describe('what one session can make a service hold', () => {
  it('answers busy beyond the in-flight limit, stays within 64 MB and frees it all on disconnect', async () => {
    const service = await startService()
    const cold = await warmed(service)

    const first = await flood(service)
    const busy = first.responses.filter((response) => response._error?.code === 'busy')
    expect(busy.length).toBeGreaterThanOrEqual(90_000)
    const during = await service.rss()
    expect(during.stats).toMatchObject({ running: 10_000, busy: 90_000 })
    expect(during.peak - cold.rss).toBeLessThanOrEqual(64 * MB)
    first.socket.destroy()
    await service.closed(2)
    const afterFirst = await service.rss()
    expect(afterFirst.stats.running).toBe(0)
    // Everything the session held is garbage once it has closed.
    expect(afterFirst.heapUsed - cold.heapUsed).toBeLessThanOrEqual(4 * MB)

    // V8 keeps its young generation at the size the flood grew it to (16 MB
    // more than at start) and keeps freed pages for reuse, so RSS after the
    // first flood is the process's working size; a second flood must not
    // add to it (each one used to keep ~100 MB for good).
    const second = await flood(service)
    second.socket.destroy()
    await service.closed(3)
    const afterSecond = await service.rss()
    expect(afterSecond.peak - cold.rss).toBeLessThanOrEqual(64 * MB)
    expect(afterSecond.heapUsed - cold.heapUsed).toBeLessThanOrEqual(4 * MB)
    expect(afterSecond.rss - afterFirst.rss).toBeLessThanOrEqual(16 * MB)
    console.log(
      `busy flood: peak +${mb(afterSecond.peak - cold.rss)} over start; JS heap after +${mb(afterSecond.heapUsed - cold.heapUsed)}; RSS after first +${mb(afterFirst.rss - cold.rss)}, after second +${mb(afterSecond.rss - afterFirst.rss)} over first`,
    )
  }, 60_000)

  it('hands the memory back within 16 MB of the start when the young generation is not let grow', async () => {
    // V8 grows its young generation (from 2 × 8 MB to 2 × 16 MB) once 8 MB
    // have outlived a collection, and shrinks it again only after the
    // process has been quiet for a while. Held at its start size, what is
    // left after the flood is what the service itself keeps.
    const service = await startService(['--max-semi-space-size=8'])
    const start = await warmed(service)
    const client = await flood(service)
    const during = await service.rss()
    expect(during.stats).toMatchObject({ running: 10_000 })
    client.socket.destroy()
    await service.closed(2)
    const after = await service.rss()
    expect(after.stats.running).toBe(0)
    expect(after.peak - start.rss).toBeLessThanOrEqual(64 * MB)
    expect(after.rss - start.rss).toBeLessThanOrEqual(16 * MB)
    console.log(
      `busy flood, young generation held: peak +${mb(after.peak - start.rss)}, RSS after +${mb(after.rss - start.rss)} over start`,
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
