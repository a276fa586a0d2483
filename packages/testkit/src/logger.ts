/** A logger that keeps every call as one line: `level message details…`. */
export interface CollectingLogger {
  readonly logger: {
    debug(message: string, ...details: unknown[]): void
    info(message: string, ...details: unknown[]): void
    warn(message: string, ...details: unknown[]): void
    error(message: string, ...details: unknown[]): void
  }
  /** What was logged, in order. */
  readonly lines: string[]
}

/** A logger for tests of what a layer logs. */
export function collectingLogger(): CollectingLogger {
  const lines: string[] = []
  const at =
    (level: string) =>
    (message: string, ...details: unknown[]) =>
      lines.push([level, message, ...details.map(String)].join(' '))
  return {
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
    lines,
  }
}
