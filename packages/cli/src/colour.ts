import pc from 'picocolors'

/** Functions that wrap text in one colour or style each; plain when colour is off. */
export type Colours = ReturnType<typeof pc.createColors>

/**
 * Whether output to `stream` is coloured: never with `--no-color` or a
 * non-empty `NO_COLOR`; always with `FORCE_COLOR` set to anything but `0` or
 * `false`; otherwise only on a terminal that is not `TERM=dumb`. A pipe, a
 * file or a CI log gets plain text, so what is read by a program or a person
 * later carries no escape codes.
 */
export function wantsColour(
  stream: { isTTY?: boolean },
  env: NodeJS.ProcessEnv = process.env,
  argv: readonly string[] = process.argv,
): boolean {
  if (argv.includes('--no-color') || (env.NO_COLOR ?? '') !== '') return false
  const force = env.FORCE_COLOR
  if (force !== undefined) return force !== '0' && force !== 'false'
  return stream.isTTY === true && env.TERM !== 'dumb'
}

/** Colours for what goes to stdout. */
export const out: Colours = pc.createColors(wantsColour(process.stdout))
/** Colours for what goes to stderr. */
export const err: Colours = pc.createColors(wantsColour(process.stderr))
