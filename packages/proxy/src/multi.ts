import { EventEmitter } from 'node:events'
import { type DiscoveredService, matchesFilter, type ServiceFilter } from '@autobus/discovery'
import {
  type Clock,
  type Closable,
  type CloseInfo,
  Limits,
  UnreachableError,
} from '@autobus/protocol'
import type {
  CallArgs,
  CallRest,
  CallResult,
  Connection,
  Contract,
  EventArgs,
  EventName,
  FunctionName,
  ObjectName,
  ObjectValue,
  RequestOptions,
  Subscription,
} from '@autobus/rpc'
import { createDeadline } from './deadline.js'
import { type Connector, checkDeclared, type ServiceDirectory, subscription } from './directory.js'
import { refusedByService } from './single.js'

/** One service's outcome of a fanned-out call. */
export type Outcome<T = unknown> = { ok: true; value: T } | { ok: false; error: Error }

/** Receives an event fired by one of the bound services. */
export type TaggedEventHandler<A extends unknown[] = unknown[]> = (
  source: DiscoveredService,
  ...args: A
) => void

/** Receives an object's value on one service, with the live map of all values. */
export type TaggedWatchHandler<T = unknown> = (
  source: DiscoveredService,
  value: T | null,
  values: ReadonlyMap<string, T>,
) => void

/** Events of a {@link MultiServiceProxy}. */
export type MultiServiceProxyEvents = {
  bound: [service: DiscoveredService]
  unbound: [service: DiscoveredService, reason: string]
}

/** Options for {@link createMultiServiceProxy}. */
export interface MultiServiceProxyOptions<C extends Contract = Contract> {
  directory: ServiceDirectory
  connect: Connector
  filter?: ServiceFilter
  /** Times waits for a bind (default the system clock). */
  clock?: Clock
  /** The services' contract: calls, listens and watches are then typed by it. */
  contract?: C
}

interface Binding {
  service: DiscoveredService
  connection: Connection
}

/** One name's handlers and the one subscription held for them on each bound service. */
interface Owned<H> {
  readonly handlers: Set<H>
  readonly on: Map<Binding, Promise<Subscription>>
}

/**
 * Binds to every service matching a filter: calls fan out and return each
 * service's outcome by service id, events arrive tagged with the service
 * that fired them, and objects are a live map of values per service. It
 * binds in the background: a call made before the first bind goes to no
 * one, so wait with {@link MultiServiceProxy.waitForBind} first when at
 * least one service is expected.
 */
