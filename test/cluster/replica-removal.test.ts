/**
 * A replica removed from a partition empties its local copy (ReplicaManager's
 * `#discardCopy`), on three real brokers in this process sharing an in-memory partition-state
 * source (a test double standing in for etcd: replica-cluster.ts; the test plays the
 * controller). The end-to-end test with etcd and real reassignments is cluster-reassign.
 * - a follower removed from the replicas stops fetching and its copy is emptied; added back,
 *   it fetches everything again and ends byte-identical to the leader;
 * - removed and added back at once (the second state arrives while the copy is being emptied):
 *   it ends a replica again, byte-identical to the leader, in the ISR;
 * - the leader removed (the leadership moved in the same write): its copy is emptied, the new
 *   leader takes produce.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { waitFor } from '../helpers/wait.js';
import { logBytes, startReplicaCluster, type ReplicaCluster } from './replica-cluster.js';

let cluster: ReplicaCluster;
const TOPIC = 'removal';

before(async () => {
  cluster = await startReplicaCluster({ brokers: 3, replicaLagTimeMaxMs: 2000, fetchMaxWaitMs: 100 });
  await cluster.createTopic(TOPIC, 1, 1);
  await waitFor('broker 1 leads', () => cluster.node(1).broker.replicaManager!.replica(TOPIC, 0)?.role === 'leader');
});

after(async () => {
  await cluster?.close();
});

let n = 0;
async function produce(count: number): Promise<void> {
  const kafka = new Kafka({ clientId: 'removal-test', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING, retry: { retries: 20, initialRetryTime: 50 } });
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    for (let i = 0; i < count; i++) await producer.send({ topic: TOPIC, acks: -1, messages: [{ value: `v-${n++}` }, { value: `v-${n++}` }] });
  } finally {
    await producer.disconnect();
  }
}

async function waitEmptied(nodeId: number): Promise<void> {
  const log = cluster.node(nodeId).log(TOPIC, 0);
  const dir = log.dir;
  await waitFor(`broker ${nodeId}'s copy emptied`, () => {
    const bytes = fs.readdirSync(dir).filter((f) => f.endsWith('.log')).reduce((sum, f) => sum + fs.statSync(path.join(dir, f)).size, 0);
    return log.logEndOffset === log.logStartOffset && bytes === 0;
  }, 10_000, 20);
}

async function waitIdentical(leader: number, follower: number): Promise<void> {
  await waitFor(`broker ${follower} byte-identical to leader ${leader}`, async () => {
    const [a, b] = [cluster.node(leader).log(TOPIC, 0), cluster.node(follower).log(TOPIC, 0)];
    return a.logEndOffset > 0n && a.logEndOffset === b.logEndOffset && (await logBytes(a)).equals(await logBytes(b));
  }, 10_000, 20);
}

test('a removed follower empties its copy; added back, it fetches everything again', async () => {
  await produce(20);
  await waitIdentical(1, 3);
  const cur = cluster.source.get(TOPIC, 0);
  cluster.source.set(TOPIC, 0, { replicas: [1, 2], leader: 1, leaderEpoch: cur.leaderEpoch, isr: [1, 2] });
  await waitEmptied(3);
  await produce(10);
  assert.equal(cluster.node(3).log(TOPIC, 0).logEndOffset, 0n, 'a removed replica copies nothing more');
  cluster.source.set(TOPIC, 0, { replicas: [1, 2, 3], leader: 1, leaderEpoch: cur.leaderEpoch, isr: cluster.source.get(TOPIC, 0).isr });
  await waitIdentical(1, 3);
  await waitFor('broker 3 back in the ISR', () => cluster.source.get(TOPIC, 0).isr.includes(3), 10_000, 20);
});

test('removed and added back at once: it ends a replica, byte-identical to the leader, in the ISR', async () => {
  await produce(10);
  await waitIdentical(1, 2);
  const cur = cluster.source.get(TOPIC, 0);
  cluster.source.set(TOPIC, 0, { replicas: [1, 3], leader: 1, leaderEpoch: cur.leaderEpoch, isr: cur.isr.filter((id) => id !== 2) });
  cluster.source.set(TOPIC, 0, { replicas: [1, 3, 2], leader: 1, leaderEpoch: cur.leaderEpoch, isr: cur.isr.filter((id) => id !== 2) });
  await produce(5);
  await waitIdentical(1, 2);
  await waitFor('broker 2 back in the ISR', () => cluster.source.get(TOPIC, 0).isr.includes(2), 10_000, 20);
  assert.equal(cluster.node(2).broker.replicaManager!.replica(TOPIC, 0)?.role, 'follower');
});

test('the leader removed, leadership moved in the same write: its copy is emptied, the new leader takes produce', async () => {
  await waitIdentical(1, 2);
  const cur = cluster.source.get(TOPIC, 0);
  cluster.source.set(TOPIC, 0, { replicas: [2, 3], leader: 2, leaderEpoch: cur.leaderEpoch + 1, isr: cur.isr.filter((id) => id !== 1) });
  await waitEmptied(1);
  const end = cluster.node(2).log(TOPIC, 0).logEndOffset;
  await produce(5);
  assert.equal(cluster.node(2).log(TOPIC, 0).logEndOffset, end + 10n);
  await waitIdentical(2, 3);
  assert.equal(cluster.node(1).log(TOPIC, 0).logEndOffset, 0n);
});
