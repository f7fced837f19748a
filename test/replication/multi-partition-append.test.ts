/**
 * ReplicatedAppend v1 (several partitions per request) on the receiving side, driven over
 * the wire with the sender's own LinkClient and codecs against a real in-process broker
 * serving region eu-west, and the sending side's choice of version:
 *
 *   - one item refused inside a multi-partition request (out of order, a topic the
 *     policies do not take from the sender, a corrupt batch) fails that item alone: the
 *     other items, including a second item of the same partition that continues the first,
 *     are appended, in order, as kcat and KafkaJS read them;
 *   - v0 requests (a sender from before v1) still work against the new receiver, also
 *     interleaved with v1 requests in one pipeline on one connection;
 *   - RemoteRegion sends v1 only to a remote whose handshake said it serves it: against a
 *     receiver from before v1 (a stand-in server, since no older Meridian runs here: it
 *     answers the handshake without the maxAppendVersion field and takes v0 appends only)
 *     every append goes alone as v0; against the real broker, appends submitted together
 *     leave in one v1 request, and one of them refused there fails alone.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { LinkClient } from '../../src/replication/link-client.js';
import { RemoteRegion } from '../../src/replication/remote-region.js';
import {
  readAppendResponse,
  readAppendResponseV1,
  readHandshakeResponse,
  ReplicationApiKey,
  writeAppendRequest,
  writeAppendRequestV1,
  writeAppendResponse,
  writeHandshakeRequest,
  writeHandshakeResponse,
  type AppendResponse,
  type PartitionAppend,
} from '../../src/replication/replication-api.js';
import { Reader } from '../../src/protocol/kafka/reader.js';
import { Writer } from '../../src/protocol/kafka/writer.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { readAgreed } from '../helpers/replication-check.js';
import { originBatches } from '../helpers/replication-link.js';
import { link as policyLink, logger } from '../helpers/worker-harness.js';

const REGION = 'eu-west';
const SENDER = 'us-east';
const TID = 'sender-topic-id';
const CORRUPT_MESSAGE = 2;
const CLUSTER_AUTHORIZATION_FAILED = 31;
const OUT_OF_ORDER_SEQUENCE_NUMBER = 45;

let tb: TestBroker;
let client: LinkClient;

before(async () => {
  tb = await startBroker({
    region: REGION,
    replication: {
      regions: [REGION, SENDER].map((name) => ({ name, address: '127.0.0.1:9' })),
      // Topics named ok-* are taken from us-east; any other topic from no one.
      policies: [{ name: 'ok', topics: 'ok-*', topology: 'aggregation', sources: [SENDER], target: REGION }],
    },
  });
  client = new LinkClient({ address: tb.bootstrap, clientId: 'multi-append-test', requestTimeoutMs: 10_000 });
});

after(async () => {
  client?.close();
  await tb?.cleanup();
});

async function handshake(topic: string, partitionCount: number): Promise<number> {
  const r = readHandshakeResponse(
    await client.request(ReplicationApiKey.Handshake, 0, (w) => writeHandshakeRequest(w, { targetRegion: REGION, senderRegion: SENDER, senderTopicId: TID, topic, partitionCount, createIfMissing: true, dr: null })),
  );
  assert.equal(r.errorCode, 0, r.errorMessage ?? '');
  return r.maxAppendVersion;
}

/** One item: the sender's own batches `from`..`from+count-1` of `tag`, continuing from `continuesFrom`. */
function item(topic: string, partition: number, tag: string, from: bigint, count: number, continuesFrom: bigint): PartitionAppend {
  const { batches, end } = originBatches(tag, count, from);
  return { topic, partition, senderTopicId: TID, continuesFrom, senderEndOffset: end, entries: [{ originRegion: SENDER, originTopicId: TID, originPartition: partition, hops: [SENDER], batches }] };
}

function appendV1(items: PartitionAppend[]): Promise<AppendResponse[]> {
  return client.request(ReplicationApiKey.Append, 1, (w) => writeAppendRequestV1(w, { targetRegion: REGION, senderRegion: SENDER, partitions: items })).then(readAppendResponseV1);
}

function appendV0(it: PartitionAppend): Promise<AppendResponse> {
  return client.request(ReplicationApiKey.Append, 0, (w) => writeAppendRequest(w, { targetRegion: REGION, senderRegion: SENDER, ...it })).then(readAppendResponse);
}

/** Values of a topic's records per partition, as kcat and KafkaJS both read them. */
async function valuesIn(topic: string): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const r of await readAgreed(`${topic} in ${REGION}`, tb.bootstrap, topic)) out.set(r.partition, [...(out.get(r.partition) ?? []), String(r.value)]);
  return out;
}

const values = (tag: string, from: number, count: number) => Array.from({ length: count }, (_, i) => `${tag} value ${from + i}`);

