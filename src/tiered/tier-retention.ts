/**
 * Retention of tiered partitions: deleting local copies once they are offloaded, expiring
 * the oldest remote segments by the topic's retention across both tiers, and the rule that
 * keeps local retention off anything the bucket does not hold yet. Which rules may veto a
 * deletion, and in what order, is composed in storage/retention-guards.ts: this module
 * contributes the `tiering` rule (`mayDeleteLocal`) and consults the composed remote rules
 * (`mayDeleteRemote`) before expiring a remote segment.
 *
 * Concurrency: one remote-retention pass per partition at a time; local deletions go through
 * PartitionLog.deleteOldestSegment, which runs every local rule again.
 */
import type { PartitionLog } from '../storage/partition-log.js';
import type { SegmentInfo } from '../storage/segment.js';
import { remoteEndOffset, segmentFor, servedFrom, type RemoteSegment } from './manifest.js';
import { updateManifest, type PartitionTier, type TierIo, type TierLookup } from './partition-tier.js';
import { withRetry } from './retry.js';

/** Returns false to keep a remote segment that retention would delete. */
export type RemoteRetentionGuard = (topic: string, partition: number, segment: RemoteSegment) => boolean;

export class TierRetention {
  #io: TierIo;
  #tiers: TierLookup;
  #mayDeleteRemote: RemoteRetentionGuard;
  /** Partitions with a remote-retention pass running. */
  #running = new WeakSet<PartitionTier>();

  constructor(io: TierIo, tiers: TierLookup, mayDeleteRemote: RemoteRetentionGuard = () => true) {
    this.#io = io;
    this.#tiers = tiers;
    this.#mayDeleteRemote = mayDeleteRemote;
  }

