/**
 * ProducerStates across leadership changes (region clusters; src/broker/producer-states.ts):
 * a broker that leads a partition, follows it for a while (copying an idempotent producer's
 * batches with appendAsFollower, across segment seals) and leads it again must know that
 * producer's latest sequences: a retry of the last copied batch is answered as a duplicate
 * with its original offsets, the next sequence is accepted. Two ways a stale snapshot could
 * break that are checked on a real PartitionLog (what the ReplicaManager calls is played by
 * the test: `follow` when it starts following, `invalidate` when it leads again):
 * - the first idempotent produce of a leadership started loading the state, and the broker
 *   became follower before the load ended: the load must not leave a state behind that
 *   writes snapshots at each seal while following;
 * - a snapshot past the point the log stopped being led (as one written while following
 *   would be) is not trusted when it leads again.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, test } from 'node:test';
import { ProducerState } from '../../src/broker/producer-state.js';
import { ProducerStates } from '../../src/broker/producer-states.js';
import { producePartition } from '../../src/broker/produce-partition.js';
import { PartitionFiles } from '../../src/storage/partition-files.js';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { encodeBatch } from '../../src/storage/record-batch.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
const dir = () => {
  const t = tmpDir();
  cleanups.push(t.cleanup);
  return t.dir;
};

const PID = 9n;
const value = (seq: number) => Buffer.from(`${PID}/${seq}/`.padEnd(150, 'x'));
/** A batch of the idempotent producer: sequences seq..seq+n-1. */
const batch = (seq: number, n = 2, baseOffset = 0n) =>
  encodeBatch({ records: Array.from({ length: n }, (_, i) => ({ value: value(seq + i) })), producerId: PID, producerEpoch: 0, baseSequence: seq, baseOffset, partitionLeaderEpoch: 0 });

/** Leads: produces sequences [from, to) two at a time. */
async function produce(log: PartitionLog, states: ProducerStates, from: number, to: number): Promise<void> {
  for (let seq = from; seq < to; seq += 2) assert.equal((await producePartition(log, states, batch(seq), { sync: true })).errorCode, 0, `sequence ${seq} appended`);
}

/** Follows: copies the leader's batches of sequences [from, to), as the fetcher would; returns each batch's offset. */
async function copy(log: PartitionLog, from: number, to: number): Promise<Map<number, bigint>> {
  const at = new Map<number, bigint>();
  for (let seq = from; seq < to; seq += 2) {
    at.set(seq, log.logEndOffset);
    await log.appendAsFollower(batch(seq, 2, log.logEndOffset), { sync: true });
  }
  // The copied tail seals too: a state writing snapshots now would claim all of it.
  await log.roll();
  return at;
}

const snapshots = (log: PartitionLog) => fs.readdirSync(log.dir).filter((f) => PartitionFiles.producerSnapshotOffset(f) !== undefined).length;

/** Leads again: the retry of the last copied batch is a duplicate, the next sequence follows it. */
async function checkLeadsAgain(log: PartitionLog, states: ProducerStates, last: number, lastOffset: bigint): Promise<void> {
  const end = log.logEndOffset;
  const retry = await producePartition(log, states, batch(last), { sync: true });
  assert.deepEqual([retry.errorCode, retry.baseOffset], [0, lastOffset], 'the retried batch is answered with its original offset');
  assert.equal(log.logEndOffset, end, 'and not appended again');
  const next = await producePartition(log, states, batch(last + 2), { sync: true });
  assert.deepEqual([next.errorCode, next.baseOffset], [0, end], 'the next sequence is accepted (no OUT_OF_ORDER_SEQUENCE)');
}

test('a producer-state load overtaken by becoming follower leaves no snapshot writer behind; leading again knows every copied batch', async () => {
  const log = await PartitionLog.open(dir(), { segmentBytes: 1024, retentionMs: -1 });
  const states = new ProducerStates();
  try {
    await produce(log, states, 0, 10);
    // Leader again after some time away: the first idempotent produce starts loading...
    states.invalidate(log);
    const loading = states.forLog(log);
    loading.catch(() => {});
    // ...and before the load ends, the preferred leader comes back: this broker follows.
    states.follow(log);
    await loading.catch(() => {});
    const before = snapshots(log);
    const at = await copy(log, 10, 60);
    assert.ok(log.segments().length > 6, 'segments sealed while following');
    assert.equal(snapshots(log), before, 'no producer snapshot is written while following');
    // A produce reaching the follower is refused retriably (NOT_LEADER_OR_FOLLOWER), not loaded.
    const refused = await producePartition(log, states, batch(60), { sync: true });
    assert.equal(refused.errorCode, 6, 'NOT_LEADER_OR_FOLLOWER');
    states.invalidate(log);
    await checkLeadsAgain(log, states, 58, at.get(58)!);
  } finally {
    await log.close();
  }
});

test('becoming leader again ignores a producer snapshot newer than the point the log stopped being led', async () => {
  const log = await PartitionLog.open(dir(), { segmentBytes: 1024, retentionMs: -1 });
  const states = new ProducerStates();
  try {
    await produce(log, states, 0, 10);
    states.follow(log);
    const at = await copy(log, 10, 40);
    // As a snapshot written while following would be: at the log end, without the copied batches.
    new ProducerState(log.dir).writeSnapshot(log.logEndOffset);
    states.invalidate(log);
    assert.equal(fs.existsSync(PartitionFiles.producerSnapshot(log.dir, log.logEndOffset)), false, 'the snapshot past the point it stopped leading is deleted');
    await checkLeadsAgain(log, states, 38, at.get(38)!);
  } finally {
    await log.close();
  }
});

test('a log never followed (single-broker mode) keeps its state and snapshots across invalidate', async () => {
  const log = await PartitionLog.open(dir(), { segmentBytes: 1024, retentionMs: -1 });
  const states = new ProducerStates();
  try {
    await produce(log, states, 0, 30);
    const n = snapshots(log);
    assert.ok(n > 0, 'snapshots written at seal while led');
    states.invalidate(log);
    assert.equal(snapshots(log), n, 'invalidate alone deletes no snapshot');
    await checkLeadsAgain(log, states, 28, 28n);
  } finally {
    await log.close();
  }
});
