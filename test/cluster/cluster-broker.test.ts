/**
 * A region cluster as users run it: a real etcd (test/helpers/etcd.ts) and three brokers as
 * child processes (test/fixtures/region-broker.ts: loadConfig then Broker.start, as the
 * CLI), configured only by `cluster.etcd.endpoints` and their node ids. Black-box checks
 * through KafkaJS, kcat and raw requests:
 * - CreateTopics sent to a broker that is not the controller creates an RF 3 topic (the
 *   request travels to the controller through etcd); KafkaJS admin creates another;
 * - kcat (acks=all, idempotent) and KafkaJS (acks=-1) produce; a consumer reads every
 *   record once, in order; the three brokers' partition logs hold byte-identical batches;
 * - Metadata from each broker lists the three brokers, the same controller, and leaders
 *   spread over the three;
 * - kcat auto-creates a topic through a non-controller broker;
 * - producer ids handed out by two brokers never collide;
 * - the controller killed with SIGKILL: another broker is elected and creates a topic;
 * - min.insync.replicas given at creation is described back (default elsewhere);
 * - AlterConfigs (KafkaJS) and IncrementalAlterConfigs through different brokers: the configs
 *   are kept in etcd and every broker describes the same; an invalid one changes nothing;
 * - CreatePartitions and DeleteTopics (KafkaJS) through one broker reach every broker (its
 *   Metadata, its disk); the deleted name created again is a new, empty topic; every broker
 *   reports the region's one cluster id;
 * - runtime replication policies (PUT/DELETE /v1/replication/policies) through one broker
 *   reach every broker (etcd); a revert without a runtime set answers at once;
 * - the admin API's POST and DELETE /v1/topics create and delete for the whole region;
 * - a topic deleted through a broker other than a group's coordinator loses the group's
 *   offsets; CreatePartitions of __meridian_offsets is refused;
 * - DeleteRecords only on the leader, up to the replicated high watermark; a new leader
 *   after SIGKILL does not serve the deleted records again;
 * - GET /v1/cluster and /metrics show the members, the controller, the lease and etcd up.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Kafka, logLevel, type ConfigResourceTypes } from 'kafkajs';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { ZERO_UUID } from '../../src/protocol/kafka/messages/index.js';
import { TestEtcd } from '../helpers/etcd.js';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { kcat } from '../helpers/kcat.js';
import { RawClient } from '../helpers/raw-kafka.js';
import { freePort, Region } from '../helpers/regions.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const REGION = 'east';
/** Kafka's config resource type of a topic (KafkaJS exports the enum as a type only under ESM). */
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;
let etcd: TestEtcd;
const brokers = new Map<number, Region>();
const dirs: Array<() => void> = [];

interface MetadataAnswer {
  controllerId: number;
  brokers: Array<{ nodeId: number; host: string; port: number }>;
  topics: Array<{ name: string; errorCode: number; partitions: Array<{ partitionIndex: number; leaderId: number; replicaNodes: number[]; isrNodes: number[]; errorCode: number }> }>;
}

async function request<T>(port: number, apiKey: number, version: number, body: unknown): Promise<T> {
  const c = await RawClient.connect(port);
  try {
    return (await c.request<T>(apiKey, version, body)).body;
  } finally {
    c.close();
  }
}

function metadata(port: number, topics: string[] | null = null): Promise<MetadataAnswer> {
  return request<MetadataAnswer>(port, ApiKey.Metadata, 9, {
    topics: topics === null ? null : topics.map((name) => ({ name, topicId: ZERO_UUID })),
    allowAutoTopicCreation: false,
    includeClusterAuthorizedOperations: false,
    includeTopicAuthorizedOperations: false,
  });
}

function running(): Region[] {
  return [...brokers.values()].filter((b) => b.running);
}

/** The controller every running broker agrees on. */
async function controller(): Promise<number> {
  return waitFor('the running brokers to agree on a controller', async () => {
    const ids = await Promise.all(running().map(async (b) => (await metadata(b.port)).controllerId));
    return ids.every((id) => id === ids[0] && id >= 0) && brokers.get(ids[0]!)?.running ? ids[0]! : undefined;
  }, 30_000);
}

