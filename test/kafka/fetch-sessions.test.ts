/**
 * Incremental fetch sessions (KIP-227), WIRE-LEVEL: these tests drive the session state
 * machine over a raw socket with the project's own Fetch codec (test/helpers/raw-kafka.ts),
 * because no client available here lets a test choose the session id and epoch it sends,
 * forget partitions, or use another connection's session. The real client that uses sessions
 * (kafka-ts) is exercised in fetch-sessions-kafka-ts.test.ts.
 *
 * Covered, at Fetch v7, v11, v12 (topic names) and v13, v17 (topic ids): INITIAL opens a
 * session; an incremental fetch adds, updates (a rewind) and forgets partitions; idle
 * partitions are left out of its answer, new data on a partition the request did not list
 * is in it; a long-poll with an empty request wakes on an append to any session partition;
 * wrong epoch, unknown id, another connection's id (no data, cannot close it), close with
 * epoch -1; a v12 session used at v13 (FETCH_SESSION_TOPIC_ID_ERROR); a topic deleted under
 * a v13+ session (UNKNOWN_TOPIC_ID); a full cache (sessionless answer, then eviction of the
 * smallest session for a larger one); a closed connection frees its session. The idle
 * eviction rule (least recently used, after fetchSessionEvictionMs) is checked on the
 * cache itself with a controlled clock.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { FetchSessions } from '../../src/broker/kafka/fetch-sessions.js';
import type { FetchRequest } from '../../src/protocol/kafka/messages/fetch.js';
import { decodeRecords, encodeBatch, storedBatches } from '../../src/storage/record-batch.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-kafka.js';
import { waitFor } from '../helpers/wait.js';

const ZERO = '00000000-0000-0000-0000-000000000000';
const FETCH_SESSION_ID_NOT_FOUND = 70;
const INVALID_FETCH_SESSION_EPOCH = 71;
const FETCH_SESSION_TOPIC_ID_ERROR = 106;
const UNKNOWN_TOPIC_ID = 100;

let tb: TestBroker;
let c: RawClient;
/** A second connection, for produces while `c` waits on a long-poll, and for the other-connection checks. */
let other: RawClient;
const open: RawClient[] = [];

before(async () => {
  tb = await startBroker({ topics: { autoCreate: false } });
  c = await RawClient.connect(tb.port);
  other = await RawClient.connect(tb.port);
});
after(async () => {
  for (const x of [c, other, ...open]) x?.close();
  await tb?.cleanup();
});

interface Part {
  partition: number;
  offset: bigint;
  maxBytes?: number;
}
interface FetchArgs {
  sessionId: number;
  epoch: number;
  topics?: Array<{ topic: string; parts: Part[] }>;
  forgotten?: Array<{ topic: string; partitions: number[] }>;
  maxWaitMs?: number;
}

const idOf = (topic: string) => tb.broker.topics.getTopic(topic)?.id ?? ZERO;

function fetchBody(a: FetchArgs): FetchRequest {
  return {
    clusterId: null,
    replicaId: -1,
    replicaState: { replicaId: -1, replicaEpoch: -1n },
    maxWaitMs: a.maxWaitMs ?? 0,
    minBytes: 1,
    maxBytes: 1 << 20,
    isolationLevel: 0,
    sessionId: a.sessionId,
    sessionEpoch: a.epoch,
    topics: (a.topics ?? []).map((t) => ({
      topic: t.topic,
      topicId: idOf(t.topic),
      partitions: t.parts.map((p) => ({ partition: p.partition, currentLeaderEpoch: -1, fetchOffset: p.offset, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: p.maxBytes ?? 1 << 20, replicaDirectoryId: ZERO })),
    })),
    forgottenTopicsData: (a.forgotten ?? []).map((t) => ({ topic: t.topic, topicId: idOf(t.topic), partitions: t.partitions })),
    rackId: '',
  };
}

interface Answer {
  errorCode: number;
  sessionId: number;
  /** "partition:errorCode:highWatermark:values", sorted; values are the records' values joined by '|'. */
  parts: string[];
}

function summarize(body: any, version: number, topic: string): Answer {
  const parts: string[] = [];
  for (const t of body.responses) {
    if (version >= 13) assert.equal(t.topicId, idOf(topic), 'the answer names the topic by id');
    else assert.equal(t.topic, topic);
    for (const p of t.partitions) {
      const values = p.records && p.records.length > 0 ? storedBatches(p.records).flatMap((b) => decodeRecords(b.buf).map((r) => r.value?.toString() ?? 'null')) : [];
      parts.push(`${p.partitionIndex}:${p.errorCode}:${p.highWatermark}:${values.join('|')}`);
    }
  }
  return { errorCode: body.errorCode, sessionId: body.sessionId, parts: parts.sort() };
}

