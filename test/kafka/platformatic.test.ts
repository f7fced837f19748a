/**
 * @platformatic/kafka 1.35.0 as a black box against Meridian (issue 11). It is a current
 * pure-JavaScript client that speaks only flexible versions (Metadata v9+, Produce v7+,
 * Fetch v12+, ListOffsets v5+, JoinGroup v6+, OffsetCommit/OffsetFetch v8+, CreateTopics v7,
 * DeleteTopics v6, DescribeConfigs v2+, ...) and picks, per API, the highest version that
 * both it and the broker's ApiVersions answer support; so every case here goes through the
 * client's own public API and nothing else, and fails where the broker serves too little.
 *
 * Covered: admin create/list/delete topics; produce with keys, headers and timestamps to
 * several partitions and read back byte for byte; a two-member consumer group (assignment,
 * rebalance on join and on leave, every record once); committed offsets resumed after a
 * reconnect; topic configs described, altered and described again; offsets by timestamp;
 * gzip, snappy and lz4 batches; a transactional producer told that transactions are not
 * supported, and an idempotent one;
 * and the same records read identically by KafkaJS and kcat, and theirs by this client.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import {
  Admin,
  ConfigResourceTypes,
  Consumer,
  consumerFetchesChannel,
  IncrementalAlterConfigOperationTypes,
  ListOffsetTimestamps,
  MessagesStreamModes,
  ProduceAcks,
  Producer,
  type Message,
  type MessagesStream,
  type MessageToProduce,
} from '@platformatic/kafka';
import { Kafka, logLevel } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { byPartition, KcatClient } from '../helpers/kcat-client.js';
import type { KcatMessage } from '../helpers/kcat-json.js';
import { readStoredBatches } from '../helpers/log-batches.js';
import { waitFor } from '../helpers/wait.js';
import { rng, randomBytes } from '../helpers/seeded-random.js';

let tb: TestBroker;
let kc: KcatClient;
/** Closers of every client a case made, for the ones a failed case left open. */
const open: Array<() => Promise<void>> = [];

before(async () => {
  tb = await startBroker();
  kc = new KcatClient(tb.bootstrap);
});

after(async () => {
  // close() of an already closed client returns at once.
  for (const close of open.splice(0).reverse()) await close().catch(() => {});
  await tb?.cleanup();
});

/** A fresh client id per client, so broker logs tell them apart. */
const base = (): { clientId: string; bootstrapBrokers: string[] } => ({ clientId: `plt-${randomUUID().slice(0, 8)}`, bootstrapBrokers: [tb.bootstrap] });

/** close(true): also closes the client's streams. Its promise form is typed only for close(). */
function forceClose(c: Producer | Consumer): Promise<void> {
  return new Promise((resolve, reject) => c.close(true, (err) => (err ? reject(err) : resolve())));
}

function admin(): Admin {
  const a = new Admin(base());
  open.push(() => a.close());
  return a;
}

function producer(): Producer {
  const p = new Producer(base());
  open.push(() => forceClose(p));
  return p;
}

/** The client defaults, except a short fetch long-poll (closing waits for the fetch in flight) and quick group timers. */
function consumer(groupId: string): Consumer {
  const c = new Consumer({ ...base(), groupId, maxWaitTime: 200, sessionTimeout: 20_000, heartbeatInterval: 500, rebalanceTimeout: 20_000 });
  open.push(() => forceClose(c));
  return c;
}

async function createTopic(name: string, partitions: number, configs: Array<{ name: string; value: string }> = []): Promise<void> {
  const a = admin();
  try {
    const created = await a.createTopics({ topics: [name], partitions, replicas: 1, configs });
    assert.equal(created.length, 1, `createTopics answers for ${name}`);
    assert.equal(created[0].name, name);
    assert.equal(created[0].partitions, partitions, `${name} created with ${partitions} partitions`);
  } finally {
    await a.close();
  }
}

/** What a record carries, as comparable strings: hex bytes, "none" for an absent key/value. */
interface Seen {
  partition: number;
  offset: bigint;
  key: string;
  value: string;
  headers: Array<[string, string]>;
  timestamp: bigint;
}

const hex = (b: Buffer | null | undefined): string => (b === undefined || b === null ? 'none' : b.toString('hex'));

function seen(m: Message): Seen {
  return { partition: m.partition, offset: m.offset, key: hex(m.key), value: hex(m.value), headers: [...m.headers].map(([k, v]) => [hex(k), hex(v)]), timestamp: m.timestamp };
}

