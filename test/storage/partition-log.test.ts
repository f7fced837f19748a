import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, test } from 'node:test';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { decodeRecords, readBatchHeader, validateBatch, LOG_OVERHEAD } from '../../src/storage/record-batch.js';
import { gzipBatch } from '../helpers/batch-mutations.js';
import { makeBatch } from '../helpers/batches.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tmpDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

/** Splits concatenated stored batches. */
function splitBatches(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < buf.length; ) {
    const size = buf.readInt32BE(p + 8) + LOG_OVERHEAD;
    out.push(buf.subarray(p, p + size));
    p += size;
  }
  return out;
}

async function readAll(log: PartitionLog, from = log.logStartOffset): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let next = from;
  while (next < log.highWatermark) {
    const { records } = await log.read(next, 64 * 1024);
    const batches = splitBatches(records);
    assert.ok(batches.length > 0);
    for (const b of batches) {
      validateBatch(b);
      out.push(b);
      next = readBatchHeader(b).baseOffset + BigInt(readBatchHeader(b).lastOffsetDelta) + 1n;
    }
  }
  return out;
}

test('appends get consecutive offsets and read back byte-identical, in order, across segments', async () => {
  const log = await PartitionLog.open(dir(), { segmentBytes: 8 * 1024 });
  const sent = Array.from({ length: 200 }, (_, i) => makeBatch(`b${i}`, 1 + (i % 5), 50));
  const expected = sent.map((b) => Buffer.from(b));
  const results = await Promise.all(sent.map((b) => log.append(b)));
  let next = 0n;
  results.forEach((r, i) => {
    assert.equal(r.baseOffset, next);
    next += BigInt(1 + (i % 5));
    assert.equal(r.lastOffset, next - 1n);
  });
  assert.equal(log.highWatermark, next);
  assert.ok(log.segments().length > 5, 'rolled several times');
  // Seals run behind the writer (a roll does not hold up the appends after it); flush waits for them.
  await log.flush();
  assert.ok(log.segments().slice(0, -1).every((s) => s.sealed));
  const back = await readAll(log);
  assert.equal(back.length, 200);
  back.forEach((b, i) => {
    // Only baseOffset differs from what the producer sent.
    assert.deepEqual(b.subarray(8), expected[i].subarray(8));
    assert.equal(readBatchHeader(b).baseOffset, results[i].baseOffset);
  });
  await log.close();
});

test('read starts at the batch holding the offset, honours the byte budget, returns at least one batch', async () => {
  const log = await PartitionLog.open(dir());
  for (let i = 0; i < 10; i++) await log.append(makeBatch(`r${i}`, 10, 100)); // offsets i*10 .. i*10+9
  const mid = await log.read(35n, 1);
  const batches = splitBatches(mid.records);
  assert.equal(batches.length, 1, 'one batch even though it exceeds maxBytes');
  assert.equal(readBatchHeader(batches[0]).baseOffset, 30n);
  const size = batches[0].length;
  const two = splitBatches((await log.read(35n, size * 2)).records);
  assert.equal(two.length, 2);
  const atEnd = await log.read(100n, 1000);
  assert.equal(atEnd.records.length, 0);
  assert.equal(atEnd.highWatermark, 100n);
  await assert.rejects(log.read(101n, 1000), { code: 'OFFSET_OUT_OF_RANGE' });
  await assert.rejects(log.read(-1n, 1000), { code: 'OFFSET_OUT_OF_RANGE' });
  const capped = splitBatches((await log.read(0n, 1 << 20, { upTo: 20n })).records);
  assert.equal(capped.length, 2, 'upTo stops before the batch starting at 20');
  await log.close();
});

