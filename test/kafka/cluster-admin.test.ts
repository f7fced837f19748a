/**
 * DescribeCluster and DescribeLogDirs through a real broker, and tiered-storage topic configs
 * changed at run time. Sizes are checked against the files themselves: the partition
 * directories on disk and, for a topic offloaded to a directory-backed store, the segment
 * objects in that directory.
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
import { fsStore } from '../helpers/object-stores.js';
import { RawClient } from '../helpers/raw-kafka.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const TOPIC = 2;
const Op = { Set: 0, Delete: 1 } as const;

async function started(overrides: BrokerConfigInput = {}, deps = {}): Promise<{ tb: TestBroker; raw: RawClient; kafka: Kafka }> {
  const tb = await startBroker(overrides, undefined, deps);
  const raw = await RawClient.connect(tb.port);
  cleanups.push(async () => {
    raw.close();
    await tb.cleanup();
  });
  return { tb, raw, kafka: new Kafka({ brokers: [tb.bootstrap], clientId: 'cluster-admin-test', logLevel: logLevel.NOTHING }) };
}

async function createAndFill(kafka: Kafka, topic: string, partitions: number, batches: number, configEntries: Array<{ name: string; value: string }> = []): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions, configEntries }], waitForLeaders: true });
  await admin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  for (let b = 0; b < batches; b++) {
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: 20 }, (_, i) => ({ partition: (b + i) % partitions, value: `${topic}-${b}-${i}-${'y'.repeat(200 + ((b * 7 + i) % 300))}` })),
    });
  }
  await producer.disconnect();
}

/** Bytes of the files under `dir` whose names end with `.log`. */
function logBytesUnder(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.log')) total += fs.statSync(path.join(e.parentPath ?? (e as any).path, e.name)).size;
  }
  return total;
}

/** Bytes of the `.log` objects under `prefix`, as the store lists them. */
async function logObjectBytes(store: BlobStore, prefix: string): Promise<number> {
  let total = 0;
  let continuationToken: string | undefined;
  do {
    const page = await store.list(prefix, { signal: AbortSignal.timeout(10_000), continuationToken });
    for (const k of page.keys) if (k.key.endsWith('.log')) total += k.size;
    continuationToken = page.nextToken;
  } while (continuationToken !== undefined);
  return total;
}

type LogDirs = Array<{ errorCode: number; logDir: string; totalBytes: bigint; usableBytes: bigint; topics: Array<{ name: string; partitions: Array<{ partitionIndex: number; partitionSize: bigint; offsetLag: bigint; isFutureKey: boolean }> }> }>;

async function logDirs(raw: RawClient, version: number, topics: Array<{ topic: string; partitions: number[] }> | null): Promise<LogDirs> {
  const r = await raw.request(ApiKey.DescribeLogDirs, version, { topics });
  if (version >= 3) assert.equal(r.body.errorCode, 0);
  return r.body.results;
}

test('DescribeCluster: this broker as the whole cluster, at v0 and v1; endpoint types other than brokers refused as Kafka does', async () => {
  const { tb, raw, kafka } = await started();
  for (const v of [0, 1]) {
    const r = await raw.request(ApiKey.DescribeCluster, v, { includeClusterAuthorizedOperations: false, endpointType: 1 });
    assert.equal(r.body.errorCode, 0);
    assert.equal(r.body.controllerId, tb.config.nodeId);
    assert.deepEqual(r.body.brokers, [{ brokerId: tb.config.nodeId, host: '127.0.0.1', port: tb.port, rack: null }]);
    assert.equal(r.body.clusterAuthorizedOperations, -2147483648, 'not asked for');
    assert.equal(r.body.clusterId, fs.existsSync(path.join(tb.dataDir, 'cluster.json')) ? JSON.parse(fs.readFileSync(path.join(tb.dataDir, 'cluster.json'), 'utf8')).clusterId : null);
  }
  const ops = await raw.request(ApiKey.DescribeCluster, 1, { includeClusterAuthorizedOperations: true, endpointType: 1 });
  // No authorizer: every operation Kafka supports on a cluster (CREATE, ALTER, DESCRIBE,
  // CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE).
  assert.equal(ops.body.clusterAuthorizedOperations, 0b1_1111_1010_0000);
  const controllers = await raw.request(ApiKey.DescribeCluster, 1, { includeClusterAuthorizedOperations: false, endpointType: 2 });
  assert.equal(controllers.body.errorCode, 114, 'MISMATCHED_ENDPOINT_TYPE');
  assert.deepEqual(controllers.body.brokers, []);
  const unknown = await raw.request(ApiKey.DescribeCluster, 1, { includeClusterAuthorizedOperations: false, endpointType: 7 });
  assert.equal(unknown.body.errorCode, 115, 'UNSUPPORTED_ENDPOINT_TYPE');
  assert.match(unknown.body.errorMessage, /endpoint type 7/);

  // KafkaJS's describeCluster (Metadata) tells the same story.
  const admin = kafka.admin();
  await admin.connect();
  const d = await admin.describeCluster();
  await admin.disconnect();
  const v1 = await raw.request(ApiKey.DescribeCluster, 1, { includeClusterAuthorizedOperations: false, endpointType: 1 });
  assert.equal(d.clusterId, v1.body.clusterId);
  assert.equal(d.controller, v1.body.controllerId);
  assert.deepEqual(d.brokers, [{ nodeId: tb.config.nodeId, host: '127.0.0.1', port: tb.port }]);
});

