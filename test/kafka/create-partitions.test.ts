/**
 * CreatePartitions through real clients on one broker: KafkaJS's admin grows a topic, the
 * new partitions take kcat's produce and KafkaJS's fetch at once, a running KafkaJS consumer
 * group is rebalanced onto them, and the count survives a restart.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { waitFor } from '../helpers/wait.js';

let tb: TestBroker;
before(async () => {
  tb = await startBroker({ topics: { autoCreate: false }, groups: { initialRebalanceDelayMs: 0 } });
});
after(() => tb.cleanup());

test('a grown topic serves produce, fetch and a running consumer group on its new partitions, and keeps its count across a restart', { timeout: 120_000 }, async (t) => {
  const kafka = new Kafka({ clientId: 'grow', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  t.after(() => admin.disconnect());
  await admin.createTopics({ topics: [{ topic: 'grow', numPartitions: 1 }], waitForLeaders: true });

  // A group consuming the one-partition topic; a short metadata age so it notices the growth.
  const seen = new Map<string, number>();
  const consumer = new Kafka({ clientId: 'grow-consumer', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING }).consumer({ groupId: 'grow-group', metadataMaxAge: 200, maxWaitTimeInMs: 100 });
  await consumer.connect();
  t.after(() => consumer.disconnect());
  await consumer.subscribe({ topics: ['grow'], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      seen.set(message.value!.toString(), partition);
    },
  });
  const kcat = new KcatClient(tb.bootstrap);
  await kcat.produce('grow', 'before\n', ['-p', '0']);
  await waitFor('the group to read partition 0', async () => (seen.has('before') ? true : undefined));

  await admin.createPartitions({ topicPartitions: [{ topic: 'grow', count: 3 }] });
  await assert.rejects(admin.createPartitions({ topicPartitions: [{ topic: 'grow', count: 2 }] }), /partitions/i, 'fewer partitions are refused');
  assert.equal((await admin.fetchTopicMetadata({ topics: ['grow'] })).topics[0].partitions.length, 3);

  for (const p of [0, 1, 2]) await kcat.produce('grow', `after-${p}\n`, ['-p', String(p)]);
  const read = await kcat.consumeAll('grow');
  assert.deepEqual(read.map((m) => [m.partition, m.payload!.toString()]).sort(), [[0, 'after-0'], [0, 'before'], [1, 'after-1'], [2, 'after-2']]);
  await waitFor('the group to read the new partitions', async () => (['after-0', 'after-1', 'after-2'].every((v) => seen.has(v)) ? true : undefined), 60_000);
  assert.deepEqual(['after-0', 'after-1', 'after-2'].map((v) => seen.get(v)), [0, 1, 2], 'each record from its own partition');
  await consumer.disconnect();
  await admin.disconnect();

  tb = await tb.restart();
  const again = new Kafka({ clientId: 'grow-after', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await again.connect();
  assert.equal((await again.fetchTopicMetadata({ topics: ['grow'] })).topics[0].partitions.length, 3, 'the count is persisted');
  await again.disconnect();
  const reread = await new KcatClient(tb.bootstrap).consumeAll('grow');
  assert.deepEqual(reread.map((m) => [m.partition, m.payload!.toString()]).sort(), [[0, 'after-0'], [0, 'before'], [1, 'after-1'], [2, 'after-2']]);
});
