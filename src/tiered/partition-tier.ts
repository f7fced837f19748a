/**
 * What tiered storage holds per partition, and what its parts share. The registry
 * (`tiered-storage.ts`) creates one `PartitionTier` per partition of a topic once the topic's
 * manifests are loaded and drops it when the topic is deleted; the offloader
 * (`offloader.ts`) uploads and commits through it, tier retention (`tier-retention.ts`)
 * deletes through it, and the remote tier (`remote-tier.ts`) reads through it.
 *
 * Concurrency: everything runs on the event loop; the manifest is replaced, never mutated,
 * and its writes are serialised per partition (`updateManifest`), so a reader always sees
 * one whole version.
 */
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import type { PartitionLog } from '../storage/partition-log.js';
import type { BlobStore } from './blobstore/blob-store.js';
import { remoteEndOffset, saveManifest, type PartitionManifest } from './manifest.js';
import type { PartitionRef } from './object-keys.js';
import { withRetry, type RetryPolicy } from './retry.js';

export interface TieredPolicy {
  onSeal: boolean;
  /** Upload oldest sealed segments while local bytes exceed this; -1 off. */
  localBytesThreshold: number;
  /** Upload sealed segments older than this; -1 off. */
  minAgeMs: number;
  /** Delete offloaded local copies while local bytes exceed this; -1 keep. */
  localRetentionBytes: number;
  /** Delete offloaded local copies older than this; -1 keep. */
  localRetentionMs: number;
  deletionLagMs: number;
  checkIntervalMs: number;
  uploadConcurrency: number;
  /** Upload bytes per second across all uploads (tiered.offload.maxBytesPerSec); -1 or absent: unlimited. */
  maxBytesPerSec?: number;
}

/** How every part of tiered storage reaches the store. */
export interface TierIo {
  readonly store: BlobStore;
  readonly retry: RetryPolicy;
  /** Aborted when tiered storage closes: every store call stops, nothing new starts. */
  readonly signal: AbortSignal;
  readonly log: Logger | undefined;
  /**
   * Region clusters (cluster-tiering.ts): who may offload and write the manifest, up to
   * where, and how a manifest version is committed (behind the fence in etcd). Undefined on
   * a single broker: every partition is this broker's, manifests go to `manifest.json`.
   */
  cluster?: ClusterTierHooks;
  /** Bytes per second all uploads share (tiered.offload.maxBytesPerSec); undefined: unlimited. */
  uploadRate?: UploadRate;
}

/** A shared upload budget: `take(n)` resolves once `n` more bytes may be sent. */
export interface UploadRate {
  take(bytes: number, signal: AbortSignal): Promise<void>;
}

/** What tiered storage asks of the region cluster, per partition (cluster-tiering.ts). */
export interface ClusterTierHooks {
  /** This broker leads the partition and its claim on the manifest is current: it may upload and commit. */
  mayWrite(tier: PartitionTier): boolean;
  /** Uploads stop at this offset (exclusive): the replicated high watermark, so only committed data is offloaded. */
  uploadLimit(tier: PartitionTier): bigint;
  /** The leader epoch commits are made under (recorded in the manifest entries). */
  leaderEpoch(tier: PartitionTier): number | undefined;
  /** Writes `next` as a new manifest version and moves the fence to it; throws FENCED_LEADER_EPOCH when deposed. */
  save(tier: PartitionTier, next: PartitionManifest): Promise<void>;
}

/** Per segment: local → copying(attempt id) → copied → local-deleted (see offloader.ts). */
export type SegmentState = 'local' | 'copying' | 'copied' | 'local-deleted';

/** The offloader's state of one partition; only the offloader changes it. */
export interface OffloadState {
  /** Uploads in flight: base offset → attempt id. */
  readonly copying: Map<bigint, string>;
  /** Where the next upload starts (past the segments in flight). */
  cursor: bigint;
  /** Bumped by a failure: in-flight uploads of an older generation never commit. */
  generation: number;
  /** Settles true once the latest started upload has committed (false if it did not). */
  commitTail: Promise<boolean>;
  /** Every upload in flight, so a new generation can wait for the old one to settle. */
  readonly inflight: Set<Promise<boolean>>;
  /** Aborted when the generation ends: uploads of a failed run stop retrying at once. */
  genAbort: AbortController;
  /** Upload every sealed segment whatever the policy says (`offloadNow`). */
  force: boolean;
  backoffUntil: number;
  lastError: string | null;
  /** Failure logs are rate-limited per partition while a store is down. */
  lastWarnAt: number;
  suppressedWarnings: number;
  uploadedSegments: number;
  uploadedBytes: number;
  /** Uploads that failed (each backed the partition off), for the metrics. */
  uploadFailures: number;
}

