import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { hasNatsServer, type LineProcess, makeCertificates, spawnLines } from '@autobus/testkit'
import { nkeys } from 'nats'
import { afterEach, describe, expect, it } from 'vitest'

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const env = { ...process.env, NO_COLOR: '1', AUTOBUS_DISCOVERY_PORT: '', AUTOBUS_INTERFACES: '' }
const base = 20_000 + ((process.pid + 71) % 20_000)
const running: LineProcess[] = []
afterEach(() => {
  for (const child of running.splice(0)) child.kill()
})

function bridge(port: number, args: string[], extra: NodeJS.ProcessEnv = {}): LineProcess {
  const child = spawnLines(
    process.execPath,
    [main, '--discovery-port', String(port), '--interface', 'lo', 'bridge', '--json', ...args],
    { env: { ...env, ...extra } },
  )
  running.push(child)
  return child
}

/** Starts one nats-server with `config` (its `listen` added) and resolves once it is ready. */
async function natsServer(port: number, config: string): Promise<void> {
  const file = join(mkdtempSync(join(tmpdir(), 'autobus-cli-nats-')), 'server.conf')
  writeFileSync(file, `listen: 127.0.0.1:${port}\n${config}\n`)
  const server = spawnLines('sh', ['-c', 'exec nats-server -c "$0" 2>&1', file])
  running.push(server)
  const seen: string[] = []
  for (;;) {
    const line = await server.next().catch((error: Error) => {
      throw new Error(`${error.message}\n${seen.join('\n')}`)
    })
    seen.push(line)
    if (line.includes('Server is ready')) return
  }
}

/** Two bridges given the same NATS arguments link to each other. */
async function expectLinked(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<void> {
  const left = bridge(base, args, extra)
  const right = bridge(base + 1, args, extra)
  const [a, b] = [await left.json(), await right.json()]
  expect(a).toMatchObject({ ready: true })
  expect(await right.json()).toMatchObject({ link: 'up', peer: a.id })
  expect(await left.json()).toMatchObject({ link: 'up', peer: b.id })
}

function secretFile(name: string, text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'autobus-cli-nats-')), name)
  writeFileSync(file, text, { mode: 0o600 })
  return file
}

const base64url = (value: string | Uint8Array) => Buffer.from(value).toString('base64url')

/** A JWT as NATS reads them: claims signed with the issuer's NKey. */
function natsJwt(
  issuer: ReturnType<typeof nkeys.createOperator>,
  subject: string,
  name: string,
  nats: Record<string, unknown>,
): string {
  const claims = {
    jti: createHash('sha256').update(`${subject}${Math.random()}`).digest('hex').slice(0, 52),
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name,
    sub: subject,
    nats: { ...nats, version: 2 },
  }
  const signed = `${base64url(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }))}.${base64url(JSON.stringify(claims))}`
  return `${signed}.${base64url(issuer.sign(new TextEncoder().encode(signed)))}`
}

const NATS_PORT = 24_000 + (process.pid % 4_000)

