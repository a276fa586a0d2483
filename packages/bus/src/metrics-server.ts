import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Closable, CloseInfo } from '@autobus/protocol'
import type { Bus } from './bus.js'
import { renderPrometheus } from './metrics.js'

/** Options for {@link serveMetrics}. */
export interface MetricsServerOptions {
  /** TCP port (default 9464, the usual one for a Prometheus exporter; 0 picks a free one). */
  port?: number
  /** Address to listen on (default 127.0.0.1). */
  host?: string
  /** Labels added to every sample, e.g. `{ instance: 'hall' }`. */
  labels?: Readonly<Record<string, string>>
}

/** An HTTP server that answers `GET /metrics` with a bus's figures as Prometheus text. */
export interface MetricsServer extends Closable {
  /** Where Prometheus scrapes, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string
  readonly port: number
}

/**
 * Serves a bus's figures ({@link Bus.metrics}) as Prometheus text at
 * `/metrics`, for a program that has no HTTP server of its own. The bus
 * stays open when the server closes.
 *
 * @example
 * ```ts
 * await using exporter = await serveMetrics(bus, { port: 9464 })
 * console.log(`scrape ${exporter.url}`)
 * ```
 */
export async function serveMetrics(
  bus: Bus,
  options: MetricsServerOptions = {},
): Promise<MetricsServer> {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://metrics').pathname
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' })
      response.end('only GET /metrics\n')
      return
    }
    response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
    response.end(
      renderPrometheus([
        { metrics: bus.metrics(), ...(options.labels ? { labels: options.labels } : {}) },
      ]),
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 9464, options.host ?? '127.0.0.1', () => {
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
  const close = (reason = 'metrics server closed') => {
    closing ??= new Promise<CloseInfo>((resolve) => {
      server.closeAllConnections()
      server.close(() => {
        const info = { reason }
        resolveClosed(info)
        resolve(info)
      })
    })
    return closing
  }
  return {
    url: `http://${host}:${address.port}/metrics`,
    port: address.port,
    closed,
    close,
    [Symbol.asyncDispose]: async () => {
      await close()
    },
  }
}
