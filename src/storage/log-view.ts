/**
 * One partition as its readers see it, across both tiers: the local log and, with tiered
 * storage, the older history the object store holds below it. Fetch, ListOffsets and the
 * replication worker read through a `LogView`, so the choice "this offset is local, that one
 * is in the bucket" is made here and nowhere else.
 *
 * One class owns both tiers rather than one implementation per tier: every answer but the
 * log start comes from exactly one tier, chosen by the offset against the local log start,
 * and the remote side is an interface (`RemoteHistory`, implemented by
 * `tiered/remote-tier.ts`) so that storage does not depend on tiered storage. Without a
 * remote history a view is the local log alone.
 *
 * What a view preserves of the local log's contract, whichever tier answers:
 * - `read` returns whole batches from one segment, at least one (KIP-74); `upTo` bounds the
 *   local tier (the remote one lies wholly below the local log start, durable by
 *   construction); with a pool, either tier may answer in one of its buffers (the result's
 *   `pooled`), which the caller then releases.
 * - Below the local log start while the store's part is unknown (its manifests are not
 *   loaded: store down), every answer fails with a retriable STORAGE_IO (Kafka
 *   KAFKA_STORAGE_ERROR), never OFFSET_OUT_OF_RANGE, so that no consumer or replicator skips
 *   history that is only out of reach. An offset held by neither tier is the local log's
 *   OFFSET_OUT_OF_RANGE.
 * - `signal` ends a read waiting on the object store.
 *
 * Views hold no state of their own: `LogViews` keeps one per partition log and hands it to
 * every request and worker (a fetch naming 10,000 partitions made 10,000 of them per read
 * round otherwise).
 */
import type { BufferPool } from './buffer-pool.js';
import type { PartitionLog, ReadOptions, ReadResult } from './partition-log.js';
import type { TopicManager } from './topic-manager.js';

export interface TimestampHit {
  offset: bigint;
  timestamp: bigint;
}

/**
 * What a view asks of the remote tier. Each method answers only for offsets below the local
 * log start and throws a retriable error while what the bucket holds there is unknown.
 */
export interface RemoteHistory {
  /** The partition's first offset across both tiers (undefined: the local log's). */
  logStartOffset(topic: string, partition: number): bigint | undefined;
  /**
   * Whole batches of the one remote segment holding `offset` (undefined: none holds it); with
   * `pool`, in one of its buffers (the result's `pooled`), as a local read with a pool.
   */
  read(topic: string, partition: number, offset: bigint, maxBytes: number, signal?: AbortSignal, pool?: BufferPool): Promise<ReadResult | undefined>;
  /** The first record at or after `timestamp` in the remote segments (null: none there). */
  offsetForTimestamp(topic: string, partition: number, timestamp: bigint): Promise<TimestampHit | null>;
  /** One past the last offset of the remote segment holding `offset` (undefined: none). */
  remoteSegmentEnd(topic: string, partition: number, offset: bigint): bigint | undefined;
  /** One past the last offset the bucket holds for the partition (undefined: nothing). */
  remoteEnd?(topic: string, partition: number): bigint | undefined;
  /** The largest batch max timestamp of the remote segments below the local log (undefined: none). */
  remoteMaxTimestamp?(topic: string, partition: number): bigint | undefined;
}

export class LogView {
  /** The local log: appends, durability and the notifications a long poll waits on. */
  readonly local: PartitionLog;
  readonly topic: string;
  readonly partition: number;
  readonly #remote: RemoteHistory | undefined;

  constructor(local: PartitionLog, topic: string, partition: number, remote?: RemoteHistory) {
    this.local = local;
    this.topic = topic;
    this.partition = partition;
    this.#remote = remote;
  }

  /** The first offset held in either tier. Throws (retriable) while the store's part is unknown. */
  get logStartOffset(): bigint {
    return this.#remote?.logStartOffset(this.topic, this.partition) ?? this.local.logStartOffset;
  }

