/**
 * A live web dashboard of the Autobus services on the network: every
 * service as it appears and goes, a chosen service's functions (with a form
 * to call them), events, objects and metrics charts, and the figures of every
 * bus as Prometheus text at `/metrics`.
 *
 * @example
 * ```ts
 * import { createBus } from '@autobus/bus'
 * import { createDashboard } from '@autobus/dashboard'
 *
 * const bus = await createBus()
 * const dashboard = await createDashboard({ bus, port: 7770 })
 * console.log(`open ${dashboard.url}`)
 * ```
 *
 * @packageDocumentation
 */
export { createDashboard, type Dashboard, type DashboardOptions } from './dashboard.js'
