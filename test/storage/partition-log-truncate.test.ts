/**
 * PartitionLog.truncateTo (failback: the old primary drops its divergent tail), on real
 * files: where the cut lands, what is refused, what a reopen and the next append see, what
 * a crash at each file operation leaves (and that the same truncation completes it), and
 * the per-partition state that follows a truncation: idempotent-producer state, the
 * replication dedup table, TopicManager's entry point and tiered storage's refusal.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { ProducerStates } from '../../src/broker/producer-states.js';
import { producePartition } from '../../src/broker/produce-partition.js';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { encodeMarker } from '../../src/replication/marker.js';
import { ReplicaState, ReplicaStates } from '../../src/replication/replica-state.js';
import { defaultLogOptions, PartitionLog, type LogOptions } from '../../src/storage/partition-log.js';
import { PartitionFiles } from '../../src/storage/partition-files.js';
import { encodeBatch, LOG_OVERHEAD, readBatchHeader } from '../../src/storage/record-batch.js';
import { TopicManager } from '../../src/storage/topic-manager.js';
import { emptyManifest, type RemoteSegment } from '../../src/tiered/manifest.js';
import { checkTruncatable, highestOffloadedOffset, newPartitionTier, tierTruncationCheck, type TieredPolicy } from '../../src/tiered/partition-tier.js';
import { makeBatch } from '../helpers/batches.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tmpDir('meridian-truncate-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** Small segments (about four 3-record batches each), no retention. */
const OPTS: Partial<LogOptions> = { segmentBytes: 1024, indexIntervalBytes: 256, retentionMs: -1 };

function split(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let p = 0; p < buf.length; ) {
    const size = buf.readInt32BE(p + 8) + LOG_OVERHEAD;
    out.push(buf.subarray(p, p + size));
    p += size;
  }
  return out;
}

/** Every stored batch from the log start to the high watermark, as stored. */
async function readAll(log: PartitionLog): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let next = log.logStartOffset;
  while (next < log.highWatermark) {
    const { records } = await log.read(next, 64 * 1024);
    const batches = split(records);
    assert.ok(batches.length > 0, `a read at ${next} returned batches`);
    for (const b of batches) {
      out.push(Buffer.from(b));
      const h = readBatchHeader(b);
      next = h.baseOffset + BigInt(h.lastOffsetDelta) + 1n;
    }
  }
  return out;
}

/** Appends `count` 3-record batches; returns their base offsets. */
async function fill(log: PartitionLog, count: number, tag = 'b'): Promise<bigint[]> {
  const bases: bigint[] = [];
  for (let i = 0; i < count; i++) bases.push((await log.append(makeBatch(`${tag}${i}`, 3, 60))).baseOffset);
  return bases;
}

function files(d: string): string[] {
  return fs.readdirSync(d).sort();
}

function baseOf(b: Buffer): bigint {
  return readBatchHeader(b).baseOffset;
}

