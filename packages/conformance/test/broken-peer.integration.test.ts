import net from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type CheckResult, checkService, formatSummary } from '../src/index.js'

// A stand-in peer written from the spec with three deliberate faults: an
// unknown function is answered with the wrong code, nesting is never
// checked, and `ping` is never answered.
function brokenPeer(id: string): net.Server {
  return net.createServer((socket) => {
    let buffer = ''
    let bound = false
    const answer = (message: any, body: object) =>
      socket.write(`${JSON.stringify({ _type: 2, _id: message._id, ...body })}\n`)
    const error = (message: any, code: string) =>
      answer(message, { _error: { text: code, code, name: 'Error' } })
    socket.on('error', () => {})
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8')
      for (let end = buffer.indexOf('\n'); end !== -1; end = buffer.indexOf('\n')) {
        const line = buffer.slice(0, end)
        buffer = buffer.slice(end + 1)
        let message: any
        try {
          message = JSON.parse(line)
        } catch {
          socket.write(
            '{"_type":2,"_id":null,"_error":{"text":"bad json","code":"malformed_json"}}\n',
          )
          continue
        }
        if (message._type !== 1) continue
        if (message._command === 'ping') continue
        if (message._command === 'bind') {
          if (message.service !== id) {
            error(message, 'unknown_service')
            socket.end()
          } else if (bound) error(message, 'not_bound')
          else {
            bound = true
            answer(message, {})
          }
        } else if (!bound) error(message, 'not_bound')
        else if (message._command === 'call' && message.name === 'echo')
          answer(message, { result: message.args?.[0] ?? null })
        else if (message._command === 'call' && message.name === 'add')
          answer(message, { result: message.args?.[0] + message.args?.[1] })
        else if (message._command === 'call') error(message, 'remote_error')
        else error(message, 'unknown_command')
      }
    })
  })
}

describe('the conformance kit against a broken peer', () => {
  const id = 'broken-peer'
  const server = brokenPeer(id)
  let results: CheckResult[] = []
  let summary = ''
  let failed = 0

  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as net.AddressInfo).port
    // Every wait on the `ping` the peer never answers lasts the whole
    // timeout, so it is short; still long enough for the answers that do
    // come on a loaded machine, as is the time the run is given.
    const report = await checkService(
      { host: '127.0.0.1', port, service: id },
      { discoveryPort: false, timeout: 1_000 },
    )
    results = report.results
    summary = formatSummary(report)
    failed = report.failed
  }, 120_000)
  afterAll(() => {
    server.close()
  })

  const outcome = (name: string) => results.find((result) => result.name === name)?.outcome

  it('fails the checks of the faults', () => {
    expect(outcome('an unknown function: unknown_name')).toBe('fail')
    expect(outcome('nesting one over the limit (65): too_deep with the _id')).toBe('fail')
    expect(outcome('ping before bind: {}')).toBe('fail')
    expect(outcome('ping without the heartbeat feature: {}')).toBe('fail')
  })

  it('passes what the peer does right, and skips features it does not offer', () => {
    expect(outcome('call add(1, 2): 3')).toBe('pass')
    expect(outcome('a second bind: not_bound')).toBe('pass')
    expect(outcome('bind to an unknown id: unknown_service, then the connection closes')).toBe(
      'pass',
    )
    expect(outcome('channel echo: messages come back in order')).toBe('skip')
    expect(outcome('a marked query is answered by unicast to its source port')).toBe('skip')
  })

  it('names a section for every check and closes with the summary line', () => {
    for (const result of results) expect(result.section).toMatch(/^\d+(\.\d+)?$/)
    expect(failed).toBeGreaterThan(0)
    expect(summary).toMatch(/^\d+ passed, [1-9]\d* failed, \d+ skipped$/)
  })
})
