/**
 * Torn-tail and bit-flip fixtures: each damages a log on disk the way a crash or a bad disk
 * would, reopens it, and checks that recovery cut exactly the damaged tail and nothing else.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { LOG_OVERHEAD, readBatchHeader } from '../../src/storage/record-batch.js';
import { segmentFileName } from '../../src/storage/segment.js';
import { makeBatch } from '../helpers/batches.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));

/** A log of `n` batches (3 records each) closed cleanly; returns the dir and batch positions. */
async function fixture(n: number, opts = {}): Promise<{ dir: string; positions: number[]; sizes: number[] }> {
  const t = tmpDir();
  cleanups.push(t.cleanup);
  const log = await PartitionLog.open(t.dir, { retentionMs: -1, ...opts });
  const positions: number[] = [];
  const sizes: number[] = [];
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const b = makeBatch(`f${i}`, 3, 100);
    positions.push(pos);
    sizes.push(b.length);
    pos += b.length;
    await log.append(b);
  }
  await log.close();
  return { dir: t.dir, positions, sizes };
}

const activeFile = (dir: string) => {
  const logs = fs.readdirSync(dir).filter((f) => f.endsWith('.log')).sort();
  return path.join(dir, logs[logs.length - 1]);
};

async function reopenAndCount(dir: string): Promise<{ log: PartitionLog; batches: number }> {
  const log = await PartitionLog.open(dir, { retentionMs: -1 });
  let batches = 0;
  for (let next = log.logStartOffset; next < log.highWatermark; ) {
    const { records } = await log.read(next, 1);
    const h = readBatchHeader(records);
    assert.equal(records.length, h.batchLength + LOG_OVERHEAD);
    next = h.baseOffset + BigInt(h.lastOffsetDelta) + 1n;
    batches++;
  }
  return { log, batches };
}

test('a torn tail (a batch cut anywhere inside) is truncated to the last whole batch', async () => {
  for (const cut of [1, 11, 12, 40, 61, 100]) {
    const { dir, positions } = await fixture(10);
    const file = activeFile(dir);
    const tornAt = positions[9] + cut;
    fs.truncateSync(file, tornAt);
    const { log, batches } = await reopenAndCount(dir);
    assert.equal(batches, 9, `cut ${cut}`);
    assert.equal(log.highWatermark, 27n);
    assert.equal(fs.statSync(file).size, positions[9], 'file cut exactly at the torn batch');
    assert.equal((await log.append(makeBatch('again', 1))).baseOffset, 27n);
    await log.close();
  }
});

test('trailing garbage after the last batch is truncated', async () => {
  const { dir, positions, sizes } = await fixture(5);
  const file = activeFile(dir);
  fs.appendFileSync(file, Buffer.alloc(5000, 0xab));
  const { log, batches } = await reopenAndCount(dir);
  assert.equal(batches, 5);
  assert.equal(fs.statSync(file).size, positions[4] + sizes[4]);
  await log.close();
});

test('zero-filled tail (preallocated or lost pages) is truncated', async () => {
  const { dir, positions, sizes } = await fixture(5);
  const file = activeFile(dir);
  fs.appendFileSync(file, Buffer.alloc(4096));
  const { log, batches } = await reopenAndCount(dir);
  assert.equal(batches, 5);
  assert.equal(fs.statSync(file).size, positions[4] + sizes[4]);
  await log.close();
});

test('a flipped bit in a batch truncates from that batch on, keeping every batch before it', async () => {
  for (const [victim, delta] of [[0, 30], [3, 70], [6, 150], [9, 25]] as const) {
    const { dir, positions } = await fixture(10);
    const file = activeFile(dir);
    const fd = fs.openSync(file, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, positions[victim] + delta);
    b[0] ^= 0x04;
    fs.writeSync(fd, b, 0, 1, positions[victim] + delta);
    fs.closeSync(fd);
    const { log, batches } = await reopenAndCount(dir);
    assert.equal(batches, victim, `flip in batch ${victim}`);
    assert.equal(fs.statSync(file).size, positions[victim]);
    await log.close();
  }
});

test('a corrupted length field truncates at that batch', async () => {
  const { dir, positions } = await fixture(6);
  const file = activeFile(dir);
  const fd = fs.openSync(file, 'r+');
  const b = Buffer.alloc(4);
  b.writeInt32BE(7, 0);
  fs.writeSync(fd, b, 0, 4, positions[4] + 8);
  fs.closeSync(fd);
  const { log, batches } = await reopenAndCount(dir);
  assert.equal(batches, 4);
  await log.close();
});

