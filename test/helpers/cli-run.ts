/**
 * Runs the `meridian` command as a user does: a child process, its exit code, stdout and
 * stderr. Asynchronous on purpose: the brokers the CLI talks to run in the test's process,
 * and a synchronous spawn would block them from answering.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { appendToRunLog } from './run-log.js';

/** What a user runs: dist/ when it is current (`npm test` builds it first), else the sources through tsx. */
const MAIN = fileURLToPath(new URL('../../bin/meridian.js', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `env` replaces the MERIDIAN_* variables of the test's environment (so a developer's own
 * MERIDIAN_ADMIN never leaks into a test); everything else is inherited.
 */
export function meridian(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MERIDIAN_')));
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { env: { ...base, ...env }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1;
      // What an operator reads goes into the run's secret check (helpers/run-log.ts).
      appendToRunLog(stderr);
      appendToRunLog(stdout);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs and parses `--json` output; fails with the CLI's stderr when it did not exit as expected. */
export async function meridianJson<T = any>(args: string[], o: { env?: Record<string, string>; code?: number } = {}): Promise<T> {
  const r = await meridian([...args, '--json'], o.env);
  if (r.code !== (o.code ?? 0)) throw new Error(`meridian ${args.join(' ')} --json exited ${r.code}, expected ${o.code ?? 0}:\n${r.stderr}${r.stdout}`);
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`meridian ${args.join(' ')} --json printed something that is not JSON:\n${r.stdout}`);
  }
}
