/**
 * Tiered storage end to end with real Kafka clients: produce enough to seal many segments,
 * let them offload, wait until the local copies are gone, then consume from the beginning:
 * every record byte-identical and in order, read back from the object store. Run against the
 * directory backend, S3 (s3rver) and Azure (Azurite). Plus restore from the bucket alone, a
 * store that goes down mid-offload, and a corrupted remote object.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import type { BlobStore } from '../../src/tiered/blobstore/blob-store.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { fsStore, startAzurite, startS3rver, type StoreFixture } from '../helpers/object-stores.js';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { RawClient } from '../helpers/raw-kafka.js';
import { waitFor } from '../helpers/wait.js';
import { FsBlobStore } from '../../src/tiered/blobstore/fs-blob-store.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Small segments, immediate offload, no local copies kept once offloaded. */
const TIERED: BrokerConfigInput = {
  log: { segmentBytes: 64 * 1024, retention: { ms: -1 } },
  // Reads use fresh KafkaJS groups: no 3 s wait for more members.
  groups: { initialRebalanceDelayMs: 0 },
  tiered: {
    enabled: true,
    offload: { onSeal: true },
    localRetention: { bytes: 0 },
    deletionLagMs: 0,
    checkIntervalMs: 50,
    cache: { bytes: 4 * 1024 * 1024, blockBytes: 64 * 1024 },
  },
};

interface Sent {
  key: string;
  value: Buffer;
}

