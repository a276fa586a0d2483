import { EventEmitter } from 'node:events'
import { readFile, stat } from 'node:fs/promises'
import net from 'node:net'
import {
  activeLogger,
  ForbiddenError,
  type Logger,
  ProtocolError,
  parseJsonObject,
  type RequestMessage,
} from '@autobus/protocol'
import Type, { type Static } from 'typebox'
import { Compile } from 'typebox/compile'

/** What a peer does to a service, as access rules name it. */
export const AccessAction = Type.Union([
  Type.Literal('call'),
  Type.Literal('listen'),
  Type.Literal('watch'),
  Type.Literal('channel'),
  Type.Literal('stream'),
  Type.Literal('describe'),
  Type.Literal('list'),
])
export type AccessAction = Static<typeof AccessAction>

/**
 * One rule: it applies to a request when every field it has matches (a
 * field it lacks matches anything). docs/security.md §Access rules.
 */
export const AccessRule = Type.Object({
  effect: Type.Union([Type.Literal('allow'), Type.Literal('deny')]),
  /** Actions it covers (default all). */
  actions: Type.Optional(Type.Array(AccessAction)),
  /** Key ids of the peer (its TLS PSK identity); `*` is any key. */
  keys: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  /** Subject CNs of the peer's certificate (mutual TLS); `*` is any certificate. */
  subjects: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  /** Peer addresses: IPv4 or IPv6 addresses or CIDR blocks (`10.0.0.0/8`). */
  addresses: Type.Optional(Type.Array(Type.String({ minLength: 1 }))),
  /** Glob (`*` any run of characters) on the service id. */
  serviceId: Type.Optional(Type.String()),
  /** Globs on the service's info: every key given must be present and match. */
  info: Type.Optional(Type.Record(Type.String(), Type.String())),
  /**
   * Glob on the member's name (function, event, object, channel, stream).
   * A rule with one never applies to `describe` and `list`, which name none.
   */
  member: Type.Optional(Type.String()),
})
export type AccessRule = Static<typeof AccessRule>

/** A set of rules and what happens when none applies. */
export const AccessPolicy = Type.Object({
  default: Type.Union([Type.Literal('allow'), Type.Literal('deny')]),
  rules: Type.Array(AccessRule),
})
export type AccessPolicy = Static<typeof AccessPolicy>

const checkPolicy = Compile(AccessPolicy)

/** Who asks. */
export interface Asker {
  /** The peer's address (IP address, socket path or "memory"). */
  address: string
  /** The bus key the peer proved it holds (keyed sessions). */
  keyId?: string | undefined
  /** The subject CN of the peer's certificate (mutual TLS). */
  subject?: string | undefined
}

/** One request to be decided. */
export interface AccessRequest {
  asker: Asker
  action: AccessAction
  service: { id: string; info: Readonly<Record<string, unknown>> }
  /** The member named, if any. */
  member?: string
}

function glob(pattern: string): RegExp {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')
  return new RegExp(`^${escaped}$`, 's')
}

function addressMatcher(entry: string): (address: string) => boolean {
  const [base, bits] = entry.split('/') as [string, string | undefined]
  const family = net.isIPv4(base) ? 'ipv4' : net.isIPv6(base) ? 'ipv6' : undefined
  if (!family) throw new TypeError(`"${entry}" is not an address or CIDR block`)
  const list = new net.BlockList()
  if (bits === undefined) list.addAddress(base, family)
  else {
    const prefix = Number(bits)
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 'ipv4' ? 32 : 128))
      throw new TypeError(`"${entry}" has no valid prefix length`)
    list.addSubnet(base, prefix, family)
  }
  return (address) => {
    // IPv4 peers of a dual-stack socket appear as ::ffff:a.b.c.d.
    const plain = address.startsWith('::ffff:') ? address.slice(7) : address
    if (net.isIPv4(plain)) return list.check(plain, 'ipv4')
    return net.isIPv6(plain) && list.check(plain, 'ipv6')
  }
}

type CompiledRule = {
  deny: boolean
  applies(request: AccessRequest): boolean
}

