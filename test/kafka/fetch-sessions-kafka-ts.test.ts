/**
 * Incremental fetch sessions (KIP-227) through a real client that uses them: kafka-ts 1.5.0
 * (npm `kafka-ts`, a pure-TypeScript client; its consumer keeps a fetch session per broker:
 * INITIAL on the first fetch, then incremental fetches that list only the partitions whose
 * position moved, and a fresh full fetch after any session error). Of the other clients
 * here, librdkafka (kcat) and KafkaJS always send session id 0 with epoch -1 (sessionless)
 * and @platformatic/kafka sends id 0 with epoch 0 on every fetch and never uses the id it
 * gets back, so none of them would exercise an incremental fetch.
 *
 * One consumer group member reads a 2,000-partition topic: records produced by KafkaJS
 * before it starts and, once it has caught up, to a few partitions while it polls. Checked
 * as a user would: every record once, bytes identical, order kept per partition; and
 * through the broker's counters (and /metrics) that the consumer's polls were incremental
 * and that their answers left out the idle partitions.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { createKafkaClient, setLogger } from 'kafka-ts';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { rng } from '../helpers/seeded-random.js';
import { waitFor } from '../helpers/wait.js';
import { ParsedScrape } from '../admin/prometheus-scrape.js';

const PARTITIONS = 2000;
const TOPIC = 'sessions-many';
const METRICS_MD = new URL('../../src/admin/METRICS.md', import.meta.url);

type Consumer = Awaited<ReturnType<ReturnType<typeof createKafkaClient>['startConsumer']>>;

let tb: TestBroker;
let consumer: Consumer | undefined;
const kafkaLog: string[] = [];

before(async () => {
  // kafka-ts logs JSON to stdout by default; keep its warnings for a failure message instead.
  setLogger({ debug: () => {}, info: () => {}, warn: (m, d) => kafkaLog.push(`warn ${m} ${JSON.stringify(d) ?? ''}`), error: (m, d) => kafkaLog.push(`error ${m} ${String(d)}`) });
  tb = await startBroker({ topics: { autoCreate: false }, groups: { initialRebalanceDelayMs: 0 }, admin: { host: '127.0.0.1', port: 0 } });
});

after(async () => {
  await consumer?.close().catch(() => {});
  await tb?.cleanup();
});

/** A value of 1-300 bytes of UTF-8 text (kafka-ts hands values over as strings), several scripts mixed. */
function valueFor(next: () => number, p: number, i: number): string {
  const alphabet = ['a', 'Z', '0', ' ', 'é', 'ß', 'λ', '中', '🙂', '\n'];
  let s = `${p}/${i}:`;
  const n = Math.floor(next() * 120);
  for (let k = 0; k < n; k++) s += alphabet[Math.floor(next() * alphabet.length)];
  return s;
}

