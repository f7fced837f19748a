/**
 * The DR origin index of a follower on a region cluster follows the follower's truncation
 * (src/cluster/replica-fetcher.ts, OffsetForLeaderEpoch): two real brokers share the
 * in-memory partition-state source (replica-cluster.ts, a test double standing in for etcd).
 * The follower holds records replicated from region `eu` that its leader never had; its DR
 * index (`broker.dr.indexOf`, what offset sync and group failover use) is loaded. Once the
 * follower has cut them and copied the leader's records (of region `us`) at those offsets,
 * its index answers exactly as one built from scratch on the converged log, and no longer
 * names `eu` at all.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { encodeMarker } from '../../src/replication/marker.js';
import { OriginIndex } from '../../src/replication/origin-index.js';
import { originKey } from '../../src/replication/replica-state.js';
import type { PartitionLog } from '../../src/storage/partition-log.js';
import { encodeBatch, readBatchHeader } from '../../src/storage/record-batch.js';
import { waitFor } from '../helpers/wait.js';
import { logBytes, startReplicaCluster, type ReplicaCluster } from './replica-cluster.js';

let cluster: ReplicaCluster;

before(async () => {
  cluster = await startReplicaCluster({ brokers: 2, fetchMaxWaitMs: 100 });
});

after(async () => {
  await cluster?.close();
});

function batch(prefix: string, n: number): Buffer {
  return encodeBatch({ records: Array.from({ length: n }, (_, i) => ({ value: Buffer.from(`${prefix}${i}`) })), partitionLeaderEpoch: -1 });
}

/** A marker and one batch of `n` records from `region` at origin offset `originBase`, as one append with `epoch`. */
async function replicated(log: PartitionLog, region: string, originBase: bigint, n: number, epoch: number): Promise<void> {
  const b = batch(`${region}-${originBase}-`, n);
  const marker = encodeMarker({
    originRegion: region,
    originTopicId: `tid-${region}`,
    originPartition: 0,
    senderRegion: region,
    senderTopicId: `tid-${region}`,
    hops: [region],
    batches: [{ originBaseOffset: originBase, senderBaseOffset: originBase, crc: readBatchHeader(b).crc }],
    senderEndOffset: originBase + BigInt(n) - 1n,
  });
  await log.appendAll([marker, b], { sync: true, leaderEpoch: epoch });
}

test("a follower's DR origin index follows its OffsetForLeaderEpoch truncation: answers as built from scratch, the cut origin gone", async () => {
  const topic = 'dr-index-follower-cut';
  for (const b of cluster.brokers) await b.broker.topics.createTopic(topic, 1);
  const leader = cluster.node(2).log(topic, 0);
  const follower = cluster.node(1).log(topic, 0);
  // Epoch 0 wrote 0..9 on both. The follower, leader of epoch 0 and then 2, took in eu's
  // records that nobody copied; broker 2, leader of epochs 1 and 3, took in us's instead.
  const common = batch('x', 10);
  for (const log of [leader, follower]) await log.append(Buffer.from(common), { sync: true, leaderEpoch: 0 });
  await replicated(follower, 'eu', 0n, 6, 0);
  await replicated(follower, 'eu', 6n, 6, 2);
  await replicated(leader, 'us', 0n, 4, 1);
  await replicated(leader, 'us', 4n, 4, 1);
  await replicated(leader, 'us', 8n, 9, 3);
  assert.ok(leader.logEndOffset > follower.logEndOffset, 'the leader ends past what the follower cuts');

  const dr = cluster.node(1).broker.dr;
  const idx = await dr.indexOf(topic, 0);
  const eu = originKey('eu', 'tid-eu');
  const us = originKey('us', 'tid-us');
  assert.equal(idx.vectorAt(follower.logEndOffset).get(eu), 11n, 'the index holds the divergent eu records');

  cluster.source.set(topic, 0, { replicas: [1, 2], leader: 2, leaderEpoch: 4, isr: [1, 2] });
  const want = await logBytes(leader);
  await waitFor(
    `broker 1's log to become byte-identical to its leader's (end ${leader.logEndOffset})`,
    async () => follower.logEndOffset === leader.logEndOffset && (await logBytes(follower)).equals(want),
    15_000,
    50,
  );

  const after = await dr.indexOf(topic, 0);
  assert.equal(after, idx, 'the same loaded index, cut and caught up');
  const scratch = await OriginIndex.open(follower, idx.selfKey, { persist: false });
  try {
    const end = follower.logEndOffset;
    assert.equal(after.indexedTo, end);
    for (let o = 0n; o <= end; o++) assert.deepEqual([...after.vectorAt(o)].sort(), [...scratch.vectorAt(o)].sort(), `vectorAt(${o})`);
    assert.equal(after.vectorAt(end).has(eu), false, 'no eu record is left');
    assert.equal(after.vectorAt(end).get(us), 16n);
    // A group that consumed us up to 7 elsewhere resumes here at us 8, where the leader put it.
    const v = new Map([
      [idx.selfKey, 9n],
      [us, 7n],
    ]);
    assert.equal(after.translate(v), scratch.translate(v));
    assert.equal(after.translate(v), 21n); // 0..9 x, 10 marker, 11..14 us 0..3, 15 marker, 16..19 us 4..7, 20 marker, 21 us 8
  } finally {
    await scratch.close();
  }
});
