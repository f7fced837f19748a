/**
 * The tier-aware reader (storage/log-view.ts) over a partition whose older half lives only
 * in the object store must answer exactly as a log that never offloaded anything: the same
 * bytes at every offset and budget, the same by-time answers, segment ends and log start.
 *
 * Two real logs get the same batches: `pure` keeps everything on disk; `tiered` (a real
 * TopicManager's partition) has its first segments uploaded to a real directory store
 * (FsBlobStore) and deleted locally, and is read through a real RemoteTier. The registry's
 * lookup (`TierLookup`) is a plain object here: it stands in for TieredStorage's attach,
 * which would need the whole offload pipeline to reach the same state.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { BufferPool } from '../../src/storage/buffer-pool.js';
import { LogView, LogViews } from '../../src/storage/log-view.js';
import { PartitionLog, defaultLogOptions, type LogOptions } from '../../src/storage/partition-log.js';
import { TopicManager } from '../../src/storage/topic-manager.js';
import { FsBlobStore } from '../../src/tiered/blobstore/fs-blob-store.js';
import type { PartitionManifest, RemoteSegment } from '../../src/tiered/manifest.js';
import { ObjectKeys, type PartitionRef } from '../../src/tiered/object-keys.js';
import { newPartitionTier, type PartitionTier, type TierLookup, type TieredPolicy } from '../../src/tiered/partition-tier.js';
import { RemoteTier } from '../../src/tiered/remote-tier.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { BASE_TIMESTAMP, variedBatches } from '../helpers/varied-batches.js';

const BLOCK = 4096;
const BUDGETS = [1, 200, 1500, BLOCK, 3 * BLOCK + 7, 1 << 30];
const OPTS: LogOptions = { ...defaultLogOptions, segmentBytes: 64 * 1024, indexIntervalBytes: 1024, flushMode: 'interval' };
const POLICY: TieredPolicy = { onSeal: false, localBytesThreshold: -1, minAgeMs: -1, localRetentionBytes: -1, localRetentionMs: -1, deletionLagMs: 0, checkIntervalMs: 1000, uploadConcurrency: 1 };
const signal = new AbortController().signal;

const cleanups: Array<() => void | Promise<void>> = [];
let removeDir = (): void => {};
let pure: PartitionLog;
let topics: TopicManager;
let tiered: PartitionLog;
let store: FsBlobStore;
let manifest: PartitionManifest;
let pending = false;
let view: LogView;
let pureView: LogView;
let maxTs = 0n;

/** The registry's answers for partition t/0: its tier, and whether the store is reachable. */
function lookup(tier: PartitionTier): TierLookup {
  return {
    tier: (topic, partition) => (topic === 't' && partition === 0 && !pending ? tier : undefined),
    isPending: (topic) => topic === 't' && pending,
    unavailable: () => (pending ? 'the store is down (test)' : null),
  };
}

function remoteTier(m: PartitionManifest): RemoteTier {
  const remote = new RemoteTier(store, { bytes: 1024 * 1024, blockBytes: BLOCK, readConcurrency: 4 }, topics, lookup(newPartitionTier(m, tiered, POLICY, m)));
  cleanups.push(() => remote.close());
  return remote;
}

