/**
 * Autobus proxies. A single-service proxy binds to one service matching a
 * filter and rebinds as services come and go, with the interface of a
 * Connection; a multi-service proxy binds to every match and fans out.
 * They take their services from any {@link ServiceDirectory} (a Discoverer
 * or a Bus) and connect through a {@link Connector}.
 *
 * @example
 * ```ts
 * import { createSingleServiceProxy } from '@autobus/proxy'
 * import { connectService } from '@autobus/rpc'
 *
 * const proxy = createSingleServiceProxy({
 *   directory: discoverer,
 *   connect: (service, options) => connectService(service, options),
 *   filter: { type: 'thermometer' },
 * })
 * await proxy.watch('temperature', (value) => console.log(value))
 * ```
 *
 * @packageDocumentation
 */
export { createDeadline, type Deadline } from './deadline.js'
export type { Connector, ServiceDirectory } from './directory.js'
export {
  createMultiServiceProxy,
  type MultiServiceProxy,
  type MultiServiceProxyEvents,
  type MultiServiceProxyOptions,
  type Outcome,
  type TaggedEventHandler,
  type TaggedWatchHandler,
} from './multi.js'
export {
  createSingleServiceProxy,
  type ProxyRequestOptions,
  type SingleServiceProxy,
  type SingleServiceProxyEvents,
  type SingleServiceProxyOptions,
} from './single.js'
