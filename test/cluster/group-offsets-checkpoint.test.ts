/**
 * Compaction of __meridian_offsets (src/cluster/group-offsets-checkpoint.ts) on a real
 * PartitionLog in a temp directory: a partition's history, then a checkpoint of its state,
 * then newer records, with a "crash" (the log closed and opened again from its files) at each
 * point the leader can die: inside the checkpoint, after it but before the log start moved,
 * after the log start moved. Each time a replay must rebuild exactly the state a replay of
 * the whole log gives: no deleted group, offset or topic back, no offset or generation older.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { encodeRecord, RecordType, type OffsetRecord } from '../../src/broker/groups/offset-record.js';
import { applyToState, checkpointBatches, CHECKPOINT_HEADER, emptyState, replayOffsetsLog, type GroupsState } from '../../src/cluster/group-offsets-checkpoint.js';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { decodeStoredRecords, storedBatches } from '../../src/storage/record-batch.js';
import { encodeBatch } from '../../src/storage/record-batch.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const dirs: Array<() => void> = [];
after(() => dirs.forEach((d) => d()));

function freshDir(): string {
  const t = tmpDir('meridian-offsets-checkpoint-');
  dirs.push(t.cleanup);
  return t.dir;
}

function commit(groupId: string, topic: string, partition: number, offset: number, metadata: string | null = null): OffsetRecord {
  return { type: RecordType.Commit, groupId, commits: [{ topic, partition, offset: BigInt(offset), leaderEpoch: 3, commitTimestamp: 1_700_000_000_000 + offset, metadata }] };
}

function generation(groupId: string, generationId: number): OffsetRecord {
  return { type: RecordType.GroupMetadata, groupId, generationId, protocolType: 'consumer', protocolName: 'range', leader: `${groupId}-leader-${generationId}` };
}

/** A history with every record type: commits, generations, and each kind of deletion. */
const HISTORY: OffsetRecord[] = [
  commit('g1', 'orders', 0, 1),
  commit('g1', 'orders', 1, 1),
  commit('g2', 'orders', 0, 5),
  generation('g1', 1),
  generation('g2', 1),
  commit('g1', 'orders', 0, 10, 'meta'),
  generation('g1', 2),
  { type: RecordType.DeleteGroup, groupId: 'g2' }, // DeleteGroups: offsets and generation go
  commit('g3', 'audit', 0, 3),
  { type: RecordType.DeleteOffsets, groupId: 'g3', topics: [{ topic: 'audit', partitions: [0] }] }, // its last offset: g3 goes
  commit('g4', 'orders', 0, 7),
  commit('g4', 'audit', 1, 8),
  { type: RecordType.DeleteTopic, topic: 'audit' },
  generation('g5', 3), // a generation without offsets
  ...Array.from({ length: 40 }, (_, i) => commit('g1', 'orders', 2 + (i % 8), 100 + i, i % 3 === 0 ? `m${i}` : null)),
];

/** After the checkpoint: a commit moving an offset on, and deletions of what it holds. */
const NEWER: OffsetRecord[] = [commit('g1', 'orders', 0, 11), { type: RecordType.DeleteGroup, groupId: 'g4' }, generation('g1', 3), { type: RecordType.DeleteOffsets, groupId: 'g1', topics: [{ topic: 'orders', partitions: [1] }] }];

function replayed(records: readonly OffsetRecord[]): GroupsState {
  const s = emptyState();
  for (const r of records) applyToState(s, r);
  return s;
}

async function append(log: PartitionLog, batches: readonly Buffer[]): Promise<bigint> {
  let first = -1n;
  for (const b of batches) {
    const r = await log.appendAll([b], { sync: true });
    if (first < 0n) first = r.baseOffset;
  }
  return first;
}

function recordBatch(r: OffsetRecord): Buffer {
  return encodeBatch({ records: [{ key: Buffer.from(r.type === RecordType.DeleteTopic ? r.topic : r.groupId), value: encodeRecord(r) }] });
}

/** The log closed and opened again from its files, as a broker restarting after a crash finds it. */
async function reopen(log: PartitionLog): Promise<PartitionLog> {
  const dir = log.dir;
  await log.close();
  return PartitionLog.open(dir);
}

async function replay(log: PartitionLog): Promise<GroupsState> {
  const s = emptyState();
  await replayOffsetsLog(log, s);
  return s;
}

