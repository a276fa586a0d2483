import type { Endpoint } from '@autobus/transport'

/** Where a bridge listens or connects: a TCP host and port, or a Unix socket path. */
export type LinkAddress = Endpoint

/**
 * Reads `tcp://HOST:PORT` or `unix:PATH` (also `unix://PATH`). Throws
 * `TypeError` with the reason for anything else.
 *
 * @example
 * ```ts
 * parseLinkAddress('tcp://10.0.0.2:7000') // { host: '10.0.0.2', port: 7000 }
 * parseLinkAddress('unix:/run/autobus.sock') // { path: '/run/autobus.sock' }
 * ```
 */
export function parseLinkAddress(text: string): LinkAddress {
  if (text.startsWith('unix:')) {
    const path = text.slice(text.startsWith('unix://') ? 7 : 5)
    if (path.length === 0) throw new TypeError(`"${text}": a Unix socket path is needed`)
    return { path }
  }
  const match = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d{1,5})$/.exec(text)
  if (!match) throw new TypeError(`"${text}": expected tcp://HOST:PORT or unix:PATH`)
  const port = Number(match[2])
  if (port > 65_535) throw new TypeError(`"${text}": port out of range`)
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port }
}

/** The address as text, the way {@link parseLinkAddress} reads it. */
export function formatLinkAddress(address: LinkAddress): string {
  return 'path' in address ? `unix:${address.path}` : `tcp://${address.host}:${address.port}`
}
