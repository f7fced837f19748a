/**
 * Poison batches (issue 9) against a real broker over the Kafka protocol: batches with a
 * valid CRC but wrong contents are refused with CORRUPT_MESSAGE or INVALID_RECORD and
 * nothing is written; then ~2,000 random mutations of valid batches (uncompressed and gzip,
 * keys, values, headers), each produced with its CRC recomputed, and the whole partition
 * read back by KafkaJS and by kcat: both must see exactly the accepted records, in order,
 * and reach the end (a poison batch in the log would leave them stuck at its offset). A
 * client's control batch (a forged or garbled replication marker, a COMMIT) is refused too.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { Kafka, logLevel } from 'kafkajs';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { encodeMarker } from '../../src/replication/marker.js';
import { Attributes, BATCH_HEADER_BYTES, decodeRecords, encodeBatch, readBatchHeader, type DecodedRecord } from '../../src/storage/record-batch.js';
import { applyEdits, editArb, gzipBatch, kafkaJsHeaders, plainView, recordArb, reseal } from '../helpers/batch-mutations.js';
import { garbledMarker, makeBatch } from '../helpers/batches.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { collectMessages } from '../helpers/kafkajs-collect.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { RawClient } from '../helpers/raw-kafka.js';
import { readAgreed } from '../helpers/replication-check.js';

const CORRUPT_MESSAGE = 2;
const INVALID_RECORD = 87;

let tb: TestBroker;
let kafka: Kafka;

before(async () => {
  // No initial rebalance delay: the checks read with fresh KafkaJS groups.
  tb = await startBroker({ kafka: { maxFrameBytes: 4 * 1024 * 1024 }, log: { maxBatchBytes: 1024 * 1024 }, groups: { initialRebalanceDelayMs: 0 } });
  kafka = new Kafka({ brokers: [tb.bootstrap], clientId: 'poison-test', logLevel: logLevel.NOTHING });
});
after(() => tb?.cleanup());

async function createTopic(topic: string, numPartitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

interface PartitionAnswer {
  index: number;
  errorCode: number;
  baseOffset: bigint;
}

/** One Produce v7 (acks=1) carrying `records` for each listed partition of `topic`. */
async function produce(c: RawClient, topic: string, partitions: Array<{ index: number; records: Buffer }>): Promise<PartitionAnswer[]> {
  const r = await c.request(ApiKey.Produce, 7, { transactionalId: null, acks: 1, timeoutMs: 30_000, topicData: [{ name: topic, partitionData: partitions }] });
  return r.body.responses[0].partitionResponses as PartitionAnswer[];
}

const highWatermark = (topic: string, partition = 0) => tb.broker.topics.partition(topic, partition)!.highWatermark;

const valid = () =>
  encodeBatch({
    records: [
      { key: Buffer.from('key-1'), value: Buffer.from('a value'), headers: [{ key: 'h', value: Buffer.from('x') }] },
      { key: null, value: Buffer.from('another value') },
    ],
    baseTimestamp: 1_700_000_000_000n,
  });