/** Every batch of a partition's segment files, concatenated (a preallocated tail left out). */
async function batchBytes(dataDir: string, topic: string, partition: number): Promise<Buffer> {
  const dir = path.join(dataDir, 'logs', `${topic}-${partition}`);
  const parts: Buffer[] = [];
  for (const f of (await fs.readdir(dir)).filter((x) => x.endsWith('.log')).sort()) {
    const buf = await fs.readFile(path.join(dir, f));
    let pos = 0;
    while (pos + 12 <= buf.length) {
      const len = buf.readInt32BE(pos + 8);
      if (len <= 0 || pos + 12 + len > buf.length) break;
      parts.push(buf.subarray(pos, pos + 12 + len));
      pos += 12 + len;
    }
  }
  return Buffer.concat(parts);
}

async function createTopicAt(port: number, name: string, partitions: number, replicationFactor: number, configs: Array<{ name: string; value: string }> = []): Promise<{ errorCode: number; errorMessage: string | null; replicationFactor: number; numPartitions: number }> {
  const r = await request<{ topics: Array<{ errorCode: number; errorMessage: string | null; replicationFactor: number; numPartitions: number }> }>(port, ApiKey.CreateTopics, 5, {
    topics: [{ name, numPartitions: partitions, replicationFactor, assignments: [], configs }],
    timeoutMs: 30_000,
    validateOnly: false,
  });
  return r.topics[0]!;
}

before(async () => {
  etcd = await TestEtcd.start();
  const ids = [1, 2, 3];
  const regions = await Promise.all(ids.map(async (nodeId) => {
    const d = tmpDir(`meridian-cluster-${nodeId}-`);
    dirs.push(d.cleanup);
    const r = new Region(REGION, await freePort(), d.dir, {
      nodeId,
      cluster: { etcd: { endpoints: [etcd.endpoint] }, leaseTtlMs: '3s', replicaLagTimeMaxMs: '5s' },
      topics: { autoCreate: true, defaultPartitions: 3 },
      admin: { host: '127.0.0.1', port: 0 },
      // A second region in the registry, so that a policy naming it validates (nothing runs
      // there: only topics named by the runtime-policies test would replicate, and none is).
      replication: { regions: [{ name: REGION, address: '127.0.0.1:1' }, { name: 'west', address: '127.0.0.1:2' }] },
    });
    brokers.set(nodeId, r);
    return r;
  }));
  await Promise.all(regions.map((r) => r.start()));
});

after(async () => {
  await Promise.all([...brokers.values()].map((b) => b.stop()));
  await etcd?.close();
  for (const c of dirs) c();
});

