/**
 * The secrets the tests use, in one registry, and the check that none of them reached a log
 * line (issue 14: no SASL password, SCRAM salted password or key, private key or object-store
 * key in any log line across the whole suite).
 *
 * Fixed secrets are the SECRETS below: a test imports its passwords from here. Secrets made at
 * run time (random object-store keys, the salted passwords and StoredKeys of a credential
 * file) are registered with `registerSecret`, which appends them to `secrets-<pid>.json` in
 * the run log directory (helpers/run-log.ts), so that the check, in the last test process,
 * knows them too. Outside `npm test` registering does nothing.
 *
 * `findLeaks` reads every `.log` file of a run log directory and reports each line holding a
 * registered secret, PEM armour (`-----BEGIN`, `PRIVATE KEY`) or a SCRAM key field with a
 * value. A report names the file, the line number and the secret's label, never the secret.
 */
import fs from 'node:fs';
import path from 'node:path';
import { runLogDir } from './run-log.js';

/** Passwords and tokens the tests use: distinctive, so that a match is never a coincidence. */
export const SECRETS = {
  /** The SASL tests' bootstrap (superuser) password. */
  saslAdmin: 'sasl-admin-pw-Vq3xK8rT',
  /** A SCRAM/PLAIN user of the SASL tests. */
  saslAlice: 'sasl-alice-pw-7fJm2QzW',
  /** A second user, for cross-user checks. */
  saslBob: 'sasl-bob-pw-Lp9dR4sY',
  /** What the failure tests send as a wrong password. */
  saslWrong: 'sasl-wrong-pw-Hc6tN1uE',
  /** The bench's SASL_SSL user (bench/kafka.ts). */
  benchSasl: 'bench-sasl-pw-Ye5gB2kP',
  /** The admin API's bearer token in the admin API tests. */
  adminApiToken: 'admin-test-token-5d1f0c',
  /** The admin API's bearer token in the dashboard tests. */
  dashboardToken: 'dashboard-test-token-7c2e',
} as const;

export interface Secret {
  label: string;
  value: string;
}

/** Secrets shorter than this are not searched for: they would match ordinary text. */
const MIN_SECRET_LENGTH = 8;

/** Records secrets made at run time for the end-of-run check (no-op outside `npm test`). */
export function registerSecret(label: string, ...values: Array<string | Buffer>): void {
  const dir = runLogDir();
  if (dir === undefined) return;
  fs.mkdirSync(dir, { recursive: true });
  const lines = values.flatMap((v) => (Buffer.isBuffer(v) ? [v.toString('base64'), v.toString('hex')] : [v])).map((value) => `${JSON.stringify({ label, value } satisfies Secret)}\n`);
  fs.appendFileSync(path.join(dir, `secrets-${process.pid}.json`), lines.join(''), { mode: 0o600 });
}

/** The fixed secrets plus every secret registered in `dir`. */
export function knownSecrets(dir: string): Secret[] {
  const out: Secret[] = Object.entries(SECRETS).map(([label, value]) => ({ label: `SECRETS.${label}`, value }));
  for (const f of fs.readdirSync(dir).filter((n) => /^secrets-\d+\.json$/.test(n))) {
    for (const line of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) if (line !== '') out.push(JSON.parse(line) as Secret);
  }
  return out.filter((s) => s.value.length >= MIN_SECRET_LENGTH);
}

export interface Leak {
  file: string;
  line: number;
  /** The secret's label or the pattern found, never the secret. */
  what: string;
}

const PATTERNS: Array<{ what: string; test: (line: string) => boolean }> = [
  { what: 'PEM armour (-----BEGIN)', test: (l) => l.includes('-----BEGIN') },
  { what: 'PRIVATE KEY', test: (l) => l.includes('PRIVATE KEY') },
  // A SCRAM credential's fields with a value (a redacted "[redacted]" is fine).
  { what: 'a SCRAM key field with a value', test: (l) => /"(saltedPassword|salted_password|storedKey|stored_key|serverKey|server_key)"\s*:\s*"(?!\[redacted\])[^"]+"/i.test(l) },
];

export interface LeakReport {
  files: number;
  lines: number;
  leaks: Leak[];
}

/** Every line of every `.log` file in `dir` holding a secret of `secrets` or a PATTERN. */
export function findLeaks(dir: string, secrets: readonly Secret[]): LeakReport {
  const files = fs.readdirSync(dir).filter((n) => n.endsWith('.log')).sort();
  const report: LeakReport = { files: files.length, lines: 0, leaks: [] };
  for (const file of files) {
    const lines = fs.readFileSync(path.join(dir, file), 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (line === '') return;
      report.lines++;
      for (const s of secrets) if (line.includes(s.value)) report.leaks.push({ file, line: i + 1, what: s.label });
      for (const p of PATTERNS) if (p.test(line)) report.leaks.push({ file, line: i + 1, what: p.what });
    });
  }
  return report;
}

/**
 * Why the run log cannot be checked, or undefined when it can. A missing (outside `npm test`)
 * or empty log fails the check rather than let it pass on nothing.
 */
export function runLogProblem(dir: string | undefined): string | undefined {
  if (dir === undefined) return 'TEST_RUN_LOG_DIR is not set: the run log exists only under `npm test` (run the suite with it, not this file alone)';
  if (!fs.existsSync(dir)) return `the run log directory ${dir} does not exist: no broker or CLI of this run logged anything there`;
  if (!fs.readdirSync(dir).some((n) => n.endsWith('.log') && fs.statSync(path.join(dir, n)).size > 0)) {
    return `the run log directory ${dir} has no log lines: the tee of helpers/run-log.ts is broken`;
  }
  return undefined;
}
