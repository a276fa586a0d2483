import type { DiscoveredService, DiscovererEvents, ServiceFilter } from '@autobus/discovery'
import type { Connection } from '@autobus/rpc'

/**
 * Where proxies find services: a Discoverer, a Bus, or anything with the
 * same events and snapshot.
 */
export interface ServiceDirectory {
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

/** How proxies open a connection to a service. */
export type Connector = (
  service: DiscoveredService,
  options: { signal?: AbortSignal },
) => Promise<Connection>
