import type {
  DatagramTraffic,
  DiscovererStats,
  PublisherStats,
  SealDrops,
} from '@autobus/discovery'
import {
  LATENCY_BUCKETS_MS,
  type RpcServerStats,
  type Service,
  type ServiceStats,
  serviceStats,
} from '@autobus/rpc'

/** Discovery datagrams dropped, by reason; see {@link DiscoveryMetrics}. */
export interface DiscoveryDrops {
  /** Not readable: bad JSON or an unknown command, or a sealed datagram cut short. */
  malformed: number
  /** Not sealed, on a keyed bus that does not accept unsigned datagrams. */
  unsigned: number
  /** Sealed with a key id this bus does not hold. */
  unknownKey: number
  /** Sealed, but the tag does not match (forged or altered). */
  badTag: number
  /** Sealed, with a timestamp outside the replay window. */
  outsideWindow: number
  /** Sealed, and seen before within the window. */
  replayed: number
  /** Sealed, while the replay cache was full. */
  replayCacheFull: number
  /** Answers to queries not sent: the asker or the service was answered moments ago. */
  rateLimited: number
  /** New services not listed: the table (or one host's share of it) was full. */
  overCapacity: number
  /** Goodbyes ignored: not from the service's own address. */
  ignoredRemoves: number
}

/** A bus's discovery figures, counted since it started; see {@link BusMetrics}. */
export interface DiscoveryMetrics {
  /** Datagrams received (dropped ones included) and sent; a broadcast counts once. */
  datagramsIn: number
  datagramsOut: number
  /** Bytes of those datagrams. */
  bytesIn: number
  bytesOut: number
  /** Datagrams (or answers) dropped, by reason. */
  dropped: DiscoveryDrops
  /** Services in the table now. */
  services: number
  /** Probes made, failed (the service was removed), inconclusive (tried later), put off, running now. */
  probes: number
  failedProbes: number
  inconclusiveProbes: number
  probesDeferred: number
  probesInFlight: number
  /** Other hosts announcing one of this bus's service ids. */
  conflicts: number
  /** Ids announced from a second address (the first is probed before anything changes). */
  contested: number
  /** Unverified services evicted to make room for new ones. */
  evicted: number
}

/** What a bus's key and access rules refused; see {@link BusMetrics}. */
export interface SecurityMetrics {
  /** True when the bus has a key (or certificates): sessions run over TLS, datagrams are sealed. */
  keyed: boolean
  /** Connections whose TLS handshake failed (no key, a wrong key, plaintext). */
  handshakesFailed: number
  /** Commands answered `forbidden` by the access rules. */
  requestsDenied: number
}

/** A snapshot of a bus's figures: see {@link Bus.metrics}. */
export interface BusMetrics {
  /** When the snapshot was taken (milliseconds since the epoch). */
  at: number
  /** The bus's listener and sessions: open sessions, handlers running, what was refused. */
  server: RpcServerStats
  /** Each service the bus serves (the meta-service aside). */
  services: ServiceStats[]
  /** Discovery datagrams, drops, probes and conflicts (absent when discovery is off). */
  discovery?: DiscoveryMetrics
  /** Failed handshakes and denied requests (zero without a key or access rules). */
  security: SecurityMetrics
}

/** Where a bus's discovery figures are read. @internal */
export interface DiscoverySources {
  traffic: DatagramTraffic
  discoverer: DiscovererStats
  publisher: PublisherStats
  seal: Readonly<SealDrops> | undefined
  services: number
}

/** Takes a snapshot of a bus's figures. @internal */
export function collectMetrics(
  server: RpcServerStats,
  services: Iterable<Service>,
  security: SecurityMetrics,
  discovery?: DiscoverySources,
): BusMetrics {
  return {
    at: Date.now(),
    server,
    services: [...services].map((service) => serviceStats(service)),
    ...(discovery ? { discovery: discoveryMetrics(discovery) } : {}),
    security,
  }
}

function discoveryMetrics({
  traffic,
  discoverer,
  publisher,
  seal,
  services,
}: DiscoverySources): DiscoveryMetrics {
  return {
    datagramsIn: traffic.received,
    datagramsOut: traffic.sent,
    bytesIn: traffic.bytesReceived,
    bytesOut: traffic.bytesSent,
    dropped: {
      // The publisher hears the same datagrams and counts the same bad ones.
      malformed: discoverer.malformed + (seal?.malformed ?? 0),
      unsigned: seal?.unsigned ?? 0,
      unknownKey: seal?.unknownKey ?? 0,
      badTag: seal?.badTag ?? 0,
      outsideWindow: seal?.outsideWindow ?? 0,
      replayed: seal?.replayed ?? 0,
      replayCacheFull: seal?.replayCacheFull ?? 0,
      rateLimited: publisher.suppressedAnswers,
      overCapacity: discoverer.overCapacity,
      ignoredRemoves: discoverer.ignoredRemoves,
    },
    services,
    probes: discoverer.probes,
    failedProbes: discoverer.failedProbes,
    inconclusiveProbes: discoverer.inconclusiveProbes,
    probesDeferred: discoverer.probesDeferred,
    probesInFlight: discoverer.probesInFlight,
    conflicts: publisher.conflicts,
    contested: discoverer.contested,
    evicted: discoverer.evicted,
  }
}