test('three brokers on etcd: RF 3 topics created from any broker, produce, read once, identical logs, spread leaders', async () => {
  const ctrl = await controller();
  const other = [...brokers.values()].find((b) => b !== brokers.get(ctrl))!;

  // Metadata from each broker: the same three brokers and controller. A broker's start
  // waits for its own registration, not for its watch to have delivered the others' (a CI
  // run saw broker 3 missing from another's Metadata right after start): wait for that first.
  await waitFor('every broker to list the three brokers in Metadata', async () => {
    for (const b of brokers.values()) if ((await metadata(b.port)).brokers.length !== 3) return undefined;
    return true;
  }, 15_000);
  for (const b of brokers.values()) {
    const m = await metadata(b.port);
    assert.deepEqual(m.brokers.map((x) => x.nodeId).sort(), [1, 2, 3], `Metadata from ${b.port}`);
    assert.deepEqual(m.brokers.map((x) => x.port).sort(), [...brokers.values()].map((x) => x.port).sort());
    assert.equal(m.controllerId, ctrl);
  }

  // The admin API and the metrics say the same.
  for (const [nodeId, b] of brokers) {
    const admin = `http://127.0.0.1:${b.adminPort}`;
    type RegionCluster = { controllerId: number; isController: boolean; leaseValidForMs: number; etcd: { reachable: boolean }; members: Array<{ nodeId: number }> };
    // isController once the elected broker has loaded its view (a moment after the election).
    const rc = await waitFor(`GET /v1/cluster of broker ${nodeId}`, async () => {
      const body = (await (await fetch(`${admin}/v1/cluster`)).json()) as { regionCluster: RegionCluster };
      return body.regionCluster.isController === (nodeId === ctrl) ? body.regionCluster : undefined;
    }, 10_000);
    assert.equal(rc.controllerId, ctrl);
    assert.equal(rc.isController, nodeId === ctrl);
    assert.ok(rc.leaseValidForMs > 0, 'leased');
    assert.equal(rc.etcd.reachable, true);
    assert.deepEqual(rc.members.map((m) => m.nodeId), [1, 2, 3]);
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    assert.match(metrics, new RegExp(`^meridian_cluster_is_controller(\\{[^}]*\\})? ${nodeId === ctrl ? 1 : 0}$`, 'm'));
    assert.match(metrics, /^meridian_cluster_etcd_up(\{[^}]*\})? 1$/m);
  }

  // CreateTopics to a broker that is not the controller: forwarded through etcd.
  const created = await createTopicAt(other.port, 'orders', 3, 3, [{ name: 'min.insync.replicas', value: '2' }]);
  assert.equal(created.errorCode, 0, created.errorMessage ?? '');
  assert.equal(created.replicationFactor, 3);
  // A second creation of the name is refused, wherever it is sent.
  assert.equal((await createTopicAt(brokers.get(ctrl)!.port, 'orders', 3, 3)).errorCode, 36 /* TOPIC_ALREADY_EXISTS */);
  // More replicas than brokers: refused by the controller, the error carried back.
  const tooMany = await createTopicAt(other.port, 'too-many', 1, 4);
  assert.equal(tooMany.errorCode, 38 /* INVALID_REPLICATION_FACTOR */, tooMany.errorMessage ?? '');

  // KafkaJS admin (sends CreateTopics to Metadata's controller).
  const kafka = new Kafka({ clientId: 'cluster-test', brokers: [other.bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 100 } });
  const admin = kafka.admin();
  await admin.connect();
  try {
    assert.equal(await admin.createTopics({ topics: [{ topic: 'payments', numPartitions: 3, replicationFactor: 3 }], waitForLeaders: true }), true);
    // min.insync.replicas is a topic config in a cluster: kept in etcd, described by any broker.
    const described = await admin.describeConfigs({ resources: [{ type: TOPIC_RESOURCE, name: 'orders', configNames: ['min.insync.replicas'] }, { type: TOPIC_RESOURCE, name: 'payments', configNames: ['min.insync.replicas'] }], includeSynonyms: false });
    const mir = described.resources.map((r) => [r.resourceName, r.configEntries.find((e) => e.configName === 'min.insync.replicas')?.configValue]);
    assert.deepEqual(Object.fromEntries(mir), { orders: '2', payments: '1' });
  } finally {
    await admin.disconnect();
  }

  // Every broker lists both topics, RF 3, leaders on three different brokers.
  for (const b of brokers.values()) {
    const m = await waitFor(`topics with leaders on broker at ${b.port}`, async () => {
      const x = await metadata(b.port, ['orders', 'payments']);
      return x.topics.every((t) => t.errorCode === 0 && t.partitions.length === 3 && t.partitions.every((p) => p.leaderId > 0 && p.isrNodes.length === 3)) ? x : undefined;
    }, 30_000);
    for (const t of m.topics) {
      for (const p of t.partitions) assert.deepEqual([...p.replicaNodes].sort(), [1, 2, 3]);
      assert.equal(new Set(t.partitions.map((p) => p.leaderId)).size, 3, `leaders of ${t.name}: ${t.partitions.map((p) => p.leaderId)}`);
    }
  }

  // kcat: acks=all, idempotent, keyed across the three partitions.
  const kcatLines = Array.from({ length: 300 }, (_, i) => `k${i % 7}:kcat-${i}`).join('\n') + '\n';
  const k = await kcat(['-b', other.bootstrap, '-P', '-t', 'orders', '-K', ':', '-X', 'acks=all', '-X', 'enable.idempotence=true'], kcatLines, 30_000);
  assert.equal(k.code, 0, k.stderr);
  // KafkaJS acks=-1.
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    for (let i = 0; i < 10; i++) {
      await producer.send({ topic: 'orders', acks: -1, messages: Array.from({ length: 30 }, (_, j) => ({ key: `j${j % 5}`, value: `kafkajs-${i * 30 + j}` })) });
    }
  } finally {
    await producer.disconnect();
  }

  // Read once, in order (per key: each key's records are in one partition, in send order).
  const got = await readTopicToEnd(other.bootstrap, 'orders', { timeoutMs: 30_000 });
  const values = got.map((m) => String(m.value));
  assert.equal(values.length, 600);
  assert.equal(new Set(values).size, 600, 'no duplicates');
  const perKey = new Map<string, number[]>();
  for (const m of got) {
    const v = String(m.value);
    const n = Number(v.slice(v.indexOf('-') + 1));
    const key = `${v.startsWith('kcat') ? 'c' : 'j'}:${String(m.key)}`;
    perKey.set(key, [...(perKey.get(key) ?? []), n]);
  }
  for (const [key, ns] of perKey) assert.deepEqual(ns, [...ns].sort((a, b) => a - b), `order of key ${key}`);

  // The three logs of each partition: byte-identical batches (followers copy verbatim).
  for (let p = 0; p < 3; p++) {
    await waitFor(`orders-${p} identical on the three brokers`, async () => {
      const logs = await Promise.all([...brokers.values()].map((b) => batchBytes(b.dataDir, 'orders', p)));
      return logs[0]!.length > 0 && logs.every((l) => l.equals(logs[0]!));
    }, 30_000, 100, async () => (await Promise.all([...brokers.values()].map((b) => batchBytes(b.dataDir, 'orders', p)))).map((l) => l.length).join(' / ') + ' bytes');
  }
});

