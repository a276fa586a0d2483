import type { ErrorCode } from '@autobus/bus'

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

/** The exit code of a command that failed with an error of each wire code. */
export const exitCodeByErrorCode = {
  malformed_json: ExitCode.Failed,
  frame_too_large: ExitCode.Failed,
  datagram_too_large: ExitCode.Failed,
  too_deep: ExitCode.Failed,
  invalid_message: ExitCode.Failed,
  unknown_command: ExitCode.Failed,
  not_bound: ExitCode.Failed,
  unknown_service: ExitCode.Unreachable,
  unknown_name: ExitCode.Failed,
  invalid_arguments: ExitCode.Failed,
  remote_error: ExitCode.Failed,
  busy: ExitCode.Failed,
  timeout: ExitCode.Unreachable,
  connection_lost: ExitCode.Unreachable,
  refused: ExitCode.Failed,
  closed: ExitCode.Failed,
  unsupported: ExitCode.Failed,
  unreachable: ExitCode.Unreachable,
  forbidden: ExitCode.Failed,
} as const satisfies Record<ErrorCode, (typeof ExitCode)[keyof typeof ExitCode]>
