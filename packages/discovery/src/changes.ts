import { EventEmitter, on } from 'node:events'
import type {
  AppearCause,
  DisappearCause,
  DiscoveredService,
  DiscovererEvents,
  ServiceChange,
} from './discoverer.js'
import { matchesFilter, type ServiceFilter } from './filter.js'

/** Anything that emits the discoverer's events and lists the services it knows. */
export interface ServiceEventSource {
  snapshot(filter?: ServiceFilter): DiscoveredService[]
  on<K extends keyof DiscovererEvents>(
    event: K,
    listener: (...args: DiscovererEvents[K]) => void,
  ): unknown
  off<K extends keyof DiscovererEvents>(
    event: K,
    listener: (...args: DiscovererEvents[K]) => void,
  ): unknown
}

/** Options of a `changes()` iterable. */
export interface ServiceChangesOptions {
  /** Ends the iterable. */
  signal?: AbortSignal | undefined
  /** Only services whose info matches. */
  filter?: ServiceFilter | undefined
  /** First an `up` for every (matching) service already known (default false). */
  replay?: boolean | undefined
}

/**
 * The events of `source` as an async iterable of changes, ending when
 * `closed` or `options.signal` aborts. A restart (same id, new port or info)
 * is a `down` then an `up`, both marked `restart: true`; through a filter,
 * only the side that matches. With `replay`, the services known when it
 * starts come first, and nothing that happens meanwhile is missed. The
 * discoverer's `changes()` is this.
 */
export async function* serviceChanges(
  source: ServiceEventSource,
  closed: AbortSignal,
  options: ServiceChangesOptions = {},
): AsyncIterable<ServiceChange> {
  const signal = options.signal ? AbortSignal.any([options.signal, closed]) : closed
  const filter = options.filter
  const keep = (service: DiscoveredService) => !filter || matchesFilter(service.info, filter)
  const relay = new EventEmitter<{ change: [ServiceChange] }>()
  const up = (service: DiscoveredService, cause: AppearCause) => {
    if (!keep(service)) return
    relay.emit(
      'change',
      cause === 'changed' ? { type: 'up', service, restart: true } : { type: 'up', service },
    )
  }
  const down = (service: DiscoveredService, cause: DisappearCause) => {
    if (!keep(service)) return
    relay.emit(
      'change',
      cause === 'changed' ? { type: 'down', service, restart: true } : { type: 'down', service },
    )
  }
  source.on('appeared', up)
  source.on('disappeared', down)
  // Listening before the snapshot is read: a change during the replay is
  // queued behind it, not lost.
  const events = on(relay, 'change', { signal })
  try {
    if (options.replay && !signal.aborted)
      for (const service of source.snapshot(filter)) yield { type: 'up', service }
    for await (const [change] of events) yield change as ServiceChange
  } catch (error) {
    if (!signal.aborted) throw error
  } finally {
    source.off('appeared', up)
    source.off('disappeared', down)
  }
}
