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
 * `closed` or `options.signal` aborts. A change of info is one "changed" (seen through a filter,
 * an "up" or "down" when only one side matches), not a down and an up.
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
    if (cause !== 'changed' && keep(service)) relay.emit('change', { type: 'up', service })
  }
  const down = (service: DiscoveredService, cause: DisappearCause) => {
    if (cause !== 'changed' && keep(service)) relay.emit('change', { type: 'down', service })
  }
  const changed = (service: DiscoveredService, previous: DiscoveredService) => {
    const now = keep(service)
    const before = keep(previous)
    if (now && before) relay.emit('change', { type: 'changed', service, previous })
    else if (now) relay.emit('change', { type: 'up', service })
    else if (before) relay.emit('change', { type: 'down', service: previous })
  }
  source.on('appeared', up)
  source.on('disappeared', down)
  source.on('changed', changed)
  try {
    for await (const [change] of on(relay, 'change', { signal })) yield change as ServiceChange
  } catch (error) {
    if (!signal.aborted) throw error
  } finally {
    source.off('appeared', up)
    source.off('disappeared', down)
    source.off('changed', changed)
  }
}
