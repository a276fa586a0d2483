import { execFile } from 'node:child_process'
import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { type Contract, createBus, defineContract, Type } from '@autobus/bus'
import { afterAll, describe, expect, it } from 'vitest'

// contract → service → introspection → `autobus types` → module: the
// module's contract has the very schemas the service was made from.

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))
const generated = fileURLToPath(new URL('./.generated/', import.meta.url))
afterAll(() => rmSync(generated, { recursive: true, force: true }))

const Point = Type.Object(
  { x: Type.Number(), y: Type.Number(), label: Type.Optional(Type.String({ maxLength: 20 })) },
  { additionalProperties: false },
)

const original = defineContract({
  functions: {
    add: { doc: 'Adds two numbers.', args: [Type.Number(), Type.Number()], result: Type.Number() },
    move: { args: [Point, Type.Tuple([Type.Integer(), Type.Integer()])], result: Point },
    pick: {
      args: [Type.Union([Type.Literal('a'), Type.Literal('b'), Type.Null()])],
      result: Type.Array(Type.Boolean(), { minItems: 1 }),
    },
    tally: {
      args: [Type.Record(Type.String(), Type.Integer({ minimum: 0 }))],
      result: Type.Unknown(),
    },
    // No builder gives this back: it goes through as it is.
    odd: { args: [Type.Unsafe<string | null>({ type: ['string', 'null'] })] },
    anything: {},
    'with-dash': { args: [] },
  },
  events: { moved: { doc: 'A point moved.', args: [Point, Type.String({ format: 'date-time' })] } },
  objects: { where: Point, count: Type.Integer() },
  channels: {
    chat: {
      doc: 'Lines of text.',
      message: Type.String(),
      reply: Type.Object({ from: Type.String(), text: Type.String() }),
    },
    news: { reply: Type.String() },
  },
  streams: { bytes: { doc: 'Raw bytes.' } },
})

/** The description of what a contract declares, as introspection shows it. */
function sections(contract: Contract) {
  return JSON.parse(
    JSON.stringify({
      functions: contract.functions,
      events: contract.events,
      objects: Object.fromEntries(
        Object.entries(contract.objects ?? {}).map(([name, value]) => [name, { value }]),
      ),
      channels: contract.channels,
      streams: contract.streams,
    }),
  )
}

function types(target: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [main, 'types', target],
      { timeout: 20_000 },
      (error, stdout, stderr) =>
        resolve({
          code: typeof error?.code === 'number' ? error.code : error ? 1 : 0,
          stdout,
          stderr,
        }),
    )
  })
}

describe('autobus types', () => {
  it('prints a module whose contract has the schemas the service was made from', async () => {
    await using bus = await createBus({ discovery: false, host: '127.0.0.1' })
    const service = bus.createService(
      original,
      {
        functions: {
          add: (a, b) => a + b,
          move: (p) => p,
          pick: () => [true],
          tally: (counts) => counts,
          odd: (text) => text,
          anything: () => null,
          'with-dash': () => null,
        },
        objects: { where: { x: 0, y: 0 }, count: 0 },
        channels: { chat: () => {}, news: () => {} },
        streams: { bytes: () => {} },
      },
      { info: { type: 'test.roundtrip' } },
    )
    bus.publish(service)
    const printed = await types(`127.0.0.1:${bus.port}/${service.id}`)
    expect(printed.stderr).toBe('')
    expect(printed.code).toBe(0)
    expect(printed.stdout).toContain("import { defineContract, Type } from '@autobus/bus'")
    expect(printed.stdout).toContain('Type.Unsafe({"type":["string","null"]})')
    expect(printed.stdout).not.toMatch(/Type\.Unsafe\(\{"type":"number"/)

    mkdirSync(generated, { recursive: true })
    const file = `${generated}roundtrip-${process.pid}.mts`
    writeFileSync(file, printed.stdout)
    const module = (await import(file)) as { default: Contract }
    expect(sections(module.default)).toEqual(sections(original))
  })

  it('exits 3 when no service matches', async () => {
    const printed = await types('127.0.0.1:1/none')
    expect(printed.code).toBe(3)
  })
})
