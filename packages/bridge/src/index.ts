/**
 * Autobus bridges: join buses (broadcast domains) through links between
 * bridges, in any topology, without loops. A bridge tells its peers which
 * services its bus can reach and publishes on its bus a stand-in for every
 * service it learns of: calls, errors, events, objects, channels, byte
 * streams and introspection all cross.
 *
 * @example
 * ```ts
 * import { createBus } from '@autobus/bus'
 * import { createBridge } from '@autobus/bridge'
 *
 * const bus = await createBus()
 * const bridge = createBridge({ bus, connect: ['tcp://10.0.1.2:7010'] })
 * await bridge.ready
 * ```
 *
 * @packageDocumentation
 */
export { formatLinkAddress, type LinkAddress, parseLinkAddress } from './address.js'
export {
  BRIDGE_MARKER_KEY,
  type Bridge,
  BridgedKeys,
  type BridgeOptions,
  type BridgeRoute,
  type BridgeStats,
  createBridge,
  type LinkChange,
  type LinkState,
} from './bridge.js'
export type { LinkCounters, LinkTimings } from './link.js'
export type { NatsBridgeOptions } from './nats.js'
export type { NatsLinkLimits } from './nats-link.js'
