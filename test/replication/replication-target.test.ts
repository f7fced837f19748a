/**
 * The receiving side of geo-replication, driven over its wire API (keys 32000/32001 on the
 * broker's Kafka port) with the sender's own LinkClient and codecs, against a real
 * in-process broker serving region eu-west. Among what it refuses: a request carrying a
 * control batch (only the target writes markers), with nothing of it appended.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { LinkClient } from '../../src/replication/link-client.js';
import { decodeMarker } from '../../src/replication/marker.js';
import {
  readAppendResponse,
  readHandshakeResponse,
  ReplicationApiKey,
  writeAppendRequest,
  writeHandshakeRequest,
  type AppendRequest,
  type AppendResponse,
  type HandshakeRequest,
  type HandshakeResponse,
  type ReplicatedBatch,
} from '../../src/replication/replication-api.js';
import { decodeRecords, encodeBatch, LOG_OVERHEAD, readBatchHeader } from '../../src/storage/record-batch.js';
import { garbledMarker } from '../helpers/batches.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { collectMessages } from '../helpers/kafkajs-collect.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { readStoredBatches } from '../helpers/log-batches.js';
import { readAgreed } from '../helpers/replication-check.js';
import { receivingFrom } from '../helpers/replication-link.js';

/** The sender's topic id in these tests (progress is keyed by region and topic id). */
const TID = 'topic-id';

const REGION = 'eu-west';
/** eu-west, taking every topic from us-east and ap-south (the senders of these tests). */
const RECEIVING = { region: REGION, replication: receivingFrom(REGION, ['us-east', 'ap-south']) };
const CORRUPT_MESSAGE = 2;
const INVALID_PARTITIONS = 37;
const INVALID_REQUEST = 42;
const INVALID_RECORD = 87;

let tb: TestBroker;
let link: LinkClient;

before(async () => {
  tb = await startBroker(RECEIVING);
  link = new LinkClient({ address: tb.bootstrap, clientId: 'replication-test', requestTimeoutMs: 10_000 });
});

after(async () => {
  link?.close();
  await tb?.cleanup();
});

async function handshake(client: LinkClient, req: Partial<HandshakeRequest> & { topic: string; partitionCount: number }): Promise<HandshakeResponse> {
  const r = await client.request(ReplicationApiKey.Handshake, 0, (w) => writeHandshakeRequest(w, { targetRegion: REGION, senderRegion: 'us-east', senderTopicId: TID, createIfMissing: true, dr: null, ...req }));
  return readHandshakeResponse(r);
}

async function append(client: LinkClient, req: Partial<AppendRequest> & Pick<AppendRequest, 'topic' | 'entries' | 'senderEndOffset'>): Promise<AppendResponse> {
  const r = await client.request(ReplicationApiKey.Append, 0, (w) => writeAppendRequest(w, { targetRegion: REGION, senderRegion: 'us-east', senderTopicId: TID, partition: 0, continuesFrom: -2n, ...req }));
  return readAppendResponse(r);
}

interface Msg {
  key: string;
  value: string;
  headers?: Array<{ key: string; value: Buffer | null }>;
}

/** Origin batches of `perBatch` records each, with origin (= sender) offsets from `base`. */
function originBatches(tag: string, count: number, perBatch: number, base = 0n): { batches: ReplicatedBatch[]; messages: Msg[]; end: bigint } {
  const batches: ReplicatedBatch[] = [];
  const messages: Msg[] = [];
  let offset = base;
  for (let i = 0; i < count; i++) {
    const recs: Msg[] = Array.from({ length: perBatch }, (_, j) => ({ key: `${tag}-k${i}-${j}`, value: `${tag} value ${i}.${j} ${'é'.repeat(j)}`, headers: [{ key: 'origin', value: Buffer.from('us-east') }] }));
    const batch = encodeBatch({ records: recs.map((m) => ({ key: Buffer.from(m.key), value: Buffer.from(m.value), headers: m.headers })), baseOffset: offset, baseTimestamp: 1_700_000_000_000n + BigInt(i) });
    batches.push({ originBaseOffset: offset, senderBaseOffset: offset, batch });
    messages.push(...recs);
    offset += BigInt(perBatch);
  }
  return { batches, messages, end: offset - 1n };
}

