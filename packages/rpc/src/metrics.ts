import { performance } from 'node:perf_hooks'
import { AutobusError, ErrorCode } from '@autobus/protocol'

/**
 * Upper bounds, in milliseconds, of the latency histogram's buckets (one
 * more bucket counts everything above the last). Fixed bounds keep a call's
 * cost to a few comparisons and let Prometheus add histograms of several
 * services together.
 */
export const LATENCY_BUCKETS_MS: readonly number[] = [
  0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000,
]

/** A latency histogram and the quantiles read from it. */
export interface LatencyStats {
  /** Calls measured. */
  count: number
  /** Sum of their latencies, in milliseconds. */
  sumMs: number
  /** Calls per bucket: `counts[i]` took at most `LATENCY_BUCKETS_MS[i]`, the last any longer. */
  counts: number[]
  /** Quantiles in milliseconds, each the upper bound of the bucket it falls in (null before any call). */
  p50: number | null
  p90: number | null
  p99: number | null
}

/** Figures of one function. */
export interface FunctionStats {
  /** Calls that reached the handler. */
  calls: number
  /**
   * Calls refused before the handler ran, by wire code: `invalid_arguments`,
   * `forbidden` (access rules), … Not counted in `calls`.
   */
  rejectedByCode: Record<string, number>
  /** Calls that ended in an error (thrown, rejected or a result that failed its schema). */
  errors: number
  /** Errors by wire code (`remote_error` for any error that is not an Autobus one). */
  errorsByCode: Record<string, number>
  latency: LatencyStats
}

/** Figures of one event. */
export interface EventStats {
  /** Times fired. */
  fires: number
  /** Notifications sent: one per listener per fire. */
  deliveries: number
  /** Clients listening now. */
  listeners: number
}

/** Figures of one object. */
export interface ObjectStats {
  /** Times set. */
  changes: number
  /** Clients watching now. */
  watchers: number
}

/** Figures of one channel (all the channels opened under one name). */
export interface ChannelStats {
  /** Channels opened by clients. */
  opened: number
  /** Channels open now. */
  open: number
  /** Messages received from clients. */
  messagesIn: number
  /** Messages the service sent. */
  messagesOut: number
}

/** Figures of one byte stream (all the streams opened under one name). */
export interface StreamStats {
  /** Streams opened by clients. */
  opened: number
  /** Streams open now. */
  open: number
  /** Bytes received from clients. */
  bytesIn: number
  /** Bytes the service sent. */
  bytesOut: number
  /**
   * Time the service's writes spent waiting, in milliseconds: for the
   * client's window (credit) and for the connection to drain.
   */
  blockedMs: number
}

/** Every figure of one service, counted since it was created. */
export interface ServiceStats {
  service: string
  functions: Record<string, FunctionStats>
  events: Record<string, EventStats>
  objects: Record<string, ObjectStats>
  channels: Record<string, ChannelStats>
  streams: Record<string, StreamStats>
  /**
   * Calls refused before any handler that name no function of the service
   * (`unknown_name`), and other commands refused by the access rules, by wire code.
   */
  rejectedByCode: Record<string, number>
}

class Histogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0)
  count = 0
  sumMs = 0

  observe(ms: number): void {
    let index = 0
    while (index < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[index]!) index++
    this.counts[index]!++
    this.count++
    this.sumMs += ms
  }

  quantile(q: number): number | null {
    if (this.count === 0) return null
    const rank = Math.ceil(q * this.count)
    let seen = 0
    for (let index = 0; index < this.counts.length; index++) {
      seen += this.counts[index]!
      if (seen >= rank) return LATENCY_BUCKETS_MS[index] ?? Number.POSITIVE_INFINITY
    }
    return Number.POSITIVE_INFINITY
  }

  snapshot(): LatencyStats {
    return {
      count: this.count,
      sumMs: this.sumMs,
      counts: [...this.counts],
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
    }
  }
}

const codeOf = (error: unknown) =>
  error instanceof AutobusError ? error.code : ErrorCode.RemoteError
const bump = (counts: Map<string, number>, key: string) =>
  counts.set(key, (counts.get(key) ?? 0) + 1)

/** The counters of one function. @internal */
export class FunctionCounter {
  calls = 0
  errors = 0
  readonly errorsByCode = new Map<string, number>()
  readonly rejectedByCode = new Map<string, number>()
  readonly latency = new Histogram()

  /** Counts one call that took `ms` and ended with `error` if it failed. */
  record(ms: number, failed: boolean, error?: unknown): void {
    this.calls++
    this.latency.observe(ms)
    if (!failed) return
    this.errors++
    bump(this.errorsByCode, codeOf(error))
  }

  snapshot(): FunctionStats {
    return {
      calls: this.calls,
      errors: this.errors,
      errorsByCode: Object.fromEntries(this.errorsByCode),
      rejectedByCode: Object.fromEntries(this.rejectedByCode),
      latency: this.latency.snapshot(),
    }
  }
}

/**
 * Wraps a function's handler so that every call is counted and timed: a
 * counter bump and two clock reads, cheap enough to leave on. @internal
 */
