import type { DiscoveredService, ServiceEventSource, ServiceFilter } from '@autobus/discovery'
import { UnknownNameError } from '@autobus/protocol'
import type { Connection, Contract, Subscription } from '@autobus/rpc'

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

/** Refuses a name the proxy's contract does not declare (none: any name goes). @internal */
export function checkDeclared(
  contract: Contract | undefined,
  section: 'functions' | 'events' | 'objects' | 'channels' | 'streams',
  name: string,
): void {
  if (typeof name !== 'string' || name.length === 0)
    throw new TypeError('name must be a non-empty string')
  const entries = contract?.[section]
  if (contract && !(entries && Object.hasOwn(entries, name)))
    throw new UnknownNameError(`the contract declares no ${section} "${name}"`)
}

/** A subscription whose `close` runs once. @internal */
export function subscription(close: () => Promise<void>): Subscription {
  let closing: Promise<void> | undefined
  const once = () => {
    closing ??= close()
    return closing
  }
  return { close: once, [Symbol.asyncDispose]: once }
}
