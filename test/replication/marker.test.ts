/**
 * Dedup markers: the control batch the receiving region writes in front of every run of
 * replicated batches. It must survive a round trip bit for bit, be a well-formed Kafka
 * RecordBatch v2 that clients skip (control attribute, no producer), and never be mistaken
 * for (or mistake) a Kafka transaction marker or an ordinary batch. A garbled marker that is
 * already in a log (a damaged disk, or an older broker that let one in) breaks neither the
 * dedup state loaded from it nor the worker reading past it, in process and in a broker.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fs from 'node:fs';
import fc from 'fast-check';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { decodeMarker, encodeMarker, isMarkerBatch, MARKER_CONTROL_TYPE, type Marker } from '../../src/replication/marker.js';
import { ReplicaState } from '../../src/replication/replica-state.js';
import { Attributes, decodeRecords, encodeBatch, readBatchHeader, validateBatch } from '../../src/storage/record-batch.js';
import { garbledMarker, makeBatch } from '../helpers/batches.js';
import { startBroker } from '../helpers/broker.js';
import { readAgreed } from '../helpers/replication-check.js';
import { waitFor } from '../helpers/wait.js';
import { appendRun, dataBatch, fakeRemote, link, logger, newWorker, receivedRecords, scratchLog, waitIdle } from '../helpers/worker-harness.js';

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const int64 = fc.oneof(fc.constantFrom(INT64_MIN, INT64_MAX, -1n, 0n, 1n), fc.bigInt({ min: INT64_MIN, max: INT64_MAX }));
const uint32 = fc.oneof(fc.constantFrom(0, 1, 0xffffffff, 0x80000000), fc.integer({ min: 0, max: 0xffffffff }));
const region = fc.oneof(fc.constantFrom('eu-west', 'us-east', 'a', ''), fc.string({ unit: 'grapheme', maxLength: 40 }));
const markerArb: fc.Arbitrary<Marker> = fc.record({
  originRegion: region,
  originTopicId: fc.oneof(fc.uuid(), region),
  originPartition: fc.oneof(fc.constantFrom(0, 2147483647, -2147483648), fc.integer({ min: -2147483648, max: 2147483647 })),
  senderRegion: region,
  senderTopicId: fc.oneof(fc.uuid(), region),
  hops: fc.array(region, { maxLength: 6 }),
  batches: fc.array(fc.record({ originBaseOffset: int64, senderBaseOffset: int64, crc: uint32 }), { maxLength: 40 }),
  senderEndOffset: int64,
});

/** A Kafka transaction marker: control batch, one record, key = version 0 + type (0 ABORT, 1 COMMIT). */
function kafkaTxnMarker(type: 0 | 1): Buffer {
  const key = Buffer.from([0, 0, 0, type]);
  const value = Buffer.from([0, 0, 0, 0, 0, 7]); // version 0, coordinator epoch 7
  return encodeBatch({ records: [{ key, value }], attributes: Attributes.control | Attributes.transactional, producerId: 4242n, producerEpoch: 3, baseSequence: -1 });
}

test('encodeMarker/decodeMarker round trip: regions, hops, batch lists (empty too) and int64 extremes', () => {
  fc.assert(
    fc.property(markerArb, fc.bigInt({ min: 0n, max: 2n ** 62n }), (m, ts) => {
      const batch = encodeMarker(m, ts);
      const back = decodeMarker(batch);
      assert.notEqual(back, null);
      assert.deepEqual(back, { ...m, hops: [...m.hops], batches: m.batches.map((b) => ({ ...b })) });
      // Still decodes after the log stamps a base offset (outside the CRC).
      const stamped = Buffer.from(batch);
      stamped.writeBigInt64BE(123456789n, 0);
      validateBatch(stamped);
      assert.deepEqual(decodeMarker(stamped), back);
    }),
    { numRuns: 300 },
  );
});

