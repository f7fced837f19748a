/**
 * Wire-level behaviour with exact bytes: framing, ordering, acks=0, unsupported versions,
 * malformed and oversize input, corrupt batches. A raw socket client sends what a test
 * chooses; a broker on 127.0.0.1 answers.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApiKey, requestHeaderVersion } from '../../src/protocol/kafka/api-keys.js';
import { Reader } from '../../src/protocol/kafka/reader.js';
import { decodeRecords, encodeBatch, readBatchHeader, storedBatches } from '../../src/storage/record-batch.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { decodeResponse, RawClient } from '../helpers/raw-kafka.js';
import { waitFor } from '../helpers/wait.js';

let tb: TestBroker;
before(async () => {
  tb = await startBroker({ kafka: { maxFrameBytes: 1024 * 1024 }, log: { maxBatchBytes: 512 * 1024 } });
});
after(() => tb.cleanup());

const metadataReq = (topics: string[] | null) => ({ topics: topics && topics.map((name) => ({ topicId: '00000000-0000-0000-0000-000000000000', name })), allowAutoTopicCreation: true, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false });

function produceReq(topic: string, partition: number, records: Buffer | null, acks = -1) {
  return { transactionalId: null, acks, timeoutMs: 30_000, topicData: [{ name: topic, partitionData: [{ index: partition, records }] }] };
}

function fetchReq(topic: string, partition: number, offset: bigint, maxWaitMs = 0, minBytes = 1) {
  return {
    clusterId: null,
    replicaId: -1,
    replicaState: { replicaId: -1, replicaEpoch: -1n },
    maxWaitMs,
    minBytes,
    maxBytes: 1 << 20,
    isolationLevel: 1,
    sessionId: 0,
    sessionEpoch: -1,
    topics: [{ topic, topicId: '00000000-0000-0000-0000-000000000000', partitions: [{ partition, currentLeaderEpoch: -1, fetchOffset: offset, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: 1 << 20, replicaDirectoryId: '00000000-0000-0000-0000-000000000000' }] }],
    forgottenTopicsData: [],
    rackId: '',
  };
}

async function createTopic(c: RawClient, name: string) {
  const r = await c.request(ApiKey.Metadata, 4, metadataReq([name]));
  assert.equal(r.body.topics[0].errorCode, 0);
}

test('ApiVersions v0-v4 list every API with the ranges the clients need', async () => {
  const c = await RawClient.connect(tb.port);
  for (const v of [0, 1, 2, 3, 4]) {
    const { body } = await c.request(ApiKey.ApiVersions, v, { clientSoftwareName: 'raw', clientSoftwareVersion: '1' });
    assert.equal(body.errorCode, 0);
    const byKey = new Map(body.apiKeys.map((k: any) => [k.apiKey, [k.minVersion, k.maxVersion]]));
    assert.deepEqual(byKey.get(ApiKey.Produce), [0, 11], 'advertised from v0 so librdkafka compresses (KAFKA-18659)');
    // The newest version of every API Kafka's schemas define (issue 11), from the oldest a
    // real client sends; the group APIs from v0, which librdkafka needs to enable its balanced
    // consumer; Fetch from v4 and ListOffsets from v1, as Kafka 4 (KIP-896).
    const expected: [number, [number, number]][] = [
      [ApiKey.Fetch, [4, 17]],
      [ApiKey.ListOffsets, [1, 9]],
      [ApiKey.Metadata, [0, 12]],
      [ApiKey.OffsetCommit, [0, 9]],
      [ApiKey.OffsetFetch, [0, 9]],
      [ApiKey.FindCoordinator, [0, 6]],
      [ApiKey.JoinGroup, [0, 9]],
      [ApiKey.Heartbeat, [0, 4]],
      [ApiKey.LeaveGroup, [0, 5]],
      [ApiKey.SyncGroup, [0, 5]],
      [ApiKey.DescribeGroups, [0, 5]],
      [ApiKey.ListGroups, [0, 5]],
      [ApiKey.ApiVersions, [0, 4]],
      [ApiKey.CreateTopics, [0, 7]],
      [ApiKey.DeleteTopics, [0, 6]],
      [ApiKey.DeleteRecords, [0, 2]],
      [ApiKey.InitProducerId, [0, 5]],
      [ApiKey.OffsetForLeaderEpoch, [0, 4]],
      [ApiKey.DescribeConfigs, [0, 4]],
      [ApiKey.AlterConfigs, [0, 2]],
      [ApiKey.DescribeLogDirs, [0, 4]],
      [ApiKey.CreatePartitions, [0, 3]],
      [ApiKey.DeleteGroups, [0, 2]],
      [ApiKey.IncrementalAlterConfigs, [0, 1]],
      [ApiKey.OffsetDelete, [0, 0]],
      [ApiKey.DescribeCluster, [0, 1]],
      [ApiKey.SaslHandshake, [0, 1]],
      [ApiKey.SaslAuthenticate, [0, 2]],
      [ApiKey.DescribeAcls, [0, 3]],
      [ApiKey.CreateAcls, [0, 3]],
      [ApiKey.DeleteAcls, [0, 3]],
      [ApiKey.DescribeUserScramCredentials, [0, 0]],
      [ApiKey.AlterUserScramCredentials, [0, 0]],
      [ApiKey.AlterPartitionReassignments, [0, 0]],
      [ApiKey.ListPartitionReassignments, [0, 0]],
    ];
    for (const [key, range] of expected) assert.deepEqual(byKey.get(key), range, `API ${key}`);
    assert.equal(byKey.size, expected.length + 1);
  }
  c.close();
});

test('an unsupported ApiVersions version gets a v0 body with error 35 and the connection stays usable', async () => {
  const c = await RawClient.connect(tb.port);
  c.send(c.frame(ApiKey.ApiVersions, 0, {}, 77).fill(0, 0, 0));
  // Version 9 of ApiVersions does not exist: hand-build the header (v2: flexible, with an
  // empty tag buffer, as a future client would send it).
  const f = Buffer.alloc(4 + 2 + 2 + 4 + 2 + 1);
  f.writeInt32BE(11, 0);
  f.writeInt16BE(ApiKey.ApiVersions, 4);
  f.writeInt16BE(9, 6);
  f.writeInt32BE(4242, 8);
  f.writeInt16BE(-1, 12);
  await c.next(); // answer to the v0 request above
  c.send(f);
  const frame = (await c.next())!;
  const r = new Reader(frame);
  assert.equal(r.int32(), 4242);
  assert.equal(r.int16(), 35);
  assert.ok(r.int32() >= 17, 'the v0 body lists our APIs');
  const again = await c.request(ApiKey.ApiVersions, 2, {});
  assert.equal(again.body.errorCode, 0);
  c.close();
});

test('an unserved version of a known API decodes as UNSUPPORTED_VERSION on a live connection; an unknown API key closes that connection only', async () => {
  // Issue 11: the error comes in the API's own response form, which clients can decode (a bare
  // INT16 cannot be: most responses start with throttle_time_ms). test/kafka/unsupported-versions.test.ts has the rest.
  const c = await RawClient.connect(tb.port);
  const produce = await c.request(ApiKey.Produce, 2, produceReq('never-created', 0, encodeBatch({ records: [{ value: Buffer.from('x') }] })));
  assert.deepEqual(produce.body.responses[0].partitionResponses.map((p: any) => [p.index, p.errorCode]), [[0, 35]]);
  assert.equal(c.closed, false);
  assert.equal((await c.request(ApiKey.ApiVersions, 2, {})).body.errorCode, 0);
  const f = Buffer.alloc(4 + 10);
  f.writeInt32BE(f.length - 4, 0);
  f.writeInt16BE(999, 4);
  f.writeInt16BE(0, 6);
  f.writeInt32BE(1999, 8);
  f.writeInt16BE(-1, 12);
  c.send(f);
  assert.equal(await c.next(), null, 'an unknown key closes the connection, as Kafka does');
  const other = await RawClient.connect(tb.port);
  assert.equal((await other.request(ApiKey.ApiVersions, 2, {})).body.errorCode, 0);
  other.close();
});

test('pipelined requests are answered in order; frames split at every byte and packed together work', async () => {
  const c = await RawClient.connect(tb.port);
  await createTopic(c, 'pipeline');
  const frames: Buffer[] = [];
  for (let i = 0; i < 30; i++) {
    const batch = encodeBatch({ records: [{ key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) }] });
    frames.push(c.frame(ApiKey.Produce, 7, produceReq('pipeline', 0, batch), 500 + i));
    frames.push(c.frame(ApiKey.ApiVersions, 2, {}, 600 + i));
  }
  const all = Buffer.concat(frames);
  // Dribble the bytes in odd-sized pieces: partial frames and several frames per chunk.
  for (let p = 0, step = 1; p < all.length; p += step, step = (step * 7) % 97 || 1) c.send(all.subarray(p, p + step));
  for (let i = 0; i < 30; i++) {
    const prod = decodeResponse<any>(ApiKey.Produce, 7, (await c.next())!);
    assert.equal(prod.correlationId, 500 + i);
    assert.equal(prod.body.responses[0].partitionResponses[0].errorCode, 0);
    assert.equal(prod.body.responses[0].partitionResponses[0].baseOffset, BigInt(i));
    const av = decodeResponse<any>(ApiKey.ApiVersions, 2, (await c.next())!);
    assert.equal(av.correlationId, 600 + i);
  }
  c.close();
});

test('acks=0 appends but sends no response', async () => {
  const c = await RawClient.connect(tb.port);
  await createTopic(c, 'acks0');
  c.send(c.frame(ApiKey.Produce, 7, produceReq('acks0', 0, encodeBatch({ records: [{ value: Buffer.from('fire') }] }), 0), 900));
  c.send(c.frame(ApiKey.ApiVersions, 2, {}, 901));
  const next = decodeResponse<any>(ApiKey.ApiVersions, 2, (await c.next())!);
  assert.equal(next.correlationId, 901, 'the first response is the ApiVersions one');
  const f = await c.request(ApiKey.Fetch, 11, fetchReq('acks0', 0, 0n));
  const p = f.body.responses[0].partitions[0];
  assert.equal(p.highWatermark, 1n);
  assert.equal(readBatchHeader(p.records).recordCount, 1);
  c.close();
});

test('pipelined large produce requests (acks -1, 1 and 0) are stored byte-identical while their frames\' memory is reused', { timeout: 60_000 }, async () => {
  // Frames of 64 KiB..4 MiB are assembled in pooled buffers that Produce frees once its
  // appends are written: a buffer reused too early would store another request's bytes.
  const c = await RawClient.connect(tb.port);
  const topics = ['reuse-a', 'reuse-b'];
  for (const t of topics) await createTopic(c, t);
  let seed = 12345;
  const random = (n: number) => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    return b;
  };
  const poolBefore = tb.broker.kafka.stats().framePool;
  const sent = new Map<string, Buffer[]>(topics.map((t) => [t, []]));
  const answered: number[] = [];
  const drain = async () => {
    for (const id of answered.splice(0)) {
      const r = decodeResponse<any>(ApiKey.Produce, 7, (await c.next())!);
      assert.equal(r.correlationId, id);
      assert.equal(r.body.responses[0].partitionResponses[0].errorCode, 0);
    }
  };
  for (let i = 0; i < 24; i++) {
    // Two waves: the first one's frames are all written (request 10, acks=1, is answered
    // after everything before it in both logs) before the second arrives to reuse them.
    if (i === 11) await drain();
    const topic = topics[i % 2];
    const values = [random(150_000 + i * 1000), random(90_000)];
    sent.get(topic)!.push(...values);
    const records = Buffer.concat(values.map((value) => encodeBatch({ records: [{ value }] })));
    const acks = [-1, 1, 0][i % 3];
    const id = 2000 + i;
    if (acks !== 0) answered.push(id);
    c.send(c.frame(ApiKey.Produce, 7, produceReq(topic, 0, records, acks), id));
  }
  await drain();
  for (const topic of topics) {
    const want = sent.get(topic)!;
    // acks=0 requests have no answer: wait until every record is there.
    await waitFor(`${topic}: all ${want.length} records`, async () => (await c.request(ApiKey.Fetch, 11, fetchReq(topic, 0, BigInt(want.length - 1)))).body.responses[0].partitions[0].highWatermark === BigInt(want.length), 30_000);
    const got: Buffer[] = [];
    while (got.length < want.length) {
      const f = await c.request(ApiKey.Fetch, 11, fetchReq(topic, 0, BigInt(got.length)));
      for (const { buf } of storedBatches(f.body.responses[0].partitions[0].records)) for (const r of decodeRecords(buf)) got.push(r.value!);
    }
    assert.equal(got.length, want.length);
    got.forEach((v, i) => assert.ok(v.equals(want[i]), `${topic} offset ${i}: the stored value differs from the one sent`));
  }
  const pool = tb.broker.kafka.stats().framePool;
  assert.equal(pool.reused + pool.allocated - poolBefore.reused - poolBefore.allocated, 24, 'every produce frame was assembled in a pooled buffer');
  assert.ok(pool.reused - poolBefore.reused > 0, 'and the second wave reused ones the first gave back');
  c.close();
});

test('a corrupt batch gets CORRUPT_MESSAGE and nothing is appended', async () => {
  const c = await RawClient.connect(tb.port);
  await createTopic(c, 'corrupt');
  const bad = encodeBatch({ records: [{ value: Buffer.from('payload') }] });
  bad[bad.length - 2] ^= 0xff;
  const r = await c.request(ApiKey.Produce, 7, produceReq('corrupt', 0, bad));
  assert.equal(r.body.responses[0].partitionResponses[0].errorCode, 2);
  const truncated = encodeBatch({ records: [{ value: Buffer.from('payload') }] }).subarray(0, 40);
  const r2 = await c.request(ApiKey.Produce, 7, produceReq('corrupt', 0, truncated));
  assert.equal(r2.body.responses[0].partitionResponses[0].errorCode, 2);
  const big = encodeBatch({ records: [{ value: Buffer.alloc(600 * 1024) }] });
  const r3 = await c.request(ApiKey.Produce, 7, produceReq('corrupt', 0, big));
  assert.equal(r3.body.responses[0].partitionResponses[0].errorCode, 10, 'MESSAGE_TOO_LARGE above log.maxBatchBytes');
  const r4 = await c.request(ApiKey.Produce, 7, produceReq('no-such-topic-here', 0, encodeBatch({ records: [{ value: null }] })));
  assert.equal(r4.body.responses[0].partitionResponses[0].errorCode, 3);
  const f = await c.request(ApiKey.Fetch, 11, fetchReq('corrupt', 0, 0n));
  assert.equal(f.body.responses[0].partitions[0].highWatermark, 0n);
  c.close();
});

test('an oversize or negative frame closes only that connection, with others unaffected', async () => {
  const bystander = await RawClient.connect(tb.port);
  for (const size of [2 * 1024 * 1024, -5, 0x7fffffff]) {
    const c = await RawClient.connect(tb.port);
    const f = Buffer.alloc(8);
    f.writeInt32BE(size, 0);
    c.send(f);
    assert.equal(await c.next(), null, `size ${size} closes the connection`);
  }
  const garbage = await RawClient.connect(tb.port);
  garbage.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(await garbage.next(), null);
  assert.equal((await bystander.request(ApiKey.ApiVersions, 2, {})).body.errorCode, 0);
  bystander.close();
});

test('an unparseable request body closes that connection only', async () => {
  const c = await RawClient.connect(tb.port);
  const f = Buffer.alloc(4 + 10 + 3);
  f.writeInt32BE(13, 0);
  f.writeInt16BE(ApiKey.Produce, 4);
  f.writeInt16BE(7, 6);
  f.writeInt32BE(5, 8);
  f.writeInt16BE(-1, 12);
  c.send(f); // body of 3 bytes: Produce v7 needs far more
  assert.equal(await c.next(), null);
  const ok = await RawClient.connect(tb.port);
  assert.equal((await ok.request(ApiKey.ApiVersions, 2, {})).body.errorCode, 0);
  ok.close();
});

// How much CPU an idle long-poll costs is measured by the benchmark (npm run bench:kafka).
test('fetch long-polls until data arrives and honours max wait', async () => {
  const c = await RawClient.connect(tb.port);
  const p = await RawClient.connect(tb.port);
  await createTopic(c, 'longpoll');
  const t0 = Date.now();
  const empty = await c.request(ApiKey.Fetch, 11, fetchReq('longpoll', 0, 0n, 300));
  assert.ok(Date.now() - t0 >= 250, 'waited for max_wait');
  assert.equal(empty.body.responses[0].partitions[0].records?.length ?? 0, 0);
  // The fetch is parked before the produce: it waits on the partition's appends.
  const log = tb.broker.topics.partition('longpoll', 0)!;
  let parked = 0;
  const onAppend = log.onAppend.bind(log);
  log.onAppend = (listener) => {
    parked++;
    return onAppend(listener);
  };
  const pending = c.request(ApiKey.Fetch, 11, fetchReq('longpoll', 0, 0n, 10_000));
  await waitFor('the fetch to wait for an append', () => parked > 0, 5000, 5);
  await p.request(ApiKey.Produce, 7, produceReq('longpoll', 0, encodeBatch({ records: [{ value: Buffer.from('wake') }] })));
  const got = await pending;
  assert.ok(Date.now() - t0 < 5000, 'answered when data arrived, not at max_wait');
  assert.equal(readBatchHeader(got.body.responses[0].partitions[0].records).recordCount, 1);
  const oor = await c.request(ApiKey.Fetch, 11, fetchReq('longpoll', 0, 5n));
  assert.equal(oor.body.responses[0].partitions[0].errorCode, 1, 'OFFSET_OUT_OF_RANGE past the high watermark');
  c.close();
  p.close();
});

test('metadata never advertises a wildcard; unknown topics without auto-create are UNKNOWN_TOPIC_OR_PARTITION', async () => {
  const c = await RawClient.connect(tb.port);
  const r = await c.request(ApiKey.Metadata, 6, { ...metadataReq(['nope.missing']), allowAutoTopicCreation: false });
  assert.equal(r.body.brokers[0].host, '127.0.0.1');
  assert.equal(r.body.brokers[0].port, tb.port);
  assert.equal(r.body.controllerId, r.body.brokers[0].nodeId);
  assert.equal(r.body.topics[0].errorCode, 3);
  const bad = await c.request(ApiKey.Metadata, 6, metadataReq(['bad/name']));
  assert.equal(bad.body.topics[0].errorCode, 17);
  c.close();
});

test('pooled read buffers are never reused under a response in flight: concurrent fetches stay byte-exact', async () => {
  const producer = await RawClient.connect(tb.port);
  const topics = ['pool-a', 'pool-b', 'pool-c', 'pool-d'];
  const sent = new Map<string, Buffer[]>();
  for (const t of topics) {
    await createTopic(producer, t);
    sent.set(t, []);
    for (let i = 0; i < 40; i++) {
      const b = encodeBatch({ records: Array.from({ length: 20 }, (_, k) => ({ value: Buffer.alloc(2000, `${t}:${i}:${k}|`) })) });
      sent.get(t)!.push(Buffer.from(b));
      const r = await producer.request(ApiKey.Produce, 7, produceReq(t, 0, b));
      assert.equal(r.body.responses[0].partitionResponses[0].errorCode, 0);
    }
  }
  producer.close();
  // A slow reader: its multi-megabyte responses sit in the broker's socket queue (the client
  // does not read for a while), so a buffer released too early would be overwritten by the
  // other consumers' reads before its bytes reach the kernel.
  const slow = await RawClient.connect(tb.port);
  slow.socket.pause();
  for (const t of topics) {
    const req = fetchReq(t, 0, 0n);
    req.topics[0].partitions[0].partitionMaxBytes = 4 << 20;
    req.maxBytes = 4 << 20;
    slow.send(slow.frame(ApiKey.Fetch, 11, req));
  }
  setTimeout(() => slow.socket.resume(), 1500);
  // Four consumers on four connections read their topics from every offset, over and over,
  // with small budgets so responses are many and buffers recycle fast.
  await Promise.all(
    topics.map(async (t) => {
      const c = await RawClient.connect(tb.port);
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 40; i++) {
          const req = fetchReq(t, 0, BigInt(i * 20));
          req.topics[0].partitions[0].partitionMaxBytes = 100_000;
          const r = await c.request(ApiKey.Fetch, 11, req);
          const records: Buffer = r.body.responses[0].partitions[0].records;
          for (let p = 0, k = i; p < records.length; k++) {
            const size = records.readInt32BE(p + 8) + 12;
            const batch = records.subarray(p, p + size);
            assert.deepEqual(batch.subarray(8), sent.get(t)![k].subarray(8), `${t} batch ${k} intact`);
            p += size;
          }
        }
      }
      c.close();
    }),
  );
  for (const t of topics) {
    const records: Buffer = (decodeResponse<any>(ApiKey.Fetch, 11, (await slow.next())!)).body.responses[0].partitions[0].records;
    let k = 0;
    for (let p = 0; p < records.length; k++) {
      const size = records.readInt32BE(p + 8) + 12;
      assert.deepEqual(records.subarray(p + 8, p + size), sent.get(t)![k].subarray(8), `slow reader: ${t} batch ${k} intact`);
      p += size;
    }
    assert.equal(k, 40);
  }
  slow.close();
});
