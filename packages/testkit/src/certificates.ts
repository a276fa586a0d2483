import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * An authority and certificates it signed (subject CN as given), made with
 * the openssl command in a temporary directory for one test run; `issue`
 * makes more, by `authority` or by a second, untrusted `rogue` one.
 */
export function makeCertificates(subjects: readonly string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'autobus-certs-'))
  const file = (name: string) => join(dir, name)
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' })
  const authority = (name: string) => {
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', file(`${name}.key`)])
    openssl([
      'req',
      '-x509',
      '-new',
      '-key',
      file(`${name}.key`),
      '-subj',
      `/CN=${name}`,
      '-days',
      '2',
      '-out',
      file(`${name}.pem`),
    ])
    return readFileSync(file(`${name}.pem`), 'utf8')
  }
  const ca = authority('authority')
  const rogue = authority('rogue')
  const issue = (subject: string, by = 'authority') => {
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', file(`${subject}.key`)])
    openssl([
      'req',
      '-new',
      '-key',
      file(`${subject}.key`),
      '-subj',
      `/CN=${subject}`,
      '-out',
      file(`${subject}.csr`),
    ])
    openssl([
      'x509',
      '-req',
      '-in',
      file(`${subject}.csr`),
      '-CA',
      file(`${by}.pem`),
      '-CAkey',
      file(`${by}.key`),
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      file(`${subject}.pem`),
    ])
    return {
      cert: readFileSync(file(`${subject}.pem`), 'utf8'),
      key: readFileSync(file(`${subject}.key`), 'utf8'),
      ca,
    }
  }
  return {
    ca,
    rogueCa: rogue,
    issue,
    byName: Object.fromEntries(subjects.map((subject) => [subject, issue(subject)])),
  }
}