function endOffset(topic: string, partition = 0): bigint {
  return tb.broker.topics.partition(topic, partition)!.logEndOffset;
}

/** Every batch in the partition's log, whole. */
async function logBatches(topic: string, partition = 0, on: TestBroker = tb): Promise<Buffer[]> {
  const log = on.broker.topics.partition(topic, partition)!;
  const out: Buffer[] = [];
  let next = log.logStartOffset;
  while (next < log.highWatermark) {
    const { records } = await log.read(next, 1 << 20);
    for (let p = 0; p < records.length; ) {
      const size = records.readInt32BE(p + 8) + LOG_OVERHEAD;
      const b = Buffer.from(records.subarray(p, p + size));
      out.push(b);
      const h = readBatchHeader(b);
      next = h.baseOffset + BigInt(h.lastOffsetDelta) + 1n;
      p += size;
    }
  }
  return out;
}

test('handshake creates a missing topic with the requested partition count; cursors start at -1', async () => {
  assert.equal(tb.broker.topics.getTopic('hs-create'), undefined);
  const r = await handshake(link, { topic: 'hs-create', partitionCount: 3 });
  assert.equal(r.errorCode, 0, r.errorMessage ?? '');
  assert.equal(r.errorMessage, null);
  assert.equal(r.region, REGION);
  assert.equal(r.partitionCount, 3);
  assert.deepEqual(r.partitions, [0, 1, 2].map((partition) => ({ partition, senderCursor: -1n })));
  assert.equal(tb.broker.topics.getTopic('hs-create')?.partitions, 3);
  // A second handshake finds it; without createIfMissing a missing topic is refused.
  assert.equal((await handshake(link, { topic: 'hs-create', partitionCount: 3, createIfMissing: false })).errorCode, 0);
  const missing = await handshake(link, { topic: 'hs-missing', partitionCount: 1, createIfMissing: false });
  assert.notEqual(missing.errorCode, 0);
  assert.equal(tb.broker.topics.getTopic('hs-missing'), undefined);
});

test('a sender with fewer partitions is refused with INVALID_PARTITIONS naming both counts and both regions', async () => {
  await tb.broker.topics.createTopic('hs-mismatch', 3);
  const r = await handshake(link, { topic: 'hs-mismatch', partitionCount: 2 });
  assert.equal(r.errorCode, INVALID_PARTITIONS);
  assert.equal(r.partitionCount, 3, 'answers its own count');
  assert.deepEqual(r.partitions, []);
  const msg = r.errorMessage ?? '';
  for (const part of ['hs-mismatch', '2 partitions', 'us-east', '3 in region', REGION]) assert.ok(msg.includes(part), `message ${JSON.stringify(msg)} names ${part}`);
  assert.equal(tb.broker.topics.getTopic('hs-mismatch')?.partitions, 3, 'the topic is left alone: partitions are never removed');
});

test('a sender with more partitions (grown with CreatePartitions there) grows the topic here to match', async () => {
  const before = await tb.broker.topics.createTopic('hs-grow', 2);
  const r = await handshake(link, { topic: 'hs-grow', partitionCount: 5 });
  assert.equal(r.errorCode, 0, r.errorMessage ?? '');
  assert.equal(r.partitionCount, 5);
  assert.deepEqual(r.partitions.map((p) => p.partition), [0, 1, 2, 3, 4]);
  const after = tb.broker.topics.getTopic('hs-grow');
  assert.deepEqual([after?.partitions, after?.id], [5, before.id], 'the same topic, with 5 partitions');
});

