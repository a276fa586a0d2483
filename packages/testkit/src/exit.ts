import { type SpawnOptions, spawn } from 'node:child_process'
import { once } from 'node:events'
import { track } from './lines.js'

/** How a process ended and everything it wrote. */
export interface Exited {
  /** The exit code, or the signal's name if a signal ended it. */
  code: number | string
  stdout: string
  stderr: string
}

/** A process started by {@link runToExit}. */
export interface RunningToExit {
  readonly child: ReturnType<typeof spawn>
  /** Resolves once the process has exited. */
  readonly exited: Promise<Exited>
  /** Standard output so far. */
  stdout(): string
  /** Resolves once standard output holds a full line (or the process has exited). */
  firstLine(): Promise<string>
}

/** Options of {@link runToExit}. */
export interface RunToExitOptions extends Pick<SpawnOptions, 'env' | 'cwd'> {
  /**
   * Written to standard input, which is then ended; `{ open: true }` leaves
   * standard input open, as a terminal would. Default: ended at once, empty.
   */
  input?: string | { open: true }
}

/**
 * Spawns a command and collects its output until it exits.
 *
 * @example
 * ```ts
 * const { code, stdout } = await runToExit(process.execPath, [main, 'list']).exited
 * ```
 */
export function runToExit(
  command: string,
  args: readonly string[],
  options: RunToExitOptions = {},
): RunningToExit {
  const { input = '', ...spawnOptions } = options
  const child = spawn(command, args, { ...spawnOptions, stdio: ['pipe', 'pipe', 'pipe'] })
  track(child)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  if (typeof input === 'string') child.stdin.end(input)
  // 'close', not 'exit': output written just before exiting is in by then.
  const exited = once(child, 'close').then(([code, signal]) => ({
    code: (code ?? signal) as number | string,
    stdout,
    stderr,
  }))
  const firstLine = async () => {
    while (!stdout.includes('\n') && child.exitCode === null && child.signalCode === null)
      await Promise.race([once(child.stdout, 'data'), exited])
    return stdout.split('\n')[0]!
  }
  return { child, exited, stdout: () => stdout, firstLine }
}
