import { randomUUID } from 'node:crypto'
import { createPublisher, type Publisher, udpNetwork } from '@autobus/discovery'
import { ErrorCode, type ProtocolError, type SessionMessage } from '@autobus/protocol'
import { listen, type MessageConnection, type MessageServer } from '@autobus/transport'
import { ALL_FEATURES, ConformanceService as C } from './contract.js'
import { type CheckResult, type ConformanceReport, summarize } from './report.js'

/** One thing a client under test did, as the reference service saw it. */
export interface ClientEvent {
  /** Which of the client's sessions (1, 2, …). */
  session: number
  /** What happened: "bound", "called", "watched", "invalid frame", … */
  what: string
  /** The name, features or error involved. */
  detail?: unknown
}

/** Options of {@link startReferenceService}. */
export interface ReferenceOptions {
  /** TCP port (default: a free one). */
  port?: number
  /** Address to listen on (default all IPv4 addresses). */
  host?: string
  /** The service id (default: a random UUID). */
  service?: string
  /** Announce by discovery on this UDP port (default 52722); `false` does not announce. */
  discoveryPort?: number | false
  /** Interfaces to announce on (default all). */
  interfaces?: readonly string[]
  /** The receive window the service grants each stream (default 4,096 bytes, so a client must wait for credit). */
  streamWindow?: number
  /** Called with each event as it happens. */
  onEvent?: (event: ClientEvent) => void
}

/** A running reference service. */
export interface ReferenceService {
  readonly service: string
  readonly port: number
  /** The announced info, or the plain one without discovery. */
  readonly info: Readonly<Record<string, unknown>>
  /** Everything the client did, in order. */
  readonly events: readonly ClientEvent[]
  /** Resolves once a client has bound and then closed all its sessions. */
  readonly finished: Promise<void>
  /** What was seen, checked against the expected sequence of docs/conformance.md. */
  report(): ConformanceReport
  /** Stops serving (and announcing); idempotent. */
  close(): Promise<void>
}

const SUPPORTED = new Set<string>(ALL_FEATURES)

interface StreamState {
  window: number
  credit: number
  unacked: number
  queue: Buffer[]
  violated: number
  ended: boolean
}

/**
 * Starts the reference conformance service: the contract of
 * docs/conformance.md, written straight on the wire so that it records
 * everything a client does (binds, calls, watches, listens, channels,
 * streams, answers to the service's own `ping` and `changed`). Its report
 * checks that record against the expected sequence.
 *
 * @example
 * ```ts
 * const reference = await startReferenceService({ discoveryPort: false })
 * // … run the client under test against reference.port / reference.service …
 * await reference.finished
 * console.log(formatSummary(reference.report()))
 * ```
 */
