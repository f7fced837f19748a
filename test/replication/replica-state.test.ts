/**
 * ReplicaState: the per-partition dedup table (last origin offset per origin region, last
 * sender offset per sender region) is a function of the log. These tests write markers and
 * batches into a real PartitionLog and check that the table rebuilt from disk (after a
 * reopen, from a snapshot, past a bad snapshot, after a torn tail) says exactly what the
 * log holds, and that a broker keeps it when retention or tiered local deletion removes the
 * segments holding the markers (checked over the replication wire API).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { encodeMarker } from '../../src/replication/marker.js';
import { ReplicaState } from '../../src/replication/replica-state.js';
import { NO_CONTINUITY_CHECK } from '../../src/replication/replication-api.js';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { readBatchHeader } from '../../src/storage/record-batch.js';
import { makeBatch } from '../helpers/batches.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { originBatches, receivingFrom, TargetLink } from '../helpers/replication-link.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

/** One topic id for every region in these tests (progress is keyed by region and topic id). */
const TID = 'topic-id';

const SNAPSHOT = 'replication-state.json';
const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dir(): string {
  const t = tmpDir('meridian-replica-state-');
  cleanups.push(t.cleanup);
  return t.dir;
}

interface RunSpec {
  origin: string;
  sender: string;
  hops?: string[];
  /** Origin and sender base offsets of each batch, and the batch. */
  batches: Array<{ batch: Buffer; originBase: bigint; senderBase: bigint }>;
  senderEndOffset?: bigint;
}

interface AppendedRun {
  spec: RunSpec;
  /** Log offsets: the marker's, and each batch's base. */
  markerOffset: bigint;
  batchOffsets: bigint[];
  /** Bytes of marker and each batch, in log order. */
  sizes: number[];
  lastOrigin: bigint;
  lastSenderOfBatches: bigint[];
  senderEnd: bigint;
}

/** Writes marker + batches in one append, as ReplicationTarget does. */
async function appendRun(log: PartitionLog, spec: RunSpec): Promise<AppendedRun> {
  const lastSenders = spec.batches.map((b) => b.senderBase + BigInt(readBatchHeader(b.batch).lastOffsetDelta));
  const senderEnd = spec.senderEndOffset ?? lastSenders[lastSenders.length - 1];
  const marker = encodeMarker({
    originRegion: spec.origin,
    originTopicId: TID,
    originPartition: 0,
    senderRegion: spec.sender,
    senderTopicId: TID,
    hops: spec.hops ?? [spec.origin],
    batches: spec.batches.map((b) => ({ originBaseOffset: b.originBase, senderBaseOffset: b.senderBase, crc: readBatchHeader(b.batch).crc })),
    senderEndOffset: senderEnd,
  });
  const all = [marker, ...spec.batches.map((b) => b.batch)];
  const r = await log.appendAll(all);
  const offsets = all.map((b) => readBatchHeader(b).baseOffset);
  assert.equal(offsets[0], r.baseOffset);
  const lastB = spec.batches[spec.batches.length - 1];
  return {
    spec,
    markerOffset: offsets[0],
    batchOffsets: offsets.slice(1),
    sizes: all.map((b) => b.length),
    lastOrigin: lastB.originBase + BigInt(readBatchHeader(lastB.batch).lastOffsetDelta),
    lastSenderOfBatches: lastSenders,
    senderEnd,
  };
}

/** `count` batches of `records` records each, origin offsets from originBase, sender offsets from senderBase (gaps of `senderGap` between them). */
function run(origin: string, sender: string, tag: string, count: number, originBase: bigint, senderBase: bigint, opts: { records?: number; senderGap?: bigint; valueBytes?: number; hops?: string[]; senderEndOffset?: bigint } = {}): RunSpec {
  const records = opts.records ?? 2;
  const gap = opts.senderGap ?? 0n;
  const batches = Array.from({ length: count }, (_, i) => ({
    batch: makeBatch(`${tag}-${i}`, records, opts.valueBytes ?? 32),
    originBase: originBase + BigInt(i * records),
    senderBase: senderBase + BigInt(i) * (BigInt(records) + gap),
  }));
  return { origin, sender, batches, ...(opts.hops ? { hops: opts.hops } : {}), ...(opts.senderEndOffset !== undefined ? { senderEndOffset: opts.senderEndOffset } : {}) };
}