test('a wrong targetRegion is refused, naming this region and the one asked for', async () => {
  const r = await handshake(link, { topic: 'hs-wrong', partitionCount: 1, targetRegion: 'ap-south' });
  assert.equal(r.errorCode, INVALID_REQUEST);
  assert.match(r.errorMessage ?? '', /serves region eu-west, not ap-south/);
  assert.match(r.errorMessage ?? '', /replication\.regions/);
  assert.equal(tb.broker.topics.getTopic('hs-wrong'), undefined, 'nothing created');
  await handshake(link, { topic: 'ap-wrong', partitionCount: 1 });
  const { batches, end } = originBatches('wrong', 1, 1);
  const before = endOffset('ap-wrong');
  const a = await append(link, { topic: 'ap-wrong', targetRegion: 'ap-south', senderEndOffset: end, entries: [{ originRegion: 'us-east', originTopicId: TID, originPartition: 0, hops: ['us-east'], batches }] });
  assert.equal(a.errorCode, INVALID_REQUEST);
  assert.match(a.errorMessage ?? '', /eu-west.*ap-south/);
  assert.equal(endOffset('ap-wrong'), before);
  // A sender claiming to be this region is refused too.
  const self = await handshake(link, { topic: 'hs-self', partitionCount: 1, senderRegion: REGION });
  assert.equal(self.errorCode, INVALID_REQUEST);
  assert.match(self.errorMessage ?? '', /itself/);
});

test('a bad partition count, a bad topic name and an unknown partition are refused without creating anything', async () => {
  for (const n of [0, -1]) {
    const r = await handshake(link, { topic: `hs-count-${n}`, partitionCount: n });
    assert.equal(r.errorCode, INVALID_PARTITIONS);
    assert.match(r.errorMessage ?? '', /partition count/);
    assert.equal(tb.broker.topics.getTopic(`hs-count-${n}`), undefined);
  }
  const badName = await handshake(link, { topic: 'bad topic!', partitionCount: 1 });
  assert.notEqual(badName.errorCode, 0);
  assert.match(badName.errorMessage ?? '', /invalid topic name/);
  await handshake(link, { topic: 'ap-unknown-partition', partitionCount: 2 });
  const { batches, end } = originBatches('unknown', 1, 1);
  const r = await append(link, { topic: 'ap-unknown-partition', partition: 2, senderEndOffset: end, entries: [{ originRegion: 'us-east', originTopicId: TID, originPartition: 2, hops: ['us-east'], batches }] });
  assert.equal(r.errorCode, 3, 'UNKNOWN_TOPIC_OR_PARTITION');
  assert.match(r.errorMessage ?? '', /ap-unknown-partition\/2 does not exist in region eu-west/);
  const noTopic = await append(link, { topic: 'ap-no-such-topic', senderEndOffset: end, entries: [{ originRegion: 'us-east', originTopicId: TID, originPartition: 0, hops: ['us-east'], batches }] });
  assert.equal(noTopic.errorCode, 3);
  assert.equal(tb.broker.topics.getTopic('ap-no-such-topic'), undefined, 'an append never creates a topic');
});