async function fetch(client: RawClient, version: number, topic: string, a: FetchArgs): Promise<Answer> {
  const r = await client.request(ApiKey.Fetch, version, fetchBody(a));
  return summarize(r.body, version, topic);
}

async function createTopic(name: string, partitions: number): Promise<void> {
  const r = await other.request(ApiKey.CreateTopics, 4, { topics: [{ name, numPartitions: partitions, replicationFactor: 1, assignments: [], configs: [] }], timeoutMs: 5000, validateOnly: false });
  assert.equal(r.body.topics[0].errorCode, 0, `create ${name}`);
}

async function produce(topic: string, partition: number, ...values: string[]): Promise<void> {
  const records = encodeBatch({ records: values.map((v) => ({ value: Buffer.from(v) })) });
  const r = await other.request(ApiKey.Produce, 9, { transactionalId: null, acks: -1, timeoutMs: 5000, topicData: [{ name: topic, partitionData: [{ index: partition, records }] }] });
  assert.equal(r.body.responses[0].partitionResponses[0].errorCode, 0, `produce to ${topic}-${partition}`);
}

const all = (topic: string, parts: Part[]) => [{ topic, parts }];

for (const v of [7, 11, 12, 13, 17]) {
  test(`Fetch v${v}: a session from INITIAL through incremental fetches (added, updated, forgotten, idle left out, long-poll on any partition) to its close`, async () => {
    const topic = `sessions-v${v}`;
    await createTopic(topic, 6);
    for (let p = 0; p < 6; p++) await produce(topic, p, `p${p}-0`);
    const before = tb.broker.fetchSessions.stats();

    // INITIAL (id 0, epoch 0): a full answer for partitions 0-3 and a new session id.
    const full = await fetch(c, v, topic, { sessionId: 0, epoch: 0, topics: all(topic, [0, 1, 2, 3].map((p) => ({ partition: p, offset: 0n }))) });
    assert.equal(full.errorCode, 0);
    assert.ok(full.sessionId > 0, `a session id, got ${full.sessionId}`);
    assert.deepEqual(full.parts, ['0:0:1:p0-0', '1:0:1:p1-0', '2:0:1:p2-0', '3:0:1:p3-0']);
    const S = full.sessionId;

    // Epoch 1: the consumer moved 0-3 to offset 1 and adds partition 4. Only 4 has news.
    const inc1 = await fetch(c, v, topic, { sessionId: S, epoch: 1, topics: all(topic, [...[0, 1, 2, 3].map((p) => ({ partition: p, offset: 1n })), { partition: 4, offset: 0n }]) });
    assert.deepEqual(inc1, { errorCode: 0, sessionId: S, parts: ['4:0:1:p4-0'] }, 'idle partitions 0-3 are left out');

    // Epoch 2: only the changed position of partition 4. Nothing new anywhere: an empty answer.
    const inc2 = await fetch(c, v, topic, { sessionId: S, epoch: 2, topics: all(topic, [{ partition: 4, offset: 1n }]) });
    assert.deepEqual(inc2, { errorCode: 0, sessionId: S, parts: [] });

    // New data on partition 2, which the request does not list: it is in the answer.
    await produce(topic, 2, 'p2-1');
    const inc3 = await fetch(c, v, topic, { sessionId: S, epoch: 3 });
    assert.deepEqual(inc3, { errorCode: 0, sessionId: S, parts: ['2:0:2:p2-1'] });

    // A long-poll that lists only partition 2's new position wakes on an append to
    // partition 3 (a session partition the request does not name), long before max wait.
    const t0 = Date.now();
    const waiting = c.request(ApiKey.Fetch, v, fetchBody({ sessionId: S, epoch: 4, topics: all(topic, [{ partition: 2, offset: 2n }]), maxWaitMs: 30_000 }));
    await waitFor('the long-poll to be waiting', () => tb.broker.fetchSessions.stats().requests.incremental - before.requests.incremental >= 4);
    await produce(topic, 3, 'p3-1');
    const woke = summarize((await waiting).body, v, topic);
    assert.deepEqual(woke, { errorCode: 0, sessionId: S, parts: ['3:0:2:p3-1'] });
    assert.ok(Date.now() - t0 < 20_000, `woke on the append, not at max wait (${Date.now() - t0} ms)`);

    // Forget partition 0 (and move 3 on); then data on 0 and 1: only 1 is answered.
    const inc5 = await fetch(c, v, topic, { sessionId: S, epoch: 5, topics: all(topic, [{ partition: 3, offset: 2n }]), forgotten: [{ topic, partitions: [0] }] });
    assert.deepEqual(inc5.parts, []);
    await produce(topic, 0, 'p0-1');
    await produce(topic, 1, 'p1-1');
    const inc6 = await fetch(c, v, topic, { sessionId: S, epoch: 6 });
    assert.deepEqual(inc6, { errorCode: 0, sessionId: S, parts: ['1:0:2:p1-1'] }, 'a forgotten partition is not read');

    // Updated position: the consumer rewinds partition 1 to 0 (a seek) and reads both again.
    const inc7 = await fetch(c, v, topic, { sessionId: S, epoch: 7, topics: all(topic, [{ partition: 1, offset: 0n }]) });
    assert.deepEqual(inc7.parts, ['1:0:2:p1-0|p1-1']);
    // ...and re-adding the forgotten partition 0 reads it from where the request says.
    const inc8 = await fetch(c, v, topic, { sessionId: S, epoch: 8, topics: all(topic, [{ partition: 1, offset: 2n }, { partition: 0, offset: 1n }]) });
    assert.deepEqual(inc8.parts, ['0:0:2:p0-1']);

    // A wrong epoch (a replay of 8, or one from the future): INVALID_FETCH_SESSION_EPOCH,
    // nothing read; the session stays and the right epoch still works.
    for (const epoch of [8, 10]) assert.deepEqual(await fetch(c, v, topic, { sessionId: S, epoch }), { errorCode: INVALID_FETCH_SESSION_EPOCH, sessionId: 0, parts: [] }, `epoch ${epoch}`);
    // An id this broker never gave out: FETCH_SESSION_ID_NOT_FOUND.
    const unknown = S === 0x7ffffffe ? 1 : S + 1;
    assert.deepEqual(await fetch(c, v, topic, { sessionId: unknown, epoch: 1 }), { errorCode: FETCH_SESSION_ID_NOT_FOUND, sessionId: 0, parts: [] });

    // Another connection naming this session: as if unknown, with the right epoch too; it
    // reads nothing through it, and its "close" (epoch -1) closes nothing.
    await produce(topic, 5, 'p5-1');
    const stolen = await fetch(other, v, topic, { sessionId: S, epoch: 9 });
    assert.deepEqual(stolen, { errorCode: FETCH_SESSION_ID_NOT_FOUND, sessionId: 0, parts: [] }, 'another connection cannot use the session');
    const otherClose = await fetch(other, v, topic, { sessionId: S, epoch: -1, topics: all(topic, [{ partition: 5, offset: 0n }]) });
    assert.deepEqual(otherClose, { errorCode: 0, sessionId: 0, parts: ['5:0:2:p5-0|p5-1'] }, 'a sessionless full fetch for the other connection');
    const inc9 = await fetch(c, v, topic, { sessionId: S, epoch: 9, topics: all(topic, [{ partition: 0, offset: 2n }, { partition: 5, offset: 1n }]) });
    assert.deepEqual(inc9, { errorCode: 0, sessionId: S, parts: ['5:0:2:p5-1'] }, 'the session outlived the other connection\'s attempts');

    // Close (epoch -1 with the id): a full, sessionless answer; the session is gone.
    const close = await fetch(c, v, topic, { sessionId: S, epoch: -1, topics: all(topic, [{ partition: 4, offset: 0n }]) });
    assert.deepEqual(close, { errorCode: 0, sessionId: 0, parts: ['4:0:1:p4-0'] });
    assert.deepEqual(await fetch(c, v, topic, { sessionId: S, epoch: 10 }), { errorCode: FETCH_SESSION_ID_NOT_FOUND, sessionId: 0, parts: [] });

    const after = tb.broker.fetchSessions.stats();
    assert.equal(after.requests.incremental - before.requests.incremental, 9, 'incremental fetches counted (epochs 1-9)');
    assert.equal(after.requests.full - before.requests.full, 1);
    assert.ok(after.omittedPartitions - before.omittedPartitions >= 20, `idle partitions left out: ${after.omittedPartitions - before.omittedPartitions}`);
    assert.equal(c.closed, false);
  });
}