test('a corrupt batch is rejected with CORRUPT_BATCH and nothing is appended', async () => {
  const log = await PartitionLog.open(dir());
  await log.append(makeBatch('ok', 3));
  const bad = makeBatch('bad', 3);
  bad[bad.length - 1] ^= 0xff;
  await assert.rejects(log.append(bad), (err: any) => err.code === 'CORRUPT_BATCH' && /CRC-32C mismatch/.test(err.message));
  await assert.rejects(log.appendAll([makeBatch('fine', 1), bad]), { code: 'CORRUPT_BATCH' });
  assert.equal(log.highWatermark, 3n);
  const r = await log.append(makeBatch('next', 1));
  assert.equal(r.baseOffset, 3n);
  assert.equal((await readAll(log)).length, 2);
  await log.close();
});

test('appendAll writes several batches as one unit with consecutive offsets', async () => {
  const log = await PartitionLog.open(dir(), { segmentBytes: 2048 });
  await log.append(makeBatch('a', 1, 1500));
  const r = await log.appendAll([makeBatch('m', 1, 10), makeBatch('x', 2, 400), makeBatch('y', 3, 400)]);
  assert.deepEqual(r, { baseOffset: 1n, lastOffset: 6n });
  const segs = log.segments();
  assert.equal(segs.length, 2, 'rolled before the unit, not inside it');
  assert.equal(segs[1].baseOffset, 1n);
  assert.equal(segs[1].nextOffset, 7n);
  await log.close();
});

test('concurrent durable appends share fdatasyncs (group commit)', async () => {
  const log = await PartitionLog.open(dir());
  await Promise.all(Array.from({ length: 256 }, (_, i) => log.append(makeBatch(`g${i}`, 1, 1000))));
  const s = log.stats();
  assert.equal(s.batches, 256);
  assert.ok(s.fsyncs < 64, `256 durable appends took ${s.fsyncs} fdatasyncs`);
  assert.equal(log.durableOffset, 256n);
  await log.close();
});

test('interval mode acknowledges after the write and fdatasyncs on the timer or on flush', async () => {
  const log = await PartitionLog.open(dir(), { flushMode: 'interval', flushIntervalMs: 60_000 });
  await log.append(makeBatch('i', 5));
  assert.equal(log.highWatermark, 5n);
  assert.equal(log.stats().fsyncs, 0);
  assert.equal(log.durableOffset, 0n);
  await log.append(makeBatch('s', 1), { sync: true });
  assert.equal(log.durableOffset, 6n);
  await log.append(makeBatch('t', 1));
  await log.flush();
  assert.equal(log.durableOffset, 7n);
  await log.close();
});

test('sealed segments are announced once, immutable, with their offsets', async () => {
  const log = await PartitionLog.open(dir(), { segmentBytes: 4096 });
  const sealed: bigint[][] = [];
  log.onSegmentSealed((s) => {
    assert.ok(s.sealed);
    assert.ok(fs.existsSync(s.indexPath));
    sealed.push([s.baseOffset, s.nextOffset]);
  });
  for (let i = 0; i < 30; i++) await log.append(makeBatch(`s${i}`, 2, 500));
  await log.roll();
  const segs = log.segments();
  assert.deepEqual(sealed, segs.slice(0, -1).map((s) => [s.baseOffset, s.nextOffset]));
  for (let i = 1; i < sealed.length; i++) assert.equal(sealed[i][0], sealed[i - 1][1]);
  assert.equal(segs[segs.length - 1].baseOffset, 60n);
  await log.close();
});

test('segments roll by age', async () => {
  const log = await PartitionLog.open(dir(), { segmentMs: 50, retentionMs: -1 });
  await log.append(makeBatch('a', 1));
  await new Promise((r) => setTimeout(r, 80));
  await log.maintain();
  assert.equal(log.segments().length, 2);
  await log.append(makeBatch('b', 1));
  await new Promise((r) => setTimeout(r, 80));
  await log.append(makeBatch('c', 1)); // the age rule also applies on append
  assert.equal(log.segments().length, 3);
  await log.close();
});

