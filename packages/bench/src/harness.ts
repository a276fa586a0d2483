import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { createInterface, type Interface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Ready } from './payload.js'

const serverScript = fileURLToPath(new URL('./server.js', import.meta.url))

/** A server process of one system. */
export interface Server {
  ready: Ready
  child: ChildProcess
  stop(): Promise<void>
}

/** A process of the benchmark's own, started and ready. */
export interface ReadyProcess<R> {
  /** The first line it printed, parsed. */
  ready: R
  child: ChildProcess
  /** The lines it prints after that one. */
  lines: Interface
  /** Kills it with `signal` (default SIGKILL) and waits until it has exited; at once if it has. */
  stop(signal?: NodeJS.Signals): Promise<void>
}

/**
 * Runs `script` with `args` in a Node process of its own and waits for the
 * first line it prints: the JSON that says it is ready. `name` says which
 * one in the error if it exits before that.
 */
export async function startReady<R>(
  script: string,
  args: readonly string[],
  options: { name: string; nodeOptions?: readonly string[] },
): Promise<ReadyProcess<R>> {
  const child = spawn(process.execPath, [...(options.nodeOptions ?? []), script, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const lines = createInterface({ input: child.stdout! })
  const [first] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(() => [undefined]),
  ])) as [string | undefined]
  if (!first) throw new Error(`${options.name} exited before it was ready`)
  return {
    ready: JSON.parse(first) as R,
    child,
    lines,
    stop: async (signal = 'SIGKILL') => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill(signal)
      await exited
    },
  }
}

/** Starts `server.js <system> …args` in its own process and waits until it is ready. */
export async function startServer(
  system: string,
  args: string[] = [],
  nodeOptions: string[] = [],
): Promise<Server> {
  const server = await startReady<Ready>(serverScript, [system, ...args], {
    name: `${system} server`,
    nodeOptions: ['--expose-gc', ...nodeOptions],
  })
  return {
    ready: server.ready,
    child: server.child,
    stop: () => server.stop(nodeOptions.length > 0 ? 'SIGTERM' : 'SIGKILL'),
  }
}

/**
 * Starts a local nats-server from the PATH. The benchmark installs nothing:
 * without it the NATS column is skipped with this message.
 */
export async function startNats(): Promise<{ port: number; stop(): Promise<void> } | string> {
  try {
    execFileSync('nats-server', ['--version'], { stdio: 'ignore' })
  } catch {
    return 'nats-server is not on the PATH (Debian/Ubuntu: apt-get install nats-server)'
  }
  const port = 14_222 + (process.pid % 1000)
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' })
  for (let i = 0; i < 50; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port })
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (up) {
      return {
        port,
        stop: async () => {
          child.kill('SIGKILL')
          await once(child, 'exit').catch(() => {})
        },
      }
    }
  }
  child.kill('SIGKILL')
  return 'nats-server did not start'
}

/** The p-th percentile (0–100) of a list of numbers. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index]!
}

export const median = (values: readonly number[]) => percentile(values, 50)

/** Milliseconds since an origin, with sub-millisecond precision. */
export const now = () => performance.now()
