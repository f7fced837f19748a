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
 * (COORDINATOR_NOT_AVAILABLE) and no checkpoint moves the log start; failed checkpoints are
 * retried ever more rarely, not after every compactionBytes. A checkpoint whose replication
 * takes longer than the commit timeout still completes. A new leader object loading while
 * the previous one's append is assigned but not written replays it. Through ClusterOffsets
 * and the real GroupCoordinator: a group or offset only in the log (a timed-out commit that
 * replicated later) is deleted by DeleteGroups / OffsetDelete, and no checkpoint brings it back.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ErrorCode, type MeridianError } from '../../src/errors.js';
import { GroupCoordinator } from '../../src/broker/groups/group-coordinator.js';
import { RecordType, type OffsetRecord } from '../../src/broker/groups/offset-record.js';
import { ProducerStates } from '../../src/broker/producer-states.js';
import { applyToState, CHECKPOINT_HEADER, emptyState, replayOffsetsLog, type GroupsState } from '../../src/cluster/group-offsets-checkpoint.js';
import { ClusterOffsets } from '../../src/cluster/group-offsets.js';
import { OffsetsPartition, type OffsetsPartitionOptions } from '../../src/cluster/group-offsets-partition.js';
import { OFFSETS_TOPIC } from '../../src/cluster/group-offsets-topic.js';
import type { PartitionLog } from '../../src/storage/partition-log.js';
import { decodeStoredRecords, storedBatches } from '../../src/storage/record-batch.js';
import { waitFor } from '../helpers/wait.js';
import { logBytes, startOffsetsCluster, type ReplicaCluster } from './replica-cluster.js';

let cluster: ReplicaCluster;

before(async () => {
  cluster = await startOffsetsCluster();
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

/** An OffsetsPartition led by broker 1 at the partition's current epoch. */
function leaderPart(o: Partial<OffsetsPartitionOptions>): OffsetsPartition {
  const leader = cluster.node(1);
  return new OffsetsPartition({
    partition: 0,
    leaderEpoch: cluster.source.get(OFFSETS_TOPIC, 0).leaderEpoch,
    log: leader.log(OFFSETS_TOPIC, 0),
    replicaManager: leader.broker.replicaManager!,
    producerStates: new ProducerStates(),
    sync: false,
    commitTimeoutMs: 3000,
    ...o,
  });
}

function commitOf(groupId: string, partition: number, offset: number, metadata: string | null = null): OffsetRecord {
  return { type: RecordType.Commit, groupId, commits: [{ topic: 't', partition, offset: BigInt(offset), leaderEpoch: 0, commitTimestamp: 1_700_000_000_000 + offset, metadata }] };
}

/** The checkpoints begun in the log from `from` on: each one's bytes, and the bytes of everything else. */
async function checkpointsIn(log: PartitionLog, from: bigint): Promise<{ sizes: number[]; otherBytes: number }> {
  const sizes: number[] = [];
  let otherBytes = 0;
  let offset = from;
  while (offset < log.highWatermark) {
    const r = await log.read(offset, 1 << 20);
    for (const { buf, h } of storedBatches(r.records)) {
      const mark = decodeStoredRecords(buf)[0]?.headers.find((x) => x.key === CHECKPOINT_HEADER)?.value?.toString();
      if (mark === undefined) otherBytes += buf.length;
      else if (mark.startsWith('1/')) sizes.push(buf.length);
      else sizes[sizes.length - 1]! += buf.length;
      offset = h.baseOffset + BigInt(h.lastOffsetDelta) + 1n;
    }
  }
  return { sizes, otherBytes };
}

async function followersCaughtUp(log: PartitionLog): Promise<void> {
  await waitFor('the followers to hold the whole log', () => cluster.brokers.every((b) => b.log(OFFSETS_TOPIC, 0).highWatermark === log.highWatermark), 10_000);
}

test('followers not fetching: a failed checkpoint is tried again after max(compactionBytes, 2 × its size) more bytes, twice that after each further failure, not after every compactionBytes', async (t) => {
  const part = leaderPart({ commitTimeoutMs: 300, compactionBytes: 1024, checkpointChunkBytes: 256 });
  const log = cluster.node(1).log(OFFSETS_TOPIC, 0);
  await part.load();
  const from = log.logEndOffset;
  for (const b of [2, 3]) cluster.node(b).broker.replicaManager!.pauseFetchers();
  try {
    // Waves of commits, each settled (failed) before the next: with the old rule a
    // checkpoint was begun again after every compactionBytes (about one wave).
    for (let w = 0; w < 14; w++) {
      const wave = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => part.append(commitOf(`g${i % 6}`, 20 + i, w * 10 + i))));
      assert.ok(wave.every((o) => o.status === 'rejected'), 'nothing is acknowledged without the followers');
    }
  } finally {
    for (const b of [2, 3]) cluster.node(b).broker.replicaManager!.resumeFetchers();
  }
  await waitFor('the last checkpoint attempt to be written', () => log.highWatermark === log.logEndOffset, 10_000);
  const { sizes, otherBytes } = await checkpointsIn(log, from);
  const begun = sizes.length;
  assert.equal(part.checkpoints, 0);
  assert.ok(begun >= 2, `the checkpoint was tried again (${begun} attempts)`);
  // Gaps of at least base, 2·base, 4·base... from the smallest attempt (the state grows
  // with the failed commits, which are in the log): at most 1 + log2(growth / base + 1).
  const base = Math.max(1024, 2 * Math.min(...sizes));
  const allowed = 1 + Math.floor(Math.log2(otherBytes / base + 1));
  t.diagnostic(`${begun} checkpoint attempts of ${sizes.join(', ')} bytes among ${otherBytes} bytes of commits (at most ${allowed} allowed; every 1024 bytes would be ${Math.floor(otherBytes / 1024)})`);
  assert.ok(begun <= allowed, `${begun} checkpoint attempts among ${otherBytes} bytes of commits: at most ${allowed} with a doubling gap from ${base} bytes`);
  await followersCaughtUp(log);
  part.close();
});