test('DescribeLogDirs v0-v4: the data directory with every partition\'s bytes as on disk, the volume\'s sizes at v4, filtered by topic and partition', async () => {
  const { tb, raw, kafka } = await started();
  await createAndFill(kafka, 'dirs-a', 2, 10);
  await createAndFill(kafka, 'dirs-b', 1, 3);
  const logsDir = path.join(tb.dataDir, 'logs');
  const onDisk = (topic: string, p: number) => BigInt(logBytesUnder(path.join(logsDir, `${topic}-${p}`)));
  for (const v of [0, 1, 2, 3, 4]) {
    const results = await logDirs(raw, v, null);
    assert.equal(results.length, 1, 'one log directory (no tiered storage)');
    const [dir] = results;
    assert.equal(dir.errorCode, 0);
    assert.equal(dir.logDir, logsDir);
    const sizes = new Map(dir.topics.flatMap((t) => t.partitions.map((p) => [`${t.name}/${p.partitionIndex}`, p.partitionSize] as const)));
    assert.deepEqual(new Set(sizes.keys()), new Set(['dirs-a/0', 'dirs-a/1', 'dirs-b/0']), `v${v}: every partition`);
    for (const k of sizes.keys()) {
      const [t, p] = k.split('/');
      assert.equal(sizes.get(k), onDisk(t, Number(p)), `v${v}: ${k} bytes as on disk`);
      assert.ok(sizes.get(k)! > 0n);
    }
    if (v >= 4) {
      const vol = fs.statfsSync(logsDir);
      assert.equal(dir.totalBytes, BigInt(vol.blocks) * BigInt(vol.bsize));
      assert.ok(dir.usableBytes > 0n && dir.usableBytes <= dir.totalBytes, 'usable bytes of the volume');
    } else {
      assert.equal(dir.totalBytes, -1n, `v${v} has no volume sizes`);
    }
  }
  const some = await logDirs(raw, 4, [
    { topic: 'dirs-a', partitions: [1, 9] },
    { topic: 'nowhere', partitions: [0] },
  ]);
  assert.deepEqual(
    some[0].topics.map((t) => [t.name, t.partitions.map((p) => p.partitionIndex)]),
    [['dirs-a', [1]]],
    'only what was asked for and exists',
  );
});

/** Small segments, immediate offload, local copies kept only where a topic says so. */
const TIERED: BrokerConfigInput = {
  log: { segmentBytes: 16 * 1024, retention: { ms: -1 } },
  tiered: { enabled: true, offload: { onSeal: true }, localRetention: { bytes: -1 }, deletionLagMs: 0, checkIntervalMs: 50 },
};

