import type { DiscoveredService, ServiceEventSource, ServiceFilter } from '@autobus/discovery'
import type { Connection, Subscription } from '@autobus/rpc'

/**
 * Where proxies find services: a Discoverer, a Bus, or anything with the
 * same events and snapshot.
 */
export interface ServiceDirectory extends ServiceEventSource {
  snapshot(filter?: ServiceFilter): DiscoveredService[]
}

/** How proxies open a connection to a service. */
export type Connector = (
  service: DiscoveredService,
  options: { signal?: AbortSignal },
) => Promise<Connection>

/** Handlers by name, shared by the proxies' listens and watches. @internal */
export class HandlerRegistry<H> {
  readonly #handlers = new Map<string, Set<H>>()

  names(): IterableIterator<string> {
    return this.#handlers.keys()
  }

  get(name: string): readonly H[] {
    return [...(this.#handlers.get(name) ?? [])]
  }

  /** Adds a handler; true if it is the first for that name. */
  add(name: string, handler: H): boolean {
    const handlers = this.#handlers.get(name)
    if (handlers) {
      handlers.add(handler)
      return false
    }
    this.#handlers.set(name, new Set([handler]))
    return true
  }

  /** A subscription that removes the handler again. */
  subscription(name: string, handler: H): Subscription {
    const close = async () => {
      const handlers = this.#handlers.get(name)
      if (handlers?.delete(handler) && handlers.size === 0) this.#handlers.delete(name)
    }
    return { close, [Symbol.asyncDispose]: close }
  }
}