export interface PartitionTier {
  readonly ref: PartitionRef;
  readonly log: PartitionLog;
  /** The broker policy with the topic's overrides; replaced when the topic's config changes. */
  policy: TieredPolicy;
  /** The last manifest written (the bucket's view of this partition). */
  manifest: PartitionManifest;
  manifestChain: Promise<unknown>;
  readonly offload: OffloadState;
  /** The topic was deleted: nothing more is started for this partition. */
  detached: boolean;
}

/** The registry as the other parts see it. */
export interface TierLookup {
  tier(topic: string, partition: number): PartitionTier | undefined;
  /** The topic's manifests are not loaded yet (store down): what the bucket holds is unknown. */
  isPending(topic: string): boolean;
  /** Why the store was unreachable at the last attempt (null when it was reached). */
  unavailable(): string | null;
}

export function newPartitionTier(ref: PartitionRef, log: PartitionLog, policy: TieredPolicy, manifest: PartitionManifest): PartitionTier {
  const offload: OffloadState = {
    copying: new Map(),
    cursor: remoteEndOffset(manifest),
    generation: 0,
    commitTail: Promise.resolve(true),
    inflight: new Set(),
    genAbort: new AbortController(),
    force: false,
    backoffUntil: 0,
    lastError: null,
    lastWarnAt: 0,
    suppressedWarnings: 0,
    uploadedSegments: 0,
    uploadedBytes: 0,
    uploadFailures: 0,
  };
  return { ref, log, policy, manifest, manifestChain: Promise.resolve(), offload, detached: false };
}

/** Applies `change` to a copy of the manifest, writes it, then adopts it (serialised). */
export function updateManifest(io: TierIo, tier: PartitionTier, change: (m: PartitionManifest) => void): Promise<void> {
  const run = tier.manifestChain.then(async () => {
    const next: PartitionManifest = { ...tier.manifest, segments: [...tier.manifest.segments] };
    change(next);
    if (io.cluster !== undefined) await io.cluster.save(tier, next);
    else await withRetry(() => saveManifest(io.store, { ...next }, io.signal), io.retry, io.signal);
    next.version = tier.manifest.version + 1;
    tier.manifest = next;
  });
  tier.manifestChain = run.catch(() => {});
  return run;
}

/**
 * The last offset of the partition that the object store holds or is receiving: the end
 * of the manifest's last segment, or of the last segment being uploaded (`offload.cursor`
 * is past those), minus one. -1 when the bucket holds nothing of it and nothing is on its way.
 */
export function highestOffloadedOffset(tier: PartitionTier): bigint {
  const m = tier.manifest;
  let end = m.segments.length > 0 ? remoteEndOffset(m) : -1n;
  if (tier.offload.copying.size > 0 && tier.offload.cursor > end) end = tier.offload.cursor;
  return end < 0n ? -1n : end - 1n;
}

/**
 * Refuses (OFFSET_OUT_OF_RANGE) truncating the partition to `offset` when the object store
 * holds, or is receiving, offsets at or past it: tiered storage never rewrites the bucket,
 * so the truncation would leave remote history the log no longer has. The caller reports it.
 */
export function checkTruncatable(tier: PartitionTier, offset: bigint): void {
  const highest = highestOffloadedOffset(tier);
  if (highest < offset) return;
  const { topic, partition } = tier.ref;
  const m = tier.manifest;
  const committed = m.segments.length > 0 ? remoteEndOffset(m) - 1n : -1n;
  const first = m.segments.length > 0 && m.segments[0].baseOffset > offset ? m.segments[0].baseOffset : offset;
  const held = committed >= offset ? `offsets ${first} to ${committed} are in the object store (manifest version ${m.version})` : '';
  const uploading = highest > committed ? `offsets up to ${highest} are being uploaded to the object store` : '';
  throw new MeridianError(
    ErrorCode.OffsetOutOfRange,
    `cannot truncate ${topic}/${partition} to offset ${offset}: ${[held, uploading].filter((x) => x !== '').join('; ')}, and tiered storage does not rewrite the bucket; truncate at or above ${highest + 1n}`,
  );
}

/**
 * The truncation check of tiered storage (TopicManager.addTruncationCheck): `checkTruncatable`
 * for a tiered partition; a retriable STORAGE_IO while the topic's manifests are not loaded
 * (what the bucket holds is unknown); nothing for a partition tiered storage does not hold.
 */
export function tierTruncationCheck(lookup: TierLookup): (topic: string, partition: number, offset: bigint) => void {
  return (topic, partition, offset) => {
    if (lookup.isPending(topic)) {
      throw new MeridianError(ErrorCode.StorageIo, `cannot truncate ${topic}/${partition} to offset ${offset} yet: its tiered-storage manifests are not loaded, so what the object store holds is unknown (${lookup.unavailable() ?? 'loading'})`, { retriable: true });
    }
    const tier = lookup.tier(topic, partition);
    if (tier !== undefined) checkTruncatable(tier, offset);
  };
}
