import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// The metadata a registry and a user's tools read, the same for every
// published package.

const root = fileURLToPath(new URL('../../../', import.meta.url))
const licence = readFileSync(`${root}LICENSE`, 'utf8')
const packages = readdirSync(`${root}packages`).map((dir) => ({
  dir,
  manifest: JSON.parse(readFileSync(`${root}packages/${dir}/package.json`, 'utf8')),
}))
const published = packages.filter(({ manifest }) => !manifest.private)

describe('published package metadata', () => {
  it('publishes the layers and the conformance kit, and keeps the harnesses private', () => {
    expect(published.map(({ manifest }) => manifest.name).sort()).toEqual(
      [
        'bridge',
        'bus',
        'cli',
        'conformance',
        'dashboard',
        'discovery',
        'protocol',
        'proxy',
        'rpc',
        'transport',
      ].map((n) => `@autobus/${n}`),
    )
  })

  it.each(published)('$manifest.name is ready to publish', ({ dir, manifest }) => {
    expect(manifest).toMatchObject({
      license: 'MIT',
      author: 'Autobus contributors',
      type: 'module',
      engines: { node: '>=20' },
      files: expect.arrayContaining(['dist', 'README.md', 'LICENSE']),
      publishConfig: { access: 'public', provenance: true },
    })
    // Types first, then one entry for import and require (Node.js 20.19+
    // loads ES modules with require()); no deep imports.
    expect(manifest.exports['.']).toEqual({
      types: './dist/index.d.ts',
      default: './dist/index.js',
    })
    expect(Object.keys(manifest.exports['.'])[0]).toBe('types')
    expect(manifest.exports['./internal/*']).toBe(null)
    expect(readFileSync(`${root}packages/${dir}/LICENSE`, 'utf8')).toBe(licence)
  })

  it('names the licence holder the package.json files name', () => {
    expect(licence).toMatch(/^MIT License\n\nCopyright \(c\) Autobus contributors\n/)
  })
})