/** A record as kcat -J printed it (header names are UTF-8 strings there). */
function seenByKcat(m: KcatMessage): Seen {
  assert.equal(m.tstype, 'create', `kcat ${m.partition}/${m.offset}: CreateTime`);
  return { partition: m.partition, offset: BigInt(m.offset), key: hex(m.key), value: hex(m.payload), headers: m.headers.map(([k, v]) => [hex(Buffer.from(k, 'utf8')), hex(v)]), timestamp: BigInt(m.ts) };
}



const T0 = 1_700_000_000_000n;

/** `count` records spread round-robin over `partitions`, with binary keys, values and headers. */
function records(topic: string, seed: number, count: number, partitions: number): Array<MessageToProduce & { partition: number; key: Buffer; value: Buffer; headers: Map<Buffer, Buffer>; timestamp: bigint }> {
  const next = rng(seed);
  return Array.from({ length: count }, (_, i) => {
    const headers = new Map<Buffer, Buffer>();
    if (i % 3 === 1) headers.set(Buffer.from('trace-id'), Buffer.from(`t-${seed}-${i}`));
    if (i % 3 === 2) {
      headers.set(Buffer.from('bin'), Buffer.concat([Buffer.from([0, 0xff, 0x0a]), randomBytes(next, 8)]));
      headers.set(Buffer.from('ünï'), Buffer.from('välue €', 'utf8'));
    }
    return { topic, partition: i % partitions, key: Buffer.from(`key-${seed}-${i}`), value: randomBytes(next, 1 + Math.floor(next() * 1500)), headers, timestamp: T0 + BigInt(i) * 1000n };
  });
}

function expected(produced: ReturnType<typeof records>, from: Map<number, bigint> = new Map()): Seen[] {
  const next = new Map(from);
  return produced.map((r) => {
    const offset = next.get(r.partition) ?? 0n;
    next.set(r.partition, offset + 1n);
    return { partition: r.partition, offset, key: hex(r.key), value: hex(r.value), headers: [...r.headers].map(([k, v]) => [hex(k), hex(v)]), timestamp: r.timestamp };
  });
}

/** Per partition, in the order received. */
function perPartition(list: Seen[]): Map<number, Seen[]> {
  const m = new Map<number, Seen[]>();
  for (const s of [...list].sort((a, b) => a.partition - b.partition)) m.set(s.partition, [...(m.get(s.partition) ?? []), s]);
  return m;
}

/** The partitions' ends (next offset to be written), as the client's ListOffsets(latest) sees them. */
async function ends(topic: string): Promise<Map<number, bigint>> {
  const c = consumer(`ends-${randomUUID()}`);
  try {
    const got = await c.listOffsets({ topics: [topic] });
    return new Map((got.get(topic) ?? []).map((o, p) => [p, o] as const));
  } finally {
    await forceClose(c);
  }
}

/** Partitions not yet read to `end`, as "p at X of Y". */
function behind(got: Seen[], end: Map<number, bigint>): string[] {
  const next = new Map<number, bigint>();
  for (const s of got) if (s.offset + 1n > (next.get(s.partition) ?? 0n)) next.set(s.partition, s.offset + 1n);
  return [...end].filter(([p, e]) => (next.get(p) ?? 0n) < e).map(([p, e]) => `${p} at ${next.get(p) ?? 0n} of ${e}`);
}

/**
 * Every record of `topic` as a fresh group of this client reads it from the earliest
 * offset, up to `end` (next offset per partition). Ends on the positions reached, not on a
 * timer: a duplicate arrives before the end and shows, a missing record is never waited out.
 */
async function readAll(topic: string, end: Map<number, bigint>): Promise<Seen[]> {
  const c = consumer(`read-${randomUUID()}`);
  const got: Seen[] = [];
  const stream = await c.consume({ topics: [topic], mode: MessagesStreamModes.EARLIEST, autocommit: false });
  stream.on('data', (m: Message) => got.push(seen(m)));
  try {
    await waitFor(`@platformatic/kafka to read ${topic} to its end`, () => behind(got, end).length === 0, 60_000, 20, () => `(${got.length} records; ${behind(got, end).join(', ')})`);
  } finally {
    await stream.close();
    await forceClose(c);
  }
  return got;
}

