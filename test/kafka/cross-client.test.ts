/**
 * Records written by one real client and read by the other must come back bit for bit:
 * kcat (librdkafka 2.0.2) → KafkaJS 2.2.4 and KafkaJS → kcat, with binary keys and values
 * (NUL, 0xff, invalid UTF-8, newlines), null versus empty keys and values, and headers
 * (binary, UTF-8, empty, null-valued, repeated names) in record order.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CompressionTypes, Kafka, logLevel, type IHeaders, type Message } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { assertContiguous, byPartition, KcatClient } from '../helpers/kcat-client.js';
import type { KcatMessage } from '../helpers/kcat-json.js';
import { collectMessages } from '../helpers/kafkajs-collect.js';
import { readStoredBatches } from '../helpers/log-batches.js';
import { rng, randomBytes } from '../helpers/seeded-random.js';

let broker: TestBroker;
let kc: KcatClient;
let kafka: Kafka;

before(async () => {
  broker = await startBroker();
  kc = new KcatClient(broker.bootstrap);
  kafka = new Kafka({ clientId: 'cross-client', brokers: [broker.bootstrap], logLevel: logLevel.NOTHING });
});

after(async () => {
  await broker?.cleanup();
});



const show = (b: Buffer | null | undefined): string => (b === null ? 'null' : b === undefined ? 'undefined' : `${b.length}B:${b.subarray(0, 24).toString('hex')}${b.length > 24 ? '…' : ''}`);

// kcat splits stdin on -D and each message on -K; both accept \xNN escapes (kcat.c
// parse_delim) but no NUL. Keys and values below never contain 0x1e or 0x1f, so neither
// delimiter can occur inside them, while every other byte value (NUL, 0xff, \n, '"') can.
const MSG_DELIM = Buffer.from([0x1e, 0xff, 0x1e]);
const KEY_DELIM = Buffer.from([0x1f, 0xff, 0x1f]);
const DELIM_ARGS = ['-D', '\\x1e\\xff\\x1e', '-K', '\\x1f\\xff\\x1f'];
const NOT_DELIM = new Set([0x1e, 0x1f]);

interface KcatProduced {
  key: Buffer | null;
  value: Buffer;
  /** What KafkaJS hands its application: header values by name, repeated names as arrays. */
  headers: IHeaders;
}