test('kcat auto-creates a topic through a broker that is not the controller', async () => {
  const ctrl = await controller();
  const other = [...brokers.values()].find((b) => b !== brokers.get(ctrl) && b.running)!;
  const k = await kcat(['-b', other.bootstrap, '-P', '-t', 'auto-made', '-X', 'acks=all', '-X', 'enable.idempotence=true'], 'a\nb\nc\n', 30_000);
  assert.equal(k.code, 0, k.stderr);
  for (const b of running()) {
    const m = await metadata(b.port, ['auto-made']);
    assert.equal(m.topics[0]!.errorCode, 0);
    assert.equal(m.topics[0]!.partitions.length, 3);
    for (const p of m.topics[0]!.partitions) assert.equal(p.replicaNodes.length, 3);
  }
  const got = await readTopicToEnd(other.bootstrap, 'auto-made', { timeoutMs: 30_000 });
  assert.deepEqual(got.map((m) => String(m.value)).sort(), ['a', 'b', 'c']);
});

test('producer ids from different brokers never collide', async () => {
  const ids: bigint[] = [];
  for (const b of running()) {
    const c = await RawClient.connect(b.port);
    try {
      for (let i = 0; i < 50; i++) {
        const r = await c.request<{ errorCode: number; producerId: bigint }>(ApiKey.InitProducerId, 4, { transactionalId: null, transactionTimeoutMs: 60_000, producerId: -1n, producerEpoch: -1 });
        assert.equal(r.body.errorCode, 0);
        ids.push(r.body.producerId);
      }
    } finally {
      c.close();
    }
  }
  assert.equal(new Set(ids.map(String)).size, ids.length, 'every producer id handed out once');
});

/** A topic's id as Metadata v10 (the first with topic ids) gives it. */
async function topicIdAt(port: number, topic: string): Promise<string> {
  const r = await request<{ topics: Array<{ errorCode: number; topicId: string }> }>(port, ApiKey.Metadata, 10, {
    topics: [{ name: topic, topicId: ZERO_UUID }],
    allowAutoTopicCreation: false,
    includeClusterAuthorizedOperations: false,
    includeTopicAuthorizedOperations: false,
  });
  assert.equal(r.topics[0]!.errorCode, 0);
  return r.topics[0]!.topicId;
}

/** DescribeConfigs of one topic asked of the broker at `port`: name -> [value, source]. */
async function describeAt(port: number, topic: string, names: string[]): Promise<Map<string, [string | null, number]>> {
  const r = await request<{ results: Array<{ errorCode: number; configs: Array<{ name: string; value: string | null; configSource: number }> }> }>(port, ApiKey.DescribeConfigs, 1, {
    resources: [{ resourceType: 2, resourceName: topic, configurationKeys: names }],
    includeSynonyms: false,
    includeDocumentation: false,
  });
  assert.equal(r.results[0]!.errorCode, 0);
  return new Map(r.results[0]!.configs.map((c) => [c.name, [c.value, c.configSource] as [string | null, number]]));
}