test('the same append twice is appended once: marker + batches exactly once, records visible once, marker invisible', async () => {
  const topic = 'ap-twice';
  await handshake(link, { topic, partitionCount: 1 });
  const { batches, messages, end } = originBatches('twice', 4, 3);
  const req = { topic, senderEndOffset: end + 5n, entries: [{ originRegion: 'us-east', originTopicId: TID, originPartition: 0, hops: ['us-east'], batches }] };
  const statsBefore = { ...tb.broker.replicationTarget.stats };
  const first = await append(link, req);
  assert.deepEqual(first, { errorCode: 0, errorMessage: null, senderCursor: end + 5n, appendedBatches: 4, duplicateBatches: 0 });
  const second = await append(link, req);
  assert.deepEqual(second, { errorCode: 0, errorMessage: null, senderCursor: end + 5n, appendedBatches: 0, duplicateBatches: 4 });
  const stats = tb.broker.replicationTarget.stats;
  assert.equal(stats.appendedBatches - statsBefore.appendedBatches, 4);
  assert.equal(stats.duplicateBatches - statsBefore.duplicateBatches, 4);
  assert.equal(stats.appendedBytes - statsBefore.appendedBytes, batches.reduce((n, b) => n + b.batch.length, 0));

  // On disk: one marker, then the four batches verbatim (bytes after the base offset identical).
  const stored = await logBatches(topic);
  assert.equal(stored.length, 5);
  const marker = decodeMarker(stored[0]);
  assert.ok(marker, 'the first batch is the marker');
  assert.deepEqual(marker, {
    originRegion: 'us-east',
    originTopicId: TID,
    originPartition: 0,
    senderRegion: 'us-east',
    senderTopicId: TID,
    hops: ['us-east'],
    batches: batches.map((b) => ({ originBaseOffset: b.originBaseOffset, senderBaseOffset: b.senderBaseOffset, crc: readBatchHeader(b.batch).crc })),
    senderEndOffset: end + 5n,
  });
  stored.slice(1).forEach((b, i) => assert.ok(b.subarray(8).equals(batches[i].batch.subarray(8)), `batch ${i} stored verbatim`));
  const onDisk = await readStoredBatches(tb.dataDir, topic, 0);
  assert.deepEqual(onDisk.map((b) => (b.attributes & 0x20) !== 0), [true, false, false, false, false]);
  assert.equal(tb.broker.topics.partition(topic, 0)!.logEndOffset, 13n, 'marker (1) + 12 records');

  // kcat (librdkafka) and KafkaJS see every record once, in order, and no marker.
  const expected = messages.map((m) => ({ key: m.key, value: m.value, origin: 'us-east' }));
  {
    const got = await new KcatClient(tb.bootstrap).consumeAll(topic);
    assert.deepEqual(
      got.map((m) => ({ key: m.key?.toString(), value: m.payload?.toString(), origin: m.headers.find(([k]) => k === 'origin')?.[1]?.toString() })),
      expected,
    );
    assert.deepEqual(got.map((m) => m.offset), Array.from({ length: 12 }, (_, i) => i + 1), 'offsets after the marker');
  }
  const kafka = new Kafka({ clientId: 'replication-target-test', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING });
  const viaKafkaJs = await collectMessages(kafka, { groupId: 'replication-target-twice', topics: [topic], count: 12 });
  assert.deepEqual(
    viaKafkaJs.map((m) => ({ key: m.key?.toString(), value: m.value?.toString(), origin: m.headers.origin?.toString() })),
    expected,
  );
});

test('entries that passed through this region, or originate here, are dropped (loop prevention)', async () => {
  const topic = 'ap-loop';
  await handshake(link, { topic, partitionCount: 1, senderRegion: 'ap-south' });
  const a = originBatches('loop-a', 2, 1);
  const b = originBatches('loop-b', 3, 1);
  const c = originBatches('loop-c', 1, 2, 10n);
  const before = endOffset(topic);
  const loopsBefore = tb.broker.replicationTarget.stats.loopDroppedBatches;
  const r = await append(link, {
    topic,
    senderRegion: 'ap-south',
    senderEndOffset: 20n,
    entries: [
      { originRegion: 'us-east', originTopicId: TID, originPartition: 0, hops: ['us-east', REGION, 'ap-south'], batches: a.batches },
      { originRegion: REGION, originTopicId: TID, originPartition: 0, hops: [REGION, 'ap-south'], batches: b.batches },
    ],
  });
  assert.equal(r.errorCode, 0);
  assert.equal(r.appendedBatches, 0);
  assert.equal(r.duplicateBatches, 5);
  assert.equal(tb.broker.replicationTarget.stats.loopDroppedBatches - loopsBefore, 5);
  assert.equal(endOffset(topic), before, 'nothing appended');
  // Mixed: the looping entry is dropped, the other one is kept.
  const mixed = await append(link, {
    topic,
    senderRegion: 'ap-south',
    senderEndOffset: 30n,
    entries: [
      { originRegion: 'us-east', originTopicId: TID, originPartition: 0, hops: ['us-east', REGION, 'ap-south'], batches: a.batches },
      { originRegion: 'sa-east', originTopicId: TID, originPartition: 0, hops: ['sa-east', 'ap-south'], batches: c.batches },
    ],
  });
  assert.equal(mixed.appendedBatches, 1);
  assert.equal(mixed.duplicateBatches, 2);
  const stored = await logBatches(topic);
  assert.equal(stored.length, 2, 'one marker, one batch');
  assert.equal(decodeMarker(stored[0])?.originRegion, 'sa-east');
  assert.deepEqual(decodeRecords(stored[1]).map((x) => x.key?.toString()), ['loop-c-k0-0', 'loop-c-k0-1']);
});

