import dgram from 'node:dgram'
import { isMessageId, Limits, ServiceDescription } from '@autobus/protocol'
import { Compile } from 'typebox/compile'
import { ALL_FEATURES, ConformanceService as C, QUERY_MARKER } from './contract.js'
import {
  CheckFailure,
  type CheckResult,
  CheckSkip,
  type ConformanceReport,
  summarize,
} from './report.js'
import { loadVectors, type Vector, type VectorFile, vectorText } from './vectors.js'
import { type Frame, RawSession } from './wire.js'

/** The service a run checks: a conformance service (docs/conformance.md). */
export interface ServiceAddress {
  host: string
  port: number
  service: string
}

/** Options of {@link checkService}. */
export interface CheckOptions {
  /** UDP port of the peer's discovery (default 52722); `false` skips the discovery checks. */
  discoveryPort?: number | false
  /** How long to wait for each expected answer, in ms (default 2,000). */
  timeout?: number
  /** The peer's frame limit, in bytes (default 4 MiB). */
  maxFrame?: number
  /** The peer's limit of commands in flight per session (default 10,000). */
  maxPendingCalls?: number
  /** Vector files to run (default: those shipped with `@autobus/protocol`). */
  vectors?: VectorFile[]
  /** Called with each result as soon as it is known. */
  onResult?: (result: CheckResult) => void
  /** Stops the run between checks. */
  signal?: AbortSignal
}

const DECODE_ERRORS = new Set(['malformed_json', 'too_deep', 'invalid_message', 'unknown_command'])

function fail(message: string): never {
  throw new CheckFailure(message)
}

function skip(message: string): never {
  throw new CheckSkip(message)
}

function brief(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value)
  return text.length > 160 ? `${text.slice(0, 157)}...` : text
}

/** A success response, or the check fails. */
function ok(frame: Frame | undefined, what: string): Frame {
  if (!frame) fail(`no response to ${what}`)
  if (frame._error !== undefined) fail(`${what} failed: ${brief(frame._error)}`)
  return frame
}

/** A failed response with this code, or the check fails. */
function failed(frame: Frame | undefined, code: string, what: string): Frame {
  if (!frame) fail(`no response to ${what}`)
  const error = frame._error as { code?: unknown; text?: unknown } | undefined
  if (!error) fail(`${what} succeeded (${brief(frame)}); expected ${code}`)
  if (typeof error.text !== 'string') fail(`${what}: _error has no "text"`)
  if (error.code !== code) fail(`${what} answered code ${brief(error.code)}; expected ${code}`)
  return frame
}

function equal(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b)
}

/** What every check can use: sessions to the target, closed when the check ends. */
class Context {
  readonly target: ServiceAddress
  readonly timeout: number
  readonly options: CheckOptions
  /** Features the peer accepted when offered all of them (set by the first bind check). */
  accepted = new Set<string>()
  #sessions: RawSession[] = []

  constructor(target: ServiceAddress, options: CheckOptions) {
    this.target = target
    this.timeout = options.timeout ?? 2_000
    this.options = options
  }

  async connect(): Promise<RawSession> {
    const session = await RawSession.open(this.target.host, this.target.port, this.timeout).catch(
      (error: Error) => fail(`cannot connect: ${error.message}`),
    )
    this.#sessions.push(session)
    return session
  }

  /** A session bound to the target, offering these features (all by default; none with null). */
  async bound(features: readonly string[] | null = ALL_FEATURES): Promise<RawSession> {
    const session = await this.connect()
    const body: Record<string, unknown> = { service: this.target.service }
    if (features) Object.assign(body, { version: 3, features })
    const response = ok(await session.request('bind', body, this.timeout), 'bind')
    const accepted = Array.isArray(response.features) ? response.features : []
    if (accepted.includes('attachments')) session.enableAttachments()
    return session
  }

  require(feature: string): void {
    if (!this.accepted.has(feature)) skip(`the peer does not offer "${feature}"`)
  }

  call(session: RawSession, name: string, args: unknown[]): Promise<Frame | undefined> {
    return session.request('call', { name, args }, this.timeout)
  }

  /** The current value of the conformance object, read on a session of its own. */
  async currentValue(): Promise<unknown> {
    const session = await this.bound(null)
    const response = ok(await session.request('watch', { name: C.object }, this.timeout), 'watch')
    session.close()
    return response.value
  }

  /** Waits until nothing more is in flight: a ping's answer comes after what was sent before. */
  async settle(session: RawSession): Promise<void> {
    ok(await session.request('ping', {}, this.timeout), 'ping')
  }

