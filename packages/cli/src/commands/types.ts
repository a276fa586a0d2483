import { type BusOptions, createBus, type ServiceDescription, Type } from '@autobus/bus'
import { type Command, InvalidArgumentError } from 'commander'
import { parseTarget } from '../target.js'

/** What the `types` command needs from the program that registers it. */
export interface TypesHost {
  /** The bus options of the command line, with discovery on or off. */
  busOptions(discovery: boolean): BusOptions
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json }
type JsonObject = { [key: string]: Json }

/** TypeBox code for a schema, and the schema that code builds. */
interface Built {
  readonly code: string
  readonly schema: unknown
}

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/** The same JSON, whatever the order of keys. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, inner) =>
    isObject(inner)
      ? Object.fromEntries(
          Object.keys(inner)
            .sort()
            .map((key) => [key, inner[key]]),
        )
      : inner,
  )
}

const SIMPLE = {
  string: 'String',
  number: 'Number',
  integer: 'Integer',
  boolean: 'Boolean',
  null: 'Null',
} as const

function without(schema: JsonObject, keys: readonly string[]): JsonObject {
  return Object.fromEntries(Object.entries(schema).filter(([key]) => !keys.includes(key)))
}

/** `, {…}` for the keywords a builder takes as options, or nothing. */
function optionsCode(options: JsonObject): string {
  return Object.keys(options).length > 0 ? `, ${JSON.stringify(options)}` : ''
}

function call(name: string, args: readonly unknown[], code: string): Built {
  const build = (Type as unknown as Record<string, (...a: unknown[]) => unknown>)[name]!
  return { code: `Type.${name}(${code})`, schema: build(...args) }
}

/** Guesses the TypeBox builder for a JSON Schema; undefined when none fits. */
function guess(schema: JsonObject): Built | undefined {
  const keys = Object.keys(schema)
  if (keys.length === 0) return { code: 'Type.Unknown()', schema: Type.Unknown() }
  if ('const' in schema && typeof schema.type === 'string') {
    const options = without(schema, ['const', 'type'])
    return call(
      'Literal',
      [schema.const, options],
      `${JSON.stringify(schema.const)}${optionsCode(options)}`,
    )
  }
  if (Array.isArray(schema.anyOf)) {
    const members = schema.anyOf.map(toTypeBox)
    const options = without(schema, ['anyOf'])
    return call(
      'Union',
      [members.map((m) => m.schema), options],
      `[${members.map((m) => m.code).join(', ')}]${optionsCode(options)}`,
    )
  }
  const type = schema.type
  if (typeof type === 'string' && type in SIMPLE) {
    const options = without(schema, ['type'])
    return call(SIMPLE[type as keyof typeof SIMPLE], [options], optionsCode(options).slice(2))
  }
  if (type === 'array' && Array.isArray(schema.items)) {
    const items = schema.items.map(toTypeBox)
    const options = without(schema, ['type', 'items', 'additionalItems', 'minItems', 'maxItems'])
    return call(
      'Tuple',
      [items.map((i) => i.schema), options],
      `[${items.map((i) => i.code).join(', ')}]${optionsCode(options)}`,
    )
  }
  if (type === 'array' && isObject(schema.items)) {
    const item = toTypeBox(schema.items)
    const options = without(schema, ['type', 'items'])
    return call('Array', [item.schema, options], `${item.code}${optionsCode(options)}`)
  }
  if (type === 'object' && isObject(schema.properties)) {
    const required = new Set(Array.isArray(schema.required) ? schema.required : [])
    const properties = Object.entries(schema.properties).map(([key, value]) => {
      const built = toTypeBox(value)
      return required.has(key)
        ? { key, code: built.code, schema: built.schema }
        : {
            key,
            code: `Type.Optional(${built.code})`,
            schema: Type.Optional(built.schema as never),
          }
    })
    const options = without(schema, ['type', 'properties', 'required'])
    return call(
      'Object',
      [Object.fromEntries(properties.map((p) => [p.key, p.schema])), options],
      `{ ${properties.map((p) => `${propertyKey(p.key)}: ${p.code}`).join(', ')} }${optionsCode(options)}`,
    )
  }
  if (type === 'object' && isObject(schema.patternProperties)) {
    const entries = Object.entries(schema.patternProperties)
    if (entries.length === 1 && entries[0]![0] === '^.*$') {
      const value = toTypeBox(entries[0]![1])
      const options = without(schema, ['type', 'patternProperties'])
      return call(
        'Record',
        [Type.String(), value.schema, options],
        `Type.String(), ${value.code}${optionsCode(options)}`,
      )
    }
  }
  return undefined
}

