import { EventEmitter, on } from 'node:events'
import {
  type AppearCause,
  type DisappearCause,
  type DiscoveredService,
  type Discoverer,
  type DiscovererEvents,
  matchesFilter,
  type ServiceChange,
  type ServiceChangesOptions,
  type ServiceFilter,
} from '@autobus/discovery'

/**
 * The services a bus knows: its own, at once, and those discovered on the
 * network. One entry per service id; a discovered copy of a local service
 * is ignored.
 * @internal
 */
export class ServiceTable extends EventEmitter<DiscovererEvents> {
  readonly #local = new Map<string, DiscoveredService>()
  readonly #remote = new Map<string, DiscoveredService>()
  readonly #closed = new AbortController()

  attach(discoverer: Discoverer): void {
    discoverer.on('appeared', (service, cause) => {
      if (this.#local.has(service.service)) return
      this.#remote.set(service.service, service)
      this.emit('appeared', service, cause)
    })
    discoverer.on('disappeared', (service, cause) => {
      if (this.#remote.get(service.service) !== service) return
      this.#remote.delete(service.service)
      this.emit('disappeared', service, cause)
    })
    discoverer.on('changed', (service, previous) => {
      if (this.#remote.get(service.service) === service) this.emit('changed', service, previous)
    })
  }

  addLocal(service: DiscoveredService): void {
    const shadowed = this.#remote.get(service.service)
    if (shadowed) {
      this.#remote.delete(service.service)
      this.emit('disappeared', shadowed, 'goodbye')
    }
    this.#local.set(service.service, service)
    this.emit('appeared', service, 'new')
  }

  removeLocal(id: string): void {
    const service = this.#local.get(id)
    if (!service) return
    this.#local.delete(id)
    this.emit('disappeared', service, 'goodbye')
  }

  /** Services known now, this bus's and the network's. */
  get size(): number {
    return this.#local.size + this.#remote.size
  }

  get(id: string): DiscoveredService | undefined {
    return this.#local.get(id) ?? this.#remote.get(id)
  }

  snapshot(filter?: ServiceFilter): DiscoveredService[] {
    const all = [...this.#local.values(), ...this.#remote.values()]
    return filter ? all.filter((service) => matchesFilter(service.info, filter)) : all
  }

  /**
   * The table's events as changes, the discoverer's `changes()` semantics
   * over local and remote services alike: a restart is a `down` then an `up`
   * marked `restart`; with `replay`, the services known when it starts come
   * first and nothing that happens meanwhile is missed.
   */
  async *changes(options: ServiceChangesOptions = {}): AsyncIterable<ServiceChange> {
    const closed = this.#closed.signal
    const signal = options.signal ? AbortSignal.any([options.signal, closed]) : closed
    const filter = options.filter
    const keep = (service: DiscoveredService) => !filter || matchesFilter(service.info, filter)
    const relay = new EventEmitter<{ change: [ServiceChange] }>()
    const up = (service: DiscoveredService, cause: AppearCause) => {
      if (!keep(service)) return
      relay.emit(
        'change',
        cause === 'changed' ? { type: 'up', service, restart: true } : { type: 'up', service },
      )
    }
    const down = (service: DiscoveredService, cause: DisappearCause) => {
      if (!keep(service)) return
      relay.emit(
        'change',
        cause === 'changed' ? { type: 'down', service, restart: true } : { type: 'down', service },
      )
    }
    this.on('appeared', up)
    this.on('disappeared', down)
    // Listening before the snapshot is read: a change during the replay is
    // queued behind it, not lost.
    const events = on(relay, 'change', { signal })
    try {
      if (options.replay && !signal.aborted)
        for (const service of this.snapshot(filter)) yield { type: 'up', service }
      for await (const [change] of events) yield change as ServiceChange
    } catch (error) {
      if (!signal.aborted) throw error
    } finally {
      this.off('appeared', up)
      this.off('disappeared', down)
    }
  }

  close(): void {
    this.#closed.abort()
  }
}
