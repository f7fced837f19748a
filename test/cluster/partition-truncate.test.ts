/**
 * Region-wide tail truncation (src/cluster/partition-truncate.ts): a real etcd and three
 * brokers of one region in this process (Broker.start with `cluster.etcd.endpoints`, as the
 * CLI builds them), a topic of one partition on all three (RF 3). What a user checks:
 * - records produced with acks=all, truncated at X through a broker that does not lead the
 *   partition: every replica's log ends at X and the three logs are byte-identical (the
 *   batches before X unchanged), kcat reads exactly X records; new records replicate after X,
 *   the logs stay identical, kcat reads the X old and the new ones in order;
 * - a follower stopped before a second truncation cuts its tail when it returns and ends
 *   byte-identical with the others, which went on taking records meanwhile;
 * - offsets past the end, inside a batch or below the log start are refused with
 *   OFFSET_OUT_OF_RANGE and nothing is cut;
 * - the leader stopped right as a truncation is asked: the next leader carries it out (or the
 *   request fails clearly and the same request again completes it); the stopped leader cuts
 *   its tail when it returns.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { carryTruncation, leaderCut, type TruncateResult } from '../../src/cluster/partition-truncate.js';
import type { PartitionState } from '../../src/cluster/partition-state.js';
import { reassignStep } from '../../src/cluster/reassign-plan.js';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { encodeBatch } from '../../src/storage/record-batch.js';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { describeLogDifference, readLogBatches, type StoredBatchBytes } from '../helpers/cluster.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { TestEtcd } from '../helpers/etcd.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { waitFor } from '../helpers/wait.js';

const TOPIC = 'cut-me';
let etcd: TestEtcd;
const brokers = new Map<number, TestBroker>();
const clients: Array<{ disconnect(): Promise<void> }> = [];
const config = (nodeId: number) => ({
  nodeId,
  region: 'us-east',
  cluster: { etcd: { endpoints: [etcd.endpoint] }, leaseTtlMs: '3s', replicaLagTimeMaxMs: '4s' },
  topics: { autoCreate: false },
});

before(async () => {
  etcd = await TestEtcd.start();
  for (const id of [1, 2, 3]) brokers.set(id, await startBroker(config(id)));
});

after(async () => {
  for (const c of clients) await c.disconnect().catch(() => {});
  for (const b of brokers.values()) await b.cleanup().catch(() => {});
  await etcd?.close();
});

const node = (id: number) => brokers.get(id)!.broker.cluster!;
const logOf = (id: number) => readLogBatches(brokers.get(id)!.dataDir, TOPIC, 0);
const endOf = (batches: readonly StoredBatchBytes[]) => (batches.length === 0 ? 0n : batches[batches.length - 1]!.lastOffset + 1n);

async function identical(ids: readonly number[], end: bigint): Promise<StoredBatchBytes[]> {
  let diff = '';
  return waitFor(
    `the logs of brokers [${ids.join(', ')}] to end at ${end}, byte-identical`,
    async () => {
      const logs = await Promise.all(ids.map(logOf));
      diff = describeLogDifference(ids, logs) || logs.map((l, i) => `broker ${ids[i]} ends at ${endOf(l)}`).join(', ');
      return describeLogDifference(ids, logs) === '' && endOf(logs[0]!) === end ? logs[0]! : false;
    },
    20_000,
    50,
    () => `(${diff})`,
  );
}

function state(id = 1) {
  return node(id).source.versioned(TOPIC, 0)!.value;
}

/** One record per batch, so any offset is a batch boundary; acks=all. */
async function produce(kcat: KcatClient, values: string[]): Promise<void> {
  await kcat.produce(TOPIC, values.join('\n') + '\n', ['-p', '0', '-X', 'acks=all', '-X', 'batch.num.messages=1', '-X', 'linger.ms=0']);
}

