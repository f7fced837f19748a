/**
 * ClusterTiering (src/tiered/cluster-tiering.ts) in one process, on real logs and a real
 * directory store: a new leader whose segments are cut at other offsets than its
 * predecessor's continues the fenced manifest inside the predecessor's last entry
 * (`startOffset`), every offset then reads the same bytes as a log that kept everything, and
 * a leader deposed by a newer epoch's claim stops committing at once.
 *
 * Stand-ins, said here as the style asks: `MemoryFence` holds the pointers in memory with
 * the etcd fence's rules (compare on the revision, refuse a lower epoch of the same topic);
 * the etcd fence itself is tested on a real etcd in test/cluster/cluster-tiering.test.ts.
 * `Leadership` is the replica manager's answer (leader, epoch, high watermark), set by the
 * test; the end-to-end test drives the real one.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { LogViews } from '../../src/storage/log-view.js';
import { PartitionLog, defaultLogOptions, type LogOptions } from '../../src/storage/partition-log.js';
import { TopicManager } from '../../src/storage/topic-manager.js';
import { FsBlobStore } from '../../src/tiered/blobstore/fs-blob-store.js';
import type { FenceAnswer, ManifestFence, ManifestPointer, PointerAt, TierLeadership } from '../../src/tiered/cluster-tiering.js';
import { decodeManifest, encodeManifest, remoteEndOffset, servedFrom, type PartitionManifest, type RemoteSegment } from '../../src/tiered/manifest.js';
import { ObjectKeys, type PartitionRef } from '../../src/tiered/object-keys.js';
import { TieredStorage } from '../../src/tiered/tiered-storage.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { variedBatches } from '../helpers/varied-batches.js';
import { waitFor } from '../helpers/wait.js';

// No time retention: the batches carry 2023 timestamps, which retention.ms would expire from both tiers.
const OLD_OPTS: LogOptions = { ...defaultLogOptions, segmentBytes: 48 * 1024, indexIntervalBytes: 1024, flushMode: 'interval', retentionMs: -1 };
const NEW_OPTS: LogOptions = { ...OLD_OPTS, segmentBytes: 64 * 1024 };
const signal = new AbortController().signal;

class MemoryFence implements ManifestFence {
  #revision = 0n;
  readonly #pointers = new Map<string, PointerAt>();
  readonly #listeners = new Set<(topic: string, partition: number, at: PointerAt | null) => void>();

  async read(topic: string, partition: number): Promise<PointerAt | null> {
    return this.#pointers.get(`${topic}/${partition}`) ?? null;
  }

  async commit(topic: string, partition: number, expected: PointerAt | null, next: ManifestPointer): Promise<FenceAnswer> {
    const current = this.#pointers.get(`${topic}/${partition}`) ?? null;
    if ((current?.revision ?? 0n) !== (expected?.revision ?? 0n)) return { ok: false, current };
    if (current !== null && current.pointer.topicId === next.topicId && current.pointer.leaderEpoch > next.leaderEpoch) return { ok: false, current };
    const at = { pointer: next, revision: ++this.#revision };
    this.#pointers.set(`${topic}/${partition}`, at);
    // etcd delivers watch events asynchronously.
    setImmediate(() => this.#listeners.forEach((l) => l(topic, partition, at)));
    return { ok: true, at };
  }

  async watch(listener: (topic: string, partition: number, at: PointerAt | null) => void): Promise<() => void> {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

class Leadership implements TierLeadership {
  leading = true;
  epoch = 2;
  readonly #listeners = new Set<(topic: string, partition: number) => void>();
  constructor(readonly log: PartitionLog) {}
  isLeading(): boolean {
    return this.leading;
  }
  leaderEpochFor(): number | undefined {
    return this.leading ? this.epoch : undefined;
  }
  onLeadershipChange(l: (topic: string, partition: number) => void): () => void {
    this.#listeners.add(l);
    return () => this.#listeners.delete(l);
  }
  replica(): { highWatermark: bigint } {
    return { highWatermark: this.log.highWatermark };
  }
  changed(): void {
    this.#listeners.forEach((l) => l('t', 0));
  }
}

let dir: { dir: string; cleanup: () => void };
let pure: PartitionLog;
let topics: TopicManager;
let store: FsBlobStore;
let tiered: TieredStorage;
let fence: MemoryFence;
let leadership: Leadership;
let ref: PartitionRef;
let inherited: RemoteSegment[];

before(async () => {
  dir = tmpDir('meridian-cluster-tiering-');
  // The predecessor's log (48 KiB segments) and this broker's (64 KiB): same batches, same
  // offsets and bytes, segments cut at other offsets.
  pure = await PartitionLog.open(path.join(dir.dir, 'old'), OLD_OPTS);
  topics = await TopicManager.open(path.join(dir.dir, 'new'), NEW_OPTS);
  const info = await topics.createTopic('t', 1);
  const log = topics.partition('t', 0)!;
  for (const b of variedBatches(200)) {
    await pure.append(Buffer.from(b), { sync: false });
    await log.append(Buffer.from(b), { sync: false });
  }
  await pure.roll();
  await log.roll();
  ref = { topic: 't', topicId: info.id, partition: 0 };
  store = new FsBlobStore({ dir: path.join(dir.dir, 'bucket') });
  // The predecessor (epoch 1, node 9) committed its first two segments.
  inherited = [];
  for (const s of pure.segments().filter((x) => x.sealed).slice(0, 2)) {
    const dataKey = ObjectKeys.segmentData(ref, s.baseOffset, 'old');
    const indexKey = ObjectKeys.segmentIndex(ref, s.baseOffset, 'old');
    const index = fs.readFileSync(s.indexPath);
    await store.put(dataKey, fs.readFileSync(s.logPath), { signal });
    await store.put(indexKey, index, { signal });
    inherited.push({ baseOffset: s.baseOffset, nextOffset: s.nextOffset, maxTimestamp: s.maxTimestamp, sizeBytes: s.sizeBytes, dataCrc32c: s.dataCrc32c >>> 0, indexSizeBytes: index.length, attemptId: 'old', dataKey, indexKey, uploadedAt: new Date().toISOString(), leaderEpoch: 1 });
  }
  const m: PartitionManifest = { ...ref, version: 1, startOffset: 0n, segments: inherited, leaderEpoch: 1 };
  const key = ObjectKeys.manifestVersion(ref, 1, 1, 9);
  await store.put(key, encodeManifest(m), { signal });
  // An interrupted upload of the predecessor: an object no manifest names.
  await store.put(ObjectKeys.segmentData(ref, inherited[1]!.nextOffset, 'dead'), Buffer.from('half'), { signal });
  fence = new MemoryFence();
  const first = await fence.commit('t', 0, null, { topicId: ref.topicId, leaderEpoch: 1, version: 1, manifestKey: key, writer: 9 });
  assert.ok(first.ok);
  leadership = new Leadership(log);
  tiered = new TieredStorage({
    store,
    topics,
    cache: { bytes: 4 * 1024 * 1024, blockBytes: 4096, readConcurrency: 4 },
    policy: { onSeal: true, localBytesThreshold: -1, minAgeMs: -1, localRetentionBytes: 0, localRetentionMs: -1, deletionLagMs: 0, checkIntervalMs: 50, uploadConcurrency: 2 },
    clustered: true,
    nodeId: 2,
  });
  await tiered.start();
  await tiered.attachCluster({ fence, leadership, nodeId: 2 });
});

after(async () => {
  await tiered?.close();
  await topics?.close();
  await pure?.close();
  dir?.cleanup();
});

async function current(): Promise<{ at: PointerAt; manifest: PartitionManifest }> {
  const at = (await fence.read('t', 0))!;
  return { at, manifest: decodeManifest(await store.get(at.pointer.manifestKey!, { signal }), at.pointer.manifestKey!) };
}

test('a new leader continues the manifest inside its predecessor\'s last entry; every offset reads the bytes of a log that kept everything', async () => {
  const log = topics.partition('t', 0)!;
  const end = log.logEndOffset;
  const cut = inherited[1]!.nextOffset;
  assert.ok(log.segments().some((s) => s.baseOffset < cut && s.nextOffset > cut), `the fixture: a local segment of this broker spans the predecessor's end ${cut}`);

  const { at, manifest } = await waitFor('the new leader to offload everything', async () => {
    const c = await current();
    return c.at.pointer.leaderEpoch === 2 && remoteEndOffset(c.manifest) === end ? c : false;
  }, 20_000, 20);
  assert.equal(at.pointer.writer, 2);
  assert.deepEqual(manifest.segments.slice(0, 2).map((s) => s.dataKey), inherited.map((s) => s.dataKey), "the predecessor's entries are kept");
  const straddling = manifest.segments[2]!;
  assert.equal(servedFrom(straddling), cut, 'the next entry serves from the predecessor\'s end');
  assert.ok(straddling.baseOffset < cut, `its object starts below, at ${straddling.baseOffset}`);
  for (let i = 1; i < manifest.segments.length; i++) assert.equal(servedFrom(manifest.segments[i]!), manifest.segments[i - 1]!.nextOffset, `entry ${i} continues entry ${i - 1}`);
  for (const s of manifest.segments.slice(2)) assert.equal(s.leaderEpoch, 2);

  // The interrupted upload is gone; only named objects remain.
  await waitFor('objects no manifest names to be removed', async () => {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await store.list(ObjectKeys.segmentsPrefix(ref), { signal, continuationToken: token });
      keys.push(...page.keys.map((k) => k.key));
      token = page.nextToken;
    } while (token);
    const named = new Set(manifest.segments.flatMap((s) => [s.dataKey, s.indexKey]));
    return keys.length === named.size && keys.every((k) => named.has(k));
  }, 10_000, 20);

  // Local copies went (local retention 0); reads below come from the bucket, byte for byte.
  await waitFor('local copies below the manifest to be deleted', () => log.logStartOffset === end, 10_000, 20);
  const view = new LogViews(topics, tiered.remote).view('t', 0)!;
  for (let offset = 0n; offset < end; offset++) {
    for (const maxBytes of [1, 5000, 1 << 20]) {
      const got = await view.read(offset, maxBytes);
      const want = await pure.read(offset, maxBytes);
      // Within one entry the ranges agree exactly; across the straddling entry's start the
      // remote answer stops at the entry's end like the local log stops at a segment end.
      assert.ok(got.records.length > 0, `offset ${offset}: something is read`);
      const n = Math.min(got.records.length, want.records.length);
      assert.ok(got.records.subarray(0, n).equals(want.records.subarray(0, n)), `offset ${offset} budget ${maxBytes}: the same bytes`);
    }
  }
});

test('a leader deposed by a newer epoch stops committing at once', async () => {
  const log = topics.partition('t', 0)!;
  const before = await current();
  // Another broker was elected (epoch 3) and claimed the pointer; this broker has not heard yet.
  const claim = await fence.commit('t', 0, before.at, { ...before.at.pointer, leaderEpoch: 3, writer: 5 });
  assert.ok(claim.ok);
  for (const b of variedBatches(60, 7)) await log.append(Buffer.from(b), { sync: false });
  await log.roll();
  // Whatever it uploads meanwhile, no commit of epoch 2 lands.
  await new Promise((r) => setTimeout(r, 500));
  const after = await current();
  assert.deepEqual(after.at, claim.ok ? claim.at : null, 'the pointer is still the epoch-3 claim');
  const status = tiered.status().find((s) => s.topic === 't')!;
  assert.equal(status.remoteEndOffset, String(remoteEndOffset(before.manifest)), 'this broker still serves the fenced manifest');
  // Its own leadership catches up: it stops leading and follows.
  leadership.leading = false;
  leadership.changed();
  assert.equal(tiered.status().find((s) => s.topic === 't')!.copying, null);
});
