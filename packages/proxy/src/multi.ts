import { EventEmitter } from 'node:events'
import { type DiscoveredService, matchesFilter, type ServiceFilter } from '@autobus/discovery'
import type { Connection, RequestOptions, Subscription } from '@autobus/rpc'
import { type Connector, HandlerRegistry, type ServiceDirectory } from './directory.js'

/** One service's outcome of a fanned-out call. */
export type Outcome = { ok: true; value: unknown } | { ok: false; error: Error }

/** Receives an event fired by one of the bound services. */
export type TaggedEventHandler = (source: DiscoveredService, ...args: unknown[]) => void

/** Receives an object's value on one service, with the live map of all values. */
export type TaggedWatchHandler = (
  source: DiscoveredService,
  value: unknown,
  values: ReadonlyMap<string, unknown>,
) => void

/** Events of a {@link MultiServiceProxy}. */
export type MultiServiceProxyEvents = {
  bound: [service: DiscoveredService]
  unbound: [service: DiscoveredService, reason: string]
}

/** Options for {@link createMultiServiceProxy}. */
export interface MultiServiceProxyOptions {
  directory: ServiceDirectory
  connect: Connector
  filter?: ServiceFilter
}

interface Binding {
  service: DiscoveredService
  connection: Connection
}

/**
 * Binds to every service matching a filter: calls fan out and return each
 * service's outcome by service id, events arrive tagged with the service
 * that fired them, and objects are a live map of values per service.
 */
export class MultiServiceProxy extends EventEmitter<MultiServiceProxyEvents> {
  readonly filter: ServiceFilter
  readonly #directory: ServiceDirectory
  readonly #connect: Connector
  readonly #bindings = new Map<string, Binding>()
  readonly #connecting = new Set<string>()
  readonly #listeners = new HandlerRegistry<TaggedEventHandler>()
  readonly #watchers = new HandlerRegistry<TaggedWatchHandler>()
  readonly #values = new Map<string, Map<string, unknown>>()
  readonly #abort = new AbortController()
  #closed = false

