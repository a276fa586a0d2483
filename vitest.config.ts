import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const root = fileURLToPath(new URL('.', import.meta.url))
const packages = readdirSync(`${root}packages`)

// Tests import sibling packages by name; point those names at their sources
// so the suite needs no build. A package's `./internal` entry point, where
// it has one, is its src/internal.ts.
const alias = [
  { find: /^@autobus\/([^/]+)\/internal$/, replacement: `${root}packages/$1/src/internal.ts` },
  { find: /^@autobus\/([^/]+)$/, replacement: `${root}packages/$1/src/index.ts` },
]

export default defineConfig({
  resolve: { alias },
  test: {
    reporters: process.env.CI ? ['default'] : ['default'],
    projects: packages.map((name) => ({
      extends: true,
      test: {
        name,
        include: [`packages/${name}/test/**/*.test.ts`],
        testTimeout: 30_000,
        hookTimeout: 30_000,
        // A poll ends as soon as what it waits for holds; its timeout only
        // bounds how late that may be, and a loaded machine can be late.
        expect: { poll: { timeout: 10_000 } },
      },
    })),
  },
})