function assertSameRecords(got: Seen[], want: Seen[], who: string): void {
  const g = perPartition(got);
  const w = perPartition(want);
  assert.deepEqual([...g.keys()].sort(), [...w.keys()].sort(), `${who}: partitions with records`);
  for (const [p, list] of w) {
    const gl = g.get(p) ?? [];
    assert.deepEqual(
      gl.map((s) => s.offset),
      list.map((s) => s.offset),
      `${who}: partition ${p} offsets, in order, each once`,
    );
    list.forEach((s, i) => assert.deepStrictEqual(gl[i], s, `${who}: partition ${p} offset ${s.offset}: key, value, headers and timestamp`));
  }
}

test('admin: a created topic is listed with its partitions, and a deleted one is gone', { timeout: 60_000 }, async () => {
  const topic = 'plt-admin';
  await createTopic(topic, 3);
  const a = admin();
  try {
    assert.ok((await a.listTopics()).includes(topic), 'listTopics shows the new topic');
    const md = await a.metadata({ topics: [topic], forceUpdate: true });
    const t = md.topics.get(topic);
    assert.ok(t, 'metadata has the topic');
    assert.equal(t.partitionsCount, 3, 'three partitions');
    assert.match(t.id, /^[0-9a-f-]{36}$/i, 'the topic has an id');
    assert.notEqual(t.id, '00000000-0000-0000-0000-000000000000', 'the topic id is not the zero UUID');
    for (const p of t.partitions) assert.ok(md.brokers.has(p.leader), `partition leader ${p.leader} is a known broker`);

    await a.deleteTopics({ topics: [topic] });
    await waitFor(`${topic} to leave listTopics`, async () => !(await a.listTopics()).includes(topic));
    // Metadata for a deleted topic fails: the client turns the broker's UNKNOWN_TOPIC_OR_PARTITION (3) into this message.
    await assert.rejects(a.metadata({ topics: [topic], forceUpdate: true }), { message: `Unknown topic ${topic}.` });
  } finally {
    await a.close();
  }
});

test('produce to three partitions with keys, headers and timestamps; a consumer from the earliest offset reads every record once, byte-identical, in order', { timeout: 90_000 }, async () => {
  const topic = 'plt-produce';
  await createTopic(topic, 3);
  const produced = records(topic, 1, 300, 3);
  const p = producer();
  try {
    for (let s = 0; s < 3; s++) {
      const chunk = produced.slice(s * 100, (s + 1) * 100);
      const result = await p.send({ messages: chunk, acks: ProduceAcks.ALL });
      const offsets = new Map((result.offsets ?? []).map((o) => [o.partition, o.offset] as const));
      for (let part = 0; part < 3; part++) {
        // Each send holds 33 or 34 records per partition; the first of each chunk lands at the previous end.
        const before = produced.slice(0, s * 100).filter((r) => r.partition === part).length;
        assert.equal(offsets.get(part), BigInt(before), `send ${s}: partition ${part} acknowledged at offset ${before}`);
      }
    }
  } finally {
    await p.close();
  }
  const want = expected(produced);
  const end = await ends(topic);
  assert.deepEqual(end, new Map([[0, 100n], [1, 100n], [2, 100n]]), 'ListOffsets(latest) after 300 records over 3 partitions');
  assertSameRecords(await readAll(topic, end), want, '@platformatic/kafka');
});

/**
 * Each consumer's Fetch requests, through the client's documented diagnostics channel
 * (`plt:kafka:consumer:fetches`). A consumer stream pushes what a Fetch returns even when
 * the Fetch was sent before a rebalance moved those partitions away (so does any Kafka
 * client; KIP-429 exists for it), so a test that wants each record read by exactly one
 * member produces only once every member has completed a Fetch sent after its new
 * assignment. One Fetch per broker is in flight at a time, so a completed later Fetch
 * means the earlier ones are done.
 */
