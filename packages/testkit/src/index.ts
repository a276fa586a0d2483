/**
 * Test harness for Autobus: several "hosts" on one LAN, each a network
 * namespace (or on LANs joined by a router, which broadcast cannot cross), and spawned processes read line by line. Private to the
 * repository's test suites.
 *
 * @example
 * ```ts
 * import { canUseNamespaces, createLan } from '@autobus/testkit'
 * describe.runIf(canUseNamespaces)('across hosts (needs root)', () => {
 *   it('…', async () => {
 *     await using lan = createLan(2)
 *     const service = lan.hosts[0]!.node(cli, ['example', '--json'])
 *     console.log(await service.json())
 *   })
 * })
 * ```
 *
 * @packageDocumentation
 */
export { makeCertificates } from './certificates.js'
export { type ManualClock, manualClock } from './clock.js'
export { type Exited, type RunningToExit, type RunToExitOptions, runToExit } from './exit.js'
export { killAll, type LineProcess, spawnLines } from './lines.js'
export { type CollectingLogger, collectingLogger } from './logger.js'
export {
  hasNatsServer,
  type NatsCluster,
  type NatsClusterOptions,
  type NatsServer,
  startNatsCluster,
} from './nats.js'
export {
  canUseNamespaces,
  createLan,
  createRoutedLans,
  type Host,
  type Lan,
  type RoutedLans,
} from './netns.js'
