/** UDP port every discovery datagram is sent to. */
export const DISCOVERY_PORT = 52722

/** Service id of the meta-service every bus serves. */
export const META_SERVICE_ID = 'autobus'

/** Info `type` of the meta-service. */
export const META_SERVICE_TYPE = 'autobus.details'

/** Protocol revision this implementation speaks; sent at bind. */
export const PROTOCOL_VERSION = 3

/** Default discovery timings (ms) and rates. See docs/protocol.md §2.4–§2.6. */
export const DiscoveryDefaults = {
  /** Delays after start at which a discoverer sends its query (§2.5.1). */
  querySchedule: [0, 200, 1_000, 3_000, 7_000] as readonly number[],
  /** Mean interval between periodic announcements of one service. */
  announceInterval: 10_000,
  /** Each interval is drawn uniformly from interval × (1 ± jitter). */
  announceJitter: 0.25,
  /** Delay before a newly published service is first announced. */
  holdOff: 1_000,
  /** Smallest and largest delay before answering a query (few services). */
  answerDelayMin: 20,
  answerDelayMax: 120,
  /** The answer window grows by this much per service beyond the tenth. */
  answerDelayPerService: 2,
  /** Goodbye (remove) datagrams sent when a service goes away, and the gap. */
  goodbyeCount: 3,
  goodbyeGap: 20,
  /** A service not heard from for this many intervals is probed. */
  expiryIntervals: 2.5,
  /** How long a liveness probe may take before it counts as failed. */
  probeTimeout: 3_000,
  /** How often the network interfaces are scanned for changes. */
  interfaceRescan: 5_000,
  /** Longest announced `interval` a discoverer believes; longer ones are clamped. */
  maxInterval: 60_000,
  /** A service answers one asker address at most once per this period. */
  answerInterval: 1_000,
  /** Unicast answer bytes an asker address may receive before it has sent anything more. */
  answerBurst: 8_192,
  /** Unicast answer bytes earned per byte of query received from that address. */
  answerCredit: 1.5,
  /** Asker addresses a publisher keeps answer budgets for, and for how long after their last query. */
  maxAskers: 1_024,
  askerMemory: 10_000,
  /** Liveness probes in flight per discoverer, in total and to one host. */
  maxProbes: 32,
  maxProbesPerHost: 4,
} as const

/** Default limits. See docs/protocol.md §4. */
export const Limits = {
  /** Largest discovery datagram a peer sends, in bytes. */
  maxDatagram: 8_192,
  /** Largest discovery datagram a peer accepts, in bytes (original peers read this much). */
  maxReceivedDatagram: 16_384,
  /** Largest session frame (one JSON line, newline excluded), in bytes. */
  maxFrame: 4 * 1024 * 1024,
  /** Deepest nesting of arrays and objects in any message. */
  maxDepth: 64,
  /** Services a discoverer keeps at once. */
  maxServices: 4_096,
  /** Services a discoverer keeps from one source address. */
  maxServicesPerHost: 1_024,
  /** Connections a server keeps open at once. */
  maxConnections: 4_096,
  /** Connections a server keeps open at once from one remote address. */
  maxConnectionsPerAddress: 256,
  /**
   * Commands awaiting a response on one connection, per direction: a client
   * sends no more, a service answers more with `busy` without running them.
   */
  maxPendingCalls: 10_000,
  /** Watches, listens, channels and streams open on one connection, each. */
  maxSubscriptions: 1_024,
  /** Bytes queued for a peer that is not reading before it is dropped. */
  maxQueuedBytes: 8 * 1024 * 1024,
  /** How long a new connection may take to send `bind`. */
  bindTimeout: 10_000,
  /** Idle time after which a heartbeat `ping` is sent. */
  heartbeatInterval: 5_000,
  /** Silence after which a peer that negotiated heartbeats is declared dead. */
  heartbeatTimeout: 15_000,
  /** Default time a call waits for its response. */
  callTimeout: 30_000,
  /** Default credit window of a byte stream, in bytes. */
  streamWindow: 2 * 1024 * 1024,
} as const