test('a v12 session (topic names) used at v13 (topic ids): FETCH_SESSION_TOPIC_ID_ERROR', async () => {
  const topic = 'sessions-mixed';
  await createTopic(topic, 1);
  const full = await fetch(c, 12, topic, { sessionId: 0, epoch: 0, topics: all(topic, [{ partition: 0, offset: 0n }]) });
  assert.ok(full.sessionId > 0);
  assert.deepEqual(await fetch(c, 13, topic, { sessionId: full.sessionId, epoch: 1 }), { errorCode: FETCH_SESSION_TOPIC_ID_ERROR, sessionId: 0, parts: [] });
  // Still usable at the version it was made with.
  assert.deepEqual(await fetch(c, 12, topic, { sessionId: full.sessionId, epoch: 1 }), { errorCode: 0, sessionId: full.sessionId, parts: [] });
});

test('a topic deleted under a v13+ session: its partitions answer UNKNOWN_TOPIC_ID in the incremental answer', async () => {
  const topic = 'sessions-deleted';
  await createTopic(topic, 2);
  await produce(topic, 0, 'a');
  const id = idOf(topic);
  const full = await fetch(c, 17, topic, { sessionId: 0, epoch: 0, topics: all(topic, [{ partition: 0, offset: 1n }, { partition: 1, offset: 0n }]) });
  assert.deepEqual(full.parts, ['0:0:1:', '1:0:0:']);
  const idle = await fetch(c, 17, topic, { sessionId: full.sessionId, epoch: 1 });
  assert.deepEqual(idle.parts, []);
  await tb.broker.topics.deleteTopic(topic);
  const r = await c.request(ApiKey.Fetch, 17, fetchBody({ sessionId: full.sessionId, epoch: 2 }));
  assert.equal(r.body.errorCode, 0);
  assert.deepEqual(
    r.body.responses.flatMap((t: any) => t.partitions.map((p: any) => `${t.topicId}:${p.partitionIndex}:${p.errorCode}`)),
    [`${id}:0:${UNKNOWN_TOPIC_ID}`, `${id}:1:${UNKNOWN_TOPIC_ID}`],
  );
});

