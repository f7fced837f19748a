#!/usr/bin/env node
/**
 * The test command (`npm test` runs it after the type check): every test file under test/,
 * each in its own `node --test` process, scheduled so the whole run fits CI's 30-minute
 * budget on a 2-core machine without putting tests that need a quiet machine beside others.
 *
 * Each file has classes (below):
 *   alone    its assertions are about time (quotas held within a tolerance, deadlines, rates,
 *            descriptors held until fsync), or its etcd leases must not lapse because another
 *            test holds the CPU (a fenced leader's own clock): it runs after everything else,
 *            beside at most one filler (a short in-process file, see FILLER_SECONDS);
 *   strict   an `alone` file that takes not even a filler beside it;
 *   cluster  a region cluster on etcd with 2 s leases: beside at most one other file, never
 *            another cluster file nor a heavy one;
 *   heavy    a lot of CPU or disk at once (thousands of partitions, kill -9 rounds, three
 *            regions): never beside a cluster file;
 *   ports    binds the dev mesh's fixed ports (19092, 19644, ...) or asserts them free: never
 *            beside another ports file;
 *   (none)   waits for conditions only: any two at a time.
 *
 * Phase 1 runs every file that is neither `alone` nor a filler, two at a time
 * (MERIDIAN_TEST_CONCURRENCY), longest first by scripts/test-durations.json (wall seconds per
 * file, from a CI run; a file it does not list counts as DEFAULT_SECONDS), each time starting
 * the first waiting file the classes allow. Phase 2 runs the `strict` files one at a time,
 * then the other `alone` files one at a time with the fillers in the second lane. Last,
 * test/zz-no-secrets.test.ts alone: it reads every log line the run wrote.
 * MERIDIAN_TEST_PLAN=1 prints which files run in which phase, and runs nothing.
 *
 * Each file runs as `node --import tsx --test-force-exit FILE` with the spec reporter and
 * scripts/file-times-reporter.mjs (its tests counted from the latter's lines on stderr).
 * A file's output is printed whole when it ends (two files' lines never interleave), with
 * its outcome and wall time; a file still running after FILE_TIMEOUT_MS is killed and fails.
 * At the end: the slowest files by wall time (to refresh test-durations.json from), then
 * each failed file's failure again (its "failing tests" section), so the run's tail says why.
 *
 * Every phase always runs; the exit code is non-zero when any file failed.
 * MERIDIAN_TEST_PHASE=concurrent or serial runs only phase 1 or phase 2.
 * Arguments, when given, are test files to run instead of all (each still in its phase).
 * NEVER import this file from a test: it runs the suite.
 */
import { spawn } from 'node:child_process';
import { TIMES_PREFIX } from './file-times-reporter.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Files (or directories, ending in /) by class. A file may match several classes. */
const CLASSES = {
  alone: [
    'test/security/quotas.test.ts',
    'test/security/quotas-broker.test.ts',
    'test/security/sasl-clients.test.ts',
    'test/kafka/connection-limits.test.ts',
    'test/storage/recovery-checkpoint.test.ts',
    'test/dr/idle-offset-sync.test.ts',
    'test/replication/replication-backlog.test.ts',
    // kill -9 rounds against a producing region within 60 s each: beside another test the
    // replication of the backlog slowed past that (CI runs at 675ae67 and 5f0c5bd).
    'test/replication/replication-faults.test.ts',
    'test/tiered/blobstore/',
    'test/tiered/tiered-faults.test.ts',
  ],
  // `alone` files (a strict file is alone too) that take no companion at all, not even a
  // filler (below): their bounds are fsync counts, timer precision or lease clocks.
  strict: [
    'test/storage/flush-scheduler.test.ts',
    'test/storage/fd-cache-admit.test.ts',
    // Its bound counts descriptors held open until their writes are fsynced: slower fsyncs
    // beside another test held more at once (464 and 467 against 256 + 64).
    'test/storage/fd-bound-many.test.ts',
    // A leader cut off from etcd must stop acknowledging before another is elected: that is
    // its own clock against the lease's, which a starved event loop would skew.
    'test/cluster/cluster-fencing.test.ts',
    'test/cluster/cluster-fencing-acks1.test.ts',
    'test/cluster/etcd-unavailable.test.ts',
    // A ride through an etcd outage lasts while the leader's rounds keep coming every third of
    // a lease: a starved event loop would end it and fail what is measured.
    'test/cluster/cluster-etcd-outage.test.ts',
    'test/cluster/etcd-ride-through.test.ts',
  ],
  cluster: ['test/cluster/', 'test/cli/dev-cluster.test.ts', 'test/deploy/compose-cluster.test.ts'],
  heavy: [
    'test/replication/many-partitions.test.ts',
    'test/storage/crash.test.ts',
    'test/broker/failing-storage.test.ts',
    'test/kafka/create-many-topics.test.ts',
    'test/dr/active-active-failover.test.ts',
    'test/replication/topologies.test.ts',
  ],
  ports: ['test/cli/commands.test.ts', 'test/cli/dev-cluster.test.ts', 'test/cli/dev-mesh.test.ts', 'test/cli/startup-failures.test.ts'],
};

