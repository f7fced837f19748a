/**
 * The ship fence (storage/ship-fence.ts): in the interval flush mode a replicator may send
 * records before they are durable, below a fence the log persists a stride ahead; after a
 * power loss (another boot id) the log skips to the fence, so no new record takes an offset
 * a remote may hold. Checked on a real PartitionLog:
 *   - coverUnsynced persists the fence with this boot, without an fdatasync of the data; it
 *     refuses in the fsync mode and where the boot cannot be told;
 *   - the image a power loss leaves (the directory as it was, the unsynced tail cut) opens,
 *     on another boot, with the lost offsets filled up to the fence by one control batch
 *     that reads back whole; new records start at the fence; older ones are untouched;
 *   - the same image on the same boot (a process crash cannot lose written records) and a
 *     log closed cleanly (everything durable, the fence removed) open without a gap;
 *   - a fill that fails (a full disk at the open) leaves the fence for the next open; a log
 *     whose fdatasync failed marks its fence so that even the same boot fills (the kernel
 *     may have dropped pages it could not write); a follower takes a leader's filler.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { PartitionFiles } from '../../src/storage/partition-files.js';
import { PartitionLog, type LogOptions } from '../../src/storage/partition-log.js';
import { decodeRecords, isControlBatch, lastOffsetOf, readBatchHeader, storedBatches } from '../../src/storage/record-batch.js';
import { encodeOffsetFillers, isOffsetFiller, readShipFence, SHIP_FENCE_STRIDE, UNTRUSTED_BOOT } from '../../src/storage/ship-fence.js';
import { makeBatch } from '../helpers/batches.js';
import { faultyIo } from '../helpers/faulty-io.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tmpDir('meridian-fence-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** Interval mode whose timer never fires during a test: nothing is fdatasync'd unless asked. */
const INTERVAL: Partial<LogOptions> = { flushMode: 'interval', flushIntervalMs: 600_000, retentionMs: -1, bootId: 'boot-a' };

async function appendN(log: PartitionLog, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i++) await log.append(makeBatch(`${tag}${i}`, 2, 100), { sync: false });
}

/** The directory as a power loss would leave it: a copy, with the segment cut after `keep` batches. */
function powerLossImage(src: string, keep: number): string {
  const dst = dir();
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dst, f));
  const seg = fs.readdirSync(dst).find((f) => f.endsWith('.log'))!;
  const data = fs.readFileSync(path.join(dst, seg));
  const cut = storedBatches(data)
    .slice(0, keep)
    .reduce((n, b) => n + b.buf.length, 0);
  fs.truncateSync(path.join(dst, seg), cut);
  return dst;
}

async function keysFrom(log: PartitionLog, from: bigint): Promise<string[]> {
  const keys: string[] = [];
  for (let at = from; at < log.highWatermark; ) {
    const r = await log.read(at, 1 << 20);
    for (const b of storedBatches(r.records)) {
      if (!isControlBatch(b.h)) keys.push(...decodeRecords(b.buf).map((x) => String(x.key)));
      at = lastOffsetOf(b.h) + 1n;
    }
  }
  return keys;
}

test('coverUnsynced persists a fence a stride past the records, with this boot, and no fdatasync of them; refused in the fsync mode and without a boot id', async () => {
  const d = dir();
  const log = await PartitionLog.open(d, INTERVAL);
  cleanups.push(() => void log.close());
  assert.equal(log.unsyncedShipping, true);
  await appendN(log, 5, 'a'); // offsets 0..9
  assert.equal(log.durableOffset, 0n, 'nothing fdatasync\'d yet');
  const fsyncs = log.stats().fsyncs;
  assert.equal(await log.coverUnsynced(9n), true);
  assert.deepEqual(readShipFence(PartitionFiles.shipFence(d)), { fence: 9n + SHIP_FENCE_STRIDE, bootId: 'boot-a' });
  assert.equal(log.shipFence, 9n + SHIP_FENCE_STRIDE);
  assert.equal(log.stats().fsyncs, fsyncs, 'the records themselves were not fdatasync\'d');
  assert.equal(log.durableOffset, 0n);
  // Within the stride: covered at once, the fence file unchanged.
  assert.equal(await log.coverUnsynced(5000n), true);
  assert.equal(readShipFence(PartitionFiles.shipFence(d))!.fence, 9n + SHIP_FENCE_STRIDE);
  await log.close();
  assert.equal(fs.existsSync(PartitionFiles.shipFence(d)), false, 'a clean close leaves everything durable, and no fence');

  const fsyncLog = await PartitionLog.open(dir(), { ...INTERVAL, flushMode: 'fsync' });
  await appendN(fsyncLog, 1, 'f');
  assert.equal(fsyncLog.unsyncedShipping, false);
  assert.equal(await fsyncLog.coverUnsynced(1n), false, 'fsync mode: records are sent only once durable');
  assert.equal(fs.existsSync(PartitionFiles.shipFence(fsyncLog.dir)), false);
  await fsyncLog.close();

  const unknownBoot = await PartitionLog.open(dir(), { ...INTERVAL, bootId: null });
  assert.equal(unknownBoot.unsyncedShipping, false);
  assert.equal(await unknownBoot.coverUnsynced(0n), false, 'a machine whose boot cannot be told sends only durable records');
  await unknownBoot.close();
});

