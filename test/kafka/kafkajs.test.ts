/**
 * KafkaJS 2.2.4 as a black box against Meridian: producers (plain, idempotent, and an
 * idempotent retry forced by losing the first response), a consumer group of two members
 * that splits partitions and rebalances when one leaves, and the admin client.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel, type Consumer, type EachMessagePayload } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { collectMessages } from '../helpers/kafkajs-collect.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';

let tb: TestBroker;
let kafka: Kafka;
before(async () => {
  tb = await startBroker();
  kafka = new Kafka({ brokers: [tb.bootstrap], clientId: 'kafkajs-test', logLevel: logLevel.NOTHING });
});
after(() => tb.cleanup());

/** A fresh group reads `topic` until `expected` messages arrived and on to its end (see collectMessages). */
async function consumeAll(topic: string, expected: number, groupId = `reader-${Math.random()}`): Promise<Array<{ partition: number; offset: string; key: string | null; value: string | null; headers: Record<string, string> }>> {
  const got = await collectMessages(kafka, { groupId, topics: [topic], count: expected });
  return got.map((m) => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(m.headers)) headers[k] = String(v);
    return { partition: m.partition, offset: String(m.offset), key: m.key?.toString() ?? null, value: m.value?.toString() ?? null, headers };
  });
}

test('plain producer: every message lands once, in order per partition, with keys and headers', async () => {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'plain', numPartitions: 3 }] });
  await admin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  const sent: Array<{ key: string; value: string }> = [];
  for (let b = 0; b < 20; b++) {
    const messages = Array.from({ length: 50 }, (_, i) => ({ key: `k${(b * 50 + i) % 17}`, value: `v${b * 50 + i}`, headers: { n: String(b * 50 + i) } }));
    sent.push(...messages);
    const r = await producer.send({ topic: 'plain', acks: -1, messages });
    assert.ok(r.every((x) => x.errorCode === 0));
  }
  await producer.disconnect();
  const got = await consumeAll('plain', 1000);
  assert.equal(got.length, 1000);
  assert.deepEqual(new Set(got.map((m) => m.value)).size, 1000, 'no duplicates');
  for (const m of got) assert.equal(m.headers.n, m.value!.slice(1));
  // Per key (one partition per key), values arrive in the order sent.
  const byKey = new Map<string, string[]>();
  for (const m of got) byKey.set(m.key!, [...(byKey.get(m.key!) ?? []), m.value!]);
  for (const [key, values] of byKey) assert.deepEqual(values, sent.filter((s) => s.key === key).map((s) => s.value));
});

test('idempotent producer: a retry after a lost response does not duplicate', async () => {
  // The broker advertises the proxy, so every KafkaJS connection goes through it. The
  // proxy swallows the first Produce response and resets the connection: the batch was
  // appended, KafkaJS never hears so, and retries the same sequence number.
  const proxy = new TcpProxy({ targetPort: 0 });
  const proxyPort = await proxy.start();
  const viaProxy = await startBroker({ kafka: { advertisedPort: proxyPort } });
  proxy.options.targetPort = viaProxy.port;
  const produceCorrelations = new Set<number>();
  let swallowed = 0;
  proxy.options.onRequest = (f) => {
    if (f.readInt16BE(4) === 0) produceCorrelations.add(f.readInt32BE(8));
    return 'forward';
  };
  proxy.options.onResponse = (f) => {
    if (swallowed === 0 && produceCorrelations.has(f.readInt32BE(4))) {
      swallowed++;
      return 'kill';
    }
    return 'forward';
  };
  try {
    const k = new Kafka({ brokers: [`127.0.0.1:${proxyPort}`], clientId: 'idem', logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 50 } });
    const admin = k.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'idem', numPartitions: 1 }] });
    await admin.disconnect();
    const producer = k.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    for (let i = 0; i < 10; i++) await producer.send({ topic: 'idem', acks: -1, messages: [{ key: 'k', value: `m${i}` }, { key: 'k', value: `m${i}b` }] });
    await producer.disconnect();
    assert.equal(swallowed, 1, 'one response was lost, forcing a retry');
    const log = viaProxy.broker.topics.partition('idem', 0)!;
    assert.equal(log.highWatermark, 20n, 'exactly 20 records: the retried batch was not appended twice');
    const consumerKafka = new Kafka({ brokers: [`127.0.0.1:${proxyPort}`], clientId: 'idem-reader', logLevel: logLevel.NOTHING });
    const consumer = consumerKafka.consumer({ groupId: 'idem-reader' });
    await consumer.connect();
    await consumer.subscribe({ topic: 'idem', fromBeginning: true });
    const values: string[] = [];
    await new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ message }: EachMessagePayload) => {
          values.push(message.value!.toString());
          if (values.length === 20) resolve();
        },
      });
    });
    await consumer.disconnect();
    assert.deepEqual(values, Array.from({ length: 10 }, (_, i) => [`m${i}`, `m${i}b`]).flat());
  } finally {
    await viaProxy.cleanup();
    await proxy.close();
  }
});

