import { type Bus, type Connection, createBus, type SingleServiceProxy } from '@autobus/bus'
import { ExitCode } from './exit.js'
import type { CommandHost } from './host.js'
import { parseTarget, type Target } from './target.js'

/** Connects to a target: directly, or through a single-service proxy for a filter. */
export async function openTarget(
  bus: Bus,
  target: Target,
  waitSeconds: number,
): Promise<Connection | SingleServiceProxy> {
  if (target.kind === 'address') return bus.connect(target)
  const proxy = bus.singleServiceProxy(target.filter)
  await proxy.waitForBind({ timeout: waitSeconds * 1000 })
  return proxy
}

/** Opens a target on a new bus, runs `use`, and closes the bus. */
export async function withTarget(
  host: CommandHost,
  text: string,
  waitSeconds: number,
  use: (connection: Connection | SingleServiceProxy, target: Target) => Promise<void>,
): Promise<void> {
  const target = parseTarget(text)
  const bus = await createBus(host.busOptions(target.kind === 'filter'))
  try {
    await use(await openTarget(bus, target, waitSeconds), target)
  } finally {
    await bus.close()
  }
}

/**
 * Waits for Ctrl-C; a direct connection that dies first ends with exit code 3.
 * A proxy (a filter target) keeps going across restarts, so only Ctrl-C ends it.
 */
export async function untilInterruptedOrLost(
  host: CommandHost,
  connection: Connection | SingleServiceProxy,
  target: Target,
): Promise<void> {
  const lost =
    target.kind === 'address' ? (connection as Connection).closed : new Promise<never>(() => {})
  const outcome = await Promise.race([
    host.interrupted().then(() => 'interrupted' as const),
    lost.then((info) => info),
  ])
  if (outcome !== 'interrupted') {
    process.stderr.write(`connection closed: ${outcome.reason}\n`)
    process.exitCode = ExitCode.Unreachable
  }
}
