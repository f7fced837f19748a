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
 *
 * Then the other clients against the same broker, sessions on: what kind of fetch each
 * sends (the broker's counters, as evidence of the claim above), and that each still reads
 * every record once, in order — kcat and KafkaJS sessionless, @platformatic/kafka asking
 * for a session on every fetch yet holding at most one slot per connection.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { createKafkaClient, setLogger } from 'kafka-ts';
import { Consumer as PlatformaticConsumer, MessagesStreamModes, type Message } from '@platformatic/kafka';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
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

  // Caught up: the consumer now polls 2,000 idle partitions. Wait for 5 incremental
  // polls, then produce to 10 partitions while it polls.
  const idle = tb.broker.fetchSessions.stats();
  await waitFor('idle incremental polls', () => tb.broker.fetchSessions.stats().requests.incremental >= idle.requests.incremental + 5, 60_000, 100, detail);
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
  assert.ok(st.requests.incremental >= 6, `incremental fetches (5 idle polls and one with the new data at least): ${JSON.stringify(st)}`);
  assert.ok(st.requests.incremental > 3 * st.requests.full, `mostly incremental: ${JSON.stringify(st)}`);
  assert.equal(st.requests.sessionless, 0, 'no sessionless fetch');
  assert.ok(st.omittedPartitions >= 5 * PARTITIONS, `idle partitions left out of answers: ${st.omittedPartitions}`);
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

test('kcat and KafkaJS fetch sessionless, @platformatic/kafka asks for a session on every fetch and holds one slot; each reads every record once, in order', { timeout: 120_000 }, async () => {
  const topic = 'sessions-clients';
  const kjs = new Kafka({ clientId: 'sessions-clients', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kjs.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 4 }] });
  await admin.disconnect();
  const producer = kjs.producer();
  await producer.connect();
  const want: string[][] = [[], [], [], []];
  const messages = Array.from({ length: 200 }, (_, i) => ({ partition: i % 4, value: `v${i}` }));
  for (const m of messages) want[m.partition]!.push(m.value);
  await producer.send({ topic, acks: -1, messages });
  await producer.disconnect();
  const inOrder = (got: Array<{ partition: number; value: string }>, who: string) => {
    const per: string[][] = [[], [], [], []];
    for (const g of got) per[g.partition]!.push(g.value);
    assert.deepEqual(per, want, `${who}: every record once, in order per partition`);
  };
  const kinds = () => ({ ...tb.broker.fetchSessions.stats().requests });
  const since = (a: ReturnType<typeof kinds>) => {
    const b = kinds();
    return { sessionless: b.sessionless - a.sessionless, full: b.full - a.full, incremental: b.incremental - a.incremental, error: b.error - a.error };
  };

  // kcat (librdkafka 2.0.2): session id 0, epoch -1 on every fetch.
  let k = kinds();
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn('kcat', ['-b', tb.bootstrap, '-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%p %s\\n']);
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`kcat exited ${code}`))));
  });
  inOrder(out.trim().split('\n').map((l) => ({ partition: Number(l.split(' ')[0]), value: l.split(' ')[1]! })), 'kcat');
  let d = since(k);
  assert.ok(d.sessionless >= 1 && d.full === 0 && d.incremental === 0 && d.error === 0, `kcat fetches sessionless: ${JSON.stringify(d)}`);

  // KafkaJS 2.2.4: the same.
  k = kinds();
  inOrder((await readTopicToEnd(tb.bootstrap, topic)).map((m) => ({ partition: m.partition, value: m.value!.toString() })), 'KafkaJS');
  d = since(k);
  assert.ok(d.sessionless >= 1 && d.full === 0 && d.incremental === 0 && d.error === 0, `KafkaJS fetches sessionless: ${JSON.stringify(d)}`);

  // @platformatic/kafka 1.35.0: id 0, epoch 0 (a new session) on every fetch, the id never used.
  k = kinds();
  const base = tb.broker.fetchSessions.stats().sessions;
  const pc = new PlatformaticConsumer({ clientId: 'sessions-plt', bootstrapBrokers: [tb.bootstrap], groupId: 'sessions-plt', maxWaitTime: 100 });
  const got: Array<{ partition: number; value: string }> = [];
  let most = 0;
  try {
    const stream = await pc.consume({ topics: [topic], mode: MessagesStreamModes.EARLIEST, autocommit: false });
    stream.on('data', (m: Message) => got.push({ partition: m.partition, value: String(m.value) }));
    await waitFor('@platformatic/kafka to read every record and poll on', () => {
      most = Math.max(most, tb.broker.fetchSessions.stats().sessions - base);
      return got.length >= 200 && since(k).full >= 5;
    }, 60_000, 20);
    await stream.close();
  } finally {
    await new Promise<void>((resolve) => pc.close(true, () => resolve()));
  }
  inOrder(got, '@platformatic/kafka');
  d = since(k);
  assert.ok(d.full >= 5 && d.incremental === 0 && d.sessionless === 0 && d.error === 0, `@platformatic/kafka asks for a session each fetch, never uses it: ${JSON.stringify(d)}`);
  assert.ok(most <= 2, `sessions held by @platformatic/kafka at once: ${most} (one per connection it fetches on), not one per poll (${d.full})`);
  await waitFor('its sessions freed with its connections', () => tb.broker.fetchSessions.stats().sessions === base);
});