test('size retention deletes the oldest sealed segments; guards can veto; reads move with the log start', async () => {
  const log = await PartitionLog.open(dir(), { segmentBytes: 4096, retentionBytes: 10_000, retentionMs: -1 });
  for (let i = 0; i < 40; i++) await log.append(makeBatch(`r${i}`, 1, 900));
  const before = log.segments();
  let allow = false;
  const vetoed: bigint[] = [];
  const remove = log.addRetentionGuard((s) => {
    if (!allow) vetoed.push(s.baseOffset);
    return allow;
  });
  assert.deepEqual(await log.applyRetention(), []);
  assert.deepEqual(vetoed, [0n], 'asked about the oldest segment only');
  allow = true;
  const deleted = await log.applyRetention();
  remove();
  assert.ok(deleted.length > 0);
  for (const d of deleted) assert.equal(fs.existsSync(d.logPath), false);
  assert.ok(log.sizeBytes >= 10_000 && log.sizeBytes - log.segments()[0].sizeBytes < 10_000);
  assert.equal(log.logStartOffset, before[deleted.length].baseOffset);
  await assert.rejects(log.read(0n, 100), { code: 'OFFSET_OUT_OF_RANGE' });
  const all = await readAll(log);
  assert.equal(readBatchHeader(all[0]).baseOffset, log.logStartOffset);
  assert.equal(readBatchHeader(all[all.length - 1]).baseOffset, 39n);
  await log.close();
});

test('time retention deletes segments whose newest record is older than retention.ms', async () => {
  const log = await PartitionLog.open(dir(), { segmentBytes: 2048, retentionMs: 60_000, retentionBytes: -1 });
  const now = Date.now();
  for (let i = 0; i < 6; i++) await log.append(makeBatch(`old${i}`, 1, 900, BigInt(now - 3_600_000)));
  for (let i = 0; i < 6; i++) await log.append(makeBatch(`new${i}`, 1, 900, BigInt(now)));
  const deleted = await log.applyRetention(now);
  assert.ok(deleted.length >= 2);
  assert.ok(deleted.every((d) => Number(d.maxTimestamp) < now - 60_000));
  const left = await readAll(log);
  assert.ok(decodeRecords(left[left.length - 1])[0].value!.toString().startsWith('new5'));
  assert.ok(left.every((b) => !decodeRecords(b)[0].key!.toString().startsWith('old') || readBatchHeader(b).maxTimestamp < BigInt(now)));
  await log.close();
});

test('reads running while retention deletes a segment still return whole, valid batches', async () => {
  const log = await PartitionLog.open(dir(), { segmentBytes: 4096, retentionBytes: 0, retentionMs: -1 });
  for (let i = 0; i < 50; i++) await log.append(makeBatch(`c${i}`, 1, 900));
  const reads = Array.from({ length: 50 }, (_, i) =>
    log.read(BigInt(i), 1 << 20).then(
      (r) => splitBatches(r.records).forEach((b) => validateBatch(b)),
      (err) => assert.equal(err.code, 'OFFSET_OUT_OF_RANGE'),
    ),
  );
  await Promise.all([...reads, log.applyRetention()]);
  assert.equal(log.segments().length, 1);
  await log.close();
});

test('offset for timestamp finds the first record at or after it, across segments', async () => {
  const log = await PartitionLog.open(dir(), { segmentBytes: 2048 });
  // Batch i holds 4 records with timestamps 1000*i + 0..3.
  for (let i = 0; i < 20; i++) await log.append(makeBatch(`t${i}`, 4, 200, BigInt(1000 * i)));
  assert.deepEqual(await log.offsetForTimestamp(0n), { offset: 0n, timestamp: 0n });
  assert.deepEqual(await log.offsetForTimestamp(5002n), { offset: 22n, timestamp: 5002n });
  assert.deepEqual(await log.offsetForTimestamp(5004n), { offset: 24n, timestamp: 6000n });
  assert.deepEqual(await log.offsetForTimestamp(19003n), { offset: 79n, timestamp: 19003n });
  assert.equal(await log.offsetForTimestamp(19004n), null);
  await log.close();
});

