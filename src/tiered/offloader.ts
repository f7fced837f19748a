/**
 * The offloader: moves sealed segments to the object store. Per segment, an explicit and
 * idempotent state machine (KIP-405, Pulsar's offloader):
 *
 *   local ──upload(attempt id)──▶ copying ──verify + manifest written──▶ copied
 *     ▲                              │ failure: back to local, retried       │ lag passed and
 *     └──────────────────────────────┘ with backoff                          ▼ local rules say so
 *                                                                      local-deleted
 *
 * Only "copied" is durable state, and the manifest in the bucket is where it lives: after a
 * crash, a segment not in the manifest is simply uploaded again under a new attempt id (the
 * objects of the interrupted attempt are orphans no manifest names, removed when the
 * registry next attaches the partition). The last step, local-deleted, is tier retention's
 * (tier-retention.ts).
 *
 * Concurrency: uploads share a p-queue bounded by `uploadConcurrency`; a partition's objects
 * may upload in parallel but its manifest commits happen in offset order (the manifest is a
 * contiguous run). A failure starts a new generation: uploads of the old one stop retrying
 * and never commit, and the partition backs off. Object-level work (upload and verify) is in
 * segment-objects.ts; this decides when.
 *
 * Lifecycle: built by the registry; `pump` is called on every seal and tick; `close` (after
 * the shared signal is aborted) drops queued uploads and waits for running ones.
 */
import crypto from 'node:crypto';
import PQueue from 'p-queue';
import { ErrorCode, MeridianError } from '../errors.js';
import type { SegmentInfo } from '../storage/segment.js';
import { remoteEndOffset, type RemoteSegment } from './manifest.js';
import { updateManifest, type PartitionTier, type TierIo } from './partition-tier.js';
import { uploadSegment } from './segment-objects.js';

/** Failure warnings of one partition are logged at most this often while a store is down. */
const WARN_EVERY_MS = 30_000;

export class Offloader {
  #io: TierIo;
  #queue: PQueue;
  #concurrency: number;
  #checkIntervalMs: number;

  constructor(io: TierIo, policy: { uploadConcurrency: number; checkIntervalMs: number }) {
    this.#io = io;
    this.#concurrency = policy.uploadConcurrency;
    this.#checkIntervalMs = policy.checkIntervalMs;
    this.#queue = new PQueue({ concurrency: policy.uploadConcurrency });
  }