class FetchWatch {
  readonly #started = new Map<unknown, number>();
  readonly #completed = new Map<unknown, number>();
  readonly #seq = new WeakMap<object, number>();
  /** Each Fetch's generation and requested offsets, in order (for a failure's message). */
  readonly requested: string[] = [];
  readonly #handlers = {
    start: (ctx: { client: unknown; options?: { topics?: Array<{ partitions: Array<{ partition: number; fetchOffset: bigint }> }> } }) => {
      const c = ctx.client as { generationId?: number; memberId?: string };
      const asked = (ctx.options?.topics ?? []).flatMap((t) => t.partitions.map((p) => `${p.partition}@${p.fetchOffset}`));
      this.requested.push(`member …${String(c.memberId).slice(-6)} generation ${c.generationId}: ${asked.join(' ')}`);
      const n = (this.#started.get(ctx.client) ?? 0) + 1;
      this.#started.set(ctx.client, n);
      this.#seq.set(ctx, n);
    },
    asyncEnd: (ctx: { client: unknown }) => {
      const n = this.#seq.get(ctx) ?? 0;
      if (n > (this.#completed.get(ctx.client) ?? 0)) this.#completed.set(ctx.client, n);
    },
    end: () => {},
    asyncStart: () => {},
    error: () => {},
  };

  constructor() {
    consumerFetchesChannel.subscribe(this.#handlers);
  }

  /** Waits until `c` has completed a Fetch that it started after this call. */
  async nextFetch(c: Consumer, who: string): Promise<void> {
    const mark = this.#started.get(c) ?? 0;
    await waitFor(`${who} to complete a Fetch sent after its new assignment`, () => (this.#completed.get(c) ?? 0) > mark, 30_000, 10);
  }

  close(): void {
    consumerFetchesChannel.unsubscribe(this.#handlers);
  }
}

test('a consumer group of two members: both get partitions, a rebalance when the second joins and when it leaves, every record consumed exactly once', { timeout: 180_000 }, async () => {
  const topic = 'plt-group';
  const groupId = 'plt-group-g';
  await createTopic(topic, 4);
  const p = producer();
  const delivered = new Map<string, string[]>(); // "p/offset" → members that got it
  const commits: Array<Promise<void>> = [];
  const received = { a: [] as Seen[], b: [] as Seen[] };
  const fetches = new FetchWatch();

  async function member(name: 'a' | 'b'): Promise<{ c: Consumer; stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> }> {
    const c = consumer(groupId);
    const stream = await c.consume({ topics: [topic], mode: MessagesStreamModes.COMMITTED, fallbackMode: 'earliest', autocommit: false });
    stream.on('data', (m: Message) => {
      const k = `${m.partition}/${m.offset}`;
      delivered.set(k, [...(delivered.get(k) ?? []), name]);
      received[name].push(seen(m));
      // Committed as processed (offset + 1), so the next owner of the partition starts after it.
      // A failed commit fails the next committedUpTo (which awaits them all), not the process.
      const done = m.commit() as Promise<void>;
      done.catch(() => {});
      commits.push(done);
    });
    return { c, stream };
  }
  const partitionsOf = (c: Consumer): number[] => (c.assignments ?? []).filter((x) => x.topic === topic).flatMap((x) => x.partitions).sort();
  const produce = async (seed: number): Promise<void> => {
    const r = await p.send({ messages: records(topic, seed, 80, 4), acks: ProduceAcks.ALL });
    assert.equal(r.offsets?.length, 4, 'one acknowledgement per partition');
  };
  const allDelivered = (n: number) => () => delivered.size === n;
  const committedUpTo = async (c: Consumer, target: bigint): Promise<boolean> => {
    await Promise.all(commits);
    const off = await c.listCommittedOffsets({ topics: [{ topic, partitions: [0, 1, 2, 3] }] });
    return (off.get(topic) ?? []).every((o) => o === target);
  };

  try {
    const a = await member('a');
    await waitFor('member a to be assigned all 4 partitions', () => partitionsOf(a.c).length === 4, 60_000, 50, () => `(a: ${partitionsOf(a.c)})`);
    const generationAlone = a.c.generationId;

    await produce(10);
    await waitFor('member a to receive the first 80 records', allDelivered(80), 60_000, 20, () => `(${delivered.size})`);
    await waitFor('a to have committed offset 20 on every partition', () => committedUpTo(a.c, 20n));

    const b = await member('b');
    await waitFor(
      'a rebalance that splits the 4 partitions between a and b',
      () => {
        const pa = partitionsOf(a.c);
        const pb = partitionsOf(b.c);
        return pa.length > 0 && pb.length > 0 && [...pa, ...pb].sort().join() === '0,1,2,3' && a.c.generationId === b.c.generationId;
      },
      90_000,
      50,
      () => `(a: [${partitionsOf(a.c)}] gen ${a.c.generationId}, b: [${partitionsOf(b.c)}] gen ${b.c.generationId})`,
    );
    assert.ok(a.c.generationId > generationAlone, `the group moved to a new generation (${generationAlone} → ${a.c.generationId})`);
    const ofA = new Set(partitionsOf(a.c));
    const ofB = new Set(partitionsOf(b.c));
    await fetches.nextFetch(a.c, 'member a');
    await fetches.nextFetch(b.c, 'member b');

    received.a.length = 0;
    await produce(11);
    await waitFor('the second 80 records to be delivered across a and b', allDelivered(160), 60_000, 20, () => `(${delivered.size})`);
    assert.ok(received.a.every((s) => ofA.has(s.partition)), `a read only its partitions [${[...ofA]}]`);
    assert.ok(received.b.every((s) => ofB.has(s.partition)), `b read only its partitions [${[...ofB]}]`);
    assert.equal(received.a.length + received.b.length, 80);
    assert.ok(received.a.length > 0 && received.b.length > 0, 'both members consumed records');
    await waitFor('a and b to have committed offset 40 on every partition', () => committedUpTo(a.c, 40n));

    // b leaves: a takes every partition back and resumes where b committed.
    await b.stream.close();
    await b.c.close();
    await waitFor('a to be assigned all 4 partitions again after b left', () => partitionsOf(a.c).length === 4, 90_000, 50, () => `(a: [${partitionsOf(a.c)}])`);
    received.a.length = 0;
    await produce(12);
    await waitFor('the third 80 records to be delivered to a', allDelivered(240), 60_000, 20, () => `(${delivered.size})`);
    // A failure here names what a's Fetches asked for: a request below the offsets committed
    // (40 on every partition, checked above) is the client's; one at or above them, the broker's.
    assert.equal(received.a.length, 80, `a alone read the third 80; Fetches sent: ${fetches.requested.slice(-30).join('; ')}`);
    await waitFor('a to have committed offset 60 on every partition', () => committedUpTo(a.c, 60n));

    const dups = [...delivered].filter(([, who]) => who.length > 1);
    assert.deepEqual(dups, [], 'no record delivered twice across the members');
    for (let part = 0; part < 4; part++) {
      const offsets = [...delivered.keys()].filter((k) => k.startsWith(`${part}/`)).map((k) => Number(k.split('/')[1])).sort((x, y) => x - y);
      assert.deepEqual(offsets, Array.from({ length: 60 }, (_, i) => i), `partition ${part}: offsets 0..59 each consumed once`);
    }
    await a.stream.close();
    await a.c.close();
  } finally {
    fetches.close();
    await p.close();
  }
});

test('committed offsets survive a reconnect: the group resumes at the next record, none re-read, none skipped', { timeout: 120_000 }, async () => {
  const topic = 'plt-resume';
  const groupId = 'plt-resume-g';
  await createTopic(topic, 2);
  const produced = records(topic, 20, 80, 2);
  const p = producer();
  try {
    await p.send({ messages: produced, acks: ProduceAcks.ALL });
  } finally {
    await p.close();
  }
  const want = expected(produced);
  // First session: process partition 0 up to offset 14 and partition 1 up to offset 24, commit, leave.
  const stopAt = new Map([
    [0, 14n],
    [1, 24n],
  ]);
  const first = consumer(groupId);
  const got1: Seen[] = [];
  const stream1 = await first.consume({ topics: [topic], mode: MessagesStreamModes.EARLIEST, autocommit: false });
  const commits: Array<Promise<void>> = [];
  stream1.on('data', (m: Message) => {
    if (m.offset > stopAt.get(m.partition)!) return;
    got1.push(seen(m));
    commits.push(m.commit() as Promise<void>);
  });
  await waitFor('the first session to process its records', () => got1.length === 40, 60_000, 20, () => `(${got1.length})`);
  await Promise.all(commits);
  const committed = await first.listCommittedOffsets({ topics: [{ topic, partitions: [0, 1] }] });
  assert.deepEqual(committed.get(topic), [15n, 25n], 'OffsetFetch returns the committed next offsets');
  await stream1.close();
  await first.close();

  // Second session, a new connection: starts at the committed offsets.
  const second = consumer(groupId);
  const got2: Seen[] = [];
  const stream2 = await second.consume({ topics: [topic], mode: MessagesStreamModes.COMMITTED, fallbackMode: 'fail', autocommit: false });
  stream2.on('data', (m: Message) => got2.push(seen(m)));
  const end = new Map([
    [0, 40n],
    [1, 40n],
  ]);
  try {
    await waitFor('the second session to read both partitions to their end', () => behind(got2, end).length === 0, 60_000, 20, () => `(${behind(got2, end).join(', ')})`);
  } finally {
    await stream2.close();
    await second.close();
  }
  assertSameRecords(
    got2,
    want.filter((s) => s.offset > stopAt.get(s.partition)!),
    'second session',
  );
  assertSameRecords([...got1, ...got2], want, 'both sessions together');
});

test('topic configs: set at creation, described, altered (incremental and whole) and described again', { timeout: 60_000 }, async () => {
  const topic = 'plt-configs';
  await createTopic(topic, 1, [
    { name: 'retention.ms', value: '86400000' },
    { name: 'segment.bytes', value: '1048576' },
  ]);
  const a = admin();
  const describe = async (): Promise<Map<string, { value: string | null; source: number }>> => {
    const [res] = await a.describeConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic }] });
    assert.equal(res.resourceName, topic);
    return new Map(res.configs.map((c) => [c.name, { value: c.value ?? null, source: c.configSource }]));
  };
  try {
    const initial = await describe();
    assert.deepEqual(initial.get('retention.ms'), { value: '86400000', source: 1 }, 'retention.ms as created (source TOPIC_CONFIG)');
    assert.deepEqual(initial.get('segment.bytes'), { value: '1048576', source: 1 }, 'segment.bytes as created (source TOPIC_CONFIG)');
    const retentionBytes = initial.get('retention.bytes');
    assert.ok(retentionBytes, 'an unset config is described too');
    assert.notEqual(retentionBytes.source, 1, 'an unset config is not a topic override');

    await a.incrementalAlterConfigs({
      resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configs: [{ name: 'retention.ms', configOperation: IncrementalAlterConfigOperationTypes.SET, value: '3600000' }] }],
    });
    const afterIncremental = await describe();
    assert.deepEqual(afterIncremental.get('retention.ms'), { value: '3600000', source: 1 }, 'retention.ms after IncrementalAlterConfigs SET');
    assert.deepEqual(afterIncremental.get('segment.bytes'), { value: '1048576', source: 1 }, 'an incremental change leaves the other overrides alone');

    // AlterConfigs replaces the topic's whole override set (Kafka's semantics): segment.bytes returns to its default.
    await a.alterConfigs({ resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configs: [{ name: 'retention.ms', value: '7200000' }] }] });
    const afterAlter = await describe();
    assert.deepEqual(afterAlter.get('retention.ms'), { value: '7200000', source: 1 }, 'retention.ms after AlterConfigs');
    assert.notEqual(afterAlter.get('segment.bytes')?.source, 1, 'segment.bytes is no longer a topic override after AlterConfigs without it');

