/**
 * Autobus RPC: define a service (functions, events, objects, channels, byte
 * streams, with TypeBox schemas and docs) and serve it; connect to a service
 * by host, port and id and use all of it. Works without discovery or a Bus.
 *
 * @example
 * ```ts
 * import Type from 'typebox'
 * import { connectService, createService, defineContract, serve } from '@autobus/rpc'
 *
 * const calculator = defineContract({
 *   functions: { add: { args: [Type.Number(), Type.Number()], result: Type.Number() } },
 * })
 * const service = createService(calculator, { functions: { add: (a, b) => a + b } })
 * const server = await serve([service], { port: 0 })
 *
 * const address = { host: '127.0.0.1', port: server.port, service: service.id }
 * const connection = await connectService(address, { contract: calculator })
 * const sum: number = await connection.call('add', [1, 2]) // 3
 * ```
 *
 * @packageDocumentation
 */
export {
  AccessAction,
  type AccessControl,
  type AccessControlEvents,
  type AccessControlOptions,
  AccessPolicy,
  type AccessRequest,
  AccessRule,
  type Asker,
  createAccessControl,
  parseAccessPolicy,
} from './access.js'
export {
  type Channel,
  type ChannelCloseInfo,
  type ChannelEvents,
  DEFAULT_MAX_UNREAD_MESSAGES,
} from './channel.js'
export {
  bindService,
  type ChannelOptions,
  type Connection,
  type ConnectServiceOptions,
  connectService,
  type EventHandler,
  type ServiceAddress,
  type Subscription,
  type WatchHandler,
} from './connection.js'
export {
  type CallArgs,
  type CallRest,
  type CallResult,
  type ChannelMessage,
  type ChannelName,
  type ChannelReply,
  type ClientChannel,
  type Contract,
  type ContractChannel,
  type ContractEvent,
  type ContractFunction,
  type ContractStream,
  defineContract,
  type EventArgs,
  type EventName,
  type FunctionHandler,
  type FunctionName,
  type Implementation,
  type ObjectName,
  type ObjectValue,
  type ServiceChannel,
  type StaticArgs,
  type StreamName,
} from './contract.js'
export {
  type ChannelStats,
  type EventStats,
  type FunctionStats,
  LATENCY_BUCKETS_MS,
  type LatencyStats,
  type ObjectStats,
  type ServiceStats,
  type StreamStats,
  serviceStats,
} from './metrics.js'
export {
  type RpcServer,
  type RpcServerStats,
  type ServeOptions,
  SUPPORTED_FEATURES,
  serve,
} from './server.js'
export {
  type ChannelSpec,
  createService,
  type EventSpec,
  type FunctionSpec,
  newServiceId,
  type ObjectSpec,
  type Service,
  type ServiceEvent,
  type ServiceObject,
  type ServiceOptions,
  type SessionRelay,
  type StreamSpec,
} from './service.js'
export type { CallContext, RequestOptions, SessionCounters, SessionLimits } from './session.js'
export type { ByteStream } from './stream.js'
