/**
 * The broker through the real kcat 1.7.1 (librdkafka 2.0.2), as a user runs it: metadata,
 * a 100,000-message keyed produce and consume, balanced group consumption that resumes from
 * committed offsets, every compression codec stored verbatim, and the idempotent producer.
 * Every test checks what a user would: bytes equal, counts exact, per-partition order, no
 * duplicates, nothing lost.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { assertContiguous, byPartition, KcatClient } from '../helpers/kcat-client.js';
import { parseKcatJson, type KcatMessage } from '../helpers/kcat-json.js';
import { readStoredBatches } from '../helpers/log-batches.js';

let broker: TestBroker;
let kc: KcatClient;

before(async () => {
  broker = await startBroker();
  kc = new KcatClient(broker.bootstrap);
});

after(async () => {
  await broker?.cleanup();
});

interface Produced {
  key: string;
  value: string;
}

/** Distinct keys; values of varied length (0 to ~300 bytes), some empty, some with ':' and UTF-8. */
function keyedMessages(count: number, tag: string): Produced[] {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789 ,.;:-_=+ééü€';
  const out: Produced[] = [];
  for (let i = 0; i < count; i++) {
    const key = `${tag}-key-${String(i).padStart(6, '0')}`;
    let value = '';
    if (i % 13 !== 5) {
      const len = (i * 7919) % 300;
      value = `${tag}-value-${i}|`;
      for (let j = 0; value.length < len; j++) value += alphabet[(i + j * 31) % alphabet.length];
    }
    out.push({ key, value });
  }
  return out;
}

/** `key:value\n` lines for `kcat -P -K:`; kcat splits on the first ':' and keys hold none. */
function keyedInput(messages: Produced[]): Buffer {
  return Buffer.from(messages.map((m) => `${m.key}:${m.value}\n`).join(''), 'utf8');
}

/**
 * Asserts that `consumed` holds every produced message exactly once with identical key and
 * value bytes, that offsets are contiguous per partition, and that each partition holds its
 * messages in produce order.
 */
function assertExactlyOnceInOrder(produced: Produced[], consumed: KcatMessage[], offsetFrom: (p: number) => number = () => 0): void {
  const index = new Map(produced.map((m, i) => [m.key, i]));
  const seen = new Set<string>();
  for (const m of consumed) {
    assert.ok(m.key !== null, `message at ${m.partition}/${m.offset} has a null key`);
    const key = m.key.toString('utf8');
    const i = index.get(key);
    assert.ok(i !== undefined, `unexpected key ${JSON.stringify(key)} at ${m.partition}/${m.offset}`);
    assert.ok(!seen.has(key), `duplicate: ${key} delivered twice (again at ${m.partition}/${m.offset})`);
    seen.add(key);
    assert.ok(m.payload !== null, `${key}: value is null, produced ${JSON.stringify(produced[i].value)}`);
    assert.ok(m.payload.equals(Buffer.from(produced[i].value, 'utf8')), `${key}: value differs: got ${JSON.stringify(m.payload.toString())}, produced ${JSON.stringify(produced[i].value)}`);
  }
  const lost = produced.filter((m) => !seen.has(m.key));
  assert.equal(lost.length, 0, `${lost.length} produced messages never consumed, e.g. ${lost.slice(0, 3).map((m) => m.key).join(', ')}`);
  assert.equal(consumed.length, produced.length);
  assertContiguous(consumed, offsetFrom);
  for (const [p, list] of byPartition(consumed)) {
    const order = list.map((m) => index.get(m.key!.toString('utf8'))!);
    const bad = order.findIndex((v, i) => i > 0 && v < order[i - 1]);
    assert.equal(bad, -1, `partition ${p}: message #${bad} (produced #${order[bad]}) comes after produced #${order[bad - 1]}`);
  }
}

