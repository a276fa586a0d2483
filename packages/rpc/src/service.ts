import { randomUUID } from 'node:crypto'
import type { RequestMessage } from '@autobus/protocol'
import {
  encodeFrame,
  InvalidArgumentsError,
  MessageType,
  RemoteError,
  type ServiceDescription,
  UnknownNameError,
} from '@autobus/protocol'
import type { MessageConnection } from '@autobus/transport'
import type { Static, TSchema } from 'typebox'
import { Compile, type Validator } from 'typebox/compile'
import { type Channel, type MessageCheck, messageCheck } from './channel.js'
import {
  type Contract,
  defineContract,
  type EventArgs,
  type EventName,
  type Implementation,
  type ObjectName,
  type ObjectValue,
  type StaticArgs,
} from './contract.js'
import { measured, ServiceMetrics } from './metrics.js'
import type { CallContext } from './session.js'
import type { ByteStream } from './stream.js'

/** Declares a function. */
export interface FunctionSpec<
  A extends readonly TSchema[] = readonly TSchema[],
  R extends TSchema = TSchema,
> {
  /** What the function does, for introspection. */
  doc?: string
  /** One schema per argument; calls that do not match are refused before the handler runs. */
  args?: A
  /** Schema of the result, for introspection. */
  result?: R
}

/** Declares an event. */
export interface EventSpec<A extends readonly TSchema[] = readonly TSchema[]> {
  doc?: string
  /** One schema per argument of the event. */
  args?: A
}

/** Declares an object (a named value that clients watch). */
export interface ObjectSpec<T extends TSchema = TSchema> {
  doc?: string
  /** Schema of the value. */
  value?: T
}

/** Declares a channel. */
export interface ChannelSpec<M extends TSchema = TSchema, R extends TSchema = TSchema> {
  doc?: string
  /** Schema of the messages a client sends; one that does not match closes the channel. */
  message?: M
  /** Schema of the messages the service sends; a client given it checks them likewise. */
  reply?: R
}

/** Declares a byte stream. */
export interface StreamSpec {
  doc?: string
}

/** Something that receives a service's notifications: one client session. @internal */
export interface Subscriber {
  sendEncoded(frame: string): boolean
}

/** @internal */
export interface FunctionEntry {
  spec: FunctionSpec
  validators: Validator[] | undefined
  handler: (...args: any[]) => unknown
}

/** @internal */
export interface ObjectEntry {
  spec: ObjectSpec
  value: unknown
  watchers: Set<Subscriber>
  handle: ServiceObject<unknown>
}

/** @internal */
export interface EventEntry {
  spec: EventSpec
  validators: Validator[] | undefined
  listeners: Set<Subscriber>
  handle: ServiceEvent<unknown[]>
}

/** @internal */
export interface ChannelEntry {
  spec: ChannelSpec
  check: MessageCheck | undefined
  onOpen: (channel: Channel) => unknown
}

/** @internal */
export interface StreamEntry {
  spec: StreamSpec
  onOpen: (stream: ByteStream) => unknown
}

/** A handle to fire one event. */
export interface ServiceEvent<A extends readonly unknown[] = unknown[]> {
  readonly name: string
  /** Fires the event at every listening client. Throws `InvalidArgumentsError` if args do not match. */
  fire(...args: A): void
  /** How many clients listen. */
  readonly listenerCount: number
}

/** A handle to one object's value. */
export interface ServiceObject<T = unknown> {
  readonly name: string
  /** The current value. */
  readonly value: T
  /** Sets the value and notifies every watcher. */
  set(value: T): void
  /** How many clients watch. */
  readonly watcherCount: number
}

/** Options for {@link createService}. */
export interface ServiceOptions {
  /** The service id; a random one by default. Ids must not collide on a network. */
  id?: string
  /** The info object announced by discovery; it never changes while the service lives. */
  info?: Record<string, unknown>
  /** What the service is, for introspection. */
  doc?: string
  /** Send thrown errors' stacks to clients (default false). */
  exposeStacks?: boolean
  /**
   * Check every function's result against its `result` schema (default
   * true). A result that does not match is not sent: the caller gets a
   * `RemoteError` whose `remoteName` is `InvalidResultError`. Turn it off
   * only where the check's cost matters and the handlers are trusted.
   */
  validateResults?: boolean
  /**
   * Count and time every call, fire and change (default true; see
   * `serviceStats`). Counting is cheap enough to leave on; off, the
   * service's figures stay at zero.
   */
  metrics?: boolean
}

