/**
 * Where Autobus reports what it sees: connections, discovery, failing
 * handlers. Any object with these four methods fits, `console` and pino
 * included. Every message starts with `autobus:<layer>` (transport,
 * discovery, rpc, bus); an error, where there is one, follows as a detail.
 */
export interface Logger {
  debug(message: string, ...details: unknown[]): void
  info(message: string, ...details: unknown[]): void
  warn(message: string, ...details: unknown[]): void
  error(message: string, ...details: unknown[]): void
}

/** The default logger: says nothing. */
export const silentLogger: Logger = Object.freeze({
  debug() {},
  info() {},
  warn() {},
  error() {},
})

/**
 * The logger to call, or `undefined` when there is nothing to call (none
 * given, or the silent one). Layers call it as `log?.warn(...)`, so with no
 * logger the message is never even built: optional chaining skips the
 * argument list along with the call.
 */
export function activeLogger(logger: Logger | undefined): Logger | undefined {
  return logger === undefined || logger === silentLogger ? undefined : logger
}