  closeAll(): void {
    for (const session of this.#sessions) session.close()
    this.#sessions = []
  }
}

interface Check {
  section: string
  name: string
  run(context: Context): Promise<void>
}

const check = (section: string, name: string, run: (context: Context) => Promise<void>): Check => ({
  section,
  name,
  run,
})

function streamBytes(frame: Frame): Buffer {
  if (frame._attachment) return frame._attachment
  if (typeof frame.data === 'string') return Buffer.from(frame.data, 'base64')
  return Buffer.alloc(0)
}

/** Collects the bytes of one stream until `until` holds or the time is up. */
async function readStream(
  session: RawSession,
  stream: number,
  until: (received: number) => boolean,
  timeout: number,
): Promise<Buffer> {
  const parts: Buffer[] = []
  let received = 0
  const deadline = Date.now() + timeout
  while (!until(received)) {
    const left = deadline - Date.now()
    if (left <= 0) break
    const frame = await session.next(
      (f) => f._command === 'stream_data' && f.stream === stream,
      left,
    )
    if (!frame) break
    const bytes = streamBytes(frame)
    parts.push(bytes)
    received += bytes.length
  }
  return Buffer.concat(parts)
}

function nested(depth: number): string {
  // The frame object is level 1 and `args` level 2, so the value inside
  // `args` starts at level 3.
  const levels = depth - 1
  return `{"_type":1,"_id":"deep","_command":"call","name":"echo","args":${'['.repeat(levels)}${']'.repeat(levels)}}`
}

function discoveryChecks(): Check[] {
  const query = (context: Context) => {
    const port = context.options.discoveryPort
    if (port === false) skip('discovery checks are off')
    return port ?? 52722
  }
  const ask = async (context: Context, before?: (socket: dgram.Socket, port: number) => void) => {
    const port = query(context)
    const socket = dgram.createSocket({ type: 'udp4' })
    socket.on('error', () => {})
    await new Promise<void>((resolve) => socket.bind(0, () => resolve()))
    const local = context.target.host === 'localhost' || context.target.host.startsWith('127.')
    if (local) socket.setBroadcast(true)
    try {
      before?.(socket, port)
      const answer = new Promise<Record<string, unknown> | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), context.timeout)
        socket.on('message', (bytes) => {
          let datagram: Record<string, unknown>
          try {
            datagram = JSON.parse(bytes.toString('utf8'))
          } catch {
            return
          }
          if (datagram.command === 'add' && datagram.service === context.target.service) {
            clearTimeout(timer)
            resolve(datagram)
          }
        })
      })
      const text = JSON.stringify({ command: 'query', ...QUERY_MARKER })
      // A unicast to a port several processes share reaches only one of
      // them; on the same host the loopback broadcast reaches them all.
      const send = () => {
        socket.send(text, port, context.target.host)
        if (local) socket.send(text, port, '127.255.255.255')
      }
      send()
      const again = setTimeout(send, 200)
      const datagram = await answer
      clearTimeout(again)
      return datagram
    } finally {
      socket.close()
    }
  }
  return [
    check('2.4', 'a marked query is answered by unicast to its source port', async (context) => {
      const datagram = await ask(context)
      if (!datagram) fail(`no "add" for ${context.target.service} within ${context.timeout} ms`)
      if (datagram.port !== context.target.port)
        fail(`"add" names port ${brief(datagram.port)}, the service is on ${context.target.port}`)
    }),
    check(
      '2.3',
      'the announced info has "type" and the publisher\'s "hostname"',
      async (context) => {
        const datagram = await ask(context)
        if (!datagram) fail('no "add" to look at')
        const info = datagram.info as Record<string, unknown> | undefined
        if (info?.type !== C.type) fail(`info.type is ${brief(info?.type)}, expected "${C.type}"`)
        if (typeof info.hostname !== 'string') fail('info has no "hostname"')
      },
    ),
    check('2.5', 'invalid datagrams are dropped and harm nothing', async (context) => {
      const files = (context.options.vectors ?? []).filter((file) => file.kind === 'datagram')
      const datagram = await ask(context, (socket, port) => {
        for (const file of files)
          for (const vector of file.invalid) {
            const text = vectorText(vector)
            // Larger than a datagram can be: the point is the size limit, and
            // an oversized UDP send fails locally anyway.
            if (Buffer.byteLength(text) > 60_000) continue
            socket.send(text, port, context.target.host)
          }
      })
      if (!datagram) fail('after the invalid datagrams, a query is no longer answered')
    }),
  ]
}

function bindChecks(): Check[] {
  return [
    check('3.4', 'bind offering every feature: accepted features are a subset', async (context) => {
      const session = await context.connect()
      const response = ok(
        await session.request(
          'bind',
          { service: context.target.service, version: 3, features: [...ALL_FEATURES, 'x-unknown'] },
          context.timeout,
        ),
        'bind',
      )
      const features = response.features ?? []
      if (!Array.isArray(features)) fail(`"features" is ${brief(features)}, not an array`)
      for (const feature of features)
        if (!(ALL_FEATURES as readonly unknown[]).includes(feature))
          fail(`accepted a feature it was not offered: ${brief(feature)}`)
      context.accepted = new Set(features as string[])
    }),
    check('3.4', 'bind without features: the plain response, no features', async (context) => {
      const session = await context.connect()
      const response = ok(
        await session.request('bind', { service: context.target.service }, context.timeout),
        'bind',
      )
      if (Array.isArray(response.features) && response.features.length > 0)
        fail(`features ${brief(response.features)} accepted though none were offered`)
    }),
    check(
      '3.4',
      'bind to an unknown id: unknown_service, then the connection closes',
      async (context) => {
        const session = await context.connect()
        failed(
          await session.request('bind', { service: `no-such-${Date.now()}` }, context.timeout),
          'unknown_service',
          'bind to an unknown id',
        )
        if (!(await session.waitClosed(context.timeout)))
          fail('the connection stayed open after unknown_service')
      },
    ),
    check('3.4', 'a command before bind: not_bound', async (context) => {
      const session = await context.connect()
      failed(await context.call(session, 'echo', [1]), 'not_bound', 'call before bind')
    }),
    check('3.4', 'a second bind: not_bound', async (context) => {
      const session = await context.bound()
      failed(
        await session.request('bind', { service: context.target.service }, context.timeout),
        'not_bound',
        'a second bind',
      )
    }),
    check('6', 'the reserved feature "auth" is never accepted', async (context) => {
      const session = await context.connect()
      const response = ok(
        await session.request(
          'bind',
          { service: context.target.service, features: ['auth'], auth: { token: 'x' } },
          context.timeout,
        ),
        'bind with auth',
      )
      if (Array.isArray(response.features) && response.features.includes('auth'))
        fail('"auth" was accepted')
    }),
  ]
}

