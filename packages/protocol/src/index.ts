/**
 * The Autobus wire protocol: one TypeBox schema per message, their derived
 * TypeScript types, decoders that never throw, the error code table and the
 * protocol's constants. No I/O. The normative text is docs/protocol.md.
 *
 * @example
 * ```ts
 * import { decodeDatagram, ProtocolError } from '@autobus/protocol'
 *
 * const datagram = decodeDatagram(bytes)
 * if (datagram instanceof ProtocolError) console.warn(datagram.code)
 * else if (datagram.command === 'add') console.log(datagram.service, datagram.info)
 * ```
 *
 * @packageDocumentation
 */
export {
  BRIDGE_LINK_VERSION,
  BridgeHello,
  type BridgeLinkMessage,
  BridgeMessage,
  BridgeMessageArgs,
  type BridgeMessageName,
  BridgeRouteEntry,
  BridgeRoutes,
  decodeBridgeMessage,
  decodeNatsPresence,
  decodeNatsSegment,
  NatsPresence,
  NatsSegmentHeader,
} from './bridge.js'
export { type Clock, systemClock } from './clock.js'
export {
  DISCOVERY_PORT,
  DiscoveryDefaults,
  Limits,
  META_SERVICE_ID,
  META_SERVICE_TYPE,
  PROTOCOL_VERSION,
} from './constants.js'
export {
  AddDatagram,
  type Datagram,
  decodeDatagram,
  encodeDatagram,
  QueryDatagram,
  RemoveDatagram,
} from './discovery.js'
export {
  AutobusError,
  BusyError,
  CallTimeoutError,
  ClosedError,
  ConnectionLostError,
  ErrorCode,
  errorFromWire,
  errorToWire,
  ForbiddenError,
  InvalidArgumentsError,
  isErrorCode,
  ListenError,
  NotBoundError,
  PeerTimeoutError,
  ProtocolError,
  RefusedError,
  RemoteError,
  SlowConsumerError,
  UnknownNameError,
  UnknownServiceError,
  UnreachableError,
  UnsupportedError,
  type WireError,
} from './errors.js'
export { type JsonObject, parseJsonObject, tooDeepError } from './json.js'
export type { Closable, CloseInfo } from './lifecycle.js'
export { activeLogger, type Logger, silentLogger } from './log.js'
export {
  type BusKey,
  generateKey,
  isSealed,
  KEY_PREFIX,
  KEY_SECRET_BYTES,
  KeyRing,
  parseKey,
  parseKeys,
  readSealed,
  SEAL_MAGIC,
  SEAL_VERSION,
  type SealedParts,
  type SessionCertificate,
  SessionTls,
  sealDatagram,
  tlsCertificateClientOptions,
  tlsCertificateServerOptions,
  tlsClientOptions,
  tlsServerOptions,
  verifySealed,
} from './security.js'
export {
  type CommandName,
  Commands,
  checkResponse,
  decodeFrame,
  encodeFrame,
  Feature,
  isCommandName,
  isMessageId,
  MAX_ID_LENGTH,
  type MessageId,
  MessageType,
  type RequestBody,
  type RequestMessage,
  type ResponseBody,
  type ResponseMessage,
  ServiceDescription,
  type SessionMessage,
  SUPPORTED_FEATURES,
  WireErrorSchema,
} from './session.js'
