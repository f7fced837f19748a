/**
 * Local reads of sealed segments check every batch's CRC-32C (once per byte, then trusted):
 * a byte flipped on disk after the segment sealed is reported (log line, `corruptReads`,
 * KAFKA_STORAGE_ERROR to a client) and never served, while the batches before it still are.
 * A file read back whole against its seal-time CRC (the offloader's upload check) is trusted.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { MeridianError } from '../../src/errors.js';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { encodeBatch, storedBatches } from '../../src/storage/record-batch.js';
import { VerifiedRanges } from '../../src/storage/verified-ranges.js';
import { startBroker } from '../helpers/broker.js';
import { waitFor } from '../helpers/wait.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void | Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const value = (i: number) => Buffer.from(`record-${i}-`.padEnd(200, 'v'));

/** Flips one byte inside the value of the `n`th batch of a sealed segment file. */
function corruptBatch(logPath: string, n: number): void {
  const file = fs.readFileSync(logPath);
  let pos = 0;
  for (let i = 0; i < n; i++) pos += file.readInt32BE(pos + 8) + 12;
  const at = pos + 61 + 20;
  const fd = fs.openSync(logPath, 'r+');
  fs.writeSync(fd, Buffer.from([file[at] ^ 0x40]), 0, 1, at);
  fs.closeSync(fd);
}

test('a corrupt batch in a sealed segment is refused with CORRUPT_LOG; the batches before it are served', async () => {
  const t = tmpDir();
  cleanups.push(t.cleanup);
  const log = await PartitionLog.open(t.dir, { retentionMs: -1 });
  cleanups.push(() => log.close());
  for (let i = 0; i < 4; i++) await log.append(encodeBatch({ records: [{ value: value(i) }] }));
  await log.roll();
  const sealed = log.segments()[0];
  assert.ok(sealed.sealed);
  corruptBatch(sealed.logPath, 2);

  const whole = await log.read(0n, 1 << 20);
  assert.deepEqual(
    storedBatches(whole.records).map((b) => b.h.baseOffset),
    [0n, 1n],
    'a read spanning the corrupt batch stops before it',
  );
  await assert.rejects(log.read(2n, 1 << 20), (err: unknown) => err instanceof MeridianError && err.code === 'CORRUPT_LOG' && /CRC-32C/.test(err.message));
  const after = await log.read(3n, 1 << 20);
  assert.deepEqual(storedBatches(after.records).map((b) => b.h.baseOffset), [3n], 'the batch after the corrupt one is still readable');
  assert.equal(log.stats().corruptReads, 2);
});

test('each byte is checked once: a verified range is trusted, a byte flipped after that is not rechecked', async () => {
  const t = tmpDir();
  cleanups.push(t.cleanup);
  const log = await PartitionLog.open(t.dir, { retentionMs: -1 });
  cleanups.push(() => log.close());
  for (let i = 0; i < 3; i++) await log.append(encodeBatch({ records: [{ value: value(i) }] }));
  await log.roll();
  await log.read(0n, 1 << 20);
  // The cache is what keeps consume throughput: prove it is used (a later flip goes unseen
  // on this path; recovery and offload checksums are the other lines of defence).
  corruptBatch(log.segments()[0].logPath, 1);
  const again = await log.read(0n, 1 << 20);
  assert.equal(storedBatches(again.records).length, 3);
  assert.equal(log.stats().corruptReads, 0);
});

