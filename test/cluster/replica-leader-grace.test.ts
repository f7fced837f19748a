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
 *   retrying, gets its records through once it does.
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
  // before its clock passes.
  const until = performance.now() + 1500;
  cooling.set(2, until);
  cluster.source.elect(TOPIC, 0, 2);
  await waitFor('broker 2 leads epoch 1', () => cluster.node(2).broker.replicaManager!.replica(TOPIC, 0)?.leaderEpoch === 1 && cluster.node(2).broker.replicaManager!.replica(TOPIC, 0)?.role === 'leader');
  const refused = await rawProduce(cluster.node(2).port, TOPIC, 0, ['c'], -1);
  assert.equal(refused.errorCode, NOT_LEADER_OR_FOLLOWER, 'a new leadership within the clock refuses produce');
  assert.ok(performance.now() < until, 'refused before the clock passed');

  // KafkaJS retries NOT_LEADER_OR_FOLLOWER; its send lands once the clock has passed.
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
