import { execFileSync, type SpawnOptions } from 'node:child_process'
import { type LineProcess, spawnLines } from './lines.js'

/** True where network namespaces can be made: root and iproute2 (CI has both). */
export const canUseNamespaces: boolean = (() => {
  if (process.getuid?.() !== 0) return false
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
})()

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' })

/** One "host": a network namespace with one interface on the LAN. */
export interface Host {
  /** Namespace name. */
  readonly ns: string
  /** Its IPv4 address on the LAN (a /24). */
  readonly address: string
  /** The interface name inside the namespace. */
  readonly device: 'eth0'
  /** Spawns a command inside this host. */
  spawn(command: string, args: readonly string[], options?: SpawnOptions): LineProcess
  /** Spawns `node` (this process's binary) with a script and arguments inside this host. */
  node(script: string, args?: readonly string[], options?: SpawnOptions): LineProcess
  /** Runs a command inside this host to completion and returns its output. */
  exec(command: string, args: readonly string[]): string
  /** Cuts this host off the LAN (its cable unplugged) or plugs it back in. */
  setLinkUp(up: boolean): void
}

/** Hosts on one Ethernet segment: a bridge in a switch namespace. */
export interface Lan extends AsyncDisposable {
  readonly hosts: readonly Host[]
  /** Removes every namespace; idempotent. */
  close(): Promise<void>
}

let lans = 0

/**
 * Builds `count` hosts on one LAN (10.X.Y.1 … 10.X.Y.count, a /24), each in
 * its own network namespace with loopback up. Needs {@link canUseNamespaces}.
 *
 * @example
 * ```ts
 * await using lan = createLan(3)
 * const list = lan.hosts[2]!.node(cli, ['list', '--json'])
 * ```
 */
export function createLan(count: number): Lan {
  const tag = `ab${process.pid % 10_000}l${lans}`
  const subnet = `10.${200 + (lans % 50)}.${process.pid % 250}`
  lans++
  const switchNs = `${tag}sw`
  const names: string[] = [switchNs]
  const veths: string[] = []
  ip('netns', 'add', switchNs)
  ip('-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge')
  ip('-n', switchNs, 'link', 'set', 'br0', 'up')
  const hosts: Host[] = []
  for (let i = 0; i < count; i++) {
    const ns = `${tag}h${i + 1}`
    const veth = `${tag}v${i}`
    const address = `${subnet}.${i + 1}`
    names.push(ns)
    veths.push(veth)
    ip('netns', 'add', ns)
    ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
    ip('link', 'set', veth, 'netns', switchNs)
    ip('-n', switchNs, 'link', 'set', veth, 'master', 'br0', 'up')
    ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0')
    ip('-n', ns, 'link', 'set', 'eth0', 'up')
    ip('-n', ns, 'link', 'set', 'lo', 'up')
    const spawn = (command: string, args: readonly string[], options: SpawnOptions = {}) =>
      spawnLines('ip', ['netns', 'exec', ns, command, ...args], options)
    hosts.push({
      ns,
      address,
      device: 'eth0',
      spawn,
      node: (script, args = [], options) => spawn(process.execPath, [script, ...args], options),
      exec: (command, args) =>
        execFileSync('ip', ['netns', 'exec', ns, command, ...args], { encoding: 'utf8' }),
      setLinkUp: (up) => ip('-n', switchNs, 'link', 'set', veth, up ? 'up' : 'down'),
    })
  }
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    for (const ns of names) {
      try {
        ip('netns', 'del', ns)
      } catch {
        // Already gone.
      }
    }
  }
  return { hosts, close, [Symbol.asyncDispose]: close }
}
