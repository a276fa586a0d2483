/**
 * Autobus: a serverless service bus. Programs on a network publish services
 * and find and use each other's services with no central server and no
 * configuration. One {@link Bus} per program.
 *
 * @example
 * ```ts
 * import { createBus, Type } from '@autobus/bus'
 *
 * await using bus = await createBus()
 * const service = bus.createService({ info: { type: 'greeter' } })
 * service.addFunction('hello', { args: [Type.String()] }, (name) => `Hello, ${name}!`)
 * bus.publish(service)
 *
 * const greeter = bus.singleServiceProxy({ type: 'greeter' })
 * console.log(await greeter.call('hello', ['world'])) // Hello, world!
 * ```
 *
 * @packageDocumentation
 */

export {
  absent,
  type DiscoveredService,
  matchesFilter,
  notEqual,
  oneOf,
  present,
  type ServiceChange,
  type ServiceFilter,
  type ServiceHeard,
} from '@autobus/discovery'
export {
  AutobusError,
  type BusKey,
  BusyError,
  CallTimeoutError,
  ClosedError,
  ConnectionLostError,
  DISCOVERY_PORT,
  ErrorCode,
  ForbiddenError,
  generateKey,
  InvalidArgumentsError,
  KeyRing,
  ListenError,
  type Logger,
  META_SERVICE_ID,
  NotBoundError,
  PeerTimeoutError,
  ProtocolError,
  parseKey,
  parseKeys,
  RefusedError,
  RemoteError,
  ServiceDescription,
  SlowConsumerError,
  UnknownNameError,
  UnknownServiceError,
  UnreachableError,
  UnsupportedError,
} from '@autobus/protocol'
export type { MultiServiceProxy, Outcome, SingleServiceProxy } from '@autobus/proxy'
export {
  type AccessControl,
  AccessPolicy,
  AccessRule,
  type ByteStream,
  type CallArgs,
  type CallResult,
  type Channel,
  type ChannelMessage,
  type ChannelReply,
  type ChannelStats,
  type ClientChannel,
  type Connection,
  type Contract,
  createAccessControl,
  defineContract,
  type EventArgs,
  type EventStats,
  type FunctionStats,
  type Implementation,
  LATENCY_BUCKETS_MS,
  type LatencyStats,
  type ObjectStats,
  type ObjectValue,
  type Service,
  type ServiceChannel,
  type ServiceEvent,
  type ServiceObject,
  type ServiceStats,
  type StreamStats,
  type Subscription,
} from '@autobus/rpc'
export { default as Type } from 'typebox'
export {
  type Bus,
  type BusOptions,
  type BusSecurityStats,
  createBus,
  type Publication,
  type ServiceTarget,
} from './bus.js'
export {
  type BusMetrics,
  type DiscoveryDrops,
  type DiscoveryMetrics,
  type LabelledMetrics,
  renderPrometheus,
  type SecurityMetrics,
} from './metrics.js'
export { type MetricsServer, type MetricsServerOptions, serveMetrics } from './metrics-server.js'