test('missing, stale or corrupt index files of sealed segments are rebuilt', async () => {
  const { dir } = await fixture(60, { segmentBytes: 2048 });
  const indexes = fs.readdirSync(dir).filter((f) => f.endsWith('.index')).sort();
  assert.ok(indexes.length >= 3);
  fs.rmSync(path.join(dir, indexes[0]));
  fs.writeFileSync(path.join(dir, indexes[1]), Buffer.from('garbage'));
  const third = path.join(dir, indexes[2]);
  const raw = fs.readFileSync(third);
  raw[raw.length - 10] ^= 1;
  fs.writeFileSync(third, raw);
  const { log, batches } = await reopenAndCount(dir);
  assert.equal(batches, 60);
  for (const f of indexes.slice(0, 3)) assert.ok(fs.existsSync(path.join(dir, f)), `${f} rewritten`);
  await log.close();
});

test('an index whose recorded length disagrees with its log is stale and the log is rescanned', async () => {
  const { dir } = await fixture(30, { segmentBytes: 2048 });
  const first = path.join(dir, segmentFileName(0n, '.log'));
  const size = fs.statSync(first).size;
  // Tear the last batch of a sealed segment (as if the seal never completed).
  fs.truncateSync(first, size - 5);
  const log = await PartitionLog.open(dir, { retentionMs: -1 });
  const segs = log.segments();
  // The first segment lost its torn batch; its successors no longer continue it and go;
  // it is the active segment again.
  assert.equal(segs.length, 1);
  assert.equal(segs[0].sealed, false);
  assert.ok(segs[0].sizeBytes < size - 5);
  assert.equal(log.highWatermark, segs[0].nextOffset);
  assert.equal((await log.append(makeBatch('more', 1))).baseOffset, segs[0].nextOffset);
  await log.close();
});

test('a segment created by a roll whose predecessor lost its tail is removed', async () => {
  const { dir } = await fixture(4);
  // Simulate: the roll created the next segment at offset 12, but the last 3 records never
  // reached the disk.
  const file = activeFile(dir);
  fs.truncateSync(file, fs.statSync(file).size - 10);
  fs.writeFileSync(path.join(dir, segmentFileName(12n, '.log')), makeBatch('orphan', 1));
  const { log, batches } = await reopenAndCount(dir);
  assert.equal(batches, 3);
  assert.equal(log.highWatermark, 9n);
  assert.equal(fs.existsSync(path.join(dir, segmentFileName(12n, '.log'))), false);
  assert.equal((await log.append(makeBatch('next', 1))).baseOffset, 9n);
  await log.close();
});

test('leftover temp files are removed on open', async () => {
  const { dir } = await fixture(2);
  fs.writeFileSync(path.join(dir, segmentFileName(0n, '.index') + '.tmp'), 'x');
  const { log, batches } = await reopenAndCount(dir);
  assert.equal(batches, 2);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
  await log.close();
});

test('a sealed segment is trusted from its index header at open; entries damaged on disk are rebuilt from the data on first read', async () => {
  const t = tmpDir();
  cleanups.push(t.cleanup);
  let log = await PartitionLog.open(t.dir, { retentionMs: -1, segmentBytes: 4096, indexIntervalBytes: 200 });
  const sent: Buffer[] = [];
  for (let i = 0; i < 30; i++) {
    const b = makeBatch(`ix${i}`, 2, 90);
    sent.push(Buffer.from(b));
    await log.append(b);
  }
  const first = log.segments()[0];
  assert.ok(first.sealed);
  await log.close();
  // Flip a byte in the entries (past the header): the entries' CRC no longer holds.
  const index = fs.readFileSync(first.indexPath);
  index[index.length - 8] ^= 0xff;
  fs.writeFileSync(first.indexPath, index);

  log = await PartitionLog.open(t.dir, { retentionMs: -1, segmentBytes: 4096, indexIntervalBytes: 200 });
  try {
    // Opened on its own (no data-directory checkpoint), only the active segment is scanned.
    assert.equal(log.recoveryStats.trustedSealed, log.segments().length - 1, 'sealed segments trusted from their header');
    assert.equal(log.recoveryStats.scannedSegments, 1);
    for (let i = 0; i < 30; i++) {
      const { records } = await log.read(BigInt(2 * i), 1);
      assert.equal(readBatchHeader(records).baseOffset, BigInt(2 * i));
      assert.deepEqual(records.subarray(8, sent[i].length), sent[i].subarray(8), `batch ${i}`);
    }
  } finally {
    await log.close();
  }
});
