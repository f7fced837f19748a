/**
 * The follower's truncate phase (src/cluster/replica-fetcher.ts) on logs that diverge in
 * ways a single OffsetForLeaderEpoch round or a batch-aligned cut does not settle. Two real
 * brokers share the in-memory partition-state source (replica-cluster.ts, a test double
 * standing in for etcd); each test writes the two logs directly (appends with the leader
 * epochs a history of failovers would have left), then makes broker 2 leader and broker 1
 * its follower, and waits for broker 1's log to become byte-identical to broker 2's:
 * - follower [A, C] against leader [A, B, D], where the follower's A runs past the
 *   leader's: the first answer (B) is an epoch the follower lacks, so it must ask again
 *   (KIP-279 rounds) and cut where the leader's A ends, not keep A-records where the leader
 *   holds B-records;
 * - the leader's epoch end falls inside one of the follower's batches: the cut rounds down
 *   to that batch's start (truncateTo refuses a mid-batch offset);
 * - a follower with records but no epochs (written in single-broker mode) truncates them all
 *   rather than appending the leader's records after its own.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { encodeBatch } from '../../src/storage/record-batch.js';
import type { PartitionLog } from '../../src/storage/partition-log.js';
import { waitFor } from '../helpers/wait.js';
import { logBytes, startReplicaCluster, type ReplicaCluster } from './replica-cluster.js';

let cluster: ReplicaCluster;

before(async () => {
  cluster = await startReplicaCluster({ brokers: 2, fetchMaxWaitMs: 100 });
});

after(async () => {
  await cluster?.close();
});

/** One batch of `values` (epoch stamp -1: the append stamps it, or leaves none). */
function batch(values: string[]): Buffer {
  return encodeBatch({ records: values.map((v) => ({ value: Buffer.from(v) })), partitionLeaderEpoch: -1 });
}

const values = (prefix: string, from: number, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${from + i}`);

/** Appends a copy of each batch with its epoch (undefined: none, as in single-broker mode). */
async function write(log: PartitionLog, batches: Array<[Buffer, number | undefined]>): Promise<void> {
  for (const [b, epoch] of batches) await log.append(Buffer.from(b), epoch === undefined ? { sync: true } : { sync: true, leaderEpoch: epoch });
}

async function openTopic(topic: string): Promise<{ leader: PartitionLog; follower: PartitionLog }> {
  for (const b of cluster.brokers) await b.broker.topics.createTopic(topic, 1);
  return { leader: cluster.node(2).log(topic, 0), follower: cluster.node(1).log(topic, 0) };
}

/** The controller: broker 2 leads `epoch`, broker 1 follows; waits until the logs are identical. */
async function converge(topic: string, epoch: number, leader: PartitionLog, follower: PartitionLog): Promise<void> {
  cluster.source.set(topic, 0, { replicas: [1, 2], leader: 2, leaderEpoch: epoch, isr: [1, 2] });
  const want = await logBytes(leader);
  await waitFor(
    `broker 1's log to become byte-identical to its leader's (${want.length} bytes, end ${leader.logEndOffset})`,
    async () => follower.logEndOffset === leader.logEndOffset && (await logBytes(follower)).equals(want),
    15_000,
    50,
    async () => `follower end ${follower.logEndOffset}, epochs ${JSON.stringify(follower.leaderEpochs.entries().map((e) => [e.epoch, String(e.startOffset)]))}`,
  );
  assert.deepEqual(
    follower.leaderEpochs.entries().map((e) => [e.epoch, e.startOffset]),
    leader.leaderEpochs.entries().map((e) => [e.epoch, e.startOffset]),
    'the same epoch history',
  );
}

test('divergent logs over two epochs converge byte-identical: the truncate phase asks again until the leader answers the epoch asked', async () => {
  const topic = 'diverge-two-epochs';
  const { leader, follower } = await openTopic(topic);
  // Epoch 0 wrote 0..9 on both. Its leader then wrote 10..14 (acks=1) and, as leader of
  // epoch 2, 15..19, which nobody copied. Meanwhile epoch 1 (broker 2) wrote other records
  // at 10..14, and epoch 3 (broker 2 again) at 15..19.
  const common = batch(values('x', 0, 10));
  await write(leader, [
    [common, 0],
    [batch(values('b', 10, 5)), 1],
    [batch(values('d', 15, 5)), 3],
  ]);
  await write(follower, [
    [common, 0],
    [batch(values('a', 10, 5)), 0],
    [batch(values('c', 15, 5)), 2],
  ]);
  await converge(topic, 4, leader, follower);
  const bytes = await logBytes(follower);
  assert.ok(bytes.includes(Buffer.from('b12')) && !bytes.includes(Buffer.from('a12')), "the leader's epoch-1 records replaced the follower's epoch-0 ones");
});

test('a truncation target inside one of the follower\'s batches rounds down to the start of that batch', async () => {
  const topic = 'diverge-mid-batch';
  const { leader, follower } = await openTopic(topic);
  // The leader's epoch 0 ends at 5; the follower holds epoch 0 as one batch 0..9.
  await write(leader, [
    [batch(values('m', 0, 5)), 0],
    [batch(values('n', 5, 5)), 1],
  ]);
  await write(follower, [[batch(values('f', 0, 10)), 0]]);
  await converge(topic, 2, leader, follower);
});

test('a follower with records but no leader epochs (single-broker mode) drops them and copies the leader\'s log', async () => {
  const topic = 'diverge-no-epochs';
  const { leader, follower } = await openTopic(topic);
  await write(leader, [[batch(values('L', 0, 8)), 0]]);
  await write(follower, [[batch(values('s', 0, 5)), undefined]]);
  assert.equal(follower.leaderEpochs.latest(), undefined, 'the follower starts without epochs');
  await converge(topic, 1, leader, follower);
});