test('a marker with an empty batch list and one with int64 extremes decode exactly', () => {
  const empty: Marker = { originRegion: 'eu-west', originTopicId: 'id-eu', originPartition: 0, senderRegion: 'us-east', senderTopicId: 'id-us', hops: [], batches: [], senderEndOffset: -1n };
  assert.deepEqual(decodeMarker(encodeMarker(empty)), { ...empty, hops: [], batches: [] });
  const extremes: Marker = {
    originRegion: 'ap-south',
    originTopicId: '3f1c2a9e-0000-4000-8000-000000000001',
    originPartition: 2147483647,
    senderRegion: 'eu-west',
    senderTopicId: '',
    hops: ['ap-south', 'eu-west'],
    batches: [
      { originBaseOffset: INT64_MAX, senderBaseOffset: INT64_MIN, crc: 0xffffffff },
      { originBaseOffset: INT64_MIN, senderBaseOffset: INT64_MAX, crc: 0 },
    ],
    senderEndOffset: INT64_MAX,
  };
  assert.deepEqual(decodeMarker(encodeMarker(extremes)), { ...extremes, hops: [...extremes.hops], batches: extremes.batches.map((b) => ({ ...b })) });
});

test('the marker is a valid RecordBatch v2 control batch with no producer and control key version 0, type 0x4D52', () => {
  fc.assert(
    fc.property(markerArb, (m) => {
      const batch = encodeMarker(m, 1_700_000_000_000n);
      const h = validateBatch(batch); // magic 2, length, CRC-32C, lastOffsetDelta
      assert.equal(h.magic, 2);
      assert.equal(h.attributes & Attributes.control, 0x20, 'control attribute set');
      assert.equal(h.attributes & Attributes.codecMask, 0, 'uncompressed');
      assert.equal(h.attributes & Attributes.transactional, 0, 'not transactional');
      assert.equal(h.producerId, -1n);
      assert.equal(h.producerEpoch, -1);
      assert.equal(h.baseSequence, -1);
      assert.equal(h.recordCount, 1);
      assert.equal(h.lastOffsetDelta, 0);
      assert.equal(h.baseTimestamp, 1_700_000_000_000n);
      const [rec] = decodeRecords(batch);
      assert.ok(rec.key !== null && rec.key.length === 4, 'a 4-byte control key');
      const version = rec.key.readInt16BE(0);
      const type = rec.key.readInt16BE(2);
      assert.equal(version, 0);
      assert.equal(type, 0x4d52);
      assert.equal(type, MARKER_CONTROL_TYPE);
      assert.notEqual(type, 0, 'never ABORT');
      assert.notEqual(type, 1, 'never COMMIT');
      assert.ok(rec.value !== null && rec.value.readInt16BE(0) === 0, 'value version 0');
      assert.equal(isMarkerBatch(batch), true);
    }),
    { numRuns: 100 },
  );
});

test('isMarkerBatch/decodeMarker: false/null for an ordinary batch and for Kafka COMMIT/ABORT control batches', () => {
  for (const b of [makeBatch('plain'), makeBatch('many', 5, 100)]) {
    assert.equal(isMarkerBatch(b), false);
    assert.equal(decodeMarker(b), null);
  }
  // An ordinary (non-control) batch whose record key happens to equal the marker key.
  const lookalike = encodeBatch({ records: [{ key: Buffer.from([0, 0, 0x4d, 0x52]), value: Buffer.from('x') }] });
  assert.equal(isMarkerBatch(lookalike), false);
  for (const type of [0, 1] as const) {
    const txn = kafkaTxnMarker(type);
    validateBatch(txn);
    assert.ok((readBatchHeader(txn).attributes & Attributes.control) !== 0);
    assert.equal(isMarkerBatch(txn), false, `Kafka ${type === 0 ? 'ABORT' : 'COMMIT'} marker`);
    assert.equal(decodeMarker(txn), null);
  }
});

test('a garbled marker value is refused, not misread', () => {
  const batch = encodeMarker({ originRegion: 'eu-west', originTopicId: 'id-eu', originPartition: 1, senderRegion: 'us-east', senderTopicId: 'id-us', hops: ['eu-west'], batches: [{ originBaseOffset: 5n, senderBaseOffset: 9n, crc: 77 }], senderEndOffset: 9n });
  // Re-encode the same control key with a truncated value.
  const [rec] = decodeRecords(batch);
  const truncated = encodeBatch({ records: [{ key: rec.key, value: rec.value!.subarray(0, rec.value!.length - 3) }], attributes: Attributes.control, producerId: -1n });
  assert.equal(isMarkerBatch(truncated), true);
  assert.throws(() => decodeMarker(truncated));
  const wrongVersion = Buffer.from(rec.value!);
  wrongVersion.writeInt16BE(1, 0);
  const v1 = encodeBatch({ records: [{ key: rec.key, value: wrongVersion }], attributes: Attributes.control, producerId: -1n });
  assert.throws(() => decodeMarker(v1), /version 1 is not supported/);
});

