import {
  LATENCY_BUCKETS_MS,
  type RpcServerStats,
  type Service,
  type ServiceStats,
  serviceStats,
} from '@autobus/rpc'

/** A snapshot of a bus's figures: see {@link Bus.metrics}. */
export interface BusMetrics {
  /** When the snapshot was taken (milliseconds since the epoch). */
  at: number
  /** The bus's listener and sessions: open sessions, handlers running, what was refused. */
  server: RpcServerStats
  /** Each service the bus serves (the meta-service aside). */
  services: ServiceStats[]
}

/** Takes a snapshot of a bus's figures. @internal */
export function collectMetrics(server: RpcServerStats, services: Iterable<Service>): BusMetrics {
  return { at: Date.now(), server, services: [...services].map((service) => serviceStats(service)) }
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
    for (const service of metrics.services) {
      const base = { ...labels, service: service.service }
      for (const [name, figures] of Object.entries(service.functions)) {
        const own = { ...base, function: name }
        sample('autobus_function_calls_total', 'counter', 'Calls.', own, figures.calls)
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
    }
  }
  const text: string[] = []
  for (const [name, family] of families) {
    text.push(`# HELP ${name} ${family.help}`, `# TYPE ${name} ${family.type}`, ...family.lines)
  }
  return text.length === 0 ? '' : `${text.join('\n')}\n`
}
