/**
 * The tail cache (src/storage/tail-cache.ts): reads at the end of a followed log come from
 * memory, and return exactly what a read of the file returns, whatever happens to the
 * buffers on either side, through truncations, rolls, the per-partition bound and the
 * shared budget. Every comparison is against a second PartitionLog opened on a copy of the
 * same directory, which has nothing cached and reads the file.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { PartitionLog, type LogResources } from '../../src/storage/partition-log.js';
import { LOG_OVERHEAD, readBatchHeader } from '../../src/storage/record-batch.js';
import { PARTITION_BYTES, TailCacheBudget } from '../../src/storage/tail-cache.js';
import { makeBatch } from '../helpers/batches.js';
import { rng } from '../helpers/varied-batches.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tmpDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

async function open(d: string, budget: TailCacheBudget, opts: Partial<Parameters<typeof PartitionLog.open>[1]> = {}): Promise<PartitionLog> {
  const resources: LogResources = { tail: budget };
  return PartitionLog.open(d, { flushMode: 'interval', flushIntervalMs: 60_000, ...opts }, undefined, 0n, resources);
}

/** A log read from its file only: the directory copied after a flush, opened fresh. */
async function fileReader(log: PartitionLog): Promise<PartitionLog> {
  await log.flush();
  const copy = path.join(dir(), 'copy');
  fs.cpSync(log.dir, copy, { recursive: true });
  return PartitionLog.open(copy, { flushMode: 'interval', flushIntervalMs: 60_000, segmentBytes: log.options.segmentBytes });
}

function offsetsOf(records: Buffer): bigint[] {
  const out: bigint[] = [];
  for (let p = 0; p < records.length; ) {
    const h = readBatchHeader(records.subarray(p));
    out.push(h.baseOffset);
    p += records.readInt32BE(p + 8) + LOG_OVERHEAD;
  }
  return out;
}

/** Every (offset, maxBytes, upTo) of a seeded sample: the same bytes from both logs. */
async function assertSameReads(log: PartitionLog, file: PartitionLog, samples: number, seed: number): Promise<void> {
  const r = rng(seed);
  const end = Number(log.highWatermark);
  for (let i = 0; i < samples; i++) {
    const offset = BigInt(Math.max(0, end - 1 - r(Math.min(end, 400))));
    const maxBytes = [1, 100, 4096, 64 * 1024, 1 << 20][r(5)];
    const upTo = r(3) === 0 ? offset + BigInt(r(50)) : undefined;
    const a = await log.read(offset, maxBytes, { upTo });
    const b = await file.read(offset, maxBytes, { upTo });
    assert.ok(a.records.equals(b.records), `read(${offset}, ${maxBytes}, upTo ${upTo}) differs: cached batches ${offsetsOf(a.records).join(',')} vs file ${offsetsOf(b.records).join(',')}`);
  }
}

test('reads at the end of a followed log come from memory, byte-identical to the file, in buffers of their own', async () => {
  const budget = new TailCacheBudget();
  const log = await open(dir(), budget);
  await log.read(0n, 1024); // a reader follows the log from here on
  const r = rng(7);
  for (let i = 0; i < 300; i++) {
    const batch = makeBatch(`m${i}`, 1 + r(5), 1 + r(3000));
    const appended = log.append(batch);
    await appended;
    // The appender reuses its buffer (a pool, a request frame): the log's copy is its own.
    batch.fill(0xee);
  }
  const hitsBefore = budget.hits;
  const file = await fileReader(log);
  await assertSameReads(log, file, 400, 11);
  assert.ok(budget.hits - hitsBefore >= 300, `only ${budget.hits - hitsBefore} of 400 reads came from memory`);
  // A reader that scribbles on what it got (stamps it into another log) changes nothing.
  const first = await log.read(log.highWatermark - 3n, 1 << 20);
  const copy = Buffer.from(first.records);
  first.records.fill(0);
  assert.ok((await log.read(log.highWatermark - 3n, 1 << 20)).records.equals(copy));
  await Promise.all([log.close(), file.close()]);
  assert.equal(budget.bytes, 0, 'a closed log gives its memory back');
});

test('a log nobody reads caches nothing', async () => {
  const budget = new TailCacheBudget();
  const log = await open(dir(), budget);
  for (let i = 0; i < 50; i++) await log.append(makeBatch(`m${i}`, 2, 500));
  assert.equal(budget.bytes, 0);
  await log.read(49n, 1024);
  await log.append(makeBatch('after', 2, 500));
  assert.ok(budget.bytes > 0, 'followed once read at its end');
  await log.close();
});

test('past one partition\'s bound the oldest batches go to the disk again; reads stay identical', async () => {
  const budget = new TailCacheBudget(64 * 1024 * 1024);
  const log = await open(dir(), budget);
  await log.read(0n, 1);
  for (let i = 0; i < 400; i++) await log.append(makeBatch(`m${i}`, 4, 2000)); // ~3.2 MiB
  assert.ok(budget.bytes <= PARTITION_BYTES, `${budget.bytes} bytes held for one partition`);
  const file = await fileReader(log);
  await assertSameReads(log, file, 300, 3);
  // Offsets from the start are long gone from memory: they come from the file, unchanged.
  assert.ok((await log.read(0n, 1 << 20)).records.equals((await file.read(0n, 1 << 20)).records));
  await Promise.all([log.close(), file.close()]);
});