test('offset for timestamp opens compressed batches: the first record at or after the time, with its own timestamp', async () => {
  const log = await PartitionLog.open(dir(), { segmentBytes: 2048 });
  // Batch i, gzip'd, holds 4 records with timestamps 1000*i + 0..3.
  for (let i = 0; i < 10; i++) await log.append(gzipBatch(makeBatch(`z${i}`, 4, 200, BigInt(1000 * i))));
  assert.deepEqual(await log.offsetForTimestamp(5002n), { offset: 22n, timestamp: 5002n }, 'inside a compressed batch, not its base offset');
  assert.deepEqual(await log.offsetForTimestamp(5004n), { offset: 24n, timestamp: 6000n });
  assert.deepEqual(await log.offsetForTimestamp(9003n), { offset: 39n, timestamp: 9003n });
  assert.equal(await log.offsetForTimestamp(9004n), null);
  await log.close();
});

test('reopening a cleanly closed log keeps every batch and continues the offsets', async () => {
  const d = dir();
  let log = await PartitionLog.open(d, { segmentBytes: 4096 });
  for (let i = 0; i < 50; i++) await log.append(makeBatch(`p${i}`, 2, 300));
  const before = (await readAll(log)).map((b) => Buffer.from(b));
  await log.close();
  await log.close(); // idempotent
  await assert.rejects(log.append(makeBatch('late', 1)), { code: 'LOG_CLOSED' });
  log = await PartitionLog.open(d, { segmentBytes: 4096 });
  assert.equal(log.highWatermark, 100n);
  assert.deepEqual(await readAll(log), before);
  assert.equal((await log.append(makeBatch('after', 1))).baseOffset, 100n);
  await log.close();
});

test('reads find the right batch whatever the batch sizes relative to the index interval and window', async () => {
  const log = await PartitionLog.open(dir(), { indexIntervalBytes: 256, retentionMs: -1 });
  // Mixed sizes: tiny, index-interval-ish and much larger than the read window.
  const sizes = [10, 3000, 50, 200_000, 20, 20, 120_000, 5, 70_000, 40];
  const sent: Buffer[] = [];
  for (let i = 0; i < 60; i++) {
    const b = makeBatch(`w${i}`, 1 + (i % 3), sizes[i % sizes.length]);
    sent.push(Buffer.from(b));
    await log.append(b);
  }
  let offset = 0n;
  const starts: bigint[] = [];
  for (let i = 0; i < 60; i++) {
    starts.push(offset);
    offset += BigInt(1 + (i % 3));
  }
  for (let i = 0; i < 60; i++) {
    for (const target of [starts[i], starts[i] + BigInt(i % 3)]) {
      for (const budget of [1, 100, 5000, 300_000]) {
        const { records } = await log.read(target, budget);
        const got = splitBatches(records);
        assert.ok(got.length >= 1);
        assert.deepEqual(got[0].subarray(8), sent[i].subarray(8), `offset ${target} budget ${budget}`);
        assert.ok(got.length === 1 || records.length <= budget);
        got.forEach((b, k) => assert.deepEqual(b.subarray(8), sent[i + k].subarray(8)));
      }
    }
  }
  await log.close();
});

test('each sealed segment records the CRC-32C of its whole file, also after recovery', async () => {
  const { crc32c } = await import('@node-rs/crc32');
  const d = dir();
  let log = await PartitionLog.open(d, { segmentBytes: 4096, retentionMs: -1 });
  for (let i = 0; i < 30; i++) await log.append(makeBatch(`c${i}`, 2, 300));
  const check = (l: PartitionLog) => {
    for (const s of l.segments()) assert.equal(s.dataCrc32c, crc32c(fs.readFileSync(s.logPath)), `segment ${s.baseOffset}`);
  };
  check(log);
  await log.close();
  fs.rmSync(log.segments()[0].indexPath); // forces a rescan of the first segment
  log = await PartitionLog.open(d, { segmentBytes: 4096, retentionMs: -1 });
  check(log);
  await log.close();
});
