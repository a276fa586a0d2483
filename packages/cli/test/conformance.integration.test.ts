import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { createBus } from '@autobus/bus'
import { checkService, formatResult, startReferenceService } from '@autobus/conformance'
import { describe, expect, it } from 'vitest'
import { createConformanceService } from '../src/commands/conformance.js'
import { createExampleService } from '../src/example.js'

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))

// Outcomes that docs/protocol.md requires and that land with the hardening
// and original-peer work (issues 9 and 10); until then they may fail here.

const discoveryPort = 20_000 + ((process.pid + 29) % 20_000)

describe('the conformance kit against this implementation', () => {
  it('its service passes every check', async () => {
    await using bus = await createBus({ discoveryPort, interfaces: ['lo'], holdOff: 0 })
    const publication = bus.publish(createConformanceService(bus))
    await publication.announced
    const report = await checkService(
      { host: '127.0.0.1', port: bus.port, service: publication.service.id },
      // Each wait ends with the answer it waits for; the timeout only bounds
      // how late one may be on a loaded machine, as the test's own does for
      // the whole run (about a hundred checks, thousands of calls).
      { discoveryPort, timeout: 5_000 },
    )
    const failures = report.results.filter((result) => result.outcome !== 'pass')
    expect(failures.map(formatResult)).toEqual([])
    expect(report.passed).toBeGreaterThan(50)
  }, 120_000)

  it('its client passes the expected sequence against the reference service', async () => {
    const reference = await startReferenceService({ discoveryPort: false })
    await using bus = await createBus({ discovery: false })
    try {
      const connection = await bus.connect({
        host: '127.0.0.1',
        port: reference.port,
        service: reference.service,
      })
      expect(await connection.call('echo', ['x'])).toBe('x')
      expect(await connection.call('add', [1, 2])).toBe(3)
      await expect(connection.call('fail', ['boom'])).rejects.toMatchObject({
        code: 'remote_error',
      })
      await expect(connection.call('nope', [])).rejects.toMatchObject({ code: 'unknown_name' })
      const values: unknown[] = []
      const watch = await connection.watch('value', (value) => values.push(value))
      const events: unknown[] = []
      const listen = await connection.listen('signal', (...args) => events.push(args))
      await connection.call('set', [5])
      await connection.call('emit', ['e'])
      await watch.close()
      await listen.close()
      expect(values).toContain(5)
      expect(events).toContainEqual(['e'])
      const channel = await connection.openChannel('echo')
      channel.send({ hello: 1 })
      const [echoed] = await once(channel, 'message')
      expect(echoed).toEqual({ hello: 1 })
      channel.close('done')
      const stream = await connection.openStream('echo')
      const sent = Buffer.alloc(20_000, 7)
      const chunks: Buffer[] = []
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      stream.end(sent)
      await once(stream, 'end')
      expect(Buffer.concat(chunks).equals(sent)).toBe(true)
      await connection.close()
      await reference.finished
      const report = reference.report()
      expect(report.results.filter((r) => r.outcome !== 'pass').map(formatResult)).toEqual([])
      expect(report.passed).toBeGreaterThan(15)
    } finally {
      await reference.close()
    }
  })
})

describe('autobus conformance', () => {
  it('prints a line per check, the summary line last, and exits non-zero on failure', async () => {
    // The example service is not a conformance service: most checks fail.
    await using bus = await createBus({ discovery: false })
    const service = bus.publish(createExampleService(bus)).service
    const target = `127.0.0.1:${bus.port}/${service.id}`
    const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile(
        process.execPath,
        [main, 'conformance', target, '--no-discovery-checks', '--timeout', '2'],
        { env: { ...process.env, NO_COLOR: '1' } },
        (error, stdout) => resolve({ code: error ? Number(error.code) : 0, stdout }),
      )
    })
    const lines = stdout.trim().split('\n')
    expect(code).toBe(1)
    expect(lines.at(-1)).toMatch(/^\d+ passed, [1-9]\d* failed(, \d+ skipped)?$/)
    expect(lines).toContainEqual(expect.stringMatching(/^PASS {2}§3\.5 +call add\(1, 2\): 3$/))
    expect(lines).toContainEqual(expect.stringMatching(/^FAIL {2}§3\.6 /))
  }, 120_000)
})