/** Keys are `<region>/<topic id>`; every region here uses TID, so tables read by region. */
function byRegion<V>(entries: Iterable<[string, V]>): Record<string, V> {
  return Object.fromEntries([...entries].map(([k, v]) => [k.endsWith(`/${TID}`) ? k.slice(0, -TID.length - 1) : k, v]));
}

function tableOf(s: ReplicaState): { origins: Record<string, bigint>; senders: Record<string, bigint> } {
  return { origins: byRegion(s.table.origins), senders: byRegion(s.table.senders) };
}

test('load rebuilds origins and senders from markers after the log is closed and reopened', async () => {
  const d = dir();
  let log = await PartitionLog.open(d, { segmentBytes: 64 * 1024 });
  await log.append(makeBatch('local-0', 3));
  const r1 = await appendRun(log, run('us-east', 'us-east', 'u', 3, 0n, 0n, { senderEndOffset: 9n }));
  await log.append(makeBatch('local-1', 2));
  // Relayed: origin ap-south, sent here by eu-central, with gaps in the sender's offsets.
  const r2 = await appendRun(log, run('ap-south', 'eu-central', 'a', 4, 1000n, 50n, { records: 3, senderGap: 2n, hops: ['ap-south', 'eu-central'] }));
  const r3 = await appendRun(log, run('us-east', 'us-east', 'u2', 2, 6n, 12n));
  await log.close();

  log = await PartitionLog.open(d, { segmentBytes: 64 * 1024 });
  const s = await ReplicaState.load(log);
  try {
    assert.deepEqual(tableOf(s), {
      origins: { 'us-east': r3.lastOrigin, 'ap-south': r2.lastOrigin },
      senders: { 'us-east': r3.senderEnd, 'eu-central': r2.senderEnd },
    });
    assert.equal(r1.lastOrigin, 5n);
    assert.equal(r3.lastOrigin, 9n);
    assert.equal(r2.lastOrigin, 1011n);
    assert.equal(r2.senderEnd, 50n + 3n * 5n + 2n);
    assert.equal(s.table.lastOrigin('us-east', TID), 9n);
    assert.equal(s.table.lastOrigin('nowhere', TID), -1n);
    assert.equal(s.table.lastSender('nowhere', TID), -1n);
    // Loading marks the partition as tracked (an empty snapshot at the log start); with no
    // segment sealed, nothing has been folded into it.
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(d, SNAPSHOT), 'utf8')), { offset: '0', origins: {}, senders: {} });
  } finally {
    await s.close();
    await log.close();
  }
});

test('the marker senderEndOffset (past the last batch) is the sender cursor once its run is complete', async () => {
  const d = dir();
  let log = await PartitionLog.open(d, {});
  const r = await appendRun(log, run('us-east', 'us-east', 'x', 2, 0n, 0n, { senderEndOffset: 40n }));
  await log.close();
  log = await PartitionLog.open(d, {});
  const s = await ReplicaState.load(log);
  try {
    assert.equal(r.lastSenderOfBatches[1], 3n);
    assert.equal(s.table.lastSender('us-east', TID), 40n);
    assert.equal(s.table.lastOrigin('us-east', TID), 3n);
  } finally {
    await s.close();
    await log.close();
  }
});