/** One bus's figures and the labels that tell it apart from others in one scrape. */
export interface LabelledMetrics {
  metrics: BusMetrics
  /** Added to every sample, e.g. `{ bus: 'host:4000' }`. */
  labels?: Readonly<Record<string, string>>
}

type Labels = Readonly<Record<string, string>>

const escapeLabel = (value: string) =>
  value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
const labelText = (labels: Labels) => {
  const entries = Object.entries(labels)
  if (entries.length === 0) return ''
  return `{${entries.map(([key, value]) => `${key}="${escapeLabel(value)}"`).join(',')}}`
}
const number = (value: number) =>
  value === Number.POSITIVE_INFINITY ? '+Inf' : Number.isFinite(value) ? String(value) : 'NaN'

/**
 * Renders figures in the Prometheus text exposition format (version 0.0.4):
 * one family per figure, samples labelled by service and by function, event
 * or object name.
 *
 * @example
 * ```ts
 * response.setHeader('content-type', 'text/plain; version=0.0.4')
 * response.end(renderPrometheus([{ metrics: bus.metrics() }]))
 * ```
 */
export function renderPrometheus(sources: readonly LabelledMetrics[]): string {
  const families = new Map<string, { help: string; type: string; lines: string[] }>()
  const sample = (
    name: string,
    type: 'counter' | 'gauge' | 'histogram',
    help: string,
    labels: Labels,
    value: number,
    suffix = '',
  ) => {
    let family = families.get(name)
    if (!family) {
      family = { help, type, lines: [] }
      families.set(name, family)
    }
    family.lines.push(`${name}${suffix}${labelText(labels)} ${number(value)}`)
  }
  for (const { metrics, labels = {} } of sources) {
    const server = metrics.server
    sample('autobus_sessions', 'gauge', 'Client sessions open now.', labels, server.sessions)
    sample('autobus_running_handlers', 'gauge', 'Handlers running now.', labels, server.running)
    sample(
      'autobus_connections_accepted_total',
      'counter',
      'Connections accepted.',
      labels,
      server.accepted,
    )
    sample(
      'autobus_connections_refused_total',
      'counter',
      'Connections refused by the caps.',
      labels,
      server.refusedTotal + server.refusedPerAddress,
    )
    sample('autobus_busy_total', 'counter', 'Commands answered busy.', labels, server.busy)
    sample(
      'autobus_session_received_bytes_total',
      'counter',
      'Bytes received over every session.',
      labels,
      server.bytesIn,
    )
    sample(
      'autobus_session_sent_bytes_total',
      'counter',
      'Bytes sent over every session.',
      labels,
      server.bytesOut,
    )
    sample(
      'autobus_session_queued_bytes',
      'gauge',
      'Bytes sent and not yet taken by the peers.',
      labels,
      server.bytesQueued,
    )
    // A bus of an earlier version leaves out what it did not count yet.
    for (const [code, count] of Object.entries(server.rejectedByCode ?? {}))
      sample(
        'autobus_rejected_total',
        'counter',
        'Frames and commands refused before reaching a service, by wire code.',
        { ...labels, code },
        count,
      )
    if (metrics.security) {
      sample(
        'autobus_handshakes_failed_total',
        'counter',
        'Connections whose TLS handshake failed.',
        labels,
        metrics.security.handshakesFailed,
      )
      sample(
        'autobus_requests_denied_total',
        'counter',
        'Commands answered forbidden by the access rules.',
        labels,
        metrics.security.requestsDenied,
      )
    }
    const discovery = metrics.discovery
    if (discovery) {
      sample(
        'autobus_discovery_datagrams_received_total',
        'counter',
        'Discovery datagrams received, dropped ones included.',
        labels,
        discovery.datagramsIn,
      )
      sample(
        'autobus_discovery_datagrams_sent_total',
        'counter',
        'Discovery datagrams sent (a broadcast counts once).',
        labels,
        discovery.datagramsOut,
      )
      sample(
        'autobus_discovery_received_bytes_total',
        'counter',
        'Bytes of discovery datagrams received.',
        labels,
        discovery.bytesIn,
      )
      sample(
        'autobus_discovery_sent_bytes_total',
        'counter',
        'Bytes of discovery datagrams sent.',
        labels,
        discovery.bytesOut,
      )
      for (const [reason, count] of Object.entries(discovery.dropped))
        sample(
          'autobus_discovery_dropped_total',
          'counter',
          'Discovery datagrams (or answers) dropped, by reason.',
          { ...labels, reason },
          count,
        )
      sample(
        'autobus_discovery_services',
        'gauge',
        'Services in the discovery table.',
        labels,
        discovery.services,
      )
      sample(
        'autobus_discovery_probes_total',
        'counter',
        'Liveness probes made.',
        labels,
        discovery.probes,
      )
      sample(
        'autobus_discovery_failed_probes_total',
        'counter',
        'Probes the service failed (it was removed).',
        labels,
        discovery.failedProbes,
      )
      sample(
        'autobus_discovery_conflicts_total',
        'counter',
        "Other hosts announcing one of this bus's service ids.",
        labels,
        discovery.conflicts,
      )
      sample(
        'autobus_discovery_contested_total',
        'counter',
        'Service ids announced from a second address.',
        labels,
        discovery.contested,
      )
      sample(
        'autobus_discovery_evicted_total',
        'counter',
        'Unverified services evicted to make room.',
        labels,
        discovery.evicted,
      )
    }
    for (const service of metrics.services) {
      const base = { ...labels, service: service.service }
      for (const [code, count] of Object.entries(service.rejectedByCode ?? {}))
        sample(
          'autobus_service_rejected_total',
          'counter',
          'Commands refused before any handler that name no function of the service, by wire code.',
          { ...base, code },
          count,
        )
      for (const [name, figures] of Object.entries(service.functions)) {
        const own = { ...base, function: name }
        sample('autobus_function_calls_total', 'counter', 'Calls.', own, figures.calls)
        for (const [code, count] of Object.entries(figures.rejectedByCode ?? {}))
          sample(
            'autobus_function_rejected_total',
            'counter',
            'Calls refused before the handler ran, by wire code.',
            { ...own, code },
            count,
          )
        for (const [code, count] of Object.entries(figures.errorsByCode))
          sample(
            'autobus_function_errors_total',
            'counter',
            'Calls that failed, by wire code.',
            { ...own, code },
            count,
          )
        const help = 'Time from a call reaching the handler to its result, in seconds.'
        let cumulative = 0
        figures.latency.counts.forEach((count, index) => {
          cumulative += count
          const bound = LATENCY_BUCKETS_MS[index]
          const le = bound === undefined ? '+Inf' : String(bound / 1000)
          sample(
            'autobus_function_latency_seconds',
            'histogram',
            help,
            { ...own, le },
            cumulative,
            '_bucket',
          )
        })
        sample(
          'autobus_function_latency_seconds',
          'histogram',
          help,
          own,
          figures.latency.sumMs / 1000,
          '_sum',
        )
        sample(
          'autobus_function_latency_seconds',
          'histogram',
          help,
          own,
          figures.latency.count,
          '_count',
        )
      }
      for (const [name, figures] of Object.entries(service.events)) {
        const own = { ...base, event: name }
        sample('autobus_event_fires_total', 'counter', 'Times fired.', own, figures.fires)
        sample(
          'autobus_event_deliveries_total',
          'counter',
          'Notifications sent, one per listener per fire.',
          own,
          figures.deliveries,
        )
        sample('autobus_event_listeners', 'gauge', 'Clients listening.', own, figures.listeners)
      }
      for (const [name, figures] of Object.entries(service.objects)) {
        const own = { ...base, object: name }
        sample('autobus_object_changes_total', 'counter', 'Times set.', own, figures.changes)
        sample('autobus_object_watchers', 'gauge', 'Clients watching.', own, figures.watchers)
      }
      for (const [name, figures] of Object.entries(service.channels ?? {})) {
        const own = { ...base, channel: name }
        sample('autobus_channels_open', 'gauge', 'Channels open now.', own, figures.open)
        sample('autobus_channels_opened_total', 'counter', 'Channels opened.', own, figures.opened)
        sample(
          'autobus_channel_received_messages_total',
          'counter',
          'Channel messages received from clients.',
          own,
          figures.messagesIn,
        )
        sample(
          'autobus_channel_sent_messages_total',
          'counter',
          'Channel messages sent by the service.',
          own,
          figures.messagesOut,
        )
      }
      for (const [name, figures] of Object.entries(service.streams ?? {})) {
        const own = { ...base, stream: name }
        sample('autobus_streams_open', 'gauge', 'Byte streams open now.', own, figures.open)
        sample(
          'autobus_streams_opened_total',
          'counter',
          'Byte streams opened.',
          own,
          figures.opened,
        )
        sample(
          'autobus_stream_received_bytes_total',
          'counter',
          'Stream bytes received from clients.',
          own,
          figures.bytesIn,
        )
        sample(
          'autobus_stream_sent_bytes_total',
          'counter',
          'Stream bytes sent by the service.',
          own,
          figures.bytesOut,
        )
        sample(
          'autobus_stream_blocked_seconds_total',
          'counter',
          "Time the service's stream writes waited for the window or the connection.",
          own,
          figures.blockedMs / 1000,
        )
      }
    }
  }
  const text: string[] = []
  for (const [name, family] of families) {
    text.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.type}`, ...family.lines)
  }
  return text.length === 0 ? '' : `${text.join('\n')}\n`
}
