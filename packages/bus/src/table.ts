import { EventEmitter } from 'node:events'
import {
  type DiscoveredService,
  type Discoverer,
  type DiscovererEvents,
  matchesFilter,
  type ServiceChange,
  type ServiceChangesOptions,
  type ServiceFilter,
} from '@autobus/discovery'
import { serviceChanges } from '@autobus/discovery/internal'

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
  changes(options: ServiceChangesOptions = {}): AsyncIterable<ServiceChange> {
    return serviceChanges(this, this.#closed.signal, options)
  }

  close(): void {
    this.#closed.abort()
  }
}