test('a corrupt batch (CRC mismatch) is refused with CORRUPT_MESSAGE and nothing of the request is appended', async () => {
  const topic = 'ap-corrupt';
  await handshake(link, { topic, partitionCount: 1 });
  const { batches, end } = originBatches('corrupt', 3, 2);
  const bad = Buffer.from(batches[1].batch);
  bad[bad.length - 3] ^= 0x01; // a byte of the last record's value
  const sent = [batches[0], { ...batches[1], batch: bad }, batches[2]];
  const before = endOffset(topic);
  const statsBefore = { ...tb.broker.replicationTarget.stats };
  const r = await append(link, { topic, senderEndOffset: end, entries: [{ originRegion: 'us-east', originTopicId: TID, originPartition: 0, hops: ['us-east'], batches: sent }] });
  assert.equal(r.errorCode, CORRUPT_MESSAGE);
  assert.match(r.errorMessage ?? '', /CRC/);
  assert.equal(r.appendedBatches, 0);
  assert.equal(endOffset(topic), before, 'nothing appended');
  assert.deepEqual(tb.broker.replicationTarget.stats, statsBefore);
  // Dedup state untouched: the good request afterwards is appended in full.
  const ok = await append(link, { topic, senderEndOffset: end, entries: [{ originRegion: 'us-east', originTopicId: TID, originPartition: 0, hops: ['us-east'], batches }] });
  assert.deepEqual({ code: ok.errorCode, appended: ok.appendedBatches, dup: ok.duplicateBatches }, { code: 0, appended: 3, dup: 0 });
});

test('a ReplicatedAppend carrying a control batch is refused with a clear error and nothing of it is appended; the broker restarts clean', async (t) => {
  // A broker of its own (it restarts), with no initial rebalance delay for the KafkaJS check.
  let own = await startBroker({ ...RECEIVING, groups: { initialRebalanceDelayMs: 0 } });
  t.after(() => own.cleanup());
  let peer = new LinkClient({ address: own.bootstrap, clientId: 'replication-test', requestTimeoutMs: 10_000 });
  t.after(() => peer.close());
  const topic = 'poison';
  assert.equal((await handshake(peer, { topic, partitionCount: 1 })).errorCode, 0);
  const { batches, messages, end } = originBatches('ok', 2, 1);
  const entries = (list: ReplicatedBatch[]) => [{ originRegion: 'us-east', originTopicId: TID, originPartition: 0, hops: ['us-east'], batches: list }];
  const poisoned = [batches[0], { originBaseOffset: 1n, senderBaseOffset: 1n, batch: garbledMarker() }, batches[1]];
  const statsBefore = { ...own.broker.replicationTarget.stats };
  const r = await append(peer, { topic, senderEndOffset: end, entries: entries(poisoned) });
  assert.equal(r.errorCode, INVALID_RECORD);
  assert.match(r.errorMessage ?? '', /control batch/);
  assert.equal(r.appendedBatches, 0);
  assert.equal(own.broker.topics.partition(topic, 0)!.logEndOffset, 0n, 'nothing appended: no marker, no data, no control batch');
  assert.deepEqual(own.broker.replicationTarget.stats, statsBefore);
  // The good batches afterwards go in whole; a restart rebuilds the dedup state cleanly.
  const ok = await append(peer, { topic, senderEndOffset: end, entries: entries(batches) });
  assert.deepEqual({ code: ok.errorCode, appended: ok.appendedBatches }, { code: 0, appended: 2 });
  peer.close();
  own = await own.restart();
  peer = new LinkClient({ address: own.bootstrap, clientId: 'replication-test', requestTimeoutMs: 10_000 });
  const hs = await handshake(peer, { topic, partitionCount: 1 });
  assert.deepEqual({ code: hs.errorCode, cursor: hs.partitions[0]?.senderCursor }, { code: 0, cursor: end });
  assert.deepEqual((await readAgreed(REGION, own.bootstrap, topic)).map((m) => String(m.value)), messages.map((m) => m.value));
});

