#!/usr/bin/env node
// `pnpm pack:all [folder]`: builds the workspace and packs every published
// package into one folder of tarballs (default `packs/`), which a project
// installs with `npm install <folder>/*.tgz` until the packages are on a
// registry. Prints the tarballs' paths, one per line.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const args = process.argv.slice(2)
const build = !args.includes('--no-build')
const out = resolve(args.find((arg) => !arg.startsWith('--')) ?? join(root, 'packs'))

// Under `pnpm run` this is pnpm itself; run it with this Node so a pnpm
// reached through npx works as well as one on the PATH.
// biome-ignore lint/suspicious/noUndeclaredEnvVars: read by this script, not by a turbo task
const execpath = process.env.npm_execpath
const pnpm = execpath?.includes('pnpm') ? [process.execPath, execpath] : ['pnpm']
const run = (argv, options) =>
  execFileSync(pnpm[0], [...pnpm.slice(1), ...argv], { cwd: root, ...options })

const published = readdirSync(join(root, 'packages'))
  .map((dir) => JSON.parse(readFileSync(join(root, 'packages', dir, 'package.json'), 'utf8')))
  .filter((manifest) => !manifest.private)
  .map((manifest) => manifest.name)

if (build) {
  const filters = published.map((name) => `--filter=${name}`)
  run(['exec', 'turbo', 'run', 'build', '--output-logs=errors-only', ...filters], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
}
// Tarballs of older versions would be installed beside the new ones.
rmSync(out, { recursive: true, force: true })
mkdirSync(out, { recursive: true })
run(['-r', ...published.flatMap((name) => ['--filter', name]), 'pack', '--pack-destination', out], {
  stdio: ['ignore', 'ignore', 'inherit'],
})
const tarballs = readdirSync(out)
  .filter((file) => file.endsWith('.tgz'))
  .map((file) => join(out, file))
if (tarballs.length !== published.length) {
  process.stderr.write(
    `pack:all: expected ${published.length} tarballs, found ${tarballs.length}\n`,
  )
  process.exit(1)
}
process.stdout.write(`${tarballs.join('\n')}\n`)
process.stderr.write(
  `pack:all: install them in a project with: npm install ${join(out, '*.tgz')}\n`,
)