function envelopeChecks(): Check[] {
  return [
    check('3.2', 'pipelined commands: each answered once, with its own _id', async (context) => {
      const session = await context.bound()
      const ids = [1, 2, 3, 4].map(() => session.id())
      session.sendText(
        ids
          .map((id, i) =>
            JSON.stringify({ _type: 1, _id: id, _command: 'call', name: 'echo', args: [i] }),
          )
          .join('\n'),
      )
      for (const [i, id] of ids.entries()) {
        const response = ok(await session.response(id, context.timeout), `call ${id}`)
        if (response.result !== i) fail(`${id} answered ${brief(response.result)}, expected ${i}`)
      }
      await context.settle(session)
      for (const id of ids)
        if (session.peek((frame) => frame._id === id).length > 0) fail(`${id} answered twice`)
    }),
    check('3.2', 'a numeric _id comes back as the same number', async (context) => {
      const session = await context.bound()
      session.send({ _type: 1, _id: 424242, _command: 'call', name: 'echo', args: ['n'] })
      ok(await session.response(424242, context.timeout), 'call with a numeric _id')
    }),
    check('3.2', 'unknown keys are ignored', async (context) => {
      const session = await context.bound()
      const id = session.id()
      session.send({ _type: 1, _id: id, _command: 'call', name: 'echo', args: [7], x_extra: [1] })
      const response = ok(await session.response(id, context.timeout), 'call with an extra key')
      if (response.result !== 7) fail(`answered ${brief(response.result)}`)
    }),
    check('3.2', 'a notification gets no response, and runs', async (context) => {
      const session = await context.bound()
      const marker = `notified-${Date.now()}`
      session.send({ _type: 3, _id: 'n1', _command: 'call', name: 'set', args: [marker] })
      await context.settle(session)
      if (session.peek((frame) => frame._type === 2 && frame._id === 'n1').length > 0)
        fail('the notification was answered')
      const value = await context.currentValue()
      if (value !== marker) fail(`the call did not run: the object is ${brief(value)}`)
    }),
    check(
      '3.2',
      'an _id that is not a safe integer or short string: an error, not run',
      async (context) => {
        const ids = ['9007199254740993', '1e400', JSON.stringify('i'.repeat(257))]
        for (const id of ids) {
          const session = await context.bound()
          const marker = `unsafe-${id.length}-${Date.now()}`
          session.sendText(
            `{"_type":1,"_id":${id},"_command":"call","name":"set","args":[${JSON.stringify(marker)}]}`,
          )
          const answer = await session.next((frame) => frame._type === 2, context.timeout)
          if (answer && answer._error === undefined)
            fail(`_id ${id.slice(0, 24)}: answered with success`)
          if (!answer && !session.isClosed) fail(`_id ${id.slice(0, 24)}: no error and no close`)
          session.close()
          if ((await context.currentValue()) === marker)
            fail(`_id ${id.slice(0, 24)}: the command ran`)
        }
      },
    ),
  ]
}

function errorChecks(): Check[] {
  return [
    check(
      '3.9',
      'a frame that is not JSON: an error report with _id null, session kept',
      async (context) => {
        const session = await context.bound()
        session.sendText('this is not json')
        const report = await session.next(
          (frame) => frame._type === 2 && frame._id === null,
          context.timeout,
        )
        failed(report, 'malformed_json', 'a line that is not JSON')
        await context.settle(session)
      },
    ),
    check('3.9', 'an unknown command: unknown_command with its _id', async (context) => {
      const session = await context.bound()
      failed(
        await session.request('no_such_command', {}, context.timeout),
        'unknown_command',
        'an unknown command',
      )
    }),
    check('3.9', 'failed responses carry text, code and name', async (context) => {
      const session = await context.bound(null)
      const response = failed(
        await context.call(session, 'no_such_function', []),
        'unknown_name',
        'an unknown function on a session without features',
      )
      const error = response._error as Record<string, unknown>
      if (typeof error.name !== 'string') fail('_error has no "name"')
      if (Object.keys(response).some((key) => !['_type', '_id', '_error'].includes(key)))
        fail(`a failed response has other keys: ${brief(response)}`)
    }),
    check('3.1', 'empty and whitespace-only lines do not end the session', async (context) => {
      const session = await context.bound()
      session.sendText('')
      session.sendText('   ')
      session.sendText('\r')
      await context.settle(session)
    }),
  ]
}