export async function startReferenceService(
  options: ReferenceOptions = {},
): Promise<ReferenceService> {
  const id = options.service ?? randomUUID()
  const streamWindow = options.streamWindow ?? 4096
  const events: ClientEvent[] = []
  const listeners = new Set<MessageConnection>()
  const watchers = new Set<MessageConnection>()
  let value: unknown = 0
  let sessions = 0
  let open = 0
  let anyBound = false
  let negotiated = new Set<string>()
  let resolveFinished!: () => void
  const finished = new Promise<void>((resolve) => {
    resolveFinished = resolve
  })
  let quiet: NodeJS.Timeout | undefined

  const server: MessageServer = await listen({
    port: options.port ?? 0,
    ...(options.host ? { host: options.host } : {}),
  })
  let publisher: Publisher | undefined
  let info: Readonly<Record<string, unknown>> = { type: C.type }
  if (options.discoveryPort !== false) {
    publisher = await createPublisher({
      network: udpNetwork({
        ...(options.discoveryPort ? { port: options.discoveryPort } : {}),
        ...(options.interfaces ? { interfaces: options.interfaces } : {}),
      }),
      holdOff: 0,
    })
    info = publisher.publish({ service: id, port: server.port, info: { type: C.type } }).info
  }

  server.on('connection', (connection) => {
    const session = ++sessions
    open++
    if (quiet) clearTimeout(quiet)
    const record = (what: string, detail?: unknown) => {
      const event: ClientEvent =
        detail === undefined ? { session, what } : { session, what, detail }
      events.push(event)
      options.onEvent?.(event)
    }
    let bound = false
    let features = new Set<string>()
    let first = true
    let nextId = 1
    const awaiting = new Map<string, string>()
    const streams = new Map<number, StreamState>()
    const channels = new Set<number>()

    const answer = (message: SessionMessage, body: object) => {
      if (message._type === 1) connection.send({ _type: 2, _id: message._id, ...body })
    }
    const refuse = (message: SessionMessage, code: string, text: string) => {
      if (message._type === 1)
        connection.send({ _type: 2, _id: message._id, _error: { text, code, name: 'Error' } })
    }
    const command = (name: string, body: object) => {
      const commandId = `ref-${nextId++}`
      awaiting.set(commandId, name)
      connection.send({ _type: 1, _id: commandId, _command: name, ...body })
    }
    const sendData = (stream: number, bytes: Buffer) => {
      if (features.has('attachments'))
        connection.sendWithAttachment({ _type: 3, _command: 'stream_data', stream }, bytes)
      else
        connection.send({
          _type: 3,
          _command: 'stream_data',
          stream,
          data: bytes.toString('base64'),
        })
    }
    const flush = (stream: number, state: StreamState) => {
      while (state.queue.length > 0 && state.credit > 0) {
        const head = state.queue[0]!
        const piece = head.subarray(0, state.credit)
        if (piece.length === head.length) state.queue.shift()
        else state.queue[0] = head.subarray(piece.length)
        state.credit -= piece.length
        sendData(stream, piece)
      }
      if (state.ended && state.queue.length === 0) {
        connection.send({ _type: 3, _command: 'stream_end', stream })
        state.ended = false
      }
    }

    const call = (message: SessionMessage & { name: string; args: unknown[] }) => {
      const { name, args } = message
      record('called', name)
      const numbers = args.length === 2 && args.every((arg) => typeof arg === 'number')
      switch (name) {
        case 'echo':
          return answer(message, { result: args[0] ?? null })
        case 'add':
          if (!numbers) return refuse(message, ErrorCode.InvalidArguments, 'add takes two numbers')
          return answer(message, { result: (args[0] as number) + (args[1] as number) })
        case 'fail':
          return refuse(message, ErrorCode.RemoteError, String(args[0] ?? 'failed'))
        case 'sleep': {
          const ms = Math.min(Math.max(0, Number(args[0]) || 0), 60_000)
          setTimeout(() => answer(message, { result: ms }), ms).unref()
          return
        }
        case 'set': {
          value = args[0] ?? null
          for (const watcher of watchers)
            watcher.send({ _type: 3, _command: 'changed', name: C.object, value })
          return answer(message, { result: null })
        }
        case 'emit':
          for (const listener of listeners)
            listener.send({ _type: 3, _command: 'fired', name: C.event, args: [args[0] ?? null] })
          return answer(message, { result: null })
        default:
          return refuse(message, ErrorCode.UnknownName, `no function "${name}"`)
      }
    }

    connection.on('invalid', (error: ProtocolError) => {
      record('invalid frame', `${error.code}: ${error.message}`)
      if (error.messageType === 1 && error.messageId !== undefined)
        connection.send({
          _type: 2,
          _id: error.messageId,
          _error: { text: error.message, code: error.code },
        })
      else if (error.messageType !== 3 && error.messageType !== 2)
        connection.send({ _type: 2, _id: null, _error: { text: error.message, code: error.code } })
    })

    connection.on('message', (message) => {
      if (message._type === 2) {
        const name = awaiting.get(String(message._id))
        if (name === undefined) return
        awaiting.delete(String(message._id))
        record(message._error ? `answered ${name} with an error` : `answered ${name}`)
        return
      }
      const name = message._command
      if (first) {
        first = false
        if (name !== 'bind' && name !== 'ping') record('command before bind', name)
      }
      if (name === 'ping') return answer(message, {})
      if (name === 'bind') {
        if (bound) return refuse(message, ErrorCode.NotBound, 'already bound')
        if (message.service !== id) {
          record('bound to an unknown id', message.service)
          refuse(message, ErrorCode.UnknownService, `no service "${message.service}"`)
          setImmediate(() => connection.close('unknown service'))
          return
        }
        bound = true
        anyBound = true
        const offered = message.features
        features = new Set((offered ?? []).filter((feature) => SUPPORTED.has(feature)))
        negotiated = new Set([...negotiated, ...features])
        record('bound', offered ?? null)
        if (features.has('attachments')) connection.enableAttachments()
        answer(message, offered ? { version: 3, features: [...features] } : {})
        if (features.has('heartbeat')) command('ping', {})
        return
      }
      if (!bound) return refuse(message, ErrorCode.NotBound, `"${name}" before bind`)
      switch (message._command) {
        case 'call':
          return call(message)
        case 'watch':
          if (message.name !== C.object)
            return refuse(message, ErrorCode.UnknownName, `no object "${message.name}"`)
          record('watched', message.name)
          watchers.add(connection)
          answer(message, { name: C.object, value })
          connection.send({ _type: 3, _command: 'changed', name: C.object, value })
          // Once as a command too: a client must answer it (§3.6).
          command('changed', { name: C.object, value })
          return
        case 'unwatch':
          if (message.name !== C.object)
            return refuse(message, ErrorCode.UnknownName, `no object "${message.name}"`)
          record('unwatched', message.name)
          watchers.delete(connection)
          return answer(message, { name: C.object, value: null })
        case 'listen':
        case 'unlisten':
          if (message.name !== C.event)
            return refuse(message, ErrorCode.UnknownName, `no event "${message.name}"`)
          record(message._command === 'listen' ? 'listened' : 'unlistened', message.name)
          if (message._command === 'listen') listeners.add(connection)
          else listeners.delete(connection)
          return answer(message, {})
        case 'describe':
          if (!features.has('describe'))
            return refuse(message, ErrorCode.Unsupported, 'describe was not negotiated')
          record('described')
          return answer(message, { description: describe(id) })
        case 'channel_open':
          if (!features.has('channels'))
            return refuse(message, ErrorCode.Unsupported, 'channels were not negotiated')
          if (message.name !== C.channel)
            return refuse(message, ErrorCode.UnknownName, `no channel "${message.name}"`)
          if (channels.has(message.channel))
            return refuse(message, ErrorCode.Refused, `channel ${message.channel} is open`)
          record('opened channel', message.name)
          channels.add(message.channel)
          return answer(message, {})
        case 'channel_message':
          if (channels.has(message.channel)) {
            record('sent a channel message')
            connection.send({
              _type: 3,
              _command: 'channel_message',
              channel: message.channel,
              message: message.message,
            })
          }
          return answer(message, {})
        case 'channel_close':
          if (channels.delete(message.channel)) record('closed channel')
          return answer(message, {})
        case 'stream_open':
          if (!features.has('streams'))
            return refuse(message, ErrorCode.Unsupported, 'streams were not negotiated')
          if (message.name !== C.stream)
            return refuse(message, ErrorCode.UnknownName, `no stream "${message.name}"`)
          if (streams.has(message.stream))
            return refuse(message, ErrorCode.Refused, `stream ${message.stream} is open`)
          record('opened stream', message.name)
          streams.set(message.stream, {
            window: streamWindow,
            credit: message.window,
            unacked: 0,
            queue: [],
            violated: 0,
            ended: false,
          })
          return answer(message, { window: streamWindow })
        case 'stream_data': {
          const state = streams.get(message.stream)
          if (!state) return answer(message, {})
          const attachment = (message as { _attachment?: Buffer })._attachment
          const bytes = attachment ?? Buffer.from(message.data ?? '', 'base64')
          record(attachment ? 'sent stream data as an attachment' : 'sent stream data')
          state.unacked += bytes.length
          if (state.unacked > state.window && state.violated === 0) {
            state.violated = state.unacked
            record('sent beyond the stream window', state.unacked)
          }
          // Acknowledge a little later, so that a client that does not wait
          // for credit shows it by overrunning the window.
          const taken = bytes.length
          setTimeout(() => {
            state.unacked -= taken
            if (!connection.isClosed)
              connection.send({
                _type: 3,
                _command: 'stream_ack',
                stream: message.stream,
                bytes: taken,
              })
          }, 10).unref()
          state.queue.push(bytes)
          flush(message.stream, state)
          return answer(message, {})
        }
        case 'stream_ack': {
          const state = streams.get(message.stream)
          if (state) {
            state.credit += message.bytes
            flush(message.stream, state)
          }
          return answer(message, {})
        }
        case 'stream_end': {
          const state = streams.get(message.stream)
          if (state) {
            record('ended stream')
            state.ended = true
            flush(message.stream, state)
          }
          return answer(message, {})
        }
        case 'stream_close':
          if (streams.delete(message.stream)) record('closed stream')
          return answer(message, {})
        case 'changed':
        case 'fired':
          return answer(message, {})
        default:
          return refuse(message, ErrorCode.UnknownCommand, `"${name}" is not a client command`)
      }
    })

    connection.once('close', () => {
      watchers.delete(connection)
      listeners.delete(connection)
      record('closed session')
      open--
      if (open === 0 && anyBound) {
        // A client may reconnect at once; the run is over when it does not.
        quiet = setTimeout(resolveFinished, 300)
        quiet.unref()
      }
    })
  })

  let closing: Promise<void> | undefined
  return {
    service: id,
    port: server.port,
    info,
    events,
    finished,
    report: () => clientReport(events, negotiated),
    close: () => {
      closing ??= (async () => {
        if (quiet) clearTimeout(quiet)
        await publisher?.close()
        await server.close('reference service closing')
      })()
      return closing
    },
  }
}