test('consumer group: two members split the partitions and one takes over when the other leaves', async () => {
  const topic = 'grouped';
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 4 }] });
  await admin.disconnect();
  const seen = new Map<string, Array<{ partition: number; value: string }>>();
  const members: Consumer[] = [];
  const assignments = new Map<string, number[]>();
  for (const name of ['a', 'b']) {
    const c = kafka.consumer({ groupId: 'split-group', sessionTimeout: 10_000, heartbeatInterval: 500, rebalanceTimeout: 10_000 });
    c.on(c.events.GROUP_JOIN, (e) => assignments.set(name, (e.payload.memberAssignment[topic] ?? []).slice().sort()));
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    seen.set(name, []);
    await c.run({ eachMessage: async ({ partition, message }) => void seen.get(name)!.push({ partition, value: message.value!.toString() }) });
    members.push(c);
  }
  // Wait until both are in one generation with a partition split between them.
  const [a, b] = await waitFor('both members to share the partitions in one generation', () => {
    const x = assignments.get('a') ?? [];
    const y = assignments.get('b') ?? [];
    return x.length > 0 && y.length > 0 && x.length + y.length === 4 && x.every((p) => !y.includes(p)) ? [x, y] : undefined;
  }, 30_000, 100, () => JSON.stringify([...assignments]));
  assert.equal(a.length + b.length, 4);
  assert.ok(a.length > 0 && b.length > 0, `both members got partitions: a=${a} b=${b}`);
  const producer = kafka.producer();
  await producer.connect();
  const values = Array.from({ length: 200 }, (_, i) => `g${i}`);
  await producer.send({ topic, messages: values.slice(0, 100).map((value, i) => ({ value, partition: i % 4 })) });
  await waitFor('first 100', () => seen.get('a')!.length + seen.get('b')!.length >= 100, 30_000, 50);
  // Each member only saw its own partitions.
  for (const [name, msgs] of seen) {
    const mine = assignments.get(name)!;
    assert.ok(msgs.every((m) => mine.includes(m.partition)), `${name} read only its partitions`);
  }
  // b leaves: a must take over all four partitions and read the rest.
  await members[1].disconnect();
  await waitFor('a to own all partitions', () => (assignments.get('a') ?? []).length === 4, 30_000, 50);
  await producer.send({ topic, messages: values.slice(100).map((value, i) => ({ value, partition: i % 4 })) });
  await waitFor('all 200', () => new Set([...seen.get('a')!, ...seen.get('b')!].map((m) => m.value)).size === 200, 30_000, 50);
  const all = [...seen.get('a')!, ...seen.get('b')!].map((m) => m.value);
  assert.equal(new Set(all).size, 200, 'nothing lost');
  assert.ok(seen.get('a')!.filter((m) => Number(m.value.slice(1)) >= 100).length === 100, 'a read every later message');
  await members[0].disconnect();
  await producer.disconnect();
});

test('admin: createTopics, listTopics, fetchTopicMetadata, fetchOffsets, deleteTopics', async () => {
  const admin = kafka.admin();
  await admin.connect();
  assert.equal(await admin.createTopics({ topics: [{ topic: 'adm-1', numPartitions: 2 }, { topic: 'adm-2' }] }), true);
  assert.equal(await admin.createTopics({ topics: [{ topic: 'adm-1', numPartitions: 2 }] }), false, 'TOPIC_ALREADY_EXISTS is "false", not an error');
  const list = await admin.listTopics();
  assert.ok(list.includes('adm-1') && list.includes('adm-2'));
  const md = await admin.fetchTopicMetadata({ topics: ['adm-1', 'adm-2'] });
  const byName = new Map(md.topics.map((t) => [t.name, t]));
  assert.equal(byName.get('adm-1')!.partitions.length, 2);
  assert.equal(byName.get('adm-2')!.partitions.length, tb.config.topics.defaultPartitions);
  for (const p of byName.get('adm-1')!.partitions) {
    assert.equal(p.leader, tb.config.nodeId);
    assert.deepEqual(p.replicas, [tb.config.nodeId]);
    assert.deepEqual(p.isr, [tb.config.nodeId]);
  }
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic: 'adm-1', messages: [{ value: 'a', partition: 0 }, { value: 'b', partition: 0 }, { value: 'c', partition: 1 }] });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: 'adm-group' });
  await consumer.connect();
  await consumer.subscribe({ topic: 'adm-1', fromBeginning: true });
  let n = 0;
  await new Promise<void>((resolve) => void consumer.run({ autoCommitThreshold: 1, eachMessage: async () => void (++n === 3 && resolve()) }));
  await consumer.disconnect();
  const offsets = await admin.fetchOffsets({ groupId: 'adm-group', topics: ['adm-1'] });
  const parts = new Map(offsets[0].partitions.map((p) => [p.partition, p.offset]));
  assert.equal(parts.get(0), '2');
  assert.equal(parts.get(1), '1');
  const topicOffsets = await admin.fetchTopicOffsets('adm-1');
  assert.deepEqual(topicOffsets.map((p) => [p.partition, p.low, p.high]).sort(), [[0, '0', '2'], [1, '0', '1']]);
  await admin.deleteTopics({ topics: ['adm-2'] });
  assert.ok(!(await admin.listTopics()).includes('adm-2'));
  await assert.rejects(admin.fetchTopicMetadata({ topics: ['adm-2'] }));
  await admin.disconnect();
});
