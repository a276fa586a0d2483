import { encodeFrame, Feature, MessageType, type RequestMessage } from '@autobus/protocol'
import type { MessageConnection } from '@autobus/transport'
import {
  type Circuit,
  circuitFrame,
  pacer,
  passFrame,
  readCircuitFrame,
  TurnWriter,
} from './link.js'

/** A caller's session passed on to the origin through a circuit of its own. */
export interface RelayedSession {
  /** Sets every object the caller watches to null, then ends the session. */
  lose(reason: string): void
  readonly closed: Promise<unknown>
}

/**
 * Passes a session bound to a stand-in on to its origin, frame by frame as
 * text: the caller's bind goes through, so the two ends negotiate features
 * and heartbeats with each other. Only three things are read on the way:
 * the origin's answer to the bind (whether attachments are on), a
 * `describe` (answered here, with the stand-in's info), and `watch` and
 * `unwatch` (so that a lost link sets what the caller watches to null, as
 * the origin's death does).
 */
export function relaySession(
  caller: MessageConnection,
  bind: RequestMessage<'bind'>,
  circuit: Circuit,
  describe: () => unknown,
): RelayedSession {
  const watched = new Set<string>()
  const writer = new TurnWriter((text) => caller.sendEncoded(text))
  let answered = false
  const lose = (reason: string) => {
    for (const name of watched)
      writer.add(
        encodeFrame({ _type: MessageType.Notification, _command: 'changed', name, value: null }),
      )
    watched.clear()
    writer.flush()
    circuit.close(reason)
    caller.close(reason)
  }
  const paced = pacer(circuit.link, caller)
  const fromCaller = (frame: string) => {
    // Most frames are calls and answers: a substring test keeps them unparsed.
    if (frame.includes('watch"') || frame.includes('"describe"')) {
      let message: { _type?: unknown; _id?: unknown; _command?: unknown; name?: unknown }
      try {
        message = JSON.parse(frame)
      } catch {
        message = {}
      }
      if (message._type === MessageType.Command && message._command === 'describe') {
        writer.add(
          encodeFrame({ _type: MessageType.Response, _id: message._id, description: describe() }),
        )
        return
      }
      if (typeof message.name === 'string' && message._type !== MessageType.Response) {
        if (message._command === 'watch') watched.add(message.name)
        else if (message._command === 'unwatch') watched.delete(message.name)
      }
    }
    circuit.send(frame)
    paced()
  }
  circuit.on('frame', (bytes) => {
    // The origin's first frame answers the bind: whether attachments are on.
    if (!answered) {
      answered = true
      const answer = readCircuitFrame(bytes) as { features?: unknown }
      if (Array.isArray(answer.features) && answer.features.includes(Feature.Attachments))
        caller.enableAttachments()
    }
    if (!passFrame(bytes, circuit, writer, caller)) lose('invalid frame')
  })
  caller.readRaw?.(fromCaller)
  // Frames with attachments (stream data) still arrive decoded.
  caller.on('message', (message) => {
    if (!(message as { _attachment?: unknown })._attachment) {
      // A connection that cannot hand over text (an in-memory one).
      fromCaller(JSON.stringify(message))
      return
    }
    // Sending bytes flushes the link's queued frames first, so order holds.
    circuit.send(circuitFrame(message))
    paced()
  })
  circuit.send(JSON.stringify(bind))
  circuit.closed.then((info) => lose(info.reason))
  caller.closed.then((info) => circuit.close(info.reason))
  return { lose, closed: caller.closed }
}
