/**
 * The `meridian` command as a user runs it: a real process, real signals.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tmpDir } from '../helpers/tmp-dir.js';

const BIN = fileURLToPath(new URL('../../bin/meridian.js', import.meta.url));
const t = tmpDir('meridian-cli-');
after(t.cleanup);

test('a bad config file refuses to start, naming the file, the field and the expectation', () => {
  const file = path.join(t.dir, 'bad.yaml');
  fs.writeFileSync(file, 'log:\n  retention:\n    ms: forever\n');
  const r = spawnSync(process.execPath, [BIN, 'broker', '--config', file], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, new RegExp(`${file}: log\\.retention\\.ms: expected a duration .*got "forever"`));
  const missing = spawnSync(process.execPath, [BIN, 'broker', '--config', path.join(t.dir, 'nope.yaml')], { encoding: 'utf8' });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /nope\.yaml: config file not found/);
});

test('an unknown command prints the usage and fails', () => {
  const r = spawnSync(process.execPath, [BIN, 'frobnicate'], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown command "frobnicate"/);
  assert.match(r.stderr, /meridian dev/);
});

test('broker --config runs one region; SIGTERM stops it cleanly and releases the lock', async () => {
  const dataDir = path.join(t.dir, 'one');
  const file = path.join(t.dir, 'one.yaml');
  fs.writeFileSync(file, `region: ap-south\ndataDir: ${dataDir}\nkafka:\n  port: 0\n`);
  const child = spawn(process.execPath, [BIN, 'broker', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (out.includes('meridian is running')) {
        clearInterval(timer);
        resolve();
      }
    }, 20);
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
  });
  assert.ok(fs.existsSync(path.join(dataDir, 'meridian.lock')));
  // A second broker on the same data directory is refused, like every failed start-up
  // (issue 9): status 2 and one line naming the field.
  const second = spawnSync(process.execPath, [BIN, 'broker', '--config', file], { encoding: 'utf8' });
  assert.equal(second.status, 2);
  assert.match(second.stderr, /^meridian: cannot start ap-south: dataDir: data directory \S+ is in use by another Meridian process/m);
  child.kill('SIGTERM');
  const code = await new Promise((r) => child.once('close', r));
  assert.equal(code, 0);
  assert.equal(fs.existsSync(path.join(dataDir, 'meridian.lock')), false);
  assert.match(out, /"region":"ap-south"/);
  assert.match(out, /broker stopped/);
});

// `meridian dev` (npm start) is tested end to end in dev-mesh.test.ts.