test('partially duplicate request: only the batches above what the log holds are appended', async () => {
  const topic = 'ap-partial';
  await handshake(link, { topic, partitionCount: 1 });
  const { batches } = originBatches('partial', 5, 2);
  const r1 = await append(link, { topic, senderEndOffset: 5n, entries: [{ originRegion: 'us-east', originTopicId: TID, originPartition: 0, hops: ['us-east'], batches: batches.slice(0, 3) }] });
  assert.equal(r1.appendedBatches, 3);
  const r2 = await append(link, { topic, senderEndOffset: 9n, entries: [{ originRegion: 'us-east', originTopicId: TID, originPartition: 0, hops: ['us-east'], batches }] });
  assert.deepEqual({ appended: r2.appendedBatches, dup: r2.duplicateBatches, cursor: r2.senderCursor }, { appended: 2, dup: 3, cursor: 9n });
  const keys = (await logBatches(topic)).filter((b) => decodeMarker(b) === null).flatMap((b) => decodeRecords(b).map((x) => x.key!.toString()));
  assert.deepEqual(keys, batches.flatMap((b) => decodeRecords(b.batch).map((x) => x.key!.toString())), 'every record once, in origin order');
});

test('the handshake senderCursor reflects what was appended, per partition and per sender', async () => {
  const topic = 'hs-cursor';
  await handshake(link, { topic, partitionCount: 3 });
  const p0 = originBatches('cur0', 2, 2);
  const p2 = originBatches('cur2', 1, 4, 100n);
  await append(link, { topic, partition: 0, senderEndOffset: p0.end, entries: [{ originRegion: 'us-east', originTopicId: TID, originPartition: 0, hops: ['us-east'], batches: p0.batches }] });
  await append(link, { topic, partition: 2, senderEndOffset: 150n, entries: [{ originRegion: 'us-east', originTopicId: TID, originPartition: 2, hops: ['us-east'], batches: p2.batches }] });
  const r = await handshake(link, { topic, partitionCount: 3 });
  assert.equal(r.errorCode, 0);
  assert.deepEqual(r.partitions, [
    { partition: 0, senderCursor: 3n },
    { partition: 1, senderCursor: -1n },
    { partition: 2, senderCursor: 150n },
  ]);
  const other = await handshake(link, { topic, partitionCount: 3, senderRegion: 'ap-south' });
  assert.deepEqual(other.partitions.map((p) => p.senderCursor), [-1n, -1n, -1n], 'another sender has its own cursor');
});

test('dedup state survives a broker restart: re-sending an old request appends nothing; the cursor is rebuilt from the log', async () => {
  const own = await startBroker(RECEIVING);
  const client = new LinkClient({ address: own.bootstrap, clientId: 'replication-test-restart', requestTimeoutMs: 10_000 });
  let current = own;
  try {
    const topic = 'ap-restart';
    assert.equal((await handshake(client, { topic, partitionCount: 2 })).errorCode, 0);
    const one = originBatches('rs1', 3, 2);
    const two = originBatches('rs2', 2, 1, one.end + 1n);
    const req1 = { topic, partition: 1, senderEndOffset: one.end, entries: [{ originRegion: 'us-east', originTopicId: TID, originPartition: 1, hops: ['us-east'], batches: one.batches }] };
    const req2 = { topic, partition: 1, senderEndOffset: two.end + 3n, entries: [{ originRegion: 'us-east', originTopicId: TID, originPartition: 1, hops: ['us-east'], batches: two.batches }] };
    assert.equal((await append(client, req1)).appendedBatches, 3);
    assert.equal((await append(client, req2)).appendedBatches, 2);
    const endBefore = current.broker.topics.partition(topic, 1)!.logEndOffset;
    assert.equal(endBefore, 2n + 6n + 2n);

    current = await current.restart();
    const hs = await handshake(client, { topic, partitionCount: 2 });
    assert.equal(hs.errorCode, 0, hs.errorMessage ?? '');
    assert.deepEqual(hs.partitions, [
      { partition: 0, senderCursor: -1n },
      { partition: 1, senderCursor: two.end + 3n },
    ]);
    for (const req of [req1, req2]) {
      const again = await append(client, req);
      assert.equal(again.errorCode, 0);
      assert.equal(again.appendedBatches, 0);
      assert.equal(again.duplicateBatches, req.entries[0].batches.length);
    }
    assert.equal(current.broker.topics.partition(topic, 1)!.logEndOffset, endBefore, 'nothing appended after the restart');
    assert.equal(current.broker.replicationTarget.stats.appendedBatches, 0);
    const onDisk = await readStoredBatches(current.dataDir, topic, 1);
    assert.equal(onDisk.length, 7, '2 markers + 5 batches');
  } finally {
    client.close();
    await current.cleanup();
  }
});

