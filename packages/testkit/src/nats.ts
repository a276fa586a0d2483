import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type LineProcess, spawnLines } from './lines.js'
import type { Host } from './netns.js'

/** True where `nats-server` is on the PATH (CI installs it). */
export const hasNatsServer: boolean = (() => {
  try {
    execFileSync('nats-server', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

/** One member of a {@link NatsCluster}. */
export interface NatsServer {
  /** `nats://ADDRESS:PORT` for clients. */
  readonly url: string
  readonly process: LineProcess
}

/** A cluster of `nats-server` processes, fully routed to each other. */
export interface NatsCluster extends AsyncDisposable {
  readonly servers: readonly NatsServer[]
  /** Every member's client URL. */
  readonly urls: readonly string[]
  /** Kills every server still running and removes the configurations; idempotent. */
  close(): Promise<void>
}

/** Options of {@link startNatsCluster}. */
export interface NatsClusterOptions {
  /** How many servers, on loopback (default 3); ignored when `hosts` is given. */
  count?: number
  /** One host per server, each running in that host's namespace on its address. */
  hosts?: readonly Host[]
  /** The servers' `max_payload`, in bytes (default the server's, 1 MiB). */
  maxPayload?: number
  /** First client port (default one chosen from the process id); each server takes the next. */
  port?: number
}

let clusters = 0

/**
 * Starts a cluster of `nats-server` processes, each with a configuration
 * written to a temporary directory whose `cluster { routes [...] }` names
 * all the others, and resolves once each is ready and routed to the
 * others. Needs {@link hasNatsServer}.
 *
 * @example
 * ```ts
 * await using cluster = await startNatsCluster({ count: 3 })
 * createBridge({ bus, nats: { servers: cluster.urls } })
 * ```
 */
export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const hosts = options.hosts
  const count = hosts?.length ?? options.count ?? 3
  // Below the usual ephemeral range (32768 and up), so no connection holds them.
  const base = options.port ?? 20_000 + ((process.pid * 13 + clusters++ * 20) % 12_000)
  const dir = mkdtempSync(join(tmpdir(), 'autobus-nats-'))
  const members = Array.from({ length: count }, (_, i) => {
    const address = hosts?.[i]?.address ?? '127.0.0.1'
    return {
      address,
      port: hosts ? 4222 : base + i * 2,
      routePort: hosts ? 6222 : base + i * 2 + 1,
    }
  })
  const servers: NatsServer[] = []
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    for (const server of servers) server.process.kill()
    await Promise.all(servers.map((server) => server.process.exited))
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const ready: Promise<void>[] = []
    members.forEach((member, i) => {
      const routes = members
        .filter((_, j) => j !== i)
        .map((other) => `nats-route://${other.address}:${other.routePort}`)
      const config = [
        `server_name: n${i + 1}`,
        `listen: ${member.address}:${member.port}`,
        ...(options.maxPayload ? [`max_payload: ${options.maxPayload}`] : []),
        'cluster {',
        '  name: autobus',
        `  listen: ${member.address}:${member.routePort}`,
        `  routes [ ${routes.join(', ')} ]`,
        '}',
      ].join('\n')
      const file = join(dir, `n${i + 1}.conf`)
      writeFileSync(file, `${config}\n`)
      // The log goes to standard output, where it is read line by line.
      const args = ['-c', 'exec nats-server -c "$0" 2>&1', file]
      const process = hosts ? hosts[i]!.spawn('sh', args) : spawnLines('sh', args)
      servers.push({ url: `nats://${member.address}:${member.port}`, process })
      ready.push(untilRouted(process, count - 1))
    })
    await Promise.all(ready)
  } catch (error) {
    await close()
    throw error
  }
  return {
    servers,
    urls: servers.map((server) => server.url),
    close,
    [Symbol.asyncDispose]: close,
  }
}

async function untilRouted(process: LineProcess, routes: number): Promise<void> {
  let ready = false
  let created = 0
  const seen: string[] = []
  while (!ready || created < routes) {
    const line = await process.next().catch((error: Error) => {
      throw new Error(`${error.message}\n${seen.slice(-5).join('\n')}`)
    })
    seen.push(line)
    if (line.includes('Server is ready')) ready = true
    else if (line.includes('Route connection created')) created++
  }
  // The rest of the log is read and dropped, so that the pipe never fills.
  void (async () => {
    for (;;) await process.next()
  })().catch(() => {})
}
