import type { Static, TSchema } from 'typebox'
import type { Channel } from './channel.js'
import type { CallContext } from './session.js'
import type { ByteStream } from './stream.js'

/** The static types of a tuple of argument schemas. */
export type StaticArgs<A extends readonly TSchema[]> = {
  -readonly [K in keyof A]: A[K] extends TSchema ? Static<A[K]> : never
}

/** A function of a contract: its argument schemas, and the schema of its result. */
export interface ContractFunction {
  /** What the function does, for introspection. */
  readonly doc?: string
  /**
   * One schema per argument. Left out, the function takes any arguments
   * unchecked (as a service in another language may declare it).
   */
  readonly args?: readonly TSchema[]
  /** Schema of the result; the service checks every result against it. */
  readonly result?: TSchema
}

/** An event of a contract: one schema per argument it fires with. */
export interface ContractEvent {
  readonly doc?: string
  /** One schema per argument; left out, any arguments. */
  readonly args?: readonly TSchema[]
}

/**
 * A channel of a contract: the schema of what each end sends. Like a
 * function's `args` and `result`, `message` goes from client to service and
 * `reply` back (any number of each, in any order); each is checked where it
 * arrives, and a channel typed by the contract sends and receives their
 * static types.
 */
export interface ContractChannel {
  readonly doc?: string
  /** Schema of the messages a client sends; left out, any JSON. */
  readonly message?: TSchema
  /** Schema of the messages the service sends; left out, any JSON. */
  readonly reply?: TSchema
}

/** A byte stream of a contract. */
export interface ContractStream {
  readonly doc?: string
}

/**
 * What a service offers, as TypeBox schemas: the one place its types are
 * written. Both sides take it: a service is created from a contract and its
 * handlers, and a connection or proxy given the contract is typed by it.
 * Objects map a name to the schema of their value.
 */
export interface Contract {
  readonly functions?: { readonly [name: string]: ContractFunction }
  readonly events?: { readonly [name: string]: ContractEvent }
  readonly objects?: { readonly [name: string]: TSchema }
  readonly channels?: { readonly [name: string]: ContractChannel }
  readonly streams?: { readonly [name: string]: ContractStream }
}

/** The kinds of names a contract declares. */
export type ContractSection = keyof Contract

type Section<C, K extends ContractSection> = K extends keyof C ? NonNullable<C[K]> : {}

/** True when C is the wide {@link Contract} (no contract given): names are any string. */
type IsWide<C> = string extends keyof Section<C, 'functions'> ? true : false

/** Names a contract gives to one kind of thing; any string without a contract. */
export type NameOf<C, K extends ContractSection> =
  IsWide<C> extends true ? string : keyof Section<C, K> & string

/** Function names of a contract. */
export type FunctionName<C> = NameOf<C, 'functions'>
/** Event names of a contract. */
export type EventName<C> = NameOf<C, 'events'>
/** Object names of a contract. */
export type ObjectName<C> = NameOf<C, 'objects'>
/** Channel names of a contract. */
export type ChannelName<C> = NameOf<C, 'channels'>
/** Stream names of a contract. */
export type StreamName<C> = NameOf<C, 'streams'>

type Entry<C, K extends ContractSection, N> = N extends keyof Section<C, K>
  ? Section<C, K>[N]
  : never

/** The arguments a function takes (`unknown[]` without a contract). */
export type CallArgs<C, N> =
  IsWide<C> extends true
    ? readonly unknown[]
    : Entry<C, 'functions', N> extends { readonly args: infer A extends readonly TSchema[] }
      ? Readonly<StaticArgs<A>>
      : never

/** What a function returns (`unknown` without a contract or a result schema). */
export type CallResult<C, N> =
  IsWide<C> extends true
    ? unknown
    : Entry<C, 'functions', N> extends { readonly result: infer R extends TSchema }
      ? Static<R>
      : unknown

/** The arguments an event fires with (`unknown[]` without a contract). */
export type EventArgs<C, N> =
  IsWide<C> extends true
    ? unknown[]
    : Entry<C, 'events', N> extends { readonly args: infer A extends readonly TSchema[] }
      ? StaticArgs<A>
      : never

/** The value of an object (`unknown` without a contract). */
export type ObjectValue<C, N> =
  IsWide<C> extends true
    ? unknown
    : Entry<C, 'objects', N> extends infer T extends TSchema
      ? Static<T>
      : never