describe('autobus bridge --nats', () => {
  it('refuses an address that is not nats:// or tls://, and a prefix with wildcards', async () => {
    for (const args of [
      ['--nats', 'http://a:4222'],
      ['--nats', 'nats://a:4222', '--subject-prefix', 'a.*'],
    ]) {
      const run = promisify(execFile)(process.execPath, [main, 'bridge', ...args], { env })
      await expect(run).rejects.toMatchObject({ code: expect.any(Number) })
    }
  })

  it.runIf(hasNatsServer)(
    'links two bridges through a NATS server with user and password',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'autobus-cli-nats-'))
      const port = 24_000 + (process.pid % 4_000)
      const config = join(dir, 'auth.conf')
      writeFileSync(
        config,
        `listen: 127.0.0.1:${port}\nauthorization { users [ { user: bridge, password: s3cret } ] }\n`,
      )
      const server = spawnLines('sh', ['-c', 'exec nats-server -c "$0" 2>&1', config])
      running.push(server)
      while (!(await server.next()).includes('Server is ready'));
      const url = `nats://127.0.0.1:${port}`
      const auth = ['--nats-user', 'bridge']
      const left = bridge(base, ['--nats', url, ...auth], { AUTOBUS_NATS_PASSWORD: 's3cret' })
      const right = bridge(base + 1, ['--nats', url, ...auth], { AUTOBUS_NATS_PASSWORD: 's3cret' })
      const [a, b] = [await left.json(), await right.json()]
      expect(a).toMatchObject({ ready: true })
      expect(await right.json()).toMatchObject({ link: 'up', peer: a.id })
      expect(await left.json()).toMatchObject({ link: 'up', peer: b.id })
    },
  )

  it.runIf(hasNatsServer)('links two bridges through a NATS server with a token', async () => {
    const port = NATS_PORT + 1
    await natsServer(port, 'authorization { token: t0ken }')
    await expectLinked(['--nats', `nats://127.0.0.1:${port}`], { AUTOBUS_NATS_TOKEN: 't0ken' })
  })

  it.runIf(hasNatsServer)('links two bridges through a NATS server with an NKey', async () => {
    const port = NATS_PORT + 2
    const user = nkeys.createUser()
    await natsServer(port, `authorization { users [ { nkey: ${user.getPublicKey()} } ] }`)
    const seed = secretFile('bridge.nk', `${new TextDecoder().decode(user.getSeed())}\n`)
    await expectLinked(['--nats', `nats://127.0.0.1:${port}`, '--nats-nkey', seed])
  })

  it.runIf(hasNatsServer)('links two bridges through a NATS server with a creds file', async () => {
    const port = NATS_PORT + 3
    const operator = nkeys.createOperator()
    const account = nkeys.createAccount()
    const user = nkeys.createUser()
    const unlimited = { subs: -1, data: -1, payload: -1 }
    const operatorJwt = natsJwt(operator, operator.getPublicKey(), 'site', { type: 'operator' })
    const accountJwt = natsJwt(operator, account.getPublicKey(), 'autobus', {
      type: 'account',
      limits: { ...unlimited, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 },
      default_permissions: { pub: {}, sub: {} },
    })
    const userJwt = natsJwt(account, user.getPublicKey(), 'bridge', {
      type: 'user',
      pub: {},
      sub: {},
      ...unlimited,
    })
    await natsServer(
      port,
      [
        `operator: ${operatorJwt}`,
        'resolver: MEMORY',
        `resolver_preload: { ${account.getPublicKey()}: ${accountJwt} }`,
      ].join('\n'),
    )
    const creds = secretFile(
      'bridge.creds',
      [
        '-----BEGIN NATS USER JWT-----',
        userJwt,
        '------END NATS USER JWT------',
        '',
        '-----BEGIN USER NKEY SEED-----',
        new TextDecoder().decode(user.getSeed()),
        '------END USER NKEY SEED------',
        '',
      ].join('\n'),
    )
    await expectLinked(['--nats', `nats://127.0.0.1:${port}`, '--nats-creds', creds])
  })

  it.runIf(hasNatsServer)(
    'links two bridges through a NATS server over TLS with client certificates',
    async () => {
      const port = NATS_PORT + 4
      const certificates = makeCertificates(['localhost', 'bridge'])
      const file = (name: string, text: string) => secretFile(name, text)
      const server = certificates.byName.localhost!
      const client = certificates.byName.bridge!
      const ca = file('ca.pem', certificates.ca)
      await natsServer(
        port,
        [
          'tls {',
          `  cert_file: "${file('server.pem', server.cert)}"`,
          `  key_file: "${file('server.key', server.key)}"`,
          `  ca_file: "${ca}"`,
          '  verify: true',
          '}',
        ].join('\n'),
      )
      const cert = file('bridge.pem', client.cert)
      const key = file('bridge.key', client.key)
      await expectLinked([
        '--nats',
        `tls://localhost:${port}`,
        '--nats-ca',
        ca,
        '--nats-cert',
        cert,
        '--nats-key',
        key,
      ])
    },
  )
})