    await assert.rejects(
      a.incrementalAlterConfigs({
        resources: [{ resourceType: ConfigResourceTypes.TOPIC, resourceName: topic, configs: [{ name: 'cleanup.policy', configOperation: IncrementalAlterConfigOperationTypes.SET, value: 'compact' }] }],
      }),
      (err: Error & { errors?: Array<{ response?: { responses?: Array<{ errorCode: number; errorMessage: string | null }> } }> }) => {
        // The client wraps the broker's answer: INVALID_CONFIG (40) with a message saying why.
        const answer = err.errors?.flatMap((e) => e.response?.responses ?? [])[0];
        assert.equal(answer?.errorCode, 40, `cleanup.policy=compact refused with INVALID_CONFIG; got ${err.message}`);
        assert.match(answer?.errorMessage ?? '', /compaction is not supported/);
        return true;
      },
    );
    assert.notEqual((await describe()).get('cleanup.policy')?.value, 'compact', 'the refused cleanup.policy did not take effect');
  } finally {
    await a.close();
  }
});

// Kafka answers the first record at or after the time, inside a compressed batch too (it
// decompresses the batch: LogSegment.findOffsetByTimestamp), so both are asked.
for (const compression of ['none', 'gzip'] as const) {
  test(`offsets by timestamp (${compression}): the first offset whose timestamp is at or after the one asked for`, { timeout: 60_000 }, async () => {
    const topic = `plt-timestamps-${compression}`;
    await createTopic(topic, 1);
    // Ten records at T0, T0+1s, ..., T0+9s, in three sends (three batches).
    const produced = records(topic, 30, 10, 1);
    const p = producer();
    try {
      for (const chunk of [produced.slice(0, 3), produced.slice(3, 7), produced.slice(7)]) await p.send({ messages: chunk, acks: ProduceAcks.ALL, compression });
    } finally {
      await p.close();
    }
    const a = admin();
    try {
      const ask = async (timestamp: bigint): Promise<{ offset: bigint; timestamp: bigint }> => {
        const [t] = await a.listOffsets({ topics: [{ name: topic, partitions: [{ partitionIndex: 0, timestamp }] }] });
        assert.equal(t.name, topic);
        return { offset: t.partitions[0].offset, timestamp: t.partitions[0].timestamp };
      };
      assert.deepEqual(await ask(T0 - 5000n), { offset: 0n, timestamp: T0 }, 'before every record: offset 0');
      assert.deepEqual(await ask(T0 + 2000n), { offset: 2n, timestamp: T0 + 2000n }, 'exactly a record timestamp: that record');
      assert.deepEqual(await ask(T0 + 2500n), { offset: 3n, timestamp: T0 + 3000n }, 'between two records: the later one');
      assert.deepEqual(await ask(T0 + 6001n), { offset: 7n, timestamp: T0 + 7000n }, 'across a batch boundary');
      assert.equal((await ask(T0 + 9001n)).offset, -1n, 'after the last record: no offset (-1)');
      assert.equal((await ask(ListOffsetTimestamps.EARLIEST)).offset, 0n, 'earliest');
      assert.equal((await ask(ListOffsetTimestamps.LATEST)).offset, 10n, 'latest');
    } finally {
      await a.close();
    }
    // The consumer's own by-timestamp lookup agrees.
    const c = consumer(`ts-${randomUUID()}`);
    try {
      const byTime = await c.listOffsets({ topics: [topic], timestamp: T0 + 4500n });
      assert.deepEqual(byTime.get(topic), [5n], 'Consumer.listOffsets by timestamp');
    } finally {
      await forceClose(c);
    }
  });
}

