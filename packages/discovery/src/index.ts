/**
 * Autobus discovery: services announce themselves by UDP broadcast and are
 * found with no server and no configuration. A {@link Publisher} announces
 * local services; a {@link Discoverer} keeps the table of services on the
 * network. Each works alone. On a network that drops broadcast, list
 * unicast `peers` (`['10.0.0.5', 'host-b:52722']`).
 *
 * @example
 * ```ts
 * import { createDiscoverer } from '@autobus/discovery'
 *
 * await using discoverer = await createDiscoverer()
 * await new Promise((resolve) => setTimeout(resolve, 500))
 * console.table(discoverer.snapshot({ type: 'speaker' }))
 * ```
 *
 * @packageDocumentation
 */
export type { ServiceChangesOptions, ServiceEventSource } from './changes.js'
export { type Clock, type Random, systemClock } from './clock.js'
export { type CountedNetwork, countedNetwork, type DatagramTraffic } from './counted.js'
export {
  type AppearCause,
  createDiscoverer,
  type DisappearCause,
  type DiscoveredService,
  type Discoverer,
  type DiscovererEvents,
  type DiscovererOptions,
  type DiscovererStats,
  type DiscovererTimings,
  type ServiceChange,
  type ServiceHeard,
} from './discoverer.js'
export {
  absent,
  type FilterValue,
  type Matcher,
  matchesFilter,
  notEqual,
  oneOf,
  present,
  type ServiceFilter,
} from './filter.js'
export {
  broadcastAddresses,
  type DatagramHandler,
  type DatagramSource,
  type DiscoveryLink,
  type DiscoveryNetwork,
  type NetworkFaults,
  type UdpNetworkOptions,
  udpNetwork,
} from './network.js'
export {
  type PeerAddress,
  type PeerOptions,
  type PeerResolver,
  parsePeer,
  parsePeerList,
  sharedNetwork,
} from './peers.js'
export { keyedProbe, type Probe, type ProbeOptions, probeService } from './probe.js'
export {
  createPublisher,
  type Publication,
  type Published,
  type Publisher,
  type PublisherEvents,
  type PublisherLimits,
  type PublisherOptions,
  type PublisherStats,
  type PublisherTimings,
  type ServiceConflict,
} from './publisher.js'
export {
  type SealDrops,
  type SealedNetwork,
  type SealOptions,
  sealedNetwork,
} from './seal.js'