function callChecks(): Check[] {
  return [
    check('3.5', 'call echo: the argument comes back unchanged', async (context) => {
      const session = await context.bound()
      const value = { text: 'grüße ✓ 😀 "q" \\ \n', n: [0, -1.5, 1e21, true, null], o: {} }
      const response = ok(await context.call(session, 'echo', [value]), 'echo')
      if (!equal(response.result, value)) fail(`echo returned ${brief(response.result)}`)
    }),
    check('3.5', 'call add(1, 2): 3', async (context) => {
      const session = await context.bound()
      const response = ok(await context.call(session, 'add', [1, 2]), 'add')
      if (response.result !== 3) fail(`add returned ${brief(response.result)}`)
    }),
    check('3.5', 'a function that returns nothing: result null', async (context) => {
      const session = await context.bound()
      const response = ok(await context.call(session, 'emit', ['x']), 'emit')
      if (response.result !== null) fail(`emit returned ${brief(response.result)}`)
    }),
    check('3.5', 'an unknown function: unknown_name', async (context) => {
      const session = await context.bound()
      failed(
        await context.call(session, 'no_such_function', []),
        'unknown_name',
        'an unknown function',
      )
    }),
    check('3.5', 'an argument of the wrong type: invalid_arguments', async (context) => {
      const session = await context.bound()
      failed(await context.call(session, 'add', ['1', 2]), 'invalid_arguments', 'add("1", 2)')
    }),
    check('3.5', 'too many arguments: invalid_arguments', async (context) => {
      const session = await context.bound()
      failed(await context.call(session, 'add', [1, 2, 3]), 'invalid_arguments', 'add(1, 2, 3)')
    }),
    check('3.5', 'too few arguments: invalid_arguments', async (context) => {
      const session = await context.bound()
      failed(await context.call(session, 'add', [1]), 'invalid_arguments', 'add(1)')
    }),
    check('3.5', 'a function that throws: remote_error with its message', async (context) => {
      const session = await context.bound()
      const response = failed(
        await context.call(session, 'fail', ['boom 42']),
        'remote_error',
        'fail',
      )
      const error = response._error as Record<string, unknown>
      if (error.text !== 'boom 42') fail(`text is ${brief(error.text)}, expected "boom 42"`)
    }),
    check(
      '3.5',
      'slow calls do not hold up quick ones (responses in any order)',
      async (context) => {
        const session = await context.bound()
        const slow = session.id()
        session.send({ _type: 1, _id: slow, _command: 'call', name: 'sleep', args: [300] })
        ok(await context.call(session, 'echo', [1]), 'echo behind a sleep')
        if (session.peek((frame) => frame._id === slow).length > 0)
          fail('the slow call was answered first')
        ok(await session.response(slow, context.timeout + 300), 'sleep(300)')
      },
    ),
  ]
}

function objectChecks(): Check[] {
  const changed = (session: RawSession, value: unknown, timeout: number) =>
    session.next(
      (frame) =>
        frame._command === 'changed' && frame.name === C.object && equal(frame.value, value),
      timeout,
    )
  return [
    check('3.6', 'watch: the current value in the response', async (context) => {
      const session = await context.bound()
      ok(await context.call(session, 'set', [11]), 'set(11)')
      const response = ok(
        await session.request('watch', { name: C.object }, context.timeout),
        'watch',
      )
      if (response.value !== 11) fail(`watch returned value ${brief(response.value)}, expected 11`)
      if (response.name !== undefined && response.name !== C.object)
        fail(`watch returned name ${brief(response.name)}`)
    }),
    check(
      '3.6',
      'watch without features: a "changed" with the current value follows',
      async (context) => {
        const session = await context.bound(null)
        ok(await context.call(session, 'set', [12]), 'set(12)')
        session.notify('watch', { name: C.object })
        if (!(await changed(session, 12, context.timeout)))
          fail('no "changed" with the current value after watch')
      },
    ),
    check('3.6', 'a change is sent to the watcher as "changed"', async (context) => {
      const session = await context.bound()
      ok(await session.request('watch', { name: C.object }, context.timeout), 'watch')
      ok(await context.call(session, 'set', [13]), 'set(13)')
      if (!(await changed(session, 13, context.timeout))) fail('no "changed" with 13')
    }),
    check('3.6', 'watching twice is watching once: one "changed" per change', async (context) => {
      const session = await context.bound()
      ok(await session.request('watch', { name: C.object }, context.timeout), 'watch')
      ok(await session.request('watch', { name: C.object }, context.timeout), 'second watch')
      await context.settle(session)
      session.drain()
      ok(await context.call(session, 'set', [14]), 'set(14)')
      await context.settle(session)
      const count = session.peek((f) => f._command === 'changed' && f.value === 14).length
      if (count !== 1) fail(`${count} "changed" for one change`)
    }),
    check('3.6', 'unwatch: value null, and no more "changed"', async (context) => {
      const session = await context.bound()
      ok(await session.request('watch', { name: C.object }, context.timeout), 'watch')
      const response = ok(
        await session.request('unwatch', { name: C.object }, context.timeout),
        'unwatch',
      )
      if (response.value !== undefined && response.value !== null)
        fail(`unwatch returned value ${brief(response.value)}`)
      ok(await context.call(session, 'set', [15]), 'set(15)')
      await context.settle(session)
      if (session.peek((f) => f._command === 'changed' && f.value === 15).length > 0)
        fail('"changed" after unwatch')
    }),
    ...unsubscribeChecks('3.6', 'watch', 'unwatch', C.object, 'object', {
      _command: 'changed',
      name: 'x',
      value: 1,
    }),
  ]
}

function eventChecks(): Check[] {
  const fired = (session: RawSession, value: unknown, timeout: number) =>
    session.next(
      (frame) => frame._command === 'fired' && frame.name === C.event && equal(frame.args, [value]),
      timeout,
    )
  return [
    check('3.7', 'listen, then each firing arrives as "fired"', async (context) => {
      const session = await context.bound()
      ok(await session.request('listen', { name: C.event }, context.timeout), 'listen')
      ok(await context.call(session, 'emit', ['e1']), 'emit')
      if (!(await fired(session, 'e1', context.timeout))) fail('no "fired" with ["e1"]')
    }),
    check('3.7', 'unlisten: no more "fired"', async (context) => {
      const session = await context.bound()
      ok(await session.request('listen', { name: C.event }, context.timeout), 'listen')
      ok(await session.request('unlisten', { name: C.event }, context.timeout), 'unlisten')
      ok(await context.call(session, 'emit', ['e2']), 'emit')
      await context.settle(session)
      if (session.peek((f) => f._command === 'fired').length > 0) fail('"fired" after unlisten')
    }),
    ...unsubscribeChecks('3.7', 'listen', 'unlisten', C.event, 'event', {
      _command: 'fired',
      name: 'x',
      args: [],
    }),
  ]
}

