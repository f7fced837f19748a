/**
 * ISR maintenance and min.insync.replicas (src/cluster/replica-manager.ts,
 * partition-replica.ts) on three real brokers sharing an in-memory partition-state source (a
 * test double standing in for etcd: replica-cluster.ts), with replicaLagTimeMaxMs 1 s and
 * min.insync.replicas 2:
 * - followers that stop fetching while the leader's log grows leave the ISR after the lag
 *   time (the leader's compare-and-swap on the state);
 * - then acks=all is NOT_ENOUGH_REPLICAS and nothing is appended, while acks=1 still is;
 * - once they fetch again and reach the high watermark they rejoin the ISR, and acks=all
 *   succeeds with every log identical.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { kafkaCode } from '../../src/protocol/kafka/error-mapping.js';
import { waitFor } from '../helpers/wait.js';
import { logBytes, startReplicaCluster, type ReplicaCluster } from './replica-cluster.js';
import { rawProduce } from './replica-raw.js';

let cluster: ReplicaCluster;

before(async () => {
  cluster = await startReplicaCluster({ brokers: 3, replicaLagTimeMaxMs: 1000, defaultMinInsyncReplicas: 2 });
});

after(async () => {
  await cluster?.close();
});

test('lagging followers leave the ISR, acks=all is refused below min.insync.replicas with nothing written, and they rejoin after catching up', async () => {
  const topic = 'isr';
  await cluster.createTopic(topic, 1, 1);
  const leader = cluster.node(1);
  await waitFor('broker 1 leads', () => leader.broker.replicaManager!.replica(topic, 0)?.role === 'leader');
  assert.equal((await rawProduce(leader.port, topic, 0, ['a'], -1)).errorCode, 0);

  cluster.node(2).broker.replicaManager!.pauseFetchers();
  cluster.node(3).broker.replicaManager!.pauseFetchers();
  // The followers fall behind only once the leader's log grows past them.
  assert.equal((await rawProduce(leader.port, topic, 0, ['b'], 1)).errorCode, 0);
  await waitFor('both followers leave the ISR', () => cluster.source.get(topic, 0).isr.join(',') === '1', 10_000);
  // The leader applied its own change.
  await waitFor('the leader sees the ISR [1]', () => leader.broker.replicaManager!.replica(topic, 0)?.state.isr.length === 1);

  const end = leader.log(topic, 0).logEndOffset;
  const refused = await rawProduce(leader.port, topic, 0, ['never'], -1);
  assert.equal(refused.errorCode, kafkaCode('NOT_ENOUGH_REPLICAS'));
  assert.equal(leader.log(topic, 0).logEndOffset, end, 'a refused acks=all produce was appended');
  // acks=1 asks only for the leader.
  assert.equal((await rawProduce(leader.port, topic, 0, ['c'], 1)).errorCode, 0);

  cluster.node(2).broker.replicaManager!.resumeFetchers();
  cluster.node(3).broker.replicaManager!.resumeFetchers();
  await waitFor('both followers rejoin the ISR', () => cluster.source.get(topic, 0).isr.length === 3, 10_000);
  const ok = await rawProduce(leader.port, topic, 0, ['d'], -1);
  assert.equal(ok.errorCode, 0);
  assert.equal(ok.baseOffset, 3n);
  const bytes = await logBytes(leader.log(topic, 0));
  for (const b of cluster.brokers) {
    await waitFor(`broker ${b.nodeId} holds offset 3`, () => b.log(topic, 0).logEndOffset === 4n);
    assert.ok((await logBytes(b.log(topic, 0))).equals(bytes), `broker ${b.nodeId}'s log differs from the leader's`);
  }
  // Every change went through the source, in order: out, then back in.
  const changes = cluster.source.isrChanges.filter((c) => c.topic === topic).map((c) => [...c.isr].sort().join(','));
  assert.ok(changes.includes('1'), `ISR changes: ${JSON.stringify(changes)}`);
  assert.equal(changes[changes.length - 1], '1,2,3');
});
