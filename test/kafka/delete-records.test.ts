/**
 * DeleteRecords through the broker: the log start moves to the requested offset (-1: the
 * high watermark), nothing below it is served to KafkaJS or kcat, the segments wholly below
 * it are deleted, the start survives a restart, and beyond the high watermark is
 * OFFSET_OUT_OF_RANGE. With tiered storage, the remote segments below it stop being served
 * and leave the bucket.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { SUPPORTED_VERSIONS } from '../../src/broker/kafka/apis.js';
import { encodeBatch } from '../../src/storage/record-batch.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { fsStore } from '../helpers/object-stores.js';
import { RawClient } from '../helpers/raw-kafka.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const OFFSET_OUT_OF_RANGE = 1;

async function createTopic(c: RawClient, name: string): Promise<void> {
  const r = await c.request(ApiKey.CreateTopics, 4, { topics: [{ name, numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }], timeoutMs: 5000, validateOnly: false });
  assert.equal(r.body.topics[0].errorCode, 0);
}

/** `batches` batches of 10 records each, values "r<offset>"; 100-byte keys make each batch larger than a 1 KiB segment. */
async function produce(c: RawClient, topic: string, batches: number, from = 0): Promise<void> {
  for (let b = 0; b < batches; b++) {
    const records = Array.from({ length: 10 }, (_, i) => ({ key: Buffer.alloc(100, 'k'), value: Buffer.from(`r${from + b * 10 + i}`) }));
    const r = await c.request(ApiKey.Produce, 7, { transactionalId: null, acks: -1, timeoutMs: 5000, topicData: [{ name: topic, partitionData: [{ index: 0, records: encodeBatch({ records }) }] }] });
    assert.equal(r.body.responses[0].partitionResponses[0].errorCode, 0);
  }
}

const deleteRecords = async (c: RawClient, v: number, topic: string, offset: bigint) =>
  (await c.request(ApiKey.DeleteRecords, v, { topics: [{ name: topic, partitions: [{ partitionIndex: 0, offset }] }], timeoutMs: 5000 })).body.topics[0].partitions[0];

const earliest = async (c: RawClient, topic: string) =>
  (await c.request(ApiKey.ListOffsets, 1, { replicaId: -1, isolationLevel: 0, topics: [{ name: topic, partitions: [{ partitionIndex: 0, currentLeaderEpoch: -1, timestamp: -2n, maxNumOffsets: 1 }] }], timeoutMs: 0 })).body.topics[0].partitions[0].offset;