/**
 * Files under test/cluster/ that are not cluster files after all: in-process or pure logic,
 * or real etcd without a lease (documents, compare-and-swap, watches), or in-process brokers
 * on an in-memory state source waiting for conditions.
 */
const NOT_CLUSTER = [
  'test/cluster/assignment.test.ts',
  'test/cluster/reassign-plan.test.ts',
  'test/cluster/group-offsets-checkpoint.test.ts',
  'test/cluster/security-sync.test.ts',
  'test/cluster/dr-sync.test.ts',
  'test/cluster/etcd-topics.test.ts',
  'test/cluster/replica-produce.test.ts',
  'test/cluster/replica-leader-change.test.ts',
  'test/cluster/replica-truncation.test.ts',
  'test/cluster/replica-redelivery.test.ts',
  'test/cluster/replica-removal.test.ts',
  'test/cluster/cluster-follower-acl.test.ts',
  'test/cluster/origin-index-follower-truncation.test.ts',
  'test/cluster/replica-follower-sync.test.ts',
  'test/cluster/replica-leader-grace.test.ts',
];

/**
 * Fillers: short files of no class outside test/storage/ (in-process logic, one in-process
 * broker at most, no fsync-bound storage work), expected to take at most FILLER_SECONDS.
 * They run in phase 2, one at a time beside each `alone` file that is not `strict`, using
 * the core an `alone` file leaves idle, instead of taking a lane of phase 1.
 */
const FILLER_SECONDS = 10;

const LAST = 'test/zz-no-secrets.test.ts';
const DEFAULT_SECONDS = 8;
const FILE_TIMEOUT_MS = 15 * 60_000;

const matches = (f, list) => list.some((s) => (s.endsWith('/') ? f.startsWith(s) : f === s));
function classesOf(f) {
  const c = new Set();
  for (const [name, list] of Object.entries(CLASSES)) if (matches(f, list)) c.add(name);
  if (NOT_CLUSTER.includes(f)) c.delete('cluster');
  if (c.has('strict')) c.add('alone');
  return c;
}

/** Whether `f` may start beside the files running now. */
function mayStart(f, running, lanes) {
  if (running.length >= lanes) return false;
  const c = classesOf(f);
  const others = running.map((r) => classesOf(r.file));
  if (c.has('strict')) return running.length === 0;
  if (others.some((o) => o.has('strict'))) return false;
  // Phase 2: an `alone` file beside fillers only; fillers beside anything but a strict file.
  if (isFiller(f)) return true;
  if (c.has('alone')) return running.every((r) => isFiller(r.file));
  if (others.some((o) => o.has('alone'))) return false;
  if (c.has('ports') && others.some((o) => o.has('ports'))) return false;
  if (c.has('cluster') && others.some((o) => o.has('cluster') || o.has('heavy'))) return false;
  if (c.has('heavy') && others.some((o) => o.has('cluster'))) return false;
  return true;
}

