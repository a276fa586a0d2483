import net from 'node:net'
import { decodeFrame, encodeFrame, MessageType, ProtocolError } from '@autobus/protocol'

/**
 * Checks that a service is still there: a TCP connect and a `bind` to its id
 * (an open port alone proves nothing — it may have been reused).
 */
export type Probe = (
  target: { host: string; port: number; service: string },
  timeout: number,
) => Promise<boolean>

/** The liveness probe of docs/protocol.md §2.6. */
export const probeService: Probe = (target, timeout) =>
  new Promise((resolve) => {
    const socket = net.connect({ host: target.host, port: target.port })
    let buffer = ''
    const finish = (alive: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resolve(alive)
    }
    const timer = setTimeout(() => finish(false), timeout)
    socket.setEncoding('utf8')
    socket.on('error', () => finish(false))
    socket.on('close', () => finish(false))
    socket.on('connect', () => {
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
