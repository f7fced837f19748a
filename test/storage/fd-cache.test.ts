/**
 * Segment descriptors are bounded (issue 15, `log.maxOpenFiles`): opened on first use, the
 * least recently used idle ones closed over the limit (the active segment's too), reopened
 * on the next read or write, and never closed under a read, an unsynced write or a reader
 * of a segment being deleted.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { PartitionLog, defaultLogOptions } from '../../src/storage/partition-log.js';
import { LOG_OVERHEAD, readBatchHeader, validateBatch } from '../../src/storage/record-batch.js';
import { TopicManager } from '../../src/storage/topic-manager.js';
import { makeBatch } from '../helpers/batches.js';
import { waitFor } from '../helpers/wait.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tmpDir('meridian-fds-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** Every batch of a log, in order, checked. */
async function readAll(log: PartitionLog): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let next = log.logStartOffset;
  while (next < log.highWatermark) {
    const { records } = await log.read(next, 64 * 1024);
    assert.ok(records.length > 0);
    for (let p = 0; p < records.length; ) {
      const size = records.readInt32BE(p + 8) + LOG_OVERHEAD;
      const b = records.subarray(p, p + size);
      const h = validateBatch(b);
      assert.equal(h.baseOffset, next, 'offsets contiguous');
      out.push(Buffer.from(b));
      next = h.baseOffset + BigInt(h.lastOffsetDelta) + 1n;
      p += size;
    }
  }
  return out;
}

/**
 * Descriptors of this process open on segment files under `root` (Linux /proc): the
 * partitions' directories, not the data directory's own files (the journal's, say).
 */
function fdsUnder(root: string): number {
  let n = 0;
  const logs = path.join(root, 'logs') + path.sep;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(logs)) n++;
    } catch {
      // closed while listing
    }
  }
  return n;
}

const LIMIT = 16;
const opts = { ...defaultLogOptions, segmentBytes: 1024, retentionMs: -1, maxOpenFiles: LIMIT };

test('60 partitions of several segments stay within maxOpenFiles: written, reread byte-identical, reopened without opening sealed segments', { timeout: 120_000 }, async () => {
  const d = dir();
  let tm = await TopicManager.open(d, opts);
  await tm.createTopic('many', 60);
  const sent = new Map<number, Buffer[]>();
  for (let round = 0; round < 12; round++) {
    await Promise.all(
      Array.from({ length: 60 }, async (_, p) => {
        const b = makeBatch(`p${p}-r${round}`, 2, 120);
        const copy = Buffer.from(b);
        await tm.partition('many', p)!.append(b);
        const list = sent.get(p) ?? [];
        list[round] = copy;
        sent.set(p, list);
      }),
    );
    // Idle now (every write fdatasync'd): the cache is back under its limit once the closes
    // it started (on the threadpool) are done.
    await waitFor(`round ${round}: at most ${LIMIT} segment files open`, () => tm.openFiles() <= LIMIT && fdsUnder(d) <= LIMIT, 10_000, 5, () => `${tm.openFiles()} in the cache, ${fdsUnder(d)} in /proc`);
  }
  const segments = tm.partitions('many').reduce((n, log) => n + log.segments().length, 0);
  assert.ok(segments >= 60 * 3, `${segments} segments: several per partition`);
  assert.ok(tm.resourceStats().fdEvictions > 0);
  for (let p = 0; p < 60; p++) {
    const back = await readAll(tm.partition('many', p)!);
    assert.equal(back.length, 12);
    back.forEach((b, i) => assert.deepEqual(b.subarray(8), sent.get(p)![i].subarray(8), `partition ${p} batch ${i}`));
    assert.ok(tm.openFiles() <= LIMIT);
  }
  await tm.close();
  assert.equal(fdsUnder(d), 0, 'close releases every descriptor');

  tm = await TopicManager.open(d, opts);
  try {
    // Recovery opened no sealed segment (their index headers suffice) and the active ones
    // only within the limit.
    assert.ok(tm.openFiles() <= LIMIT, `${tm.openFiles()} open after reopen`);
    assert.equal(tm.recoveryStats().scannedBytes, 0, 'a clean shutdown leaves nothing to scan');
    // The idle active segments' descriptors were closed; a write reopens one.
    const log = tm.partition('many', 7)!;
    const more = makeBatch('after-reopen', 3, 50);
    const copy = Buffer.from(more);
    await log.append(more);
    const back = await readAll(log);
    assert.equal(back.length, 13);
    assert.deepEqual(back[12].subarray(8), copy.subarray(8));
    assert.deepEqual(back[0].subarray(8), sent.get(7)![0].subarray(8));
  } finally {
    await tm.close();
  }
});