test('a checkpoint whose replication takes longer than the commit timeout completes: each batch is given time for its bytes', async () => {
  const log = cluster.node(1).log(OFFSETS_TOPIC, 0);
  // A state of about 128 KiB (32 groups, 4 KiB of metadata each), written three times
  // without compaction: a checkpoint is due at the first append of the next leader object.
  const builder = leaderPart({});
  await builder.load();
  const metadata = 'm'.repeat(4096);
  for (let round = 0; round < 3; round++) await Promise.all(Array.from({ length: 32 }, (_, i) => builder.append(commitOf(`big-${i}`, 0, round, metadata))));
  builder.close();

  const part = leaderPart({ commitTimeoutMs: 500, compactionBytes: 1024, checkpointChunkBytes: 64 * 1024, checkpointReplicationBytesPerSec: 32 * 1024 });
  await part.load();
  const startBefore = log.logStartOffset;
  for (const b of [2, 3]) cluster.node(b).broker.replicaManager!.pauseFetchers();
  let small: Promise<void>;
  try {
    // The checkpoint is enqueued behind this commit; both begin now and wait for replicas.
    small = part.append(commitOf('big-0', 1, 1));
    await assert.rejects(small, (err: MeridianError) => err.code === ErrorCode.CoordinatorUnavailable);
    // The commit timed out, so the checkpoint has waited longer than the commit timeout too.
  } finally {
    for (const b of [2, 3]) cluster.node(b).broker.replicaManager!.resumeFetchers();
  }
  await waitFor('the checkpoint to be acknowledged and move the log start', () => part.checkpoints === 1, 10_000);
  assert.ok(log.logStartOffset > startBefore);
  await followersCaughtUp(log);
  const replayed = emptyState();
  await replayOffsetsLog(log, replayed);
  const groups = Array.from({ length: 32 }, (_, i) => `big-${i}`);
  assert.deepEqual(served(part, groups), { offsets: new Map([...replayed.offsets].filter(([g]) => g.startsWith('big-'))), generations: new Map() });
  part.close();
  // Gone again, so that the next tests' checkpoints are small (with the usual commit
  // timeout: an ack can take a follower's long poll here).
  const cleaner = leaderPart({});
  await cleaner.load();
  await Promise.all(groups.map((groupId) => cleaner.append({ type: RecordType.DeleteGroup, groupId })));
  cleaner.close();
});