test('a closed connection frees its session; a new INITIAL on a connection replaces the session it had', async () => {
  const topic = 'sessions-conn';
  await createTopic(topic, 3);
  const d = await RawClient.connect(tb.port);
  open.push(d);
  const base = tb.broker.fetchSessions.stats().sessions;
  const first = await fetch(d, 17, topic, { sessionId: 0, epoch: 0, topics: all(topic, [{ partition: 0, offset: 0n }]) });
  assert.equal(tb.broker.fetchSessions.stats().sessions, base + 1);
  // A client that asks for a session on every fetch (id 0, epoch 0) holds one slot, not one per poll.
  const second = await fetch(d, 17, topic, { sessionId: 0, epoch: 0, topics: all(topic, [{ partition: 1, offset: 0n }, { partition: 2, offset: 0n }]) });
  assert.notEqual(second.sessionId, first.sessionId);
  assert.equal(tb.broker.fetchSessions.stats().sessions, base + 1);
  assert.equal((await fetch(d, 17, topic, { sessionId: first.sessionId, epoch: 1 })).errorCode, FETCH_SESSION_ID_NOT_FOUND, 'the replaced session is gone');
  assert.equal((await fetch(d, 17, topic, { sessionId: second.sessionId, epoch: 1 })).errorCode, 0);
  d.close();
  await waitFor('the closed connection\'s session to be freed', () => tb.broker.fetchSessions.stats().sessions === base);
});

