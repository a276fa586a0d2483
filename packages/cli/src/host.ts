import type { BusOptions } from '@autobus/bus'

/** What a command needs from the program around it. */
export interface CommandHost {
  /** Bus options from the global flags; `discovery` says whether to announce and discover. */
  busOptions(discovery: boolean): BusOptions
  /** Resolves on Ctrl-C or SIGTERM. */
  interrupted(): Promise<void>
}

/** Resolves on SIGINT or SIGTERM. */
export function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      resolve()
    }
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  })
}
