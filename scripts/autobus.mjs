#!/usr/bin/env node
// `pnpm autobus …`: runs the CLI from the workspace, building it first if needed.
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const main = `${root}packages/cli/dist/main.js`
if (!existsSync(main)) {
  process.stderr.write('building the workspace first…\n')
  execFileSync('pnpm', ['run', 'build'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
}
const { run } = await import(new URL('../packages/cli/dist/cli.js', import.meta.url).href)
process.exitCode = await run(process.argv.slice(2))
