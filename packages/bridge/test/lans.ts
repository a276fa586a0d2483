import { fileURLToPath } from 'node:url'
import type { Host, LineProcess } from '@autobus/testkit'
import { afterEach, expect } from 'vitest'

/** The built CLI (these tests run dist/). */
export const cli = fileURLToPath(new URL('../../cli/dist/main.js', import.meta.url))
/** The test's agent on a host: `serve`, `client`, `use`, `drop`, `calls` (fixtures/agent.mjs). */
export const agent = fileURLToPath(new URL('./fixtures/agent.mjs', import.meta.url))

// Each process finds its buses by the namespace's own broadcast, on the
// default port and interfaces, whatever the environment running the tests says.
const env = { ...process.env, NO_COLOR: '1', AUTOBUS_DISCOVERY_PORT: '', AUTOBUS_INTERFACES: '' }

/**
 * Node processes on the hosts of network namespaces, killed after each
 * test: `run` starts a script, `bridge` an `autobus bridge --json` and
 * waits until it is ready, `use` runs the agent's checks of every
 * capability.
 */
export function onHosts() {
  const spawned: LineProcess[] = []
  afterEach(() => {
    for (const process of spawned.splice(0)) process.kill()
  })
  const run = (host: Host, script: string, args: string[]): LineProcess => {
    const process = host.node(script, args, { env })
    spawned.push(process)
    return process
  }
  return {
    run,
    /**
     * Runs the agent's `use` on `host` and checks what it reports: a call,
     * an event, a watch, a channel and a 1 MiB stream through the test
     * service, found `hops` bridges away. The process keeps its watch open
     * and reports `lost` when the connection goes.
     */
    async use(host: Host, hops: number): Promise<LineProcess> {
      const user = run(host, agent, ['use'])
      const { used } = await until(user, (line) => line.used)
      expect(used).toEqual({
        sum: 5,
        ticks: [1],
        values: [0, 1],
        message: { hello: 'there' },
        received: 1024 * 1024,
        hops,
      })
      return user
    },
    async bridge(host: Host, args: string[]): Promise<LineProcess> {
      const process = run(host, cli, ['bridge', '--json', ...args])
      await until(process, (line) => line.ready)
      return process
    },
  }
}

/** Reads lines until one matches; the lines before it are dropped. */
export async function until(process: LineProcess, match: (line: any) => boolean): Promise<any> {
  for (;;) {
    const line = await process.json()
    if (match(line)) return line
  }
}
