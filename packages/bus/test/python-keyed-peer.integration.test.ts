import { execFile, execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { type Bus, createBus, generateKey, Type } from '../src/index.js'

// A peer written in Python from docs/protocol.md §6 alone: it checks the
// spec's vector, then opens a TLS 1.3 PSK session to a keyed bus and calls.
const peer = fileURLToPath(new URL('./fixtures/keyed_peer.py', import.meta.url))
const vectors = fileURLToPath(
  new URL('../../protocol/vectors/security/sealed.json', import.meta.url),
)

function findPython(): string | undefined {
  const home = process.env.HOME
  const pyenv = home ? join(home, '.pyenv/versions/3.13.0/bin/python3.13') : undefined
  if (pyenv && existsSync(pyenv)) return pyenv
  try {
    const found = execFileSync('which', ['python3.13'], { encoding: 'utf8' }).trim()
    return found || undefined
  } catch {
    return undefined
  }
}

const python = findPython()
if (!python) {
  console.warn('python-keyed-peer: skipped, no python3.13 (its ssl module has TLS-PSK)')
}

interface PeerRun {
  code: number
  output: Record<string, any>
  stderr: string
}

function runPeer(args: string[]): Promise<PeerRun> {
  return new Promise((resolve) => {
    execFile(python!, [peer, ...args], { timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0
      const line = stdout.trim().split('\n').at(-1) ?? ''
      let output: Record<string, any> = {}
      try {
        output = JSON.parse(line)
      } catch {}
      resolve({ code, output, stderr })
    })
  })
}

describe.runIf(python)('a Python peer written from the spec', () => {
  const key = generateKey('py1')
  const buses: Bus[] = []
  afterEach(async () => {
    await Promise.all(buses.splice(0).map((bus) => bus.close()))
  })

  async function keyedAdder() {
    const bus = await createBus({ key: key.text, discovery: false, host: '127.0.0.1' })
    buses.push(bus)
    const service = bus.createService({ info: { type: 'test.python' } })
    service.addFunction('add', { args: [Type.Number(), Type.Number()] }, (a, b) => a + b)
    bus.publish(service)
    return { bus, target: `127.0.0.1:${bus.port}`, service: service.id }
  }

  it('derives the keys, seals the vector byte for byte and calls over TLS-PSK', async () => {
    const { bus, target, service } = await keyedAdder()
    const run = await runPeer([key.text, target, service, vectors])
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.output.vectors).toEqual({
      secret: true,
      discoveryKey: true,
      sessionKey: true,
      tag: true,
      sealed: true,
      ok: true,
    })
    expect(run.output.sealedQueryBytes).toBe(52 + 'py1'.length + '{"command":"query"}'.length)
    const session = run.output.session
    expect(session.tlsVersion).toBe('TLSv1.3')
    expect(session.cipher).toBe('TLS_AES_128_GCM_SHA256')
    expect(session.bind._error).toBeUndefined()
    expect(session.bind.features).toEqual(['errors'])
    expect(session.call).toMatchObject({ _type: 2, result: 5 })
    expect(session.ping).toMatchObject({ _type: 2 })
    expect(session.ping._error).toBeUndefined()
    expect(bus.securityStats?.handshakeFailures).toBe(0)
  })

  it('fails in the handshake with a wrong secret under the same id, or an unknown id', async () => {
    const { bus, target, service } = await keyedAdder()
    for (const wrong of [generateKey('py1'), generateKey('other')]) {
      const run = await runPeer([wrong.text, target, service])
      expect(run.code).toBe(1)
      expect(run.output.session).toBeUndefined()
      expect(run.output.error?.type).toBe('SSLError')
    }
    expect(bus.securityStats?.handshakeFailures).toBe(2)
  })
})
