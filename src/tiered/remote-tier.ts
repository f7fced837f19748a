/**
 * The read side of tiered storage: what the bucket holds of a partition below its local log,
 * answered from the manifest and the segment objects (through `RemoteSegmentReader`, with
 * its block cache). This is the `RemoteHistory` of `storage/log-view.ts`: readers (Fetch,
 * ListOffsets, the replication worker) go through a `LogView`, which decides which tier
 * holds an offset; the checks against the local log start here only keep an answer right
 * when the local log moved meanwhile.
 *
 * While a topic's manifests cannot be loaded (the store is down), the bucket may hold
 * offsets below the local log that nobody can see yet: every question about them fails
 * retriably, so that no consumer or replicator skips history that is only out of reach.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import type { BufferPool } from '../storage/buffer-pool.js';
import type { RemoteHistory } from '../storage/log-view.js';
import type { ReadResult } from '../storage/partition-log.js';
import type { TopicManager } from '../storage/topic-manager.js';
import type { BlobStore } from './blobstore/blob-store.js';
import { remoteEndOffset, segmentFor } from './manifest.js';
import { ObjectKeys } from './object-keys.js';
import type { TierLookup } from './partition-tier.js';
import { RemoteSegmentReader } from './remote-reader.js';

export interface RemoteCacheOptions {
  bytes: number;
  blockBytes: number;
  readConcurrency: number;
}

export class RemoteTier implements RemoteHistory {
  readonly reader: RemoteSegmentReader;
  #topics: TopicManager;
  #tiers: TierLookup;
  /** Cache lookups per `<topic>/<partition>`. */
  #lookups = new Map<string, { hits: number; misses: number }>();

  constructor(store: BlobStore, cache: RemoteCacheOptions, topics: TopicManager, tiers: TierLookup) {
    this.#topics = topics;
    this.#tiers = tiers;
    this.reader = new RemoteSegmentReader({
      store,
      cacheBytes: cache.bytes,
      blockBytes: cache.blockBytes,
      maxConcurrentGets: cache.readConcurrency,
      onLookup: (key, hit) => {
        const p = ObjectKeys.partitionOfSegmentKey(key);
        if (p === null) return;
        const c = this.#lookups.get(p) ?? { hits: 0, misses: 0 };
        if (hit) c.hits++;
        else c.misses++;
        this.#lookups.set(p, c);
      },
    });
  }

  /**
   * The partition's first offset across both tiers (undefined: the local log's). Throws a
   * retriable error while that cannot be known (the topic's manifests are not loaded yet).
   */
  logStartOffset(topic: string, partition: number): bigint | undefined {
    const log = this.#topics.partition(topic, partition);
    if (log && this.#unknownBelow(topic, log.logStartOffset)) throw this.#notYetAttached(topic);
    const tier = this.#tiers.tier(topic, partition);
    if (!tier || tier.manifest.segments.length === 0) return undefined;
    // DeleteRecords' log start holds across both tiers: nothing below it is served.
    const start = tier.manifest.startOffset > tier.log.deletedBefore ? tier.manifest.startOffset : tier.log.deletedBefore;
    return start < tier.log.logStartOffset ? start : undefined;
  }

  /** Reads offsets below the local log from the bucket; undefined when not remote. */
  async read(topic: string, partition: number, offset: bigint, maxBytes: number, signal?: AbortSignal, pool?: BufferPool): Promise<ReadResult | undefined> {
    const log = this.#topics.partition(topic, partition);
    if (log && offset < log.logStartOffset && this.#unknownBelow(topic, log.logStartOffset)) throw this.#notYetAttached(topic);
    const tier = this.#tiers.tier(topic, partition);
    // Below DeleteRecords' log start: the local log answers OFFSET_OUT_OF_RANGE.
    if (!tier || offset >= tier.log.logStartOffset || offset < tier.log.deletedBefore) return undefined;
    const seg = segmentFor(tier.manifest, offset);
    if (seg === undefined) return undefined;
    const { records, pooled } = await this.reader.readPooled(seg, offset, maxBytes, { signal, pool });
    const result: ReadResult = { records, highWatermark: tier.log.highWatermark, logStartOffset: tier.manifest.startOffset };
    if (pooled !== undefined) result.pooled = pooled;
    return result;
  }

  /** ListOffsets by time over the remote segments (null: not in the remote tier). */
  async offsetForTimestamp(topic: string, partition: number, timestamp: bigint): Promise<{ offset: bigint; timestamp: bigint } | null> {
    const log = this.#topics.partition(topic, partition);
    if (log && this.#unknownBelow(topic, log.logStartOffset)) throw this.#notYetAttached(topic);
    const tier = this.#tiers.tier(topic, partition);
    if (!tier) return null;
    const deletedBefore = tier.log.deletedBefore;
    for (const seg of tier.manifest.segments) {
      if (seg.nextOffset > tier.log.logStartOffset) break; // the local tier answers from here
      if (seg.maxTimestamp < timestamp || seg.nextOffset <= deletedBefore) continue;
      const hit = await this.reader.offsetForTimestamp(seg, timestamp);
      if (hit) return hit.offset < deletedBefore ? { offset: deletedBefore, timestamp: hit.timestamp } : hit;
    }
    return null;
  }

  /** One past the last offset of the remote segment holding `offset` (undefined: none does). */
  remoteSegmentEnd(topic: string, partition: number, offset: bigint): bigint | undefined {
    const tier = this.#tiers.tier(topic, partition);
    return tier ? segmentFor(tier.manifest, offset)?.nextOffset : undefined;
  }

  /** The largest batch max timestamp of the remote segments below the local log (ListOffsets MAX_TIMESTAMP). */
  remoteMaxTimestamp(topic: string, partition: number): bigint | undefined {
    const tier = this.#tiers.tier(topic, partition);
    let max: bigint | undefined;
    for (const seg of tier?.manifest.segments ?? []) {
      if (seg.nextOffset > tier!.log.logStartOffset) break; // the local tier answers from here
      if (seg.nextOffset <= tier!.log.deletedBefore) continue;
      if (max === undefined || seg.maxTimestamp > max) max = seg.maxTimestamp;
    }
    return max;
  }

  /** One past the last offset the bucket holds for a partition (undefined: nothing). */
  remoteEnd(topic: string, partition: number): bigint | undefined {
    const tier = this.#tiers.tier(topic, partition);
    return tier && tier.manifest.segments.length > 0 ? remoteEndOffset(tier.manifest) : undefined;
  }

  /** The share of block-cache lookups for the partition's segments that hit (null: none yet). */
  cacheHitRatio(topic: string, partition: number): number | null {
    const c = this.#lookups.get(`${topic}/${partition}`);
    return c === undefined || c.hits + c.misses === 0 ? null : c.hits / (c.hits + c.misses);
  }

  close(): Promise<void> {
    return this.reader.close();
  }

  /**
   * True when the bucket may hold offsets below `localStart` that cannot be known yet (the
   * topic's manifests are not loaded: store down). Reads there must fail retriably rather
   * than let a consumer reset past history it cannot see.
   */
  #unknownBelow(topic: string, localStart: bigint): boolean {
    return this.#tiers.isPending(topic) && localStart > 0n;
  }

  #notYetAttached(topic: string): MeridianError {
    const why = this.#tiers.unavailable();
    return new MeridianError(ErrorCode.StorageIo, `the object store holding ${topic}'s older data is not reachable yet${why ? ` (${why})` : ''}`, { retriable: true });
  }
}