/**
 * TypeBox code that builds exactly `schema`: a builder where one gives the
 * same JSON Schema back, else `Type.Unsafe` around the schema as it is, so
 * the generated contract never states a type other than the service's.
 */
export function toTypeBox(schema: Json): Built {
  const fallback = {
    code: `Type.Unsafe(${JSON.stringify(schema)})`,
    schema: Type.Unsafe(schema as never),
  }
  if (!isObject(schema)) return fallback
  const built = guess(schema)
  return built && canonical(built.schema) === canonical(schema) ? built : fallback
}

function propertyKey(key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? key : JSON.stringify(key)
}

function entryCode(fields: Record<string, string | undefined>): string {
  const parts = Object.entries(fields).flatMap(([key, code]) =>
    code === undefined ? [] : [`${key}: ${code}`],
  )
  return parts.length === 0 ? '{}' : `{ ${parts.join(', ')} }`
}

function schemaList(list: readonly unknown[] | undefined): string | undefined {
  return list && `[${list.map((schema) => toTypeBox(schema as Json).code).join(', ')}]`
}

function section(name: string, entries: Record<string, string>): string[] {
  const names = Object.keys(entries)
  if (names.length === 0) return []
  return [
    `  ${name}: {`,
    ...names.map((entry) => `    ${propertyKey(entry)}: ${entries[entry]},`),
    '  },',
  ]
}

/**
 * A TypeScript module whose default export is the contract of a described
 * service: its functions, events, objects, channels and streams with their
 * JSON Schemas turned back into TypeBox. An object declared without a
 * schema becomes `Type.Unknown()`.
 */
export function contractModule(description: ServiceDescription): string {
  const doc = (text: string | undefined) => (text === undefined ? undefined : JSON.stringify(text))
  const map = <T>(entries: Record<string, T>, code: (entry: T) => string) =>
    Object.fromEntries(Object.entries(entries).map(([name, entry]) => [name, code(entry)]))
  const type = description.info.type
  return [
    `// The contract of service ${description.service}${typeof type === 'string' ? ` (type ${JSON.stringify(type)})` : ''},`,
    '// generated by `autobus types` from what the service describes.',
    "import { defineContract, Type } from '@autobus/bus'",
    '',
    'export default defineContract({',
    ...section(
      'functions',
      map(description.functions, (f) =>
        entryCode({
          doc: doc(f.doc),
          args: schemaList(f.args),
          result: f.result === undefined ? undefined : toTypeBox(f.result as Json).code,
        }),
      ),
    ),
    ...section(
      'events',
      map(description.events, (e) => entryCode({ doc: doc(e.doc), args: schemaList(e.args) })),
    ),
    ...section(
      'objects',
      map(description.objects, (o) =>
        o.value === undefined ? 'Type.Unknown()' : toTypeBox(o.value as Json).code,
      ),
    ),
    ...section(
      'channels',
      map(description.channels, (c) =>
        entryCode({
          doc: doc(c.doc),
          message: c.message === undefined ? undefined : toTypeBox(c.message as Json).code,
          reply: c.reply === undefined ? undefined : toTypeBox(c.reply as Json).code,
        }),
      ),
    ),
    ...section(
      'streams',
      map(description.streams, (s) => entryCode({ doc: doc(s.doc) })),
    ),
    '})',
    '',
  ].join('\n')
}

const seconds = (value: string) => {
  const parsed = Number(value)
  if (!Number.isFinite(parsed) || parsed < 0)
    throw new InvalidArgumentError('must be a number of seconds')
  return parsed
}

/** Registers `autobus types <target>`. */
export function addTypesCommand(program: Command, host: TypesHost): void {
  program
    .command('types')
    .description(
      "print a TypeScript module whose default export is a service's contract, from its description",
    )
    .argument(
      '<target>',
      'host:port/serviceId, or filter terms joined by commas: key=value, key!=value, key, !key',
    )
    .option('-w, --wait <seconds>', 'how long to wait for a matching service', seconds, 3)
    .action(async (text: string, options: { wait: number }) => {
      const target = parseTarget(text)
      const bus = await createBus(host.busOptions(target.kind === 'filter'))
      try {
        let description: ServiceDescription
        if (target.kind === 'address') {
          description = await (await bus.connect(target)).describe()
        } else {
          const proxy = bus.singleServiceProxy(target.filter)
          await proxy.waitForBind({ timeout: options.wait * 1000 })
          description = await proxy.describe()
        }
        process.stdout.write(contractModule(description))
      } finally {
        await bus.close()
      }
    })
}