test('after a power loss (another boot) the log skips the lost offsets up to the fence: one control batch fills them, new records start at the fence, older ones are untouched', async () => {
  const d = dir();
  const log = await PartitionLog.open(d, INTERVAL);
  cleanups.push(() => void log.close());
  await appendN(log, 5, 'a'); // offsets 0..9, none durable
  assert.equal(await log.coverUnsynced(9n), true); // a replicator sent all of them
  const fence = log.shipFence;
  // The power loss takes the last 2 batches (offsets 6..9) that a remote may hold.
  const image = powerLossImage(d, 3);

  const after = await PartitionLog.open(image, { ...INTERVAL, bootId: 'boot-b' });
  try {
    assert.equal(after.logEndOffset, fence, 'the log continues at the fence');
    assert.equal(after.durableOffset, fence, 'the filler is durable before anything appends');
    const r = await after.read(6n, 1 << 20);
    const [filler] = storedBatches(r.records);
    assert.ok(isOffsetFiller(filler.buf, filler.h), 'a read inside the gap returns the filler');
    assert.equal(filler.h.baseOffset, 6n);
    assert.equal(lastOffsetOf(filler.h), fence - 1n, 'one batch covers every skipped offset');
    assert.equal(decodeRecords(filler.buf)[0].offset, fence - 1n, 'its control record sits at the last offset (KafkaJS moves past a batch by its records)');
    const appended = await after.append(makeBatch('new', 2, 100), { sync: false });
    assert.equal(appended.baseOffset, fence, 'a new record never takes an offset a remote may hold');
    assert.deepEqual(await keysFrom(after, 0n), ['a0-0', 'a0-1', 'a1-0', 'a1-1', 'a2-0', 'a2-1', 'new-0', 'new-1']);
  } finally {
    await after.close();
  }
  // Reopened on the new boot: the fence is behind the end, nothing more is skipped.
  const again = await PartitionLog.open(image, { ...INTERVAL, bootId: 'boot-b' });
  assert.equal(again.logEndOffset, fence + 2n);
  await again.close();

  // The same image on the same boot: a process crash keeps the page cache, so no gap.
  const sameBoot = await PartitionLog.open(powerLossImage(d, 3), INTERVAL);
  assert.equal(sameBoot.logEndOffset, 6n);
  await sameBoot.close();
});

test('a fence behind the end on another boot, or a log closed cleanly before the power loss, opens without a gap', async () => {
  const d = dir();
  const log = await PartitionLog.open(d, INTERVAL);
  await appendN(log, 3, 'a');
  assert.equal(await log.coverUnsynced(5n), true);
  await log.close();
  const reopened = await PartitionLog.open(d, { ...INTERVAL, bootId: 'boot-b' });
  assert.equal(reopened.logEndOffset, 6n, 'closed cleanly: nothing was lost, nothing is skipped');
  assert.equal(reopened.shipFence, 0n);
  await reopened.close();

  // A fence file from another boot that the log has passed since: nothing to fill.
  const e = dir();
  const passed = await PartitionLog.open(e, INTERVAL);
  await appendN(passed, 2, 'b');
  fs.writeFileSync(PartitionFiles.shipFence(e), JSON.stringify({ fence: '3', bootId: 'boot-0' }));
  const image = powerLossImage(e, 2);
  await passed.close();
  const opened = await PartitionLog.open(image, { ...INTERVAL, bootId: 'boot-b' });
  assert.equal(opened.logEndOffset, 4n);
  assert.equal(readBatchHeader((await opened.read(3n, 1 << 20)).records).baseOffset, 2n, 'the last batch is data, not a filler');
  await opened.close();
});


test('a fill the disk refuses leaves the fence for the next open; a failed fdatasync makes even the same boot fill; a follower takes a filler', async () => {
  const d = dir();
  const log = await PartitionLog.open(d, INTERVAL);
  cleanups.push(() => void log.close());
  await appendN(log, 4, 'a'); // offsets 0..7
  assert.equal(await log.coverUnsynced(7n), true);
  const fence = log.shipFence;
  const image = powerLossImage(d, 2);

  const full = faultyIo('write', 'ENOSPC');
  full.failing = true;
  await assert.rejects(PartitionLog.open(image, { ...INTERVAL, bootId: 'boot-b', io: full }), /ENOSPC|space/i);
  assert.deepEqual(readShipFence(PartitionFiles.shipFence(image)), { fence, bootId: 'boot-a' }, 'the fence survives the failed open');
  const later = await PartitionLog.open(image, { ...INTERVAL, bootId: 'boot-b' });
  assert.equal(later.logEndOffset, fence, 'space freed: the next open fills');
  await later.close();

  // EIO on the fdatasync: the log goes offline and marks its fence.
  const e = dir();
  const eio = faultyIo('fdatasync', 'EIO');
  const failing = await PartitionLog.open(e, { ...INTERVAL, io: eio });
  await appendN(failing, 3, 'b'); // offsets 0..5
  assert.equal(await failing.coverUnsynced(5n), true);
  eio.failing = true;
  await assert.rejects(failing.flush());
  assert.equal(readShipFence(PartitionFiles.shipFence(e))?.bootId, UNTRUSTED_BOOT);
  const cut = powerLossImage(e, 1); // what the kernel kept of the pages it could not write
  await failing.close();
  const sameBoot = await PartitionLog.open(cut, INTERVAL);
  assert.equal(sameBoot.logEndOffset, failing.shipFence, 'filled although the boot is the same');
  await sameBoot.close();

  // A follower (a region cluster's replica) appends its leader's filler as fetched.
  const follower = await PartitionLog.open(dir(), { retentionMs: -1 });
  const fillers = encodeOffsetFillers(0n, 1000n);
  await follower.appendAsFollower(Buffer.concat([...fillers, makeBatchAt(1000n)]));
  assert.equal(follower.logEndOffset, 1001n);
  await follower.close();
});

function makeBatchAt(base: bigint): Buffer {
  const b = makeBatch('after', 1, 10);
  b.writeBigInt64BE(base, 0);
  return b;
}
