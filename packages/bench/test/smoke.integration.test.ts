import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const main = fileURLToPath(new URL('../dist/main.js', import.meta.url))

describe('pnpm bench --smoke', () => {
  it('runs every scenario and prints JSON lines and a summary', async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--expose-gc', main, '--smoke', '--json'],
      {
        timeout: 180_000,
      },
    )
    const lines = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line))
    const summary = lines.at(-1)
    expect(summary).toMatchObject({ summary: true, smoke: true })
    for (const key of [
      'rpc_pipelined_vs_moleculer',
      'rpc_pipelined_vs_raw',
      'rpc_p50_vs_best_peer',
      'events_vs_raw',
      'stream_vs_raw',
      'hostile_cpu_ms_per_mib',
      'hostile_flood_call_p99_ms',
      'hostile_flood_call_max_ms',
      'seal_sign_verify_us',
      'seal_bytes_added',
      'tls_setup_p50_ms',
      'tls_pipelined_vs_plain',
      'tls_p50_added_us',
      'tls_bare_p50_added_us',
    ]) {
      expect(summary).toHaveProperty(key)
    }
    const names = new Set(lines.slice(0, -1).map((line) => line.name))
    for (const name of [
      'rpc',
      'events',
      'watch',
      'channel',
      'stream',
      'memory.idle_connection',
      'memory.discovered_services',
      'hostile.nesting',
      'discovery',
      'security',
    ]) {
      expect(names).toContain(name)
    }
    // Every hostile frame was refused; how fast is a figure, never asserted.
    const hostile = lines.find((line) => line.name === 'hostile.nesting')
    expect(hostile.frames_refused_too_deep).toBeGreaterThanOrEqual(2)
    // A seal adds 52 bytes and the key id (8 characters from keygen).
    expect(lines.find((line) => line.name === 'security')).toMatchObject({ seal_bytes_added: 60 })
    expect(lines.find((line) => line.name === 'discovery')).toMatchObject({
      answers_within_2s_pct: 100,
    })
  }, 200_000)
})