test('truncate a partition region-wide: every replica ends at X, then the partition goes on; a replica away meanwhile cuts when it returns', async () => {
  await node(1).createTopic(TOPIC, { partitions: 1, replicationFactor: 3, configs: { 'min.insync.replicas': '2' } });
  await waitFor('every broker to hold the topic with a leader', () => [1, 2, 3].every((id) => node(id).source.versioned(TOPIC, 0)?.value.leader !== undefined && brokers.get(id)!.broker.topics.getTopic(TOPIC) !== undefined && state(id).leader >= 0), 20_000);
  const leader = state().leader;
  const followers = [1, 2, 3].filter((id) => id !== leader);
  const kcat = new KcatClient([1, 2, 3].map((id) => brokers.get(id)!.bootstrap).join(','));
  const kafka = new Kafka({ clientId: 'truncate-test', brokers: [1, 2, 3].map((id) => brokers.get(id)!.bootstrap), logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 100 } });
  const admin = kafka.admin();
  clients.push(admin);
  await admin.connect();
  const high = async () => (await admin.fetchTopicOffsets(TOPIC)).find((p) => p.partition === 0)?.high;

  // 1. 30 records, one batch each, acknowledged by the ISR.
  await produce(kcat, Array.from({ length: 30 }, (_, i) => `a${i}`));
  const before30 = await identical([1, 2, 3], 30n);
  assert.equal(before30.length, 30);

  // Refusals: nothing is cut.
  const beyond = await node(followers[0]!).truncatePartition(TOPIC, 0, 31n, { timeoutMs: 15_000 }).then(
    () => assert.fail('a truncation past the log end was accepted'),
    (err: unknown) => err,
  );
  assert.ok(beyond instanceof MeridianError && beyond.code === ErrorCode.OffsetOutOfRange, `expected OFFSET_OUT_OF_RANGE, got ${String(beyond)}`);
  assert.match((beyond as Error).message, /past the log end 30/);
  await identical([1, 2, 3], 30n);

  // 2. Truncated at 20 through a follower (not the leader).
  const epochBefore = state().leaderEpoch;
  const res = await node(followers[0]!).truncatePartition(TOPIC, 0, 20n, { timeoutMs: 20_000 });
  assert.equal(res.leader, leader, 'the same leader, at a new epoch');
  assert.ok(res.leaderEpoch > epochBefore);
  const at20 = await identical([1, 2, 3], 20n);
  assert.equal(at20.length, 20);
  for (let i = 0; i < 20; i++) assert.ok(at20[i]!.bytes.equals(before30[i]!.bytes), `batch ${i} changed`);
  const read20 = await kcat.consumeAll(TOPIC);
  assert.deepEqual(read20.map((m) => m.payload?.toString()), Array.from({ length: 20 }, (_, i) => `a${i}`));
  // The high watermark (ListOffsets LATEST at the leader) moved back to 20.
  assert.equal(await high(), '20');

  // 3. The partition goes on: new records after 20, replicated, read in order.
  await produce(kcat, Array.from({ length: 10 }, (_, i) => `b${i}`));
  await identical([1, 2, 3], 30n);
  const expected = [...Array.from({ length: 20 }, (_, i) => `a${i}`), ...Array.from({ length: 10 }, (_, i) => `b${i}`)];
  const read30 = await kcat.consumeAll(TOPIC);
  assert.deepEqual(read30.map((m) => m.payload?.toString()), expected);
  assert.deepEqual(read30.map((m) => m.offset), expected.map((_, i) => i));
  assert.equal(await high(), '30');

  // 4. A follower away during the next truncation: stopped, out of the ISR.
  const away = followers[1]!;
  const awayBroker = brokers.get(away)!;
  await awayBroker.stop();
  await waitFor(`broker ${away} to leave the ISR`, () => !state(leader).isr.includes(away), 20_000);
  const kcatUp = new KcatClient([leader, followers[0]!].map((id) => brokers.get(id)!.bootstrap).join(','));
  await node(leader).truncatePartition(TOPIC, 0, 25n, { timeoutMs: 20_000 });
  await identical([leader, followers[0]!], 25n);
  await produce(kcatUp, Array.from({ length: 5 }, (_, i) => `c${i}`));
  await identical([leader, followers[0]!], 30n);
  // Its log still holds b5..b9 at 25..29 (epoch of before), where the others now hold c0..c4.
  assert.equal(endOf(await logOf(away)), 30n);
  brokers.set(away, await awayBroker.restart());
  const final = await identical([1, 2, 3], 30n);
  await waitFor(`broker ${away} to rejoin the ISR`, () => state(leader).isr.includes(away), 20_000);
  const want = [...expected.slice(0, 25), ...Array.from({ length: 5 }, (_, i) => `c${i}`)];
  const readFinal = await kcat.consumeAll(TOPIC);
  assert.deepEqual(readFinal.map((m) => m.payload?.toString()), want);
  assert.equal(final.length, 30);
  assert.equal(state().truncation?.status, 'done');

  // 5. The leader stops right as a truncation is asked: the request is not lost. Either the
  // old leader cut before it left, or the next leader (elected at a later epoch, the state's
  // truncation carried) cuts before it leads; the followers cut either way.
  const asker = [1, 2, 3].find((id) => id !== leader)!;
  const asked = node(asker).truncatePartition(TOPIC, 0, 28n, { timeoutMs: 20_000 });
  const leaving = brokers.get(leader)!;
  await leaving.stop();
  const outcome: TruncateResult | Error = await asked.then(
    (r) => r,
    (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
  );
  const survivors = [1, 2, 3].filter((id) => id !== leader);
  // A clear, retriable error is allowed; asking again must then complete it.
  // Usually the stopping leader's replica manager closes before it applies the bump and the
  // next leader cuts (its log says "leader cut its log ... before leading"); should it have
  // applied it first, it cut then. Either way the survivors end at 28.
  if (outcome instanceof Error) await node(asker).truncatePartition(TOPIC, 0, 28n, { timeoutMs: 20_000 });
  await identical(survivors, 28n);
  const kcatSurvivors = new KcatClient(survivors.map((id) => brokers.get(id)!.bootstrap).join(','));
  await produce(kcatSurvivors, ['d0', 'd1']);
  await identical(survivors, 30n);
  brokers.set(leader, await leaving.restart());
  await identical([1, 2, 3], 30n);
  const last = await kcat.consumeAll(TOPIC);
  assert.deepEqual(last.map((m) => m.payload?.toString()), [...want.slice(0, 28), 'd0', 'd1']);
  assert.deepEqual(last.map((m) => m.offset), Array.from({ length: 30 }, (_, i) => i));

  // 6. Refused, nothing cut: inside a batch (five records in one KafkaJS send), below the
  // log start (DeleteRecords moved it).
  const producer = kafka.producer();
  clients.push(producer);
  await producer.connect();
  await producer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 5 }, (_, i) => ({ value: `e${i}` })) });
  await identical([1, 2, 3], 35n);
  const inside = await node(asker).truncatePartition(TOPIC, 0, 32n, { timeoutMs: 20_000 }).then(() => assert.fail('a cut inside a batch was accepted'), (err: unknown) => err);
  assert.ok(inside instanceof MeridianError && inside.code === ErrorCode.OffsetOutOfRange, String(inside));
  assert.match(inside.message, /inside the batch starting at 30/);
  await admin.fetchTopicMetadata({ topics: [TOPIC] });
  await admin.deleteTopicRecords({ topic: TOPIC, partitions: [{ partition: 0, offset: '10' }] });
  const below = await node(asker).truncatePartition(TOPIC, 0, 5n, { timeoutMs: 20_000 }).then(() => assert.fail('a cut below the log start was accepted'), (err: unknown) => err);
  assert.ok(below instanceof MeridianError && below.code === ErrorCode.OffsetOutOfRange, String(below));
  assert.match(below.message, /below the log start 10/);
  await identical([1, 2, 3], 35n);
  const read = await kcat.consumeAll(TOPIC);
  assert.deepEqual(read.map((m) => m.payload?.toString()), [...want.slice(10, 28), 'd0', 'd1', 'e0', 'e1', 'e2', 'e3', 'e4']);
});