test('kcat -L lists the broker at its advertised 127.0.0.1 address and every topic with its partitions', { timeout: 30_000 }, async () => {
  await kc.produce('meta-auto', 'k:v\n', ['-K:']);
  const kafka = new Kafka({ clientId: 'kcat-test-admin', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    assert.equal(await admin.createTopics({ topics: [{ topic: 'meta-admin', numPartitions: 5 }], waitForLeaders: true }), true);
  } finally {
    await admin.disconnect();
  }

  const text = (await kc.run(['-L'])).stdout.toString('utf8');
  assert.match(text, new RegExp(`^ 1 brokers:\\n  broker ${broker.config.nodeId} at 127\\.0\\.0\\.1:${broker.port} \\(controller\\)$`, 'm'));
  assert.doesNotMatch(text, /0\.0\.0\.0/);
  assert.match(text, /topic "meta-auto" with 3 partitions:/);
  assert.match(text, /topic "meta-admin" with 5 partitions:/);

  const md = JSON.parse((await kc.run(['-L', '-J'])).stdout.toString('utf8')) as {
    controllerid: number;
    brokers: Array<{ id: number; name: string }>;
    topics: Array<{ topic: string; error?: string; partitions: Array<{ partition: number; leader: number; error?: string; replicas: Array<{ id: number }>; isrs: Array<{ id: number }> }> }>;
  };
  const id = broker.config.nodeId;
  assert.deepEqual(md.brokers, [{ id, name: `127.0.0.1:${broker.port}` }]);
  assert.equal(md.controllerid, id);
  const topics = new Map(md.topics.map((t) => [t.topic, t]));
  for (const [name, count] of [
    ['meta-auto', 3],
    ['meta-admin', 5],
  ] as const) {
    const t = topics.get(name);
    assert.ok(t, `${name} missing from kcat -L: ${[...topics.keys()].join(', ')}`);
    assert.equal(t.error, undefined, `${name}: ${t.error}`);
    assert.deepEqual(
      t.partitions.map((p) => ({ partition: p.partition, leader: p.leader, error: p.error, replicas: p.replicas, isrs: p.isrs })).sort((a, b) => a.partition - b.partition),
      Array.from({ length: count }, (_, partition) => ({ partition, leader: id, error: undefined, replicas: [{ id }], isrs: [{ id }] })),
    );
  }

  // -L -t names one topic only.
  const one = JSON.parse((await kc.run(['-L', '-J', '-t', 'meta-admin'])).stdout.toString('utf8')) as { topics: Array<{ topic: string; partitions: unknown[] }> };
  assert.deepEqual(
    one.topics.map((t) => [t.topic, t.partitions.length]),
    [['meta-admin', 5]],
  );
});

test('kcat -P -K: of 100,000 keyed messages reads back exactly: same bytes, once each, in order per partition', { timeout: 60_000 }, async () => {
  const topic = 'keyed-100k';
  const produced = keyedMessages(100_000, 'k');
  await kc.produce(topic, keyedInput(produced), ['-K:', '-X', 'acks=all']);

  const consumed = await kc.consumeAll(topic);
  assertExactlyOnceInOrder(produced, consumed);
  const parts = byPartition(consumed);
  assert.deepEqual([...parts.keys()].sort(), [0, 1, 2], 'keys hash over all 3 partitions');
  // Empty values stay empty (not null), and kcat is given a CreateTime timestamp.
  assert.ok(consumed.some((m) => m.payload?.length === 0));
  assert.ok(consumed.every((m) => m.tstype === 'create'));
});

test('kcat -G consumes every message once, commits, and a second run resumes with exactly the new ones', { timeout: 60_000 }, async () => {
  const topic = 'group-resume';
  const group = 'kcat-g1';
  const first = keyedMessages(600, 'g1');
  await kc.produce(topic, keyedInput(first), ['-K:']);

  // -o beginning: a new group would otherwise start at the end (auto.offset.reset=latest).
  // No auto-commit tuning: librdkafka commits the stored offsets when kcat closes the consumer.
  const r1 = await kc.run(['-J', '-G', group, '-o', 'beginning', '-e', topic]);
  const c1 = parseKcatJson(r1.stdout);
  assertExactlyOnceInOrder(first, c1);

  const ends = new Map<number, number>();
  for (const [p, list] of byPartition(c1)) ends.set(p, list[list.length - 1].offset + 1);
  const kafka = new Kafka({ clientId: 'kcat-test-admin', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const committed = await admin.fetchOffsets({ groupId: group, topics: [topic] });
    assert.deepEqual(
      committed[0].partitions.map((p) => [p.partition, Number(p.offset)]).sort((a, b) => a[0] - b[0]),
      [0, 1, 2].map((p) => [p, ends.get(p) ?? 0]),
      'the first run committed the end of every partition',
    );
  } finally {
    await admin.disconnect();
  }

  const second = keyedMessages(250, 'g2');
  await kc.produce(topic, keyedInput(second), ['-K:']);
  const r2 = await kc.run(['-J', '-G', group, '-e', topic]);
  const c2 = parseKcatJson(r2.stdout);
  assertExactlyOnceInOrder(second, c2, (p) => ends.get(p) ?? 0);
});

const CODECS = [
  ['gzip', 1],
  ['snappy', 2],
  ['lz4', 3],
  ['zstd', 4],
] as const;

for (const [codec, id] of CODECS) {
  test(`kcat -z ${codec}: the batches are stored compressed as sent (codec ${id}) and read back byte-identical`, { timeout: 30_000 }, async () => {
    const topic = `codec-${codec}`;
    // librdkafka sends a batch uncompressed when compressing would not make it smaller
    // (rdkafka_msgset_writer.c), and its first batches often hold a single message, so every
    // value is repetitive enough to shrink on its own.
    const produced = keyedMessages(3000, codec).map((m, i) => ({ key: m.key, value: `${m.value}${'compressible-'.repeat(20 + (i % 20))}` }));
    // -d msg: librdkafka logs per batch whether it compressed, for the failure message below.
    const { stderr } = await kc.produce(topic, keyedInput(produced), ['-K:', '-p', '0', '-z', codec, '-d', 'msg']);
    const librdkafkaSays = [
      ...new Set(
        stderr
          .split('\n')
          .filter((l) => /not compressing batch|Produce MessageSet/.test(l))
          .map((l) => l.slice(l.lastIndexOf(']: ') + 3).replace(/\b\d+\b/g, 'N')),
      ),
    ];

    const consumed = await kc.consumeAll(topic);
    assert.ok(consumed.every((m) => m.partition === 0));
    assertExactlyOnceInOrder(produced, consumed);

    const batches = await readStoredBatches(broker.dataDir, topic, 0);
    assert.ok(batches.length > 0, 'partition 0 has stored batches');
    assert.deepEqual(
      batches.map((b) => b.codec),
      batches.map(() => id),
      // librdkafka 2.0.2 sends gzip, snappy and lz4 uncompressed ("Broker does not support
      // compression type") unless the advertised Produce range includes v0 (KAFKA-18659).
      `every stored batch has attributes codec ${id} (${codec}); librdkafka said: ${librdkafkaSays.join(' | ')}`,
    );
    assert.ok(batches.every((b) => b.magic === 2));
    assert.equal(
      batches.reduce((n, b) => n + b.recordsCount, 0),
      produced.length,
    );
    let next = 0n;
    for (const b of batches) {
      assert.equal(b.baseOffset, next, 'stored batches are contiguous');
      assert.equal(b.lastOffsetDelta, b.recordsCount - 1);
      next = b.baseOffset + BigInt(b.lastOffsetDelta) + 1n;
    }
  });
}

test('kcat -X enable.idempotence=true: 10,000 messages stored once each, in order, with contiguous sequences', { timeout: 60_000 }, async () => {
  const topic = 'idempotent';
  const produced = keyedMessages(10_000, 'idem');
  // Small batches so librdkafka pipelines several idempotent requests per partition.
  await kc.produce(topic, keyedInput(produced), ['-K:', '-X', 'enable.idempotence=true', '-X', 'batch.num.messages=100', '-X', 'linger.ms=2']);

  const consumed = await kc.consumeAll(topic);
  assertExactlyOnceInOrder(produced, consumed);

  const pids = new Set<bigint>();
  for (const p of [0, 1, 2]) {
    const batches = await readStoredBatches(broker.dataDir, topic, p);
    assert.ok(batches.length > 1, `partition ${p}: ${batches.length} batches`);
    let seq = 0;
    for (const b of batches) {
      assert.ok(b.producerId >= 0n, `partition ${p}: batch at ${b.baseOffset} has producerId ${b.producerId}`);
      assert.equal(b.producerEpoch, 0);
      assert.equal(b.baseSequence, seq, `partition ${p}: batch at offset ${b.baseOffset} has baseSequence ${b.baseSequence}, expected ${seq}`);
      seq += b.recordsCount;
      pids.add(b.producerId);
    }
    assert.equal(seq, byPartition(consumed).get(p)?.length ?? 0);
  }
  assert.equal(pids.size, 1, 'one producer id for the whole run');
});