export class MultiServiceProxy<C extends Contract = Contract>
  extends EventEmitter<MultiServiceProxyEvents>
  implements Closable
{
  readonly filter: ServiceFilter
  /** The contract it was made with, if any. */
  readonly contract: C | undefined
  /** Resolves with the reason once the proxy is closed. */
  readonly closed: Promise<CloseInfo>
  readonly #directory: ServiceDirectory
  readonly #connect: Connector
  readonly #bindings = new Map<string, Binding>()
  readonly #connecting = new Set<string>()
  readonly #listens = new Map<string, Owned<TaggedEventHandler>>()
  readonly #watches = new Map<string, Owned<TaggedWatchHandler>>()
  readonly #values = new Map<string, Map<string, unknown>>()
  readonly #abort = new AbortController()
  readonly #clock: Clock | undefined
  #closing: Promise<CloseInfo> | undefined
  #resolveClosed!: (info: CloseInfo) => void

  /** @internal Use {@link createMultiServiceProxy}. */
  constructor(options: MultiServiceProxyOptions<C>) {
    super()
    this.filter = options.filter ?? {}
    this.contract = options.contract
    this.#clock = options.clock
    this.#directory = options.directory
    this.#connect = options.connect
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve
    })
    this.#directory.on('appeared', this.#onAppeared)
    this.#directory.on('disappeared', this.#onDisappeared)
    for (const service of this.#directory.snapshot(this.filter)) void this.#bind(service)
  }

  /** The services bound now, by id. */
  get services(): ReadonlyMap<string, DiscoveredService> {
    return new Map([...this.#bindings].map(([id, binding]) => [id, binding.service]))
  }

  get isClosed(): boolean {
    return this.#closing !== undefined
  }

  #onAppeared = (service: DiscoveredService) => {
    if (matchesFilter(service.info, this.filter)) void this.#bind(service)
  }

  #onDisappeared = (service: DiscoveredService) => {
    this.#bindings.get(service.service)?.connection.close('service disappeared')
  }

  async #bind(service: DiscoveredService): Promise<void> {
    const id = service.service
    if (this.#closing || this.#bindings.has(id) || this.#connecting.has(id)) return
    this.#connecting.add(id)
    try {
      const connection = await this.#connect(service, { signal: this.#abort.signal }).catch(
        () => undefined,
      )
      if (!connection) return
      if (this.#closing) {
        await connection.close('proxy closed')
        return
      }
      const binding = { service, connection }
      this.#bindings.set(id, binding)
      connection.closed.then((info) => this.#lost(binding, info.reason))
      await Promise.all([
        ...[...this.#listens].map(([name, owned]) =>
          this.#listenOn(binding, name, owned).catch(() => {}),
        ),
        ...[...this.#watches].map(([name, owned]) =>
          this.#watchOn(binding, name, owned).catch(() => {}),
        ),
      ])
      if (this.#bindings.get(id) === binding) this.emit('bound', service)
    } finally {
      this.#connecting.delete(id)
    }
  }

  #lost(binding: Binding, reason: string): void {
    const id = binding.service.service
    if (this.#bindings.get(id) !== binding) return
    this.#bindings.delete(id)
    for (const owned of [...this.#listens.values(), ...this.#watches.values()])
      owned.on.delete(binding)
    for (const values of this.#values.values()) values.delete(id)
    this.emit('unbound', binding.service, reason)
  }

  #listenOn(
    binding: Binding,
    name: string,
    owned: Owned<TaggedEventHandler>,
    options: RequestOptions = {},
  ): Promise<unknown> {
    const ready = binding.connection.listen(
      name,
      (...args) => {
        if (this.#listens.get(name) !== owned) return
        for (const handler of [...owned.handlers]) handler(binding.service, ...args)
      },
      options,
    )
    owned.on.set(binding, ready)
    return ready
  }

  #watchOn(
    binding: Binding,
    name: string,
    owned: Owned<TaggedWatchHandler>,
    options: RequestOptions = {},
  ): Promise<unknown> {
    const ready = binding.connection.watch(
      name,
      (value) => {
        if (this.#watches.get(name) !== owned) return
        let values = this.#values.get(name)
        if (!values) {
          values = new Map()
          this.#values.set(name, values)
        }
        if (value === null && binding.connection.isClosed) values.delete(binding.service.service)
        else values.set(binding.service.service, value)
        for (const handler of [...owned.handlers]) handler(binding.service, value, values)
      },
      options,
    )
    owned.on.set(binding, ready)
    return ready
  }

  /**
   * Adds a handler to a name's subscriptions, making them on every bound
   * service if it is the first. When every bound service refuses the name
   * (none has it), rejects with the first refusal and keeps nothing.
   */
  async #subscribe<H>(
    table: Map<string, Owned<H>>,
    name: string,
    handler: H,
    on: (
      binding: Binding,
      name: string,
      owned: Owned<H>,
      options: RequestOptions,
    ) => Promise<unknown>,
    options: RequestOptions,
  ): Promise<Subscription> {
    let owned = table.get(name)
    const first = !owned
    if (!owned) {
      owned = { handlers: new Set(), on: new Map() }
      table.set(name, owned)
      for (const binding of this.#bindings.values())
        void on(binding, name, owned, options).catch(() => {})
    }
    const entry = owned
    const outcomes = await Promise.allSettled(entry.on.values())
    const refusals = outcomes.flatMap((outcome) =>
      outcome.status === 'rejected' && refusedByService(outcome.reason) ? [outcome.reason] : [],
    )
    const aborted = options.signal?.aborted
    if (aborted || (first && refusals.length > 0 && refusals.length === outcomes.length)) {
      if (entry.handlers.size === 0 && table.get(name) === entry) {
        table.delete(name)
        this.#values.delete(name)
        for (const ready of entry.on.values())
          ready.then(
            (s) => s.close(),
            () => {},
          )
      }
      throw aborted ? options.signal!.reason : refusals[0]
    }
    entry.handlers.add(handler)
    return subscription(async () => {
      if (!entry.handlers.delete(handler) || entry.handlers.size > 0) return
      if (table.get(name) === entry) {
        table.delete(name)
        this.#values.delete(name)
      }
      const held = [...entry.on.values()]
      entry.on.clear()
      await Promise.all(
        held.map((ready) =>
          ready.then(
            (s) => s.close(),
            () => {},
          ),
        ),
      )
    })
  }

  /**
   * Resolves with the bound services once at least one is bound (at once if
   * one is); rejects on timeout (default 30 s), abort or close.
   *
   * @example
   * ```ts
   * const lights = bus.multiServiceProxy({ type: 'light' })
   * await lights.waitForBind({ timeout: 5_000 })
   * await lights.call('off')
   * ```
   */
  async waitForBind(options: RequestOptions = {}): Promise<ReadonlyMap<string, DiscoveredService>> {
    if (this.#bindings.size > 0) return this.services
    if (this.#closing) throw new UnreachableError('proxy is closed')
    const timeout = options.timeout ?? Limits.callTimeout
    const deadline = createDeadline(timeout, [this.#abort.signal, options.signal], this.#clock)
    const signal = deadline.signal
    return new Promise((resolve, reject) => {
      const done = () => {
        deadline.clear()
        this.off('bound', onBound)
        signal.removeEventListener('abort', onAbort)
      }
      const onBound = () => {
        done()
        resolve(this.services)
      }
      const onAbort = () => {
        done()
        if (options.signal?.aborted) reject(options.signal.reason)
        else if (this.#closing) reject(new UnreachableError('proxy is closed'))
        else
          reject(
            new UnreachableError(
              `no service matching ${JSON.stringify(this.filter)} bound within ${timeout} ms`,
            ),
          )
      }
      if (signal.aborted) {
        onAbort()
        return
      }
      this.on('bound', onBound)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  /**
   * Calls a function on every bound service. Resolves with each service's
   * outcome by service id; never rejects for one service's failure.
   */
  call<N extends FunctionName<C>>(
    name: N,
    ...rest: CallRest<C, N, RequestOptions>
  ): Promise<Map<string, Outcome<CallResult<C, N>>>>
  async call(
    name: string,
    args: readonly unknown[] = [],
    options: RequestOptions = {},
  ): Promise<Map<string, Outcome>> {
    checkDeclared(this.contract, 'functions', name)
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
  notify<N extends FunctionName<C>>(
    name: N,
    ...rest: [] extends CallArgs<C, N> ? [args?: CallArgs<C, N>] : [args: CallArgs<C, N>]
  ): number
  notify(name: string, args: readonly unknown[] = []): number {
    checkDeclared(this.contract, 'functions', name)
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

  /**
   * Listens to an event on every bound service, now and later. Rejects if
   * the contract does not declare it, or if every bound service refuses it.
   */
  async listen<N extends EventName<C>>(
    name: N,
    handler: TaggedEventHandler<EventArgs<C, N>>,
    options: RequestOptions = {},
  ): Promise<Subscription> {
    checkDeclared(this.contract, 'events', name)
    return this.#subscribe(
      this.#listens,
      name,
      handler as TaggedEventHandler,
      (b, n, o, r) => this.#listenOn(b, n, o, r),
      options,
    )
  }

  /**
   * Watches an object on every bound service: the handler gets each
   * service's value now, then each change; see {@link MultiServiceProxy.values}.
   */
  async watch<N extends ObjectName<C>>(
    name: N,
    handler: TaggedWatchHandler<ObjectValue<C, N>>,
    options: RequestOptions = {},
  ): Promise<Subscription> {
    checkDeclared(this.contract, 'objects', name)
    const first = !this.#watches.has(name)
    const held = await this.#subscribe(
      this.#watches,
      name,
      handler as TaggedWatchHandler,
      (b, n, o, r) => this.#watchOn(b, n, o, r),
      options,
    )
    // The first handler was told by the watches themselves only if it was
    // added before they answered; tell it now what is known.
    const values = this.values(name) as ReadonlyMap<string, ObjectValue<C, N>>
    if (!first || values.size > 0) {
      for (const [id, value] of values) {
        const binding = this.#bindings.get(id)
        if (binding) handler(binding.service, value, values)
      }
    }
    return held
  }

  /** The live map of an object's values by service id (watch it first). */
  values<N extends ObjectName<C>>(name: N): ReadonlyMap<string, ObjectValue<C, N>> {
    return (this.#values.get(name) ?? new Map()) as ReadonlyMap<string, ObjectValue<C, N>>
  }

  /** Unbinds from everything; idempotent. Resolves with the same value as `closed`. */
  close(reason = 'proxy closed'): Promise<CloseInfo> {
    this.#closing ??= (async () => {
      const info = { reason }
      this.#abort.abort()
      this.#directory.off('appeared', this.#onAppeared)
      this.#directory.off('disappeared', this.#onDisappeared)
      this.#listens.clear()
      this.#watches.clear()
      const bindings = [...this.#bindings.values()]
      await Promise.all(bindings.map((binding) => binding.connection.close(reason)))
      this.#resolveClosed(info)
      return info
    })()
    return this.#closing
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

/**
 * Creates a proxy bound to every service matching `filter`.
 *
 * @example
 * ```ts
 * const lights = createMultiServiceProxy({ directory: discoverer, connect, filter: { type: 'light' } })
 * await lights.waitForBind()
 * const outcomes = await lights.call('off')
 * for (const [id, outcome] of outcomes) console.log(id, outcome.ok)
 * ```
 */
export function createMultiServiceProxy<const C extends Contract = Contract>(
  options: MultiServiceProxyOptions<C>,
): MultiServiceProxy<C> {
  return new MultiServiceProxy(options)
}
