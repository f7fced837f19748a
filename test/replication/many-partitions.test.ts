/**
 * Geo-replication of thousands of partitions over one link (issue 15): 200 topics of 10
 * partitions (2,000 partitions) replicated one way from region a to region b, each region a
 * broker in its own process. KafkaJS produces into every partition (acks=all), in two rounds,
 * and kcat into some; then:
 *
 *   - region b holds every record exactly once, in produce order per partition, as a KafkaJS
 *     group consumer of all 200 topics reads it, and as kcat reads the kcat-produced topics;
 *   - the link carried several partitions per request (ReplicatedAppend v1): the requests
 *     sent are far fewer than the partition appends they carried, counted by region a's
 *     link (`links[].counters`), so the batching is measured, not assumed.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { collectMessages } from '../helpers/kafkajs-collect.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { Regions, waitCaughtUp } from '../helpers/regions.js';
import { waitFor } from '../helpers/wait.js';

const TOPICS = 200;
const PARTITIONS = 10;
const PER_ROUND = 3;
const KCAT_TOPICS = 3;
const KCAT_RECORDS = 20;

const topicName = (i: number) => `mp-${String(i).padStart(3, '0')}`;

test('2,000 partitions replicate exactly once and in order, several partitions per request', { timeout: 600_000 }, async (t) => {
  const regions = await Regions.create({
    names: ['a', 'b'],
    policies: [{ name: 'mp', topics: 'mp-*', topology: 'one-way', source: 'a', targets: ['b'] }],
  });
  t.after(() => regions.close());
  await regions.start();
  const [a, b] = [regions.get('a'), regions.get('b')];
  const topics = Array.from({ length: TOPICS }, (_, i) => topicName(i));

  const kafka = new Kafka({ clientId: 'many-partitions', brokers: [a.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: PARTITIONS })), waitForLeaders: true, timeout: 120_000 });
  } finally {
    await admin.disconnect();
  }

  // What each partition must hold in b, in this order.
  const expected = new Map<string, string[]>();
  const note = (topic: string, p: number, v: string) => {
    const k = `${topic}/${p}`;
    expected.set(k, [...(expected.get(k) ?? []), v]);
  };
  const producer = kafka.producer();
  await producer.connect();
  try {
    for (let round = 0; round < 2; round++) {
      const topicMessages = topics.map((topic) => ({
        topic,
        messages: Array.from({ length: PARTITIONS * PER_ROUND }, (_, i) => {
          const p = i % PARTITIONS;
          const value = `${topic}/p${p}/r${round}/${Math.floor(i / PARTITIONS)}`;
          note(topic, p, value);
          return { partition: p, value };
        }),
      }));
      await producer.sendBatch({ topicMessages, acks: -1 });
    }
  } finally {
    await producer.disconnect();
  }
  const kcat = new KcatClient(a.bootstrap);
  for (let i = 0; i < KCAT_TOPICS; i++) {
    const topic = topicName(i * 50);
    const values = Array.from({ length: KCAT_RECORDS }, (_, j) => `${topic}/p7/kcat/${j}`);
    await kcat.produce(topic, values.join('\n') + '\n', ['-p', '7', '-X', 'acks=all']);
    for (const v of values) note(topic, 7, v);
  }

  await waitCaughtUp([a], 300_000);
  const link = await waitFor('region a to report its link to b', async () => (await a.status()).links.find((l) => l.remote === 'b'), 10_000);
  const { appendVersion, counters } = link as typeof link & { appendVersion: number; counters: { appendRequests: number; partitionAppends: number; maxPartitionsPerRequest: number; handshakes: number } };
  t.diagnostic(`link a -> b: ${JSON.stringify({ appendVersion, ...counters })}`);
  assert.equal(appendVersion, 1, 'region b serves ReplicatedAppend v1 and said so in its handshake');
  assert.ok(counters.partitionAppends >= TOPICS * PARTITIONS, `every partition sent at least one append (${counters.partitionAppends})`);
  // Batching, measured: at least four partition appends per request on average.
  assert.ok(counters.appendRequests * 4 <= counters.partitionAppends, `${counters.appendRequests} requests carried ${counters.partitionAppends} partition appends`);
  assert.ok(counters.maxPartitionsPerRequest > 1);

  // Region b, as a KafkaJS group consumer of all 200 topics reads it.
  const total = [...expected.values()].reduce((n, v) => n + v.length, 0);
  const got = await collectMessages(new Kafka({ clientId: 'many-partitions-b', brokers: [b.bootstrap], logLevel: logLevel.NOTHING }), {
    groupId: 'mp-check',
    topics,
    count: total,
    timeoutMs: 180_000,
  });
  const held = new Map<string, string[]>();
  for (const m of [...got].sort((x, y) => x.topic.localeCompare(y.topic) || x.partition - y.partition || x.offset - y.offset)) {
    const k = `${m.topic}/${m.partition}`;
    held.set(k, [...(held.get(k) ?? []), String(m.value)]);
  }
  assert.equal(got.length, total, 'records in b (KafkaJS)');
  for (const [k, values] of expected) assert.deepEqual(held.get(k), values, `${k} in b (KafkaJS): every record once, in order`);

  // And as kcat reads the partitions kcat produced into.
  for (let i = 0; i < KCAT_TOPICS; i++) {
    const topic = topicName(i * 50);
    const read = (await new KcatClient(b.bootstrap).consumeAll(topic, ['-p', '7'])).map((m) => String(m.payload));
    assert.deepEqual(read, expected.get(`${topic}/7`), `${topic}/7 in b (kcat)`);
  }
});