test('leading again at a new epoch: the load waits for the previous leader object\'s append that has an offset but is not written yet', async () => {
  const log = cluster.node(1).log(OFFSETS_TOPIC, 0);
  const previous = leaderPart({});
  await previous.load();
  const end = log.logEndOffset;
  // Its outcome is taken at once: it may fail (the object is closed below) before the load
  // ends, and a rejection nobody handles yet fails the file.
  const outcome = previous.append(commitOf('reloaded', 0, 42, 'in flight')).then(
    () => null,
    (err: unknown) => err as MeridianError,
  );
  // Its turn of the append chain runs in a few microtasks; the write to disk takes I/O.
  for (let i = 0; i < 1000 && log.logEndOffset === end; i++) await Promise.resolve();
  assert.ok(log.logEndOffset > end, 'the append has its offset');
  assert.ok(log.highWatermark < log.logEndOffset, 'and is not written yet');
  previous.close();
  const next = leaderPart({});
  await next.load();
  const refused = await outcome;
  if (refused !== null) {
    assert.equal(refused.code, ErrorCode.NotCoordinator, 'the previous object is closed');
    assert.equal(refused.message.split('find the coordinator again').length, 2, `the advice is given once: ${refused.message}`);
  }
  assert.equal(next.get('reloaded', 't', 0)?.offset, 42n, 'the record assigned before the load is replayed');
  await waitFor('the log to be written to its end', () => log.highWatermark === log.logEndOffset, 10_000);
  const replayed = emptyState();
  await replayOffsetsLog(log, replayed);
  assert.deepEqual(next.offsetsOf('reloaded'), replayed.offsets.get('reloaded'), 'the load is what a replay of the whole log gives');
  await followersCaughtUp(log);
  next.close();
});

test('a group and an offset only in the log (a timed-out commit replicated later) are deleted by DeleteGroups and OffsetDelete; no checkpoint brings them back', async () => {
  const leader = cluster.node(1);
  const log = leader.log(OFFSETS_TOPIC, 0);
  const rm = leader.broker.replicaManager!;
  const offsets = new ClusterOffsets({ topics: leader.broker.topics, partitions: 1, sync: false, commitTimeoutMs: 1500, compactionBytes: 1024 });
  const coordinator = GroupCoordinator.withBackend(offsets, { gate: (g) => offsets.gate(g), initialRebalanceDelayMs: 0 });
  offsets.attach(rm, { topicReady: (name) => name === OFFSETS_TOPIC, createOffsetsTopic: async () => undefined, brokerAddress: () => undefined }, coordinator, new ProducerStates());
  try {
    await waitFor('the offsets partition to be loaded', () => offsets.led().loaded.includes(0), 10_000);
    const commit = (groupId: string, partition: number, offset: bigint) =>
      coordinator.commitOffsets({ groupId, generationIdOrMemberEpoch: -1, memberId: '', groupInstanceId: null, topics: [{ name: 't', partitions: [{ partitionIndex: partition, committedOffset: offset, committedLeaderEpoch: 0, committedMetadata: null }] }] });
    for (const b of [2, 3]) cluster.node(b).broker.replicaManager!.pauseFetchers();
    try {
      for (const r of await Promise.all([commit('ghost', 0, 5n), commit('ghost-offset', 3, 7n)])) {
        assert.equal(r.topics[0]!.partitions[0]!.error?.code, ErrorCode.CoordinatorUnavailable, 'the commits time out');
      }
    } finally {
      for (const b of [2, 3]) cluster.node(b).broker.replicaManager!.resumeFetchers();
    }
    await followersCaughtUp(log);
    assert.equal(offsets.hasGroup('ghost'), false, 'an unacknowledged commit is not served');
    assert.equal(offsets.hasGroup('ghost-offset'), false);

    const [deleted] = await coordinator.deleteGroups(['ghost']);
    assert.equal(deleted!.error, null, `DeleteGroups deletes what the log holds (answered ${deleted!.error?.code})`);
    const offsetDelete = await coordinator.deleteOffsets({ groupId: 'ghost-offset', topics: [{ name: 't', partitionIndexes: [3] }] });
    assert.equal(offsetDelete.error, null, `OffsetDelete deletes what the log holds (answered ${offsetDelete.error?.code})`);
    assert.equal(offsetDelete.topics[0]!.partitions[0]!.error, null);

    // Commits of another group, 20 at once, until a checkpoint (of everything written) is served.
    const before = offsets.stats().compactions;
    for (let w = 0; offsets.stats().compactions === before; w++) {
      if (w > 20) assert.fail('no checkpoint after 400 commits over a 1 KiB threshold');
      for (const r of await Promise.all(Array.from({ length: 20 }, (_, i) => commit('live', i % 4, BigInt(w * 20 + i))))) assert.equal(r.topics[0]!.partitions[0]!.error, null);
    }
    assert.equal(offsets.hasGroup('ghost'), false, 'the deleted group does not come back with the checkpoint');
    assert.equal(offsets.get('ghost-offset', 't', 3), undefined, 'the deleted offset does not come back with the checkpoint');
    assert.ok(!offsets.groupIds().includes('ghost'));
    await followersCaughtUp(log);
    const replayed = emptyState();
    await replayOffsetsLog(log, replayed);
    assert.equal(replayed.offsets.has('ghost'), false, 'nor does a replay of the log');
    assert.equal(replayed.offsets.get('ghost-offset')?.get('t')?.get(3), undefined);
  } finally {
    await coordinator.close();
  }
});
