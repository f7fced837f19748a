/**
 * The data-plane APIs at every served version, over a raw socket, beyond the round trip
 * versions.test.ts checks: Produce's per-record errors (v8+), Fetch by topic id (v13+) and
 * its session rules, ListOffsets' special timestamps (MAX_TIMESTAMP v7, EARLIEST_LOCAL v8,
 * LATEST_TIERED v9), OffsetForLeaderEpoch, FindCoordinator's batched and transaction keys,
 * InitProducerId's epoch bump, and the transactional refusal on every path.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { SUPPORTED_VERSIONS } from '../../src/broker/kafka/apis.js';
import { BATCH_HEADER_BYTES, encodeBatch } from '../../src/storage/record-batch.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-kafka.js';

const ZERO = '00000000-0000-0000-0000-000000000000';
const UNSUPPORTED_VERSION = 35;
let tb: TestBroker;
let c: RawClient;
before(async () => {
  tb = await startBroker();
  c = await RawClient.connect(tb.port);
});
after(async () => {
  c.close();
  await tb.cleanup();
});

const versions = (key: number, from = 0) => {
  const [min, max] = SUPPORTED_VERSIONS.get(key)!;
  return Array.from({ length: max - Math.max(min, from) + 1 }, (_, i) => Math.max(min, from) + i);
};

async function createTopic(name: string, partitions = 1, configs: Array<{ name: string; value: string }> = []): Promise<string> {
  const r = await c.request(ApiKey.CreateTopics, 4, { topics: [{ name, numPartitions: partitions, replicationFactor: 1, assignments: [], configs }], timeoutMs: 5000, validateOnly: false });
  assert.equal(r.body.topics[0].errorCode, 0, `create ${name}`);
  return tb.broker.topics.getTopic(name)!.id;
}

const produceBody = (topic: string, records: Buffer, transactionalId: string | null = null) => ({
  transactionalId,
  acks: -1,
  timeoutMs: 5000,
  topicData: [{ name: topic, partitionData: [{ index: 0, records }] }],
});

const fetchBody = (topics: Array<{ topic: string; topicId: string; offset: bigint }>, session = { sessionId: 0, sessionEpoch: -1 }) => ({
  clusterId: null,
  replicaId: -1,
  replicaState: { replicaId: -1, replicaEpoch: -1n },
  maxWaitMs: 0,
  minBytes: 1,
  maxBytes: 1 << 20,
  isolationLevel: 0,
  ...session,
  topics: topics.map((t) => ({ topic: t.topic, topicId: t.topicId, partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: t.offset, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: 1 << 20, replicaDirectoryId: ZERO }] })),
  forgottenTopicsData: [],
  rackId: '',
});

const listOffsets = async (v: number, topic: string, timestamp: bigint) =>
  (await c.request(ApiKey.ListOffsets, v, { replicaId: -1, isolationLevel: 0, topics: [{ name: topic, partitions: [{ partitionIndex: 0, currentLeaderEpoch: -1, timestamp, maxNumOffsets: 1 }] }], timeoutMs: 0 })).body.topics[0].partitions[0];

test('Produce v8+ names the record a batch was refused for (record_errors), at every version', async () => {
  await createTopic('rec-errors');
  // Record 1 of 3 has offset delta 5: INVALID_RECORD, and the record to blame is index 1.
  const good = encodeBatch({ records: [{ value: Buffer.from('a') }, { value: Buffer.from('b') }, { value: Buffer.from('c') }] });
  for (const v of versions(ApiKey.Produce)) {
    const bad = Buffer.from(good);
    // Searched among the records only: the header's timestamps and CRC may hold a 'b' byte.
    const rec1 = bad.indexOf(Buffer.from('b'), BATCH_HEADER_BYTES) - 3; // ... offsetDelta, keyLength(-1), valueLength(1), 'b'
    assert.equal(bad[rec1], 2, 'offset delta 1 (zig-zag 2) sits 3 bytes before the value');
    bad[rec1] = 10;
    const { crc32c } = await import('@node-rs/crc32');
    bad.writeUInt32BE(crc32c(bad.subarray(21)), 17);
    const r = await c.request(ApiKey.Produce, v, produceBody('rec-errors', bad));
    const p = r.body.responses[0].partitionResponses[0];
    assert.equal(p.errorCode, 87, `Produce v${v}: INVALID_RECORD`);
    if (v >= 8) {
      assert.deepEqual(p.recordErrors.map((e: any) => e.batchIndex), [1], `Produce v${v} record_errors`);
      assert.match(p.recordErrors[0].batchIndexErrorMessage, /record 1: offset delta 5 is not 1/);
      assert.match(p.errorMessage, /record 1/);
    }
    const ok = await c.request(ApiKey.Produce, v, produceBody('rec-errors', Buffer.from(good)));
    assert.equal(ok.body.responses[0].partitionResponses[0].errorCode, 0, `Produce v${v} accepts the good batch`);
    assert.equal(ok.body.responses[0].partitionResponses[0].logAppendTimeMs, -1n, `Produce v${v}: CreateTime topic`);
  }
  assert.equal(c.closed, false);
});

test('Fetch v13+ resolves topics by id; an unknown id is UNKNOWN_TOPIC_ID; epoch 0 opens a session, -1 closes it', async () => {
  const id = await createTopic('by-id');
  const r0 = await c.request(ApiKey.Produce, 9, produceBody('by-id', encodeBatch({ records: [{ value: Buffer.from('x') }, { value: Buffer.from('y') }] })));
  assert.equal(r0.body.responses[0].partitionResponses[0].errorCode, 0);
  for (const v of versions(ApiKey.Fetch, 12)) {
    const unknown = '11111111-2222-3333-4444-555555555555';
    const topics = [{ topic: 'by-id', topicId: id, offset: 0n }, ...(v >= 13 ? [{ topic: '', topicId: unknown, offset: 0n }] : [])];
    // epoch 0 asks for a new session (KIP-227): a full answer and the new session's id
    // (test/kafka/fetch-sessions.test.ts drives the sessions themselves).
    const r = await c.request(ApiKey.Fetch, v, fetchBody(topics, { sessionId: 0, sessionEpoch: 0 }));
    assert.equal(r.body.errorCode, 0, `Fetch v${v}`);
    assert.ok(r.body.sessionId > 0, `Fetch v${v}: a session id, got ${r.body.sessionId}`);
    const p = r.body.responses[0].partitions[0];
    assert.deepEqual([p.errorCode, p.highWatermark, p.records.readBigInt64BE(0)], [0, 2n, 0n], `Fetch v${v} data`);
    if (v >= 13) {
      assert.equal(r.body.responses[0].topicId, id);
      assert.equal(r.body.responses[1].topicId, unknown);
      assert.equal(r.body.responses[1].partitions[0].errorCode, 100, `Fetch v${v}: UNKNOWN_TOPIC_ID`);
    } else {
      assert.equal(r.body.responses[0].topic, 'by-id');
    }
    // An incremental fetch of a session never granted: FETCH_SESSION_ID_NOT_FOUND.
    const unknownId = r.body.sessionId === 1234 ? 4321 : 1234;
    const inc = await c.request(ApiKey.Fetch, v, fetchBody(topics, { sessionId: unknownId, sessionEpoch: 1 }));
    assert.deepEqual([inc.body.errorCode, inc.body.sessionId, inc.body.responses.length], [70, 0, 0], `Fetch v${v} incremental`);
    // Closing the session (epoch -1 with its id) is a plain full fetch, answered sessionless.
    const close = await c.request(ApiKey.Fetch, v, fetchBody(topics, { sessionId: r.body.sessionId, sessionEpoch: -1 }));
    assert.deepEqual([close.body.errorCode, close.body.sessionId, close.body.responses[0].partitions[0].errorCode], [0, 0, 0], `Fetch v${v} final epoch`);
    // ...and the session is gone: its next incremental fetch names an unknown session.
    const after = await c.request(ApiKey.Fetch, v, fetchBody(topics, { sessionId: r.body.sessionId, sessionEpoch: 1 }));
    assert.equal(after.body.errorCode, 70, `Fetch v${v}: closed session`);
  }
  assert.equal(c.closed, false);
});

test('ListOffsets: MAX_TIMESTAMP names the record with the largest timestamp; EARLIEST_LOCAL and LATEST_TIERED', async () => {
  await createTopic('times');
  const t0 = 1_700_000_000_000n;
  // Offsets 0-2 at t0+10, t0+50, t0+20; offsets 3-4 at t0+30, t0+40 (uncompressed, so the
  // record itself is found).
  for (const records of [
    { baseTimestamp: t0, records: [{ value: Buffer.from('a'), timestampDelta: 10 }, { value: Buffer.from('b'), timestampDelta: 50 }, { value: Buffer.from('c'), timestampDelta: 20 }] },
    { baseTimestamp: t0, records: [{ value: Buffer.from('d'), timestampDelta: 30 }, { value: Buffer.from('e'), timestampDelta: 40 }] },
  ]) {
    const r = await c.request(ApiKey.Produce, 7, produceBody('times', encodeBatch(records)));
    assert.equal(r.body.responses[0].partitionResponses[0].errorCode, 0);
  }
  await createTopic('times-empty');
  for (const v of versions(ApiKey.ListOffsets)) {
    const at = async (ts: bigint) => {
      const p = await listOffsets(v, 'times', ts);
      assert.equal(p.errorCode, 0, `ListOffsets v${v} ${ts}`);
      return [p.offset, p.timestamp];
    };
    assert.deepEqual(await at(-2n), [0n, -1n], `v${v} earliest`);
    assert.deepEqual(await at(-1n), [5n, -1n], `v${v} latest`);
    assert.deepEqual(await at(t0 + 15n), [1n, t0 + 50n], `v${v} by time`);
    // The earliest offset whose timestamp reaches the target, not the closest timestamp.
    assert.deepEqual(await at(t0 + 45n), [1n, t0 + 50n], `v${v} by time, earliest offset first`);
    assert.deepEqual(await at(t0 + 51n), [-1n, -1n], `v${v} after every record`);
    if (v >= 7) {
      assert.deepEqual(await at(-3n), [1n, t0 + 50n], `v${v} MAX_TIMESTAMP`);
      const empty = await listOffsets(v, 'times-empty', -3n);
      assert.deepEqual([empty.errorCode, empty.offset, empty.timestamp], [0, -1n, -1n], `v${v} MAX_TIMESTAMP of an empty partition`);
    }
    if (v >= 8) assert.deepEqual(await at(-4n), [0n, -1n], `v${v} EARLIEST_LOCAL_TIMESTAMP`);
    if (v >= 9) assert.deepEqual(await at(-5n), [-1n, -1n], `v${v} LATEST_TIERED_TIMESTAMP without tiered storage`);
  }
});

test('OffsetForLeaderEpoch at every version: the one epoch ends at the high watermark', async () => {
  await createTopic('epochs');
  await c.request(ApiKey.Produce, 7, produceBody('epochs', encodeBatch({ records: [{ value: Buffer.from('a') }, { value: Buffer.from('b') }, { value: Buffer.from('c') }] })));
  for (const v of versions(ApiKey.OffsetForLeaderEpoch)) {
    const ask = async (leaderEpoch: number, currentLeaderEpoch = -1, topic = 'epochs') =>
      (await c.request(ApiKey.OffsetForLeaderEpoch, v, { replicaId: -1, topics: [{ topic, partitions: [{ partition: 0, currentLeaderEpoch, leaderEpoch }] }] })).body.topics[0].partitions[0];
    const e0 = await ask(0);
    assert.deepEqual([e0.errorCode, e0.endOffset], [0, 3n], `OffsetForLeaderEpoch v${v}`);
    if (v >= 1) assert.equal(e0.leaderEpoch, 0);
    assert.deepEqual([(await ask(7)).errorCode, (await ask(7)).endOffset], [0, 3n], `v${v}: a later epoch stored in a batch maps to the one epoch`);
    assert.equal((await ask(-1)).endOffset, -1n, `v${v}: no epoch`);
    assert.equal((await ask(0, -1, 'nope')).errorCode, 3, `v${v}: unknown partition`);
    if (v >= 2) assert.equal((await ask(0, 5)).errorCode, 75, `v${v}: UNKNOWN_LEADER_EPOCH`);
  }
});

test('FindCoordinator: batched group keys (v4+); transaction keys say transactions are not supported', async () => {
  for (const v of versions(ApiKey.FindCoordinator)) {
    if (v >= 4) {
      const r = await c.request(ApiKey.FindCoordinator, v, { key: '', keyType: 0, coordinatorKeys: ['g1', 'g2'] });
      assert.deepEqual(
        r.body.coordinators.map((k: any) => [k.key, k.errorCode, k.port]),
        [['g1', 0, tb.port], ['g2', 0, tb.port]],
        `FindCoordinator v${v}`,
      );
      const t = await c.request(ApiKey.FindCoordinator, v, { key: '', keyType: 1, coordinatorKeys: ['tx-1'] });
      assert.equal(t.body.coordinators[0].errorCode, UNSUPPORTED_VERSION);
      assert.match(t.body.coordinators[0].errorMessage, /transactions are not supported by Meridian/);
    } else {
      const r = await c.request(ApiKey.FindCoordinator, v, { key: 'g1', keyType: 0, coordinatorKeys: [] });
      assert.deepEqual([r.body.errorCode, r.body.port], [0, tb.port], `FindCoordinator v${v}`);
      if (v >= 1) {
        const t = await c.request(ApiKey.FindCoordinator, v, { key: 'tx-1', keyType: 1, coordinatorKeys: [] });
        assert.equal(t.body.errorCode, UNSUPPORTED_VERSION, `FindCoordinator v${v} transaction key`);
        assert.match(t.body.errorMessage, /transactions are not supported by Meridian \(transactional.id 'tx-1'\)/);
      }
    }
  }
});

test('InitProducerId: a new id per call, an epoch bump gets a fresh id (v3+), a half-set pair is INVALID_REQUEST; transactional ids and Produce are refused as unsupported', async () => {
  await createTopic('txn');
  for (const v of versions(ApiKey.InitProducerId)) {
    const init = (producerId: bigint, producerEpoch: number, transactionalId: string | null = null) =>
      c.request(ApiKey.InitProducerId, v, { transactionalId, transactionTimeoutMs: 60000, producerId, producerEpoch });
    const first = (await init(-1n, -1)).body;
    assert.equal(first.errorCode, 0, `InitProducerId v${v}`);
    if (v >= 3) {
      const bumped = (await init(first.producerId, first.producerEpoch)).body;
      assert.equal(bumped.errorCode, 0, `InitProducerId v${v} bump`);
      assert.notEqual(bumped.producerId, first.producerId);
      assert.equal(bumped.producerEpoch, 0);
      assert.equal((await init(first.producerId, -1)).body.errorCode, 42, `InitProducerId v${v}: producerId without an epoch`);
    }
    const tx = (await init(-1n, -1, 'tx-1')).body;
    assert.deepEqual([tx.errorCode, tx.producerId], [UNSUPPORTED_VERSION, -1n], `InitProducerId v${v} transactional`);
  }
  for (const v of versions(ApiKey.Produce)) {
    const r = await c.request(ApiKey.Produce, v, produceBody('txn', encodeBatch({ records: [{ value: Buffer.from('t') }] }), 'tx-1'));
    const p = r.body.responses[0].partitionResponses[0];
    assert.equal(p.errorCode, UNSUPPORTED_VERSION, `Produce v${v} transactional`);
    if (v >= 8) assert.match(p.errorMessage, /transactions are not supported by Meridian/);
  }
  assert.equal(tb.broker.topics.partition('txn', 0)!.highWatermark, 0n, 'nothing transactional was written');
});