test('one partition refused inside a multi-partition request does not fail or reorder the others', { timeout: 120_000 }, async () => {
  assert.equal(await handshake('ok-a', 1), 1, 'the handshake response says the receiver serves v1');
  await handshake('ok-b', 2);
  await handshake('ok-c', 1);
  await tb.broker.topics.createTopic('closed', 1); // exists here, but no policy takes it from us-east
  const corrupt = item('ok-c', 0, 'c', 0n, 1, -1n);
  const bad = corrupt.entries[0].batches[0].batch;
  bad[bad.length - 1] ^= 0xff; // a record byte: the batch CRC no longer matches

  const results = await appendV1([
    item('ok-a', 0, 'a', 0n, 3, -1n),
    item('ok-b', 0, 'b0', 0n, 2, 7n), // the receiver holds nothing of it: a gap
    item('closed', 0, 'x', 0n, 1, -1n),
    corrupt,
    item('ok-a', 0, 'a', 3n, 2, 2n), // continues the first item of this request
    item('ok-b', 1, 'b1', 0n, 2, -1n),
  ]);
  assert.deepEqual(
    results.map((r) => r.errorCode),
    [0, OUT_OF_ORDER_SEQUENCE_NUMBER, CLUSTER_AUTHORIZATION_FAILED, CORRUPT_MESSAGE, 0, 0],
    JSON.stringify(results.map((r) => r.errorMessage)),
  );
  assert.match(results[1].errorMessage ?? '', /holds us-east's log up to -1, but the request continues from 7/);
  assert.match(results[2].errorMessage ?? '', /takes topic closed from region us-east by no policy/);
  // senderCursor is what the receiver holds when the item is answered: for the first item
  // of ok-a, possibly already the second's end.
  assert.deepEqual(
    [results[0], results[4], results[5]].map((r) => [r.appendedBatches, r.duplicateBatches]),
    [
      [3, 0],
      [2, 0],
      [2, 0],
    ],
  );
  assert.ok(results[0].senderCursor === 2n || results[0].senderCursor === 4n, String(results[0].senderCursor));
  assert.deepEqual([results[4].senderCursor, results[5].senderCursor], [4n, 1n]);

  const a = await valuesIn('ok-a');
  assert.deepEqual(a.get(0), values('a', 0, 5), 'ok-a: both items, in request order');
  const b = await valuesIn('ok-b');
  assert.deepEqual([b.get(0), b.get(1)], [undefined, values('b1', 0, 2)], 'ok-b: partition 1 appended, partition 0 (refused) untouched');
  assert.equal(tb.broker.topics.partition('ok-c', 0)!.highWatermark, 0n, 'nothing of the corrupt item was written');
  assert.equal(tb.broker.topics.partition('closed', 0)!.highWatermark, 0n, 'nothing of the refused topic was written');

  // The refused partitions resume from what the receiver holds, next to one that goes on.
  const again = await appendV1([item('ok-b', 0, 'b0', 0n, 2, -1n), item('ok-a', 0, 'a', 5n, 1, 4n), item('ok-c', 0, 'c', 0n, 1, -1n)]);
  assert.deepEqual(
    again.map((r) => [r.errorCode, r.senderCursor]),
    [
      [0, 1n],
      [0, 5n],
      [0, 0n],
    ],
  );
  assert.deepEqual((await valuesIn('ok-b')).get(0), values('b0', 0, 2));
  assert.deepEqual((await valuesIn('ok-a')).get(0), values('a', 0, 6));
});

test('v0 requests still work against the new receiver, also interleaved with v1 in one pipeline', { timeout: 120_000 }, async () => {
  await handshake('ok-d', 1);
  await handshake('ok-e', 1);
  // Sent back to back without waiting: each continues from the one before, across versions.
  const [first, mixed, last] = await Promise.all([
    appendV0(item('ok-d', 0, 'd', 0n, 2, -1n)),
    appendV1([item('ok-d', 0, 'd', 2n, 2, 1n), item('ok-e', 0, 'e', 0n, 1, -1n)]),
    appendV0(item('ok-d', 0, 'd', 4n, 1, 3n)),
  ]);
  // Each answer's senderCursor is what the receiver held when it was answered: at least its own end.
  assert.deepEqual([first.errorCode, mixed[0].errorCode, mixed[1].errorCode, last.errorCode], [0, 0, 0, 0]);
  assert.ok(first.senderCursor >= 1n && mixed[0].senderCursor >= 3n, `${first.senderCursor} ${mixed[0].senderCursor}`);
  assert.deepEqual([mixed[1].senderCursor, last.senderCursor], [0n, 4n]);
  assert.deepEqual((await valuesIn('ok-d')).get(0), values('d', 0, 5));
  assert.deepEqual((await valuesIn('ok-e')).get(0), values('e', 0, 1));
  // A v0 refusal is still a v0 answer: the request's one error.
  const refused = await appendV0(item('ok-d', 0, 'd', 5n, 1, 0n));
  assert.equal(refused.errorCode, OUT_OF_ORDER_SEQUENCE_NUMBER);
});

/**
 * A stand-in for a receiver from before v1 (see the header): handshakes answered without
 * the trailing maxAppendVersion, v0 appends acknowledged, a v1 request closes the connection
 * (what an older dispatcher does with a version it does not know). Records the versions seen.
 */
async function olderReceiver(): Promise<{ port: number; versions: number[]; close: () => Promise<void> }> {
  const versions: number[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
        const frame = buf.subarray(4, 4 + buf.readInt32BE(0));
        buf = buf.subarray(4 + frame.length);
        const r = new Reader(frame);
        const apiKey = r.int16('apiKey');
        const version = r.int16('apiVersion');
        const correlationId = r.int32('correlationId');
        r.nullableString('clientId');
        const w = new Writer(256);
        if (apiKey === ReplicationApiKey.Handshake) {
          writeHandshakeResponse(w, { errorCode: 0, errorMessage: null, region: REGION, partitionCount: 4, partitions: [0, 1, 2, 3].map((partition) => ({ partition, senderCursor: -1n })), maxAppendVersion: 0 });
        } else {
          versions.push(version);
          if (version !== 0) {
            s.destroy();
            return;
          }
          writeAppendResponse(w, { errorCode: 0, errorMessage: null, senderCursor: 0n, appendedBatches: 1, duplicateBatches: 0 });
        }
        // The older handshake response ends before maxAppendVersion (the last two bytes here).
        const body = apiKey === ReplicationApiKey.Handshake ? w.toBuffer().subarray(0, w.length - 2) : w.toBuffer();
        const head = Buffer.alloc(8);
        head.writeInt32BE(4 + body.length, 0);
        head.writeInt32BE(correlationId, 4);
        s.write(Buffer.concat([head, body]));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    versions,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Four appends, one per partition of `topic`, submitted in the same turn. */
async function fourAppends(remote: RemoteRegion, topic: string): Promise<AppendResponse[]> {
  const ac = new AbortController();
  return Promise.all([0, 1, 2, 3].map((p) => remote.append(policyLink(REGION, false), item(topic, p, `${topic}-${p}`, 0n, 1, -1n), 100, ac.signal)));
}

test('RemoteRegion sends several partitions per request only to a remote whose handshake says it serves v1', { timeout: 60_000 }, async (t) => {
  const older = await olderReceiver();
  t.after(() => older.close());
  const toOlder = new RemoteRegion({ region: SENDER, remote: REGION, address: `127.0.0.1:${older.port}`, maxInFlightBytes: 1 << 20, concurrency: 16, requestTimeoutMs: 10_000, partitionCountOf: () => 4, logger });
  t.after(() => toOlder.close());
  assert.equal(await toOlder.resumePoint('ok-f', TID, 0, 4), -1n);
  assert.equal(toOlder.appendVersion, 0, 'no maxAppendVersion in the answer: v0');
  const old = await fourAppends(toOlder, 'ok-f');
  assert.deepEqual(old.map((r) => r.errorCode), [0, 0, 0, 0]);
  assert.deepEqual(older.versions, [0, 0, 0, 0], 'one v0 request per partition');
  assert.deepEqual([toOlder.counters.appendRequests, toOlder.counters.partitionAppends], [4, 4]);

  const toNew = new RemoteRegion({ region: SENDER, remote: REGION, address: tb.bootstrap, maxInFlightBytes: 1 << 20, concurrency: 16, requestTimeoutMs: 10_000, partitionCountOf: () => 4, logger });
  t.after(() => toNew.close());
  assert.equal(toNew.appendVersion, 0, 'v0 until a handshake says more');
  assert.equal(await toNew.resumePoint('ok-g', TID, 0, 4), -1n);
  assert.equal(toNew.appendVersion, 1);
  const fresh = await fourAppends(toNew, 'ok-g');
  assert.deepEqual(fresh.map((r) => [r.errorCode, r.senderCursor]), [0, 1, 2, 3].map(() => [0, 0n]));
  assert.deepEqual([toNew.counters.appendRequests, toNew.counters.partitionAppends, toNew.counters.maxPartitionsPerRequest], [1, 4, 4], 'the four appends left in one request');
  // One partition refused inside the shared request: only its append fails.
  const ac = new AbortController();
  const next = [0, 1, 2, 3].map((p) =>
    toNew.append(policyLink(REGION, false), item('ok-g', p, `ok-g-${p}`, 1n, 1, p === 2 ? 5n : 0n), 100, ac.signal).then(
      (r) => `ok ${r.senderCursor}`,
      (err: Error) => `refused: ${err.message}`,
    ),
  );
  const outcomes = await Promise.all(next);
  assert.deepEqual([toNew.counters.appendRequests, toNew.counters.partitionAppends], [2, 8], 'the four appends left in one request');
  assert.deepEqual([outcomes[0], outcomes[1], outcomes[3]], ['ok 1', 'ok 1', 'ok 1']);
  assert.match(outcomes[2], /^refused: .*continues from 5/);
  const g = await valuesIn('ok-g');
  assert.deepEqual(
    [0, 1, 2, 3].map((p) => g.get(p)),
    [0, 1, 2, 3].map((p) => values(`ok-g-${p}`, 0, p === 2 ? 1 : 2)),
  );
});
