/**
 * The promise behind a "no contact with etcd" answer, on the leader side
 * (ReplicaManager's check before any leader's answer; src/cluster/README.md, "etcd down for
 * the whole region"): three real brokers in this process on the in-memory partition-state
 * source (replica-cluster.ts), each with a "no new leadership before" clock the test sets.
 *
 * - a leadership the broker already acknowledged at goes on through the clock (a ride
 *   continues it);
 * - a leadership it has not acted on (elected to it, a new epoch) refuses produce with
 *   NOT_LEADER_OR_FOLLOWER saying why until the clock passes, then takes it; KafkaJS,
 *   retrying, gets its records through once it does;
 * - the question a rider asks carries what it leads, and a peer that knows otherwise (a
 *   preferred-leader election the rider missed) says so: the ride must not go on.
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { waitFor } from '../helpers/wait.js';
import { startReplicaCluster, type ReplicaCluster } from './replica-cluster.js';
import { rawProduce } from './replica-raw.js';

const NOT_LEADER_OR_FOLLOWER = 6;
const TOPIC = 'grace';
const cooling = new Map<number, number>();
let cluster: ReplicaCluster;

before(async () => {
  cluster = await startReplicaCluster({ brokers: 3, coolingUntil: (id) => () => cooling.get(id) ?? 0 });
  await cluster.createTopic(TOPIC, 1, 1);
  await waitFor('broker 1 leads', () => cluster.node(1).broker.replicaManager!.replica(TOPIC, 0)?.role === 'leader');
});

after(async () => {
  await cluster?.close();
});

test('a leadership already acknowledged at goes on through the clock; a new one waits it out, then takes produce', async () => {
  assert.equal((await rawProduce(cluster.node(1).port, TOPIC, 0, ['a'], -1)).errorCode, 0);
  // Broker 1 answered "no contact" now: its leadership at epoch 0 goes on (a ride).
  cooling.set(1, performance.now() + 60_000);
  assert.equal((await rawProduce(cluster.node(1).port, TOPIC, 0, ['b'], -1)).errorCode, 0);

  // Broker 2 answered "no contact" too, then is elected (epoch 1): it must not take produce
  // before its clock passes (a minute away while it is asked).
  cooling.set(2, performance.now() + 60_000);
  cluster.source.elect(TOPIC, 0, 2);
  await waitFor('broker 2 leads epoch 1', () => cluster.node(2).broker.replicaManager!.replica(TOPIC, 0)?.leaderEpoch === 1 && cluster.node(2).broker.replicaManager!.replica(TOPIC, 0)?.role === 'leader');
  const refused = await rawProduce(cluster.node(2).port, TOPIC, 0, ['c'], -1);
  assert.equal(refused.errorCode, NOT_LEADER_OR_FOLLOWER, 'a new leadership within the clock refuses produce');

  // KafkaJS retries NOT_LEADER_OR_FOLLOWER; its send lands once the clock has passed.
  const until = performance.now() + 1000;
  cooling.set(2, until);
  const kafka = new Kafka({ clientId: 'grace', brokers: [cluster.node(2).bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 20, initialRetryTime: 100, maxRetryTime: 300 } });
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    const [r] = await producer.send({ topic: TOPIC, acks: -1, messages: [{ partition: 0, value: 'd' }] });
    assert.equal(r!.errorCode, 0);
    assert.ok(performance.now() >= until, 'acknowledged only after the clock passed');
  } finally {
    await producer.disconnect();
  }
  // From then on the leadership has acted: a later "no contact" does not stop it.
  cooling.set(2, performance.now() + 60_000);
  assert.equal((await rawProduce(cluster.node(2).port, TOPIC, 0, ['e'], -1)).errorCode, 0);
  const log = cluster.node(2).log(TOPIC, 0);
  // a, b at epoch 0; c refused (never written); d and e at epoch 1.
  await waitFor('the four acknowledged records on broker 2', () => log.logEndOffset === 4n);
});

test('a rider\'s view of what it leads is checked by each peer: agreed while every broker knows it, contradicted once another leads or the epoch moved', async () => {
  const topic = 'grace-view';
  await cluster.createTopic(topic, 2, 1);
  await waitFor('broker 1 leads both partitions', () => [0, 1].every((p) => cluster.node(1).broker.replicaManager!.replica(topic, p)?.role === 'leader'));
  const q = cluster.node(1).broker.replicaManager!.rideThroughQuestion();
  const mine = q.led.filter((l) => l.topic === topic).sort((a, b) => a.partition - b.partition);
  assert.deepEqual(mine, [0, 1].map((partition) => ({ topic, partition, leaderEpoch: 0, partitionEpoch: 0 })));
  assert.ok(q.peers.has(2) && q.peers.has(3) && !q.peers.has(1), `asks the other replicas, not itself (${[...q.peers].join(', ')})`);
  for (const id of [2, 3]) assert.equal(cluster.node(id).broker.replicaManager!.contradicts(1, mine), null, `broker ${id} agrees`);
  // Another state of the same leadership (a reassignment's replicas, another ISR): a view is stale.
  assert.match(cluster.node(2).broker.replicaManager!.contradicts(1, [{ ...mine[0]!, partitionEpoch: 5 }]) ?? '', /at partition epoch 0, not 5/);
  // A preferred-leader election broker 1 missed: partition 1 moves to broker 3 at epoch 1.
  cluster.source.elect(topic, 1, 3);
  await waitFor('brokers 2 and 3 know the move', () => [2, 3].every((id) => cluster.node(id).broker.replicaManager!.replica(topic, 1)?.state.leaderEpoch === 1));
  for (const id of [2, 3]) {
    const conflict = cluster.node(id).broker.replicaManager!.contradicts(1, mine);
    assert.match(conflict ?? '', new RegExp(`broker ${id} knows ${topic}-1 led by 3 at epoch 1, not by 1 at 0`));
  }
  assert.match(cluster.node(2).broker.replicaManager!.contradicts(1, [{ topic: 'gone', partition: 0, leaderEpoch: 3, partitionEpoch: 0 }]) ?? '', /does not know gone-0/);
});

test('an ISR change whose answer was lost keeps counting its members (high watermark, and the question before a ride) until a newer state settles it', async () => {
  cooling.clear();
  const topic = 'grace-isr';
  await cluster.createTopic(topic, 1, 1);
  const leader = () => cluster.node(1).broker.replicaManager!.replica(topic, 0)!;
  await waitFor('broker 1 leads', () => leader()?.role === 'leader');
  // Broker 3 leaves the ISR (a controller-style write), then catches up: the leader proposes
  // it back, and that write is made but its answer lost.
  cluster.source.set(topic, 0, { replicas: [1, 2, 3], leader: 1, leaderEpoch: 0, isr: [1, 2] });
  await waitFor('the leader applies the ISR [1, 2]', () => leader().state.isr.join() === '1,2');
  cluster.source.loseIsrAnswers = true;
  try {
    assert.equal((await rawProduce(cluster.node(1).port, topic, 0, ['x'], -1)).errorCode, 0);
    await waitFor('the expansion written without an answer', () => cluster.source.get(topic, 0).isr.join() === '1,2,3' && leader().pendingIsr === undefined);
    assert.deepEqual([...leader().maximalIsr].sort(), [1, 2, 3], 'broker 3 still counts: etcd may hold it');
    assert.equal(leader().state.isr.join(), '1,2');
    assert.ok(cluster.node(1).broker.replicaManager!.rideThroughQuestion().peers.has(3));
  } finally {
    cluster.source.loseIsrAnswers = false;
    cluster.source.deliverWithheld();
  }
  await waitFor('the newer state settles it', () => leader().state.isr.join() === '1,2,3');
  assert.deepEqual([...leader().maximalIsr].sort(), [1, 2, 3]);
});