test('DescribeLogDirs with tiered storage: remote bytes per partition in a second log dir named by the store, equal to the segment objects in it', async () => {
  const f = await fsStore();
  cleanups.push(() => f.stop());
  const { tb, raw, kafka } = await started({ ...TIERED, tiered: { ...TIERED.tiered, localRetention: { bytes: 0 } } }, { blobStore: f.store });
  await createAndFill(kafka, 'cold', 1, 40);
  await createAndFill(kafka, 'hot', 1, 5, [{ name: 'remote.storage.enable', value: 'false' }]);
  await tb.broker.tiered!.offloadNow('cold');
  const log = tb.broker.topics.partition('cold', 0)!;
  await waitFor('offloaded local copies deleted', () => log.segments().length === 1);

  const info = tb.broker.topics.getTopic('cold')!;
  const remoteOnDisk = BigInt(await logObjectBytes(f.store, `topics/cold/${info.id}/0/`));
  assert.ok(remoteOnDisk > 100_000n, `most data is in the store (${remoteOnDisk} bytes)`);
  const results = await logDirs(raw, 4, null);
  assert.deepEqual(
    results.map((r) => r.logDir),
    [path.join(tb.dataDir, 'logs'), f.store.name],
  );
  const [local, remote] = results;
  const localCold = local.topics.find((t) => t.name === 'cold')!.partitions[0];
  assert.equal(localCold.partitionSize, BigInt(logBytesUnder(path.join(tb.dataDir, 'logs', 'cold-0'))), 'local bytes: the active segment only');
  assert.ok(local.topics.some((t) => t.name === 'hot'), 'the local-only topic is in the data directory');
  assert.deepEqual(remote.topics, [{ name: 'cold', partitions: [{ partitionIndex: 0, partitionSize: remoteOnDisk, offsetLag: 0n, isFutureKey: false }] }], 'remote bytes as in the store; the local-only topic absent');
  assert.equal(remote.totalBytes, -1n);
  // A filter applies to both directories.
  const onlyHot = await logDirs(raw, 4, [{ topic: 'hot', partitions: [0] }]);
  assert.equal(onlyHot.length, 1, 'no remote data among what was asked for: no remote entry');
});

test('tiered topic configs at run time: local.retention.bytes deletes offloaded local copies at the next check, remote.storage.enable=true attaches a topic, turning it off is refused', async () => {
  const f = await fsStore();
  cleanups.push(() => f.stop());
  const { tb, raw, kafka } = await started(TIERED, { blobStore: f.store });
  const alter = async (topic: string, name: string, value: string | null, op: number = Op.Set) =>
    (await raw.request(ApiKey.IncrementalAlterConfigs, 1, { resources: [{ resourceType: TOPIC, resourceName: topic, configs: [{ name, configOperation: op, value }] }], validateOnly: false })).body
      .responses[0];

  await createAndFill(kafka, 'keep', 1, 30);
  await tb.broker.tiered!.offloadNow('keep');
  const log = tb.broker.topics.partition('keep', 0)!;
  const status = () => tb.broker.tiered!.status().find((s) => s.topic === 'keep')!;
  await waitFor('every sealed segment offloaded', () => status().remoteSegments === log.segments().length - 1 && status().remoteSegments > 3);
  assert.equal(log.logStartOffset, 0n, 'the broker keeps offloaded local copies (localRetention.bytes -1)');

  assert.equal((await alter('keep', 'local.retention.bytes', '0')).errorCode, 0);
  await waitFor('the next tick to delete the offloaded local copies', () => log.segments().length === 1);
  assert.equal(status().remoteEndOffset, String(log.logStartOffset), 'exactly the offloaded part left the disk');
  // The bucket's descriptor follows, so a restore would recreate the topic as it is now.
  await waitFor(
    'the topic descriptor in the store to be rewritten',
    async () => JSON.parse((await f.store.get('topics/keep/topic.json', { signal: AbortSignal.timeout(10_000) })).toString()).config.localRetentionBytes === 0,
  );

  const off = await alter('keep', 'remote.storage.enable', 'false');
  assert.equal(off.errorCode, 40, 'INVALID_CONFIG');
  assert.match(off.errorMessage, /cannot be turned off once a topic is tiered/);

  await createAndFill(kafka, 'late', 1, 30, [{ name: 'remote.storage.enable', value: 'false' }]);
  assert.equal(tb.broker.tiered!.status().some((s) => s.topic === 'late'), false, 'not tiered at first');
  assert.equal((await alter('late', 'remote.storage.enable', null, Op.Delete)).errorCode, 0, 'back to the broker default: tiered');
  await waitFor('the topic to be attached to tiered storage', () => tb.broker.tiered!.status().some((s) => s.topic === 'late'));
  await tb.broker.tiered!.offloadNow('late');
  const late = tb.broker.tiered!.status().find((s) => s.topic === 'late')!;
  assert.ok(late.remoteSegments > 3, `its sealed segments are offloaded (${late.remoteSegments})`);
});
