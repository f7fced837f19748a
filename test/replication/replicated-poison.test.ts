/**
 * A poison batch (valid CRC, wrong records) arriving through the internal replication API
 * is refused, whole request and all, and nothing is appended; the sender's own RemoteRegion
 * client turns the refusal into a permanent (non-retriable) error, which is what puts a
 * replication worker's link in state `error` (worker.ts) rather than retrying it forever.
 * A real in-process broker serves region eu-west.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { MeridianError } from '../../src/errors.js';
import { createLogger } from '../../src/logging.js';
import { withRunLog } from '../helpers/run-log.js';
import type { Link, Policy } from '../../src/replication/policy.js';
import { RemoteRegion } from '../../src/replication/remote-region.js';
import type { ReplicatedBatch } from '../../src/replication/replication-api.js';
import { BATCH_HEADER_BYTES, encodeBatch, LOG_OVERHEAD, readBatchHeader } from '../../src/storage/record-batch.js';
import { reseal } from '../helpers/batch-mutations.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { receivingFrom, TargetLink } from '../helpers/replication-link.js';

const REGION = 'eu-west';
const TID = 'topic-id';
const CORRUPT_MESSAGE = 2;
const INVALID_RECORD = 87;

let tb: TestBroker;
let link: TargetLink;

before(async () => {
  tb = await startBroker({ region: REGION, replication: receivingFrom(REGION, ['us-east']) });
  link = new TargetLink({ address: tb.bootstrap, targetRegion: REGION, senderTopicId: TID });
});
const handshake = (topic: string) => link.senderCursor(topic);
const append = (topic: string, batches: ReplicatedBatch[], senderEndOffset: bigint) => link.append(topic, batches, senderEndOffset);

after(async () => {
  link?.close();
  await tb?.cleanup();
});

function batchAt(offset: bigint, values: string[]): Buffer {
  return encodeBatch({ records: values.map((v) => ({ key: Buffer.from(`k-${v}`), value: Buffer.from(v) })), baseOffset: offset, baseTimestamp: 1_700_000_000_000n });
}

/** Record 0's key-length varint set to -64: the CRC is recomputed, the records are wrong. */
function poisonAt(offset: bigint): Buffer {
  const b = batchAt(offset, ['poison', 'more']);
  b[BATCH_HEADER_BYTES + 4] = 0x7f;
  return reseal(b);
}

const endOffset = (topic: string) => tb.broker.topics.partition(topic, 0)!.logEndOffset;

test('a poison batch in a replicated append is refused with the rule it broke, and nothing is appended', async () => {
  const topic = 'rp-poison';
  assert.equal(await handshake(topic), -1n);
  // A good batch first, then the poison one, in one request: neither is written.
  const r = await append(
    topic,
    [
      { originBaseOffset: 0n, senderBaseOffset: 0n, batch: batchAt(0n, ['a', 'b']) },
      { originBaseOffset: 2n, senderBaseOffset: 2n, batch: poisonAt(2n) },
    ],
    3n,
  );
  assert.equal(r.errorCode, CORRUPT_MESSAGE, r.errorMessage ?? '');
  for (const part of ['us-east', 'origin offset 2', 'record 0', 'key length -64']) assert.ok(r.errorMessage?.includes(part), `message ${JSON.stringify(r.errorMessage)} names ${part}`);
  assert.equal(endOffset(topic), 0n, 'nothing appended, not even the good batch or a marker');
  assert.equal(await handshake(topic), -1n, 'the sender cursor did not move');

  const txn = batchAt(0n, ['t']);
  txn.writeInt16BE(0x10, 21);
  const t = await append(topic, [{ originBaseOffset: 0n, senderBaseOffset: 0n, batch: reseal(txn) }], 0n);
  assert.equal(t.errorCode, INVALID_RECORD);
  assert.match(t.errorMessage ?? '', /transactions are not supported/);
  assert.equal(endOffset(topic), 0n);

  // The same data without the poison goes through.
  const ok = await append(topic, [{ originBaseOffset: 0n, senderBaseOffset: 0n, batch: batchAt(0n, ['a', 'b']) }], 1n);
  assert.equal(ok.errorCode, 0, ok.errorMessage ?? '');
  assert.ok(endOffset(topic) > 0n);
});

test('a replicated batch whose maxTimestamp is not its records\' maximum is accepted verbatim, CRC and all', async () => {
  const topic = 'rp-max-ts';
  await handshake(topic);
  const b = batchAt(0n, ['x', 'y']);
  b.writeBigInt64BE(-1n, 35);
  reseal(b);
  const crc = readBatchHeader(b).crc;
  const r = await append(topic, [{ originBaseOffset: 0n, senderBaseOffset: 0n, batch: b }], 1n);
  assert.equal(r.errorCode, 0, r.errorMessage ?? '');
  const { records } = await tb.broker.topics.partition(topic, 0)!.read(0n, 1 << 20);
  const stored: Buffer[] = [];
  for (let p = 0; p < records.length; p += records.readInt32BE(p + 8) + LOG_OVERHEAD) stored.push(records.subarray(p, p + records.readInt32BE(p + 8) + LOG_OVERHEAD));
  const data = stored.map((s) => readBatchHeader(s)).find((h) => h.crc === crc);
  assert.ok(data, 'the batch is stored with the CRC the marker recorded');
  assert.equal(data.maxTimestamp, -1n, 'not rewritten');
});

test('the sender sees the refusal as permanent: its link goes to state error instead of retrying', async () => {
  const topic = 'rp-sender';
  await handshake(topic);
  const remote = new RemoteRegion({
    region: 'us-east',
    remote: REGION,
    address: tb.bootstrap,
    maxInFlightBytes: 1 << 20,
    concurrency: 1,
    requestTimeoutMs: 10_000,
    partitionCountOf: () => 1,
    logger: createLogger({ name: 'replicated-poison-sender', ...withRunLog('warn') }),
  });
  const policy: Policy = { name: 'all', topics: ['*'], topology: 'mesh' as Policy['topology'], regions: ['us-east', REGION], edges: [], backlogQuota: -1, rateLimit: 0 };
  const l: Link = { remote: REGION, relay: false, policy };
  try {
    const entries = [{ originRegion: 'us-east', originTopicId: TID, originPartition: 0, hops: [], batches: [{ originBaseOffset: 0n, senderBaseOffset: 0n, batch: poisonAt(0n) }] }];
    await assert.rejects(
      remote.append(l, { topic, senderTopicId: TID, partition: 0, senderEndOffset: 1n, continuesFrom: -2n, entries }, 100, new AbortController().signal),
      (err: unknown) => {
        // worker.ts: `permanent = err instanceof MeridianError && !err.retriable && ...` → state 'error'.
        assert.ok(err instanceof MeridianError);
        assert.equal(err.retriable, false, 'not retriable');
        assert.match(err.message, /refused the append: .*key length -64/);
        return true;
      },
    );
    assert.equal(endOffset(topic), 0n);
  } finally {
    remote.close();
  }
});