export function measured<H extends (this: any, ...args: any[]) => unknown>(
  counter: FunctionCounter,
  handler: H,
): H {
  return function (this: unknown, ...args: unknown[]) {
    const started = performance.now()
    let result: unknown
    try {
      result = handler.apply(this, args)
    } catch (error) {
      counter.record(performance.now() - started, true, error)
      throw error
    }
    if (result instanceof Promise) {
      result.then(
        () => counter.record(performance.now() - started, false),
        (error: unknown) => counter.record(performance.now() - started, true, error),
      )
    } else {
      counter.record(performance.now() - started, false)
    }
    return result
  } as H
}

/** The counters of the channels (or streams) of one name. @internal */
export class FlowCounter {
  opened = 0
  open = 0
  messagesIn = 0
  messagesOut = 0
  bytesIn = 0
  bytesOut = 0
  blockedMs = 0
}

/** What a channel or stream needs to be counted: its close. @internal */
interface Metered {
  meter: FlowCounter | undefined
  once(event: 'close', listener: () => void): unknown
}

/**
 * A service's counters, kept by the service itself so that they cost
 * nothing to look up on the hot path. @internal
 */
export class ServiceMetrics {
  readonly functions = new Map<string, FunctionCounter>()
  readonly fires = new Map<string, { fires: number; deliveries: number }>()
  readonly changes = new Map<string, number>()
  readonly channels = new Map<string, FlowCounter>()
  readonly streams = new Map<string, FlowCounter>()
  readonly rejectedByCode = new Map<string, number>()

  /**
   * Counts a command refused before its handler: against the function it
   * names when there is one, else against the service.
   */
  rejected(functionName: string | undefined, error: unknown): void {
    const counter = functionName === undefined ? undefined : this.functions.get(functionName)
    bump(counter ? counter.rejectedByCode : this.rejectedByCode, codeOf(error))
  }

  /** Counts a channel or stream opened by a client until it closes. */
  opened(kind: 'channel' | 'stream', name: string, flow: Metered): void {
    const counters = kind === 'channel' ? this.channels : this.streams
    let meter = counters.get(name)
    if (!meter) {
      meter = new FlowCounter()
      counters.set(name, meter)
    }
    const counted = meter
    counted.opened++
    counted.open++
    flow.meter = counted
    flow.once('close', () => counted.open--)
  }

  /** The counter of one function, made on first use. */
  function(name: string): FunctionCounter {
    let counter = this.functions.get(name)
    if (!counter) {
      counter = new FunctionCounter()
      this.functions.set(name, counter)
    }
    return counter
  }

  /** Counts one fire of an event delivered to `listeners` clients. */
  fired(name: string, listeners: number): void {
    const counts = this.fires.get(name)
    if (counts) {
      counts.fires++
      counts.deliveries += listeners
    } else this.fires.set(name, { fires: 1, deliveries: listeners })
  }

  /** Counts one change of an object. */
  changed(name: string): void {
    this.changes.set(name, (this.changes.get(name) ?? 0) + 1)
  }
}

/** What {@link serviceStats} reads from a service. @internal */
export interface MeasuredService {
  readonly id: string
  readonly metrics: ServiceMetrics
  readonly functions: ReadonlyMap<string, unknown>
  readonly events: ReadonlyMap<string, { listeners: ReadonlySet<unknown> }>
  readonly objects: ReadonlyMap<string, { watchers: ReadonlySet<unknown> }>
  readonly channels: ReadonlyMap<string, unknown>
  readonly streams: ReadonlyMap<string, unknown>
}

/** A snapshot of a service's figures; every function, event and object is listed, counted or not. */
export function serviceStats(service: MeasuredService): ServiceStats {
  const metrics = service.metrics
  const functions: Record<string, FunctionStats> = {}
  for (const name of service.functions.keys())
    functions[name] = (metrics.functions.get(name) ?? new FunctionCounter()).snapshot()
  const events: Record<string, EventStats> = {}
  for (const [name, entry] of service.events) {
    const counts = metrics.fires.get(name)
    events[name] = {
      fires: counts?.fires ?? 0,
      deliveries: counts?.deliveries ?? 0,
      listeners: entry.listeners.size,
    }
  }
  const objects: Record<string, ObjectStats> = {}
  for (const [name, entry] of service.objects)
    objects[name] = { changes: metrics.changes.get(name) ?? 0, watchers: entry.watchers.size }
  const channels: Record<string, ChannelStats> = {}
  for (const name of service.channels.keys()) {
    const meter = metrics.channels.get(name) ?? new FlowCounter()
    channels[name] = {
      opened: meter.opened,
      open: meter.open,
      messagesIn: meter.messagesIn,
      messagesOut: meter.messagesOut,
    }
  }
  const streams: Record<string, StreamStats> = {}
  for (const name of service.streams.keys()) {
    const meter = metrics.streams.get(name) ?? new FlowCounter()
    streams[name] = {
      opened: meter.opened,
      open: meter.open,
      bytesIn: meter.bytesIn,
      bytesOut: meter.bytesOut,
      blockedMs: meter.blockedMs,
    }
  }
  return {
    service: service.id,
    functions,
    events,
    objects,
    channels,
    streams,
    rejectedByCode: Object.fromEntries(metrics.rejectedByCode),
  }
}
