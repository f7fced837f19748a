/**
 * The group admin operations of @platformatic/kafka 1.35.0 (a client that speaks only
 * flexible versions: OffsetCommit v8+, OffsetFetch v8+ with several groups, ListGroups v5,
 * DescribeGroups v5, DeleteGroups v2, OffsetDelete v0) against Meridian, as a black box.
 * KafkaJS provides the active consumer group the refusals need.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Admin } from '@platformatic/kafka';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { waitFor } from '../helpers/wait.js';

const NON_EMPTY_GROUP = 68;
const GROUP_ID_NOT_FOUND = 69;
const GROUP_SUBSCRIBED_TO_TOPIC = 86;

let tb: TestBroker;
let admin: Admin;
let kafka: Kafka;
const consumers: Consumer[] = [];

before(async () => {
  tb = await startBroker({ groups: { initialRebalanceDelayMs: 0, minSessionTimeoutMs: 1000 } });
  admin = new Admin({ clientId: 'plt-group-admin', bootstrapBrokers: [tb.bootstrap] });
  kafka = new Kafka({ clientId: 'plt-group-admin-kafkajs', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING });
  await admin.createTopics({ topics: ['plt-t', 'plt-live'], partitions: 2 });
});

after(async () => {
  for (const c of consumers) await c.disconnect().catch(() => {});
  await admin?.close().catch(() => {});
  await tb?.cleanup();
});

type Offsets = Array<[group: string, topic: string, partition: number, offset: bigint]>;

async function listOffsets(groups: Parameters<Admin['listConsumerGroupOffsets']>[0]['groups']): Promise<Offsets> {
  const answer = await admin.listConsumerGroupOffsets({ groups, requireStable: true });
  return answer.flatMap((g) => g.topics.flatMap((t) => t.partitions.map((p): Offsets[number] => [g.groupId, t.name, p.partitionIndex, p.committedOffset])));
}

/**
 * The Kafka errors a failed admin call carries: the client reports them as ProtocolErrors
 * (`apiId` is Kafka's name, `apiCode` its number) inside AggregateErrors.
 */
function kafkaErrorsIn(err: unknown): Array<[string, number]> {
  if (err instanceof AggregateError) return err.errors.flatMap(kafkaErrorsIn);
  const e = err as { apiId?: string; apiCode?: number };
  return typeof e?.apiId === 'string' && typeof e.apiCode === 'number' ? [[e.apiId, e.apiCode]] : [];
}

test('alter, list and delete consumer-group offsets, list and describe groups, delete groups', async () => {
  await admin.alterConsumerGroupOffsets({ groupId: 'plt-g', topics: [{ name: 'plt-t', partitionOffsets: [{ partition: 0, offset: 5n }, { partition: 1, offset: 6n }] }] });
  await admin.alterConsumerGroupOffsets({ groupId: 'plt-h', topics: [{ name: 'plt-t', partitionOffsets: [{ partition: 1, offset: 9n }] }] });
  assert.deepEqual(await listOffsets(['plt-g', { groupId: 'plt-h', topics: [{ name: 'plt-t', partitionIndexes: [0, 1] }] }]), [
    ['plt-g', 'plt-t', 0, 5n],
    ['plt-g', 'plt-t', 1, 6n],
    ['plt-h', 'plt-t', 0, -1n],
    ['plt-h', 'plt-t', 1, 9n],
  ]);

  const empty = await admin.listGroups({ states: ['EMPTY'] });
  assert.deepEqual([empty.get('plt-g')?.state, empty.get('plt-g')?.groupType], ['EMPTY', 'classic']);
  assert.equal((await admin.listGroups({ states: ['STABLE'] })).has('plt-g'), false);
  assert.equal((await admin.listGroups({ types: ['consumer'] })).size, 0, 'no KIP-848 groups');
  const described = await admin.describeGroups({ groups: ['plt-g'], includeAuthorizedOperations: true });
  assert.equal(described.get('plt-g')?.authorizedOperations, (1 << 3) | (1 << 6) | (1 << 8));

  await admin.deleteConsumerGroupOffsets({ groupId: 'plt-g', topics: [{ name: 'plt-t', partitionIndexes: [0] }] });
  assert.deepEqual(await listOffsets(['plt-g']), [['plt-g', 'plt-t', 1, 6n]]);

  await admin.deleteGroups({ groups: ['plt-g'] });
  assert.deepEqual(await listOffsets(['plt-g']), []);
  assert.equal((await admin.listGroups()).has('plt-g'), false);
  await assert.rejects(admin.deleteGroups({ groups: ['plt-g'] }), (err) => {
    assert.deepEqual(kafkaErrorsIn(err), [['GROUP_ID_NOT_FOUND', GROUP_ID_NOT_FOUND]]);
    return true;
  });
  assert.deepEqual(await listOffsets(['plt-h']), [['plt-h', 'plt-t', 1, 9n]], 'other groups keep theirs');
});

test('an active group: deleteGroups is refused with NON_EMPTY_GROUP, deleting a subscribed topic\'s offsets with GROUP_SUBSCRIBED_TO_TOPIC', async () => {
  const consumer = kafka.consumer({ groupId: 'plt-active', sessionTimeout: 10_000, heartbeatInterval: 500 });
  consumers.push(consumer);
  await consumer.connect();
  await consumer.subscribe({ topic: 'plt-live', fromBeginning: true });
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => (joined = true));
  await consumer.run({ eachMessage: async () => {} });
  await waitFor('the KafkaJS consumer joined', () => joined);

  await assert.rejects(admin.deleteGroups({ groups: ['plt-active'] }), (err) => {
    assert.deepEqual(kafkaErrorsIn(err), [['NON_EMPTY_GROUP', NON_EMPTY_GROUP]]);
    return true;
  });
  await assert.rejects(admin.deleteConsumerGroupOffsets({ groupId: 'plt-active', topics: [{ name: 'plt-live', partitionIndexes: [0] }] }), (err) => {
    assert.deepEqual(kafkaErrorsIn(err), [['GROUP_SUBSCRIBED_TO_TOPIC', GROUP_SUBSCRIBED_TO_TOPIC]]);
    return true;
  });
  const stable = await admin.listGroups({ states: ['STABLE'] });
  assert.equal(stable.get('plt-active')?.state, 'STABLE');
  await consumer.stop();
});
