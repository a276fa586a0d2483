import type { ServiceDescription } from '@autobus/protocol'
import {
  type ByteStream,
  type Channel,
  type Connection,
  createService,
  type Service,
  type ServiceObject,
  type Subscription,
} from '@autobus/rpc'
import type { Circuit } from './link.js'
import { type RelayedSession, relaySession } from './session-relay.js'

/** A service published on this bus that does the work of one on another. */
export interface StandIn {
  readonly service: Service
  /** The session with the service it stands in for, through the links. */
  readonly up: Connection
  /** Sets every watched object to null: the origin, or a link on the way, is lost. */
  lose(): void
  /** Stops listening and watching upstream (the connection stays open). */
  release(): Promise<void>
}

/**
 * Builds a stand-in from the origin's own description: every function,
 * event, object, channel and stream it has, each doing its work through
 * `up`. Events and objects are followed upstream from the start, so a
 * stand-in fires and changes exactly when its origin does, once.
 */
export async function createStandIn(
  up: Connection,
  info: Record<string, unknown>,
  options: {
    signal?: AbortSignal
    callTimeout?: number
    /**
     * Opens a circuit to the origin: given, sessions that bind to the
     * stand-in are passed on through one of their own instead of being
     * served by it (see `relaySession`), up to `maxRelayed` at once.
     */
    relay?: () => Circuit
    /** Sessions passed on at once (default 16); the stand-in serves the rest itself. */
    maxRelayed?: number
    /** Counts each session passed on. */
    onRelayed?: () => void
  } = {},
): Promise<StandIn> {
  const description = await up.describe({ signal: options.signal })
  const service = createService({
    id: up.service,
    info,
    ...(description.doc === undefined ? {} : { doc: description.doc }),
  })
  const doc = (spec: { doc?: string }) => (spec.doc === undefined ? {} : { doc: spec.doc })
  const callTimeout = options.callTimeout ?? 30_000
  // The caller's signal is not passed on: a session has no way to cancel a
  // call it sent, and making one per call costs a tenth of a hop.
  const callOptions = { timeout: callTimeout }
  for (const [name, spec] of Object.entries(description.functions)) {
    service.addFunction(name, doc(spec), (...args: unknown[]) => up.call(name, args, callOptions))
  }
  const subscriptions: Subscription[] = []
  const release = async () => {
    await Promise.all(subscriptions.splice(0).map((subscription) => subscription.close()))
  }
  const objects: ServiceObject[] = []
  try {
    for (const [name, spec] of Object.entries(description.events)) {
      const event = service.addEvent(name, doc(spec))
      subscriptions.push(await up.listen(name, (...args) => event.fire(...args), options))
    }
    for (const [name, spec] of Object.entries(description.objects)) {
      let object: ServiceObject | undefined
      let initial: unknown = null
      subscriptions.push(
        await up.watch(
          name,
          (value) => {
            if (object) object.set(value)
            else initial = value
          },
          options,
        ),
      )
      object = service.addObject(name, doc(spec), initial)
      objects.push(object)
    }
  } catch (error) {
    await release()
    throw error
  }
  for (const [name, spec] of Object.entries(description.channels)) {
    service.addChannel(name, doc(spec), async (channel) => {
      spliceChannels(channel, await up.openChannel(name))
    })
  }
  for (const [name, spec] of Object.entries(description.streams)) {
    service.addStream(name, doc(spec), async (stream) => {
      spliceStreams(stream, await up.openStream(name))
    })
  }
  const described: ServiceDescription = { ...description, service: service.id, info: { ...info } }
  // Introspection shows the origin's description (its schemas), not the
  // schema-less one the stand-in was defined with.
  Object.defineProperty(service, 'describe', { value: () => structuredClone(described) })
  // Each session passed on costs a circuit and a connection to the origin,
  // and each of its listeners an event crossing the links: a few callers
  // get that (the far bridge then only passes bytes on), every further
  // caller shares the stand-in's one session.
  const relayed = new Set<RelayedSession>()
  let lost = false
  const open = options.relay
  const maxRelayed = options.maxRelayed ?? 16
  if (open && maxRelayed > 0) {
    service.relay = (connection, bind) => {
      if (lost || relayed.size >= maxRelayed) return false
      const session = relaySession(connection, bind, open(), () => service.describe())
      relayed.add(session)
      session.closed.then(() => relayed.delete(session))
      options.onRelayed?.()
      return true
    }
  }
  return {
    service,
    up,
    lose: () => {
      lost = true
      for (const object of objects) object.set(null)
      for (const session of relayed) session.lose('route lost')
    },
    release,
  }
}

function spliceChannels(near: Channel, far: Channel): void {
  const pass = (to: Channel) => (message: unknown) => {
    if (!to.isClosed) to.send(message)
  }
  near.on('message', pass(far))
  far.on('message', pass(near))
  far.closed.then((info) => near.close(info.reason))
  near.closed.then((info) => far.close(info.reason))
}

// Node's pipe waits for 'drain' before reading more, and each ByteStream
// grants credit only as its reader takes bytes: the bridge holds at most
// one window per direction, whatever the two ends do.
function spliceStreams(near: ByteStream, far: ByteStream): void {
  near.pipe(far)
  far.pipe(near)
  far.on('error', (error) => near.destroy(error))
  near.on('error', (error) => far.destroy(error))
  far.on('close', () => {
    if (!near.destroyed && !far.readableEnded) near.destroy()
  })
  near.on('close', () => {
    if (!far.destroyed && !near.readableEnded) far.destroy()
  })
}
