/**
 * Autobus RPC: define a service (functions, events, objects, channels, byte
 * streams, with TypeBox schemas and docs) and serve it; connect to a service
 * by host, port and id and use all of it. Works without discovery or a Bus.
 *
 * @example
 * ```ts
 * import Type from 'typebox'
 * import { connectService, createService, serve } from '@autobus/rpc'
 *
 * const service = createService({ info: { type: 'calculator' } })
 * service.addFunction('add', { args: [Type.Number(), Type.Number()] }, (a, b) => a + b)
 * const server = await serve([service], { port: 0 })
 *
 * const connection = await connectService({ host: '127.0.0.1', port: server.port, service: service.id })
 * console.log(await connection.call('add', [1, 2])) // 3
 * ```
 *
 * @packageDocumentation
 */
export {
  AccessAction,
  AccessControl,
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
  Channel,
  type ChannelCloseInfo,
  type ChannelEvents,
  DEFAULT_MAX_UNREAD_MESSAGES,
} from './channel.js'
export {
  bindService,
  type ChannelOptions,
  Connection,
  type ConnectServiceOptions,
  connectService,
  type EventHandler,
  type ServiceAddress,
  type Subscription,
  type WatchHandler,
} from './connection.js'
export {
  RpcServer,
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
  Service,
  type ServiceEvent,
  type ServiceObject,
  type ServiceOptions,
  type StaticArgs,
  type StreamSpec,
} from './service.js'
export type { CallContext, RequestOptions, SessionCounters, SessionLimits } from './session.js'
export { ByteStream } from './stream.js'