function compileRule(rule: AccessRule): CompiledRule {
  const actions = rule.actions && new Set(rule.actions)
  const keys = rule.keys && new Set(rule.keys)
  const subjects = rule.subjects && new Set(rule.subjects)
  const addresses = rule.addresses?.map(addressMatcher)
  const serviceId = rule.serviceId === undefined ? undefined : glob(rule.serviceId)
  const info =
    rule.info && Object.entries(rule.info).map(([key, value]) => [key, glob(value)] as const)
  const member = rule.member === undefined ? undefined : glob(rule.member)
  return {
    deny: rule.effect === 'deny',
    applies({ asker, action, service, member: name }) {
      if (actions && !actions.has(action)) return false
      if (keys && !(asker.keyId !== undefined && (keys.has('*') || keys.has(asker.keyId))))
        return false
      if (
        subjects &&
        !(asker.subject !== undefined && (subjects.has('*') || subjects.has(asker.subject)))
      )
        return false
      if (addresses && !addresses.some((matches) => matches(asker.address))) return false
      if (serviceId && !serviceId.test(service.id)) return false
      if (info) {
        for (const [key, pattern] of info) {
          const value = service.info[key]
          if (
            value === undefined ||
            !pattern.test(typeof value === 'string' ? value : JSON.stringify(value))
          )
            return false
        }
      }
      if (member && (name === undefined || !member.test(name))) return false
      return true
    },
  }
}

/** Reads and checks a policy; throws a `TypeError` saying what is wrong. */
export function parseAccessPolicy(value: unknown): AccessPolicy {
  if (!checkPolicy.Check(value)) {
    const first = checkPolicy.Errors(value)[0]
    throw new TypeError(
      `invalid access rules: ${first ? `${first.instancePath || '/'} ${first.message}` : 'not a policy'}`,
    )
  }
  // Compiling also checks the addresses.
  for (const rule of value.rules) compileRule(rule)
  return value
}

/** Events of {@link AccessControl}. */
export type AccessControlEvents = {
  /** New rules are in force (read from the file again). */
  reloaded: [policy: AccessPolicy]
  /** The file could not be read or is not valid; the rules in force stay. */
  reloadFailed: [error: Error]
}

/** Options of {@link createAccessControl}. */
export interface AccessControlOptions {
  /** Read the rules from this JSON file, and again whenever it changes. */
  file?: string
  /** How often the file is checked for changes, in ms (default 1 s). */
  reloadInterval?: number
  logger?: Logger
}

/**
 * Access rules in force: deny wins over allow, the default applies when no
 * rule does. Rules read from a file are read again whenever it changes,
 * while serving; a file that fails to read or check leaves the rules as
 * they were.
 *
 * @example
 * ```ts
 * const access = await createAccessControl({ file: '/etc/autobus/access.json' })
 * await using server = await serve([service], { port: 4000, access })
 * ```
 */
export class AccessControl extends EventEmitter<AccessControlEvents> {
  #policy: AccessPolicy
  #rules: CompiledRule[]
  #denied = 0
  #reloadFailures = 0
  readonly #file: string | undefined
  readonly #log: Logger | undefined
  #timer: NodeJS.Timeout | undefined
  /** The file as it was (see `fileVersion`) before the read of the rules in force. */
  #version: string | undefined
  #checking = false
  /** Reloads run one at a time, so an older read never finishes last. */
  #reloads: Promise<void> = Promise.resolve()

  /** @internal Use {@link createAccessControl}. */
  constructor(
    policy: AccessPolicy,
    options: AccessControlOptions = {},
    /** @internal The file's version before `policy` was read from it. */
    version?: string,
  ) {
    super()
    this.#policy = policy
    this.#rules = policy.rules.map(compileRule)
    this.#file = options.file
    this.#log = activeLogger(options.logger)
    this.#version = version
    // Polled with a timer of its own against the version the rules in
    // force were read from: `fs.watchFile` takes its first look a moment
    // after it starts, and misses a change made before that.
    if (this.#file) {
      this.#timer = setInterval(() => void this.#check(), options.reloadInterval ?? 1_000)
      this.#timer.unref()
    }
  }