test('a segment whose whole file matched its seal-time CRC (the offloader reads it back for every upload) is not checked again; a wrong CRC or one taken from the file itself is not trusted', async () => {
  const t = tmpDir();
  cleanups.push(t.cleanup);
  const log = await PartitionLog.open(t.dir, { retentionMs: -1 });
  cleanups.push(() => log.close());
  for (let s = 0; s < 2; s++) {
    for (let i = 0; i < 3; i++) await log.append(encodeBatch({ records: [{ value: value(3 * s + i) }] }));
    await log.roll();
  }
  const [first, second] = log.segments();
  log.trustVerifiedFile(first.baseOffset, first.dataCrc32c);
  log.trustVerifiedFile(second.baseOffset, second.dataCrc32c ^ 1);
  const a = await log.read(0n, 1 << 20);
  assert.deepEqual(storedBatches(a.records).map((b) => b.h.baseOffset), [0n, 1n, 2n]);
  assert.equal(log.stats().bytesCrcChecked, 0, 'the verified file is served without checking its batches again');
  const b = await log.read(3n, 1 << 20);
  assert.deepEqual(storedBatches(b.records).map((x) => x.h.baseOffset), [3n, 4n, 5n]);
  assert.equal(log.stats().bytesCrcChecked, second.sizeBytes, 'a CRC other than the seal-time one vouches for nothing');

  // A truncation's reopen takes the data CRC of what remains from the file as found: a
  // match with it proves nothing about the batches, so the segment is checked as before.
  const t2 = tmpDir();
  cleanups.push(t2.cleanup);
  const cut = await PartitionLog.open(t2.dir, { retentionMs: -1 });
  cleanups.push(() => cut.close());
  for (let i = 0; i < 3; i++) await cut.append(encodeBatch({ records: [{ value: value(i) }] }));
  await cut.truncateTo(2n);
  await cut.append(encodeBatch({ records: [{ value: value(9) }] }));
  await cut.roll();
  const [reopened] = cut.segments();
  assert.ok(reopened.sealed);
  cut.trustVerifiedFile(reopened.baseOffset, reopened.dataCrc32c);
  const c = await cut.read(0n, 1 << 20);
  assert.equal(storedBatches(c.records).length, 3);
  assert.equal(cut.stats().bytesCrcChecked, reopened.sizeBytes);
});

test('verified ranges merge, cover and reset past their bound', () => {
  const r = new VerifiedRanges(3);
  r.add(0, 10);
  r.add(20, 30);
  assert.ok(r.covers(0, 10));
  assert.ok(!r.covers(5, 25));
  r.add(10, 20);
  assert.equal(r.size, 1);
  assert.ok(r.covers(5, 25));
  r.add(40, 50);
  r.add(60, 70);
  r.add(80, 90);
  assert.equal(r.size, 1, 'past the bound only the newest range is kept');
  assert.ok(r.covers(80, 90));
  assert.ok(!r.covers(0, 10));
});

test('through the broker: a KafkaJS consumer gets the records before the corrupt batch and never the corrupt one', async () => {
  const tb = await startBroker({ topics: { autoCreate: true, defaultPartitions: 1 } });
  cleanups.push(() => tb.cleanup());
  const kafka = new Kafka({ brokers: [tb.bootstrap], clientId: 'read-integrity', logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'integrity', numPartitions: 1 }] });
  await admin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  // One batch per send: batches 0, 1 and 2 of the segment.
  for (let i = 0; i < 3; i++) await producer.send({ topic: 'integrity', messages: [{ key: `k${i}`, value: value(i) }] });
  await producer.disconnect();
  const log = tb.broker.topics.partition('integrity', 0)!;
  await log.roll();
  corruptBatch(log.segments()[0].logPath, 1);

  const consumer = kafka.consumer({ groupId: 'integrity-reader' });
  await consumer.connect();
  await consumer.subscribe({ topic: 'integrity', fromBeginning: true });
  const got: string[] = [];
  await consumer.run({ eachMessage: async ({ message }) => void got.push(message.value!.toString()) });
  try {
    await waitFor('the record before the corrupt batch', () => (got.length >= 1 ? true : undefined), 30_000);
    // The consumer has asked for the corrupt batch (the broker counted it) and was refused.
    await waitFor('the broker to refuse the corrupt batch', () => (log.stats().corruptReads > 0 ? true : undefined), 30_000);
    assert.deepEqual(got, [value(0).toString()], 'only the record before the corruption was delivered');
  } finally {
    await consumer.disconnect();
  }
});
