#!/usr/bin/env node
/**
 * The test command (`npm test` runs it after the type check): every test file under test/,
 * in two phases so the whole run fits CI's budget on a 2-core machine.
 *
 *   1. Files that only wait for conditions run two at a time (`--test-concurrency=2`): most
 *      of their time is spent in child processes, fdatasync and sockets, not on a core.
 *   2. Then, one at a time, the files listed in SERIAL: those that bind the dev mesh's fixed
 *      ports (a second one at the same time would find them taken), those whose assertions
 *      are about time (quotas held within a tolerance, deadlines, rates), and the region
 *      clusters, whose etcd leases of 2 s must not lapse because another test holds the CPU
 *      (their in-process and lease-free files, CONCURRENT_OK, run in phase 1).
 *
 *   3. Last, test/zz-no-secrets.test.ts alone: it reads every log line the run wrote.
 *
 * After each phase it prints every file's time, slowest first (scripts/file-times-reporter.mjs).
 *
 * Every phase always runs; the exit code is non-zero when any failed.
 * MERIDIAN_TEST_CONCURRENCY=1 runs everything one at a time (phase 1 included);
 * MERIDIAN_TEST_PHASE=concurrent or serial runs only that phase.
 * Arguments, when given, are test files to run instead of all (each still in its phase).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** Test files (or directories, ending in /) that run alone, after the others. */
const SERIAL = [
  'test/cluster/',
  // The dev mesh's fixed ports (19092, 19644, ...), bound or asserted free.
  'test/cli/commands.test.ts',
  'test/cli/dev-cluster.test.ts',
  'test/cli/dev-mesh.test.ts',
  'test/cli/startup-failures.test.ts',
  // Rates and tolerances.
  'test/security/quotas.test.ts',
  'test/security/quotas-broker.test.ts',
  'test/security/sasl-clients.test.ts',
  'test/kafka/connection-limits.test.ts',
  'test/storage/flush-scheduler.test.ts',
  'test/storage/fd-cache-admit.test.ts',
  // Its bound counts descriptors held open until their writes are fsynced: slower fsyncs
  // beside another test held more at once (464 against 256 + 64 in a two-at-a-time run).
  'test/storage/fd-bound-many.test.ts',
  'test/storage/recovery-checkpoint.test.ts',
  'test/dr/idle-offset-sync.test.ts',
  'test/replication/replication-backlog.test.ts',
  // kill -9 rounds against a producing region within 60 s each: beside another test the
  // replication of the backlog slowed past that (a CI run at 675ae67).
  'test/replication/replication-faults.test.ts',
  'test/tiered/blobstore/',
  'test/tiered/tiered-faults.test.ts',
];

/**
 * Files under a SERIAL directory that may run two at a time after all: in-process or pure
 * logic, no etcd lease and no bound that another test's CPU use could break.
 */
const CONCURRENT_OK = [
  'test/cluster/assignment.test.ts',
  'test/cluster/reassign-plan.test.ts',
  'test/cluster/group-offsets-checkpoint.test.ts',
  // Real etcd, but no lease: documents, compare-and-swap and watches only.
  'test/cluster/security-sync.test.ts',
  'test/cluster/dr-sync.test.ts',
  'test/cluster/etcd-topics.test.ts',
  // In-process brokers on an in-memory state source, waiting for conditions (lag time 10 s).
  'test/cluster/replica-produce.test.ts',
  'test/cluster/replica-leader-change.test.ts',
  'test/cluster/replica-truncation.test.ts',
  'test/cluster/replica-redelivery.test.ts',
  'test/cluster/replica-removal.test.ts',
  'test/cluster/cluster-follower-acl.test.ts',
];

function testFiles(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...testFiles(p));
    else if (e.name.endsWith('.test.ts')) out.push(p.split(path.sep).join('/'));
  }
  return out;
}

const files = (process.argv.length > 2 ? process.argv.slice(2) : testFiles('test')).sort();
const LAST = 'test/zz-no-secrets.test.ts';
const serial = (f) => !CONCURRENT_OK.includes(f) && SERIAL.some((s) => (s.endsWith('/') ? f.startsWith(s) : f === s));
const concurrency = Number(process.env.MERIDIAN_TEST_CONCURRENCY ?? 2);
if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`MERIDIAN_TEST_CONCURRENCY must be a positive integer, not ${process.env.MERIDIAN_TEST_CONCURRENCY}`);

const env = { ...process.env };
if (!env.TEST_RUN_LOG_DIR) env.TEST_RUN_LOG_DIR = fs.mkdtempSync(path.join((await import('node:os')).tmpdir(), 'meridian-test-logs-'));

/** Each file's time (the sum of its top-level tests), slowest first, from the reporter's lines. */
function printFileTimes(label, timesFile) {
  if (!fs.existsSync(timesFile)) return;
  const perFile = new Map();
  for (const line of fs.readFileSync(timesFile, 'utf8').split('\n')) {
    if (line === '') continue;
    const { file, ms, failed } = JSON.parse(line);
    const e = perFile.get(file) ?? { ms: 0, tests: 0, failed: 0 };
    e.ms += ms;
    e.tests += 1;
    if (failed) e.failed += 1;
    perFile.set(file, e);
  }
  const rows = [...perFile.entries()].sort((a, b) => b[1].ms - a[1].ms);
  console.log(`# ${label}: file times, slowest first (sum of top-level tests; ${rows.length} files):`);
  for (const [file, e] of rows.slice(0, 25)) {
    console.log(`#   ${(e.ms / 1000).toFixed(1).padStart(6)} s  ${path.relative(process.cwd(), file)} (${e.tests} tests${e.failed ? `, ${e.failed} failed` : ''})`);
  }
}

function run(label, list, n) {
  if (list.length === 0) return 0;
  console.log(`# ${label}: ${list.length} files, ${n} at a time`);
  const t0 = Date.now();
  const timesFile = path.join(env.TEST_RUN_LOG_DIR, `file-times-${label.replace(/\W+/g, '-')}.jsonl`);
  // --test-force-exit: a file whose test timed out with handles still open (a broker it
  // started) is ended once its tests are reported, instead of holding the run forever.
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-force-exit', `--test-concurrency=${n}`,
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    `--test-reporter=${FILE_TIMES}`, `--test-reporter-destination=${timesFile}`, ...list], { stdio: 'inherit', env });
  printFileTimes(label, timesFile);
  console.log(`# ${label}: exit ${r.status ?? r.signal} after ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return r.status ?? 1;
}

const FILE_TIMES = new URL('./file-times-reporter.mjs', import.meta.url).href;
const phase = process.env.MERIDIAN_TEST_PHASE;
if (phase !== undefined && phase !== 'concurrent' && phase !== 'serial') throw new Error(`MERIDIAN_TEST_PHASE must be concurrent or serial, not ${phase}`);
const a = phase === 'serial' ? 0 : run('concurrent phase', files.filter((f) => f !== LAST && !serial(f)), concurrency);
const b = phase === 'concurrent' ? 0 : run('serial phase', files.filter((f) => f !== LAST && serial(f)), 1);
const c = phase === undefined && files.includes(LAST) ? run('last', [LAST], 1) : 0;
process.exit(a !== 0 || b !== 0 || c !== 0 ? 1 : 0);
