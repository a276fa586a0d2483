/**
 * Code blocks of the Markdown docs, as the docs tests read them.
 *
 * A block may be preceded (blank lines between allowed) by one marker comment:
 *
 * - `<!-- docs-check: skip REASON -->`: not compiled. The reason is required;
 *   use it only for a block that cannot be a program (say, one that shows an
 *   error on purpose).
 * - `<!-- docs-check: continue -->`: compiled after the previous block of the
 *   same file, so a page can build one program across paragraphs.
 * - `<!-- docs-check: run FILE -->`: compiled, and also run as FILE by the
 *   install test in a fresh project that installed the packed packages.
 */

/** One fenced code block of a Markdown file. */
export interface CodeBlock {
  /** The Markdown file, relative to the repository. */
  readonly file: string
  /** The fence's language, as written (`ts`, `js`, `sh`…). */
  readonly lang: string
  /** 1-based line of the block's first code line in the Markdown file. */
  readonly line: number
  readonly code: string
  readonly marker?:
    | { readonly kind: 'skip'; readonly reason: string }
    | { readonly kind: 'continue' }
    | { readonly kind: 'run'; readonly as: string }
}

const MARKER = /^<!--\s*docs-check:\s*(\S+)(?:\s+(.*?))?\s*-->$/

/** The fenced code blocks of `markdown` (the text of `file`), in order. */
export function codeBlocks(file: string, markdown: string): CodeBlock[] {
  const lines = markdown.split('\n')
  const blocks: CodeBlock[] = []
  let marker: CodeBlock['marker']
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!.trim()
    const found = MARKER.exec(text)
    if (found) {
      marker = parseMarker(file, i + 1, found[1]!, found[2] ?? '')
      continue
    }
    const fence = /^(```+|~~~+)\s*([\w-]*)/.exec(text)
    if (!fence) {
      if (text !== '') marker = undefined
      continue
    }
    const start = i + 1
    let end = start
    while (end < lines.length && !lines[end]!.trim().startsWith(fence[1]!)) end++
    blocks.push({
      file,
      lang: fence[2]!,
      line: start + 1,
      code: lines.slice(start, end).join('\n'),
      ...(marker ? { marker } : {}),
    })
    marker = undefined
    i = end
  }
  return blocks
}

function parseMarker(file: string, line: number, kind: string, rest: string): CodeBlock['marker'] {
  if (kind === 'skip' && rest !== '') return { kind, reason: rest }
  if (kind === 'continue' && rest === '') return { kind }
  if (kind === 'run' && /^[\w.-]+\.m?[jt]s$/.test(rest)) return { kind, as: rest }
  throw new Error(`${file}:${line}: bad docs-check marker "${kind} ${rest}"`)
}

/** Whether a block is TypeScript or JavaScript, the languages the docs tests compile. */
export function isProgram(block: CodeBlock): boolean {
  return ['ts', 'typescript', 'js', 'javascript', 'mjs', 'mts'].includes(block.lang)
}
