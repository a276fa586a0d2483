import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { beforeAll, describe, expect, it } from 'vitest'
import { type CodeBlock, codeBlocks, isProgram } from './code-blocks.js'

// Every TypeScript and JavaScript block of the docs is compiled against the
// workspace packages' sources, so an example that no longer matches the API
// fails here instead of in a reader's editor.

const root = fileURLToPath(new URL('../../../', import.meta.url))

const markdownFiles = [
  'README.md',
  ...readdirSync(`${root}docs`)
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
  ...readdirSync(`${root}packages`)
    .filter((name) => existsSync(`${root}packages/${name}/README.md`))
    .map((name) => `packages/${name}/README.md`),
]

/** Blocks compiled as one program: a block and those that continue it. */
interface Unit {
  readonly file: string
  readonly path: string
  readonly blocks: { readonly block: CodeBlock; readonly firstLine: number }[]
  text: string
}

function unitsOf(file: string): Unit[] {
  const units: Unit[] = []
  for (const block of codeBlocks(file, readFileSync(`${root}${file}`, 'utf8'))) {
    if (!isProgram(block) || block.marker?.kind === 'skip') continue
    const last = units.at(-1)
    if (block.marker?.kind === 'continue') {
      if (!last) throw new Error(`${file}:${block.line}: "continue" with no block before it`)
      last.blocks.push({ block, firstLine: last.text.split('\n').length + 1 })
      last.text += `\n\n${block.code}`
      continue
    }
    const extension = ['js', 'javascript', 'mjs'].includes(block.lang) ? 'mjs' : 'mts'
    // Beside the bus package, so bare imports resolve as they do for a user
    // of @autobus/bus (typebox, node's types).
    const path = `${root}packages/bus/docs-check/${file.replaceAll('/', '--')}-line-${block.line}.${extension}`
    units.push({ file, path, blocks: [{ block, firstLine: 1 }], text: block.code })
  }
  return units
}

/** Where a line of a unit comes from in the Markdown. */
function origin(unit: Unit, line: number): string {
  const from = unit.blocks.findLast((entry) => entry.firstLine <= line) ?? unit.blocks[0]!
  return `${unit.file}:${from.block.line + line - from.firstLine}`
}

function compile(units: Unit[]): Map<Unit, string[]> {
  const base = ts.readConfigFile(`${root}tsconfig.base.json`, ts.sys.readFile)
  const { options } = ts.parseJsonConfigFileContent(base.config, ts.sys, root)
  Object.assign(options, {
    noEmit: true,
    allowJs: true,
    checkJs: true,
    declaration: false,
    declarationMap: false,
    sourceMap: false,
    // The sources, as the test suite uses them: no build needed.
    paths: { '@autobus/*': [`${root}packages/*/src/index.ts`] },
  } satisfies ts.CompilerOptions)
  const virtual = new Map(units.map((unit) => [unit.path, unit.text]))
  const host = ts.createCompilerHost(options)
  const { getSourceFile, fileExists, readFile } = host
  host.getCurrentDirectory = () => root
  host.fileExists = (name) => virtual.has(name) || fileExists.call(host, name)
  host.readFile = (name) => virtual.get(name) ?? readFile.call(host, name)
  host.getSourceFile = (name, language, ...rest) => {
    const text = virtual.get(name)
    return text === undefined
      ? getSourceFile.call(host, name, language, ...rest)
      : ts.createSourceFile(name, text, language, true)
  }
  const program = ts.createProgram([...virtual.keys()], options, host)
  const problems = new Map<Unit, string[]>()
  for (const unit of units) {
    const source = program.getSourceFile(unit.path)!
    problems.set(
      unit,
      ts.getPreEmitDiagnostics(program, source).map((diagnostic) => {
        const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')
        if (diagnostic.file?.fileName !== unit.path || diagnostic.start === undefined)
          return `${unit.file}: ${message}`
        const { line } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start)
        return `${origin(unit, line + 1)}: TS${diagnostic.code} ${message}`
      }),
    )
  }
  return problems
}

/** A page with a mistake in a continued block, to check what a failure reports. */
function wrongExample(): Unit {
  const file = 'docs/example.md'
  const markdown = [
    '# Example',
    '',
    '```ts',
    "import { createBus } from '@autobus/bus'",
    '',
    'const bus = await createBus()',
    '```',
    '',
    '<!-- docs-check: continue -->',
    '```ts',
    'await bus.closeAll()',
    '```',
    '',
    '<!-- docs-check: skip shows a mistake on purpose -->',
    '```ts',
    'not even typescript',
    '```',
  ].join('\n')
  const blocks = codeBlocks(file, markdown)
  expect(blocks.map((block) => block.marker?.kind)).toEqual([undefined, 'continue', 'skip'])
  return {
    file,
    path: `${root}packages/bus/docs-check/example.mts`,
    blocks: [
      { block: blocks[0]!, firstLine: 1 },
      { block: blocks[1]!, firstLine: 5 },
    ],
    text: `${blocks[0]!.code}\n\n${blocks[1]!.code}`,
  }
}

describe('code blocks of the docs', () => {
  const units = new Map(markdownFiles.map((file) => [file, unitsOf(file)]))
  const wrong = wrongExample()
  let problems: Map<Unit, string[]>
  beforeAll(() => {
    // One program for every block: the packages are checked once, not per block.
    problems = compile([...[...units.values()].flat(), wrong])
  }, 120_000)

  it.each(markdownFiles)('%s compiles', (file) => {
    const found = units.get(file)!.flatMap((unit) => problems.get(unit)!)
    expect(found).toEqual([])
  })

  it('compiles the README example that the install test runs', () => {
    const run = units
      .get('README.md')!
      .filter((unit) => unit.blocks[0]!.block.marker?.kind === 'run')
    expect(run).toHaveLength(1)
  })

  it('reports a wrong example with the line of the Markdown it is on', () => {
    expect(problems.get(wrong)).toEqual([
      expect.stringMatching(/^docs\/example\.md:11: TS2339 Property 'closeAll' does not exist/),
    ])
  })

  it('refuses a skip marker without a reason', () => {
    expect(() => codeBlocks('x.md', '<!-- docs-check: skip -->\n```ts\n```')).toThrow(/x\.md:1/)
  })
})