/** `-H` arguments for `headers` (a null value is `-H name`), and the IHeaders KafkaJS should decode. */
function kcatHeaders(headers: Array<[string, string | null]>): { args: string[]; expected: IHeaders } {
  const args: string[] = [];
  const expected: Record<string, Buffer | null | Array<Buffer | null>> = {};
  for (const [name, value] of headers) {
    args.push('-H', value === null ? name : `${name}=${value}`);
    const v = value === null ? null : Buffer.from(value, 'utf8');
    const prev = expected[name];
    expected[name] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  // KafkaJS types header values as Buffer | string, but hands out null for a null value.
  return { args, expected: expected as IHeaders };
}

function kcatMessages(seed: number, count: number, headers: IHeaders): KcatProduced[] {
  const next = rng(seed);
  const out: KcatProduced[] = [];
  for (let i = 0; i < count; i++) {
    const value = i % 10 === 2 ? Buffer.alloc(0) : randomBytes(next, 1 + Math.floor(next() * 2000), NOT_DELIM);
    const key = i % 10 === 0 ? null : i % 10 === 1 ? Buffer.alloc(0) : randomBytes(next, 1 + Math.floor(next() * 40), NOT_DELIM);
    out.push({ key, value, headers });
  }
  return out;
}

function kcatInput(messages: KcatProduced[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of messages) {
    // No key delimiter: kcat produces a null key. Delimiter first: an empty key.
    if (m.key !== null) parts.push(m.key, KEY_DELIM);
    parts.push(m.value, MSG_DELIM);
  }
  return Buffer.concat(parts);
}

const identity = (key: Buffer | null, value: Buffer | null): string => `${key === null ? 'null' : key.toString('hex')}|${value === null ? 'null' : value.toString('hex')}`;

test('kcat → KafkaJS: binary keys and values, null/empty keys, and -H headers arrive byte-identical, once each, in order', { timeout: 60_000 }, async () => {
  const topic = 'from-kcat';
  const a = kcatHeaders([
    ['trace-id', 'abc-123'],
    ['ünïcödé', 'välue € 漢字'],
    ['empty', ''],
    ['no-value', null],
    ['dup', '1'],
    ['dup', '2'],
  ]);
  const b = kcatHeaders([['source', 'kcat-b']]);
  const produced = [...kcatMessages(1, 200, a.expected), ...kcatMessages(2, 100, b.expected)];
  await kc.produce(topic, kcatInput(produced.slice(0, 200)), [...DELIM_ARGS, ...a.args]);
  await kc.produce(topic, kcatInput(produced.slice(200)), [...DELIM_ARGS, ...b.args]);

  const index = new Map(produced.map((m, i) => [identity(m.key, m.value), i]));
  assert.equal(index.size, produced.length, 'test data: every message is distinct');

  const consumed = await collectMessages(kafka, { groupId: 'from-kcat-g', topics: [topic], count: produced.length });
  const seen = new Set<number>();
  for (const m of consumed) {
    const i = index.get(identity(m.key, m.value));
    assert.ok(i !== undefined, `${m.partition}/${m.offset}: key ${show(m.key)} value ${show(m.value)} was never produced`);
    assert.ok(!seen.has(i), `${m.partition}/${m.offset}: message #${i} delivered twice`);
    seen.add(i);
    assert.deepStrictEqual(m.headers, produced[i].headers, `${m.partition}/${m.offset}: headers of message #${i}`);
  }
  assert.equal(consumed.length, produced.length, `consumed ${consumed.length}, produced ${produced.length}`);

  const parts = new Map<number, number[]>();
  for (const m of consumed) parts.set(m.partition, [...(parts.get(m.partition) ?? []), m.offset]);
  for (const [p, offsets] of parts) {
    assert.deepEqual(offsets, offsets.map((_, j) => j), `partition ${p}: offsets delivered in order from 0 without gaps`);
    const order = consumed.filter((m) => m.partition === p).map((m) => index.get(identity(m.key, m.value))!);
    assert.deepEqual(order, [...order].sort((x, y) => x - y), `partition ${p}: produce order kept`);
  }
});

interface JsProduced {
  partition: number;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
  headers: IHeaders;
  /** Headers as they appear in the record: KafkaJS writes arrays as repeated names in place. */
  headerList: Array<[string, Buffer]>;
}

function kafkajsMessages(seed: number, count: number): JsProduced[] {
  const next = rng(seed);
  const out: JsProduced[] = [];
  for (let i = 0; i < count; i++) {
    const key = i % 6 === 0 ? null : i % 6 === 1 ? Buffer.alloc(0) : i % 6 === 2 ? Buffer.from(`str-key-${i}-ü`, 'utf8') : randomBytes(next, 1 + Math.floor(next() * 64));
    const value = i % 7 === 0 ? null : i % 7 === 1 ? Buffer.alloc(0) : randomBytes(next, 1 + Math.floor(next() * 3000));
    let headers: IHeaders = {};
    if (i % 4 === 1) headers = { 'h-bin': Buffer.concat([Buffer.from([0, 0xff, 0x0a, 0x22, 0x5c]), randomBytes(next, 16)]), 'h-str': `text ü ${i}` };
    if (i % 4 === 2) headers = { multi: ['a', Buffer.from([0, 0xff]), 'c'], 'h-empty': Buffer.alloc(0) };
    if (i % 4 === 3) headers = { x: randomBytes(next, 1 + Math.floor(next() * 100)) };
    const headerList: Array<[string, Buffer]> = [];
    for (const [name, v] of Object.entries(headers)) {
      for (const one of Array.isArray(v) ? v : [v]) if (one !== undefined) headerList.push([name, Buffer.isBuffer(one) ? one : Buffer.from(one, 'utf8')]);
    }
    out.push({ partition: i % 3, key, value, timestamp: String(1_700_000_000_000 + i * 1000), headers, headerList });
  }
  return out;
}

function toMessage(m: JsProduced): Message {
  return { partition: m.partition, key: m.key, value: m.value, timestamp: m.timestamp, headers: m.headers };
}

function assertSameAsProduced(produced: JsProduced[], consumed: KcatMessage[]): void {
  assert.equal(consumed.length, produced.length, `kcat read ${consumed.length} messages, KafkaJS produced ${produced.length}`);
  assertContiguous(consumed);
  const got = byPartition(consumed);
  for (const p of new Set(produced.map((m) => m.partition))) {
    const want = produced.filter((m) => m.partition === p);
    const list = got.get(p) ?? [];
    assert.equal(list.length, want.length, `partition ${p}`);
    want.forEach((w, j) => {
      const c = list[j];
      const at = `partition ${p} offset ${c.offset}`;
      assert.ok(c.key === null ? w.key === null : w.key !== null && c.key.equals(w.key), `${at}: key ${show(c.key)}, produced ${show(w.key)}`);
      assert.ok(c.payload === null ? w.value === null : w.value !== null && c.payload.equals(w.value), `${at}: value ${show(c.payload)}, produced ${show(w.value)}`);
      assert.deepStrictEqual(c.headers, w.headerList, `${at}: headers`);
      assert.equal(c.tstype, 'create', `${at}: timestamp type`);
      assert.equal(String(c.ts), w.timestamp, `${at}: CreateTime kept`);
    });
  }
}

test('KafkaJS → kcat: binary keys and values, null and empty ones, headers and timestamps are byte-identical', { timeout: 60_000 }, async () => {
  const topic = 'from-kafkajs';
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  const produced = kafkajsMessages(3, 240);
  const producer = kafka.producer();
  await producer.connect();
  try {
    const sentTo = [0, 0, 0];
    for (let s = 0; s < 4; s++) {
      const chunk = produced.slice(s * 60, (s + 1) * 60);
      const meta = await producer.send({ topic, acks: -1, messages: chunk.map(toMessage) });
      for (const r of meta) {
        assert.equal(r.errorCode, 0);
        assert.equal(r.baseOffset, String(sentTo[r.partition]), `send ${s}: partition ${r.partition} acknowledged at the next offset`);
      }
      for (const m of chunk) sentTo[m.partition]++;
    }
  } finally {
    await producer.disconnect();
  }

  assertSameAsProduced(produced, await kc.consumeAll(topic));

  // kcat's own view of null versus empty: %K/%S print -1 for null, else the byte length.
  const lengths = (await kc.run(['-C', '-t', topic, '-o', 'beginning', '-e', '-f', '%p %o %K %S\n'])).stdout.toString('latin1').trim().split('\n');
  const expectLen = (b: Buffer | null): number => (b === null ? -1 : b.length);
  const want = new Map<string, string>();
  const perPartition = [0, 0, 0];
  for (const m of produced) want.set(`${m.partition} ${perPartition[m.partition]++}`, `${expectLen(m.key)} ${expectLen(m.value)}`);
  assert.equal(lengths.length, produced.length);
  for (const line of lengths) {
    const [p, o, k, v] = line.split(' ');
    assert.equal(`${k} ${v}`, want.get(`${p} ${o}`), `kcat -f lengths at ${p}/${o}`);
  }
});

test('KafkaJS gzip → kcat: the compressed batch is stored verbatim (codec 1) and reads back byte-identical', { timeout: 30_000 }, async () => {
  const topic = 'from-kafkajs-gzip';
  const produced = kafkajsMessages(4, 150).map((m) => ({ ...m, partition: 0 }));
  const producer = kafka.producer();
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: produced.slice(0, 75).map(toMessage) });
    await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages: produced.slice(75).map(toMessage) });
  } finally {
    await producer.disconnect();
  }
  const batches = await readStoredBatches(broker.dataDir, topic, 0);
  assert.deepEqual(
    batches.map((b) => [b.codec, b.recordsCount]),
    [
      [1, 75],
      [1, 75],
    ],
  );
  assertSameAsProduced(produced, await kc.consumeAll(topic));
});