async function produce(bootstrap: string, topic: string, n: number, from = 0): Promise<Sent[]> {
  const kafka = new Kafka({ brokers: [bootstrap], clientId: 'tiered-producer', logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  const sent: Sent[] = [];
  for (let i = from; i < from + n; i += 100) {
    const batch = Array.from({ length: Math.min(100, from + n - i) }, (_, j) => {
      const k = i + j;
      // Varied, partly incompressible payloads so batches differ in size.
      const value = Buffer.concat([Buffer.from(`record-${k}:`), Buffer.alloc(200 + (k % 700), k % 251)]);
      return { key: `k${k}`, value };
    });
    await producer.send({ topic, acks: -1, messages: batch.map((m) => ({ key: m.key, value: m.value })) });
    sent.push(...batch);
  }
  await producer.disconnect();
  return sent;
}

/** The whole topic as a fresh KafkaJS consumer reads it to the end, with small fetches. */
async function readAll(bootstrap: string, topic: string): Promise<Array<{ partition: number; offset: bigint; key: string; value: Buffer }>> {
  const got = await readTopicToEnd(bootstrap, topic, { maxBytesPerPartition: 256 * 1024 });
  return got.map((m) => ({ partition: m.partition, offset: BigInt(m.offset), key: m.key!.toString(), value: Buffer.from(m.value!) }));
}

/** Exactly the records of `sent` (keys unique), each once and byte-identical, in any partition. */
function assertSameByKey(got: Array<{ key: string; value: Buffer }>, sent: Sent[], what: string): void {
  assert.equal(got.length, sent.length, `${what}: every record exactly once (got ${got.length}, sent ${sent.length})`);
  const byKey = new Map(got.map((g) => [g.key, g.value]));
  assert.equal(byKey.size, got.length, `${what}: no duplicates`);
  for (const s of sent) assert.ok(byKey.get(s.key)?.equals(s.value), `${what}: ${s.key} byte-identical`);
}

function assertExactly(got: Array<{ offset: bigint; key: string; value: Buffer }>, sent: Sent[]): void {
  assert.equal(got.length, sent.length, 'every record exactly once');
  got.forEach((g, i) => {
    assert.equal(g.offset, BigInt(i), 'in order, no gaps');
    assert.equal(g.key, sent[i].key);
    assert.ok(g.value.equals(sent[i].value), `record ${i} byte-identical`);
  });
}

/** The directory behind a FsBlobStore (its name is file://<dir>). */
const storeDirOf = (store: BlobStore) => store.name.replace(/^file:\/\//, '');

const partitionStatus = (tb: TestBroker, topic: string) => tb.broker.tiered!.status().find((s) => s.topic === topic && s.partition === 0)!;

async function offloadAndReadBack(name: string, fixture: StoreFixture): Promise<void> {
  const tb = await startBroker(TIERED, undefined, { blobStore: fixture.store });
  cleanups.push(() => tb.cleanup());
  const admin = new Kafka({ brokers: [tb.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'cold', numPartitions: 1 }] });
  await admin.disconnect();
  const sent = await produce(tb.bootstrap, 'cold', 3000);
  const log = tb.broker.topics.partition('cold', 0)!;
  // Everything sealed is offloaded and its local copy deleted: one (active) segment left.
  await waitFor(`${name}: offload and local deletion`, () => log.segments().length === 1 && partitionStatus(tb, 'cold').remoteSegments > 10);
  const st = partitionStatus(tb, 'cold');
  assert.equal(st.remoteEndOffset, String(log.logStartOffset), 'the bucket holds everything below the local log');
  assert.ok(log.logStartOffset > 2000n, 'most of the data lives only in the bucket');
  const got = await readAll(tb.bootstrap, 'cold');
  assertExactly(got, sent);
  const stats = tb.broker.tiered!.reader.stats();
  assert.ok(stats.misses > 0, 'reads went to the store');
  const ratio = partitionStatus(tb, 'cold').cacheHitRatio;
  // Each 64 KiB segment is one cache block here, so a single sequential pass mostly misses;
  // what matters is that the ratio is reported per partition.
  assert.ok(ratio !== null && ratio >= 0 && ratio <= 1, `per-partition cache hit ratio is reported (${ratio})`);
  await tb.cleanup();
}

test('directory backend: offloaded history reads back byte-identical through Kafka Fetch', async () => {
  const f = await fsStore();
  cleanups.push(() => f.stop());
  await offloadAndReadBack('fs', f);
});

test('S3 (s3rver): offloaded history reads back byte-identical', async () => {
  const f = await startS3rver();
  cleanups.push(() => f.stop());
  await offloadAndReadBack('s3', f);
});

test('Azure Blob (Azurite): offloaded history reads back byte-identical', async () => {
  const f = await startAzurite();
  cleanups.push(() => f.stop());
  await offloadAndReadBack('azure', f);
});

test('restore: a broker on an empty disk serves the history from the bucket alone, and continues it', async () => {
  const f = await fsStore();
  cleanups.push(() => f.stop());
  const first = await startBroker(TIERED, undefined, { blobStore: f.store });
  const sent = await produce(first.bootstrap, 'dr', 2000);
  // Seal and offload everything, including the active segment's data.
  await first.broker.tiered!.offloadNow('dr');
  const before = first.broker.tiered!.status().filter((s) => s.topic === 'dr');
  await first.cleanup(); // the disk is gone
  // A brand-new broker, empty data directory, same bucket (a fresh store object on it).
  const again: BlobStore = new FsBlobStore({ dir: storeDirOf(f.store) });
  const restored = await startBroker(TIERED, undefined, { blobStore: again });
  cleanups.push(() => restored.cleanup());
  const info = restored.broker.topics.getTopic('dr');
  assert.ok(info, 'topic recreated from the bucket');
  const after = restored.broker.tiered!.status().filter((s) => s.topic === 'dr');
  assert.deepEqual(
    after.map((s) => [s.partition, s.remoteEndOffset]),
    before.map((s) => [s.partition, s.remoteEndOffset]),
  );
  // Consume everything: partitions were chosen by key, so compare per key.
  assertSameByKey(await readAll(restored.bootstrap, 'dr'), sent, 'restored from the bucket');
  // New writes continue after the restored history, never overwriting it.
  const more = await produce(restored.bootstrap, 'dr', 100, 2000);
  assert.equal(more.length, 100);
  for (const s of after) {
    const p = restored.broker.topics.partition('dr', s.partition)!;
    assert.ok(p.logStartOffset >= BigInt(s.remoteEndOffset));
  }
});

test('a corrupted remote object fails the read with a retriable error, never with wrong bytes', async () => {
  const f = await fsStore();
  cleanups.push(() => f.stop());
  const tb = await startBroker(TIERED, undefined, { blobStore: f.store });
  cleanups.push(() => tb.cleanup());
  await produce(tb.bootstrap, 'rot', 1000);
  await tb.broker.tiered!.offloadNow('rot');
  const log = tb.broker.topics.partition('rot', 0)!;
  await waitFor('local deletion', () => log.segments().length === 1);
  // Flip one byte in the middle of the first remote data object.
  const storeDir = storeDirOf(f.store);
  const files: string[] = [];
  const walk = (d: string) => fs.readdirSync(d, { withFileTypes: true }).forEach((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : files.push(path.join(d, e.name))));
  walk(storeDir);
  const data = files.filter((f) => f.endsWith('.log')).sort()[0];
  const bytes = fs.readFileSync(data);
  bytes[Math.floor(bytes.length / 2)] ^= 0x40;
  fs.writeFileSync(data, bytes);
  const c = await RawClient.connect(tb.port);
  const r = await c.request(ApiKey.Fetch, 11, {
    clusterId: null,
    replicaId: -1,
    replicaState: { replicaId: -1, replicaEpoch: -1n },
    maxWaitMs: 0,
    minBytes: 1,
    maxBytes: 1 << 20,
    isolationLevel: 0,
    sessionId: 0,
    sessionEpoch: -1,
    topics: [{ topic: 'rot', topicId: '00000000-0000-0000-0000-000000000000', partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: 0n, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: 1 << 20, replicaDirectoryId: '00000000-0000-0000-0000-000000000000' }] }],
    forgottenTopicsData: [],
    rackId: '',
  });
  const p = r.body.responses[0].partitions[0];
  assert.equal(p.errorCode, 56, 'KAFKA_STORAGE_ERROR (retriable)');
  // Kafka answers an error partition with an empty record set (not null): no bytes at all.
  assert.equal(p.records?.length, 0, 'no bytes at all');
  c.close();
});