test('a truncation and a roll drop the cached tail: later reads see the new bytes, never stale ones', async () => {
  const budget = new TailCacheBudget();
  const log = await open(dir(), budget, { segmentBytes: 16 * 1024 });
  await log.read(0n, 1);
  for (let i = 0; i < 40; i++) await log.append(makeBatch(`old${i}`, 1, 900));
  await log.read(30n, 1024);
  await log.truncateTo(30n);
  for (let i = 30; i < 60; i++) await log.append(makeBatch(`new${i}`, 1, 900));
  const file = await fileReader(log);
  await assertSameReads(log, file, 200, 5);
  const at35 = await log.read(35n, 1);
  assert.ok(at35.records.includes(Buffer.from('new35')), 'the batch at 35 is the one written after the truncation');
  assert.ok(log.segments().length > 2, 'the log rolled while appending');
  await Promise.all([log.close(), file.close()]);
});

test('partitions share the budget: the least recently written give their tails up, and still read right', async () => {
  const budget = new TailCacheBudget(96 * 1024);
  const logs = await Promise.all(Array.from({ length: 6 }, () => open(dir(), budget)));
  for (const log of logs) await log.read(0n, 1);
  for (let round = 0; round < 30; round++) {
    for (const [i, log] of logs.entries()) await log.append(makeBatch(`p${i}r${round}`, 2, 1500));
    assert.ok(budget.bytes <= budget.limit, `${budget.bytes} bytes held over a limit of ${budget.limit}`);
  }
  assert.ok(budget.evictions > 0, 'six followed partitions of ~90 KiB each do not fit 96 KiB');
  for (const log of logs) {
    const file = await fileReader(log);
    await assertSameReads(log, file, 60, 9);
    await file.close();
  }
  await Promise.all(logs.map((l) => l.close()));
});

test('more followed partitions than the budget holds: each read right after its write still comes from memory', async () => {
  // bench:scale's shape: 10,000 partitions written round-robin, each read just after its
  // write (a consumer at the end, the replication worker). A log evicted between two of its
  // writes must cache the next one again; no read here may go to the file.
  const budget = new TailCacheBudget(16 * 1024);
  const logs = await Promise.all(Array.from({ length: 12 }, () => open(dir(), budget)));
  for (const log of logs) await log.read(0n, 1);
  let reads = 0;
  const hitsBefore = budget.hits;
  for (let round = 0; round < 10; round++) {
    for (const [i, log] of logs.entries()) {
      const { baseOffset } = await log.append(makeBatch(`p${i}r${round}`, 1, 150));
      const r = await log.read(baseOffset, 1 << 20);
      assert.deepEqual(offsetsOf(r.records), [baseOffset]);
      reads++;
    }
    assert.ok(budget.bytes <= budget.limit, `${budget.bytes} bytes held over a limit of ${budget.limit}`);
  }
  assert.ok(budget.evictions > 0, 'twelve followed partitions of 4 KiB buffers do not fit 16 KiB');
  assert.equal(budget.hits - hitsBefore, reads, 'every read after its write was answered from memory');
  for (const log of logs) {
    const file = await fileReader(log);
    await assertSameReads(log, file, 20, 11);
    await file.close();
  }
  await Promise.all(logs.map((l) => l.close()));
});