/** Makes a service id that will not collide. */
export function newServiceId(): string {
  return randomUUID()
}

function compileArgs(args: readonly TSchema[] | undefined): Validator[] | undefined {
  return args?.map((schema) => Compile(schema))
}

/** @internal Checks arguments against their validators. */
export function checkArgs(
  kind: string,
  name: string,
  validators: Validator[] | undefined,
  args: unknown[],
): void {
  if (!validators) return
  if (args.length > validators.length) {
    throw new InvalidArgumentsError(
      `${kind} "${name}" takes ${validators.length} argument${validators.length === 1 ? '' : 's'}, got ${args.length}`,
    )
  }
  for (let i = 0; i < validators.length; i++) {
    const validator = validators[i]!
    if (!validator.Check(args[i])) {
      const error = validator.Errors(args[i])[0]
      const detail = error ? `${error.instancePath || ''} ${error.message}`.trim() : 'invalid'
      throw new InvalidArgumentsError(`${kind} "${name}" argument ${i + 1}: ${detail}`)
    }
  }
}

/**
 * Wraps a handler so that a result that does not match its schema is an
 * error answered to the caller, never a silent pass.
 */
function checkingResults(
  name: string,
  schema: TSchema,
  handler: (...args: any[]) => unknown,
): (...args: any[]) => unknown {
  const validator = Compile(schema)
  const check = (value: unknown) => {
    const sent = value ?? null
    if (!validator.Check(sent)) {
      const error = validator.Errors(sent)[0]
      const detail = error ? `${error.instancePath || ''} ${error.message}`.trim() : 'invalid'
      throw new RemoteError(
        `function "${name}" returned a result that does not match its schema: ${detail}`,
        'InvalidResultError',
      )
    }
    return value
  }
  return function (this: unknown, ...args: unknown[]) {
    const result = handler.apply(this, args)
    return result instanceof Promise ? result.then(check) : check(result)
  }
}

/**
 * May take over a session that binds to a service, instead of the server
 * serving it. Returning true takes it: the server neither answers the
 * `bind` nor reads the connection's messages from then on, and the relay
 * owns the connection (it answers the bind, and closes the connection when
 * done); the server still answers frames that cannot be read at all (with
 * the same errors as in any session), and closes the connection when it
 * closes. Returning false leaves
 * the session to the server, which serves it as usual. Called
 * synchronously as the `bind` is read, so the relay sees every frame after
 * it.
 */
export type SessionRelay = (connection: MessageConnection, bind: RequestMessage<'bind'>) => boolean

/**
 * A service: functions, events, objects, channels and byte streams under one
 * id, with an info object. Serve it with a Bus, or with `serve()` alone.
 * Created from a contract, its {@link Service.event} and
 * {@link Service.object} handles are typed by it.
 */
export class Service<C extends Contract = Contract> {
  readonly id: string
  readonly info: Readonly<Record<string, unknown>>
  readonly doc: string | undefined
  readonly exposeStacks: boolean
  readonly validateResults: boolean
  readonly #measured: boolean
  /** The contract the service was created from, if any. */
  readonly contract: C | undefined
  /** @internal */ readonly functions = new Map<string, FunctionEntry>()
  /** @internal */ readonly events = new Map<string, EventEntry>()
  /** @internal */ readonly objects = new Map<string, ObjectEntry>()
  /** @internal */ readonly channels = new Map<string, ChannelEntry>()
  /** @internal */ readonly streams = new Map<string, StreamEntry>()
  /** @internal Read with `serviceStats(service)`. */ readonly metrics = new ServiceMetrics()
  /**
   * When set, sessions that bind to this service are handed to it rather
   * than served (a bridge passes them on to the service it stands in for).
   * Ignored by a server with access rules, whose every command must be
   * checked: such a server serves the session itself.
   */
  relay: SessionRelay | undefined