/** What a client sends on a channel, the contract's `message` (`unknown` without one). */
export type ChannelMessage<C, N> =
  IsWide<C> extends true
    ? unknown
    : Entry<C, 'channels', N> extends { readonly message: infer T extends TSchema }
      ? Static<T>
      : unknown

/** What a service sends on a channel, the contract's `reply` (`unknown` without one). */
export type ChannelReply<C, N> =
  IsWide<C> extends true
    ? unknown
    : Entry<C, 'channels', N> extends { readonly reply: infer T extends TSchema }
      ? Static<T>
      : unknown

/** A client's end of a channel: sends `message`, receives `reply`. */
export type ClientChannel<C, N> = Channel<ChannelMessage<C, N>, ChannelReply<C, N>>

/** A service's end of a channel: sends `reply`, receives `message`. */
export type ServiceChannel<C, N> = Channel<ChannelReply<C, N>, ChannelMessage<C, N>>

/**
 * Arguments after the name of a call: `args` may be left out when the
 * function takes none.
 */
export type CallRest<C, N, O> =
  [] extends CallArgs<C, N>
    ? [args?: CallArgs<C, N>, options?: O]
    : [args: CallArgs<C, N>, options?: O]

/** The handler of one function: typed parameters, then the call's context. */
export type FunctionHandler<F> = F extends {
  readonly args: infer A extends readonly TSchema[]
}
  ? (
      this: CallContext,
      ...args: [...StaticArgs<A>, CallContext]
    ) => F extends { readonly result: infer R extends TSchema }
      ? Static<R> | Promise<Static<R>>
      : unknown
  : (this: CallContext, ...args: any[]) => unknown

type Provided<C, K extends ContractSection, N> = K extends 'functions'
  ? FunctionHandler<Section<C, K>[N & keyof Section<C, K>]>
  : K extends 'objects'
    ? Section<C, K>[N & keyof Section<C, K>] extends infer T extends TSchema
      ? Static<T>
      : never
    : K extends 'channels'
      ? (channel: ServiceChannel<C, N>) => unknown
      : (stream: ByteStream) => unknown

/** One section of an implementation; optional when the contract has nothing there. */
type Part<C, K extends ContractSection> = keyof Section<C, K> extends never
  ? { readonly [P in K]?: {} }
  : { readonly [P in K]: { readonly [N in keyof Section<C, K>]: Provided<C, K, N> } }

/**
 * What a service adds to its contract: a handler per function, the initial
 * value of each object, and what to do when a client opens each channel or
 * stream. Events need nothing: fire them with `service.event(name)`.
 */
export type Implementation<C extends Contract> = Part<C, 'functions'> &
  Part<C, 'objects'> &
  Part<C, 'channels'> &
  Part<C, 'streams'>

const SECTIONS: readonly ContractSection[] = [
  'functions',
  'events',
  'objects',
  'channels',
  'streams',
]

/**
 * Declares a contract: what a service offers, as TypeBox schemas. Serve it
 * with `createService(contract, implementation)`; use it with
 * `connectService(address, { contract })` or a proxy given the contract, and
 * every call, listen and watch is checked by the compiler.
 *
 * @example
 * ```ts
 * import Type from 'typebox'
 * import { defineContract } from '@autobus/rpc'
 *
 * const calculator = defineContract({
 *   functions: { add: { args: [Type.Number(), Type.Number()], result: Type.Number() } },
 *   events: { ticked: { args: [Type.Integer()] } },
 *   objects: { counter: Type.Integer() },
 * })
 * ```
 */
export function defineContract<const C extends Contract>(contract: C): C {
  if (typeof contract !== 'object' || contract === null)
    throw new TypeError('a contract is an object')
  for (const key of Object.keys(contract)) {
    if (!SECTIONS.includes(key as ContractSection))
      throw new TypeError(`a contract has no "${key}"; use ${SECTIONS.join(', ')}`)
  }
  for (const section of SECTIONS) {
    for (const [name, entry] of Object.entries(contract[section] ?? {})) {
      if (name.length === 0) throw new TypeError(`${section}: a name must not be empty`)
      const args = (entry as { args?: unknown }).args
      if (args !== undefined && !Array.isArray(args))
        throw new TypeError(`${section} "${name}": args is an array of schemas`)
    }
  }
  return contract
}

/** True if the contract declares `name` in `section` (always true without a contract). @internal */
export function declares(
  contract: Contract | undefined,
  section: ContractSection,
  name: string,
): boolean {
  if (!contract) return true
  const entries = contract[section]
  return entries !== undefined && Object.hasOwn(entries, name)
}