async function refused(p: Promise<unknown>, code: string, ...mentions: string[]): Promise<MeridianError> {
  const err = await p.then(
    () => assert.fail('expected a refusal'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof MeridianError, String(err));
  assert.equal(err.code, code, err.message);
  for (const m of mentions) assert.ok(err.message.includes(m), `"${err.message}" mentions ${m}`);
  return err;
}

test('truncate inside the active segment: the tail goes, the next append gets the truncated offset and reads back byte-identical, and a reopen agrees', async () => {
  const d = dir();
  let log = await PartitionLog.open(d, { ...OPTS, segmentBytes: 64 * 1024 });
  const bases = await fill(log, 6);
  const before = await readAll(log);
  await log.truncateTo(bases[4]);
  assert.equal(log.logEndOffset, bases[4]);
  assert.equal(log.highWatermark, bases[4]);
  assert.equal(log.durableOffset, bases[4]);
  assert.deepEqual(await readAll(log), before.slice(0, 4));
  await refused(log.read(bases[5], 1024), ErrorCode.OffsetOutOfRange);

  const again = makeBatch('after', 2, 60);
  const r = await log.append(again);
  assert.equal(r.baseOffset, bases[4]);
  const all = await readAll(log);
  assert.equal(all.length, 5);
  assert.ok(all[4].equals(again), 'the new batch reads back as appended (its base offset stamped in place)');
  const end = log.logEndOffset;
  await log.close();

  log = await PartitionLog.open(d, { ...OPTS, segmentBytes: 64 * 1024 });
  try {
    assert.equal(log.logEndOffset, end);
    assert.deepEqual(await readAll(log), all);
  } finally {
    await log.close();
  }
});

test('truncate inside a sealed segment: later segments are removed, the cut one loses its index and becomes the active segment', async () => {
  const d = dir();
  let log = await PartitionLog.open(d, OPTS);
  const bases = await fill(log, 20);
  const segs = log.segments();
  assert.ok(segs.length >= 4, `several segments (${segs.length})`);
  const target = segs[1];
  assert.ok(target.sealed);
  // The second batch of the second segment.
  const offset = bases.find((b) => b > target.baseOffset && b < target.nextOffset)!;
  assert.ok(offset !== undefined);
  const before = await readAll(log);
  const keep = before.filter((b) => baseOf(b) < offset);

  await log.truncateTo(offset);
  assert.equal(log.logEndOffset, offset);
  const after = log.segments();
  assert.equal(after.length, 2, 'the segments past the cut are gone');
  assert.equal(after[1].baseOffset, target.baseOffset);
  assert.equal(after[1].nextOffset, offset);
  assert.equal(after[1].sealed, false, 'the cut segment is the active one');
  assert.equal(after[1].sizeBytes, keep.filter((b) => baseOf(b) >= target.baseOffset).reduce((n, b) => n + b.length, 0));
  assert.deepEqual(files(d), [PartitionFiles.segmentIndex(d, 0n), PartitionFiles.segmentLog(d, 0n), PartitionFiles.segmentLog(d, target.baseOffset)].map((f) => path.basename(f)).sort());
  assert.deepEqual(await readAll(log), keep);

  // The rebuilt index serves reads at every remaining offset, and appends continue there.
  for (const b of keep) assert.ok((await log.read(baseOf(b), 1)).records.subarray(0, b.length).equals(b));
  const more = await fill(log, 6, 'new');
  assert.equal(more[0], offset);
  const end = log.logEndOffset;
  const data = await readAll(log);
  await log.close();

  log = await PartitionLog.open(d, OPTS);
  try {
    assert.equal(log.logEndOffset, end);
    assert.deepEqual(await readAll(log), data);
  } finally {
    await log.close();
  }
});

test('truncate to a segment base keeps that segment, empty, as the active one; truncate to the log start empties the log', async () => {
  const d = dir();
  const log = await PartitionLog.open(d, OPTS);
  try {
    await fill(log, 14);
    const segs = log.segments();
    await log.truncateTo(segs[2].baseOffset);
    assert.deepEqual(
      log.segments().map((s) => [s.baseOffset, s.nextOffset, s.sealed, s.sizeBytes]),
      [[segs[0].baseOffset, segs[0].nextOffset, true, segs[0].sizeBytes], [segs[1].baseOffset, segs[1].nextOffset, true, segs[1].sizeBytes], [segs[2].baseOffset, segs[2].baseOffset, false, 0]],
    );
    await log.truncateTo(0n);
    assert.deepEqual(log.segments().map((s) => [s.baseOffset, s.nextOffset, s.sealed]), [[0n, 0n, false]]);
    assert.equal((await log.append(makeBatch('first', 1))).baseOffset, 0n);
  } finally {
    await log.close();
  }
});

test('truncate at the end is a no-op; a mid-batch offset, one past the high watermark and one below the log start are refused', async () => {
  const d = dir();
  const log = await PartitionLog.open(d, OPTS);
  try {
    const bases = await fill(log, 10);
    // The last seal's index is written in the background (as a .tmp, then renamed): the
    // listing is taken once it is done (a CI run listed the .tmp).
    await log.flush();
    const segments = log.segments();
    const listing = files(d);
    await log.truncateTo(log.logEndOffset);
    await log.truncateTo(log.logEndOffset);
    assert.deepEqual(log.segments(), segments);
    assert.deepEqual(files(d), listing);

    await refused(log.truncateTo(bases[3] + 1n), ErrorCode.OffsetOutOfRange, d, String(bases[3] + 1n), `${bases[3]}..${bases[3] + 2n}`);
    await refused(log.truncateTo(log.highWatermark + 1n), ErrorCode.OffsetOutOfRange, d, String(log.highWatermark + 1n), `[0, ${log.highWatermark}]`);
    // DeleteRecords moved the start past the offset.
    await log.deleteRecordsBefore(bases[5]);
    await refused(log.truncateTo(bases[4]), ErrorCode.OffsetOutOfRange, d, String(bases[4]), `[${bases[5]}, `, 'DeleteRecords');
    assert.equal(log.logEndOffset, bases[9] + 3n, 'nothing was cut');
    // The log start itself is a boundary here: everything from it goes.
    await log.truncateTo(bases[5]);
    assert.equal(log.logEndOffset, bases[5]);
    assert.equal(log.logStartOffset, bases[5]);
  } finally {
    await log.close();
  }
});

test('appends queued before a truncation are finished first; appends arriving during it are refused with a retriable error and nothing of them stays', async () => {
  const log = await PartitionLog.open(dir(), { ...OPTS, segmentBytes: 64 * 1024 });
  try {
    const bases = await fill(log, 4);
    const queued = log.append(makeBatch('queued', 2));
    const truncation = log.truncateTo(bases[2]);
    const during = log.append(makeBatch('during', 2));
    const err = await refused(during, ErrorCode.LogClosed, 'truncated', String(bases[2]));
    assert.equal(err.retriable, true);
    const q = await queued;
    assert.equal(q.baseOffset, bases[3] + 3n, 'the queued append was written (its offset is past the cut)');
    await truncation;
    assert.equal(log.logEndOffset, bases[2]);
    assert.equal((await log.append(makeBatch('retry', 2))).baseOffset, bases[2], 'the retry lands at the truncation point');
  } finally {
    await log.close();
  }
});

/**
 * Kills a truncation at each of its file operations in turn (the operation throws; the
 * directory is copied as a kill -9 would leave it, without a close) and checks that the copy
 * opens holding the whole log up to some end between the target and the old end, and that
 * truncating the copy again completes it.
 */
test('a crash at any file operation of a truncation leaves a log that opens, and the same truncateTo completes it', async () => {
  const build = async (): Promise<{ d: string; log: PartitionLog; offset: bigint; before: Buffer[] }> => {
    const d = dir();
    const log = await PartitionLog.open(d, OPTS);
    await fill(log, 18);
    // The seals' background index writes are done first, so they are never counted as the
    // truncation's file operations (a fresh-clone CI run counted one more call than a later
    // truncation made, and "call 18" never failed).
    await log.flush();
    // Producer snapshots past the cut, as sealing segments writes them.
    for (const s of log.segments().filter((x) => x.sealed)) fs.writeFileSync(PartitionFiles.producerSnapshot(d, s.nextOffset), '{"version":1,"producers":[]}');
    const seg = log.segments()[1];
    const offset = (await readAll(log)).map(baseOf).find((b) => b > seg.baseOffset && b < seg.nextOffset)!;
    return { d, log, offset, before: await readAll(log) };
  };
  const mutating = ['rmSync', 'ftruncateSync', 'fsyncSync', 'fdatasyncSync', 'openSync'] as const;
  type Patched = Record<(typeof mutating)[number], (...args: unknown[]) => unknown>;
  const real = Object.fromEntries(mutating.map((k) => [k, fs[k]])) as unknown as Patched;
  const patch = (failAt: number): { calls: () => number } => {
    let n = 0;
    for (const k of mutating) {
      (fs as unknown as Patched)[k] = (...args: unknown[]) => {
        if (n++ === failAt) throw Object.assign(new Error(`EIO: injected at ${k} (call ${failAt})`), { code: 'EIO' });
        return real[k](...args);
      };
    }
    return { calls: () => n };
  };
  const unpatch = () => {
    for (const k of mutating) (fs as unknown as Patched)[k] = real[k];
  };

  // The number of file operations a whole truncation makes.
  let total: number;
  {
    const { log, offset } = await build();
    const counter = patch(-1);
    try {
      await log.truncateTo(offset);
    } finally {
      unpatch();
    }
    total = counter.calls();
    await log.close();
  }
  assert.ok(total >= 8, `a truncation makes several file operations (${total})`);

  const ends = new Set<bigint>();
  for (let failAt = 0; failAt < total; failAt++) {
    const { d, log, offset, before } = await build();
    const oldEnd = log.logEndOffset;
    patch(failAt);
    let failed: unknown;
    try {
      await log.truncateTo(offset);
    } catch (err) {
      failed = err;
    } finally {
      unpatch();
    }
    assert.ok(failed instanceof MeridianError, `failure injected at call ${failAt} surfaces (${String(failed)})`);
    // Failing before the log changed (removing producer snapshots) leaves it online and whole;
    // failing part-way takes it offline.
    assert.ok(log.offline || log.logEndOffset === oldEnd, `call ${failAt}: offline, or untouched`);
    const crashed = dir();
    fs.cpSync(d, crashed, { recursive: true });
    const copy = await PartitionLog.open(crashed, OPTS);
    try {
      const end = copy.logEndOffset;
      assert.ok(end >= offset && end <= oldEnd, `call ${failAt}: the copy opens with an end ${end} in [${offset}, ${oldEnd}]`);
      ends.add(end);
      const held = await readAll(copy);
      assert.deepEqual(held, before.filter((b) => baseOf(b) < end), `call ${failAt}: the copy holds the old log up to its end`);
      await copy.truncateTo(offset);
      assert.equal(copy.logEndOffset, offset);
      assert.deepEqual(await readAll(copy), before.filter((b) => baseOf(b) < offset));
      assert.ok(!files(crashed).some((f) => (PartitionFiles.producerSnapshotOffset(f) ?? -1n) > offset), 'no producer snapshot past the end');
      assert.equal((await copy.append(makeBatch('next', 1))).baseOffset, offset);
    } finally {
      await copy.close();
      await log.close();
    }
  }
  assert.ok(ends.size >= 2, `crashes left logs of several ends (${[...ends].join(', ')})`);
});

test('a truncation is durable when it resolves: a copy of the directory taken without a close opens at the new end', async () => {
  const d = dir();
  const log = await PartitionLog.open(d, OPTS);
  try {
    const bases = await fill(log, 16);
    const before = await readAll(log);
    await log.truncateTo(bases[6]);
    const copyDir = dir();
    fs.cpSync(d, copyDir, { recursive: true });
    const copy = await PartitionLog.open(copyDir, OPTS);
    try {
      assert.equal(copy.logEndOffset, bases[6]);
      assert.deepEqual(await readAll(copy), before.slice(0, 6));
      await copy.truncateTo(bases[6]);
      assert.equal(copy.logEndOffset, bases[6], 'a retry of a completed truncation is a no-op');
    } finally {
      await copy.close();
    }
  } finally {
    await log.close();
  }
});

test('onTruncated listeners hear the new end once the truncation is complete', async () => {
  const log = await PartitionLog.open(dir(), OPTS);
  try {
    const bases = await fill(log, 8);
    const heard: Array<[bigint, bigint]> = [];
    const off = log.onTruncated((o) => heard.push([o, log.logEndOffset]));
    await log.truncateTo(log.logEndOffset);
    await log.truncateTo(bases[5]);
    off();
    await log.truncateTo(bases[2]);
    assert.deepEqual(heard, [[bases[5], bases[5]]]);
  } finally {
    await log.close();
  }
});

const idem = (pid: bigint, seq: number, n = 2) =>
  encodeBatch({ records: Array.from({ length: n }, (_, i) => ({ value: Buffer.from(`${pid}/${seq + i}/`.padEnd(120, 'x')) })), producerId: pid, producerEpoch: 0, baseSequence: seq });

test('producer state after a truncation: snapshots past the end are removed, and the sequence following what remains is accepted', async () => {
  const d = dir();
  const log = await PartitionLog.open(d, OPTS);
  const states = new ProducerStates();
  try {
    const offsets: bigint[] = [];
    for (let seq = 0; seq < 40; seq += 2) {
      const r = await producePartition(log, states, idem(11n, seq), { sync: true });
      assert.equal(r.errorCode, 0);
      offsets.push(r.baseOffset);
    }
    const snapshots = () => files(d).map((f) => PartitionFiles.producerSnapshotOffset(f)).filter((o): o is bigint => o !== undefined);
    await waitFor('producer snapshots at seal', () => snapshots().length >= 2, 5_000, 10);
    // Keep sequences 0..11 (six batches): cut in a sealed segment, below the snapshots.
    const cut = offsets[6];
    assert.ok(snapshots().some((o) => o > cut), 'a snapshot past the cut exists before');
    await log.truncateTo(cut);
    assert.ok(snapshots().every((o) => o <= cut), `snapshots ${snapshots().join(', ')} are at or below the new end ${cut}`);

    // The producer's removed batches are not vouched for; a gap after what remains is refused...
    assert.equal((await producePartition(log, states, idem(11n, 14), { sync: true })).errorCode, 45, 'sequence 14 leaves a gap after 11');
    // ...and the next sequence lands at the truncation point (not answered as a duplicate).
    const next = await producePartition(log, states, idem(11n, 12), { sync: true });
    assert.deepEqual([next.errorCode, next.baseOffset], [0, cut]);
    // A duplicate of a batch that remains is still recognised.
    const dup = await producePartition(log, states, idem(11n, 10), { sync: true });
    assert.deepEqual([dup.errorCode, dup.baseOffset], [0, offsets[5]]);
    assert.equal(log.logEndOffset, cut + 2n);
  } finally {
    await log.close();
  }
});

const TID = 'tid';
/** A marker and its run of `count` 2-record batches, appended as ReplicationTarget does. */
async function appendRun(log: PartitionLog, origin: string, tag: string, count: number, originBase: bigint): Promise<{ markerOffset: bigint; lastOrigin: bigint; senderEnd: bigint }> {
  const batches = Array.from({ length: count }, (_, i) => makeBatch(`${tag}-${i}`, 2, 40));
  const senderEnd = originBase + BigInt(count * 2) - 1n;
  const marker = encodeMarker({
    originRegion: origin,
    originTopicId: TID,
    originPartition: 0,
    senderRegion: origin,
    senderTopicId: TID,
    hops: [origin],
    batches: batches.map((b, i) => ({ originBaseOffset: originBase + BigInt(i * 2), senderBaseOffset: originBase + BigInt(i * 2), crc: readBatchHeader(b).crc })),
    senderEndOffset: senderEnd,
  });
  const r = await log.appendAll([marker, ...batches]);
  return { markerOffset: r.baseOffset, lastOrigin: senderEnd, senderEnd };
}

test('replication dedup state after a truncation: a run past the cut no longer counts as held, live and in replication-state.json', async () => {
  const d = dir();
  const opts = { ...OPTS, segmentBytes: 4096 };
  let log = await PartitionLog.open(d, opts);
  const states = new ReplicaStates();
  const snapshotOffset = () => BigInt((JSON.parse(fs.readFileSync(PartitionFiles.replicationState(d), 'utf8')) as { offset: string }).offset);
  try {
    const r1 = await appendRun(log, 'us-east', 'one', 3, 0n);
    await log.roll();
    const r2 = await appendRun(log, 'us-east', 'two', 3, 100n);
    await log.append(makeBatch('local', 1));
    await log.roll();
    const before = await states.forLog(log);
    assert.equal(before.table.lastOrigin('us-east', TID), r2.lastOrigin);
    assert.equal(before.table.lastSender('us-east', TID), r2.senderEnd);
    await waitFor('the snapshot folds both runs', () => snapshotOffset() === log.logEndOffset, 5_000, 10);

    await log.truncateTo(r2.markerOffset);
    const after = await states.forLog(log);
    assert.notEqual(after, before, 'the live table was dropped and rebuilt');
    assert.equal(after.table.lastOrigin('us-east', TID), r1.lastOrigin, 'the run past the cut is not held any more');
    assert.equal(after.table.lastSender('us-east', TID), r1.senderEnd);
    await waitFor('the snapshot is back within the log', () => snapshotOffset() <= log.logEndOffset, 5_000, 10);

    // The same run, sent again, is appended (the live table says it is not held) and counted again.
    const again = await appendRun(log, 'us-east', 'two', 3, 100n);
    assert.equal(again.markerOffset, r2.markerOffset);
    states.invalidate(log);
    assert.equal((await states.forLog(log)).table.lastOrigin('us-east', TID), r2.lastOrigin);
    await log.truncateTo(again.markerOffset);
    await states.close();
    await log.close();

    // A restart rebuilds the same from disk.
    log = await PartitionLog.open(d, opts);
    const s = await ReplicaState.load(log);
    try {
      assert.equal(s.table.lastOrigin('us-east', TID), r1.lastOrigin);
      assert.equal(s.table.lastSender('us-east', TID), r1.senderEnd);
      assert.ok(snapshotOffset() <= log.logEndOffset);
    } finally {
      await s.close();
    }
  } finally {
    await states.close();
    await log.close();
  }
});

test('a replication-state.json left past the end (a crash before its rewrite) is rewritten when its follower starts', async () => {
  const d = dir();
  let log = await PartitionLog.open(d, OPTS);
  const r1 = await appendRun(log, 'eu-west', 'a', 2, 0n);
  await log.close();
  fs.writeFileSync(PartitionFiles.replicationState(d), JSON.stringify({ offset: '500', origins: { [`eu-west/${TID}`]: '999' }, senders: { [`eu-west/${TID}`]: '999' } }));
  log = await PartitionLog.open(d, OPTS);
  const s = await ReplicaState.load(log);
  try {
    const snap = JSON.parse(fs.readFileSync(PartitionFiles.replicationState(d), 'utf8')) as { offset: string; origins: Record<string, string> };
    assert.ok(BigInt(snap.offset) <= log.logEndOffset, `rewritten at ${snap.offset}`);
    assert.deepEqual(snap.origins, {});
    assert.equal(s.table.lastOrigin('eu-west', TID), r1.lastOrigin);
  } finally {
    await s.close();
    await log.close();
  }
});

test('TopicManager.truncatePartition: unknown topic or partition, a refusing check, and a truncation', async () => {
  const tm = await TopicManager.open(dir(), { ...defaultLogOptions, ...OPTS });
  try {
    await tm.createTopic('t', 2);
    const log = tm.partition('t', 1)!;
    const bases = await fill(log, 5);
    await refused(tm.truncatePartition('nope', 0, 0n), ErrorCode.UnknownTopic, 'nope');
    await refused(tm.truncatePartition('t', 2, 0n), ErrorCode.UnknownTopic, 't/2', '0 to 1');
    const off = tm.addTruncationCheck((topic, partition, offset) => {
      if (offset < 6n) throw new MeridianError(ErrorCode.OffsetOutOfRange, `check refuses ${topic}/${partition} at ${offset}`);
    });
    await refused(tm.truncatePartition('t', 1, bases[1]), ErrorCode.OffsetOutOfRange, 'check refuses t/1 at 3');
    assert.equal(log.logEndOffset, 15n);
    await tm.truncatePartition('t', 1, bases[2]);
    assert.equal(log.logEndOffset, bases[2]);
    off();
    await tm.truncatePartition('t', 1, bases[1]);
    assert.equal(log.logEndOffset, bases[1]);
    assert.equal(tm.partition('t', 0)!.logEndOffset, 0n, 'the other partition is untouched');
  } finally {
    await tm.close();
  }
});

test('tiered storage refuses a truncation below what the object store holds or is receiving', async () => {
  const log = await PartitionLog.open(dir(), OPTS);
  try {
    await fill(log, 12);
    const segs = log.segments();
    const ref = { topic: 't', topicId: 'id', partition: 0 };
    const remote = (s: (typeof segs)[number]): RemoteSegment => ({ baseOffset: s.baseOffset, nextOffset: s.nextOffset, maxTimestamp: 0n, sizeBytes: s.sizeBytes, dataCrc32c: 0, indexSizeBytes: 0, attemptId: 'a', dataKey: 'd', indexKey: 'i', uploadedAt: '' });
    const tier = newPartitionTier(ref, log, {} as TieredPolicy, { ...emptyManifest(ref), segments: [remote(segs[0])] });
    assert.equal(highestOffloadedOffset(newPartitionTier(ref, log, {} as TieredPolicy, emptyManifest(ref))), -1n);
    assert.equal(highestOffloadedOffset(tier), segs[0].nextOffset - 1n);
    checkTruncatable(tier, segs[0].nextOffset);
    assert.throws(() => checkTruncatable(tier, segs[0].nextOffset - 3n), (e: MeridianError) => e.code === ErrorCode.OffsetOutOfRange && e.message.includes(`offsets ${segs[0].nextOffset - 3n} to ${segs[0].nextOffset - 1n} are in the object store`));
    // An upload in flight counts too.
    tier.offload.copying.set(segs[1].baseOffset, 'x');
    tier.offload.cursor = segs[1].nextOffset;
    assert.equal(highestOffloadedOffset(tier), segs[1].nextOffset - 1n);
    assert.throws(() => checkTruncatable(tier, segs[1].baseOffset), /being uploaded/);

    // Through TopicManager's check, the log is left alone.
    const lookup = { tier: () => tier, isPending: () => false, unavailable: () => null };
    const check = tierTruncationCheck(lookup);
    const end = log.logEndOffset;
    await refused(log.truncateTo(segs[1].baseOffset, { check: (o) => check('t', 0, o) }), ErrorCode.OffsetOutOfRange, 'object store');
    assert.equal(log.logEndOffset, end);
    const pending = tierTruncationCheck({ ...lookup, isPending: () => true });
    assert.throws(() => pending('t', 0, end), (e: MeridianError) => e.code === ErrorCode.StorageIo && e.retriable);
    await log.truncateTo(segs[2].baseOffset, { check: (o) => check('t', 0, o) });
    assert.equal(log.logEndOffset, segs[2].baseOffset);
  } finally {
    await log.close();
  }
});
