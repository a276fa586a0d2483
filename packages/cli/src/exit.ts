/** Exit codes; see docs/cli.md. */
export const ExitCode = {
  Ok: 0,
  /** The remote side failed (a remote error, a refused open). */
  Failed: 1,
  /** The command line is wrong. */
  Usage: 2,
  /** No answer: no matching service, it could not be reached, or it did not answer in time. */
  Unreachable: 3,
} as const