test('the poison batches of issue 9 are refused and nothing is written', async () => {
  await createTopic('poison', 2);
  const c = await RawClient.connect(tb.port);
  try {
    const poisons: Array<[string, Buffer, number]> = [];
    for (const codec of [1, 2, 3, 4]) {
      const b = valid();
      b.writeInt16BE(codec, 21);
      poisons.push([`compression codec ${codec} set on uncompressed records`, reseal(b), CORRUPT_MESSAGE]);
    }
    const recordLength = valid();
    recordLength[BATCH_HEADER_BYTES] = 0xff;
    poisons.push(['corrupted record-length varint', reseal(recordLength), CORRUPT_MESSAGE]);
    const longer = valid();
    longer[BATCH_HEADER_BYTES] += 2; // zig-zag: one byte longer than its fields
    poisons.push(['record length one byte too long', reseal(longer), CORRUPT_MESSAGE]);
    const keyLength = valid();
    keyLength[BATCH_HEADER_BYTES + 4] = 0x7f; // the key length varint: -64
    poisons.push(['corrupted key-length varint', reseal(keyLength), CORRUPT_MESSAGE]);
    const keyTooLong = valid();
    keyTooLong[BATCH_HEADER_BYTES + 4] = 0x60; // 48 bytes, more than the record holds
    poisons.push(['key length past the record', reseal(keyTooLong), CORRUPT_MESSAGE]);
    const transactional = valid();
    transactional.writeInt16BE(Attributes.transactional, 21);
    poisons.push(['transactional bit with no transaction', reseal(transactional), INVALID_RECORD]);
    const offsets = encodeBatch({ records: [{ value: Buffer.from('a') }] });
    offsets[BATCH_HEADER_BYTES + 3] = 0x02; // offset delta 1 for record 0
    poisons.push(['inner offset delta not consecutive', reseal(offsets), INVALID_RECORD]);

    for (const [what, batch, code] of poisons) {
      const before = highWatermark('poison');
      const [answer] = await produce(c, 'poison', [{ index: 0, records: batch }]);
      assert.equal(answer.errorCode, code, `${what}: error ${answer.errorCode}, expected ${code}`);
      assert.equal(highWatermark('poison'), before, `${what}: nothing written`);
    }

    // A poison batch after a good one in the same request: neither is written. The other
    // partition of the same request is unaffected.
    const [p0, p1] = await produce(c, 'poison', [
      { index: 0, records: Buffer.concat([valid(), poisons[0][1]]) },
      { index: 1, records: valid() },
    ]);
    assert.equal(p0.errorCode, CORRUPT_MESSAGE);
    assert.equal(highWatermark('poison', 0), 0n);
    assert.equal(p1.errorCode, 0);
    assert.equal(highWatermark('poison', 1), 2n);

    // The partition still takes good batches, and a consumer reads them to the end.
    const [ok] = await produce(c, 'poison', [{ index: 0, records: valid() }]);
    assert.equal(ok.errorCode, 0);
    assert.equal(ok.baseOffset, 0n);
  } finally {
    c.close();
  }
  const read = await new KcatClient(tb.bootstrap).consumeAll('poison', ['-p', '0']);
  assert.deepEqual(
    read.map((m) => [m.offset, m.key?.toString() ?? null, m.payload?.toString()]),
    [
      [0, 'key-1', 'a value'],
      [1, null, 'another value'],
    ],
  );
});

test('a client producing a control batch (a forged or garbled marker, a COMMIT) gets INVALID_RECORD and nothing is appended', async (t) => {
  const c = await RawClient.connect(tb.port);
  t.after(() => c.close());
  const topic = 'forged';
  await createTopic(topic, 1);
  // Only the receiving side of geo-replication writes markers, and only transactions write
  // COMMIT/ABORT: a producing client's control batch is refused whole.
  const forged = encodeMarker({ originRegion: 'us-east', originTopicId: 'us-tid', originPartition: 0, senderRegion: 'us-east', senderTopicId: 'us-tid', hops: ['us-east'], batches: [{ originBaseOffset: 1_000_000n, senderBaseOffset: 1_000_000n, crc: readBatchHeader(makeBatch('forged')).crc }], senderEndOffset: 1_000_000n });
  const commit = encodeBatch({ records: [{ key: Buffer.from([0, 0, 0, 1]), value: Buffer.from([0, 0, 0, 0, 0, 0]) }], attributes: Attributes.control, baseTimestamp: 0n, producerId: -1n, producerEpoch: -1, baseSequence: -1 });
  for (const [what, records] of [['garbled marker', garbledMarker()], ['forged marker + data', Buffer.concat([forged, makeBatch('forged')])], ['COMMIT control batch', commit]] as const) {
    const [p] = await produce(c, topic, [{ index: 0, records }]);
    assert.equal(p.errorCode, INVALID_RECORD, `${what}: error code`);
  }
  assert.equal(tb.broker.topics.partition(topic, 0)!.logEndOffset, 0n, 'nothing appended');
  // An ordinary produce still works, and the topic holds only it.
  const [ok] = await produce(c, topic, [{ index: 0, records: encodeBatch({ records: [{ value: Buffer.from('plain') }] }) }]);
  assert.equal(ok.errorCode, 0);
  assert.deepEqual((await readAgreed('the broker', tb.bootstrap, topic)).map((m) => String(m.value)), ['plain']);
});