test('batches larger than the first buffer over more partitions than the budget holds: evicted buffers are reused, reads stay byte-identical', async () => {
  // bench:scale's one-connection produce: 20 KB per partition per request over 10,000
  // partitions. Every write evicts another log's 32 KiB buffer and needs one: it takes the
  // evicted one (stale bytes and all) instead of allocating.
  const budget = new TailCacheBudget(96 * 1024);
  const logs = await Promise.all(Array.from({ length: 40 }, () => open(dir(), budget)));
  for (const log of logs) await log.read(0n, 1);
  // First small batches, each read after its write, as bench:scale's lag run leaves them:
  // the budget full of 4 KiB buffers. Each larger write below evicts eight of them, so the
  // spares fill with a size nobody takes; the 32 KiB buffers given up must still be kept.
  for (let round = 0; round < 2; round++) {
    for (const [i, log] of logs.entries()) {
      const { baseOffset } = await log.append(makeBatch(`small${i}r${round}`, 1, 150));
      await log.read(baseOffset, 1 << 20);
    }
  }
  const hitsBefore = budget.hits;
  const allocationsBefore = budget.allocations;
  const evictionsBefore = budget.evictions;
  let writes = 0;
  for (let round = 0; round < 3; round++) {
    for (const [i, log] of logs.entries()) {
      const batch = makeBatch(`p${i}r${round}`, 20, 1000);
      const { baseOffset } = await log.append(Buffer.from(batch));
      writes++;
      const r = await log.read(baseOffset, 1 << 20);
      const want = Buffer.from(batch);
      want.writeBigInt64BE(baseOffset, 0);
      assert.ok(r.records.equals(want), `partition ${i}, round ${round}: the read differs from the write`);
      const h = await log.batchHeaderAt(baseOffset + 7n);
      assert.deepEqual(h, readBatchHeader(want), 'the header read in place is the written one');
      assert.deepEqual(log.cachedBatchHeaderAt(baseOffset + 7n), h, 'and known without a promise');
    }
    assert.ok(budget.bytes <= budget.limit, `${budget.bytes} bytes held over a limit of ${budget.limit}`);
  }
  assert.equal(budget.hits - hitsBefore, writes, 'every read after its write was answered from memory');
  assert.ok(budget.evictions - evictionsBefore >= writes - 3, `${budget.evictions - evictionsBefore} evictions for ${writes} writes into 3 buffers' worth`);
  const allocated = budget.allocations - allocationsBefore;
  assert.ok(allocated <= 8, `${allocated} buffers allocated for ${writes} writes: evicted ones are not reused`);
  assert.ok(budget.spareBytes <= budget.limit / 2, 'the buffers kept for reuse stay within half the budget');
  for (const log of logs) {
    const file = await fileReader(log);
    await assertSameReads(log, file, 20, 13);
    for (let o = 0n; o < log.highWatermark; o += 5n) assert.deepEqual(await log.batchHeaderAt(o), readBatchHeader((await file.read(o, 1)).records), `header at ${o}`);
    await file.close();
  }
  await Promise.all(logs.map((l) => l.close()));
});

test('a log whose readers stopped is no longer cached once its tail is evicted unread; a read at its end follows it again', async () => {
  // bench:scale's eu-west after its lag run: a consumer group read every partition, then
  // stopped. Copying each later write into a buffer that is evicted unread (and evicting
  // other logs' to make room) is work for nobody.
  const budget = new TailCacheBudget(16 * 1024);
  const logs = await Promise.all(Array.from({ length: 8 }, () => open(dir(), budget)));
  for (const log of logs) {
    const { baseOffset } = await log.append(makeBatch('read', 1, 150));
    await log.read(baseOffset, 1 << 20);
  }
  // The readers are gone: eight logs take turns in a budget of four buffers, each tail
  // evicted unread, until the logs left without a buffer stop being cached.
  for (let round = 0; round < 3; round++) for (const [i, log] of logs.entries()) await log.append(makeBatch(`p${i}r${round}`, 1, 150));
  const steady = { evictions: budget.evictions, allocations: budget.allocations, bytes: budget.bytes };
  assert.ok(steady.evictions >= 8, `${steady.evictions} evictions: every log was evicted`);
  const writes = async (tag: string) => {
    for (let round = 0; round < 3; round++) for (const [i, log] of logs.entries()) await log.append(makeBatch(`p${i}${tag}${round}`, 1, 150));
  };
  await writes('late');
  assert.deepEqual({ evictions: budget.evictions, allocations: budget.allocations, bytes: budget.bytes }, steady, 'their writes evict nothing and take no buffer');
  // The disaster-recovery header read of a partition's end is not a reader: it follows nothing.
  for (const log of logs) {
    const file = await fileReader(log);
    const want = readBatchHeader((await file.read(log.highWatermark - 1n, 1)).records);
    await file.close();
    assert.deepEqual(log.cachedBatchHeaderAt(log.highWatermark - 1n), want, 'the last batch header, known as written without a read');
    assert.equal(log.cachedBatchHeaderAt(0n), undefined, 'an older batch of an unfollowed log needs a read');
    assert.equal(log.cachedBatchHeaderAt(log.highWatermark), undefined, 'past the end: none');
    assert.deepEqual(await log.batchHeaderAt(log.highWatermark - 1n), want, 'the last batch header, read from the file');
  }
  await writes('after-headers');
  assert.deepEqual({ evictions: budget.evictions, allocations: budget.allocations, bytes: budget.bytes }, steady, 'a header read does not follow a log');
  // A reader comes back to one log: its writes are cached again, and read from memory.
  const back = logs[3];
  await back.read(back.highWatermark, 1);
  const hits = budget.hits;
  for (let i = 0; i < 5; i++) {
    const { baseOffset } = await back.append(makeBatch(`back${i}`, 1, 150));
    await back.read(baseOffset, 1 << 20);
  }
  assert.equal(budget.hits - hits, 5, 'each read after a write came from memory');
  for (const log of logs) {
    const file = await fileReader(log);
    await assertSameReads(log, file, 20, 17);
    await file.close();
  }
  await Promise.all(logs.map((l) => l.close()));
});

test('log.tailCacheBytes 0 turns it off', async () => {
  const budget = new TailCacheBudget(0);
  const log = await open(dir(), budget);
  await log.read(0n, 1);
  for (let i = 0; i < 20; i++) await log.append(makeBatch(`m${i}`, 1, 100));
  await log.read(10n, 1024);
  assert.equal(budget.bytes, 0);
  assert.equal(budget.hits, 0);
  await log.close();
});
