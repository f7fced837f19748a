/**
 * The receiving side of geo-replication never advances its dedup table or a sender's
 * resume point for an append that failed on disk: the failed batches are asked for again
 * and, once the disk takes writes, land exactly once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ReplicatedBatch } from '../../src/replication/replication-api.js';
import { realIo, type LogIo } from '../../src/storage/fs-util.js';
import { decodeRecords, encodeBatch, isControlBatch, storedBatches } from '../../src/storage/record-batch.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { receivingFrom, TargetLink } from '../helpers/replication-link.js';

const REGION = 'eu-west';
const TID = 'tid-1';
let tb: TestBroker;
let link: TargetLink;
const io: LogIo & { full: boolean } = {
  full: false,
  writev: async (fd, bufs, pos) => {
    if (io.full) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
    return realIo.writev(fd, bufs, pos);
  },
  fdatasync: (fd) => realIo.fdatasync(fd),
};

before(async () => {
  tb = await startBroker({ region: REGION, replication: receivingFrom(REGION, ['us-east']) }, undefined, { logIo: io });
  link = new TargetLink({ address: tb.bootstrap, targetRegion: REGION, senderTopicId: TID });
});
after(async () => {
  link?.close();
  await tb?.cleanup();
});

const senderCursor = (topic: string) => link.senderCursor(topic);

/** Appends `list` continuing from `continuesFrom`; the sender's end is the last batch's end. */
function append(topic: string, list: ReplicatedBatch[], continuesFrom: bigint) {
  const last = list.at(-1)!;
  return link.append(topic, list, last.senderBaseOffset + BigInt(storedBatches(last.batch)[0].h.lastOffsetDelta), continuesFrom);
}

function batches(from: number, count: number): ReplicatedBatch[] {
  return Array.from({ length: count }, (_, i) => {
    const offset = BigInt(from + i);
    return { originBaseOffset: offset, senderBaseOffset: offset, batch: encodeBatch({ records: [{ key: Buffer.from(`k${from + i}`), value: Buffer.from(`v${from + i}`) }], baseOffset: offset }) };
  });
}

test('a replicated append that fails with a full disk is not counted: the sender resumes before it and it lands once', async () => {
  const topic = 'repl-full';
  assert.equal(await senderCursor(topic), -1n);
  assert.equal((await append(topic, batches(0, 10), -1n)).errorCode, 0);
  assert.equal(await senderCursor(topic), 9n);

  io.full = true;
  const failed = await append(topic, batches(10, 10), 9n);
  assert.equal(failed.errorCode, 56, `KAFKA_STORAGE_ERROR, got ${failed.errorCode}: ${failed.errorMessage}`);
  assert.equal(await senderCursor(topic), 9n, 'the resume point did not advance past what the log holds');
  const retried = await append(topic, batches(10, 10), 9n);
  assert.equal(retried.errorCode, 56, 'while the disk is full the retry fails too, rather than being taken for a duplicate');

  io.full = false;
  const ok = await append(topic, batches(10, 10), 9n);
  assert.equal(ok.errorCode, 0, ok.errorMessage ?? '');
  assert.equal(ok.appendedBatches, 10, 'the batches are appended, not dropped as duplicates');
  assert.equal(ok.duplicateBatches, 0);
  assert.equal(await senderCursor(topic), 19n);

  const log = tb.broker.topics.partition(topic, 0)!;
  const values: string[] = [];
  for (let next = log.logStartOffset; next < log.highWatermark; ) {
    const { records } = await log.read(next, 1 << 20);
    for (const { buf, h } of storedBatches(records)) {
      if (!isControlBatch(h)) for (const r of decodeRecords(buf)) values.push(r.value!.toString());
      next = h.baseOffset + BigInt(h.lastOffsetDelta) + 1n;
    }
  }
  assert.deepEqual(values, Array.from({ length: 20 }, (_, i) => `v${i}`), 'every origin record exactly once, in order');
});
