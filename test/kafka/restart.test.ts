/**
 * A broker restart (same data directory, same port) as clients see it: every message
 * acknowledged before the restart, by KafkaJS with acks=-1 or by kcat, is there exactly once
 * afterwards at the offset it was acknowledged at, new messages continue the offsets, and a
 * consumer group's committed offsets survive, so a member rejoining after the restart
 * resumes at the first uncommitted message and never sees a committed one again.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { assertContiguous, byPartition, KcatClient } from '../helpers/kcat-client.js';
import { collectMessages } from '../helpers/kafkajs-collect.js';

let broker: TestBroker;

before(async () => {
  broker = await startBroker();
});

after(async () => {
  await broker?.cleanup();
});

function kafkaFor(b: TestBroker, clientId: string): Kafka {
  return new Kafka({ clientId, brokers: [b.bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 5 } });
}

async function restart(): Promise<void> {
  const port = broker.port;
  broker = await broker.restart();
  assert.equal(broker.port, port, 'the broker comes back on the same port');
}

async function withAdmin<T>(kafka: Kafka, fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

async function committedOffsets(kafka: Kafka, groupId: string, topic: string): Promise<Array<[number, number]>> {
  const r = await withAdmin(kafka, (admin) => admin.fetchOffsets({ groupId, topics: [topic] }));
  assert.equal(r.length, 1);
  return r[0].partitions.map((p) => [p.partition, Number(p.offset)] as [number, number]).sort((a, b) => a[0] - b[0]);
}

test('messages acknowledged to KafkaJS (acks=-1) and kcat are all there exactly once after a restart, and offsets continue', { timeout: 60_000 }, async () => {
  const topic = 'durable';
  const kafka = kafkaFor(broker, 'restart-producer');
  await withAdmin(kafka, (admin) => admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true }));

  /** Per partition, the value expected at each offset, in acknowledgement order. */
  const expected: string[][] = [[], [], []];
  const producer = kafka.producer();
  await producer.connect();
  try {
    for (let s = 0; s < 5; s++) {
      const messages = Array.from({ length: 90 }, (_, i) => ({ partition: i % 3, key: `js-${s}-${i}`, value: `kafkajs send ${s} message ${i} ${'x'.repeat(i)}` }));
      const meta = await producer.send({ topic, acks: -1, messages });
      for (const r of meta) {
        assert.equal(r.errorCode, 0);
        assert.equal(r.baseOffset, String(expected[r.partition].length), `send ${s}: acknowledged base offset of partition ${r.partition}`);
      }
      for (const m of messages) expected[m.partition].push(m.value);
    }
  } finally {
    await producer.disconnect();
  }
  const kc = new KcatClient(broker.bootstrap);
  for (let p = 0; p < 3; p++) {
    const values = Array.from({ length: 200 }, (_, i) => `kcat partition ${p} message ${i}`);
    await kc.produce(topic, values.map((v) => `${v}\n`).join(''), ['-p', String(p), '-X', 'acks=all']);
    expected[p].push(...values);
  }

  await restart();

  const afterRestart = await new KcatClient(broker.bootstrap).consumeAll(topic);
  assertContiguous(afterRestart);
  const got = byPartition(afterRestart);
  for (let p = 0; p < 3; p++) {
    const values = (got.get(p) ?? []).map((m) => m.payload?.toString('utf8'));
    assert.equal(values.length, expected[p].length, `partition ${p}: ${values.length} messages after the restart, ${expected[p].length} acknowledged`);
    assert.deepEqual(values, expected[p], `partition ${p}: every acknowledged message at its acknowledged offset`);
  }

  // New writes continue the log rather than overwrite it.
  const kc2 = new KcatClient(broker.bootstrap);
  await kc2.produce(topic, 'after restart\n', ['-p', '1']);
  const all = await kc2.consumeAll(topic);
  assertContiguous(all);
  const p1 = byPartition(all).get(1) ?? [];
  assert.equal(p1.length, expected[1].length + 1);
  assert.equal(p1[p1.length - 1].offset, expected[1].length);
  assert.equal(p1[p1.length - 1].payload?.toString(), 'after restart');
});

