import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ProducerState } from '../../src/broker/producer-state.js';
import { ProducerStates } from '../../src/broker/producer-states.js';
import { toKafkaError } from '../../src/protocol/kafka/error-mapping.js';
import { producePartition } from '../../src/broker/produce-partition.js';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { realIo } from '../../src/storage/fs-util.js';
import { encodeBatch, readBatchHeader } from '../../src/storage/record-batch.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
const dir = () => {
  const t = tmpDir();
  cleanups.push(t.cleanup);
  return t.dir;
};

const batch = (pid: bigint, epoch: number, seq: number, n = 1) =>
  encodeBatch({ records: Array.from({ length: n }, (_, i) => ({ value: Buffer.from(`${pid}/${epoch}/${seq + i}/`.padEnd(150, "x")) })), producerId: pid, producerEpoch: epoch, baseSequence: seq });

test('sequence rules: in order appends, duplicates, gaps, old and new epochs', () => {
  const s = new ProducerState(dir());
  const h = (seq: number, n = 1, epoch = 0) => readBatchHeader(batch(7n, epoch, seq, n));
  assert.equal(s.check(h(5)).kind, 'append', 'an unknown producer may start anywhere');
  s.update(h(5, 2), 100n, 101n);
  assert.deepEqual(s.check(h(5, 2)), { kind: 'duplicate', baseOffset: 100n, lastOffset: 101n, pending: undefined });
  assert.equal(s.check(h(7)).kind, 'append');
  // What a Kafka client gets: OUT_OF_ORDER_SEQUENCE_NUMBER (45), INVALID_PRODUCER_EPOCH (47).
  const kafkaCodeOf = (c: ReturnType<typeof s.check>) => (c.kind === 'error' ? toKafkaError(c.error).code : c.kind);
  assert.equal(kafkaCodeOf(s.check(h(9))), 45, 'a gap');
  assert.equal(kafkaCodeOf(s.check(h(3))), 45, 'a step back');
  s.update(h(0, 1, 2), 102n, 102n); // epoch bump to 2 at sequence 0
  assert.equal(kafkaCodeOf(s.check(h(1, 1, 1))), 47, 'an older epoch');
  assert.equal(kafkaCodeOf(s.check(h(4, 1, 3))), 45, 'a new epoch not starting at 0');
  assert.equal(s.check(h(0, 1, 3)).kind, 'append');
  assert.equal(s.check(readBatchHeader(encodeBatch({ records: [{ value: null }] }))).kind, 'append', 'non-idempotent batches are not checked');
});

test('only the last five batches are remembered, and sequences wrap at INT32_MAX', () => {
  const s = new ProducerState(dir());
  const h = (seq: number) => readBatchHeader(batch(1n, 0, seq));
  for (let i = 0; i < 7; i++) s.update(h(i), BigInt(i), BigInt(i));
  assert.equal(s.check(h(1)).kind, 'error', 'batch 1 fell out of the window: not a recognised duplicate');
  assert.equal(s.check(h(2)).kind, 'duplicate');
  const w = new ProducerState(dir());
  w.update(readBatchHeader(batch(2n, 0, 0x7fffffff)), 0n, 0n);
  assert.equal(w.check(readBatchHeader(batch(2n, 0, 0))).kind, 'append');
});

test('state survives a restart: snapshot at seal plus replay of later batches', async () => {
  const d = dir();
  let log = await PartitionLog.open(d, { segmentBytes: 1024, retentionMs: -1 });
  let states = new ProducerStates();
  const offsets: bigint[] = [];
  for (let seq = 0; seq < 40; seq += 2) {
    const r = await producePartition(log, states, batch(9n, 0, seq, 2), { sync: true });
    assert.equal(r.errorCode, 0);
    offsets.push(r.baseOffset);
  }
  assert.ok(log.segments().length > 3, 'segments sealed, so snapshots were written');
  await log.close();
  log = await PartitionLog.open(d, { segmentBytes: 1024, retentionMs: -1 });
  states = new ProducerStates();
  // A retry of the last batch after the restart is recognised...
  const dup = await producePartition(log, states, batch(9n, 0, 38, 2), { sync: true });
  assert.deepEqual([dup.errorCode, dup.baseOffset], [0, offsets[offsets.length - 1]]);
  assert.equal(log.highWatermark, 40n, 'and not appended');
  // ...a gap is refused, and the next sequence is accepted.
  assert.equal((await producePartition(log, states, batch(9n, 0, 44, 1), { sync: true })).errorCode, 45);
  assert.equal((await producePartition(log, states, batch(9n, 0, 40, 1), { sync: true })).baseOffset, 40n);
  await log.close();
});

test('a failed append is forgotten with everything after it, so a retry is appended again rather than acknowledged', async () => {
  const s = new ProducerState(dir());
  const h = (seq: number) => readBatchHeader(batch(3n, 0, seq));
  s.update(h(0), 0n, 0n);
  let fail!: (e: Error) => void;
  const pending = new Promise<unknown>((_, reject) => (fail = reject));
  pending.catch(() => {});
  s.update(h(1), 1n, 1n, Date.now(), pending);
  s.update(h(2), 2n, 2n, Date.now(), pending);
  const whileInFlight = s.check(h(1));
  assert.equal(whileInFlight.kind, 'duplicate', 'a retry while the original is in flight waits for it');
  assert.equal(whileInFlight.kind === 'duplicate' && whileInFlight.pending, pending);
  fail(new Error('ENOSPC'));
  await pending.catch(() => {});
  await new Promise((r) => setImmediate(r));
  assert.equal(s.check(h(1)).kind, 'append', 'the failed batch is no longer vouched for');
  assert.equal(s.check(h(2)).kind, 'error', 'sequence 2 would leave a gap after the forgotten 1');
  assert.equal(s.check(h(0)).kind, 'duplicate', 'the batch before the failure is still remembered');
  // A producer whose only batch failed is unknown again: any sequence may start.
  const t = new ProducerState(dir());
  const p2 = Promise.reject(new Error('EIO'));
  p2.catch(() => {});
  t.update(readBatchHeader(batch(4n, 0, 0)), 0n, 0n, Date.now(), p2);
  await new Promise((r) => setImmediate(r));
  assert.equal(t.producerCount, 0);
});

test('produce: an append that fails on disk is not answered as a duplicate on retry', async () => {
  const d = dir();
  let failWrites = false;
  const io = {
    writev: async (fd: number, bufs: Buffer[], pos: number) => {
      if (failWrites) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 });
      return realIo.writev(fd, bufs, pos);
    },
    fdatasync: (fd: number) => realIo.fdatasync(fd),
  };
  const log = await PartitionLog.open(d, { io });
  const states = new ProducerStates();
  assert.equal((await producePartition(log, states, batch(5n, 0, 0), { sync: true })).errorCode, 0);
  failWrites = true;
  const failed = await producePartition(log, states, batch(5n, 0, 1), { sync: true });
  assert.equal(failed.errorCode, 56, 'KAFKA_STORAGE_ERROR');
  const again = await producePartition(log, states, batch(5n, 0, 1), { sync: true });
  assert.equal(again.errorCode, 56, 'the retry is tried again, not acknowledged as a duplicate');
  failWrites = false;
  const ok = await producePartition(log, states, batch(5n, 0, 1), { sync: true });
  assert.equal(ok.errorCode, 0, 'once space is back the retry is appended');
  assert.equal(ok.baseOffset, 1n, 'at the offset the failed append had');
  assert.equal(log.highWatermark, 2n);
  await log.close();
});