test('a producer\'s maxTimestamp that is not the records\' maximum is rewritten, as Kafka does', async () => {
  await createTopic('max-ts', 1);
  const b = encodeBatch({ records: [{ value: Buffer.from('a'), timestampDelta: 0 }, { value: Buffer.from('b'), timestampDelta: 900 }], baseTimestamp: 1_700_000_000_000n });
  b.writeBigInt64BE(-1n, 35);
  reseal(b);
  const c = await RawClient.connect(tb.port);
  try {
    const [answer] = await produce(c, 'max-ts', [{ index: 0, records: b }]);
    assert.equal(answer.errorCode, 0);
  } finally {
    c.close();
  }
  const { records } = await tb.broker.topics.partition('max-ts', 0)!.read(0n, 1 << 20);
  assert.equal(readBatchHeader(records).maxTimestamp, 1_700_000_000_900n, 'stored with the true max timestamp and a CRC that matches it');
});

interface Expected extends DecodedRecord {
  offset: bigint;
}

test('property: ~2,000 mutated batches; KafkaJS and kcat read back exactly the accepted records and reach the end', { timeout: 600_000 }, async () => {
  const topic = 'mutants';
  await createTopic(topic, 1);
  const c = await RawClient.connect(tb.port);
  const expected: Expected[] = [];
  const outcomes = new Map<number, number>();
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.array(recordArb, { minLength: 1, maxLength: 5 }),
        fc.constantFrom('plain', 'gzip-records', 'gzip-stream'),
        fc.array(editArb, { minLength: 1, maxLength: 3 }),
        async (records, shape, edits) => {
          const plain = encodeBatch({ records, baseTimestamp: 1_700_000_000_000n });
          const batch = shape === 'plain' ? applyEdits(plain, edits) : shape === 'gzip-records' ? gzipBatch(applyEdits(plain, edits)) : applyEdits(gzipBatch(plain), edits);
          const hw = highWatermark(topic);
          const [answer] = await produce(c, topic, [{ index: 0, records: batch }]);
          outcomes.set(answer.errorCode, (outcomes.get(answer.errorCode) ?? 0) + 1);
          if (answer.errorCode !== 0) {
            assert.ok([CORRUPT_MESSAGE, INVALID_RECORD].includes(answer.errorCode), `refused with ${answer.errorCode}`);
            assert.equal(highWatermark(topic), hw, 'a refused batch writes nothing');
            return;
          }
          // Accepted: what the batch holds, by record-batch.ts's own decoder.
          assert.equal(answer.baseOffset, hw);
          decodeRecords(plainView(batch)).forEach((r, i) => expected.push({ ...r, offset: answer.baseOffset + BigInt(i) }));
        },
      ),
      { numRuns: 2000, seed: 9 },
    );
  } finally {
    c.close();
  }
  const accepted = outcomes.get(0) ?? 0;
  assert.ok(accepted > 200 && 2000 - accepted > 200, `both outcomes are exercised: ${JSON.stringify([...outcomes])}`);
  assert.equal(BigInt(expected.length), highWatermark(topic));

  // KafkaJS: a group consumer that must get every accepted record; it fails on a deadline
  // if it gets stuck on anything in the log.
  const got = await collectMessages(kafka, { groupId: 'mutants-check', topics: [topic], count: expected.length, timeoutMs: 60_000 });
  assert.equal(got.length, expected.length);
  got.forEach((m, i) => {
    const e = expected[i];
    assert.equal(BigInt(m.offset), e.offset, `KafkaJS message #${i}`);
    assert.deepEqual(m.key, e.key, `KafkaJS key at offset ${e.offset}`);
    assert.deepEqual(m.value, e.value, `KafkaJS value at offset ${e.offset}`);
    assert.deepEqual(m.headers, kafkaJsHeaders(e.headers), `KafkaJS headers at offset ${e.offset}`);
  });

  // kcat (librdkafka): reads the partition to its end (-e) within its timeout.
  const read = await new KcatClient(tb.bootstrap).consumeAll(topic);
  assert.equal(read.length, expected.length);
  read.forEach((m, i) => {
    const e = expected[i];
    assert.equal(BigInt(m.offset), e.offset, `kcat message #${i}`);
    assert.deepEqual(m.key, e.key, `kcat key at offset ${e.offset}`);
    assert.deepEqual(m.payload, e.value, `kcat value at offset ${e.offset}`);
    // kcat prints a header name as a C string: it ends at the first NUL byte.
    assert.deepEqual(
      m.headers.map(([k, v]) => [k, v]),
      e.headers.map((h) => [h.key.split('\0')[0], h.value]),
      `kcat headers at offset ${e.offset}`,
    );
  });
});
