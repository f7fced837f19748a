/**
 * Runs the real kcat (librdkafka) binary. Tests that need it skip, with a visible message,
 * where it is not installed (`bash scripts/install-tools.sh` installs it).
 */
import { spawn, spawnSync } from 'node:child_process';

export const KCAT_MISSING: string | false = spawnSync('kcat', ['-V']).error ? 'kcat is not installed (run: bash scripts/install-tools.sh)' : false;

export interface KcatResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs kcat with `args`, feeding `input` on stdin; rejects after `timeoutMs`. */
export function kcat(args: string[], input?: Buffer | string, timeoutMs = 60_000): Promise<KcatResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('kcat', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kcat ${args.join(' ')} timed out after ${timeoutMs} ms; stderr: ${err}`));
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin.on('error', () => {});
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}