test('per-topic policy through CreateTopics configs; unknown configs are refused', async () => {
  const f = await fsStore();
  cleanups.push(() => f.stop());
  const tb = await startBroker(TIERED, undefined, { blobStore: f.store });
  cleanups.push(() => tb.cleanup());
  const admin = new Kafka({ brokers: [tb.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      { topic: 'hot-only', numPartitions: 1, configEntries: [{ name: 'remote.storage.enable', value: 'false' }] },
      { topic: 'keep-local', numPartitions: 1, configEntries: [{ name: 'local.retention.bytes', value: '-1' }, { name: 'retention.ms', value: '-1' }] },
      { topic: 'default-local', numPartitions: 1 },
    ],
  });
  await assert.rejects(admin.createTopics({ topics: [{ topic: 'weird', configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }] }), (err: any) =>
    err.errors?.some((e: any) => e.type === 'INVALID_CONFIG'),
  );
  assert.equal(tb.broker.topics.getTopic('weird'), undefined, 'nothing half-created');
  await admin.disconnect();
  const hotSent = await produce(tb.bootstrap, 'hot-only', 800);
  const keepSent = await produce(tb.bootstrap, 'keep-local', 800);
  await tb.broker.tiered!.offloadNow('keep-local');
  const tiered = tb.broker.tiered!.status();
  assert.equal(tiered.some((s) => s.topic === 'hot-only'), false, 'remote.storage.enable=false keeps the topic local');
  const keep = tiered.find((s) => s.topic === 'keep-local')!;
  assert.ok(keep.remoteSegments > 3, 'offloaded');
  // Each upload read its segment back whole against the seal-time CRC-32C: a consumer then
  // reads the local copies without checking their batches again (a hot read after offload
  // checksums each byte once, not twice), while hot-only's first read checks its sealed bytes.
  assertSameByKey(await readAll(tb.bootstrap, 'keep-local'), keepSent, 'keep-local read from its local copies');
  assertSameByKey(await readAll(tb.bootstrap, 'hot-only'), hotSent, 'hot-only');
  assert.equal(tb.broker.topics.partition('keep-local', 0)!.stats().bytesCrcChecked, 0, 'the offloaded segments are not checked again');
  assert.ok(tb.broker.topics.partition('hot-only', 0)!.stats().bytesCrcChecked > 0, 'a segment nobody verified is checked on its first read');
  // Local deletion runs over every tiered partition on each check: once it has deleted the
  // copies of a default topic offloaded after keep-local, it has been over keep-local too.
  await produce(tb.bootstrap, 'default-local', 800);
  await tb.broker.tiered!.offloadNow('default-local');
  await waitFor('local deletion of default-local, offloaded after keep-local', () => tb.broker.topics.partition('default-local', 0)!.segments().length === 1, 30_000, 25);
  assert.equal(tb.broker.topics.partition('keep-local', 0)!.logStartOffset, 0n, 'local.retention.bytes=-1 keeps the local copies');
  assert.equal(tb.broker.topics.getTopic('keep-local')!.config.retentionMs, -1);
});

test('a store that is down at start-up: the broker serves local data, keeps it whole, and tiers once the store is back', async () => {
  const { startRestartableS3rver } = await import('../helpers/object-stores.js');
  const f = await startRestartableS3rver();
  cleanups.push(() => f.stop());
  await f.stopServer();
  const tb = await startBroker({ ...TIERED, tiered: { ...TIERED.tiered, checkIntervalMs: 100 } }, undefined, { blobStore: f.store });
  cleanups.push(() => tb.cleanup());
  assert.ok(tb.broker.tiered!.unavailable, 'the outage is visible');
  const sent = await produce(tb.bootstrap, 'outage', 1500);
  const logs = tb.broker.topics.partitions('outage');
  assert.ok(logs.some((l) => l.segments().length > 3), 'segments sealed meanwhile');
  assert.equal(logs.reduce((n, l) => n + Number(l.logStartOffset), 0), 0, 'nothing was deleted locally');
  // Back up: the topic attaches, everything sealed offloads, local copies go.
  await f.startServer();
  await waitFor('attach and offload after the outage', () => {
    const st = tb.broker.tiered!.status().filter((s) => s.topic === 'outage');
    return st.length === logs.length && st.every((s) => s.localSegments === 1 && s.remoteSegments > 0 || s.localBytes < 64 * 1024);
  }, 60_000);
  assert.equal(tb.broker.tiered!.unavailable, null);
  assertSameByKey(await readAll(tb.bootstrap, 'outage'), sent, 'after the outage');
});

