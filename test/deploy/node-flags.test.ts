/**
 * Every way Meridian ships to start a broker passes the node flags of src/node-flags.ts:
 * `npm start`, the `meridian` command run through its shebang, and the Docker image's
 * entrypoint. A broker started without them says so in its log, naming the flags.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BROKER_NODE_FLAGS, missingNodeFlags } from '../../src/node-flags.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = path.join(ROOT, 'bin/meridian.js');
const t = tmpDir('meridian-node-flags-');
after(t.cleanup);

/** `args` up to the entry script, which must follow the flags. */
function flagsBefore(args: readonly string[], script: string): string[] {
  const at = args.indexOf(script);
  assert.ok(at > 0, `${script} in ${JSON.stringify(args)}`);
  return args.slice(1, at);
}

test('npm start, the shebang and the Docker entrypoint carry every broker flag', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const start = pkg.scripts.start!.split(/\s+/);
  assert.equal(start[0], 'node');
  assert.deepEqual(missingNodeFlags(flagsBefore(start, 'bin/meridian.js')), []);

  const shebang = fs.readFileSync(BIN, 'utf8').split('\n')[0]!;
  const m = /^#!\/usr\/bin\/env -S (node(?: \S+)*)$/.exec(shebang);
  assert.ok(m, `shebang ${shebang}`);
  assert.deepEqual(missingNodeFlags(m[1]!.split(' ').slice(1)), []);

  const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const entry = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile);
  assert.ok(entry, 'Dockerfile has an exec-form ENTRYPOINT');
  const entryArgs = JSON.parse(entry[1]!) as string[];
  assert.equal(entryArgs[0], 'node');
  assert.deepEqual(missingNodeFlags(flagsBefore(entryArgs, 'bin/meridian.js')), []);
});

test('missingNodeFlags reads the command line, by flag name and any value', () => {
  assert.deepEqual(missingNodeFlags([]), [...BROKER_NODE_FLAGS]);
  assert.deepEqual(missingNodeFlags(['--initial-old-space-size=256', '--heap-growing-percent=50']), []);
  assert.deepEqual(missingNodeFlags(['--import', 'tsx', '--initial_old_space_size=128', '--heap_growing_percent=100']), []);
  assert.deepEqual(missingNodeFlags(['--initial-old-space-size=128']), ['--heap-growing-percent=100']);
  assert.deepEqual(missingNodeFlags(['--max-old-space-size=128', '--trace-gc']), [...BROKER_NODE_FLAGS]);
});

/** Starts a broker with `command`, waits until it runs, stops it; its log. */
async function brokerLog(name: string, command: string, args: string[]): Promise<string> {
  const file = path.join(t.dir, `${name}.yaml`);
  fs.writeFileSync(file, `region: ${name}\ndataDir: ${path.join(t.dir, name)}\nkafka:\n  port: 0\nadmin:\n  port: null\n`);
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // the tsx loader of the test runner
  const child = spawn(command, [...args, 'broker', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (out.includes('meridian is running')) {
        clearInterval(timer);
        resolve();
      }
    }, 20);
    child.once('exit', (code) => {
      clearInterval(timer);
      reject(new Error(`exited ${code}: ${out}`));
    });
  });
  child.removeAllListeners('exit');
  const exited = new Promise((r) => child.once('close', r));
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
  return out;
}

test('the meridian command run as an executable starts node with the flags; plain node is told what it lacks', async () => {
  const viaShebang = await brokerLog('shebang', BIN, []);
  assert.doesNotMatch(viaShebang, /started without the flags/);
  const plain = await brokerLog('plain', process.execPath, [BIN]);
  assert.match(plain, /node was started without the flags Meridian is measured with/);
  for (const flag of BROKER_NODE_FLAGS) assert.ok(plain.includes(flag), `the log names ${flag}`);
});