  get #closed(): boolean {
    return this.#io.signal.aborted;
  }

  /** Rolls the active segments and uploads every sealed segment of `tiers` now. */
  async offloadNow(all: readonly PartitionTier[]): Promise<void> {
    // Region clusters: the partitions this broker leads; the others are their leaders' to offload.
    const cluster = this.#io.cluster;
    const tiers = cluster === undefined ? all : all.filter((t) => cluster.mayWrite(t));
    for (const t of tiers) {
      await t.log.roll();
      t.offload.force = true;
      t.offload.backoffUntil = 0;
    }
    await Promise.all(tiers.map((t) => this.#drainUploads(t)));
  }

  /**
   * Region clusters: this broker stopped leading the partition, or starts leading it from
   * the manifest it just claimed. A new generation without a failure: uploads in flight stop
   * retrying and never commit (their objects are removed), and the next upload starts at the
   * end of `tier.manifest`.
   */
  reset(tier: PartitionTier): void {
    const o = tier.offload;
    o.generation++;
    o.genAbort.abort();
    o.genAbort = new AbortController();
    o.commitTail = Promise.allSettled([...o.inflight]).then(() => true);
    o.cursor = remoteEndOffset(tier.manifest);
    o.backoffUntil = 0;
    o.lastError = null;
  }

  /** Stops the partition's uploads for good (its topic was deleted). */
  stop(tier: PartitionTier): void {
    tier.detached = true;
    tier.offload.genAbort.abort();
  }

  /**
   * Starts uploads for the partition, up to `uploadConcurrency` at once. Objects upload in
   * parallel; manifest commits happen strictly in offset order (each waits for the one
   * before), so the manifest stays one contiguous run. A failure bumps the generation: the
   * uploads behind it never commit (their objects are removed) and the partition backs off.
   */
  pump(tier: PartitionTier): void {
    const o = tier.offload;
    if (this.#closed || tier.detached || Date.now() < o.backoffUntil) return;
    // Region clusters: only the partition's leader, once its claim on the manifest is
    // current (cluster-tiering.ts), uploads.
    if (this.#io.cluster !== undefined && !this.#io.cluster.mayWrite(tier)) return;
    while (o.copying.size < this.#concurrency) {
      const seg = this.#nextCandidate(tier, Date.now());
      if (seg === undefined) {
        if (o.copying.size === 0) o.force = false;
        return;
      }
      const attemptId = crypto.randomBytes(4).toString('hex');
      o.cursor = seg.nextOffset;
      o.copying.set(seg.baseOffset, attemptId);
      const generation = o.generation;
      const previous = o.commitTail;
      const genSignal = o.genAbort.signal;
      const committed = this.#queue
        .add(() => this.#uploadObjects(tier, seg, attemptId, genSignal))
        .then(async (remote) => {
          if (!(await previous) || generation !== o.generation) {
            await this.#removeObjects(remote);
            return false;
          }
          await this.#commit(tier, seg, remote);
          return true;
        });
      o.commitTail = committed.catch(() => false);
      o.inflight.add(committed);
      committed.then(
        (ok) => {
          o.copying.delete(seg.baseOffset);
          o.inflight.delete(committed);
          if (ok) {
            o.lastError = null;
            this.pump(tier);
          }
        },
        (err: unknown) => {
          o.copying.delete(seg.baseOffset);
          o.inflight.delete(committed);
          // An upload of a generation that already failed: accounted for by that failure.
          if (this.#closed || generation !== o.generation) return;
          this.#failed(tier, seg, err);
        },
      );
    }
  }

  /**
   * A new generation: uploads still in flight stop (their retries are aborted) and will not
   * commit; the next ones start from the manifest's end once they settled.
   */
  #failed(tier: PartitionTier, seg: SegmentInfo, err: unknown): void {
    const o = tier.offload;
    o.generation++;
    o.genAbort.abort();
    o.genAbort = new AbortController();
    o.commitTail = Promise.allSettled([...o.inflight]).then(() => true);
    o.cursor = remoteEndOffset(tier.manifest);
    o.lastError = (err as Error).message;
    o.uploadFailures++;
    o.backoffUntil = Date.now() + Math.min(60_000, this.#checkIntervalMs);
    const now = Date.now();
    if (now - o.lastWarnAt >= WARN_EVERY_MS) {
      this.#io.log?.warn(
        { topic: tier.ref.topic, partition: tier.ref.partition, baseOffset: String(seg.baseOffset), err: o.lastError, suppressedSinceLast: o.suppressedWarnings },
        'offload failed; will retry',
      );
      o.lastWarnAt = now;
      o.suppressedWarnings = 0;
    } else {
      o.suppressedWarnings++;
    }
  }

  async #drainUploads(tier: PartitionTier): Promise<void> {
    const o = tier.offload;
    this.pump(tier);
    while (o.copying.size > 0 || this.#nextCandidate(tier, Date.now()) !== undefined) {
      if (this.#closed || tier.detached) throw new MeridianError(ErrorCode.LogClosed, `tiered storage for ${tier.ref.topic} was closed`, { retriable: true });
      if (this.#io.cluster !== undefined && !this.#io.cluster.mayWrite(tier)) {
        throw new MeridianError(ErrorCode.NotLeader, `${tier.ref.topic}-${tier.ref.partition} is no longer led by this broker: its new leader offloads it`, { retriable: true });
      }
      if (o.lastError && o.backoffUntil > Date.now()) throw new MeridianError(ErrorCode.StorageIo, `offload of ${tier.ref.topic}-${tier.ref.partition} failed: ${o.lastError}`, { retriable: true });
      await new Promise((r) => setTimeout(r, 20));
      this.pump(tier);
    }
  }

  #nextCandidate(tier: PartitionTier, now: number): SegmentInfo | undefined {
    const committed = remoteEndOffset(tier.manifest);
    const end = tier.offload.cursor > committed ? tier.offload.cursor : committed;
    // Region clusters: only what the ISR holds (below the replicated high watermark) is
    // offloaded; a tail above it may still be truncated by a leader change.
    const limit = this.#io.cluster?.uploadLimit(tier);
    const sealed = tier.log.segments().filter((s) => s.sealed && s.nextOffset > end && (limit === undefined || s.nextOffset <= limit));
    const first = sealed[0];
    if (first === undefined) return undefined;
    // A gap between the bucket and the local log (local retention ran before tiering was
    // on): the manifest restarts at the local log.
    const p = tier.policy;
    if (tier.offload.force || p.onSeal) return first;
    if (p.minAgeMs >= 0 && now - first.createdAtMs >= p.minAgeMs) return first;
    if (p.localBytesThreshold >= 0 && tier.log.sizeBytes > p.localBytesThreshold) return first;
    return undefined;
  }

  /** local → copying: the data and index objects, verified. The manifest is not touched. */
  async #uploadObjects(tier: PartitionTier, seg: SegmentInfo, attemptId: string, genSignal: AbortSignal): Promise<RemoteSegment> {
    const io = this.#io;
    const remote = await uploadSegment(io.store, tier.ref, seg, attemptId, AbortSignal.any([io.signal, genSignal]), io.retry, io.log, io.uploadRate);
    // The upload read the whole file back and matched its seal-time CRC-32C: local reads of
    // the segment need not check each batch's CRC again (one checksum per byte, not two).
    tier.log.trustVerifiedFile(seg.baseOffset, remote.dataCrc32c);
    return remote;
  }

  /** copying → copied: the manifest recording the segment is written. */
  async #commit(tier: PartitionTier, seg: SegmentInfo, remote: RemoteSegment): Promise<void> {
    const end = remoteEndOffset(tier.manifest);
    if (tier.manifest.segments.length > 0 && seg.nextOffset <= end) {
      // Already recorded (a stale upload): never rewrite history, drop the duplicate objects.
      this.#io.log?.warn({ topic: tier.ref.topic, partition: tier.ref.partition, baseOffset: String(seg.baseOffset), remoteEnd: String(end) }, 'discarding an upload of a segment already in the manifest');
      await this.#removeObjects(remote);
      return;
    }
    const leaderEpoch = this.#io.cluster?.leaderEpoch(tier);
    await updateManifest(this.#io, tier, (m) => {
      const entry: RemoteSegment = { ...remote, uploadedAt: new Date().toISOString(), ...(leaderEpoch !== undefined ? { leaderEpoch } : {}) };
      const mEnd = remoteEndOffset(m);
      if (m.segments.length === 0 || seg.baseOffset > mEnd) {
        // First upload, or a real gap above the remote end (local retention ran before
        // tiering was on): the remote run restarts here.
        m.segments = [];
        m.startOffset = seg.baseOffset;
      } else if (seg.baseOffset < mEnd) {
        // Region clusters: this replica rolled its segment elsewhere than the leader that
        // committed the entry before (every replica rolls its own), so the segment begins
        // inside that entry. Recorded whole, it serves from the manifest's end on; the
        // offsets below are identical bytes the previous entry serves (batches are copied
        // verbatim and only what the ISR holds is offloaded).
        entry.startOffset = mEnd;
      }
      m.segments.push(entry);
    });
    tier.offload.uploadedSegments++;
    tier.offload.uploadedBytes += seg.sizeBytes;
    this.#io.log?.debug({ topic: tier.ref.topic, partition: tier.ref.partition, baseOffset: String(seg.baseOffset), manifestVersion: tier.manifest.version }, 'segment recorded in the manifest');
  }

  /** Best effort: objects of an attempt that will never be committed. */
  async #removeObjects(remote: RemoteSegment): Promise<void> {
    for (const key of [remote.dataKey, remote.indexKey]) {
      await this.#io.store.delete(key, { signal: this.#io.signal }).catch(() => {});
    }
  }

  /** Drops queued uploads and waits for the running ones (call once the signal is aborted). */
  async close(): Promise<void> {
    this.#queue.clear();
    await this.#queue.onIdle();
  }
}