test('a garbled marker already in a log breaks neither ReplicaState.load nor the worker', async (t) => {
  const { log } = await scratchLog(t, 'meridian-marker-');
  await appendRun(log, 'a', 0n, [dataBatch('a0'), dataBatch('a1')]);
  await log.appendAll([garbledMarker()]); // a damaged disk, or an older broker that let one in
  await log.appendAll([dataBatch('b0')]);
  await appendRun(log, 'a', 2n, [dataBatch('a2')]);
  await log.appendAll([dataBatch('b1')]);
  await log.flush();
  const state = await ReplicaState.load(log, logger);
  try {
    assert.equal(state.table.lastOrigin('a', 'a-tid'), 2n, 'both runs of a are counted');
    assert.equal(state.table.lastSender('a', 'a-tid'), 2n);
  } finally {
    await state.close();
  }
  for (const relay of [false, true]) {
    const fr = fakeRemote();
    const w = newWorker(log, fr.remote, link('c', relay));
    w.start();
    try {
      const s = await waitIdle(w, 'the worker to replicate past the garbled marker');
      assert.deepEqual({ error: s.error, replicatedOffset: s.replicatedOffset }, { error: null, replicatedOffset: String(log.highWatermark - 1n) });
      const a = (k: string) => ({ key: k, origin: 'a', hops: 'a>b' });
      const b = (k: string) => ({ key: k, origin: 'b', hops: 'b' });
      assert.deepEqual(receivedRecords(fr.sent), relay ? [a('a0-0'), a('a1-0'), b('b0-0'), a('a2-0'), b('b1-0')] : [b('b0-0'), b('b1-0')]);
    } finally {
      await w.stop();
    }
  }
});

test('a broker whose log holds a garbled marker restarts and replicates that topic: the remote gets exactly its records', { timeout: 30_000 }, async (t) => {
  // No initial rebalance delay: the check reads with a fresh KafkaJS group.
  // eu-west holds the policy too: it takes the topic only from the regions its policies name.
  const policies = [{ topics: 'damaged', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }];
  const eu = await startBroker({ region: 'eu-west', groups: { initialRebalanceDelayMs: 0 }, replication: { regions: [{ name: 'us-east', address: '127.0.0.1:1' }, { name: 'eu-west', address: '127.0.0.1:1' }], policies } } as BrokerConfigInput);
  t.after(() => eu.cleanup());
  const config: BrokerConfigInput = {
    region: 'us-east',
    replication: {
      regions: [{ name: 'us-east', address: '127.0.0.1:1' }, { name: 'eu-west', address: eu.bootstrap }],
      policies,
      retry: { initialMs: 50, maxMs: 500 },
    },
  } as BrokerConfigInput;
  let us = await startBroker({ ...config, replication: { ...config.replication, policies: [] } as BrokerConfigInput['replication'] });
  t.after(() => us.cleanup());
  await us.broker.topics.createTopic('damaged', 1);
  const log = us.broker.topics.partition('damaged', 0)!;
  await log.appendAll([dataBatch('before')]);
  await log.appendAll([garbledMarker()]);
  await log.appendAll([dataBatch('after')]);
  await log.flush();
  await us.stop();
  us = await startBroker(config, { dataDir: us.dataDir, cleanup: () => fs.rmSync(us.dataDir, { recursive: true, force: true }) });
  const w = await waitFor('us-east to replicate the damaged topic', () => us.broker.replicator.status().find((x) => x.topic === 'damaged' && x.state === 'idle' && x.backlogRecords === 0), 15_000);
  assert.equal(w.error, null);
  assert.deepEqual((await readAgreed('eu-west', eu.bootstrap, 'damaged')).map((m) => String(m.key)), ['before-0', 'after-0']);
});
