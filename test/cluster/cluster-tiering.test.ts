/**
 * Tiered storage on a region cluster (issue 16), end to end: a real etcd and three
 * `meridian broker --config FILE` processes (test/helpers/cluster.ts) sharing one local
 * directory as the object store; small segments, offload on seal, an upload bandwidth limit
 * so that an upload lasts about a second, local copies deleted as soon as the bucket holds
 * them. An RF 3 topic is produced with acks=all (KafkaJS); only the leader offloads; it is
 * SIGKILLed while an upload is in flight (its temporary object is in the store); the new
 * leader claims the manifest and completes the offload. Then what a user and an operator
 * check: the manifest covers every sealed segment, is one contiguous run, and everything
 * committed after the kill carries the new leader's epoch; no object is left that the
 * manifest does not name; the surviving replicas deleted their local copies below it; kcat
 * and KafkaJS read every record from offset 0, byte-identical, exactly once, in order.
 *
 * Also the fence itself, on the same etcd: a commit with an older leader epoch, or from a
 * stale revision, is refused.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { EtcdRegion } from '../../src/cluster/etcd-region.js';
import { EtcdManifestFence } from '../../src/cluster/tier-manifest-fence.js';
import { decodeManifest, remoteEndOffset, servedFrom, type PartitionManifest } from '../../src/tiered/manifest.js';
import type { PointerAt } from '../../src/tiered/cluster-tiering.js';
import { TestCluster, waitFor } from '../helpers/cluster.js';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { kcat } from '../helpers/kcat.js';
import { parseKcatJson } from '../helpers/kcat-json.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const TOPIC = 'tiered-cluster';
const REGION = 'us-east';
const SEGMENT_BYTES = 32 * 1024;
/** One segment's upload takes about a second: long enough for the kill to land inside one. */
const UPLOAD_BYTES_PER_SEC = 32 * 1024;
const RECORDS = 1200;

let cluster: TestCluster;
let store: { dir: string; cleanup: () => void };
let region: EtcdRegion;
let fence: EtcdManifestFence;

before(async () => {
  store = tmpDir('meridian-cluster-tiered-');
  cluster = await TestCluster.start({
    brokers: 3,
    region: REGION,
    config: {
      log: { segmentBytes: SEGMENT_BYTES },
      tiered: {
        enabled: true,
        store: { type: 'fs', dir: store.dir },
        offload: { onSeal: true, maxBytesPerSec: UPLOAD_BYTES_PER_SEC },
        localRetention: { bytes: 0 },
        deletionLagMs: 0,
        checkIntervalMs: 100,
      },
    },
  });
  region = new EtcdRegion({ region: REGION, etcd: { endpoints: [cluster.etcd.endpoint], prefix: '/meridian-e2e' } });
  fence = new EtcdManifestFence(region);
});

after(async () => {
  region?.close();
  await cluster?.close();
  store?.cleanup();
});

const storeRoot = () => path.join(store.dir, REGION);
const objectPath = (key: string) => path.join(storeRoot(), 'objects', ...key.split('/'));

/** The fenced pointer and the manifest it names (null before the first commit). */
async function fenced(): Promise<{ at: PointerAt; manifest: PartitionManifest | null } | null> {
  const at = await fence.read(TOPIC, 0);
  if (at === null) return null;
  if (at.pointer.manifestKey === null) return { at, manifest: null };
  try {
    return { at, manifest: decodeManifest(fs.readFileSync(objectPath(at.pointer.manifestKey)), at.pointer.manifestKey) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fenced(); // replaced meanwhile
    throw err;
  }
}

/** Every object key under the partition's `segments/` in the store directory. */
function segmentObjects(): string[] {
  const out: string[] = [];
  const walk = (dir: string, prefix: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(dir, e.name), `${prefix}${e.name}/`);
      else out.push(`${prefix}${e.name}`);
    }
  };
  const topicDir = path.join(storeRoot(), 'objects', 'topics', TOPIC);
  if (fs.existsSync(topicDir)) walk(topicDir, `topics/${TOPIC}/`);
  return out.filter((k) => k.includes('/segments/'));
}

/** The base offsets of a broker's local segment files, in order. */
function localSegments(dataDir: string): bigint[] {
  const dir = path.join(dataDir, 'logs', `${TOPIC}-0`);
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .sort()
    .map((f) => BigInt(f.slice(0, -4)));
}