// zstd is left out: the client compresses it with node:zlib's zstd, which Node 20 lacks.
for (const [compression, codec] of [
  ['gzip', 1],
  ['snappy', 2],
  ['lz4', 3],
] as const) {
  test(`${compression}: batches compressed by @platformatic/kafka are stored as sent (codec ${codec}) and read back byte-identical by it and by kcat`, { timeout: 60_000 }, async () => {
    const topic = `plt-${compression}`;
    await createTopic(topic, 1);
    const produced = records(topic, 60 + codec, 60, 1);
    const p = producer();
    try {
      await p.send({ messages: produced.slice(0, 30), acks: ProduceAcks.ALL, compression });
      await p.send({ messages: produced.slice(30), acks: ProduceAcks.ALL, compression });
    } finally {
      await forceClose(p);
    }
    assert.deepEqual(
      (await readStoredBatches(tb.dataDir, topic, 0)).map((b) => [b.codec, b.recordsCount]),
      [
        [codec, 30],
        [codec, 30],
      ],
      'two compressed batches stored verbatim',
    );
    const want = expected(produced);
    assertSameRecords(await readAll(topic, new Map([[0, 60n]])), want, `@platformatic/kafka (${compression})`);
    assertSameRecords((await kc.consumeAll(topic)).map(seenByKcat), want, `kcat (${compression})`);
  });
}