test('topic configs altered through any broker live in etcd: every broker describes and applies the same', async () => {
  const [a, b] = running();
  assert.equal((await createTopicAt(a!.port, 'configured', 1, 3)).errorCode, 0);
  // KafkaJS's alterConfigs (AlterConfigs v0: the whole set of overrides) through broker b.
  const kafka = new Kafka({ clientId: 'configs', brokers: [b!.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: TOPIC_RESOURCE, name: 'configured', configEntries: [{ name: 'retention.ms', value: '3600000' }, { name: 'min.insync.replicas', value: '2' }] }],
    });
  } finally {
    await admin.disconnect();
  }
  for (const r of running()) {
    const d = await describeAt(r.port, 'configured', ['retention.ms', 'min.insync.replicas', 'segment.bytes']);
    assert.deepEqual([d.get('retention.ms')?.[0], d.get('min.insync.replicas')?.[0]], ['3600000', '2'], `broker ${r.port} describes the altered configs`);
    assert.equal(d.get('retention.ms')?.[1], 1, 'a dynamic topic config (source 1)');
  }
  // IncrementalAlterConfigs through broker a: SET one, DELETE another; the rest kept.
  const inc = await request<{ responses: Array<{ errorCode: number; errorMessage: string | null }> }>(a!.port, ApiKey.IncrementalAlterConfigs, 0, {
    resources: [{ resourceType: 2, resourceName: 'configured', configs: [{ name: 'segment.bytes', configOperation: 0, value: '1048576' }, { name: 'retention.ms', configOperation: 1, value: null }] }],
    validateOnly: false,
  });
  assert.equal(inc.responses[0]!.errorCode, 0, inc.responses[0]!.errorMessage ?? '');
  for (const r of running()) {
    const d = await describeAt(r.port, 'configured', ['retention.ms', 'min.insync.replicas', 'segment.bytes']);
    assert.deepEqual(
      [d.get('segment.bytes')?.[0], d.get('min.insync.replicas')?.[0], d.get('retention.ms')?.[1]],
      ['1048576', '2', 5],
      `broker ${r.port}: segment.bytes set, min.insync.replicas kept, retention.ms back to the broker's value (source 5)`,
    );
  }
  // min.insync.replicas above the replication factor is refused, and changes nothing.
  const bad = await request<{ responses: Array<{ errorCode: number; errorMessage: string | null }> }>(b!.port, ApiKey.IncrementalAlterConfigs, 0, {
    resources: [{ resourceType: 2, resourceName: 'configured', configs: [{ name: 'min.insync.replicas', configOperation: 0, value: '4' }] }],
    validateOnly: false,
  });
  assert.equal(bad.responses[0]!.errorCode, 40, 'INVALID_CONFIG');
  assert.match(bad.responses[0]!.errorMessage ?? '', /replication factor 3/);
  assert.equal((await describeAt(a!.port, 'configured', ['min.insync.replicas'])).get('min.insync.replicas')?.[0], '2');
});