test('a reassignment completing while a truncation is pending keeps it in the state it writes (the next leader applies it)', () => {
  const truncation = { id: 't1', offset: '20', epoch: 4, status: 'pending' as const };
  const state = { replicas: [1, 2, 3, 4], leader: 1, leaderEpoch: 4, isr: [1, 2, 3, 4], partitionEpoch: 9, truncation };
  const step = reassignStep(state, { target: [4, 2, 3], original: [1, 2, 3], requestedAt: 0 }, new Set([1, 2, 3, 4]));
  assert.equal(step.kind, 'complete');
  const next = carryTruncation(state, (step as { state: PartitionState }).state);
  assert.equal(next.leader, 4);
  assert.equal(next.leaderEpoch, 5);
  assert.deepEqual(next.truncation, truncation);
  // A state that has its own (newer) truncation keeps it.
  const newer = { ...next, truncation: { ...truncation, id: 't2', epoch: 6 } };
  assert.equal(carryTruncation(state, newer).truncation?.id, 't2');
});

test('leaderCut on a real log: where the leader cuts, and what it refuses', async () => {
  const d = tmpDir('meridian-leader-cut-');
  const log = await PartitionLog.open(d.dir, { retentionMs: -1 });
  try {
    // Epoch 1: batches of 1, 3 and 1 records (offsets 0, 1-3, 4); epoch 2: offset 5.
    for (const [n, epoch] of [[1, 1], [3, 1], [1, 1], [1, 2]] as const) {
      await log.append(encodeBatch({ records: Array.from({ length: n }, () => ({ value: Buffer.from('v') })), partitionLeaderEpoch: -1 }), { sync: true, leaderEpoch: epoch });
    }
    const t = (offset: number, epoch: number, status: 'pending' | 'done' | 'refused' = 'pending') => ({ id: 'x', offset: String(offset), epoch, status });
    // A truncation at epoch 3 cuts the older epochs' records past X.
    assert.deepEqual(await leaderCut(log, t(4, 3), 3), { kind: 'cut', offset: 4n });
    assert.deepEqual(await leaderCut(log, t(6, 3), 3), { kind: 'none' }, 'at the end: nothing to cut');
    assert.equal((await leaderCut(log, t(2, 3), 3)).kind, 'refuse', 'inside the batch 1-3');
    assert.match((await leaderCut(log, t(2, 3), 3) as { reason: string }).reason, /inside the batch starting at 1/);
    assert.match((await leaderCut(log, t(7, 3), 3) as { reason: string }).reason, /past the log end 6/);
    // A later leader (the first left mid-way) holding less than X has nothing to cut.
    assert.deepEqual(await leaderCut(log, t(7, 3), 4), { kind: 'none' });
    // Not for an older epoch, nor once refused.
    assert.deepEqual(await leaderCut(log, t(4, 3), 2), { kind: 'none' });
    assert.deepEqual(await leaderCut(log, t(4, 3, 'refused'), 3), { kind: 'none' });
    // Records of the truncation's epoch past X (epoch 2 starts at 5): a pending one is
    // refused rather than cutting them, a settled one asks nothing.
    assert.equal((await leaderCut(log, t(4, 2), 2)).kind, 'refuse');
    assert.deepEqual(await leaderCut(log, t(4, 2, 'done'), 2), { kind: 'none' });
    assert.deepEqual(await leaderCut(log, t(5, 2), 2), { kind: 'none' }, 'epoch 2 starts at X: already cut');
    await log.deleteRecordsBefore(4n);
    assert.match((await leaderCut(log, t(1, 3), 3) as { reason: string }).reason, /below the log start 4/);
  } finally {
    await log.close();
    d.cleanup();
  }
});
