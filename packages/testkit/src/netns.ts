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

/** A fresh tag for namespace names and a fresh /24 for one LAN. */
function nextLan(): { tag: string; subnet: string } {
  const tag = `ab${process.pid % 10_000}l${lans}`
  const subnet = `10.${200 + (lans % 50)}.${process.pid % 250}`
  lans++
  return { tag, subnet }
}

function removeNamespaces(names: readonly string[]): () => Promise<void> {
  let closed = false
  return async () => {
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
}

/**
 * Builds one LAN: a switch namespace with a bridge and `count` hosts on it.
 * Every namespace made is pushed to `names` as soon as it exists, so a
 * failure half-way leaves nothing the caller cannot remove.
 */
function buildLan(
  count: number,
  names: string[],
): { hosts: Host[]; switchNs: string; subnet: string; tag: string } {
  const { tag, subnet } = nextLan()
  const switchNs = `${tag}sw`
  ip('netns', 'add', switchNs)
  names.push(switchNs)
  ip('-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge')
  ip('-n', switchNs, 'link', 'set', 'br0', 'up')
  const hosts: Host[] = []
  for (let i = 0; i < count; i++) {
    const ns = `${tag}h${i + 1}`
    const veth = `${tag}v${i}`
    const address = `${subnet}.${i + 1}`
    ip('netns', 'add', ns)
    names.push(ns)
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
  return { hosts, switchNs, subnet, tag }
}

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
  const names: string[] = []
  const close = removeNamespaces(names)
  try {
    const { hosts } = buildLan(count, names)
    return { hosts, close, [Symbol.asyncDispose]: close }
  } catch (error) {
    void close()
    throw error
  }
}

/** LANs joined by a router. */
export interface RoutedLans extends AsyncDisposable {
  /** The hosts of each LAN, in the order of the counts given. */
  readonly lans: readonly (readonly Host[])[]
  /** Removes every namespace; idempotent. */
  close(): Promise<void>
}

/**
 * Builds one LAN per count, joined by a router namespace (10.X.Y.254 on
 * each LAN, the hosts' default gateway) that forwards unicast between them.
 * Broadcast stays on its LAN, as behind any router: a network where
 * discovery by broadcast cannot cross. Needs {@link canUseNamespaces}.
 *
 * @example
 * ```ts
 * await using routed = createRoutedLans([1, 1])
 * const [[a], [b]] = routed.lans
 * ```
 */
export function createRoutedLans(counts: readonly number[]): RoutedLans {
  const names: string[] = []
  const close = removeNamespaces(names)
  try {
    const router = `ab${process.pid % 10_000}r${lans}`
    ip('netns', 'add', router)
    names.push(router)
    ip('-n', router, 'link', 'set', 'lo', 'up')
    ip('netns', 'exec', router, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1')
    const built = counts.map((count, index) => {
      const lan = buildLan(count, names)
      const port = `${lan.tag}up`
      const leg = `eth${index}`
      ip('link', 'add', port, 'type', 'veth', 'peer', 'name', leg, 'netns', router)
      ip('link', 'set', port, 'netns', lan.switchNs)
      ip('-n', lan.switchNs, 'link', 'set', port, 'master', 'br0', 'up')
      ip('-n', router, 'addr', 'add', `${lan.subnet}.254/24`, 'dev', leg)
      ip('-n', router, 'link', 'set', leg, 'up')
      for (const host of lan.hosts)
        ip('-n', host.ns, 'route', 'add', 'default', 'via', `${lan.subnet}.254`)
      return lan.hosts
    })
    return { lans: built, close, [Symbol.asyncDispose]: close }
  } catch (error) {
    void close()
    throw error
  }
}