test('a consumer group resumes after a restart exactly after its committed offsets; fetchOffsets still reports them', { timeout: 60_000 }, async () => {
  const topic = 'resume';
  const groupId = 'resume-g';
  const perPartition = 40;
  const commitAt = new Map([
    [0, 15],
    [1, 27],
  ]);
  let kafka = kafkaFor(broker, 'restart-group');
  await withAdmin(kafka, (admin) => admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true }));
  const producer = kafka.producer();
  await producer.connect();
  try {
    const messages = [0, 1].flatMap((partition) => Array.from({ length: perPartition }, (_, i) => ({ partition, value: `p${partition}-m${i}` })));
    await producer.send({ topic, acks: -1, messages });
  } finally {
    await producer.disconnect();
  }

  // First member: processes each partition up to its commit point, commits exactly there
  // from inside eachBatch (it is a member of the current generation), pauses the partition
  // and never resolves anything beyond it.
  const firstRun = new Map<number, number[]>([
    [0, []],
    [1, []],
  ]);
  const committed = new Set<number>();
  let allCommitted!: () => void;
  const bothCommitted = new Promise<void>((resolve) => (allCommitted = resolve));
  const consumer = kafka.consumer({ groupId });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: true,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary, pause }) => {
        const target = commitAt.get(batch.partition)!;
        if (committed.has(batch.partition)) return;
        for (const m of batch.messages) {
          const offset = Number(m.offset);
          if (offset >= target) break;
          firstRun.get(batch.partition)!.push(offset);
          resolveOffset(m.offset);
        }
        if (firstRun.get(batch.partition)!.length === target) {
          await commitOffsetsIfNecessary({ topics: [{ topic, partitions: [{ partition: batch.partition, offset: String(target) }] }] });
          committed.add(batch.partition);
          pause();
          if (committed.size === commitAt.size) allCommitted();
        }
      },
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      bothCommitted,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`first member did not reach its commit points: ${JSON.stringify([...firstRun])}`)), 30_000);
      }),
    ]).finally(() => clearTimeout(timer));
  } finally {
    await consumer.disconnect();
  }
  for (const [p, target] of commitAt) {
    assert.deepEqual(firstRun.get(p), Array.from({ length: target }, (_, i) => i), `first member, partition ${p}: offsets 0..${target - 1} once each`);
  }
  assert.deepEqual(await committedOffsets(kafka, groupId, topic), [...commitAt], 'committed offsets before the restart');

  await restart();
  kafka = kafkaFor(broker, 'restart-group');
  assert.deepEqual(await committedOffsets(kafka, groupId, topic), [...commitAt], 'admin.fetchOffsets after the restart');

  // fromBeginning only applies without a committed offset: a lost commit would show up
  // here as offset 0 being redelivered.
  const remaining = [...commitAt].reduce((n, [, c]) => n + perPartition - c, 0);
  const second = await collectMessages(kafka, { groupId, topics: [topic], count: remaining, fromBeginning: true, timeoutMs: 30_000 });
  for (const [p, target] of commitAt) {
    const got = second.filter((m) => m.partition === p);
    assert.equal(got[0]?.offset, target, `partition ${p}: the rejoined member starts at the first uncommitted offset`);
    assert.deepEqual(
      got.map((m) => m.offset),
      Array.from({ length: perPartition - target }, (_, i) => target + i),
      `partition ${p}: offsets ${target}..${perPartition - 1} once each, nothing committed redelivered`,
    );
    assert.deepEqual(
      got.map((m) => m.value?.toString()),
      Array.from({ length: perPartition - target }, (_, i) => `p${p}-m${target + i}`),
    );
  }
  assert.equal(second.length, remaining);
  assert.deepEqual(await committedOffsets(kafka, groupId, topic), [
    [0, perPartition],
    [1, perPartition],
  ], 'the rejoined member committed what it consumed');
});
