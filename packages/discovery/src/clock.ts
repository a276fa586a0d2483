export { type Clock, systemClock } from '@autobus/protocol'

/** A number in [0, 1); injected so jitter is testable. */
export type Random = () => number