  /** @internal Use {@link createService}. */
  constructor(options: ServiceOptions = {}, contract?: C) {
    this.id = options.id ?? newServiceId()
    this.info = Object.freeze(structuredClone(options.info ?? {}))
    this.doc = options.doc
    this.exposeStacks = options.exposeStacks ?? false
    this.validateResults = options.validateResults ?? true
    this.#measured = options.metrics ?? true
    this.contract = contract
  }

  /**
   * The handle that fires an event.
   *
   * @example
   * ```ts
   * service.event('ticked').fire(1)
   * ```
   */
  event<N extends EventName<C>>(name: N): ServiceEvent<EventArgs<C, N>> {
    return this.lookup(this.events, 'event', name).handle as ServiceEvent<EventArgs<C, N>>
  }

  /**
   * The handle that reads and sets an object's value.
   *
   * @example
   * ```ts
   * const counter = service.object('counter')
   * counter.set(counter.value + 1)
   * ```
   */
  object<N extends ObjectName<C>>(name: N): ServiceObject<ObjectValue<C, N>> {
    return this.lookup(this.objects, 'object', name).handle as ServiceObject<ObjectValue<C, N>>
  }

  #claim(map: Map<string, unknown>, kind: string, name: string): void {
    if (typeof name !== 'string' || name.length === 0)
      throw new TypeError(`${kind} name must be a non-empty string`)
    if (map.has(name)) throw new TypeError(`${kind} "${name}" is already defined`)
  }

  /**
   * Defines a function. With `args` schemas, calls are validated first and
   * the handler's parameters are typed from them; after the declared
   * arguments the handler gets a {@link CallContext} whose `signal` aborts
   * when the caller is gone or the service shuts down. Without `args` the
   * handler gets the arguments as sent, and the context as `this`.
   *
   * @example
   * ```ts
   * service.addFunction('add', { doc: 'Adds two numbers', args: [Type.Number(), Type.Number()] }, (a, b) => a + b)
   * service.addFunction('fetch', { args: [Type.String()] }, (url, { signal }) => fetch(url, { signal }))
   * ```
   */
  addFunction<const A extends readonly TSchema[], R>(
    name: string,
    spec: FunctionSpec<A> & { args: A },
    handler: (this: CallContext, ...args: [...StaticArgs<A>, CallContext]) => R | Promise<R>,
  ): this
  addFunction(
    name: string,
    spec: FunctionSpec,
    handler: (this: CallContext, ...args: any[]) => unknown,
  ): this
  addFunction(name: string, spec: FunctionSpec, handler: (...args: any[]) => unknown): this {
    this.#claim(this.functions, 'function', name)
    if (typeof handler !== 'function') throw new TypeError(`function "${name}" needs a handler`)
    const checked =
      spec.result && this.validateResults ? checkingResults(name, spec.result, handler) : handler
    this.functions.set(name, {
      spec,
      validators: compileArgs(spec.args),
      handler: this.#measured ? measured(this.metrics.function(name), checked) : checked,
    })
    return this
  }

  /**
   * Defines an event and returns the handle that fires it.
   *
   * @example
   * ```ts
   * const ticked = service.addEvent('ticked', { args: [Type.Integer()] })
   * ticked.fire(1)
   * ```
   */
  addEvent<const A extends readonly TSchema[]>(
    name: string,
    spec: EventSpec<A> & { args: A },
  ): ServiceEvent<StaticArgs<A>>
  addEvent(name: string, spec?: EventSpec): ServiceEvent<unknown[]>
  addEvent(name: string, spec: EventSpec = {}): ServiceEvent<unknown[]> {
    this.#claim(this.events, 'event', name)
    const validators = compileArgs(spec.args)
    const listeners = new Set<Subscriber>()
    // The frame up to its arguments is the same for every firing: encoded
    // once here, so a firing stringifies only its arguments. The bytes are
    // exactly those of encodeFrame({ _type, _command, name, args }).
    const head = `{"_type":${MessageType.Notification},"_command":"fired","name":${JSON.stringify(name)},"args":`
    const metrics = this.metrics
    const entry: EventEntry = {
      spec,
      validators,
      listeners,
      handle: {
        name,
        fire: (...args: unknown[]) => {
          checkArgs('event', name, validators, args)
          metrics.fired(name, listeners.size)
          if (listeners.size === 0) return
          const frame = `${head}${JSON.stringify(args)}}\n`
          for (const listener of listeners) listener.sendEncoded(frame)
        },
        get listenerCount() {
          return listeners.size
        },
      },
    }
    this.events.set(name, entry)
    return entry.handle
  }

  /**
   * Defines an object with its initial value and returns the handle that
   * sets it; every watcher is told of each change.
   *
   * @example
   * ```ts
   * const counter = service.addObject('counter', { value: Type.Integer() }, 0)
   * counter.set(counter.value + 1)
   * ```
   */
  addObject<T extends TSchema>(
    name: string,
    spec: ObjectSpec<T> & { value: T },
    initial: Static<T>,
  ): ServiceObject<Static<T>>
  addObject<T = unknown>(name: string, spec: ObjectSpec, initial: T): ServiceObject<T>
  addObject(name: string, spec: ObjectSpec, initial: unknown): ServiceObject<unknown> {
    this.#claim(this.objects, 'object', name)
    const validator = spec.value ? Compile(spec.value) : undefined
    const check = (value: unknown) => {
      if (validator && !validator.Check(value)) {
        throw new InvalidArgumentsError(`object "${name}": value does not match its schema`)
      }
    }
    check(initial)
    const metrics = this.metrics
    const entry: ObjectEntry = {
      spec,
      value: initial === undefined ? null : initial,
      watchers: new Set(),
      handle: undefined as unknown as ServiceObject<unknown>,
    }
    entry.handle = {
      name,
      get value() {
        return entry.value
      },
      set: (value: unknown) => {
        check(value)
        entry.value = value === undefined ? null : value
        metrics.changed(name)
        if (entry.watchers.size === 0) return
        const frame = encodeFrame({
          _type: MessageType.Notification,
          _command: 'changed',
          name,
          value: entry.value,
        })
        for (const watcher of entry.watchers) watcher.sendEncoded(frame)
      },
      get watcherCount() {
        return entry.watchers.size
      },
    }
    this.objects.set(name, entry)
    return entry.handle
  }

  /**
   * Defines a channel. `onOpen` runs for each client that opens it; throwing
   * (or rejecting) refuses the open with that error. With schemas, the
   * channel `onOpen` gets sends `reply` values and receives `message`
   * values, each checked where it arrives.
   *
   * @example
   * ```ts
   * service.addChannel('echo', { doc: 'Echoes messages' }, (channel) => {
   *   channel.on('message', (message) => channel.send(message))
   * })
   * ```
   */
  addChannel<const M extends TSchema = TSchema, const R extends TSchema = TSchema>(
    name: string,
    spec: ChannelSpec<M, R>,
    onOpen: (channel: Channel<Static<R>, Static<M>>) => unknown,
  ): this {
    this.#claim(this.channels, 'channel', name)
    this.channels.set(name, {
      spec,
      check: messageCheck(spec.message),
      onOpen: onOpen as (channel: Channel) => unknown,
    })
    return this
  }

  /**
   * Defines a byte stream. `onOpen` gets a Node `Duplex` for each client that
   * opens it; throwing refuses the open.
   *
   * @example
   * ```ts
   * service.addStream('echo', { doc: 'Echoes bytes' }, (stream) => stream.pipe(stream))
   * ```
   */
  addStream(name: string, spec: StreamSpec, onOpen: (stream: ByteStream) => unknown): this {
    this.#claim(this.streams, 'stream', name)
    this.streams.set(name, { spec, onOpen })
    return this
  }

  /** @internal */
  lookup<T>(map: Map<string, T>, kind: string, name: string): T {
    const entry = map.get(name)
    if (!entry) throw new UnknownNameError(`service ${this.id} has no ${kind} "${name}"`)
    return entry
  }

  /** The service's description, as introspection publishes it. */
  describe(): ServiceDescription {
    const pick = <T>(map: Map<string, T>, shape: (entry: T) => Record<string, unknown>) =>
      Object.fromEntries(
        [...map].map(([name, entry]) => [name, withoutUndefined(shape(entry))]),
      ) as any
    const schemas = (list: readonly TSchema[] | undefined) => list?.map((schema) => ({ ...schema }))
    return withoutUndefined({
      service: this.id,
      info: { ...this.info },
      doc: this.doc,
      functions: pick(this.functions, (e) => ({
        doc: e.spec.doc,
        args: schemas(e.spec.args),
        result: e.spec.result,
      })),
      events: pick(this.events, (e) => ({ doc: e.spec.doc, args: schemas(e.spec.args) })),
      objects: pick(this.objects, (e) => ({ doc: e.spec.doc, value: e.spec.value })),
      channels: pick(this.channels, (e) => ({
        doc: e.spec.doc,
        message: e.spec.message,
        reply: e.spec.reply,
      })),
      streams: pick(this.streams, (e) => ({ doc: e.spec.doc })),
    }) as ServiceDescription
  }
}