test('CreatePartitions and DeleteTopics through any broker apply to the whole region; the name can be created again', async () => {
  const [a, b, c] = running();
  // One region, one cluster id: librdkafka refuses brokers that report different ones.
  const ids = await Promise.all(running().map(async (r) => ((await metadata(r.port, [])) as unknown as { clusterId: string }).clusterId));
  assert.equal(new Set(ids).size, 1, `every broker reports the region's cluster id (${ids.join(', ')})`);
  assert.equal((await createTopicAt(a!.port, 'growing', 1, 3)).errorCode, 0);
  const kafka = new Kafka({ clientId: 'topic-admin', brokers: [b!.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    // KafkaJS createPartitions through broker b: 1 -> 4, placed over the three brokers.
    await admin.createPartitions({ topicPartitions: [{ topic: 'growing', count: 4 }] });
    for (const r of running()) {
      const m = await waitFor(`broker ${r.port} to list 4 led partitions of growing`, async () => {
        const t = (await metadata(r.port, ['growing'])).topics[0]!;
        return t.errorCode === 0 && t.partitions.length === 4 && t.partitions.every((p) => p.leaderId > 0 && p.replicaNodes.length === 3) ? t : undefined;
      }, 20_000);
      assert.deepEqual(m.partitions.map((p) => p.partitionIndex).sort(), [0, 1, 2, 3]);
    }
    // The new partitions take records: kcat into partition 3 (acks=all), read back from it.
    const values = Array.from({ length: 20 }, (_, i) => `p3-${i}`);
    const put = await kcat(['-P', '-b', c!.bootstrap, '-t', 'growing', '-p', '3', '-X', 'acks=all'], values.join('\n') + '\n', 30_000);
    assert.equal(put.code, 0, put.stderr);
    const out = await kcat(['-C', '-b', a!.bootstrap, '-t', 'growing', '-p', '3', '-o', 'beginning', '-e', '-q'], undefined, 30_000);
    assert.deepEqual(out.stdout.toString().trim().split('\n'), values);
    // Fewer partitions are refused.
    await assert.rejects(admin.createPartitions({ topicPartitions: [{ topic: 'growing', count: 2 }] }), /INVALID_PARTITIONS|partitions/i);

    // KafkaJS deleteTopics through broker b: gone from every broker's Metadata and disk.
    const idBefore = await topicIdAt(a!.port, 'growing');
    await admin.deleteTopics({ topics: ['growing'], timeout: 20_000 });
    for (const r of running()) {
      await waitFor(`broker ${r.port} to forget growing`, async () => (await metadata(r.port, ['growing'])).topics[0]!.errorCode === 3, 20_000);
      await waitFor(`broker ${r.port}'s copy of growing to leave its disk`, async () => {
        const dirs = await fs.readdir(path.join(r.dataDir, 'logs')).catch(() => [] as string[]);
        return !dirs.some((d) => d.startsWith('growing-'));
      }, 20_000);
    }
    // Created again: a new topic (new id, empty, one partition).
    assert.equal((await createTopicAt(c!.port, 'growing', 1, 3)).errorCode, 0);
    const again = await waitFor('growing created again and led', async () => {
      const t = (await metadata(a!.port, ['growing'])).topics[0]!;
      return t.errorCode === 0 && t.partitions.length === 1 && t.partitions[0]!.leaderId > 0 ? t : undefined;
    }, 20_000);
    assert.equal(again.partitions.length, 1);
    const idAfter = await topicIdAt(a!.port, 'growing');
    assert.notEqual(idAfter, idBefore, 'a new topic id');
    assert.notEqual(idAfter, ZERO_UUID);
    const empty = await kcat(['-C', '-b', a!.bootstrap, '-t', 'growing', '-o', 'beginning', '-e', '-q'], undefined, 30_000);
    assert.equal(empty.stdout.toString().trim(), '', 'nothing of the deleted topic is read back');
  } finally {
    await admin.disconnect();
  }
});

test('runtime replication policies set through one broker\'s admin API apply on every broker; a revert through another applies everywhere', async () => {
  type PolicySetBody = { source: string; fingerprint: string; policies: unknown[] };
  const api = async (b: Region, method: string, body?: unknown): Promise<{ status: number; body: PolicySetBody }> => {
    const res = await fetch(`http://127.0.0.1:${b.adminPort}/v1/replication/policies`, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
    return { status: res.status, body: (await res.json()) as PolicySetBody };
  };
  const [a, b, c] = running();
  const set = [{ name: 'to-west', topics: ['never-created-*'], topology: 'one-way', source: REGION, targets: ['west'] }];
  const put = await api(a!, 'PUT', { policies: set });
  assert.equal(put.status, 200);
  assert.equal(put.body.source, 'runtime');
  for (const r of running()) {
    const got = await waitFor(`broker ${r.port} to apply the runtime policies`, async () => {
      const g = await api(r, 'GET');
      return g.body.source === 'runtime' ? g.body : undefined;
    }, 10_000);
    assert.equal(got.fingerprint, put.body.fingerprint, 'the same set on every broker');
  }
  // A set naming a region the registry lacks is refused and changes nothing anywhere.
  const bad = await api(b!, 'PUT', { policies: [{ name: 'x', topics: ['t'], topology: 'one-way', source: REGION, targets: ['mars'] }] });
  assert.equal(bad.status, 400);
  assert.equal((await api(c!, 'GET')).body.fingerprint, put.body.fingerprint);
  // Reverted through broker c: every broker is back on its config file's policies.
  const reverted = await api(c!, 'DELETE');
  assert.equal(reverted.status, 200);
  assert.equal(reverted.body.source, 'config');
  for (const r of running()) await waitFor(`broker ${r.port} to revert`, async () => (await api(r, 'GET')).body.source === 'config', 10_000);
  // Reverting again (no runtime set) is idempotent and answers at once.
  const t0 = Date.now();
  const again = await api(a!, 'DELETE');
  assert.equal(again.status, 200);
  assert.equal(again.body.source, 'config');
  assert.ok(Date.now() - t0 < 5000, `a second revert answered in ${Date.now() - t0} ms`);
});

test('the admin API creates and deletes topics for the whole region, not one broker\'s copy', async () => {
  const [a, b] = running();
  const res = await fetch(`http://127.0.0.1:${a!.adminPort}/v1/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin-made', partitions: 2 }) });
  assert.equal(res.status, 201, await res.text());
  for (const r of running()) {
    await waitFor(`broker ${r.port} to lead admin-made`, async () => {
      const t = (await metadata(r.port, ['admin-made'])).topics[0]!;
      return t.errorCode === 0 && t.partitions.length === 2 && t.partitions.every((p) => p.leaderId > 0 && p.replicaNodes.length === 3);
    }, 20_000);
  }
  const del = await fetch(`http://127.0.0.1:${b!.adminPort}/v1/topics/admin-made`, { method: 'DELETE' });
  assert.equal(del.status, 204, await del.text());
  for (const r of running()) await waitFor(`broker ${r.port} to forget admin-made`, async () => (await metadata(r.port, ['admin-made'])).topics[0]!.errorCode === 3, 20_000);
});

test('DeleteRecords is the leader\'s, up to the replicated high watermark; followers follow its log start, so deleted records stay deleted after a leader change', async () => {
  const [a] = running();
  assert.equal((await createTopicAt(a!.port, 'trimmed', 1, 3)).errorCode, 0);
  const view = await waitFor('trimmed led with an ISR of 3', async () => {
    const p = (await metadata(a!.port, ['trimmed'])).topics[0]!.partitions[0];
    return p !== undefined && p.leaderId > 0 && p.isrNodes.length === 3 ? p : undefined;
  }, 20_000);
  const leader = brokers.get(view.leaderId)!;
  const put = await kcat(['-P', '-b', leader.bootstrap, '-t', 'trimmed', '-X', 'acks=all'], Array.from({ length: 10 }, (_, i) => `r${i}`).join('\n') + '\n', 30_000);
  assert.equal(put.code, 0, put.stderr);
  // Sent to a follower: refused, nothing deleted.
  const follower = [...brokers.values()].find((b) => b !== leader && b.running)!;
  const deleteAt = (port: number, offset: bigint) =>
    request<{ topics: Array<{ partitions: Array<{ errorCode: number; lowWatermark: bigint }> }> }>(port, ApiKey.DeleteRecords, 1, { topics: [{ name: 'trimmed', partitions: [{ partitionIndex: 0, offset }] }], timeoutMs: 10_000 });
  assert.equal((await deleteAt(follower.port, 6n)).topics[0]!.partitions[0]!.errorCode, 6, 'NOT_LEADER_OR_FOLLOWER from a follower');
  assert.equal((await deleteAt(leader.port, 11n)).topics[0]!.partitions[0]!.errorCode, 1, 'OFFSET_OUT_OF_RANGE past the high watermark');
  // KafkaJS (it sends DeleteRecords to the leader): records before offset 6 go.
  const kafka = new Kafka({ clientId: 'trim', brokers: [a!.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.fetchTopicMetadata({ topics: ['trimmed'] });
    await admin.deleteTopicRecords({ topic: 'trimmed', partitions: [{ partition: 0, offset: '6' }] });
  } finally {
    await admin.disconnect();
  }
  // The leader dies; a follower leads: it must not serve r0..r5 again.
  await leader.kill9();
  const next = await waitFor('a new leader of trimmed', async () => {
    const p = (await metadata(follower.port, ['trimmed'])).topics[0]!.partitions[0];
    return p !== undefined && p.leaderId > 0 && p.leaderId !== view.leaderId ? p : undefined;
  }, 20_000);
  const nl = brokers.get(next.leaderId)!;
  const out = await kcat(['-C', '-b', nl.bootstrap, '-t', 'trimmed', '-o', 'beginning', '-e', '-q'], undefined, 30_000);
  assert.deepEqual(out.stdout.toString().trim().split('\n'), ['r6', 'r7', 'r8', 'r9'], 'the new leader starts where the old one deleted up to');
  // Back: the region has its three brokers again for what follows.
  await leader.start();
  await waitFor('the restarted broker back in trimmed\'s ISR', async () => (await metadata(nl.port, ['trimmed'])).topics[0]!.partitions[0]!.isrNodes.length === 3, 30_000);
});

test('a topic deleted through a broker that is not the group\'s coordinator loses its committed offsets everywhere; __meridian_offsets cannot grow', async () => {
  const [a] = running();
  assert.equal((await createTopicAt(a!.port, 'offsets-go', 1, 3)).errorCode, 0);
  const kafka = new Kafka({ clientId: 'offsets-go', brokers: running().map((r) => r.bootstrap), logLevel: logLevel.NOTHING, retry: { retries: 20, initialRetryTime: 100, maxRetryTime: 1000 } });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.setOffsets({ groupId: 'g-offsets-go', topic: 'offsets-go', partitions: [{ partition: 0, offset: '0' }] });
    // The group's coordinator, from FindCoordinator (v1: one key).
    const coord = await request<{ errorCode: number; nodeId: number }>(a!.port, ApiKey.FindCoordinator, 1, { key: 'g-offsets-go', keyType: 0, coordinatorKeys: [] });
    assert.equal(coord.errorCode, 0);
    const other = running().find((r) => r !== brokers.get(coord.nodeId))!;
    const del = await request<{ responses: Array<{ errorCode: number; errorMessage: string | null }> }>(other.port, ApiKey.DeleteTopics, 6, { topics: [{ name: 'offsets-go', topicId: ZERO_UUID }], topicNames: [], timeoutMs: 20_000 });
    assert.equal(del.responses[0]!.errorCode, 0, del.responses[0]!.errorMessage ?? '');
    assert.equal((await createTopicAt(other.port, 'offsets-go', 1, 3)).errorCode, 0);
    const after = await waitFor('the recreated topic\'s group offsets to be gone', async () => {
      const o = await admin.fetchOffsets({ groupId: 'g-offsets-go', topics: ['offsets-go'] }).catch(() => undefined);
      const p0 = o?.[0]?.partitions.find((p) => p.partition === 0);
      return p0 !== undefined && p0.offset === '-1' ? p0 : undefined;
    }, 20_000);
    assert.equal(after.offset, '-1', 'no committed offset for the new topic of the name');
  } finally {
    await admin.disconnect();
  }
  const grow = await request<{ results: Array<{ errorCode: number; errorMessage: string | null }> }>(a!.port, ApiKey.CreatePartitions, 1, { topics: [{ name: '__meridian_offsets', count: 64, assignments: null }], timeoutMs: 5000, validateOnly: false });
  assert.equal(grow.results[0]!.errorCode, 42, 'INVALID_REQUEST: the offsets topic\'s partition count is fixed');
});

test('the controller killed with SIGKILL: another broker takes over and creates topics', async () => {
  const ctrl = await controller();
  await brokers.get(ctrl)!.kill9();
  const next = await controller();
  assert.notEqual(next, ctrl);
  const survivor = running().find((b) => b !== brokers.get(next))!;
  const created = await createTopicAt(survivor.port, 'after-failover', 2, 2);
  assert.equal(created.errorCode, 0, created.errorMessage ?? '');
  const m = await waitFor('after-failover led', async () => {
    const x = await metadata(survivor.port, ['after-failover']);
    return x.topics[0]!.errorCode === 0 && x.topics[0]!.partitions.every((p) => p.leaderId > 0) ? x : undefined;
  }, 20_000);
  assert.equal(m.brokers.length, 2, 'the killed broker left the region');
  for (const p of m.topics[0]!.partitions) assert.ok(!p.replicaNodes.includes(ctrl), 'placed on live brokers only');
});
