/**
 * Runs the real kcat (librdkafka) binary. A test that needs it fails where it is not
 * installed, naming it and the install command: a missing peer is never a skip, or a green
 * run could hide that the cross-client assertions never ran.
 */
import { spawn, spawnSync } from 'node:child_process';

const KCAT_MISSING: string | false = spawnSync('kcat', ['-V']).error ? 'kcat is not installed (run: bash scripts/install-tools.sh)' : false;

export interface KcatResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs kcat with `args`, feeding `input` on stdin; rejects after `timeoutMs`. */
export function kcat(args: string[], input?: Buffer | string, timeoutMs = 60_000): Promise<KcatResult> {
  if (KCAT_MISSING) return Promise.reject(new Error(KCAT_MISSING));
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
    // 'close', not 'exit': the process can exit before the last of its stdout is read.
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin.on('error', () => {});
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}