test('DeleteRecords at every version: the log start moves, consumers see only what is after it, segments go, and it survives a restart', async () => {
  let tb: TestBroker = await startBroker({ log: { segmentBytes: 1024, retention: { ms: -1 } } });
  cleanups.push(() => tb.cleanup());
  let c = await RawClient.connect(tb.port);
  await createTopic(c, 'dr');
  await produce(c, 'dr', 20); // offsets 0-199, one batch per segment
  const log = () => tb.broker.topics.partition('dr', 0)!;
  const segmentsBefore = log().segments().length;
  assert.equal(segmentsBefore, 20, 'one segment per batch');
  const [min, max] = SUPPORTED_VERSIONS.get(ApiKey.DeleteRecords)!;
  assert.deepEqual([min, max], [0, 2]);
  // v0: into the middle of a batch; v1: further; v2: backwards is a no-op.
  assert.deepEqual(await deleteRecords(c, 0, 'dr', 45n), { partitionIndex: 0, lowWatermark: 45n, errorCode: 0 });
  assert.deepEqual(await deleteRecords(c, 1, 'dr', 95n), { partitionIndex: 0, lowWatermark: 95n, errorCode: 0 });
  assert.deepEqual(await deleteRecords(c, 2, 'dr', 50n), { partitionIndex: 0, lowWatermark: 95n, errorCode: 0 });
  for (const v of [0, 1, 2]) {
    const r = await deleteRecords(c, v, 'dr', 201n);
    assert.deepEqual([r.errorCode, r.lowWatermark], [OFFSET_OUT_OF_RANGE, -1n], `v${v}: beyond the high watermark`);
    assert.equal((await deleteRecords(c, v, 'dr', -2n)).errorCode, OFFSET_OUT_OF_RANGE, `v${v}: negative offset`);
  }
  const unknown = (await c.request(ApiKey.DeleteRecords, 2, { topics: [{ name: 'nope', partitions: [{ partitionIndex: 0, offset: 1n }] }], timeoutMs: 5000 })).body.topics[0].partitions[0];
  assert.equal(unknown.errorCode, 3);
  assert.equal(await earliest(c, 'dr'), 95n);
  assert.deepEqual([log().segments()[0].baseOffset, log().segments().length], [90n, 11], 'the segments wholly below 95 are deleted');
  // A fetch below the start is OFFSET_OUT_OF_RANGE; KafkaJS and kcat read from 95 on.
  const fetchAt = async (offset: bigint) =>
    (
      await c.request(ApiKey.Fetch, 11, {
        clusterId: null, replicaId: -1, replicaState: { replicaId: -1, replicaEpoch: -1n }, maxWaitMs: 0, minBytes: 1, maxBytes: 1 << 20, isolationLevel: 0, sessionId: 0, sessionEpoch: -1,
        topics: [{ topic: 'dr', topicId: '', partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: offset, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: 1 << 20, replicaDirectoryId: '' }] }],
        forgottenTopicsData: [], rackId: '',
      })
    ).body.responses[0].partitions[0];
  assert.equal((await fetchAt(94n)).errorCode, OFFSET_OUT_OF_RANGE);
  assert.deepEqual([(await fetchAt(95n)).errorCode, (await fetchAt(95n)).logStartOffset], [0, 95n]);
  const expected = Array.from({ length: 105 }, (_, i) => `r${95 + i}`);
  const viaKafkajs = await readTopicToEnd(tb.bootstrap, 'dr');
  assert.deepEqual(viaKafkajs.map((m) => m.value!.toString()), expected, 'KafkaJS reads from the new log start');
  const viaKcat = await new KcatClient(tb.bootstrap).consumeAll('dr');
  assert.deepEqual(viaKcat.map((m) => m.payload!.toString()), expected, 'kcat reads from the new log start');
  assert.equal(viaKcat[0].offset, 95);
  // Restart: the start holds; then -1 deletes up to the high watermark.
  c.close();
  tb = await tb.restart();
  cleanups.push(() => tb.cleanup());
  c = await RawClient.connect(tb.port);
  cleanups.push(() => c.close());
  assert.equal(await earliest(c, 'dr'), 95n, 'the log start survives a restart');
  assert.deepEqual(await deleteRecords(c, 2, 'dr', -1n), { partitionIndex: 0, lowWatermark: 200n, errorCode: 0 });
  assert.equal(await earliest(c, 'dr'), 200n);
  assert.deepEqual(
    log().segments().map((s) => [s.baseOffset, s.nextOffset]),
    [[200n, 200n]],
    'every segment below the high watermark is deleted',
  );
  await produce(c, 'dr', 1, 200);
  assert.deepEqual((await readTopicToEnd(tb.bootstrap, 'dr')).map((m) => m.value!.toString()), Array.from({ length: 10 }, (_, i) => `r${200 + i}`));
});

test('DeleteRecords with tiered storage: remote segments below the new start are no longer served and leave the bucket', async () => {
  const f = await fsStore();
  cleanups.push(() => f.stop());
  const tb = await startBroker(
    {
      log: { segmentBytes: 1024, retention: { ms: -1 } },
      groups: { initialRebalanceDelayMs: 0 },
      tiered: { enabled: true, offload: { onSeal: true }, localRetention: { bytes: 0 }, deletionLagMs: 0, checkIntervalMs: 50 },
    },
    undefined,
    { blobStore: f.store },
  );
  cleanups.push(() => tb.cleanup());
  const c = await RawClient.connect(tb.port);
  cleanups.push(() => c.close());
  await createTopic(c, 'cold');
  await produce(c, 'cold', 20);
  const log = tb.broker.topics.partition('cold', 0)!;
  const status = () => tb.broker.tiered!.status().find((s) => s.topic === 'cold' && s.partition === 0)!;
  await tb.broker.tiered!.offloadNow('cold');
  await waitFor('offloaded and the local copies deleted', () => log.logStartOffset > 100n && status().remoteStartOffset === '0');
  const remoteBefore = status().remoteSegments;
  assert.equal(await earliest(c, 'cold'), 0n, 'the bucket serves from 0');
  assert.deepEqual(await deleteRecords(c, 2, 'cold', 55n), { partitionIndex: 0, lowWatermark: 55n, errorCode: 0 });
  assert.equal(await earliest(c, 'cold'), 55n);
  const got = await readTopicToEnd(tb.bootstrap, 'cold');
  assert.deepEqual(got.map((m) => m.value!.toString()), Array.from({ length: 145 }, (_, i) => `r${55 + i}`), 'reads start at 55, from the bucket');
  await waitFor('remote segments below 55 expire', () => status().remoteStartOffset === '50' && status().remoteSegments === remoteBefore - 5);
  const segmentObjects = async () => (await f.store.list('topics/cold/', { signal: AbortSignal.timeout(10_000), pageSize: 1000 })).keys.filter((k) => k.key.endsWith('.log')).length;
  await waitFor('the objects of the expired segments are deleted', async () => (await segmentObjects()) === status().remoteSegments);
  assert.equal(await earliest(c, 'cold'), 55n);
});