function describe(id: string) {
  const fn = (doc: string) => ({ doc })
  return {
    service: id,
    info: { type: C.type },
    doc: 'The Autobus reference conformance service.',
    functions: {
      echo: fn('Returns its argument.'),
      add: {
        doc: 'Adds two numbers.',
        args: [{ type: 'number' }, { type: 'number' }],
        result: { type: 'number' },
      },
      fail: fn('Fails with the given text.'),
      sleep: fn('Waits ms milliseconds, then returns ms.'),
      set: fn('Sets the object "value".'),
      emit: fn('Fires "signal" with its argument.'),
    },
    events: { [C.event]: fn('Fired by emit(x) with [x].') },
    objects: { [C.object]: fn('Set by set(value); starts at 0.') },
    channels: { [C.channel]: fn('Sends back every message.') },
    streams: { [C.stream]: fn('Sends back every byte.') },
  }
}

/** The expected sequence of docs/conformance.md, checked against what was seen. */
function clientReport(events: readonly ClientEvent[], negotiated: Set<string>): ConformanceReport {
  const results: CheckResult[] = []
  const seen = (what: string, detail?: unknown) =>
    events.some((event) => event.what === what && (detail === undefined || event.detail === detail))
  const expect = (
    section: string,
    name: string,
    pass: boolean,
    detail?: string,
    feature?: string,
  ) => {
    if (feature && !negotiated.has(feature))
      results.push({ section, name, outcome: 'skip', detail: `"${feature}" was not negotiated` })
    else
      results.push({
        section,
        name,
        outcome: pass ? 'pass' : 'fail',
        ...(pass || !detail ? {} : { detail }),
      })
  }
  const early = events.find((event) => event.what === 'command before bind')
  expect('3.4', 'the client binds first', !early, `sent ${String(early?.detail)} before bind`)
  expect('3.4', 'the client binds to the service', seen('bound'), 'no bind seen')
  const invalid = events.find((event) => event.what === 'invalid frame')
  expect('3.2', 'every frame the client sent was valid', !invalid, String(invalid?.detail))
  for (const name of ['echo', 'add', 'fail'])
    expect('3.5', `the client calls ${name}`, seen('called', name), `no call of ${name}`)
  expect(
    '3.5',
    'the client calls a function the service lacks',
    events.some((event) => event.what === 'called' && !C.functions.includes(event.detail as never)),
    'no call of an unknown function',
  )
  expect('3.6', `the client watches "${C.object}"`, seen('watched', C.object), 'no watch seen')
  expect(
    '3.6',
    'the client answers "changed" sent as a command',
    seen('answered changed'),
    'no answer',
    undefined,
  )
  expect(
    '3.6',
    `the client unwatches "${C.object}"`,
    seen('unwatched', C.object),
    'no unwatch seen',
  )
  expect('3.7', `the client listens to "${C.event}"`, seen('listened', C.event), 'no listen seen')
  expect(
    '3.7',
    `the client unlistens "${C.event}"`,
    seen('unlistened', C.event),
    'no unlisten seen',
  )
  expect(
    '3.3',
    "the client answers the service's ping",
    seen('answered ping'),
    'no answer',
    'heartbeat',
  )
  expect(
    '3.10',
    `the client opens channel "${C.channel}"`,
    seen('opened channel', C.channel),
    'no open seen',
    'channels',
  )
  expect(
    '3.10',
    'the client sends a channel message',
    seen('sent a channel message'),
    'none seen',
    'channels',
  )
  expect(
    '3.10',
    'the client closes the channel',
    seen('closed channel'),
    'no channel_close seen',
    'channels',
  )
  expect(
    '3.11',
    `the client opens stream "${C.stream}"`,
    seen('opened stream', C.stream),
    'no open seen',
    'streams',
  )
  expect(
    '3.11',
    'the client sends stream data',
    seen('sent stream data') || seen('sent stream data as an attachment'),
    'none seen',
    'streams',
  )
  const overrun = events.find((event) => event.what === 'sent beyond the stream window')
  expect(
    '3.11',
    'the client keeps within the stream window',
    !overrun,
    `${String(overrun?.detail)} bytes unacknowledged`,
    'streams',
  )
  expect(
    '3.11',
    'the client ends the stream',
    seen('ended stream'),
    'no stream_end seen',
    'streams',
  )
  expect(
    '3.12',
    'with attachments, stream data travels as attachments',
    seen('sent stream data as an attachment') && !seen('sent stream data'),
    'base64 data seen',
    'attachments',
  )
  expect('3.3', 'the client closes its session', seen('closed session'), 'still open')
  return summarize(results)
}
