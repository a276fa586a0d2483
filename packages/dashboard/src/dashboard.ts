import { readFile } from 'node:fs/promises'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import {
  AutobusError,
  type Bus,
  type BusMetrics,
  type DiscoveredService,
  LATENCY_BUCKETS_MS,
  type LabelledMetrics,
  renderPrometheus,
} from '@autobus/bus'
import { type Closable, type CloseInfo, META_SERVICE_ID } from '@autobus/protocol'
import { EventStream } from './sse.js'

/** Options for {@link createDashboard}. */
export interface DashboardOptions {
  /** The bus whose table of services the dashboard shows. */
  bus: Bus
  /** TCP port (default 7770; 0 picks a free one). */
  port?: number
  /** Address to listen on (default 127.0.0.1: the dashboard can call any function). */
  host?: string
  /** How often a chosen service's figures are read, in ms (default 1,000). */
  statsInterval?: number
  /**
   * How often the list's "last heard" and "verified" are brought up to date,
   * in ms (default 2,000): only what changed is sent.
   */
  heardInterval?: number
  /**
   * How often every bus's failed handshakes and denied requests are read,
   * while a page is open, in ms (default 5,000).
   */
  securityInterval?: number
  /** How long a call, describe or stats read may take, in ms (default 10,000). */
  callTimeout?: number
  /** Bytes a POST body may have (default 1 MiB); a bigger one is answered 413. */
  maxBodyBytes?: number
  /**
   * Bytes a page may leave unread on a live stream (default 4 MiB); beyond
   * it the stream is ended (the page reconnects) rather than buffered without end.
   */
  maxStreamBufferBytes?: number
}

/** A running dashboard: an HTTP server on the bus's table of services. */
export interface Dashboard extends Closable {
  /** Where the page is, e.g. `http://127.0.0.1:7770/`. */
  readonly url: string
  readonly port: number
}

const publicDirectory = fileURLToPath(new URL('../public/', import.meta.url))
const require = createRequire(import.meta.url)

/** Files the page loads: the dashboard's own and the charting library's, as installed. */
const files: Record<string, { path: () => string; type: string }> = {
  '/': { path: () => `${publicDirectory}index.html`, type: 'text/html; charset=utf-8' },
  '/app.js': { path: () => `${publicDirectory}app.js`, type: 'text/javascript; charset=utf-8' },
  '/style.css': { path: () => `${publicDirectory}style.css`, type: 'text/css; charset=utf-8' },
  '/vendor/uplot.js': {
    path: () => require.resolve('uplot/dist/uPlot.iife.min.js'),
    type: 'text/javascript; charset=utf-8',
  },
  '/vendor/uplot.css': {
    path: () => require.resolve('uplot/dist/uPlot.min.css'),
    type: 'text/css; charset=utf-8',
  },
}

/** A discovered service as the page shows it. */
interface ServiceView {
  id: string
  host: string
  port: number
  info: Readonly<Record<string, unknown>>
  /** When this dashboard first heard of it (ms since the epoch). */
  since: number
  /** When it was last heard: an announcement or a probe it answered (ms since the epoch). */
  lastHeard: number | null
  /** True once a probe has reached it: its address really serves it. */
  verified: boolean
}

