import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'

/** A spawned process whose standard output is read one line at a time. */
export interface LineProcess {
  readonly child: ChildProcess
  /** The next line of standard output (waits for it). */
  next(): Promise<string>
  /** The next line, parsed as JSON. */
  json(): Promise<any>
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  readonly exited: Promise<number | string>
  /** SIGKILL if still running. */
  kill(signal?: NodeJS.Signals): void
}

const running = new Set<ChildProcess>()

/** Kills `child` with the others at exit or on {@link killAll}. */
export function track(child: ChildProcess): void {
  running.add(child)
  child.once('exit', () => running.delete(child))
}

// A test that fails half-way must not leave processes behind.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/** Spawns a command; its standard error goes to this process's. */
export function spawnLines(
  command: string,
  args: readonly string[],
  options: SpawnOptions = {},
): LineProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'], ...options })
  track(child)
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string)
  const queue: string[] = []
  const waiters: Array<{ resolve: (line: string) => void; reject: (error: Error) => void }> = []
  let ended = false
  createInterface({ input: child.stdout! })
    .on('line', (line) => {
      const waiter = waiters.shift()
      if (waiter) waiter.resolve(line)
      else queue.push(line)
    })
    .on('close', () => {
      ended = true
      for (const waiter of waiters.splice(0))
        waiter.reject(new Error(`${command} ${args.join(' ')}: output ended`))
    })
  const next = (): Promise<string> => {
    if (queue.length > 0) return Promise.resolve(queue.shift()!)
    if (ended) return Promise.reject(new Error(`${command} ${args.join(' ')}: output ended`))
    return new Promise((resolve, reject) => waiters.push({ resolve, reject }))
  }
  return {
    child,
    next,
    json: async () => JSON.parse(await next()),
    exited,
    kill: (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    },
  }
}

/** Kills every process spawned through this module that is still running. */
export function killAll(): void {
  for (const child of running) child.kill('SIGKILL')
}
