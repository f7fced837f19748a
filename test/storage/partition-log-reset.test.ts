/**
 * PartitionLog.resetTo: a follower whose whole log lies below its leader's log start starts
 * over there (Kafka's truncateFullyAndStartAt). Checked: the log's start and end move to
 * the offset, the leader's batches from it are taken verbatim, the old records are gone
 * (reads refused, their segment files removed), and the state survives a reopen; a reset
 * to an offset the log already reaches is refused with nothing changed; and recovery opens
 * the directory a crash leaves mid-reset (the old segments still there beside the new one,
 * the new log start written) as the reset log.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { PartitionFiles } from '../../src/storage/partition-files.js';
import { PartitionLog, type LogOptions } from '../../src/storage/partition-log.js';
import { encodeBatch, readBatchHeader } from '../../src/storage/record-batch.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tmpDir('meridian-reset-');
  cleanups.push(t.cleanup);
  return t.dir;
}

const OPTS: Partial<LogOptions> = { retentionMs: -1, segmentBytes: 1024, indexIntervalBytes: 256 };

function batchAt(base: bigint, value: string, epoch = 3): Buffer {
  return encodeBatch({ baseOffset: base, partitionLeaderEpoch: epoch, records: [{ value: Buffer.from(value) }] });
}

function segmentFiles(d: string): string[] {
  return fs.readdirSync(d).filter((f) => f.endsWith('.log')).sort();
}

async function fill(log: PartitionLog, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await log.append(encodeBatch({ records: [{ value: Buffer.from(`old-${i}-${'x'.repeat(200)}`) }] }));
}

test('resetTo starts the log over past its end: old records gone, the leader\'s batches from there taken, kept across a reopen', async () => {
  const d = dir();
  let log = await PartitionLog.open(d, OPTS);
  await fill(log, 12);
  assert.ok(segmentFiles(d).length > 2, 'several segments before the reset');
  await assert.rejects(log.resetTo(12n), (e: MeridianError) => e.code === ErrorCode.OffsetOutOfRange, 'a reset must go past the end');
  assert.equal(log.logEndOffset, 12n, 'a refused reset changes nothing');

  await log.resetTo(500n);
  assert.equal(log.logStartOffset, 500n);
  assert.equal(log.logEndOffset, 500n);
  await assert.rejects(log.read(3n, 1 << 20), (e: MeridianError) => e.code === ErrorCode.OffsetOutOfRange, 'the old records are not served');
  const leader = [batchAt(500n, 'a'), batchAt(501n, 'b')];
  await log.appendAsFollower(Buffer.concat(leader), { sync: true });
  assert.equal(log.logEndOffset, 502n);
  const r = await log.read(500n, 1 << 20);
  assert.deepEqual(r.records, Buffer.concat(leader), 'byte-identical to what the leader sent');
  await waitFor('retention to remove the segments below the new start', () => segmentFiles(d).every((f) => PartitionFiles.segmentLogOffset(f)! >= 500n), 5000, 20);
  await log.close();

  log = await PartitionLog.open(d, OPTS);
  try {
    assert.equal(log.logStartOffset, 500n);
    assert.equal(log.logEndOffset, 502n);
    assert.deepEqual((await log.read(500n, 1 << 20)).records, Buffer.concat(leader));
  } finally {
    await log.close();
  }
});

test('recovery of a reset a crash cut short: the old segments before the gap go, the log opens at its new start', async () => {
  const d = dir();
  const log = await PartitionLog.open(d, OPTS);
  await fill(log, 8);
  await log.close();
  // What a crash after the new segment's first write and before retention leaves: the old
  // segments, the new log start, and a segment based at it (made here by a log opened at
  // that offset in another directory, its files copied in).
  const other = dir();
  const fresh = await PartitionLog.open(other, OPTS, undefined, 300n);
  const copied = batchAt(300n, 'after-reset');
  await fresh.appendAsFollower(copied, { sync: true });
  await fresh.close();
  for (const f of fs.readdirSync(other).filter((x) => x.endsWith('.log'))) fs.copyFileSync(path.join(other, f), path.join(d, f));
  fs.writeFileSync(PartitionFiles.logStart(d), JSON.stringify({ logStartOffset: '300' }));
  assert.ok(segmentFiles(d).length > 2);

  const reopened = await PartitionLog.open(d, OPTS);
  try {
    assert.equal(reopened.logStartOffset, 300n);
    assert.equal(reopened.logEndOffset, 301n);
    const r = await reopened.read(300n, 1 << 20);
    assert.deepEqual(r.records, copied);
    assert.equal(readBatchHeader(r.records).baseOffset, 300n);
    assert.deepEqual(segmentFiles(d).map((f) => PartitionFiles.segmentLogOffset(f)), [300n], 'only the segment at the new start is left');
  } finally {
    await reopened.close();
  }
});

test('without a log start past them, segments after a gap are still what recovery removes', async () => {
  const d = dir();
  const log = await PartitionLog.open(d, OPTS);
  await fill(log, 8);
  const end = log.logEndOffset;
  await log.close();
  const other = dir();
  const stray = await PartitionLog.open(other, OPTS, undefined, 300n);
  await stray.appendAsFollower(batchAt(300n, 'stray'), { sync: true });
  await stray.close();
  for (const f of fs.readdirSync(other).filter((x) => x.endsWith('.log'))) fs.copyFileSync(path.join(other, f), path.join(d, f));
  const reopened = await PartitionLog.open(d, OPTS);
  try {
    assert.equal(reopened.logStartOffset, 0n);
    assert.equal(reopened.logEndOffset, end, 'the log is what it was; the stray segment is gone');
  } finally {
    await reopened.close();
  }
});