  /** @internal Use {@link createMultiServiceProxy}. */
  constructor(options: MultiServiceProxyOptions) {
    super()
    this.filter = options.filter ?? {}
    this.#directory = options.directory
    this.#connect = options.connect
    this.#directory.on('appeared', this.#onAppeared)
    this.#directory.on('disappeared', this.#onDisappeared)
    for (const service of this.#directory.snapshot(this.filter)) void this.#bind(service)
  }

  /** The services bound now, by id. */
  get services(): ReadonlyMap<string, DiscoveredService> {
    return new Map([...this.#bindings].map(([id, binding]) => [id, binding.service]))
  }

  #onAppeared = (service: DiscoveredService) => {
    if (matchesFilter(service.info, this.filter)) void this.#bind(service)
  }

  #onDisappeared = (service: DiscoveredService) => {
    this.#bindings.get(service.service)?.connection.close('service disappeared')
  }

  async #bind(service: DiscoveredService): Promise<void> {
    const id = service.service
    if (this.#closed || this.#bindings.has(id) || this.#connecting.has(id)) return
    this.#connecting.add(id)
    try {
      const connection = await this.#connect(service, { signal: this.#abort.signal }).catch(
        () => undefined,
      )
      if (!connection) return
      if (this.#closed) {
        await connection.close('proxy closed')
        return
      }
      const binding = { service, connection }
      this.#bindings.set(id, binding)
      connection.onClose((info) => this.#lost(binding, info.reason))
      await Promise.all([
        ...[...this.#listeners.names()].map((name) =>
          this.#listenOn(binding, name).catch(() => {}),
        ),
        ...[...this.#watchers.names()].map((name) => this.#watchOn(binding, name).catch(() => {})),
      ])
      this.emit('bound', service)
    } finally {
      this.#connecting.delete(id)
    }
  }

  #lost(binding: Binding, reason: string): void {
    const id = binding.service.service
    if (this.#bindings.get(id) !== binding) return
    this.#bindings.delete(id)
    for (const values of this.#values.values()) values.delete(id)
    this.emit('unbound', binding.service, reason)
  }

  #listenOn(binding: Binding, name: string): Promise<Subscription> {
    return binding.connection.listen(name, (...args) => {
      for (const handler of this.#listeners.get(name)) handler(binding.service, ...args)
    })
  }

  #watchOn(binding: Binding, name: string): Promise<Subscription> {
    return binding.connection.watch(name, (value) => {
      let values = this.#values.get(name)
      if (!values) {
        values = new Map()
        this.#values.set(name, values)
      }
      if (value === null && binding.connection.isClosed) values.delete(binding.service.service)
      else values.set(binding.service.service, value)
      for (const handler of this.#watchers.get(name)) handler(binding.service, value, values)
    })
  }

  /**
   * Calls a function on every bound service. Resolves with each service's
   * outcome by service id; never rejects for one service's failure.
   */
  async call(
    name: string,
    args: readonly unknown[] = [],
    options: RequestOptions = {},
  ): Promise<Map<string, Outcome>> {
    const bindings = [...this.#bindings.values()]
    const outcomes = await Promise.all(
      bindings.map((binding) =>
        binding.connection.call(name, args, options).then(
          (value): Outcome => ({ ok: true, value }),
          (error: Error): Outcome => ({ ok: false, error }),
        ),
      ),
    )
    return new Map(bindings.map((binding, i) => [binding.service.service, outcomes[i]!]))
  }

  /** Fire-and-forget to every bound service. Returns how many were sent. */
  notify(name: string, args: readonly unknown[] = []): number {
    let sent = 0
    for (const binding of this.#bindings.values()) {
      try {
        binding.connection.notify(name, args)
        sent++
      } catch {
        // A connection that just died is skipped; its unbound event follows.
      }
    }
    return sent
  }

  /** Listens to an event on every bound service, now and later. */
  async listen(name: string, handler: TaggedEventHandler): Promise<Subscription> {
    const first = this.#listeners.add(name, handler)
    if (first)
      await Promise.all(
        [...this.#bindings.values()].map((b) => this.#listenOn(b, name).catch(() => {})),
      )
    return this.#listeners.subscription(name, handler)
  }

  /** Watches an object on every bound service; see {@link MultiServiceProxy.values}. */
  async watch(name: string, handler: TaggedWatchHandler): Promise<Subscription> {
    const first = this.#watchers.add(name, handler)
    if (first) {
      await Promise.all(
        [...this.#bindings.values()].map((b) => this.#watchOn(b, name).catch(() => {})),
      )
    } else {
      const values = this.values(name)
      for (const [id, value] of values) {
        const binding = this.#bindings.get(id)
        if (binding) handler(binding.service, value, values)
      }
    }
    return this.#watchers.subscription(name, handler)
  }

  /** The live map of an object's values by service id (watch it first). */
  values(name: string): ReadonlyMap<string, unknown> {
    return this.#values.get(name) ?? new Map()
  }

  /** Unbinds from everything; idempotent. */
  async close(reason = 'proxy closed'): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#abort.abort()
    this.#directory.off('appeared', this.#onAppeared)
    this.#directory.off('disappeared', this.#onDisappeared)
    const bindings = [...this.#bindings.values()]
    await Promise.all(bindings.map((binding) => binding.connection.close(reason)))
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}

/**
 * Creates a proxy bound to every service matching `filter`.
 *
 * @example
 * ```ts
 * const lights = createMultiServiceProxy({ directory: discoverer, connect, filter: { type: 'light' } })
 * const outcomes = await lights.call('off')
 * for (const [id, outcome] of outcomes) console.log(id, outcome.ok)
 * ```
 */
export function createMultiServiceProxy(options: MultiServiceProxyOptions): MultiServiceProxy {
  return new MultiServiceProxy(options)
}
