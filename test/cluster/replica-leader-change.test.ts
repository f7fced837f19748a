/**
 * Leader changes in in-region replication (src/cluster/replica-*.ts), on three real brokers
 * sharing an in-memory partition-state source (a test double standing in for etcd:
 * replica-cluster.ts), where the test plays the controller:
 * - the old leader becomes a follower of the new one (epoch + 1) and truncates the tail it
 *   had acknowledged with acks=1 but nobody copied; the three logs then converge,
 *   byte-identical, with the new epoch in every cache;
 * - a KafkaJS idempotent producer keeps producing across a leader change (retrying after
 *   NOT_LEADER_OR_FOLLOWER at the new leader, whose producer state is rebuilt from the log
 *   it copied): every value is read exactly once, in order.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { waitFor } from '../helpers/wait.js';
import { logBytes, startReplicaCluster, type ReplicaCluster } from './replica-cluster.js';
import { rawProduce } from './replica-raw.js';

let cluster: ReplicaCluster;

before(async () => {
  cluster = await startReplicaCluster({ brokers: 3 });
});

after(async () => {
  await cluster?.close();
});

const leads = (id: number, topic: string, epoch: number) => () => {
  const r = cluster.node(id).broker.replicaManager!.replica(topic, 0);
  return r?.role === 'leader' && r.leaderEpoch === epoch;
};

test('the old leader truncates its unreplicated acks=1 tail and the logs converge byte-identical', async () => {
  const topic = 'leader-change';
  await cluster.createTopic(topic, 1, 1);
  await waitFor('broker 1 leads', leads(1, topic, 0));
  const old = cluster.node(1);
  assert.equal((await rawProduce(old.port, topic, 0, ['a', 'b', 'c'], -1)).errorCode, 0);

  cluster.node(2).broker.replicaManager!.pauseFetchers();
  cluster.node(3).broker.replicaManager!.pauseFetchers();
  const tail = await rawProduce(old.port, topic, 0, ['lost-1', 'lost-2'], 1);
  assert.equal(tail.errorCode, 0);
  assert.equal(old.log(topic, 0).logEndOffset, 5n);

  // The controller moves leadership to broker 2, which never saw the tail.
  cluster.source.elect(topic, 0, 2);
  await waitFor('broker 2 leads epoch 1', leads(2, topic, 1));
  await waitFor('broker 1 truncated its tail', () => old.log(topic, 0).logEndOffset === 3n);
  cluster.node(2).broker.replicaManager!.resumeFetchers();
  cluster.node(3).broker.replicaManager!.resumeFetchers();

  const next = await rawProduce(cluster.node(2).port, topic, 0, ['d', 'e'], -1);
  assert.equal(next.errorCode, 0);
  assert.equal(next.baseOffset, 3n);
  const bytes = await logBytes(cluster.node(2).log(topic, 0));
  for (const b of cluster.brokers) {
    await waitFor(`broker ${b.nodeId} holds the new leader's records`, () => b.log(topic, 0).logEndOffset === 5n);
    assert.ok((await logBytes(b.log(topic, 0))).equals(bytes), `broker ${b.nodeId}'s log differs from the new leader's`);
    assert.deepEqual(b.log(topic, 0).leaderEpochs.entries(), [{ epoch: 0, startOffset: 0n }, { epoch: 1, startOffset: 3n }]);
  }
  const read = await readTopicToEnd(cluster.node(2).bootstrap, topic);
  assert.deepEqual(read.map((m) => m.value!.toString()), ['a', 'b', 'c', 'd', 'e']);
});

test('an idempotent KafkaJS producer continues exactly once across a leader change', async () => {
  const topic = 'idempotent-failover';
  await cluster.createTopic(topic, 1, 1);
  await waitFor('broker 1 leads', leads(1, topic, 0));
  const kafka = new Kafka({ clientId: 'idempotent', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING, retry: { retries: 20, initialRetryTime: 50, maxRetryTime: 500 } });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
  await producer.connect();
  const sent: string[] = [];
  try {
    for (let i = 0; i < 60; i++) {
      if (i === 20) cluster.source.elect(topic, 0, 2);
      if (i === 40) cluster.source.elect(topic, 0, 3);
      const value = `v-${i}`;
      await producer.send({ topic, acks: -1, messages: [{ value }] });
      sent.push(value);
    }
  } finally {
    await producer.disconnect();
  }
  await waitFor('broker 3 leads epoch 2', leads(3, topic, 2));
  const read = await readTopicToEnd(cluster.node(3).bootstrap, topic);
  assert.deepEqual(read.map((m) => m.value!.toString()), sent);
  const bytes = await logBytes(cluster.node(3).log(topic, 0));
  for (const b of cluster.brokers) {
    await waitFor(`broker ${b.nodeId} converged`, async () => (await logBytes(b.log(topic, 0))).equals(bytes));
  }
});
