/** How one check ended. */
export type Outcome = 'pass' | 'fail' | 'skip'

/** The outcome of one check, with the spec section it checks. */
export interface CheckResult {
  /** The section of docs/protocol.md the check is about, e.g. "3.5". */
  section: string
  /** What is checked, one line. */
  name: string
  outcome: Outcome
  /** Why it failed or was skipped. */
  detail?: string
}

/** Every check of one run, and the counts. */
export interface ConformanceReport {
  results: CheckResult[]
  passed: number
  failed: number
  skipped: number
}

/** A check found the peer wrong. */
export class CheckFailure extends Error {
  override name = 'CheckFailure'
}

/** A check does not apply to this peer (a feature it does not offer). */
export class CheckSkip extends Error {
  override name = 'CheckSkip'
}

/** Counts results into a report. */
export function summarize(results: CheckResult[]): ConformanceReport {
  const count = (outcome: Outcome) => results.filter((result) => result.outcome === outcome).length
  return { results, passed: count('pass'), failed: count('fail'), skipped: count('skip') }
}

/** One line per check: `PASS  §3.5  name`, with the reason after a failure or skip. */
export function formatResult(result: CheckResult): string {
  const label = { pass: 'PASS', fail: 'FAIL', skip: 'SKIP' }[result.outcome]
  const detail = result.detail ? ` (${result.detail})` : ''
  return `${label}  §${result.section.padEnd(6)} ${result.name}${detail}`
}

/** The closing line: exactly `N passed, M failed`, then `, K skipped` if any were. */
export function formatSummary(report: ConformanceReport): string {
  const skipped = report.skipped > 0 ? `, ${report.skipped} skipped` : ''
  return `${report.passed} passed, ${report.failed} failed${skipped}`
}
