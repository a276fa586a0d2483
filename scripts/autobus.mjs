#!/usr/bin/env node
// `pnpm -s autobus …` or `node scripts/autobus.mjs …`: runs the CLI from the
// workspace, building it first if needed. Only the command writes to stdout.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const main = `${root}packages/cli/dist/main.js`
if (!existsSync(main)) {
  process.stderr.write('building the workspace first…\n')
  // Under `pnpm run` this is pnpm itself, which may not be on the PATH.
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: read by this script, not by a turbo task
  const execpath = process.env.npm_execpath
  const [file, ...args] = execpath?.includes('pnpm') ? [process.execPath, execpath] : ['pnpm']
  execFileSync(file, [...args, 'run', 'build'], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  })
}
const { run } = await import(new URL('../packages/cli/dist/cli.js', import.meta.url).href)
process.exitCode = await run(process.argv.slice(2))