test('a full cache: INITIAL is answered without a session; a larger session evicts the smallest', async () => {
  const small = await startBroker({ topics: { autoCreate: false }, kafka: { host: '127.0.0.1', port: 0, fetchSessionCacheSlots: 2, fetchSessionEvictionMs: '1h' } });
  const conns: RawClient[] = [];
  try {
    const connect = async () => {
      const x = await RawClient.connect(small.port);
      conns.push(x);
      return x;
    };
    const admin = await connect();
    const cr = await admin.request(ApiKey.CreateTopics, 4, { topics: [{ name: 'full', numPartitions: 4, replicationFactor: 1, assignments: [], configs: [] }], timeoutMs: 5000, validateOnly: false });
    assert.equal(cr.body.topics[0].errorCode, 0);
    const parts = (n: number) => [{ topic: 'full', topicId: ZERO, parts: Array.from({ length: n }, (_, p) => ({ partition: p, offset: 0n })) }];
    const initial = async (x: RawClient, n: number) => (await x.request(ApiKey.Fetch, 12, fetchBody({ sessionId: 0, epoch: 0, topics: parts(n) }))).body;
    const [a, b, cc, dd] = [await connect(), await connect(), await connect(), await connect()];
    const sa = await initial(a, 2);
    const sb = await initial(b, 3);
    assert.ok(sa.sessionId > 0 && sb.sessionId > 0);
    // Full, nothing idle an hour, and 2 partitions are not more than the smallest session's:
    // answered in full without a session (Kafka's answer), the client goes on sessionless.
    const sc = await initial(cc, 2);
    assert.equal(sc.errorCode, 0);
    assert.equal(sc.sessionId, 0);
    assert.equal(sc.responses[0].partitions.length, 2, 'a full answer all the same');
    // 4 partitions beat the smallest (a's 2): a is evicted, d gets the slot.
    const sd = await initial(dd, 4);
    assert.ok(sd.sessionId > 0);
    const ra = (await a.request(ApiKey.Fetch, 12, fetchBody({ sessionId: sa.sessionId, epoch: 1 }))).body;
    assert.equal(ra.errorCode, FETCH_SESSION_ID_NOT_FOUND, 'the evicted session is unknown; its client falls back to a full fetch');
    const rb = (await b.request(ApiKey.Fetch, 12, fetchBody({ sessionId: sb.sessionId, epoch: 1 }))).body;
    assert.equal(rb.errorCode, 0, 'the larger session stayed');
    const st = small.broker.fetchSessions.stats();
    assert.deepEqual([st.sessions, st.evicted, st.refused], [2, 1, 1]);
  } finally {
    for (const x of conns) x.close();
    await small.cleanup();
  }
});

test('eviction by idleness (on the cache itself, with a controlled clock): the least recently used session idle fetchSessionEvictionMs gives up its slot', () => {
  let now = 0;
  const cache = new FetchSessions({ slots: 2, evictionMs: 1000, topicName: () => null, now: () => now });
  const conn = (id: number) => ({ connectionId: id, signal: new AbortController().signal });
  const req = (sessionId: number, epoch: number, partitions: number): FetchRequest => ({
    ...fetchBody({ sessionId, epoch }),
    topics: [{ topic: 't', topicId: ZERO, partitions: Array.from({ length: partitions }, (_, p) => ({ partition: p, currentLeaderEpoch: -1, fetchOffset: 0n, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: 1, replicaDirectoryId: ZERO })) }],
  });
  const data = { errorCode: 0, highWatermark: 0n, lastStableOffset: 0n, logStartOffset: 0n, divergingEpoch: { epoch: -1, endOffset: -1n }, currentLeader: { leaderId: -1, leaderEpoch: -1 }, snapshotId: { endOffset: -1n, epoch: -1 }, abortedTransactions: [], preferredReadReplica: -1, records: Buffer.alloc(0) };
  const openSession = (c: ReturnType<typeof conn>, n: number) => {
    const plan = cache.open(c, req(0, 0, n), 12);
    assert.equal(plan.kind, 'full');
    return cache.created(c, 12, plan.partitions.map((p) => ({ p, data: { ...data, partitionIndex: p.partition } })));
  };
  const c1 = conn(1);
  const c2 = conn(2);
  const s1 = openSession(c1, 5);
  now = 500;
  const s2 = openSession(c2, 5);
  now = 900;
  // s1 used at 900: s2 (last used at 500) is now the least recently used.
  assert.equal(cache.open(c1, req(s1, 1, 0), 12).kind, 'incremental');
  now = 1400;
  assert.equal(openSession(conn(3), 1), 0, 's2 idle 900 ms < 1000: no slot for a smaller session');
  now = 1500;
  const s3 = openSession(conn(4), 1);
  assert.ok(s3 > 0, 's2 idle 1000 ms: evicted');
  assert.equal(cache.open(c2, req(s2, 1, 0), 12).kind, 'error');
  assert.equal(cache.open(c1, req(s1, 2, 0), 12).kind, 'incremental');
  assert.deepEqual([cache.stats().evicted, cache.stats().refused], [1, 1]);
});