function testFiles(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...testFiles(p));
    else if (e.name.endsWith('.test.ts')) out.push(p.split(path.sep).join('/'));
  }
  return out;
}

const lanes = Number(process.env.MERIDIAN_TEST_CONCURRENCY ?? 2);
if (!Number.isInteger(lanes) || lanes < 1) throw new Error(`MERIDIAN_TEST_CONCURRENCY must be a positive integer, not ${process.env.MERIDIAN_TEST_CONCURRENCY}`);
const phase = process.env.MERIDIAN_TEST_PHASE;
if (phase !== undefined && phase !== 'concurrent' && phase !== 'serial') throw new Error(`MERIDIAN_TEST_PHASE must be concurrent or serial, not ${phase}`);

const durations = JSON.parse(fs.readFileSync(new URL('./test-durations.json', import.meta.url), 'utf8'));
const expected = (f) => durations[f] ?? DEFAULT_SECONDS;
const files = (process.argv.length > 2 ? process.argv.slice(2) : testFiles('test')).sort();
const isFiller = (f) => f !== LAST && classesOf(f).size === 0 && !f.startsWith('test/storage/') && expected(f) <= FILLER_SECONDS;
const byLength = (list) => [...list].sort((a, b) => expected(b) - expected(a) || a.localeCompare(b));

const env = { ...process.env };
if (!env.TEST_RUN_LOG_DIR) env.TEST_RUN_LOG_DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'meridian-test-logs-'));
const FILE_TIMES = new URL('./file-times-reporter.mjs', import.meta.url).href;
/** One top-level test's line from file-times-reporter.mjs, anywhere in a file's output. */
const TIME_LINE = new RegExp(`${TIMES_PREFIX}(\\{[^\\n]*\\})\\n`, 'g');

/** Results of every file run: { file, ok, wallMs, tests, failedTests }. */
const results = [];

/** Runs one file in its own process; resolves with its result once its output is printed. */
function runFile(file) {
  const t0 = Date.now();
  // --test-force-exit: a file whose test timed out with handles still open (a broker it
  // started) is ended once its tests are reported, instead of holding the run. The file runs
  // as the process's own script, not under `--test`: there the runner runs it in a child and
  // streams its results back, and with --test-force-exit the parent lost some of them
  // (nodejs/node#64833): schema-properties.test.ts reported 81-95 of its 95 tests, exit 0.
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--test-force-exit', '--test-reporter=spec', '--test-reporter-destination=stdout', `--test-reporter=${FILE_TIMES}`, '--test-reporter-destination=stderr', file],
    { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  const out = [];
  child.stdout.on('data', (b) => out.push(b));
  child.stderr.on('data', (b) => out.push(b));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }, FILE_TIMEOUT_MS);
  return new Promise((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const wallMs = Date.now() - t0;
      let tests = 0;
      let failedTests = 0;
      const text = Buffer.concat(out)
        .toString('utf8')
        .replace(TIME_LINE, (_, json) => {
          tests++;
          if (JSON.parse(json).failed) failedTests++;
          return '';
        });
      const ok = code === 0 && !timedOut;
      const why = timedOut ? `killed after ${FILE_TIMEOUT_MS / 60_000} min` : ok ? 'ok' : `FAILED (exit ${code ?? signal})`;
      process.stdout.write(`\n# ${file}: ${why}, ${(wallMs / 1000).toFixed(1)} s, ${tests} tests${failedTests ? `, ${failedTests} failed` : ''}\n`);
      process.stdout.write(text);
      const r = { file, ok, wallMs, tests, failedTests, failure: ok ? undefined : failureExcerpt(text, why) };
      results.push(r);
      resolve(r);
    });
  });
}