// Objects (§3.6) and events (§3.7) answer the same outcomes for names and
// repeated unsubscribing, and take their notification sent as a command.
function unsubscribeChecks(
  section: string,
  subscribe: 'watch' | 'listen',
  unsubscribe: 'unwatch' | 'unlisten',
  name: string,
  kind: string,
  notification: { _command: string } & Record<string, unknown>,
): Check[] {
  const { _command: command, ...body } = notification
  return [
    check(
      section,
      `${subscribe} or ${unsubscribe} of an unknown ${kind}: unknown_name`,
      async (context) => {
        const session = await context.bound()
        for (const verb of [subscribe, unsubscribe])
          failed(
            await session.request(verb, { name: `no_such_${kind}` }, context.timeout),
            'unknown_name',
            verb,
          )
      },
    ),
    check(section, `${unsubscribe} of an ${kind} not subscribed: success`, async (context) => {
      const session = await context.bound()
      ok(await session.request(unsubscribe, { name }, context.timeout), unsubscribe)
    }),
    check(section, `"${command}" received as a command is answered {}`, async (context) => {
      const session = await context.bound()
      ok(await session.request(command, body, context.timeout), command)
    }),
  ]
}

const describeValidator = Compile(ServiceDescription)

function introspectionChecks(): Check[] {
  return [
    check('3.8', 'describe: a valid description of the conformance service', async (context) => {
      context.require('describe')
      const session = await context.bound()
      const response = ok(await session.request('describe', {}, context.timeout), 'describe')
      const description = response.description as Record<string, any>
      if (!describeValidator.Check(description))
        fail(`not a service description: ${brief(description)}`)
      if (description.service !== context.target.service)
        fail(`"service" is ${brief(description.service)}`)
      for (const name of C.functions)
        if (!description.functions[name]) fail(`function "${name}" is not described`)
      if (!description.events[C.event]) fail(`event "${C.event}" is not described`)
      if (!description.objects[C.object]) fail(`object "${C.object}" is not described`)
    }),
    check('3.8', 'describe without the feature: unsupported', async (context) => {
      const session = await context.bound(null)
      failed(await session.request('describe', {}, context.timeout), 'unsupported', 'describe')
    }),
    check('3.8', 'the meta-service lists the service, info without "hostname"', async (context) => {
      const session = await context.connect()
      ok(
        await session.request('bind', { service: 'autobus' }, context.timeout),
        'bind to "autobus"',
      )
      const response = ok(await context.call(session, 'list_services', []), 'list_services')
      if (!Array.isArray(response.result)) fail('list_services did not return an array')
      const entry = response.result.find((item: any) => item?.service === context.target.service)
      if (!entry) fail(`${context.target.service} is not listed`)
      if (entry.info?.type !== C.type) fail(`listed info is ${brief(entry.info)}`)
      for (const key of ['hostname', 'host', 'port'])
        if (key in entry.info) fail(`listed info has "${key}"`)
    }),
    check(
      '3.8',
      'the meta-service describes the service; an unknown id is unknown_service',
      async (context) => {
        const session = await context.connect()
        ok(
          await session.request('bind', { service: 'autobus' }, context.timeout),
          'bind to "autobus"',
        )
        const response = ok(
          await context.call(session, 'describe', [context.target.service]),
          'describe',
        )
        if (!describeValidator.Check(response.result)) fail('not a service description')
        failed(
          await context.call(session, 'describe', ['no-such-service']),
          'unknown_service',
          'describe of an unknown id',
        )
      },
    ),
  ]
}

function heartbeatChecks(): Check[] {
  return [
    check('3.13', 'ping before bind: {}', async (context) => {
      const session = await context.connect()
      ok(await session.request('ping', {}, context.timeout), 'ping before bind')
    }),
    check('3.3', 'ping without the heartbeat feature: {}', async (context) => {
      const session = await context.bound(null)
      ok(await session.request('ping', {}, context.timeout), 'ping')
    }),
    check('3.3', 'ping with the heartbeat feature: {}', async (context) => {
      context.require('heartbeat')
      const session = await context.bound()
      ok(await session.request('ping', {}, context.timeout), 'ping')
    }),
  ]
}

