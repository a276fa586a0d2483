import { EventEmitter, on } from 'node:events'
import type {
  AppearCause,
  DisappearCause,
  DiscoveredService,
  DiscovererEvents,
  ServiceChange,
} from './discoverer.js'
import { matchesFilter, type ServiceFilter } from './filter.js'

/** Anything that emits the discoverer's events. */
export interface ServiceEventSource {
  on<K extends keyof DiscovererEvents>(
    event: K,
    listener: (...args: DiscovererEvents[K]) => void,
  ): unknown
  off<K extends keyof DiscovererEvents>(
    event: K,
    listener: (...args: DiscovererEvents[K]) => void,
  ): unknown
}

/**
 * The events of `source` as an async iterable of changes, ending when
 * `closed` or `options.signal` aborts. A restart (same id, new port or info)
 * is a `down` then an `up`, both marked `restart: true`; through a filter,
 * only the side that matches.
 */
export async function* serviceChanges(
  source: ServiceEventSource,
  closed: AbortSignal,
  options: { signal?: AbortSignal | undefined; filter?: ServiceFilter | undefined } = {},
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
  try {
    for await (const [change] of on(relay, 'change', { signal })) yield change as ServiceChange
  } catch (error) {
    if (!signal.aborted) throw error
  } finally {
    source.off('appeared', up)
    source.off('disappeared', down)
  }
}