  async #check(): Promise<void> {
    if (this.#checking || !this.#file) return
    this.#checking = true
    try {
      const version = await fileVersion(this.#file)
      if (version === this.#version || !this.#timer) return
      this.#version = version
      await this.reload()
    } finally {
      this.#checking = false
    }
  }

  /** The rules in force. */
  get policy(): AccessPolicy {
    return this.#policy
  }

  /** Requests denied so far. */
  get denied(): number {
    return this.#denied
  }

  /** Times the file could not be read again. */
  get reloadFailures(): number {
    return this.#reloadFailures
  }

  /** Puts new rules in force at once. */
  setPolicy(policy: AccessPolicy): void {
    const checked = parseAccessPolicy(policy)
    this.#rules = checked.rules.map(compileRule)
    this.#policy = checked
    this.emit('reloaded', checked)
  }

  /** Reads the file again now (also done by itself when the file changes). */
  reload(): Promise<void> {
    this.#reloads = this.#reloads.then(() => this.#read())
    return this.#reloads
  }

  async #read(): Promise<void> {
    if (!this.#file) return
    try {
      this.setPolicy(await readPolicyFile(this.#file))
      this.#log?.info(`autobus:rpc access rules reloaded from ${this.#file}`)
    } catch (error) {
      this.#reloadFailures++
      this.#log?.warn(
        `autobus:rpc access rules in ${this.#file} not reloaded: ${(error as Error).message}`,
      )
      this.emit('reloadFailed', error as Error)
    }
  }

  /** True if the request is allowed: no deny rule applies, and an allow rule or the default allows. */
  allows(request: AccessRequest): boolean {
    let allowed = false
    for (const rule of this.#rules) {
      if (!rule.applies(request)) continue
      if (rule.deny) return false
      allowed = true
    }
    return allowed || this.#policy.default === 'allow'
  }

  /**
   * True only if an allow rule names this request (and no deny rule does):
   * the default does not count. What the meta-service needs before listing
   * a service that is not announced.
   */
  allowsExplicitly(request: AccessRequest): boolean {
    let allowed = false
    for (const rule of this.#rules) {
      if (!rule.applies(request)) continue
      if (rule.deny) return false
      allowed = true
    }
    return allowed
  }

  /** Throws {@link ForbiddenError} (counted) unless the request is allowed. */
  authorize(request: AccessRequest): void {
    if (this.allows(request)) return
    this.#denied++
    const who = request.asker.keyId
      ? `key "${request.asker.keyId}"`
      : request.asker.subject
        ? `"${request.asker.subject}"`
        : request.asker.address
    const what =
      request.member === undefined ? request.action : `${request.action} "${request.member}"`
    this.#log?.warn(`autobus:rpc ${what} of service ${request.service.id} denied to ${who}`)
    throw new ForbiddenError(`${what} of service ${request.service.id} is forbidden to ${who}`)
  }

  /** Stops watching the file; idempotent. */
  close(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }
}

/** What tells one version of a file from another: its inode, size and times; "missing" if it cannot be read. */
async function fileVersion(file: string): Promise<string> {
  try {
    const info = await stat(file, { bigint: true })
    return `${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`
  } catch (error) {
    return `missing:${(error as NodeJS.ErrnoException).code ?? ''}`
  }
}

async function readPolicyFile(file: string): Promise<AccessPolicy> {
  const value = parseJsonObject(await readFile(file))
  if (value instanceof ProtocolError) throw new TypeError(`${file}: ${value.message}`)
  return parseAccessPolicy(value)
}

/**
 * Access rules: given, or read from a JSON file (and read again whenever it
 * changes). Rejects with a `TypeError` if the rules are not valid. The only
 * way to make an {@link AccessControl}.
 *
 * @example
 * ```ts
 * const access = await createAccessControl({
 *   default: 'deny',
 *   rules: [{ effect: 'allow', actions: ['call', 'describe'], info: { type: 'thermostat' } }],
 * })
 * const watched = await createAccessControl({ file: '/etc/autobus/access.json' })
 * ```
 */
export async function createAccessControl(
  source: AccessPolicy | (AccessControlOptions & { file: string }),
): Promise<AccessControl> {
  if (typeof (source as { file?: unknown }).file !== 'string')
    return new AccessControl(parseAccessPolicy(source))
  const options = source as AccessControlOptions & { file: string }
  // The version is taken before the read: a change during it is seen at
  // the next check.
  const version = await fileVersion(options.file)
  return new AccessControl(await readPolicyFile(options.file), options, version)
}

const ACTIONS: Partial<Record<RequestMessage['_command'], AccessAction>> = {
  call: 'call',
  listen: 'listen',
  watch: 'watch',
  channel_open: 'channel',
  stream_open: 'stream',
  describe: 'describe',
}

/**
 * Checks one command of a bound session against the rules; throws
 * {@link ForbiddenError} if denied. Commands that only undo (unwatch,
 * unlisten) or carry traffic of something already opened are not checked.
 * @internal
 */
export function authorizeCommand(
  access: AccessControl,
  asker: Asker,
  service: { id: string; info: Readonly<Record<string, unknown>> },
  message: RequestMessage,
): void {
  const action = ACTIONS[message._command]
  if (!action) return
  const member = 'name' in message && typeof message.name === 'string' ? message.name : undefined
  access.authorize({ asker, action, service, ...(member === undefined ? {} : { member }) })
}