test('while the store is unreachable, offsets that may live only in the bucket get a retriable error, never a silent skip', async () => {
  const { startRestartableS3rver } = await import('../helpers/object-stores.js');
  const f = await startRestartableS3rver();
  cleanups.push(() => f.stop());
  let tb = await startBroker(TIERED, undefined, { blobStore: f.store });
  const first = tb; // owns the data directory, which the restarted broker reuses
  cleanups.push(() => first.cleanup());
  const sent = await produce(tb.bootstrap, 'hidden', 1500);
  await tb.broker.tiered!.offloadNow('hidden');
  await waitFor('local deletion', () => tb.broker.topics.partitions('hidden').every((l) => l.segments().length === 1));
  // Restart with the store down: the topic's manifests cannot be loaded.
  await f.stopServer();
  await tb.stop();
  tb = await startBroker(TIERED, { dataDir: tb.dataDir, cleanup: () => {}, port: tb.port }, { blobStore: f.openStore() });
  cleanups.push(() => tb.cleanup());
  assert.deepEqual(tb.broker.tiered!.pendingTopics, ['hidden']);
  const c = await RawClient.connect(tb.port);
  const earliest = await c.request(ApiKey.ListOffsets, 2, { replicaId: -1, isolationLevel: 0, topics: [{ name: 'hidden', partitions: [{ partitionIndex: 0, currentLeaderEpoch: -1, timestamp: -2n, maxNumOffsets: 1 }] }], timeoutMs: 0 });
  assert.equal(earliest.body.topics[0].partitions[0].errorCode, 56, 'ListOffsets earliest: retriable, not the local start');
  const fetch0 = await c.request(ApiKey.Fetch, 11, {
    clusterId: null,
    replicaId: -1,
    replicaState: { replicaId: -1, replicaEpoch: -1n },
    maxWaitMs: 0,
    minBytes: 1,
    maxBytes: 1 << 20,
    isolationLevel: 0,
    sessionId: 0,
    sessionEpoch: -1,
    topics: [{ topic: 'hidden', topicId: '00000000-0000-0000-0000-000000000000', partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: 0n, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: 1 << 20, replicaDirectoryId: '00000000-0000-0000-0000-000000000000' }] }],
    forgottenTopicsData: [],
    rackId: '',
  });
  assert.equal(fetch0.body.responses[0].partitions[0].errorCode, 56, 'Fetch below the local log: retriable, not OFFSET_OUT_OF_RANGE');
  c.close();
  // The store comes back: everything is readable again from the beginning.
  await f.startServer();
  await waitFor('attach', () => tb.broker.tiered!.pendingTopics.length === 0, 30_000);
  assertSameByKey(await readAll(tb.bootstrap, 'hidden'), sent, 'once the store is back');
});

test('CreatePartitions on a tiered topic: the added partitions offload too, and a restore from the bucket brings back every partition', async () => {
  const f = await fsStore();
  cleanups.push(() => f.stop());
  const first = await startBroker(TIERED, undefined, { blobStore: f.store });
  const admin = new Kafka({ brokers: [first.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'grown', numPartitions: 1 }] });
  await admin.createPartitions({ topicPartitions: [{ topic: 'grown', count: 3 }] });
  await admin.disconnect();
  const sent = await produce(first.bootstrap, 'grown', 6000);
  const status = (tb: TestBroker) => tb.broker.tiered!.status().filter((s) => s.topic === 'grown');
  // Every partition, the two added ones included, offloads its sealed segments and drops
  // the local copies.
  await waitFor('all three partitions offloaded', () => {
    const st = status(first);
    return st.length === 3 && st.every((s) => s.remoteSegments > 2 && first.broker.topics.partition('grown', s.partition)!.logStartOffset > 0n);
  });
  assertSameByKey(await readAll(first.bootstrap, 'grown'), sent, 'read back across both tiers');
  await first.broker.tiered!.offloadNow('grown');
  const before = status(first).map((s) => [s.partition, s.remoteEndOffset]);
  await first.cleanup();
  // The descriptor in the bucket knows the topic has three partitions.
  const restored = await startBroker(TIERED, undefined, { blobStore: new FsBlobStore({ dir: storeDirOf(f.store) }) });
  cleanups.push(() => restored.cleanup());
  assert.equal(restored.broker.topics.getTopic('grown')?.partitions, 3, 'restored with its three partitions');
  assert.deepEqual(status(restored).map((s) => [s.partition, s.remoteEndOffset]), before);
  assertSameByKey(await readAll(restored.bootstrap, 'grown'), sent, 'restored from the bucket');
});