test('a torn replicated append: after a restart the handshake cursor is the end of the last complete run, and a resend completes the run exactly once', async () => {
  const own = await startBroker(RECEIVING);
  const client = new LinkClient({ address: own.bootstrap, clientId: 'replication-test-torn', requestTimeoutMs: 10_000 });
  let current = own;
  try {
    const topic = 'ap-torn';
    const sender = 'ap-south'; // a relay hub: its own data, then a run it received from us-east
    assert.equal((await handshake(client, { topic, partitionCount: 1, senderRegion: sender })).errorCode, 0);
    // ap-south's log: its own batches at 0..3, then a us-east run: marker at 4, batches at 5, 7, 9 (2 records each).
    const own1 = originBatches('hub', 2, 2, 0n);
    const relayed = originBatches('relayed', 3, 2, 100n).batches.map((b, i) => ({ ...b, senderBaseOffset: 5n + BigInt(i * 2) }));
    const req1 = { topic, senderRegion: sender, senderEndOffset: 3n, entries: [{ originRegion: sender, originTopicId: TID, originPartition: 0, hops: [sender], batches: own1.batches }] };
    const req2 = { topic, senderRegion: sender, senderEndOffset: 10n, entries: [{ originRegion: 'us-east', originTopicId: TID, originPartition: 0, hops: ['us-east', sender], batches: relayed }] };
    assert.equal((await append(client, req1)).appendedBatches, 2);
    assert.equal((await append(client, req2)).appendedBatches, 3);
    const sizes = (await logBatches(topic, 0, current)).map((b) => b.length);
    assert.equal(sizes.length, 1 + 2 + 1 + 3, 'marker, 2 batches, marker, 3 batches');
    await current.stop();
    // A crash tore the second append: cut the file in the middle of its last batch.
    const cut = sizes.slice(0, 6).reduce((n, x) => n + x, 0) + Math.floor(sizes[6] / 2);
    const file = path.join(current.dataDir, 'logs', `${topic}-0`, '00000000000000000000.log');
    await fs.truncate(file, cut);
    current = await current.restart();
    assert.equal(current.broker.topics.partition(topic, 0)!.logEndOffset, 1n + 4n + 1n + 4n, 'recovery kept the second marker and two of its batches');

    const hs = await handshake(client, { topic, partitionCount: 1, senderRegion: sender });
    assert.equal(hs.errorCode, 0);
    // ap-south resumes at cursor + 1 with a fresh RunTracker over its own log. At 9 it would
    // read the last batch of the us-east run without its marker, i.e. as ap-south's own data.
    assert.equal(hs.partitions[0].senderCursor, 3n, `cursor ${hs.partitions[0].senderCursor}: ap-south must resume at a run boundary of its log (4, the run's marker), not inside the run`);

    const again = await append(client, req2);
    assert.deepEqual({ code: again.errorCode, appended: again.appendedBatches, dup: again.duplicateBatches }, { code: 0, appended: 1, dup: 2 });
    const keys = (await logBatches(topic, 0, current)).filter((b) => decodeMarker(b) === null).flatMap((b) => decodeRecords(b).map((x) => x.key!.toString()));
    const expected = [...own1.batches, ...relayed].flatMap((b) => decodeRecords(b.batch).map((x) => x.key!.toString()));
    assert.deepEqual(keys, expected, 'every record exactly once, in order');
  } finally {
    client.close();
    await current.cleanup();
  }
});