test('a sealed segment writes replication-state.json; reload scans only from the snapshot offset', async () => {
  const d = dir();
  const opts = { segmentBytes: 4096 };
  let log = await PartitionLog.open(d, opts);
  let s = await ReplicaState.load(log);
  // Segment 1: runs from sa-east and us-east.
  const a = await appendRun(log, run('sa-east', 'sa-east', 'sa', 3, 0n, 0n));
  const b = await appendRun(log, run('us-east', 'us-east', 'us', 2, 100n, 200n, { senderEndOffset: 210n }));
  await log.roll();
  const sealedEnd = log.logEndOffset;
  await waitFor('the first snapshot', () => (JSON.parse(fs.readFileSync(path.join(d, SNAPSHOT), 'utf8')) as { offset: string }).offset === String(sealedEnd), 10_000, 10);
  const snap1 = JSON.parse(fs.readFileSync(path.join(d, SNAPSHOT), 'utf8')) as { offset: string; origins: Record<string, string>; senders: Record<string, string> };
  assert.deepEqual({ ...snap1, origins: byRegion(Object.entries(snap1.origins)), senders: byRegion(Object.entries(snap1.senders)) }, {
    offset: String(sealedEnd),
    origins: { 'sa-east': String(a.lastOrigin), 'us-east': String(b.lastOrigin) },
    senders: { 'sa-east': String(a.senderEnd), 'us-east': '210' },
  });
  // Rolls by size too: enough us-east runs to fill several 4 KiB segments.
  let last = b;
  for (let i = 0; i < 12; i++) last = await appendRun(log, run('us-east', 'us-east', `more${i}`, 2, 104n + BigInt(i * 4), 300n + BigInt(i * 4), { valueBytes: 400 }));
  assert.ok(log.segments().length >= 3, `rolled by size (${log.segments().length} segments)`);
  // Seals run behind the writer: wait for them all, or a seal finishing after this read moves
  // the snapshot past the segment read here and the wait below never matches.
  await log.flush();
  const lastSealed = log.segments().filter((x) => x.sealed).at(-1)!;
  await waitFor('the snapshot of the last sealed segment', () => {
    const j = JSON.parse(fs.readFileSync(path.join(d, SNAPSHOT), 'utf8')) as { offset: string };
    return j.offset === String(lastSealed.nextOffset);
  }, 10_000, 10);
  const live = tableOf(s);
  assert.deepEqual(live, { origins: {}, senders: {} }, 'appended directly to the log, so the live table saw nothing; the snapshot was computed from the log');
  await s.close();
  await log.close();

  // The snapshot agrees with a full rebuild up to its offset...
  const snap = JSON.parse(fs.readFileSync(path.join(d, SNAPSHOT), 'utf8')) as { offset: string; origins: Record<string, string>; senders: Record<string, string> };
  assert.equal(snap.origins[`sa-east/${TID}`], String(a.lastOrigin));
  assert.ok(BigInt(snap.origins[`us-east/${TID}`]) <= last.lastOrigin);

  // ...and reload starts from it: a value only the snapshot holds survives, and no read goes below the snapshot offset.
  snap.origins[`sa-east/${TID}`] = '1'; // the log says a.lastOrigin (5); a full scan would raise it back
  snap.senders[`only-in-snapshot/${TID}`] = '77';
  fs.writeFileSync(path.join(d, SNAPSHOT), JSON.stringify(snap));
  log = await PartitionLog.open(d, opts);
  const reads: bigint[] = [];
  const read = log.read.bind(log);
  log.read = (offset, maxBytes, o) => {
    reads.push(offset);
    return read(offset, maxBytes, o);
  };
  s = await ReplicaState.load(log);
  try {
    assert.ok(reads.length > 0, 'the active segment is scanned');
    assert.ok(reads.every((o) => o >= BigInt(snap.offset)), `reads at ${reads.join(', ')} start at the snapshot offset ${snap.offset}`);
    assert.equal(s.table.lastOrigin('sa-east', TID), 1n, 'taken from the snapshot, not rescanned');
    assert.equal(s.table.lastSender('only-in-snapshot', TID), 77n);
    assert.equal(s.table.lastOrigin('us-east', TID), last.lastOrigin, 'the active segment is applied on top');
    assert.equal(s.table.lastSender('us-east', TID), last.senderEnd);
  } finally {
    await s.close();
    await log.close();
  }
});

test('a snapshot pointing past the log end is ignored: the table is rebuilt from the log', async () => {
  const d = dir();
  let log = await PartitionLog.open(d, { segmentBytes: 4096 });
  const a = await appendRun(log, run('us-east', 'us-east', 'p', 3, 10n, 20n));
  const b = await appendRun(log, run('eu-west', 'ap-south', 'q', 2, 0n, 5n, { hops: ['eu-west', 'ap-south'] }));
  await log.close();
  fs.writeFileSync(path.join(d, SNAPSHOT), JSON.stringify({ offset: '1000000', origins: { 'us-east': '999999', bogus: '5' }, senders: { 'us-east': '999999' } }) + '\n');
  log = await PartitionLog.open(d, { segmentBytes: 4096 });
  const s = await ReplicaState.load(log);
  try {
    assert.deepEqual(tableOf(s), {
      origins: { 'us-east': a.lastOrigin, 'eu-west': b.lastOrigin },
      senders: { 'us-east': a.senderEnd, 'ap-south': b.senderEnd },
    });
  } finally {
    await s.close();
    await log.close();
  }
});

test('an unreadable snapshot is ignored: the table is rebuilt from the log', async () => {
  const d = dir();
  let log = await PartitionLog.open(d, {});
  const a = await appendRun(log, run('us-east', 'us-east', 'g', 2, 0n, 0n));
  await log.close();
  fs.writeFileSync(path.join(d, SNAPSHOT), '{"offset": "1", "origins": {');
  log = await PartitionLog.open(d, {});
  const s = await ReplicaState.load(log);
  try {
    assert.deepEqual(tableOf(s), { origins: { 'us-east': a.lastOrigin }, senders: { 'us-east': a.senderEnd } });
  } finally {
    await s.close();
    await log.close();
  }
});