test('with a limit of 1, concurrent reads and writes on many segments all complete (the limit is soft, busy descriptors stay)', { timeout: 60_000 }, async () => {
  const log = await PartitionLog.open(dir(), { segmentBytes: 1024, retentionMs: -1, maxOpenFiles: 1 });
  try {
    const batches = Array.from({ length: 40 }, (_, i) => makeBatch(`c${i}`, 1, 200));
    const copies = batches.map((b) => Buffer.from(b));
    for (const b of batches) await log.append(b);
    assert.ok(log.segments().length >= 10);
    // Reads of every batch at once, interleaved with appends.
    const reads = copies.map(async (c, i) => {
      const { records } = await log.read(BigInt(i), 1);
      assert.deepEqual(records.subarray(8, 8 + c.length - 8), c.subarray(8));
    });
    const writes = Array.from({ length: 10 }, (_, i) => log.append(makeBatch(`w${i}`, 1, 200)));
    await Promise.all([...reads, ...writes]);
    assert.equal((await readAll(log)).length, 50);
  } finally {
    await log.close();
  }
});

test('a segment deleted by retention while readers hold it: the readers finish, with its descriptor closed by the cache beforehand', { timeout: 60_000 }, async () => {
  const d = dir();
  const log = await PartitionLog.open(d, { segmentBytes: 1024, retentionMs: -1, retentionBytes: 0, maxOpenFiles: 1 });
  try {
    for (let i = 0; i < 30; i++) await log.append(makeBatch(`r${i}`, 1, 200));
    const first = log.segments()[0];
    assert.ok(first.sealed);
    // Start many reads of the oldest segment, then delete it under them.
    const reads = Array.from({ length: 20 }, () =>
      log.read(first.baseOffset, 1).then(
        (r) => ({ ok: true as const, first: readBatchHeader(r.records).baseOffset }),
        (err: { code?: string }) => ({ ok: false as const, code: err.code }),
      ),
    );
    const deleted = await log.applyRetention();
    assert.ok(deleted.length > 0);
    for (const r of await Promise.all(reads)) {
      // Either served (it held the segment) or refused as out of range (it came after):
      // never a descriptor error.
      if (r.ok) assert.equal(r.first, first.baseOffset);
      else assert.equal(r.code, 'OFFSET_OUT_OF_RANGE');
    }
    assert.ok(!fs.existsSync(first.logPath));
  } finally {
    await log.close();
  }
});

test('interval mode with more dirty partitions than maxOpenFiles: idle dirty descriptors are fdatasync\'d and closed, so they stay bounded', { timeout: 60_000 }, async () => {
  const d = dir();
  const tm = await TopicManager.open(d, { ...opts, flushMode: 'interval', flushIntervalMs: 600_000 });
  try {
    await tm.createTopic('dirty', 60);
    const sent = await Promise.all(
      Array.from({ length: 60 }, async (_, p) => {
        const b = makeBatch(`d${p}`, 2, 100);
        const copy = Buffer.from(b);
        await tm.partition('dirty', p)!.append(b);
        return copy;
      }),
    );
    // Acknowledged after the write, long before the 10-minute flush: 60 dirty segments.
    await waitFor(`at most ${LIMIT} segment files open with 60 dirty partitions`, () => tm.openFiles() <= LIMIT && fdsUnder(d) <= LIMIT, 10_000, 5, () => `${tm.openFiles()} in the cache, ${fdsUnder(d)} in /proc`);
    for (let p = 0; p < 60; p++) {
      const [b] = await readAll(tm.partition('dirty', p)!);
      assert.deepEqual(b.subarray(8), sent[p].subarray(8));
    }
  } finally {
    await tm.close();
  }
});