function channelChecks(): Check[] {
  const message = (session: RawSession, channel: number, value: unknown, timeout: number) =>
    session.next(
      (f) => f._command === 'channel_message' && f.channel === channel && equal(f.message, value),
      timeout,
    )
  return [
    check('3.10', 'channel echo: messages come back in order', async (context) => {
      context.require('channels')
      const session = await context.bound()
      ok(
        await session.request('channel_open', { name: C.channel, channel: 1 }, context.timeout),
        'channel_open',
      )
      for (const value of ['a', { b: [1] }, 3])
        session.notify('channel_message', { channel: 1, message: value })
      for (const value of ['a', { b: [1] }, 3])
        if (!(await message(session, 1, value, context.timeout)))
          fail(`${brief(value)} did not come back`)
    }),
    check(
      '3.10',
      'a channel number already open: refused, the open channel unharmed',
      async (context) => {
        context.require('channels')
        const session = await context.bound()
        ok(
          await session.request('channel_open', { name: C.channel, channel: 5 }, context.timeout),
          'channel_open',
        )
        failed(
          await session.request('channel_open', { name: C.channel, channel: 5 }, context.timeout),
          'refused',
          'a second channel_open of channel 5',
        )
        session.notify('channel_message', { channel: 5, message: 'still' })
        if (!(await message(session, 5, 'still', context.timeout)))
          fail('channel 5 stopped working')
      },
    ),
    check('3.10', 'channel_open of an unknown name: unknown_name', async (context) => {
      context.require('channels')
      const session = await context.bound()
      failed(
        await session.request(
          'channel_open',
          { name: 'no_such_channel', channel: 1 },
          context.timeout,
        ),
        'unknown_name',
        'channel_open',
      )
    }),
    check(
      '3.10',
      'channel_message as a command on an unknown channel: answered {}',
      async (context) => {
        context.require('channels')
        const session = await context.bound()
        ok(
          await session.request('channel_message', { channel: 999, message: 1 }, context.timeout),
          'channel_message on channel 999',
        )
      },
    ),
    check('3.10', 'after channel_close nothing more arrives on the channel', async (context) => {
      context.require('channels')
      const session = await context.bound()
      ok(
        await session.request('channel_open', { name: C.channel, channel: 2 }, context.timeout),
        'channel_open',
      )
      session.notify('channel_close', { channel: 2, reason: 'done' })
      session.notify('channel_message', { channel: 2, message: 'late' })
      await context.settle(session)
      if (session.peek((f) => f._command === 'channel_message' && f.channel === 2).length > 0)
        fail('a message came back on a closed channel')
    }),
    check('3.10', 'channel_open without the feature: unsupported', async (context) => {
      const session = await context.bound(null)
      failed(
        await session.request('channel_open', { name: C.channel, channel: 1 }, context.timeout),
        'unsupported',
        'channel_open',
      )
    }),
  ]
}

function streamChecks(): Check[] {
  const open = async (context: Context, session: RawSession, stream: number, window: number) => {
    const response = ok(
      await session.request('stream_open', { name: C.stream, stream, window }, context.timeout),
      'stream_open',
    )
    if (!Number.isInteger(response.window) || (response.window as number) < 1)
      fail(`stream_open answered window ${brief(response.window)}`)
    return response.window as number
  }
  const bytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => i % 251))
  return [
    check('3.11', 'stream echo with base64 data: bytes back, then stream_end', async (context) => {
      context.require('streams')
      const session = await context.bound(['streams'])
      await open(context, session, 1, 1 << 20)
      const sent = bytes(3000)
      session.notify('stream_data', { stream: 1, data: sent.toString('base64') })
      session.notify('stream_end', { stream: 1 })
      const back = await readStream(session, 1, (n) => n >= sent.length, context.timeout)
      if (!back.equals(sent)) fail(`${back.length} bytes came back, not the ${sent.length} sent`)
      if (
        !(await session.next((f) => f._command === 'stream_end' && f.stream === 1, context.timeout))
      )
        fail('no stream_end after the echo')
    }),
    check('3.11', 'the peer never has more than our window unacknowledged', async (context) => {
      context.require('streams')
      const session = await context.bound(['streams'])
      const window = 1024
      const credit = await open(context, session, 2, window)
      const sent = bytes(4 * window)
      for (let offset = 0; offset < sent.length; offset += Math.min(credit, window))
        session.notify('stream_data', {
          stream: 2,
          data: sent.subarray(offset, offset + Math.min(credit, window)).toString('base64'),
        })
      let back = Buffer.alloc(0)
      while (back.length < sent.length) {
        const piece = await readStream(session, 2, (n) => n >= window, context.timeout)
        if (piece.length === 0) fail(`stalled after ${back.length} bytes`)
        // More than a window before we acknowledged anything is a violation;
        // wait a moment for any extra to show.
        await new Promise((resolve) => setTimeout(resolve, 100))
        const extra = session.peek((f) => f._command === 'stream_data' && f.stream === 2)
        const over = piece.length + extra.reduce((sum, f) => sum + streamBytes(f).length, 0)
        if (over > window) fail(`${over} bytes sent against a window of ${window}`)
        back = Buffer.concat([back, piece])
        session.notify('stream_ack', { stream: 2, bytes: piece.length })
      }
      if (!back.equals(sent)) fail('the bytes came back changed')
    }),
    check('3.11', 'stream_open of an unknown name: unknown_name', async (context) => {
      context.require('streams')
      const session = await context.bound()
      failed(
        await session.request(
          'stream_open',
          { name: 'no_such_stream', stream: 1, window: 1024 },
          context.timeout,
        ),
        'unknown_name',
        'stream_open',
      )
    }),
    check('3.11', 'a stream number already open: refused', async (context) => {
      context.require('streams')
      const session = await context.bound()
      await open(context, session, 3, 1024)
      failed(
        await session.request(
          'stream_open',
          { name: C.stream, stream: 3, window: 1024 },
          context.timeout,
        ),
        'refused',
        'a second stream_open of stream 3',
      )
    }),
    check('3.11', 'data beyond the granted window closes the session', async (context) => {
      context.require('streams')
      const session = await context.bound(['streams'])
      // A small window of our own stalls the echo at once, so the service
      // stops consuming and acknowledging what it receives.
      const credit = await open(context, session, 4, 1024)
      // Twice its window and more, without waiting for any acknowledgement.
      const piece = bytes(64 * 1024).toString('base64')
      const frames = Math.ceil((2 * credit) / (64 * 1024)) + 2
      for (let i = 0; i < frames && !session.isClosed; i++)
        session.notify('stream_data', { stream: 4, data: piece })
      if (!(await session.waitClosed(context.timeout))) fail('the session stayed open')
    }),
    check('3.11', 'stream_open without the feature: unsupported', async (context) => {
      const session = await context.bound(null)
      failed(
        await session.request(
          'stream_open',
          { name: C.stream, stream: 1, window: 1024 },
          context.timeout,
        ),
        'unsupported',
        'stream_open',
      )
    }),
  ]
}