  /**
   * The `tiering` rule of local retention: a segment may go once the bucket holds it. While
   * a topic's manifests are not loaded (store down) nobody knows what the bucket holds, so
   * its logs keep everything. Topics kept out of tiering, and everything once tiered storage
   * is closed, are not held.
   */
  mayDeleteLocal(topic: string, partition: number, log: PartitionLog, segment: SegmentInfo): boolean {
    if (this.#io.signal.aborted) return true;
    if (this.#tiers.isPending(topic)) return false;
    const tier = this.#tiers.tier(topic, partition);
    if (tier === undefined || tier.log !== log) return true;
    return segment.nextOffset <= remoteEndOffset(tier.manifest);
  }

  /** One evaluation of both rules for a partition, in the background (from the tick). */
  run(tier: PartitionTier, now: number): void {
    const where = { topic: tier.ref.topic, partition: tier.ref.partition };
    void this.deleteLocalCopies(tier, now).catch((err) => this.#io.log?.error({ err, ...where }, 'local deletion failed'));
    void this.applyRemoteRetention(tier, now).catch((err) => this.#io.log?.warn({ err: (err as Error).message, ...where }, 'remote retention failed; will retry'));
  }

  /** copied → local-deleted, oldest first, once the lag has passed and local rules ask. */
  async deleteLocalCopies(tier: PartitionTier, now: number): Promise<void> {
    const p = tier.policy;
    if (p.localRetentionBytes < 0 && p.localRetentionMs < 0) return;
    for (;;) {
      const oldest = tier.log.segments()[0];
      if (oldest === undefined || !oldest.sealed || tier.log.segments().length < 2) return;
      // Covered when the manifest's contiguous run holds its first and last offsets. On a
      // single broker that is the entry of this very segment; on a region cluster the
      // leader's segments may be cut elsewhere than this replica's (cluster-tiering.ts).
      const first = segmentFor(tier.manifest, oldest.baseOffset);
      const last = oldest.nextOffset > oldest.baseOffset ? segmentFor(tier.manifest, oldest.nextOffset - 1n) : first;
      if (first === undefined || last === undefined) return;
      if (now - Date.parse(last.uploadedAt) < p.deletionLagMs) return;
      const overSize = p.localRetentionBytes >= 0 && tier.log.sizeBytes > p.localRetentionBytes;
      const overAge = p.localRetentionMs >= 0 && Number(oldest.maxTimestamp) < now - p.localRetentionMs;
      if (!overSize && !overAge) return;
      if (!(await tier.log.deleteOldestSegment(oldest.baseOffset))) return;
      this.#io.log?.info({ topic: tier.ref.topic, partition: tier.ref.partition, baseOffset: String(oldest.baseOffset) }, 'local copy of offloaded segment deleted');
    }
  }

  /**
   * Retention spans both tiers: the topic's retention.ms and retention.bytes (the latter
   * over remote plus local bytes) expire the oldest remote segments. The manifest drops
   * them first; their objects are deleted after, so a reader never finds a listed segment
   * missing.
   */
  async applyRemoteRetention(tier: PartitionTier, now: number): Promise<void> {
    // Region clusters: remote retention rewrites the manifest, which only the leader does.
    if (this.#io.cluster !== undefined && !this.#io.cluster.mayWrite(tier)) return;
    const { retentionMs, retentionBytes } = tier.log.options;
    const deletedBefore = tier.log.deletedBefore;
    const anyDeleted = tier.manifest.segments.length > 0 && tier.manifest.segments[0].nextOffset <= deletedBefore;
    if (this.#running.has(tier) || tier.manifest.segments.length === 0 || (retentionMs < 0 && retentionBytes < 0 && !anyDeleted)) return;
    this.#running.add(tier);
    try {
      const localStart = tier.log.logStartOffset;
      let total = tier.log.sizeBytes + tier.manifest.segments.filter((s) => s.nextOffset <= localStart).reduce((n, s) => n + s.sizeBytes, 0);
      const expired: RemoteSegment[] = [];
      for (const seg of tier.manifest.segments) {
        const byTime = retentionMs >= 0 && seg.maxTimestamp >= 0n && Number(seg.maxTimestamp) < now - retentionMs;
        // By size only what the local log no longer holds: remote copies of local data cost
        // nothing extra against retention.bytes and are what a restore would need.
        const bySize = retentionBytes >= 0 && seg.nextOffset <= localStart && total - seg.sizeBytes >= retentionBytes;
        // DeleteRecords moved the partition's log start past this whole segment.
        const byDeleteRecords = seg.nextOffset <= deletedBefore;
        if (!byTime && !bySize && !byDeleteRecords) break;
        if (!this.#mayDeleteRemote(tier.ref.topic, tier.ref.partition, seg)) break;
        expired.push(seg);
        if (seg.nextOffset <= localStart) total -= seg.sizeBytes;
      }
      if (expired.length === 0) return;
      // Removed by identity, not by count: applying the same change twice is harmless.
      const gone = new Set(expired.map((s) => s.dataKey));
      await updateManifest(this.#io, tier, (m) => {
        const kept = m.segments.filter((s) => !gone.has(s.dataKey));
        if (kept.length === m.segments.length) return;
        const lastGone = m.segments.filter((s) => gone.has(s.dataKey)).at(-1)!;
        m.segments = kept;
        // The first offset the first kept entry serves (a new leader's entry may start inside
        // its predecessor's last one: servedFrom), never an offset no entry serves.
        m.startOffset = kept[0] !== undefined ? servedFrom(kept[0]) : lastGone.nextOffset;
      });
      const { store, retry, signal } = this.#io;
      for (const seg of expired) {
        await withRetry(() => store.delete(seg.dataKey, { signal }), retry, signal);
        await withRetry(() => store.delete(seg.indexKey, { signal }), retry, signal);
        this.#io.log?.info({ topic: tier.ref.topic, partition: tier.ref.partition, baseOffset: String(seg.baseOffset), bytes: seg.sizeBytes }, 'remote segment expired by retention');
      }
    } finally {
      this.#running.delete(tier);
    }
  }
}