/**
 * Writes a local batch, a complete run, then a 3-batch run; cuts the segment file at
 * `cutAt(run2, byte position where run2 starts)` and reopens (recovery truncates at the last
 * whole batch).
 */
async function tornTail(cutAt: (r2: AppendedRun, r2Start: number) => number): Promise<{ s: ReplicaState; log: PartitionLog; r1: AppendedRun; r2: AppendedRun }> {
  const d = dir();
  let log = await PartitionLog.open(d, {});
  await log.append(makeBatch('local', 2));
  const r1 = await appendRun(log, run('us-east', 'us-east', 'done', 2, 0n, 0n, { senderEndOffset: 5n }));
  // Sender offsets 10, 20, 30 (gaps: the sender skipped batches it does not forward); its request covered up to 90.
  const r2 = await appendRun(log, run('us-east', 'us-east', 'torn', 3, 4n, 10n, { records: 2, senderGap: 8n, senderEndOffset: 90n }));
  await log.close();
  const file = path.join(d, '00000000000000000000.log');
  const localSize = makeBatch('local', 2).length;
  const start = localSize + r1.sizes.reduce((n, x) => n + x, 0);
  await fs.promises.truncate(file, cutAt(r2, start));
  log = await PartitionLog.open(d, {});
  return { s: await ReplicaState.load(log), log, r1, r2 };
}

test('a torn run at the tail: origins stop at the last surviving batch; the sender cursor stays at the last complete run', async () => {
  // Cut in the middle of the run's third batch: marker, batch 0 and batch 1 survive.
  const { s, log, r1, r2 } = await tornTail((r2, start) => start + r2.sizes[0] + r2.sizes[1] + r2.sizes[2] + Math.floor(r2.sizes[3] / 2));
  try {
    assert.equal(log.logEndOffset, r2.batchOffsets[2], 'recovery cut the log at the start of the torn batch');
    assert.equal(s.table.lastOrigin('us-east', TID), r2.spec.batches[1].originBase + 1n, 'origin cursor at the last surviving batch');
    // The lost batch, sent again, is not a duplicate by origin offset.
    assert.ok(r2.spec.batches[2].originBase > s.table.lastOrigin('us-east', TID));
    const cursor = s.table.lastSender('us-east', TID);
    assert.ok(cursor < r2.senderEnd, `sender cursor ${cursor} must not reach the torn marker's senderEndOffset ${r2.senderEnd}`);
    assert.ok(cursor < r2.spec.batches[2].senderBase, `sender cursor ${cursor} must stay below the lost batch's sender offset ${r2.spec.batches[2].senderBase}`);
    // The sender resumes at cursor + 1 and classifies what it reads with a fresh RunTracker
    // (worker.ts: "a resume point always falls on a run boundary"). A cursor inside the run
    // makes a relaying sender read the rest of its own run without its marker, i.e. as data
    // produced by the sender. So the cursor must stay at the last complete run; the sender
    // then resends the torn run whole and the surviving batches dedup by origin offset.
    assert.equal(
      cursor,
      r1.senderEnd,
      `sender cursor ${cursor} was raised into the torn run (its surviving batches end at sender offset ${r2.lastSenderOfBatches[1]}); expected the end of the last complete run, ${r1.senderEnd}`,
    );
  } finally {
    await s.close();
    await log.close();
  }
});

test('a torn run of which only the marker survived leaves both cursors at the last complete run', async () => {
  const { s, log, r1, r2 } = await tornTail((r2, start) => start + r2.sizes[0] + 10);
  try {
    assert.equal(log.logEndOffset, r2.batchOffsets[0]);
    assert.equal(s.table.lastOrigin('us-east', TID), r1.lastOrigin);
    assert.equal(s.table.lastSender('us-east', TID), r1.senderEnd);
  } finally {
    await s.close();
    await log.close();
  }
});