before(async () => {
  const t = tmpDir('meridian-log-view-');
  removeDir = t.cleanup;
  pure = await PartitionLog.open(path.join(t.dir, 'pure'), OPTS);
  topics = await TopicManager.open(path.join(t.dir, 'broker'), OPTS);
  const info = await topics.createTopic('t', 1);
  tiered = topics.partition('t', 0)!;
  for (const b of variedBatches(260)) {
    await pure.append(Buffer.from(b), { sync: false });
    await tiered.append(Buffer.from(b), { sync: false });
  }
  await pure.roll();
  await tiered.roll();
  // A few more batches in both active segments, so the local tier has an unsealed tail.
  for (const b of variedBatches(5, 7)) {
    await pure.append(Buffer.from(b), { sync: false });
    await tiered.append(Buffer.from(b), { sync: false });
  }
  store = new FsBlobStore({ dir: path.join(t.dir, 'bucket') });
  const ref: PartitionRef = { topic: 't', topicId: info.id, partition: 0 };
  const sealed = tiered.segments().filter((s) => s.sealed);
  // Upload the older half plus two more: those two stay local too (copied, not yet deleted),
  // as after an offload whose local deletion has not run.
  const uploaded = sealed.slice(0, Math.floor(sealed.length / 2) + 2);
  const segments: RemoteSegment[] = [];
  for (const s of uploaded) {
    const dataKey = ObjectKeys.segmentData(ref, s.baseOffset, 'a');
    const indexKey = ObjectKeys.segmentIndex(ref, s.baseOffset, 'a');
    const index = fs.readFileSync(s.indexPath);
    await store.put(dataKey, fs.readFileSync(s.logPath), { signal });
    await store.put(indexKey, index, { signal });
    segments.push({ ...s, attemptId: 'a', dataKey, indexKey, indexSizeBytes: index.length, uploadedAt: new Date().toISOString() });
  }
  manifest = { ...ref, version: 1, startOffset: 0n, segments };
  for (const s of uploaded.slice(0, -2)) assert.ok(await tiered.deleteOldestSegment(s.baseOffset), `local copy of ${s.baseOffset} deleted`);
  view = new LogViews(topics, remoteTier(manifest)).view('t', 0)!;
  pureView = new LogView(pure, 't', 0);
  maxTs = pure.segments().reduce((m, s) => (s.maxTimestamp > m ? s.maxTimestamp : m), 0n);
});

after(async () => {
  for (const c of cleanups) await c();
  await store?.close();
  await topics?.close();
  await pure?.close();
  removeDir();
});

function retriableStorageError(err: unknown): boolean {
  assert.ok(err instanceof MeridianError, `not a MeridianError: ${err}`);
  assert.equal(err.code, ErrorCode.StorageIo, err.message);
  assert.equal(err.retriable, true, err.message);
  return true;
}

test('the fixture: a third or more of the history lives only in the bucket, the rest locally', () => {
  assert.ok(tiered.logStartOffset > 0n, 'local copies were deleted');
  assert.ok(tiered.logStartOffset * 3n >= pure.highWatermark, `local start ${tiered.logStartOffset} of ${pure.highWatermark}`);
  assert.equal(tiered.highWatermark, pure.highWatermark);
  assert.equal(view.logStartOffset, 0n);
  assert.equal(view.highWatermark, pure.highWatermark);
});

test('every offset at budgets 1, small, block-sized and huge: the same bytes and segment end as the pure local log', async () => {
  const pool = new BufferPool();
  let remoteReads = 0;
  let pooledReads = 0;
  for (let offset = 0n; offset <= pure.highWatermark; offset++) {
    assert.equal(view.segmentEnd(offset), pure.segmentEnd(offset), `segment end at ${offset}`);
    for (const maxBytes of BUDGETS) {
      const want = await pure.read(offset, maxBytes);
      const got = await view.read(offset, maxBytes, { pool, signal });
      try {
        assert.deepEqual(got.records, want.records, `offset ${offset} budget ${maxBytes}`);
        assert.equal(got.highWatermark, want.highWatermark);
      } finally {
        if (got.pooled) pool.release(got.pooled);
      }
      // With a pool, records come in a pooled buffer from either tier (issue 15: a cold
      // reader got a fresh buffer per Fetch), and records lie inside it.
      assert.equal(got.pooled !== undefined, got.records.length > 0, `pooled at ${offset}`);
      if (got.pooled) assert.equal(got.records.buffer, got.pooled.buffer, `records at ${offset} lie in the pooled buffer`);
      if (offset < tiered.logStartOffset) remoteReads += got.pooled ? 1 : 0;
      else if (got.pooled) pooledReads++;
    }
  }
  assert.ok(remoteReads > 500 && pooledReads > 500, `${remoteReads} pooled remote reads, ${pooledReads} pooled local reads`);
});

