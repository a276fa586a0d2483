import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// `pnpm demo` as a reader sees it: every step, in order, and each line under
// the step that caused it. On loopback and a discovery port of its own.

const demo = fileURLToPath(new URL('../../cli/dist/demo.js', import.meta.url))

describe('the demo', () => {
  it('runs every step and prints nothing from one step under another', async () => {
    const output = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        [demo],
        {
          timeout: 60_000,
          env: {
            ...process.env,
            NO_COLOR: '1',
            AUTOBUS_DISCOVERY_PORT: String(20_000 + ((process.pid + 17) % 20_000)),
            AUTOBUS_INTERFACES: 'lo',
          },
        },
        (error, stdout, stderr) =>
          error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout),
      )
    })
    const steps = output.split(/\n(?=\[\s*[\d.]+s\] \d+\. )/)
    expect(steps.slice(1).map((step) => /^\[\s*[\d.]+s\] (\d+)\./.exec(step)?.[1])).toEqual([
      '1',
      '2',
      '3',
      '4',
      '5',
      '6',
      '7',
      '8',
      '9',
      '10',
    ])
    // Watchers get null when their connection closes: steps 4 to 7 close
    // theirs before the connection, so none shows up later.
    for (const step of steps.slice(4, 8)) expect(step).not.toContain('null')
    expect(steps[10]).not.toContain('null')
    expect(steps[10]).toMatch(/done in [\d.]+ s/)
  })
})