test(`kafka-ts reads ${PARTITIONS} partitions through incremental fetch sessions: every record once, in order, bytes identical; idle partitions left out`, { timeout: 300_000 }, async () => {
  const kjs = new Kafka({ clientId: 'sessions-producer', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kjs.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }] });
  await admin.disconnect();

  const producer = kjs.producer({ idempotent: true });
  await producer.connect();
  const next = rng(227);
  /** What was produced, per partition, in order. */
  const produced: string[][] = Array.from({ length: PARTITIONS }, () => []);
  const send = async (partitions: number[], perPartition: number) => {
    const messages = [];
    for (const p of partitions) {
      for (let i = 0; i < perPartition; i++) {
        const value = valueFor(next, p, produced[p]!.length);
        produced[p]!.push(value);
        messages.push({ partition: p, key: `k${p}`, value });
      }
    }
    // In slices, so one request stays well under the broker's frame limit.
    for (let i = 0; i < messages.length; i += 2000) await producer.send({ topic: TOPIC, acks: -1, messages: messages.slice(i, i + 2000) });
  };
  // Phase 1: every partition has 1-3 records before the consumer starts.
  for (let k = 1; k <= 3; k++) await send([...Array(PARTITIONS).keys()].filter((p) => p % 3 < k), 1);
  const phase1 = produced.reduce((n, p) => n + p.length, 0);

  const received: string[][] = Array.from({ length: PARTITIONS }, () => []);
  const offsets: bigint[][] = Array.from({ length: PARTITIONS }, () => []);
  let total = 0;
  const client = createKafkaClient({ clientId: 'sessions-kafka-ts', bootstrapServers: [{ host: '127.0.0.1', port: tb.port }] });
  consumer = await client.startConsumer({
    groupId: 'sessions-group',
    topics: [TOPIC],
    fromBeginning: true,
    maxWaitMs: 500,
    onBatch: (messages) => {
      for (const m of messages) {
        assert.equal(m.topic, TOPIC);
        received[m.partition]!.push(m.value!);
        offsets[m.partition]!.push(m.offset);
        total++;
      }
    },
  });
  const detail = () => `received ${total}; sessions ${JSON.stringify(tb.broker.fetchSessions.stats())}; client log: ${kafkaLog.slice(-5).join(' | ')}`;
  await waitFor('phase 1 consumed', () => total >= phase1, 180_000, 100, detail);

  // Caught up: the consumer now polls 2,000 idle partitions. Wait for a few incremental
  // polls, then produce to 10 partitions while it polls.
  const idle = tb.broker.fetchSessions.stats();
  await waitFor('idle incremental polls', () => tb.broker.fetchSessions.stats().requests.incremental >= idle.requests.incremental + 3, 60_000, 100, detail);
  const hot = [7, 100, 333, 512, 999, 1000, 1234, 1500, 1777, 1999];
  await send(hot, 5);
  const expected = produced.reduce((n, p) => n + p.length, 0);
  await waitFor('phase 2 consumed', () => total >= expected, 60_000, 100, detail);

  // Every record once, in order, bytes identical, offsets 0.. without gaps.
  assert.equal(total, expected, 'no record twice');
  for (let p = 0; p < PARTITIONS; p++) {
    assert.equal(received[p]!.length, produced[p]!.length, `partition ${p}: count`);
    for (let i = 0; i < produced[p]!.length; i++) {
      assert.ok(Buffer.from(received[p]![i]!, 'utf8').equals(Buffer.from(produced[p]![i]!, 'utf8')), `partition ${p} record ${i}: bytes`);
    }
    assert.deepEqual(offsets[p], produced[p]!.map((_, i) => BigInt(i)), `partition ${p}: offsets in order`);
  }

  // The consumer used sessions: one (or a few, after errors) full fetches and many
  // incremental ones, whose answers left out the idle partitions.
  const st = tb.broker.fetchSessions.stats();
  assert.ok(st.requests.full >= 1, `a full fetch opened the session: ${JSON.stringify(st)}`);
  assert.ok(st.requests.incremental >= 5, `incremental fetches: ${JSON.stringify(st)}`);
  assert.ok(st.requests.incremental > 3 * st.requests.full, `mostly incremental: ${JSON.stringify(st)}`);
  assert.equal(st.requests.sessionless, 0, 'no sessionless fetch');
  assert.ok(st.omittedPartitions >= 3 * PARTITIONS, `idle partitions left out of answers: ${st.omittedPartitions}`);
  assert.ok(st.sentPartitions < st.omittedPartitions / 10, `answers carried few partitions: sent ${st.sentPartitions}, omitted ${st.omittedPartitions}`);
  assert.equal(st.sessions, 1);
  console.log(`# fetch sessions: ${JSON.stringify(st)}`);
  assert.equal(st.partitions, PARTITIONS);

  // The same in /metrics, and every family documented in METRICS.md.
  const scrape = await ParsedScrape.scrape(tb.broker.adminAddress!);
  assert.equal(scrape.value('meridian_kafka_fetch_sessions'), 1);
  assert.equal(scrape.value('meridian_kafka_fetch_session_partitions'), PARTITIONS);
  assert.ok(scrape.value('meridian_kafka_fetch_session_requests_total', { kind: 'incremental' }) >= st.requests.incremental);
  assert.ok(scrape.value('meridian_kafka_fetch_session_partitions_total', { result: 'omitted' }) >= st.omittedPartitions);
  const doc = fs.readFileSync(METRICS_MD, 'utf8');
  const text = await (await fetch(`http://${tb.broker.adminAddress!.host}:${tb.broker.adminAddress!.port}/metrics`)).text();
  const families = [...new Set([...text.matchAll(/^# TYPE (meridian_kafka_fetch_session\w*) /gm)].map((m) => m[1]))];
  assert.equal(families.length, 7, families.join(', '));
  for (const f of families) assert.ok(doc.includes(`| \`${f}\` |`), `${f} is documented in METRICS.md`);

  await producer.disconnect();
  await consumer.close();
  consumer = undefined;
  // The consumer's connection closed: its session is freed.
  await waitFor('the session freed with its connection', () => tb.broker.fetchSessions.stats().sessions === 0);
});
