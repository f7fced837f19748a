/**
 * An OffsetsPartition (src/cluster/group-offsets-partition.ts) leading a replicated
 * `__meridian_offsets` partition on three real brokers in this process (test/cluster/
 * replica-cluster.ts: the in-memory stand-in for etcd plays the controller; replication,
 * high watermark and log start are the real ones), with a 1 KiB compaction threshold and
 * small checkpoint records. Hundreds of appends are issued at once, so checkpoints are
 * enqueued between appends still in flight: the served state must equal a replay of the
 * records in call order (no live commit overwritten by an older checkpoint value), the log
 * start must have moved, and each replica's log, replayed as a new coordinator would after a
 * failover, must give that same state; the replicas' batches are byte-identical. With the
 * followers not fetching, appends fail as SyncGroup and OffsetCommit report it
 * (COORDINATOR_NOT_AVAILABLE) and no checkpoint moves the log start.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ErrorCode, type MeridianError } from '../../src/errors.js';
import { RecordType, type OffsetRecord } from '../../src/broker/groups/offset-record.js';
import { ProducerStates } from '../../src/broker/producer-states.js';
import { applyToState, emptyState, replayOffsetsLog, type GroupsState } from '../../src/cluster/group-offsets-checkpoint.js';
import { OffsetsPartition } from '../../src/cluster/group-offsets-partition.js';
import { OFFSETS_TOPIC } from '../../src/cluster/group-offsets-topic.js';
import { waitFor } from '../helpers/wait.js';
import { logBytes, startReplicaCluster, type ReplicaCluster } from './replica-cluster.js';

let cluster: ReplicaCluster;

before(async () => {
  cluster = await startReplicaCluster({ brokers: 3, defaultMinInsyncReplicas: 2 });
  await cluster.createTopic(OFFSETS_TOPIC, 1, 1);
  await waitFor('broker 1 to lead the offsets partition', () => cluster.node(1).broker.replicaManager!.isLeading(OFFSETS_TOPIC, 0), 10_000);
});

after(async () => {
  await cluster?.close();
});

function served(part: OffsetsPartition, groups: readonly string[]): GroupsState {
  const s = emptyState();
  for (const g of groups) {
    const offsets = part.offsetsOf(g);
    if (offsets !== undefined) s.offsets.set(g, new Map([...offsets].map(([t, parts]) => [t, new Map(parts)])));
    const generation = part.generationOf(g);
    if (generation !== undefined) s.generations.set(g, generation);
  }
  return s;
}

test('appends issued all at once with checkpoints among them: served state, every replica\'s replay and its bytes agree', async (t) => {
  const leader = cluster.node(1);
  const part = new OffsetsPartition({
    partition: 0,
    leaderEpoch: cluster.source.get(OFFSETS_TOPIC, 0).leaderEpoch,
    log: leader.log(OFFSETS_TOPIC, 0),
    replicaManager: leader.broker.replicaManager!,
    producerStates: new ProducerStates(),
    sync: false,
    commitTimeoutMs: 10_000,
    compactionBytes: 1024,
    checkpointChunkBytes: 256,
  });
  await part.load();
  const groups = ['g0', 'g1', 'g2', 'g3', 'g4', 'g5'];
  const records: OffsetRecord[] = [];
  for (let i = 0; i < 400; i++) {
    const g = groups[i % groups.length]!;
    if (i % 97 === 50) records.push({ type: RecordType.DeleteGroup, groupId: g });
    else if (i % 41 === 7) records.push({ type: RecordType.DeleteOffsets, groupId: g, topics: [{ topic: 't', partitions: [i % 4] }] });
    else if (i % 13 === 3) records.push({ type: RecordType.GroupMetadata, groupId: g, generationId: i, protocolType: 'consumer', protocolName: 'range', leader: `m-${i}` });
    else records.push({ type: RecordType.Commit, groupId: g, commits: [{ topic: 't', partition: i % 4, offset: BigInt(i), leaderEpoch: 0, commitTimestamp: 1_700_000_000_000 + i, metadata: null }] });
  }
  // In waves of 50 issued at once: each begins in call order while earlier ones are still
  // replicating, and a checkpoint enqueued by one of them lands among them.
  const expected = emptyState();
  for (let w = 0; w < records.length; w += 50) {
    const wave = records.slice(w, w + 50);
    await Promise.all(wave.map((r) => part.append(r)));
    for (const r of wave) applyToState(expected, r);
    assert.deepEqual(served(part, groups), expected, `the served state is the records applied in call order (after ${w + wave.length})`);
  }
  await waitFor('several checkpoints to move the log start', () => part.checkpoints >= 3, 10_000);

  const log = leader.log(OFFSETS_TOPIC, 0);
  await waitFor('the log start to move to the last checkpoint', () => log.logStartOffset > 0n, 10_000);
  // One more commit: the last checkpoint may still be moving the log start.
  const last: OffsetRecord = { type: RecordType.Commit, groupId: 'g1', commits: [{ topic: 't', partition: 0, offset: 9999n, leaderEpoch: 0, commitTimestamp: 1, metadata: 'last' }] };
  await part.append(last);
  applyToState(expected, last);
  await waitFor('the followers to hold the whole log', () => cluster.brokers.every((b) => b.log(OFFSETS_TOPIC, 0).highWatermark === log.highWatermark), 10_000);
  await waitFor('the followers to follow the leader\'s log start', () => cluster.brokers.every((b) => b.log(OFFSETS_TOPIC, 0).logStartOffset === log.logStartOffset), 10_000);

  // What a coordinator elected on any replica would load.
  for (const b of cluster.brokers) {
    const state = emptyState();
    await replayOffsetsLog(b.log(OFFSETS_TOPIC, 0), state);
    assert.deepEqual(state, expected, `broker ${b.nodeId}'s log replays to the served state`);
  }
  const bytes = await Promise.all(cluster.brokers.map((b) => logBytes(b.log(OFFSETS_TOPIC, 0))));
  for (const [i, b] of bytes.entries()) assert.ok(b.equals(bytes[0]!), `broker ${cluster.brokers[i]!.nodeId}'s batches equal broker 1's`);
  // The log from its start is a checkpoint and what followed it, not the whole history.
  const state = emptyState();
  const { records: fromStart } = await replayOffsetsLog(log, state);
  assert.ok(fromStart < records.length / 4, `${fromStart} records from the log start, of ${records.length + 1} appended`);
  t.diagnostic(`${part.checkpoints} checkpoints; log start ${log.logStartOffset} of ${log.highWatermark}; ${part.logBytes} bytes from it`);
  part.close();
});

test('followers not fetching: appends (a GROUP_METADATA as SyncGroup writes) fail with COORDINATOR_NOT_AVAILABLE, no checkpoint moves the log start; after they fetch again a checkpoint makes the served state what a replay gives', async () => {
  const leader = cluster.node(1);
  const log = leader.log(OFFSETS_TOPIC, 0);
  const part = new OffsetsPartition({
    partition: 0,
    leaderEpoch: cluster.source.get(OFFSETS_TOPIC, 0).leaderEpoch,
    log,
    replicaManager: leader.broker.replicaManager!,
    producerStates: new ProducerStates(),
    sync: false,
    // Long enough for a follower that just resumed to fetch twice (its long poll is 500 ms).
    commitTimeoutMs: 3000,
    compactionBytes: 1024,
    checkpointChunkBytes: 256,
  });
  await part.load();
  const groups = ['g0', 'g1', 'g2', 'g3', 'g4', 'g5', 'late'];
  const loaded = served(part, groups);
  const startBefore = log.logStartOffset;
  const late = (i: number): OffsetRecord => ({ type: RecordType.GroupMetadata, groupId: 'late', generationId: i, protocolType: 'consumer', protocolName: 'range', leader: `late-${i}` });
  for (const b of [2, 3]) cluster.node(b).broker.replicaManager!.pauseFetchers();
  let outcomes: PromiseSettledResult<void>[];
  try {
    // More than the threshold: a checkpoint is enqueued among them and fails with them.
    outcomes = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => part.append(late(i + 1))));
  } finally {
    for (const b of [2, 3]) cluster.node(b).broker.replicaManager!.resumeFetchers();
  }
  for (const o of outcomes) {
    assert.equal(o.status, 'rejected');
    assert.equal(((o as PromiseRejectedResult).reason as MeridianError).code, ErrorCode.CoordinatorUnavailable, String((o as PromiseRejectedResult).reason));
  }
  assert.deepEqual(served(part, groups), loaded, 'nothing unacknowledged is served');
  assert.equal(log.logStartOffset, startBefore, 'no checkpoint moved the log start');
  assert.equal(part.checkpoints, 0);

  // The followers copy the unacknowledged records too (a replay would apply them, as
  // Kafka's does); the next checkpoint makes the served state the log's.
  await waitFor('the followers to copy the unacknowledged records', () => cluster.brokers.every((b) => b.log(OFFSETS_TOPIC, 0).highWatermark === log.highWatermark), 10_000);
  // More than the threshold again, at once (each ack takes a follower's long poll here).
  await Promise.all(Array.from({ length: 20 }, (_, i) => part.append({ type: RecordType.Commit, groupId: 'g0', commits: [{ topic: 't', partition: 9, offset: BigInt(i), leaderEpoch: 0, commitTimestamp: 1, metadata: null }] })));
  await waitFor('a checkpoint to move the log start', () => part.checkpoints > 0, 10_000);
  await waitFor('the followers to hold the whole log', () => cluster.brokers.every((b) => b.log(OFFSETS_TOPIC, 0).highWatermark === log.highWatermark), 10_000);
  const replayed = emptyState();
  await replayOffsetsLog(log, replayed);
  assert.deepEqual(served(part, groups), replayed, 'served = replay once a checkpoint is acknowledged');
  assert.equal(part.generationOf('late')?.generationId, 20, 'the unacknowledged generations are in the log, so in the checkpoint');
  assert.ok(log.logStartOffset > startBefore);
  part.close();
});
