import { once } from 'node:events'
import net from 'node:net'
import { collectingLogger } from '@autobus/testkit'
import { describe, expect, it } from 'vitest'
import { listen, type MessageConnection } from '../src/index.js'

describe('the transport log', () => {
  it('has connections accepted, refused over a cap and closed, and invalid frames', async () => {
    const { logger, lines } = collectingLogger()
    await using server = await listen({ host: '127.0.0.1', maxConnectionsPerAddress: 1, logger })
    const first = net.connect({ host: '127.0.0.1', port: server.port })
    const [connection] = (await once(server, 'connection')) as [MessageConnection]
    const second = net.connect({ host: '127.0.0.1', port: server.port })
    second.on('error', () => {})
    // events.once would reject on the reset's 'error'.
    await new Promise((resolve) => second.once('close', resolve))
    first.write('not json\n')
    await once(connection, 'invalid')
    first.end()
    await connection.closed
    expect(lines).toEqual([
      expect.stringMatching(
        /^debug autobus:transport connection accepted from 127\.0\.0\.1:\d+ \(1 open\)$/,
      ),
      expect.stringMatching(
        /^warn autobus:transport connection from 127\.0\.0\.1 refused: 1 connections open from that address \(maxConnectionsPerAddress\)$/,
      ),
      expect.stringMatching(/^warn autobus:transport invalid frame from 127\.0\.0\.1:\d+: /),
      expect.stringMatching(
        /^debug autobus:transport connection with 127\.0\.0\.1:\d+ closed: closed by peer$/,
      ),
    ])
  })
})
