import net from 'node:net'
import tls from 'node:tls'
import {
  type Clock,
  decodeFrame,
  encodeFrame,
  type KeyRing,
  MessageType,
  ProtocolError,
  type SessionCertificate,
  systemClock,
  tlsCertificateClientOptions,
  tlsClientOptions,
} from '@autobus/protocol'

/** Options of a {@link Probe}. */
export interface ProbeOptions {
  /** Time for the timeout (default the system clock). */
  clock?: Clock
  /** Gives up: the probe rejects with the signal's reason (it proves nothing either way). */
  signal?: AbortSignal
}

/**
 * Checks that a service is still there: a TCP connect and a `bind` to its id
 * (an open port alone proves nothing — it may have been reused).
 */
export type Probe = (
  target: { host: string; port: number; service: string },
  timeout: number,
  options?: ProbeOptions,
) => Promise<boolean>

// Failures of this host, not of the target: they prove nothing about it.
const LOCAL_FAILURES = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM', 'EADDRNOTAVAIL'])

/**
 * The liveness probe of docs/protocol.md §2.5.3. Resolves `true` (alive) or
 * `false` (gone); rejects when this host could not make the check (out of
 * descriptors or buffers), which says nothing about the target.
 */
export const probeService: Probe = (target, timeout, options) => probe(target, timeout, options)

/**
 * The same probe over a keyed session (TLS 1.3 with the current key, or
 * with a certificate when one is given), for buses with a key: their
 * services refuse plaintext.
 */
export function keyedProbe(keys: KeyRing | undefined, certificate?: SessionCertificate): Probe {
  return (target, timeout, options) => probe(target, timeout, options, keys, certificate)
}

function probe(
  target: { host: string; port: number; service: string },
  timeout: number,
  options: ProbeOptions = {},
  keys?: KeyRing,
  certificate?: SessionCertificate,
): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    const { clock = systemClock, signal } = options
    if (signal?.aborted) return reject(signal.reason)
    const address = { host: target.host, port: target.port }
    const socket = certificate
      ? tls.connect({ ...address, ...tlsCertificateClientOptions(certificate) })
      : keys
        ? tls.connect({ ...address, ...tlsClientOptions(keys) })
        : net.connect(address)
    let buffer = ''
    let done = false
    const abort = () => finish(signal!.reason as Error)
    const finish = (alive: boolean | Error) => {
      if (done) return
      done = true
      clock.clearTimeout(timer)
      signal?.removeEventListener('abort', abort)
      socket.destroy()
      if (alive instanceof Error) reject(alive)
      else resolve(alive)
    }
    const timer = clock.setTimeout(() => finish(false), timeout)
    signal?.addEventListener('abort', abort, { once: true })
    socket.setEncoding('utf8')
    socket.on('error', (error: NodeJS.ErrnoException) =>
      finish(LOCAL_FAILURES.has(error.code ?? '') ? error : false),
    )
    socket.on('close', () => finish(false))
    socket.on(keys || certificate ? 'secureConnect' : 'connect', () => {
      socket.write(
        encodeFrame({
          _type: MessageType.Command,
          _id: 1,
          _command: 'bind',
          service: target.service,
        }),
      )
    })
    socket.on('data', (text: string) => {
      buffer += text
      const end = buffer.indexOf('\n')
      if (end < 0) return
      const message = decodeFrame(buffer.slice(0, end))
      finish(
        !(message instanceof ProtocolError) &&
          message._type === MessageType.Response &&
          message._error === undefined,
      )
    })
  })
}