function withoutUndefined<T extends Record<string, unknown>>(value: T): T {
  for (const key of Object.keys(value)) if (value[key] === undefined) delete value[key]
  return value
}

/**
 * Creates a service. From a contract and its implementation, every handler
 * is checked by the compiler against the contract's schemas, and the
 * service offers exactly what the contract declares. With options alone,
 * define functions, events, objects, channels and streams on it one by one.
 *
 * @example
 * ```ts
 * const calculator = defineContract({
 *   functions: { add: { args: [Type.Number(), Type.Number()], result: Type.Number() } },
 *   events: { ticked: { args: [Type.Integer()] } },
 *   objects: { counter: Type.Integer() },
 * })
 * const service = createService(calculator, {
 *   functions: { add: (a, b) => a + b },
 *   objects: { counter: 0 },
 * }, { info: { type: 'calculator' } })
 * service.event('ticked').fire(1)
 *
 * const greeter = createService({ info: { type: 'greeter' }, doc: 'Says hello' })
 * greeter.addFunction('hello', { args: [Type.String()] }, (name) => `Hello, ${name}!`)
 * ```
 */
export function createService<const C extends Contract>(
  contract: C,
  implementation: Implementation<C>,
  options?: ServiceOptions,
): Service<C>
export function createService(options?: ServiceOptions): Service
export function createService(
  first: Contract | ServiceOptions = {},
  implementation?: Implementation<Contract>,
  options: ServiceOptions = {},
): Service<Contract> {
  if (implementation === undefined) return new Service(first as ServiceOptions)
  const contract = defineContract(first as Contract)
  const service = new Service(options, contract)
  const given = implementation as Record<string, Record<string, unknown> | undefined>
  for (const section of ['functions', 'objects', 'channels', 'streams'] as const) {
    for (const name of Object.keys(given[section] ?? {})) {
      if (!Object.hasOwn(contract[section] ?? {}, name))
        throw new TypeError(`the contract declares no ${section} "${name}"`)
    }
  }
  const provided = (section: string, name: string) => {
    const entries = given[section]
    if (!entries || !Object.hasOwn(entries, name))
      throw new TypeError(`the implementation gives no ${section} "${name}"`)
    return entries[name]
  }
  for (const [name, spec] of Object.entries(contract.functions ?? {}))
    service.addFunction(name, spec, provided('functions', name) as (...args: any[]) => unknown)
  for (const [name, spec] of Object.entries(contract.events ?? {})) service.addEvent(name, spec)
  for (const [name, value] of Object.entries(contract.objects ?? {}))
    service.addObject(name, { value }, provided('objects', name))
  for (const [name, spec] of Object.entries(contract.channels ?? {}))
    service.addChannel(name, spec, provided('channels', name) as (channel: Channel) => unknown)
  for (const [name, spec] of Object.entries(contract.streams ?? {}))
    service.addStream(name, spec, provided('streams', name) as (stream: ByteStream) => unknown)
  return service
}