function attachmentChecks(): Check[] {
  const header = (stream: number, size: number, extra: object = {}) =>
    `${JSON.stringify({ _type: 3, _command: 'stream_data', stream, ...extra, _size: size })}\n`
  // A session with streams and attachments, and the echo stream open on it.
  const openAttached = async (context: Context, stream: number) => {
    context.require('attachments')
    context.require('streams')
    const session = await context.bound(['streams', 'attachments'])
    ok(
      await session.request(
        'stream_open',
        { name: C.stream, stream, window: 1 << 20 },
        context.timeout,
      ),
      'stream_open',
    )
    return session
  }
  return [
    check('3.12', 'stream data as attachments both ways', async (context) => {
      const session = await openAttached(context, 1)
      const sent = Buffer.from('hello\nworld\n{"_type":1}\n')
      session.sendBytes(Buffer.concat([Buffer.from(header(1, sent.length)), sent]))
      const back = await readStream(session, 1, (n) => n >= sent.length, context.timeout)
      if (!back.equals(sent)) fail(`got back ${brief(back.toString())}`)
      await context.settle(session)
    }),
    check('3.12', '"data" next to "_size": the attachment wins', async (context) => {
      const session = await openAttached(context, 2)
      const sent = Buffer.from('attached')
      const decoy = Buffer.from('in data').toString('base64')
      session.sendBytes(Buffer.concat([Buffer.from(header(2, sent.length, { data: decoy })), sent]))
      const back = await readStream(session, 2, (n) => n >= sent.length, context.timeout)
      if (!back.equals(sent)) fail(`got back ${brief(back.toString())}`)
    }),
    check('3.12', 'without the feature "_size" is an unknown key', async (context) => {
      const session = await context.bound(null)
      const id = session.id()
      session.send({ _type: 1, _id: id, _command: 'call', name: 'echo', args: ['s'], _size: 4 })
      ok(await session.response(id, context.timeout), 'call with "_size"')
      await context.settle(session)
    }),
  ]
}

/** The longest `sleep(ms)` of the conformance service (docs/conformance.md). */
const SLEEP_MAX = 60_000

function limitChecks(): Check[] {
  return [
    check(
      '3.1',
      'nesting exactly at the limit (64, the frame object is 1) is accepted',
      async (context) => {
        const session = await context.bound()
        session.sendText(nested(64))
        ok(await session.response('deep', context.timeout), 'a call nested 64 deep')
      },
    ),
    check('3.1', 'nesting one over the limit (65): too_deep with the _id', async (context) => {
      const session = await context.bound()
      session.sendText(nested(65))
      failed(await session.response('deep', context.timeout), 'too_deep', 'a call nested 65 deep')
      await context.settle(session)
    }),
    check('4', 'a frame over the frame limit closes the connection', async (context) => {
      const session = await context.bound()
      const limit = context.options.maxFrame ?? Limits.maxFrame
      session.sendText(
        `{"_type":1,"_id":"big","_command":"call","name":"echo","args":["${'x'.repeat(limit)}"]}`,
      )
      if (!(await session.waitClosed(context.timeout * 2))) fail('the connection stayed open')
    }),
    check('4', 'beyond the in-flight limit: busy, without running', async (context) => {
      const session = await context.bound()
      const limit = context.options.maxPendingCalls ?? Limits.maxPendingCalls
      // Every call sleeps as long as the contract allows, far longer than
      // the check lasts, so the first `limit` are all still running when the
      // rest arrive however long the peer takes to start them. An echo after
      // each batch shows the peer has read that far: each wait is for one
      // answer, and a loaded peer is judged as an idle one is.
      const sleep = (id: number) =>
        `{"_type":1,"_id":${id},"_command":"call","name":"sleep","args":[${SLEEP_MAX}]}`
      const echo = (id: string) =>
        `{"_type":1,"_id":"${id}","_command":"call","name":"echo","args":[1]}`
      const sleepAnswered = (frame: Frame) => frame._type === 2 && typeof frame._id === 'number'
      let sent = 0
      while (sent < limit - 1) {
        const lines: string[] = []
        for (const end = Math.min(sent + 250, limit - 1); sent < end; sent++)
          lines.push(sleep(sent))
        lines.push(echo(`read-${sent}`))
        session.sendText(lines.join('\n'))
        const read = await session.response(`read-${sent}`, context.timeout)
        if ((read?._error as { code?: unknown } | undefined)?.code === 'busy')
          fail(`an echo after ${sent} calls was answered busy; the limit given is ${limit}`)
        ok(read, `an echo after ${sent} calls to sleep(${SLEEP_MAX})`)
        const early = session.peek(sleepAnswered)[0]
        if (early) fail(`sleep(${SLEEP_MAX}) answered while it should still run: ${brief(early)}`)
      }
      // One more call fills the limit; the 50 after it, and an echo, are beyond it.
      const lines: string[] = []
      for (; sent < limit + 50; sent++) lines.push(sleep(sent))
      lines.push(echo('beyond'))
      session.sendText(lines.join('\n'))
      for (let id = limit; id < limit + 50; id++)
        failed(
          await session.response(id, context.timeout),
          'busy',
          `call ${id + 1} with ${limit} in flight`,
        )
      failed(
        await session.response('beyond', context.timeout),
        'busy',
        `an echo with ${limit} in flight`,
      )
      session.close()
    }),
  ]
}