/** One bus's refusals, as the security panel shows them. */
interface BusSecurityView {
  bus: string
  keyed: boolean
  handshakesFailed: number
  requestsDenied: number
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

const errorJson = (error: unknown) =>
  error instanceof AutobusError
    ? {
        name: 'remoteName' in error ? String(error.remoteName) : error.name,
        code: error.code,
        message: error.message,
      }
    : {
        name: 'Error',
        code: 'error',
        message: error instanceof Error ? error.message : String(error),
      }

/**
 * Serves the dashboard for a bus: the page, `GET /api/services`,
 * `GET /metrics` (Prometheus text of every bus on the network) and live
 * updates over Server-Sent Events.
 *
 * @example
 * ```ts
 * const bus = await createBus()
 * await using dashboard = await createDashboard({ bus, port: 7770 })
 * console.log(`open ${dashboard.url}`)
 * ```
 */
export async function createDashboard(options: DashboardOptions): Promise<Dashboard> {
  const { bus } = options
  const statsInterval = options.statsInterval ?? 1_000
  const callTimeout = options.callTimeout ?? 10_000
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024
  const maxStreamBufferBytes = options.maxStreamBufferBytes ?? 4 * 1024 * 1024
  const since = new Map<string, number>()
  const streams = new Set<EventStream>()
  const heardInterval = options.heardInterval ?? 2_000
  const securityInterval = options.securityInterval ?? 5_000
  const view = (service: DiscoveredService): ServiceView => {
    const heard = bus.heard(service.service)
    return {
      id: service.service,
      host: service.host,
      port: service.port,
      info: service.info,
      since: since.get(service.service) ?? Date.now(),
      lastHeard: heard?.lastHeard ?? null,
      verified: heard?.verified ?? false,
    }
  }
  const shown = (service: DiscoveredService) => !bus.localServices.has(service.service)
  const list = () => bus.services().filter(shown).map(view)
  const find = (id: string) => {
    const service = bus.services().find((entry) => entry.service === id)
    if (!service) throw new HttpError(404, `no service "${id}" on the network`)
    return service
  }

  for (const service of bus.services()) since.set(service.service, Date.now())
  const appeared = (service: DiscoveredService) => {
    since.set(service.service, Date.now())
    if (!shown(service)) return
    for (const stream of streams)
      if (stream.topic === 'services') stream.send('appeared', view(service))
  }
  const disappeared = (service: DiscoveredService) => {
    since.delete(service.service)
    for (const stream of streams)
      if (stream.topic === 'services' || stream.topic === service.service)
        stream.send('disappeared', { id: service.service })
  }
  bus.on('appeared', appeared)
  bus.on('disappeared', disappeared)

  const busStats = async (host: string, port: number): Promise<BusMetrics> => {
    const meta = await bus.connect({ host, port, service: META_SERVICE_ID })
    try {
      return (await meta.call('stats', [], { timeout: callTimeout })) as BusMetrics
    } finally {
      void meta.close('stats read')
    }
  }

  const listening = () => [...streams].filter((stream) => stream.topic === 'services')
  // Only what changed goes out: a thousand services announcing every few
  // seconds are a few hundred small entries, not a thousand every time.
  const reported = new Map<string, string>()
  const heardTimer = setInterval(() => {
    const pages = listening()
    if (pages.length === 0) return
    const changed: Record<string, { lastHeard: number | null; verified: boolean }> = {}
    let any = false
    for (const service of bus.services()) {
      if (!shown(service)) continue
      const heard = bus.heard(service.service)
      const now = { lastHeard: heard?.lastHeard ?? null, verified: heard?.verified ?? false }
      const key = `${now.lastHeard}/${now.verified}`
      if (reported.get(service.service) === key) continue
      reported.set(service.service, key)
      changed[service.service] = now
      any = true
    }
    for (const id of reported.keys()) if (!since.has(id)) reported.delete(id)
    if (any) for (const stream of pages) stream.send('heard', changed)
  }, heardInterval)

  // What the keys and access rules kept out: this bus's view of the
  // discovery traffic, and every bus's failed handshakes and denied requests.
  const security = async () => {
    const own = bus.metrics()
    const buses = new Map<string, { host: string; port: number }>()
    for (const service of bus.services())
      if (!bus.localServices.has(service.service))
        buses.set(`${service.host}:${service.port}`, { host: service.host, port: service.port })
    const views = await Promise.all(
      [...buses].map(async ([key, { host, port }]): Promise<BusSecurityView | undefined> => {
        try {
          const metrics = await busStats(host, port)
          if (!metrics.security) return undefined
          return { bus: key, ...metrics.security }
        } catch {
          return undefined
        }
      }),
    )
    return {
      at: own.at,
      dropped: own.discovery?.dropped ?? null,
      keyed: own.security.keyed,
      buses: views.filter((entry) => entry !== undefined),
    }
  }
  let securityRunning = false
  const sendSecurity = async () => {
    if (securityRunning || listening().length === 0) return
    securityRunning = true
    try {
      const figures = await security()
      for (const stream of listening()) stream.send('security', figures)
    } finally {
      securityRunning = false
    }
  }
  const securityTimer = setInterval(() => void sendSecurity(), securityInterval)

  const prometheus = async () => {
    const buses = new Map<string, { host: string; port: number }>()
    for (const service of bus.services()) {
      buses.set(`${service.host}:${service.port}`, { host: service.host, port: service.port })
    }
    const sources = await Promise.all(
      [...buses].map(async ([key, { host, port }]): Promise<LabelledMetrics | undefined> => {
        try {
          return { metrics: await busStats(host, port), labels: { bus: key } }
        } catch {
          // A bus that cannot be read (gone, too old, denied) is left out of this scrape.
          return undefined
        }
      }),
    )
    return renderPrometheus(sources.filter((source) => source !== undefined))
  }

  const readBody = async (request: IncomingMessage): Promise<unknown> => {
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of request as AsyncIterable<Buffer>) {
      size += chunk.byteLength
      if (size > maxBodyBytes) throw new HttpError(413, `body over ${maxBodyBytes} bytes`)
      chunks.push(chunk)
    }
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      throw new HttpError(400, 'body is not JSON')
    }
  }

  /** Streams one service's description, events, object values and figures. */
  const follow = async (stream: EventStream, service: DiscoveredService) => {
    const target = { host: service.host, port: service.port, service: service.service }
    const connection = await bus.connect(target)
    stream.closed.then(() => connection.close('dashboard page closed'))
    connection.closed.then(({ reason }) => stream.send('lost', { reason }))
    const description = await connection.describe({ timeout: callTimeout })
    stream.send('description', description)
    for (const name of Object.keys(description.events)) {
      await connection.listen(name, (...args: unknown[]) =>
        stream.send('fired', { name, args, at: Date.now() }),
      )
    }
    for (const name of Object.keys(description.objects)) {
      await connection.watch(name, (value: unknown) =>
        stream.send('changed', { name, value, at: Date.now() }),
      )
    }
    const readStats = async () => {
      try {
        const metrics = await busStats(service.host, service.port)
        const own = metrics.services.find((entry) => entry.service === service.service)
        if (own)
          stream.send('stats', {
            at: metrics.at,
            stats: own,
            server: metrics.server,
            bounds: LATENCY_BUCKETS_MS,
          })
      } catch {
        // A bus without a readable `stats` shows no charts; everything else still works.
      }
    }
    await readStats()
    if (stream.ended) return
    const timer = setInterval(readStats, statsInterval)
    stream.closed.then(() => clearInterval(timer))
  }

  const loopbackOnly = ['127.0.0.1', '::1', 'localhost'].includes(options.host ?? '127.0.0.1')
  const route = async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', 'http://dashboard')
    const path = url.pathname
    // A page from another site must not reach the services through a
    // browser on this machine: on loopback only loopback names are answered
    // (no DNS rebinding), and a call must come from the dashboard's own page.
    const hostHeader = request.headers.host ?? ''
    if (loopbackOnly && !/^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/.test(hostHeader))
      throw new HttpError(403, 'the dashboard answers only loopback names')
    if (request.method === 'POST') {
      const origin = request.headers.origin
      if (origin !== undefined && origin !== `http://${hostHeader}`)
        throw new HttpError(403, 'calls are taken from the dashboard page only')
      if (!request.headers['content-type']?.startsWith('application/json'))
        throw new HttpError(415, 'a call is a JSON body (content-type: application/json)')
    }
    if (request.method === 'GET' && files[path]) {
      const file = files[path]
      const body = await readFile(file.path())
      response.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' })
      response.end(body)
      return
    }
    if (request.method === 'GET' && path === '/api/services') {
      json(response, 200, list())
      return
    }
    if (request.method === 'GET' && path === '/metrics') {
      response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
      response.end(await prometheus())
      return
    }
    if (request.method === 'GET' && path === '/api/stream') {
      const stream = new EventStream(request, response, 'services', streams, maxStreamBufferBytes)
      stream.send('services', list())
      void sendSecurity()
      return
    }
    const match = /^\/api\/services\/([^/]+)\/(live|call)$/.exec(path)
    if (match) {
      const id = decodeURIComponent(match[1]!)
      const service = find(id)
      if (request.method === 'GET' && match[2] === 'live') {
        const stream = new EventStream(request, response, id, streams, maxStreamBufferBytes)
        follow(stream, service).catch((error: unknown) => {
          stream.send('lost', { reason: errorJson(error).message })
        })
        return
      }
      if (request.method === 'POST' && match[2] === 'call') {
        const body = (await readBody(request)) as { name?: unknown; args?: unknown }
        if (typeof body?.name !== 'string' || !Array.isArray(body.args))
          throw new HttpError(400, 'body must be {"name": string, "args": array}')
        const connection = await bus.connect({
          host: service.host,
          port: service.port,
          service: service.service,
        })
        try {
          const result = await connection.call(body.name, body.args, { timeout: callTimeout })
          json(response, 200, { result })
        } catch (error) {
          json(response, 200, { error: errorJson(error) })
        } finally {
          void connection.close('call done')
        }
        return
      }
    }
    throw new HttpError(404, `nothing at ${request.method} ${path}`)
  }

  const server = createServer((request, response) => {
    route(request, response).catch((error: unknown) => {
      if (response.headersSent) {
        response.destroy()
        return
      }
      const status = error instanceof HttpError ? error.status : 502
      json(response, status, { error: errorJson(error) })
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 7770, options.host ?? '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  let resolveClosed!: (info: CloseInfo) => void
  const closed = new Promise<CloseInfo>((resolve) => {
    resolveClosed = resolve
  })
  let closing: Promise<CloseInfo> | undefined
  const close = (reason = 'dashboard closed') => {
    closing ??= (async () => {
      bus.off('appeared', appeared)
      bus.off('disappeared', disappeared)
      clearInterval(heardTimer)
      clearInterval(securityTimer)
      for (const stream of streams) stream.end()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      const info: CloseInfo = { reason }
      resolveClosed(info)
      return info
    })()
    return closing
  }
  return {
    url: `http://${host}:${address.port}/`,
    port: address.port,
    closed,
    close,
    [Symbol.asyncDispose]: async () => {
      await close()
    },
  }
}

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
  response.end(JSON.stringify(body))
}