async function tieredStatus(adminPort: number): Promise<{ uploadedSegments: number; copying: string | null }> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/v1/tiered/status`);
  const body = (await res.json()) as { partitions: Array<{ topic: string; partition: number; uploadedSegments: number; copying: string | null }> };
  return body.partitions.find((p) => p.topic === TOPIC && p.partition === 0) ?? { uploadedSegments: 0, copying: null };
}

test('the manifest fence refuses a commit from an older leader epoch or a stale revision', async () => {
  const topic = 'fence-unit';
  const first = await fence.commit(topic, 0, null, { topicId: 'id-1', leaderEpoch: 5, version: 0, manifestKey: null, writer: 1 });
  assert.ok(first.ok, 'the first claim of an absent pointer succeeds');
  const v1 = await fence.commit(topic, 0, first.at, { topicId: 'id-1', leaderEpoch: 5, version: 1, manifestKey: 'm/1-e5', writer: 1 });
  assert.ok(v1.ok, 'the leader commits version 1 on the revision it holds');

  // A deposed leader (epoch 4) holding the current revision: refused for its epoch.
  const older = await fence.commit(topic, 0, v1.at, { topicId: 'id-1', leaderEpoch: 4, version: 2, manifestKey: 'm/2-e4', writer: 2 });
  assert.equal(older.ok, false, 'a commit at leader epoch 4 over a pointer at epoch 5 is refused');
  assert.equal(older.ok ? -1 : older.current?.pointer.leaderEpoch, 5, 'the refusal returns the current pointer');

  // A new leader (epoch 6) claims; the old leader's commit from the revision it held is refused.
  const claim = await fence.commit(topic, 0, v1.at, { topicId: 'id-1', leaderEpoch: 6, version: 1, manifestKey: 'm/1-e5', writer: 3 });
  assert.ok(claim.ok, 'the new leader claims at epoch 6');
  const late = await fence.commit(topic, 0, v1.at, { topicId: 'id-1', leaderEpoch: 5, version: 2, manifestKey: 'm/2-e5', writer: 1 });
  assert.equal(late.ok, false, "the old leader's late commit from its stale revision is refused");
  // Even re-reading the pointer does not help it: epoch 5 < 6.
  const retried = await fence.commit(topic, 0, claim.at, { topicId: 'id-1', leaderEpoch: 5, version: 2, manifestKey: 'm/2-e5', writer: 1 });
  assert.equal(retried.ok, false, 'a commit at epoch 5 over the epoch-6 pointer is refused even on the current revision');
  const now = await fence.read(topic, 0);
  assert.deepEqual(now?.pointer, { topicId: 'id-1', leaderEpoch: 6, version: 1, manifestKey: 'm/1-e5', writer: 3 }, 'the pointer is the new leader claim, untouched');

  // A recreated topic (another id) starts its epochs again: its first claim is not fenced by the old topic's.
  const recreated = await fence.commit(topic, 0, now, { topicId: 'id-2', leaderEpoch: 0, version: 0, manifestKey: null, writer: 2 });
  assert.ok(recreated.ok, "a new topic id's claim replaces the old topic's pointer");
});

test('leader SIGKILLed mid-upload: the new leader completes the offload under its epoch; cold reads with kcat and KafkaJS return every record once, byte-identical', async (t) => {
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  const kafka = new Kafka({ clientId: 'tiering-test', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING, retry: { retries: 30, initialRetryTime: 100, maxRetryTime: 1000 } });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 1, replicationFactor: 3 }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  const initial = await cluster.partition(TOPIC, 0, (v) => v.replicas.length === 3 && v.isr.length === 3);
  mark(`topic created, leader ${initial.leader} at epoch ${initial.leaderEpoch}`);

  // Produce everything with acks=all; non-UTF-8 payloads so byte identity means something.
  const produced: Array<{ key: Buffer; value: Buffer }> = [];
  for (let i = 0; i < RECORDS; i++) produced.push({ key: Buffer.from(`k-${i}`), value: Buffer.concat([Buffer.from(`v-${i}-`), randomBytes(150)]) });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    for (let i = 0; i < RECORDS; i += 40) await producer.send({ topic: TOPIC, acks: -1, messages: produced.slice(i, i + 40).map((m) => ({ ...m, partition: 0 })) });
  } finally {
    await producer.disconnect();
  }
  mark(`${RECORDS} records acknowledged (acks=all)`);

  // The leader offloads (one segment a second); wait until it committed at least one and the
  // next upload is in flight: its temporary object is in the store directory.
  const leader = cluster.node(initial.leader);
  const tmp = path.join(storeRoot(), 'tmp');
  await waitFor('the leader to commit a first segment', async () => ((await fenced())?.manifest?.segments.length ?? 0) >= 1, 20_000, 20);
  const inFlight = await waitFor('an upload in flight (a temporary object in the store)', () => fs.readdirSync(tmp)[0] ?? false, 20_000, 2);
  await leader.kill9();
  const killedAt = Date.now();
  const beforeKill = await fenced();
  assert.ok(fs.existsSync(path.join(tmp, inFlight)), 'the kill landed during the upload: its temporary object was never completed');
  assert.ok(beforeKill?.manifest !== null && beforeKill !== null);
  const oldEpoch = beforeKill.at.pointer.leaderEpoch;
  assert.equal(beforeKill.at.pointer.writer, initial.leader, 'the leader wrote the manifest');
  assert.equal(oldEpoch, initial.leaderEpoch);
  mark(`leader ${leader.nodeId} killed mid-upload; the manifest held ${beforeKill.manifest!.segments.length} segment(s) to offset ${remoteEndOffset(beforeKill.manifest!)}`);

  // Only the leader uploaded: the followers' own counters.
  for (const b of cluster.running) assert.equal((await tieredStatus(b.adminPort)).uploadedSegments, 0, `follower ${b.nodeId} uploaded nothing`);

  const next = await cluster.partition(TOPIC, 0, (v) => v.leader !== leader.nodeId && v.leaderEpoch > initial.leaderEpoch);
  const newLeader = cluster.node(next.leader);
  mark(`broker ${next.leader} leads at epoch ${next.leaderEpoch}`);

  // The new leader completes the offload: every sealed segment of its log is covered.
  const done = await waitFor(
    'the new leader to offload every sealed segment',
    async () => {
      const f = await fenced();
      const segs = localSegments(newLeader.dataDir);
      const active = segs[segs.length - 1]!;
      return f !== null && f.manifest !== null && f.at.pointer.leaderEpoch === next.leaderEpoch && remoteEndOffset(f.manifest) >= active ? f : false;
    },
    30_000,
    50,
  );
  const manifest = done.manifest!;
  mark(`the manifest covers offsets ${manifest.startOffset} to ${remoteEndOffset(manifest)} in ${manifest.segments.length} segments (version ${manifest.version}): ${manifest.segments.map((s) => `[${servedFrom(s)}${s.startOffset !== undefined ? ` (object from ${s.baseOffset})` : ''}, ${s.nextOffset}) e${s.leaderEpoch}`).join(' ')}`);

  // Contiguous from offset 0; entries committed after the kill carry the new leader's epoch.
  assert.equal(manifest.startOffset, 0n);
  assert.equal(servedFrom(manifest.segments[0]!), 0n);
  for (let i = 1; i < manifest.segments.length; i++) assert.equal(servedFrom(manifest.segments[i]!), manifest.segments[i - 1]!.nextOffset, `entry ${i} continues entry ${i - 1}`);
  assert.equal(manifest.leaderEpoch, next.leaderEpoch, 'the manifest version was written under the new leader epoch');
  const afterKill = manifest.segments.filter((s) => Date.parse(s.uploadedAt) >= killedAt);
  assert.ok(afterKill.length >= 1, 'the new leader committed segments');
  for (const s of afterKill) assert.equal(s.leaderEpoch, next.leaderEpoch, `segment at ${servedFrom(s)} committed after the kill carries the new epoch`);
  for (const s of manifest.segments) assert.ok(s.leaderEpoch === oldEpoch || s.leaderEpoch === next.leaderEpoch, `segment at ${servedFrom(s)} has epoch ${s.leaderEpoch}`);
  const oldEntries = beforeKill.manifest!.segments.map((s) => s.dataKey);
  assert.deepEqual(manifest.segments.slice(0, oldEntries.length).map((s) => s.dataKey), oldEntries, "the old leader's committed entries are kept as they were");

  // Nothing orphaned or duplicated: the store holds exactly the objects the manifest names.
  await waitFor(
    'the store to hold only the objects the manifest names',
    async () => {
      const f = await fenced();
      const named = new Set(f!.manifest!.segments.flatMap((s) => [s.dataKey, s.indexKey]));
      const objects = segmentObjects();
      return objects.length === named.size && objects.every((k) => named.has(k));
    },
    15_000,
    50,
    () => `objects: ${segmentObjects().join(', ')}`,
  );

  // Local copies below the manifest are deleted on every running replica (local retention 0).
  for (const b of cluster.running) await localCopiesDeleted(b.nodeId, b.dataDir);
  mark('local copies deleted below the manifest on the running replicas');

  // Cold reads from offset 0: kcat, then KafkaJS, against the new leader.
  const expectSame = (who: string, got: Array<{ offset: number; key: Buffer | null; value: Buffer | null }>) => {
    assert.equal(got.length, RECORDS, `${who} read ${got.length} records, ${RECORDS} were produced`);
    got.forEach((m, i) => {
      assert.equal(m.offset, i, `${who}: record #${i} is at offset ${m.offset}`);
      assert.ok(m.key !== null && m.key.equals(produced[i]!.key), `${who}: the key at offset ${i} is the one produced`);
      assert.ok(m.value !== null && m.value.equals(produced[i]!.value), `${who}: the value at offset ${i} is byte-identical`);
    });
  };
  const r = await kcat(['-b', cluster.bootstrap.join(','), '-C', '-J', '-t', TOPIC, '-p', '0', '-o', 'beginning', '-e'], undefined, 30_000);
  assert.equal(r.code, 0, `kcat -C exited ${r.code}: ${r.stderr.slice(-2000)}`);
  expectSame('kcat', parseKcatJson(r.stdout).map((m) => ({ offset: m.offset, key: m.key, value: m.payload })));
  const read = await readTopicToEnd(newLeader.bootstrap, TOPIC, { timeoutMs: 30_000 });
  expectSame('KafkaJS', read.map((m) => ({ offset: m.offset, key: m.key, value: m.value })));
  mark('kcat and KafkaJS read every record from offset 0');

  // The killed broker comes back as a replica: it catches up, follows the fenced manifest and
  // deletes its own local copies below it; the manifest stays one run naming every object.
  await leader.start();
  await cluster.waitMembers([1, 2, 3]);
  await cluster.partition(TOPIC, 0, (v) => v.isr.length === 3);
  await localCopiesDeleted(leader.nodeId, leader.dataDir);
  const final = (await fenced())!.manifest!;
  for (let i = 1; i < final.segments.length; i++) assert.equal(servedFrom(final.segments[i]!), final.segments[i - 1]!.nextOffset);
  assert.ok(remoteEndOffset(final) >= remoteEndOffset(manifest));
  const again = await kcat(['-b', leader.bootstrap, '-C', '-J', '-t', TOPIC, '-p', '0', '-o', 'beginning', '-e'], undefined, 30_000);
  assert.equal(again.code, 0, `kcat -C exited ${again.code}: ${again.stderr.slice(-2000)}`);
  expectSame('kcat after the restart', parseKcatJson(again.stdout).map((m) => ({ offset: m.offset, key: m.key, value: m.payload })));
  mark(`broker ${leader.nodeId} restarted: in the ISR, local copies below the manifest deleted, every record read again`);
});

/** Waits until a replica holds no local segment the fenced manifest wholly covers. */
async function localCopiesDeleted(nodeId: number, dataDir: string): Promise<void> {
  await waitFor(
    `broker ${nodeId} to delete its local segments the manifest covers`,
    async () => {
      const end = remoteEndOffset((await fenced())!.manifest!);
      const segs = localSegments(dataDir);
      // A segment is wholly covered when the next one starts at or below the manifest end;
      // the first one left starts inside the manifest (no gap between the tiers).
      return segs[0]! > 0n && segs[0]! <= end && segs.slice(1).every((nextBase) => nextBase > end);
    },
    15_000,
    50,
    () => `segments: ${localSegments(dataDir).join(', ')}`,
  );
}