function vectorChecks(files: VectorFile[]): Check[] {
  const frames = files.filter((file) => file.kind === 'frame')
  const checks: Check[] = []
  let counter = 0
  const rewriteId = (vector: Vector): { text: string; id?: unknown } => {
    if (vector.text !== undefined) {
      // Raw text is sent as it is; its _id, if it has one, is what comes back.
      try {
        const value = JSON.parse(vector.text)
        return { text: vector.text, id: value?._id }
      } catch {
        return { text: vector.text }
      }
    }
    const message = vector.message as Record<string, unknown> | undefined
    if (!message) return { text: vectorText(vector) }
    const id = message._id
    const readable =
      (typeof id === 'number' && Number.isSafeInteger(id)) ||
      (typeof id === 'string' && id.length <= 256)
    if (!readable) return { text: vectorText(vector), id }
    const fresh = `v${++counter}`
    return { text: JSON.stringify({ ...message, _id: fresh }), id: fresh }
  }
  for (const file of frames) {
    const invalid = file.invalid
    if (invalid.length > 0)
      checks.push(
        check(
          '3.9',
          `vectors ${file.file}: each invalid frame answered as §3.9 says`,
          async (context) => {
            const session = await context.bound()
            for (const vector of invalid) {
              const { text, id } = rewriteId(vector)
              let parsed: Record<string, unknown> | undefined
              try {
                const value = JSON.parse(text)
                if (typeof value === 'object' && value !== null && !Array.isArray(value))
                  parsed = value
              } catch {}
              const type = parsed?._type
              const readable = isMessageId(id)
              session.sendText(text)
              if (type === 1 && readable) {
                failed(
                  await session.response(id, context.timeout),
                  vector.error!,
                  `"${vector.name}"`,
                )
              } else if (type === 3 || (type === 2 && readable)) {
                await context.settle(session)
                if (
                  session.peek((f) => f._type === 2 && (f._id === null || f._id === id)).length > 0
                )
                  fail(`"${vector.name}" (not a command) was answered`)
              } else {
                const report = await session.next(
                  (f) => f._type === 2 && f._id === null,
                  context.timeout,
                )
                failed(report, vector.error!, `"${vector.name}"`)
              }
              if (session.isClosed) fail(`the session closed after "${vector.name}"`)
            }
          },
        ),
      )
    const commands = file.valid.filter((vector) => {
      const message = vector.message as Record<string, unknown> | undefined
      return (
        message && message._type !== 2 && message._size === undefined && message._command !== 'bind'
      )
    })
    if (commands.length > 0)
      checks.push(
        check(
          '3.2',
          `vectors ${file.file}: each valid command decoded (no decode error)`,
          async (context) => {
            const session = await context.bound()
            for (const vector of commands) {
              const message = vector.message as Record<string, unknown>
              if (message._type === 3) {
                session.sendText(JSON.stringify(message))
                await context.settle(session)
                if (session.peek((f) => f._type === 2 && f._id === null).length > 0)
                  fail(`"${vector.name}" drew an error report`)
                continue
              }
              const id = session.id()
              session.send({ ...message, _id: id })
              const response = await session.response(id, context.timeout)
              if (!response) fail(`no response to "${vector.name}"`)
              const code = (response._error as { code?: string } | undefined)?.code
              if (code && DECODE_ERRORS.has(code)) fail(`"${vector.name}" was rejected as ${code}`)
            }
          },
        ),
      )
  }
  return checks
}

/** Every check, in the order they run, given the vectors to run. */
function allChecks(vectors: VectorFile[]): Check[] {
  return [
    ...bindChecks(),
    ...discoveryChecks(),
    ...envelopeChecks(),
    ...errorChecks(),
    ...callChecks(),
    ...objectChecks(),
    ...eventChecks(),
    ...introspectionChecks(),
    ...heartbeatChecks(),
    ...channelChecks(),
    ...streamChecks(),
    ...attachmentChecks(),
    ...limitChecks(),
    ...vectorChecks(vectors),
  ]
}

/**
 * Checks a peer's service, live, against docs/protocol.md: the service must
 * be a conformance service (docs/conformance.md). Each check opens sessions
 * of its own and names the section it checks; a check of a feature the peer
 * does not offer is skipped.
 *
 * @example
 * ```ts
 * const report = await checkService({ host: '127.0.0.1', port: 4000, service: id })
 * console.log(formatSummary(report))
 * ```
 */
export async function checkService(
  target: ServiceAddress,
  options: CheckOptions = {},
): Promise<ConformanceReport> {
  const vectors = options.vectors ?? loadVectors()
  const context = new Context(target, { ...options, vectors })
  const results: CheckResult[] = []
  for (const entry of allChecks(vectors)) {
    if (options.signal?.aborted) break
    let result: CheckResult
    try {
      await entry.run(context)
      result = { section: entry.section, name: entry.name, outcome: 'pass' }
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error)
      result = {
        section: entry.section,
        name: entry.name,
        outcome: error instanceof CheckSkip ? 'skip' : 'fail',
        detail,
      }
    } finally {
      context.closeAll()
    }
    results.push(result)
    options.onResult?.(result)
  }
  return summarize(results)
}
