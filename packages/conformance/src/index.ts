/**
 * The Autobus conformance kit: checks a peer written in any language
 * against docs/protocol.md, live over the wire. {@link checkService} runs
 * every vector and a script of checks against a peer's conformance service
 * (docs/conformance.md); {@link startReferenceService} serves the reference
 * conformance service and reports what a peer's client did with it. Each
 * result names the spec section it checks.
 *
 * @example
 * ```ts
 * import { checkService, formatResult, formatSummary } from '@autobus/conformance'
 *
 * const report = await checkService(
 *   { host: '127.0.0.1', port: 4000, service: 'the-peer-service-id' },
 *   { onResult: (result) => console.log(formatResult(result)) },
 * )
 * console.log(formatSummary(report)) // e.g. "96 passed, 0 failed"
 * ```
 *
 * @packageDocumentation
 */
export { type CheckOptions, checkService, type ServiceAddress } from './checks.js'
export { ALL_FEATURES, ConformanceService, QUERY_MARKER } from './contract.js'
export {
  type ClientEvent,
  type ReferenceOptions,
  type ReferenceService,
  startReferenceService,
} from './reference.js'
export {
  type CheckResult,
  type ConformanceReport,
  formatResult,
  formatSummary,
  type Outcome,
} from './report.js'
export { defaultVectorDirectory, loadVectors, type Vector, type VectorFile } from './vectors.js'