test('transactions: a transactional producer is told they are not supported and writes nothing; an idempotent producer without a transactional id stores every record once', { timeout: 60_000 }, async () => {
  const topic = 'plt-transactions';
  await createTopic(topic, 1);
  const tx = new Producer({ ...base(), idempotent: true, transactionalId: 'plt-tx' });
  open.push(() => forceClose(tx));
  type Wrapped = Error & { response?: { coordinators?: Array<{ errorCode: number; errorMessage: string | null }> }; errors?: Array<{ apiCode?: number }> };
  await assert.rejects(
    async () => {
      const t = await tx.beginTransaction();
      await t.send({ messages: [{ topic, value: Buffer.from('in a transaction') }] });
      await t.commit();
    },
    (err: Wrapped) => {
      // The client shows the broker's FindCoordinator answer for the transactional id.
      const answer = err.response?.coordinators?.[0];
      assert.match(answer?.errorMessage ?? '', /transactions are not supported/, `the error says why; got ${err.message}`);
      assert.notEqual(answer?.errorCode, 53, 'not TRANSACTIONAL_ID_AUTHORIZATION_FAILED');
      assert.ok(!(err.errors ?? []).some((e) => e.apiCode === 53), 'no authorization failure anywhere in the error');
      return true;
    },
  );
  await forceClose(tx);
  assert.deepEqual(await ends(topic), new Map([[0, 0n]]), 'the transactional producer wrote nothing');

  const produced = records(topic, 50, 50, 1);
  const p = new Producer({ ...base(), idempotent: true });
  open.push(() => forceClose(p));
  for (let s = 0; s < 5; s++) await p.send({ messages: produced.slice(s * 10, (s + 1) * 10) });
  assert.equal(typeof p.producerId, 'bigint', 'InitProducerId gave the idempotent producer an id');
  await forceClose(p);
  const end = await ends(topic);
  assert.deepEqual(end, new Map([[0, 50n]]), '50 records stored');
  assertSameRecords(await readAll(topic, end), expected(produced), 'idempotent producer');
});

