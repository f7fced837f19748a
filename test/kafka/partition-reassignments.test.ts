/**
 * AlterPartitionReassignments and ListPartitionReassignments on a single broker, through
 * @platformatic/kafka as a black box: answered as a one-broker Kafka cluster answers them
 * (nothing to move, nothing in progress), and refused without ALTER / DESCRIBE on the
 * cluster when authorization is on. The region-cluster side (a real move) is in
 * test/cluster/cluster-reassign.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { alterPartitionReassignmentsV0, Connection, listPartitionReassignmentsV0 } from '@platformatic/kafka';
import { Kafka, logLevel } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { platformaticAnswer } from '../helpers/platformatic-answer.js';

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});


type Topics = Array<{ name: string; partitions: Array<{ partitionIndex: number; replicas: number[] | null }> }>;

async function connected(tb: TestBroker) {
  const conn = new Connection('reassign-single');
  await conn.connect('127.0.0.1', tb.port);
  cleanups.push(() => conn.close());
  return {
    // platformatic types replicas as number[] but writes null as Kafka's null array (a cancellation).
    alter: (topics: Topics) => platformaticAnswer(alterPartitionReassignmentsV0.api.async(conn, 5000, false, topics as never)),
    list: () => platformaticAnswer(listPartitionReassignmentsV0.api.async(conn, 5000, null as never)),
  };
}

let tb: TestBroker;
before(async () => {
  tb = await startBroker();
  cleanups.push(() => tb.cleanup());
  const admin = new Kafka({ brokers: [tb.bootstrap], clientId: 'reassign-single', logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'single', numPartitions: 2 }] });
  await admin.disconnect();
});

test('a single broker answers as a one-broker cluster: its own id is accepted, any other target and a cancellation refused per partition, nothing listed', async () => {
  const { alter, list } = await connected(tb);
  const self = tb.config.nodeId;
  const r = await alter([
    { name: 'single', partitions: [{ partitionIndex: 0, replicas: [self] }, { partitionIndex: 1, replicas: [self, self + 1] }, { partitionIndex: 0, replicas: null }, { partitionIndex: 5, replicas: [self] }] },
    { name: 'no-such-topic', partitions: [{ partitionIndex: 0, replicas: [self] }] },
  ]);
  assert.equal(r.errorCode, 0);
  assert.deepEqual(
    r.responses.map((t) => [t.name, t.partitions.map((p) => [p.partitionIndex, p.errorCode])]),
    [
      ['single', [[0, 0], [1, 39], [0, 85], [5, 3]]],
      ['no-such-topic', [[0, 3]]],
    ],
    'NONE, INVALID_REPLICA_ASSIGNMENT, NO_REASSIGNMENT_IN_PROGRESS, UNKNOWN_TOPIC_OR_PARTITION',
  );
  assert.match(r.responses[0]!.partitions[1]!.errorMessage ?? '', /single broker/);
  const l = await list();
  assert.equal(l.errorCode, 0);
  assert.deepEqual(l.topics, []);
});

test('with authorization on, an anonymous client is refused: CLUSTER_AUTHORIZATION_FAILED at the top and per partition', async () => {
  const secured = await startBroker({ security: { authorization: { enabled: true, superUsers: ['User:admin'] } } });
  cleanups.push(() => secured.cleanup());
  const { alter, list } = await connected(secured);
  const r = await alter([{ name: 'any', partitions: [{ partitionIndex: 0, replicas: [1] }, { partitionIndex: 1, replicas: null }] }]);
  assert.equal(r.errorCode, 31);
  assert.deepEqual(r.responses[0]!.partitions.map((p) => p.errorCode), [31, 31]);
  const l = await list();
  assert.equal(l.errorCode, 31);
  assert.deepEqual(l.topics, []);
});