  /** Every tier ends where the local log does. */
  get highWatermark(): bigint {
    return this.local.highWatermark;
  }

  /**
   * Whole batches starting with the one that holds `offset`, up to `maxBytes` (at least one),
   * from the one segment that holds it, in whichever tier.
   */
  async read(offset: bigint, maxBytes: number, opts: ReadOptions = {}): Promise<ReadResult> {
    if (this.#isRemote(offset)) {
      // undefined: the bucket does not hold it either (or the local log grew back over it
      // meanwhile): the local log answers, with OFFSET_OUT_OF_RANGE if it is nowhere.
      const remote = await this.#remote!.read(this.topic, this.partition, offset, maxBytes, opts.signal, opts.pool);
      if (remote) return remote;
    }
    return this.local.read(offset, maxBytes, opts);
  }

  /** ListOffsets by time: the remote segments first (they are older), then the local log. */
  async offsetForTimestamp(timestamp: bigint): Promise<TimestampHit | null> {
    return (await this.#remote?.offsetForTimestamp(this.topic, this.partition, timestamp)) ?? this.local.offsetForTimestamp(timestamp);
  }

  /**
   * ListOffsets MAX_TIMESTAMP (KIP-734): the first record carrying the largest timestamp in
   * either tier, with that timestamp; null for an empty log. The first record at or after
   * the largest timestamp is that record, so the by-time lookup finds it (a LogAppendTime
   * batch answers with its base offset, as every by-time answer here).
   */
  async maxTimestampHit(): Promise<TimestampHit | null> {
    let max = -1n;
    for (const s of this.local.segments()) if (s.nextOffset > this.local.logStartOffset && s.maxTimestamp > max) max = s.maxTimestamp;
    const remote = this.#remote?.remoteMaxTimestamp?.(this.topic, this.partition);
    if (remote !== undefined && remote > max) max = remote;
    if (max < 0n) return null;
    return this.offsetForTimestamp(max);
  }

  /** ListOffsets EARLIEST_LOCAL_TIMESTAMP (KIP-405): the first offset still on local disk. */
  get localLogStartOffset(): bigint {
    return this.local.logStartOffset;
  }

  /**
   * ListOffsets LATEST_TIERED_TIMESTAMP (KIP-1005): the last offset the object store holds,
   * -1 when it holds none (or the partition is not tiered).
   */
  get latestTieredOffset(): bigint {
    const end = this.#remote?.remoteEnd?.(this.topic, this.partition);
    return end === undefined ? -1n : end - 1n;
  }

  /**
   * One past the last offset the segment holding `offset` can ever hold, in whichever tier
   * holds it (for the active segment, its current end). Undefined when no segment holds it.
   */
  segmentEnd(offset: bigint): bigint | undefined {
    return this.#isRemote(offset) ? this.#remote!.remoteSegmentEnd(this.topic, this.partition, offset) : this.local.segmentEnd(offset);
  }

  /** The one place the tier is chosen: below the local log start, the bucket answers. */
  #isRemote(offset: bigint): boolean {
    return this.#remote !== undefined && offset < this.local.logStartOffset;
  }
}

/** Views of the partitions of one broker's topics, over its remote tier when it has one. */
export class LogViews {
  readonly #topics: TopicManager;
  readonly #remote: RemoteHistory | undefined;
  /** One view per log object (a deleted and recreated partition is a new log, so a new view). */
  readonly #views = new WeakMap<PartitionLog, LogView>();

  constructor(topics: TopicManager, remote?: RemoteHistory) {
    this.#topics = topics;
    this.#remote = remote;
  }

  /** The view of `topic`/`partition`; undefined when this broker has no such partition. */
  view(topic: string, partition: number): LogView | undefined {
    const log = this.#topics.partition(topic, partition);
    if (log === undefined) return undefined;
    let view = this.#views.get(log);
    if (view === undefined) {
      view = new LogView(log, topic, partition, this.#remote);
      this.#views.set(log, view);
    }
    return view;
  }
}
