import { spawn } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { connect } from '../src/index.js'

const fixture = fileURLToPath(new URL('./fixtures/echo-server.mjs', import.meta.url))

describe('running out of file descriptors', () => {
  it('keeps the server alive and accepting once descriptors are free again', async () => {
    // A server process with all but five descriptors in use (ulimit keeps that quick).
    const child = spawn(
      'bash',
      ['-c', `ulimit -n 1024 && exec "${process.execPath}" "${fixture}"`],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    )
    try {
      const lines = createInterface({ input: child.stdout! })
      const [line] = await once(lines, 'line')
      const port = Number(line)
      const sockets: net.Socket[] = []
      // Connections that could not be accepted are closed, not left hanging.
      const dropped = new Promise<void>((resolve) => {
        for (let i = 0; i < 50; i++) {
          const socket = net.connect({ host: '127.0.0.1', port })
          socket.on('error', () => {})
          socket.on('close', () => resolve())
          sockets.push(socket)
        }
      })
      await dropped
      expect(child.exitCode).toBeNull()
      for (const socket of sockets) socket.destroy()
      child.stdin!.write('release\n')
      await once(lines, 'line')
      const client = await connect({ host: '127.0.0.1', port })
      client.send({ _type: 1, _id: 1, _command: 'ping' })
      const [reply] = await once(client, 'message')
      expect(reply).toMatchObject({ _type: 2, _id: 1 })
      client.close()
    } finally {
      child.kill('SIGKILL')
    }
  })
})
