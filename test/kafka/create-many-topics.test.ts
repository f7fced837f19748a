/**
 * Creating many topics at once (issue 15): 1,000 topics of 10 partitions each through
 * KafkaJS admin.createTopics are all created, all survive a restart with their partition
 * counts and ids, and topics.json was written far fewer times than there are topics (the
 * topic manager's group commit: a CreateTopics request's topics share writes).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';

const TOPICS = 1000;
const PARTITIONS = 10;

let broker: TestBroker;

before(async () => {
  broker = await startBroker();
});

after(async () => {
  await broker?.cleanup();
});

test('1,000 topics x 10 partitions in one CreateTopics: all created, all survive a restart, topics.json written far fewer times than topics', { timeout: 300_000 }, async () => {
  const names = Array.from({ length: TOPICS }, (_, i) => `many-${String(i).padStart(4, '0')}`);
  const kafka = new Kafka({ clientId: 'create-many', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING, requestTimeout: 240_000 });
  const admin = kafka.admin();
  await admin.connect();
  const writesBefore = broker.broker.topics.metadataWrites;
  const started = Date.now();
  try {
    const created = await admin.createTopics({ topics: names.map((topic) => ({ topic, numPartitions: PARTITIONS })), timeout: 240_000 });
    assert.equal(created, true, 'KafkaJS reports the topics created');
  } finally {
    await admin.disconnect();
  }
  const writes = broker.broker.topics.metadataWrites - writesBefore;
  console.log(`${TOPICS} topics x ${PARTITIONS} partitions created in ${Date.now() - started} ms with ${writes} topics.json writes`);
  assert.ok(writes >= 1, 'topics.json was written');
  assert.ok(writes <= TOPICS / 10, `topics.json written ${writes} times for ${TOPICS} topics: they should share writes`);
  const ids = new Map(names.map((n) => [n, broker.broker.topics.getTopic(n)!.id]));

  broker = await broker.restart();
  const again = kafka.admin();
  await again.connect();
  try {
    const meta = await again.fetchTopicMetadata({ topics: names });
    assert.equal(meta.topics.length, TOPICS);
    for (const t of meta.topics) assert.equal(t.partitions.length, PARTITIONS, `topic ${t.name} keeps ${PARTITIONS} partitions`);
  } finally {
    await again.disconnect();
  }
  for (const n of names) assert.equal(broker.broker.topics.getTopic(n)?.id, ids.get(n), `topic ${n} keeps its id across the restart`);
});