test('random offsets, budgets and durable limits at or above the local start agree with the pure log', async () => {
  const hw = pure.highWatermark;
  const localStart = tiered.logStartOffset;
  await fc.assert(
    fc.asyncProperty(fc.bigInt({ min: 0n, max: hw }), fc.integer({ min: 1, max: 80_000 }), fc.bigInt({ min: localStart, max: hw }), async (offset, maxBytes, upTo) => {
      // The worker's limit (the durable end) never lies below the local log start.
      const got = await view.read(offset, maxBytes, { upTo });
      const want = await (offset < localStart ? pure.read(offset, maxBytes) : pure.read(offset, maxBytes, { upTo }));
      assert.deepEqual(got.records, want.records);
    }),
    { numRuns: 300 },
  );
});

test('offsetForTimestamp: the same answer as the pure log for every timestamp, in either tier', async () => {
  for (let ts = BASE_TIMESTAMP - 10n; ts <= maxTs + 2n; ts++) {
    assert.deepEqual(await view.offsetForTimestamp(ts), await pure.offsetForTimestamp(ts), `timestamp ${ts}`);
  }
  assert.deepEqual(await pureView.offsetForTimestamp(BASE_TIMESTAMP), await pure.offsetForTimestamp(BASE_TIMESTAMP), 'a view without a remote tier is the local log');
});

test('outside both tiers: OFFSET_OUT_OF_RANGE, as the local log answers', async () => {
  await assert.rejects(view.read(pure.highWatermark + 1n, 100), (err: unknown) => err instanceof MeridianError && err.code === ErrorCode.OffsetOutOfRange);
  // The bucket without its first segment (remote retention expired it): that offset is nowhere.
  const [, ...rest] = manifest.segments;
  const trimmed = new LogViews(topics, remoteTier({ ...manifest, startOffset: rest[0].baseOffset, segments: rest })).view('t', 0)!;
  assert.equal(trimmed.logStartOffset, rest[0].baseOffset);
  assert.equal(trimmed.segmentEnd(0n), undefined);
  await assert.rejects(trimmed.read(0n, 100), (err: unknown) => err instanceof MeridianError && err.code === ErrorCode.OffsetOutOfRange);
  assert.deepEqual((await trimmed.read(rest[0].baseOffset, 100)).records, (await pure.read(rest[0].baseOffset, 100)).records);
});

test('store unreachable: below the local start every answer is a retriable KAFKA_STORAGE_ERROR, never out of range; local reads go on', async () => {
  pending = true;
  try {
    const down = new LogViews(topics, remoteTier(manifest)).view('t', 0)!;
    assert.throws(() => down.logStartOffset, retriableStorageError);
    await assert.rejects(down.read(0n, 100), retriableStorageError);
    await assert.rejects(down.offsetForTimestamp(BASE_TIMESTAMP), retriableStorageError);
    const local = tiered.logStartOffset;
    assert.deepEqual((await down.read(local, 100)).records, (await pure.read(local, 100)).records);
  } finally {
    pending = false;
  }
});

test('an aborted signal ends a read from the bucket', async () => {
  const fresh = new LogViews(topics, remoteTier(manifest)).view('t', 0)!;
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(fresh.read(0n, 100, { signal: ac.signal }), (err: unknown) => err instanceof MeridianError && err.code === ErrorCode.StorageIo);
  assert.deepEqual((await fresh.read(0n, 100)).records, (await pure.read(0n, 100)).records);
});

test('LogViews hands out one view per partition log, and a new one for a partition deleted and created again', async () => {
  const t = tmpDir('meridian-log-views-');
  cleanups.push(t.cleanup);
  const topics = await TopicManager.open(path.join(t.dir, 'logs'), defaultLogOptions);
  cleanups.push(() => topics.close());
  await topics.createTopic('v', 2);
  const views = new LogViews(topics);
  const first = views.view('v', 1)!;
  assert.equal(views.view('v', 1), first, 'the same view again');
  assert.notEqual(views.view('v', 0), first);
  assert.equal(first.local, topics.partition('v', 1));
  assert.equal(views.view('v', 2), undefined);
  await topics.deleteTopic('v');
  assert.equal(views.view('v', 1), undefined);
  await topics.createTopic('v', 2);
  const again = views.view('v', 1)!;
  assert.notEqual(again, first, 'a recreated partition gets a view of its new log');
  assert.equal(again.local, topics.partition('v', 1));
});