/**
 * What a failed file said about its failure, to print again at the very end of the run,
 * where a reader of a long log (or of its tail alone) finds it: the spec reporter's
 * "failing tests" section when there is one, else the file's last lines; 80 lines at most.
 */
function failureExcerpt(text, why) {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.includes('failing tests:'));
  const part = at >= 0 ? lines.slice(at) : lines.slice(-60);
  const cut = part.length > 80 ? [...part.slice(0, 80), `... (${part.length - 80} more lines above in the file's output)`] : part;
  return [`# ${why}`, ...cut].join('\n');
}

/** Runs `list` with at most `n` files at once, as the classes allow, longest first. */
async function runPhase(label, list, n) {
  if (list.length === 0) return;
  console.log(`# ${label}: ${list.length} files, up to ${n} at a time`);
  const t0 = Date.now();
  const waiting = byLength(list);
  const running = [];
  await new Promise((done) => {
    const fill = () => {
      for (let i = 0; i < waiting.length && running.length < n; ) {
        if (!mayStart(waiting[i], running, n)) {
          i++;
          continue;
        }
        const file = waiting.splice(i, 1)[0];
        const entry = { file };
        running.push(entry);
        void runFile(file).then(() => {
          running.splice(running.indexOf(entry), 1);
          if (waiting.length === 0 && running.length === 0) done();
          else fill();
        });
      }
      if (waiting.length > 0 && running.length === 0) throw new Error(`no file of ${label} can start: ${waiting.join(', ')}`);
    };
    fill();
  });
  console.log(`# ${label}: done after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}

const t0 = Date.now();
const alone = (f) => classesOf(f).has('alone');
const strict = (f) => classesOf(f).has('strict');
if (process.env.MERIDIAN_TEST_PLAN) {
  // Prints which phase each file runs in, with its expected seconds, and runs nothing.
  const show = (label, list) => console.log(`# ${label}: ${list.length} files, ${list.reduce((n, f) => n + expected(f), 0)} s expected\n${byLength(list).map((f) => `#   ${String(expected(f)).padStart(4)} s  ${f}`).join('\n')}`);
  show('phase 1', files.filter((f) => f !== LAST && !alone(f) && !isFiller(f)));
  show('phase 2, strict', files.filter((f) => strict(f)));
  show('phase 2, alone', files.filter((f) => alone(f) && !strict(f)));
  show('phase 2, fillers', files.filter((f) => isFiller(f)));
  process.exit(0);
}
if (phase !== 'serial') await runPhase('phase 1 (two at a time as the classes allow)', files.filter((f) => f !== LAST && !alone(f) && !isFiller(f)), lanes);
if (phase !== 'concurrent') {
  await runPhase('phase 2 (strict: alone)', files.filter((f) => strict(f)), 1);
  await runPhase('phase 2 (alone, each beside fillers)', files.filter((f) => (alone(f) && !strict(f)) || isFiller(f)), lanes);
}
if (phase === undefined && files.includes(LAST)) await runPhase('last', [LAST], 1);

const failed = results.filter((r) => !r.ok);
console.log(`\n# slowest files (wall time, for scripts/test-durations.json):`);
for (const r of [...results].sort((a, b) => b.wallMs - a.wallMs).slice(0, 30)) console.log(`#   ${(r.wallMs / 1000).toFixed(1).padStart(6)} s  ${r.file}`);
const testCount = results.reduce((s, r) => s + r.tests, 0);
console.log(`# ${results.length} files, ${testCount} tests, ${failed.length} files failed, ${((Date.now() - t0) / 1000).toFixed(0)} s in all`);
for (const r of failed) console.log(`\n# --- why ${r.file} failed ---\n${r.failure}`);
for (const r of failed) console.log(`# FAILED: ${r.file}${r.failedTests ? ` (${r.failedTests} of ${r.tests} tests)` : ''}`);
process.exit(failed.length > 0 ? 1 : 0);
