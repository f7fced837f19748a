/**
 * In-region replication, leader and follower sides (src/cluster/replica-*.ts), on three real
 * brokers in this process sharing an in-memory partition-state source (a test double
 * standing in for etcd: replica-cluster.ts):
 * - KafkaJS acks=-1 to the leader of an RF=3 partition: every acknowledged record is on all
 *   three logs, byte-identical (same offsets, same batch bytes, the leader's epoch stamped),
 *   and a KafkaJS consumer reads each exactly once;
 * - a consumer never reads past the high watermark: with one follower's fetcher stopped,
 *   acks=1 produce succeeds, but Fetch and ListOffsets do not show those records until the
 *   follower has them;
 * - a follower refuses produce and consumer fetch with NOT_LEADER_OR_FOLLOWER, and a fetch
 *   with an old or future leader epoch is fenced.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { kafkaCode } from '../../src/protocol/kafka/error-mapping.js';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { waitFor } from '../helpers/wait.js';
import { logBytes, startReplicaCluster, type ReplicaCluster } from './replica-cluster.js';
import { rawFetch, rawProduce } from './replica-raw.js';

let cluster: ReplicaCluster;

before(async () => {
  cluster = await startReplicaCluster({ brokers: 3 });
});

after(async () => {
  await cluster?.close();
});

test('acks=all through KafkaJS: every acknowledged record is on all three logs, byte-identical, and read once', async () => {
  const topic = 'rf3-acks-all';
  await cluster.createTopic(topic, 1, 1);
  await waitFor('broker 1 leads', () => cluster.node(1).broker.replicaManager!.replica(topic, 0)?.role === 'leader');
  const kafka = new Kafka({ clientId: 'replica-test', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const sent: string[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      const batch = Array.from({ length: 5 }, (_, j) => `m-${i}-${j}`);
      const [r] = await producer.send({ topic, acks: -1, messages: batch.map((value) => ({ value })) });
      assert.equal(r!.errorCode, 0);
      sent.push(...batch);
      // Acknowledged: every in-sync replica holds it already.
      for (const b of cluster.brokers) assert.ok(b.log(topic, 0).logEndOffset >= BigInt(sent.length), `broker ${b.nodeId} lacks an acknowledged record`);
    }
  } finally {
    await producer.disconnect();
  }
  const leaderBytes = await logBytes(cluster.node(1).log(topic, 0));
  for (const b of cluster.brokers) {
    const log = b.log(topic, 0);
    assert.equal(log.logEndOffset, BigInt(sent.length));
    assert.ok((await logBytes(log)).equals(leaderBytes), `broker ${b.nodeId}'s log differs from the leader's`);
    assert.deepEqual(log.leaderEpochs.entries(), [{ epoch: 0, startOffset: 0n }]);
  }
  const read = await readTopicToEnd(cluster.node(1).bootstrap, topic);
  assert.deepEqual(read.map((m) => m.value!.toString()), sent);
});

test('a consumer never reads past the high watermark: acks=1 records stay hidden until the stopped follower has them', async () => {
  const topic = 'hw-visibility';
  await cluster.createTopic(topic, 1, 1);
  const leader = cluster.node(1);
  await waitFor('broker 1 leads', () => leader.broker.replicaManager!.replica(topic, 0)?.role === 'leader');
  const first = await rawProduce(leader.port, topic, 0, ['a', 'b'], -1);
  assert.equal(first.errorCode, 0);
  cluster.node(3).broker.replicaManager!.pauseFetchers();
  try {
    const r = await rawProduce(leader.port, topic, 0, ['c', 'd', 'e'], 1);
    assert.equal(r.errorCode, 0);
    assert.equal(r.baseOffset, 2n);
    assert.equal(leader.log(topic, 0).logEndOffset, 5n);
    // Broker 2 copies them; broker 3 does not, so the high watermark stays at 2.
    await waitFor('broker 2 copied the acks=1 records', () => cluster.node(2).log(topic, 0).logEndOffset === 5n);
    const f = await rawFetch(leader.port, topic, 0, 2n);
    assert.equal(f.errorCode, 0);
    assert.equal(f.highWatermark, 2n);
    assert.equal(f.bytes, 0, 'a consumer read records the ISR does not all hold');
    const whole = await readTopicToEnd(leader.bootstrap, topic);
    assert.deepEqual(whole.map((m) => m.value!.toString()), ['a', 'b']);
    // Stopped, it copied nothing of them.
    assert.equal(cluster.node(3).log(topic, 0).logEndOffset, 2n);
  } finally {
    cluster.node(3).broker.replicaManager!.resumeFetchers();
  }
  await waitFor('the high watermark passes the acks=1 records once broker 3 has them', async () => (await rawFetch(leader.port, topic, 0, 2n)).highWatermark === 5n);
  const f = await rawFetch(leader.port, topic, 0, 2n);
  assert.ok(f.bytes > 0);
  const whole = await readTopicToEnd(leader.bootstrap, topic);
  assert.deepEqual(whole.map((m) => m.value!.toString()), ['a', 'b', 'c', 'd', 'e']);
});

test('followers refuse produce and consumer fetch; stale and future leader epochs are fenced', async () => {
  const topic = 'roles';
  await cluster.createTopic(topic, 1, 1);
  await waitFor('broker 1 leads', () => cluster.node(1).broker.replicaManager!.replica(topic, 0)?.role === 'leader');
  const follower = cluster.node(2);
  await waitFor('broker 2 follows', () => follower.broker.replicaManager!.replica(topic, 0)?.role === 'follower');
  const before = follower.log(topic, 0).logEndOffset;
  assert.equal((await rawProduce(follower.port, topic, 0, ['x'], -1)).errorCode, kafkaCode('NOT_LEADER_OR_FOLLOWER'));
  assert.equal((await rawProduce(follower.port, topic, 0, ['x'], 1)).errorCode, kafkaCode('NOT_LEADER_OR_FOLLOWER'));
  assert.equal(follower.log(topic, 0).logEndOffset, before, 'a follower appended a produce');
  assert.equal((await rawFetch(follower.port, topic, 0, 0n)).errorCode, kafkaCode('NOT_LEADER_OR_FOLLOWER'));
  const leaderPort = cluster.node(1).port;
  assert.equal((await rawFetch(leaderPort, topic, 0, 0n, 0)).errorCode, 0);
  assert.equal((await rawFetch(leaderPort, topic, 0, 0n, 1)).errorCode, kafkaCode('UNKNOWN_LEADER_EPOCH'));
  cluster.source.elect(topic, 0, 1);
  await waitFor('broker 1 leads epoch 1', () => cluster.node(1).broker.replicaManager!.replica(topic, 0)?.leaderEpoch === 1);
  await waitFor('epoch 0 is fenced', async () => (await rawFetch(leaderPort, topic, 0, 0n, 0)).errorCode === kafkaCode('FENCED_LEADER_EPOCH'));
  assert.equal((await rawFetch(leaderPort, topic, 0, 0n, 1)).errorCode, 0);
});

test('acks=all times out with REQUEST_TIMED_OUT when the ISR does not catch up within timeout_ms; the leader keeps the record', async () => {
  const topic = 'acks-all-timeout';
  await cluster.createTopic(topic, 1, 1);
  const leader = cluster.node(1);
  await waitFor('broker 1 leads', () => leader.broker.replicaManager!.replica(topic, 0)?.role === 'leader');
  cluster.node(2).broker.replicaManager!.pauseFetchers();
  try {
    const started = Date.now();
    const r = await rawProduce(leader.port, topic, 0, ['slow'], -1, 300);
    assert.equal(r.errorCode, kafkaCode('REQUEST_TIMED_OUT'));
    assert.ok(Date.now() - started >= 300, 'answered before timeout_ms');
    // Written on the leader (and broker 3), not yet acknowledged to the ISR: the high watermark stays.
    assert.equal(leader.log(topic, 0).logEndOffset, 1n);
    assert.equal((await rawFetch(leader.port, topic, 0, 0n)).highWatermark, 0n);
  } finally {
    cluster.node(2).broker.replicaManager!.resumeFetchers();
  }
  await waitFor('the high watermark passes it once broker 2 fetches', async () => (await rawFetch(leader.port, topic, 0, 0n)).highWatermark === 1n);
});