test('a torn run cut before its last batch: the next complete run after reopening counts normally', async () => {
  const { s, log, r2 } = await tornTail((r2, start) => start + r2.sizes[0] + r2.sizes[1] + r2.sizes[2] + r2.sizes[3] + 7);
  try {
    assert.equal(log.logEndOffset, r2.batchOffsets[2] + 2n, 'batches 0..1 survive, batch 2 was cut');
    // The sender resends the lost batch behind a new marker.
    const lost = r2.spec.batches[2];
    const again = await appendRun(log, { origin: 'us-east', sender: 'us-east', batches: [{ batch: makeBatch('torn-2', 2, 32), originBase: lost.originBase, senderBase: lost.senderBase }], senderEndOffset: 90n });
    await s.close();
    const reloaded = await ReplicaState.load(log);
    try {
      assert.equal(reloaded.table.lastOrigin('us-east', TID), again.lastOrigin);
      assert.equal(reloaded.table.lastSender('us-east', TID), 90n);
    } finally {
      await reloaded.close();
    }
  } finally {
    await log.close();
  }
});

// The dedup table is a function of the log, but the log does not keep its markers forever:
// retention and tiered local deletion remove old segments. The snapshot must hold what they
// removed before anything loads the table again.
for (const deletion of ['retention', 'tiered local deletion'] as const) {
  test(`dedup state survives ${deletion} of the segments holding the markers before anything loads it after a restart`, async (t) => {
    const TOPIC = 'dedup';
    const KiB = 1024;
    const store = tmpDir('meridian-replica-state-store-');
    t.after(() => store.cleanup());
    const small: BrokerConfigInput = { log: { segmentBytes: 4 * KiB } };
    const deleting: BrokerConfigInput =
      deletion === 'retention'
        ? { log: { segmentBytes: 4 * KiB, retention: { bytes: 6 * KiB, ms: -1, checkIntervalMs: 50 } } }
        : { log: { segmentBytes: 4 * KiB, retention: { ms: -1 } }, tiered: { enabled: true, store: { type: 'fs', dir: store.dir }, offload: { onSeal: true }, localRetention: { bytes: 0 }, deletionLagMs: 0, checkIntervalMs: 50 } };
    const receiving: BrokerConfigInput = { region: 'eu-west', replication: receivingFrom('eu-west', ['us-east']) };
    let tb = await startBroker({ ...receiving, ...small });
    t.after(() => tb.cleanup());
    const peerOf = (b: TestBroker) => new TargetLink({ address: b.bootstrap, targetRegion: 'eu-west', senderRegion: 'us-east', senderTopicId: 'us-tid' });
    let peer = peerOf(tb);
    t.after(() => peer.close());
    // us-east replicates its offsets 0..9, then 10..19, into eu-west.
    await peer.senderCursor(TOPIC);
    const first = originBatches('us', 10, 0n);
    const second = originBatches('us', 10, 10n);
    assert.equal((await peer.append(TOPIC, first.batches, first.end, -1n)).appendedBatches, 10);
    await tb.broker.topics.partition(TOPIC, 0)!.roll();
    assert.equal((await peer.append(TOPIC, second.batches, second.end, first.end)).appendedBatches, 10);
    const markersEnd = tb.broker.topics.partition(TOPIC, 0)!.logEndOffset;
    peer.close();

    // Restart with deletion on. us-east stays quiet (nothing loads the dedup table) while
    // local producers fill new segments and the old ones, markers and all, are deleted.
    await tb.stop();
    tb = await startBroker({ ...receiving, ...deleting }, { dataDir: tb.dataDir, cleanup: () => fs.rmSync(tb.dataDir, { recursive: true, force: true }), port: tb.port });
    const log = tb.broker.topics.partition(TOPIC, 0)!;
    for (let i = 0; i < 12; i++) await log.appendAll([makeBatch(`local${i}`, 1, 1500)]);
    await waitFor(`${deletion} to delete every segment holding a marker`, () => log.logStartOffset >= markersEnd, 15_000, 25);

    // us-east comes back: eu-west still knows it holds 0..19 and takes a resend for duplicates.
    peer = peerOf(tb);
    assert.equal(await peer.senderCursor(TOPIC), second.end, 'us-east resumes after its offset 19');
    const end = log.logEndOffset;
    // A resend of both runs (no continuity check: dedup by origin offset alone).
    const resend = await peer.append(TOPIC, [...first.batches, ...second.batches], second.end, NO_CONTINUITY_CHECK);
    assert.deepEqual({ code: resend.errorCode, appended: resend.appendedBatches, duplicates: resend.duplicateBatches }, { code: 0, appended: 0, duplicates: 20 });
    assert.equal(log.logEndOffset, end, 'nothing appended');
    // And the same after one more restart (the snapshot holds it, not only memory).
    peer.close();
    tb = await tb.restart();
    peer = peerOf(tb);
    assert.equal(await peer.senderCursor(TOPIC), second.end);
  });
}