test('cross-client: records produced by @platformatic/kafka read identically by KafkaJS and kcat, and theirs by @platformatic/kafka', { timeout: 120_000 }, async () => {
  // @platformatic/kafka → KafkaJS and kcat.
  const topic = 'plt-cross-out';
  await createTopic(topic, 2);
  const produced = records(topic, 40, 120, 2);
  const p = producer();
  try {
    await p.send({ messages: produced, acks: ProduceAcks.ALL });
  } finally {
    await p.close();
  }
  const want = expected(produced);
  const fromKafkajs: Seen[] = (await readTopicToEnd(tb.bootstrap, topic)).map((m) => ({
    partition: m.partition,
    offset: BigInt(m.offset),
    key: hex(m.key),
    value: hex(m.value),
    // KafkaJS groups headers by name; these records never repeat a name, so the record order is kept.
    headers: Object.entries(m.headers).map(([k, v]) => [hex(Buffer.from(k, 'utf8')), hex(v as Buffer)]),
    timestamp: BigInt(m.timestamp),
  }));
  assertSameRecords(fromKafkajs, want, 'KafkaJS');
  assertSameRecords((await kc.consumeAll(topic)).map(seenByKcat), want, 'kcat');

  // KafkaJS and kcat → @platformatic/kafka, on one topic.
  const inTopic = 'plt-cross-in';
  await createTopic(inTopic, 2);
  const kafka = new Kafka({ clientId: 'plt-cross', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING });
  const kp = kafka.producer();
  const next = rng(41);
  const fromJs = Array.from({ length: 60 }, (_, i) => ({ partition: i % 2, key: randomBytes(next, 12), value: randomBytes(next, 1 + Math.floor(next() * 800)), headers: { 'js-h': randomBytes(next, 6) }, timestamp: String(T0 + BigInt(i)) }));
  await kp.connect();
  try {
    await kp.send({ topic: inTopic, acks: -1, messages: fromJs });
  } finally {
    await kp.disconnect();
  }
  // kcat: text records into partition 1 after KafkaJS's, with a header.
  const fromKcatIn = Array.from({ length: 20 }, (_, i) => ({ key: `kcat-key-${i}`, value: `kcat value ${i} ü €` }));
  await kc.produce(inTopic, fromKcatIn.map((r) => `${r.key}\t${r.value}\n`).join(''), ['-p', '1', '-K', '\t', '-H', 'origin=kcat']);

  const end = await ends(inTopic);
  assert.deepEqual(end, new Map([[0, 30n], [1, 50n]]), 'ListOffsets(latest) after KafkaJS and kcat produced');
  const got = perPartition(await readAll(inTopic, end));
  const jsWant = [0, 1].map((part) => fromJs.filter((r) => r.partition === part));
  for (const part of [0, 1]) {
    const list = got.get(part) ?? [];
    assert.deepEqual(
      list.map((s) => s.offset),
      Array.from({ length: Number(end.get(part)) }, (_, i) => BigInt(i)),
      `partition ${part}: every offset once, in order`,
    );
    jsWant[part].forEach((r, i) => {
      assert.deepStrictEqual(
        list[i],
        { partition: part, offset: BigInt(i), key: hex(r.key), value: hex(r.value), headers: [[hex(Buffer.from('js-h')), hex(r.headers['js-h'])]], timestamp: BigInt(r.timestamp) },
        `KafkaJS record at ${part}/${i}`,
      );
    });
  }
  const kcatGot = (got.get(1) ?? []).slice(30);
  assert.deepEqual(
    kcatGot.map((s) => [s.key, s.value, s.headers]),
    fromKcatIn.map((r) => [hex(Buffer.from(r.key)), hex(Buffer.from(r.value, 'utf8')), [[hex(Buffer.from('origin')), hex(Buffer.from('kcat'))]]]),
    'kcat records in partition 1 after KafkaJS’s',
  );
  // And kcat agrees on what is there: the same partition sizes.
  const kcatView = byPartition(await kc.consumeAll(inTopic));
  assert.deepEqual([kcatView.get(0)?.length, kcatView.get(1)?.length], [30, 50], 'kcat reads the same counts');
});