test('the checkpoint of a state replays to that same state, alone or after the records it summarises', async () => {
  const before = replayed(HISTORY);
  // The history's effects, spelled out: what a user of the groups would check.
  assert.deepEqual([...before.offsets.keys()].sort(), ['g1', 'g4']);
  assert.equal(before.offsets.get('g1')!.get('orders')!.get(0)!.offset, 10n);
  assert.equal(before.offsets.get('g4')!.has('audit'), false);
  assert.deepEqual([...before.generations.keys()].sort(), ['g1', 'g5']);
  assert.equal(before.generations.get('g1')!.generationId, 2);

  const alone = emptyState();
  const batches = checkpointBatches(before, 128);
  assert.ok(batches.length > 3, `a small chunk splits the checkpoint (${batches.length} batches)`);
  const log = await PartitionLog.open(freshDir());
  try {
    await append(log, batches);
    await replayOffsetsLog(log, alone);
    assert.deepEqual(alone, before);
    // Each batch says it is part i of n of a checkpoint.
    const r = await log.read(0n, 1 << 20);
    const marks = [...storedBatches(r.records)].flatMap(({ buf }) => decodeStoredRecords(buf).map((x) => x.headers.find((h) => h.key === CHECKPOINT_HEADER)?.value?.toString()));
    assert.deepEqual(marks, batches.map((_, i) => `${i + 1}/${batches.length}`));
  } finally {
    await log.close();
  }
  // An empty state's checkpoint is one batch that replays to nothing.
  assert.equal(checkpointBatches(emptyState()).length, 1);
});

test('a crash inside the checkpoint, before the log start moved, or after it: the replay is the state before the crash', async () => {
  const before = replayed(HISTORY);
  const expected = replayed([...HISTORY, ...NEWER]);
  const cp = checkpointBatches(before, 128);

  // Inside the checkpoint: every prefix of its batches, then the leader died.
  for (const k of [1, Math.floor(cp.length / 2), cp.length - 1]) {
    let log = await PartitionLog.open(freshDir());
    await append(log, HISTORY.map(recordBatch));
    await append(log, cp.slice(0, k));
    log = await reopen(log);
    assert.deepEqual(await replay(log), before, `${k} of ${cp.length} checkpoint batches written`);
    await log.close();
  }

  // The whole checkpoint and newer records, the log start not moved yet.
  let log = await PartitionLog.open(freshDir());
  await append(log, HISTORY.map(recordBatch));
  const first = await append(log, cp);
  await append(log, NEWER.map(recordBatch));
  log = await reopen(log);
  assert.equal(log.logStartOffset, 0n);
  assert.deepEqual(await replay(log), expected, 'old records, then the checkpoint, then newer ones');

  // The log start moved to the checkpoint (as the leader does once the ISR holds it).
  await log.deleteRecordsBefore(first);
  log = await reopen(log);
  assert.equal(log.logStartOffset, first, 'the moved log start survives a restart');
  const after = await replay(log);
  assert.deepEqual(after, expected, 'the checkpoint then newer records');
  assert.equal(after.offsets.has('g2'), false, 'a deleted group does not come back');
  assert.equal(after.offsets.has('g3'), false, 'a group whose last offset was deleted does not come back');
  assert.equal(after.offsets.get('g1')!.get('orders')!.get(0)!.offset, 11n, 'the newest commit wins over the checkpoint');
  assert.equal(after.offsets.get('g1')!.get('orders')!.has(1), false, 'an offset deleted after the checkpoint stays deleted');
  assert.equal(after.generations.get('g1')!.generationId, 3);
  assert.equal(after.generations.has('g2'), false);
  await log.close();
});

test('random histories: replaying from the checkpoint equals replaying everything, at any checkpoint position', async () => {
  // A fixed seed: a failure names the round to replay.
  let seed = 0x5eed;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  for (let round = 0; round < 8; round++) {
    const records: OffsetRecord[] = [];
    for (let i = 0; i < 150; i++) {
      const g = `g${rand(6)}`;
      const t = `t${rand(3)}`;
      const op = rand(20);
      if (op < 13) records.push(commit(g, t, rand(4), rand(1000)));
      else if (op < 16) records.push(generation(g, rand(10)));
      else if (op < 17) records.push({ type: RecordType.DeleteGroup, groupId: g });
      else if (op < 19) records.push({ type: RecordType.DeleteOffsets, groupId: g, topics: [{ topic: t, partitions: [rand(4), rand(4)] }] });
      else records.push({ type: RecordType.DeleteTopic, topic: t });
    }
    const at = rand(records.length);
    const log = await PartitionLog.open(freshDir());
    try {
      await append(log, records.slice(0, at).map(recordBatch));
      const first = await append(log, checkpointBatches(replayed(records.slice(0, at)), 64 + rand(256)));
      await append(log, records.slice(at).map(recordBatch));
      const whole = await replay(log);
      assert.deepEqual(whole, replayed(records), `round ${round}: the whole log`);
      await log.deleteRecordsBefore(first);
      assert.deepEqual(await replay(log), whole, `round ${round}: from the checkpoint at record ${at}`);
    } finally {
      await log.close();
    }
  }
});
