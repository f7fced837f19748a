/**
 * The last test file of `npm test` (its name sorts last): no secret in any log line across
 * the whole run (issue 14). Every broker and CLI the tests started wrote its lines into the
 * run log (helpers/run-log.ts); this reads them all and fails on any line holding a SASL
 * password or token of helpers/secrets.ts, a secret registered at run time (object-store
 * keys, SCRAM StoredKeys, ServerKeys and salted passwords), PEM armour of a private key, or a
 * SCRAM key field with a value. Without a run log (this file run alone, outside `npm test`)
 * it fails: there is nothing it could vouch for.
 *
 * The first tests prove that the check can fail: a child process logs through the same tee
 * into a directory of the test's own, once cleanly and once with planted secrets.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RUN_LOG_DIR_ENV, runLogDir } from './helpers/run-log.js';
import { findLeaks, knownSecrets, runLogProblem } from './helpers/secrets.js';
import { tmpDir } from './helpers/tmp-dir.js';

const WRITER = fileURLToPath(new URL('./fixtures/run-log-writer.ts', import.meta.url));

function writeRunLog(dir: string, mode: 'clean' | 'leak'): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', WRITER, mode], { env: { ...process.env, [RUN_LOG_DIR_ENV]: dir } }, (err) => (err ? reject(err) : resolve()));
  });
}

test('the check passes a clean run log, and finds every planted secret, naming the file and line but never the secret', { timeout: 30_000 }, async () => {
  const { dir, cleanup } = tmpDir('meridian-run-log-');
  try {
    await writeRunLog(dir, 'clean');
    const clean = findLeaks(dir, knownSecrets(dir));
    assert.equal(clean.files, 1);
    assert.equal(clean.lines, 2, 'the info line (below the logger\'s warn) and the warn line');
    assert.deepEqual(clean.leaks, []);

    await writeRunLog(dir, 'leak');
    const report = findLeaks(dir, knownSecrets(dir));
    assert.equal(report.files, 2);
    assert.deepEqual(
      report.leaks.map((l) => l.what).sort(),
      ['PEM armour (-----BEGIN)', 'PRIVATE KEY', 'SECRETS.saslBob', 'a SCRAM key field with a value', 'a planted run-time secret'].sort(),
    );
    for (const l of report.leaks) assert.match(l.file, /^\d+-run-log-writer\.ts\.log$/);
    assert.ok(!JSON.stringify(report).includes('sasl-bob-pw'), 'the report shows a secret');
  } finally {
    cleanup();
  }
});

test('a missing or empty run log fails the check', () => {
  const { dir, cleanup } = tmpDir('meridian-run-log-');
  try {
    assert.match(runLogProblem(undefined)!, /TEST_RUN_LOG_DIR is not set/);
    assert.match(runLogProblem(dir)!, /has no log lines/);
    assert.match(runLogProblem(`${dir}/gone`)!, /does not exist/);
    fs.writeFileSync(`${dir}/1-x.log`, '{"msg":"a line"}\n');
    assert.equal(runLogProblem(dir), undefined);
  } finally {
    cleanup();
  }
});

test('no secret in any log line of this test run', (t) => {
  const dir = runLogDir();
  const problem = runLogProblem(dir);
  if (problem !== undefined) assert.fail(problem);
  const report = findLeaks(dir!, knownSecrets(dir!));
  const shown = report.leaks.slice(0, 50).map((l) => `  ${l.file}:${l.line}: ${l.what}`);
  assert.deepEqual(report.leaks, [], `${report.leaks.length} log lines hold a secret (the log is kept in ${dir}):\n${shown.join('\n')}`);
  t.diagnostic(`checked ${report.lines} log lines of ${report.files} processes`);
  fs.rmSync(dir!, { recursive: true, force: true });
});
