/**
 * The hot tier of one partition: an ordered list of segments in one directory.
 *
 * Concurrency: `append` is synchronous up to offset assignment (validate, roll, stamp
 * baseOffset, enqueue), so offsets follow call order. Two loops then run as a pipeline:
 * - the writer takes everything queued and writes it with one pwritev per segment, in
 *   order, then hands the appends that want durability to the syncer;
 * - the syncer takes every waiter handed over so far, issues one fdatasync per dirty
 *   segment, and releases all of them together.
 * While an fdatasync runs, the writer keeps writing newly arrived appends, and they share
 * the next fdatasync: group commit without a timer or a tuning knob.
 *
 * Durability modes (config `log.flush.mode`):
 * - `fsync` (default): `append` waits for fdatasync unless the caller passes `sync: false`.
 *   Kafka acks=all (-1) is answered only after fdatasync; acks=1 after the write reached
 *   the OS (it survives a process crash, not a power loss).
 * - `interval`: `append` waits for the write only, and dirty data is fdatasync'd
 *   `flushIntervalMs` after it was first written (Kafka's own default behaviour). A caller
 *   can still pass `sync: true`.
 * Either way the shared FlushScheduler (flush-scheduler.ts) fdatasyncs dirty data, so
 * nothing stays volatile longer than an interval: a log registers with it when it becomes
 * dirty, and an idle log has no timer at all.
 *
 * Off the event loop: a roll only plans the next segment (offsets stay assigned in call
 * order, synchronously); the writer creates its file and fsyncs the directory, and seals
 * the previous segment (fdatasync, index file written and fsynced), all on the libuv
 * threadpool, in queue order. Segment descriptors come from a shared FdCache (fd-cache.ts).
 *
 * Visibility: the high watermark is the end of written data (what a restart after a process
 * crash still holds); `durableOffset` is the end of fdatasync'd data, for consumers such as
 * geo-replication that must never see a record a power loss could take back.
 *
 * Leader epochs (leader-epoch-cache.ts): an append with `leaderEpoch` (a cluster's
 * leader) stamps it in every batch and records a new epoch's first offset; `appendAsFollower`
 * copies a leader's batches verbatim and learns epochs from their stamps. The checkpoint is
 * written before the first batch of a new epoch is (see `#epochs`).
 *
 * Recovery on open is log-recovery.ts's. This file is long because the append pipeline,
 * the read path and retention share the segment list and its invariants.
 */
import fs from 'node:fs';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type { LogJournal } from './journal.js';
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import { fsyncDirSync, isOutOfSpace, realIo, storageError, writeFileAtomicSync, type LogIo } from './fs-util.js';
import { currentBootId, encodeOffsetFillers, isOffsetFiller, ShipFenceFile } from './ship-fence.js';
import { FdCache, DEFAULT_MAX_OPEN_FILES } from './fd-cache.js';
import { TailCache, TailCacheBudget } from './tail-cache.js';
import { FlushScheduler } from './flush-scheduler.js';
import type { RecoveryPoint } from './recovery-checkpoint.js';
import { PartitionFiles } from './partition-files.js';
import {
  BATCH_HEADER_BYTES,
  LOG_OVERHEAD,
  computeBatchCrc,
  lastOffsetOf,
  opensRecordsForTimestamp,
  readBatchHeader,
  setBaseOffset,
  timestampHitIn,
  validateBatch,
  type BatchHeader,
} from './record-batch.js';
import { BatchRange, selectBatchRange } from './batch-range.js';
import { Segment, segmentCrc, type SegmentContext, type SegmentInfo } from './segment.js';
import type { BufferPool } from './buffer-pool.js';
import { recoverSegments, type Recovered, type RecoveryStats } from './log-recovery.js';
import { isValidEpoch, LeaderEpochCache } from './leader-epoch-cache.js';
import { VerifiedRanges } from './verified-ranges.js';
import { ThrottledLog } from '../throttled-log.js';

/** The log start DeleteRecords persisted in `dir` (0 when it never ran there). */
function readDeletedBefore(dir: string): bigint {
  let text: string;
  try {
    text = fs.readFileSync(PartitionFiles.logStart(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0n;
    throw storageError(`cannot read the log start of ${dir}`, err);
  }
  try {
    return BigInt((JSON.parse(text) as { logStartOffset: string }).logStartOffset);
  } catch (err) {
    throw storageError(`${PartitionFiles.logStart(dir)} is unreadable (it holds where DeleteRecords moved the log start)`, err);
  }
}

/** An fdatasync that failed: after it the page cache's state is unknown (fsyncgate). */
class SyncFailure extends Error {
  constructor(cause: unknown) {
    super('fdatasync failed', { cause });
  }
}

const WARN_EVERY_MS = 10_000;
/** The records of an empty read: shared (zero bytes, nothing to write into), not one per read. */
const NO_RECORDS = Buffer.alloc(0);
/** How often a seal that ran out of space (writing the index) is tried again. */
const SEAL_RETRY_MS = 1_000;

export interface LogOptions {
  segmentBytes: number;
  segmentMs: number;
  indexIntervalBytes: number;
  maxBatchBytes: number;
  maxUncompressedBatchBytes: number;
  flushMode: 'fsync' | 'interval';
  flushIntervalMs: number;
  /** -1 = unlimited */
  retentionBytes: number;
  /** -1 = unlimited */
  retentionMs: number;
  /** Where writes and fdatasyncs go; tests inject disk failures here. */
  io?: LogIo;
  /**
   * Segment file descriptors open at once (config `log.maxOpenFiles`): the TopicManager
   * sizes its shared FdCache with it; a log opened on its own gets a cache of this size.
   */
  maxOpenFiles?: number;
  /** Memory for active segments' tails across the TopicManager's logs (`log.tailCacheBytes`). */
  tailCacheBytes?: number;
  /** The TopicManager keeps a shared journal for fsync mode (`log.flush.journal`, default false). */
  journal?: boolean;
  /** The journal's MIN_SHARING_LOGS (`log.flush.journalMinPartitions`). */
  journalMinLogs?: number;
  /**
   * This machine's boot (ship-fence.ts): undefined reads Linux's boot id; null is a machine
   * whose boot cannot be told (nothing is replicated before it is durable). Tests pass another
   * id to play a restart after a power loss.
   */
  bootId?: string | null;
}

/**
 * What the logs of one TopicManager share. A log opened without them (tests, tools) makes
 * its own scheduler and descriptor cache.
 */
export interface LogResources {
  scheduler?: FlushScheduler;
  files?: FdCache;
  /** The memory for the tails of active segments (`log.tailCacheBytes`; tail-cache.ts). */
  tail?: TailCacheBudget;
  /** Where the data directory's recovery checkpoint says this log's durable data ends. */
  recoveryPoint?: RecoveryPoint;
  /** Rewrites the recovery checkpoint without this log's point (before a truncation cuts). */
  saveCheckpoint?: () => Promise<void>;
  /**
   * The data directory's shared journal (journal.ts): in fsync mode, write rounds smaller
   * than JOURNAL_MAX_ROUND_BYTES are made durable there, with other logs' rounds, instead of
   * by an fdatasync of the segment. `journalName` names this log in it (its directory
   * under logs/).
   */
  journal?: LogJournal;
  journalName?: string;
}

/**
 * A write round of one log up to this size is journaled (fsync mode, with a journal); a
 * larger one fdatasyncs its segment, which costs no more than journaling it and writes the
 * bytes once. Measured (src/storage/README.md): an fdatasync per 20 KB partition write ran at
 * ~16% of one 1 MB write's rate on this machine's disk.
 */
export const JOURNAL_MAX_ROUND_BYTES = 256 * 1024;

/**
 * A log journals at most this many bytes between two fdatasyncs of its own segments; the
 * round that would pass it syncs them all instead. Journaled bytes stay dirty in the page
 * cache until something writes them out, and a hot partition left to journal everything
 * made its segment's seal (and the journal's rotation syncfs) flush tens of MiB at once:
 * bench:kafka's produce p99 at 50,000 msg/s went from 4.6 to 19.6 ms. With the cap a busy
 * log pays its own fdatasync once per MiB, and a segment never seals with more than this
 * much to flush; the many small logs the journal is for never reach it.
 */
export const JOURNAL_MAX_LOG_DEBT_BYTES = 1024 * 1024;

/**
 * A fetched batch checked as a follower's append needs: an offset filler (ship-fence.ts: one
 * record spanning many offsets, which validateBatch refuses) by its shape and CRC, anything
 * else by validateBatch.
 */
function followerBatchHeader(batch: Buffer): BatchHeader {
  const h = readBatchHeader(batch);
  if (h.magic === 2 && h.lastOffsetDelta > 0 && computeBatchCrc(batch) === h.crc && isOffsetFiller(batch, h)) return h;
  return validateBatch(batch);
}

/** Whether items[from..to) are all appends that wait for durability. */
function allSync(items: readonly QueueItem[], from: number, to: number): boolean {
  for (let k = from; k < to; k++) {
    const it = items[k]!;
    if (it.kind !== 'append' || !it.sync) return false;
  }
  return true;
}

export const defaultLogOptions: LogOptions = {
  segmentBytes: 128 * 1024 * 1024,
  segmentMs: 7 * 24 * 3600 * 1000,
  indexIntervalBytes: 4096,
  maxBatchBytes: 8 * 1024 * 1024,
  maxUncompressedBatchBytes: 64 * 1024 * 1024,
  flushMode: 'fsync',
  flushIntervalMs: 1000,
  retentionBytes: -1,
  retentionMs: 7 * 24 * 3600 * 1000,
};

/** Where partitionLeaderEpoch sits in a batch: outside the CRC, like baseOffset. */
const PARTITION_LEADER_EPOCH_AT = 12;

export interface AppendOptions {
  /** Wait for fdatasync (default: in fsync mode) or only for the write. */
  sync?: boolean;
  /**
   * The appending leader's epoch (a cluster's leader; absent in single-broker mode, where
   * batches keep the stamp they carry). Stamped in every batch's partitionLeaderEpoch; a
   * newer epoch than the cache's latest starts there. An epoch older than the latest in the
   * log is refused (FENCED_LEADER_EPOCH, retriable): a newer leader has written to this log.
   */
  leaderEpoch?: number;
}

export interface AppendResult {
  baseOffset: bigint;
  lastOffset: bigint;
}

export interface PendingAppend {
  baseOffset: bigint;
  lastOffset: bigint;
  done: Promise<AppendResult>;
}

export interface ReadResult {
  /** Whole batches, concatenated, exactly as stored. Empty when nothing is there yet. */
  records: Buffer;
  highWatermark: bigint;
  logStartOffset: bigint;
  /** The pooled buffer `records` lives in, when the read used `opts.pool`: release it after use. */
  pooled?: Buffer;
}

export interface ReadOptions {
  /** Read nothing at or past this offset (default: the high watermark). */
  upTo?: bigint;
  /** Read into a buffer of this pool; the result's `pooled` must then be released. */
  pool?: BufferPool;
  /**
   * Ends a read that waits on the object store (log-view.ts). A local read is one or two
   * preads and is not interrupted.
   */
  signal?: AbortSignal;
}

/** Returns false to keep a segment that retention would delete (not yet offloaded, say). */
export type RetentionGuard = (segment: SegmentInfo) => boolean | Promise<boolean>;

interface AppendItem {
  kind: 'append';
  segment: Segment;
  batches: Buffer[];
  baseOffset: bigint;
  lastOffset: bigint;
  sync: boolean;
  /** The leader epoch checkpoint write that must succeed before these batches are written. */
  before?: Promise<void>;
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}
interface SealItem {
  kind: 'seal';
  segment: Segment;
  /**
   * The segment rolled to: its file is created before `segment` seals, so the log's end
   * stays on disk even if every sealed segment is then deleted (tiered storage's local
   * deletion) before anything is appended to it.
   */
  next: Segment;
  resolve?: () => void;
}
interface FlushItem {
  kind: 'flush';
  resolve: () => void;
  reject: (e: unknown) => void;
}
type QueueItem = AppendItem | SealItem | FlushItem;

export class PartitionLog {
  readonly dir: string;
  readonly options: LogOptions;
  #log: Logger | undefined;
  #segments: Segment[];
  #active: Segment;
  #nextOffset: bigint;
  #writtenEnd: bigint;
  #durableEnd: bigint;
  #queue: QueueItem[] = [];
  #writing = false;
  #writerDone: Promise<void> = Promise.resolve();
  /** Written, waiting for the next fdatasync. */
  #syncWaiters: Array<AppendItem | FlushItem> = [];
  #syncing = false;
  #syncerDone: Promise<void> = Promise.resolve();
  /** The seals of rolled segments, chained in roll order (#sealInBackground). */
  #sealing: Promise<void> = Promise.resolve();
  #dirty = new Set<Segment>();
  readonly #journal: LogJournal | undefined;
  readonly #journalName: string;
  /** Runs written since the last sync whose durability goes to the journal. */
  #journalRuns: Array<{ segment: Segment; position: number; batches: Buffer[] }> = [];
  /** Segments written through the journal and not fdatasync'd since (syncForJournal). */
  #journaled = new Set<Segment>();
  /** Bytes journaled since this log last fdatasync'd every segment in #journaled. */
  #journalDebt = 0;
  /** The syncer's fdatasync of journaled segments under way (syncForJournal waits for it). */
  #journaledSync: Promise<unknown> = Promise.resolve();
  #failure: MeridianError | undefined;
  #closed = false;
  #scheduler: FlushScheduler;
  #ownScheduler: boolean;
  /** Registered with the scheduler for the current dirty spell. */
  #flushScheduled = false;
  #ctx: SegmentContext;
  #saveCheckpoint: (() => Promise<void>) | undefined;
  /** The active segment as of the last completed fdatasync (recovery-checkpoint.ts). */
  #recoveryPoint: RecoveryPoint | undefined;
  #recoveryStats: RecoveryStats;
  #guards: RetentionGuard[] = [];
  #sealedListeners = new Set<(s: SegmentInfo) => void>();
  #appendListeners = new Set<(highWatermark: bigint) => void>();
  #durableListeners = new Set<(durableOffset: bigint) => void>();
  #retentionRunning = false;
  #truncatedListeners = new Set<(offset: bigint) => void>();
  /** Truncations run one at a time, in call order. */
  #truncations: Promise<void> = Promise.resolve();
  /**
   * Set from a `truncateTo` call until it (and any called after it) settles: appends and
   * DeleteRecords are refused, rolls wait, retention skips the log.
   */
  #truncatingTo: bigint | undefined;
  #truncationsPending = 0;
  /**
   * Where DeleteRecords moved the log start (0: never): offsets below it are not served even
   * while the segment holding them is still on disk (a guard kept it, or it also holds
   * offsets above). Persisted in `log-start-offset.json` before it takes effect.
   */
  #deletedBefore: bigint;
  #io: LogIo;
  /**
   * The leader epoch cache. Invariant: its checkpoint never lacks an entry for data on disk
   * and never holds one past data written after it: every append waits, before its bytes are
   * written, for a checkpoint write that started after the last change of the cache (a new
   * epoch, a truncation, a move of the log start), so a crash leaves a checkpoint that
   * at most holds entries past the recovered end (dropped at open). Recovery still learns
   * from the stamps it scans, should the file have been lost. A change of the cache happens
   * once per leader change, so the write costs nothing on the steady path, and none at all in
   * single-broker mode (no checkpoint file, never dirty).
   */
  #epochs: LeaderEpochCache;
  #verified = new WeakMap<Segment, VerifiedRanges>();
  /** The newest bytes of the active segment, for reads at the end of the log. */
  readonly #tail: TailCache;
  #events: ThrottledLog;
  /** skippedOffsets: offsets the open filled after a power loss (ship-fence.ts). */
  #stats = { appends: 0, batches: 0, bytesWritten: 0, writes: 0, fsyncs: 0, refusedOutOfSpace: 0, corruptReads: 0, bytesCrcChecked: 0, skippedOffsets: 0 };
  readonly #bootId: string | null;
  /** ship-fence.json (ship-fence.ts): set by open. */
  #fence!: ShipFenceFile;
  /** The open-time fill (#loadShipFence) has not completed: the fence must outlive this run. */
  #fillOwed = false;

  private constructor(dir: string, options: LogOptions, segments: Segment[], ctx: SegmentContext, resources: LogResources, recovery: RecoveryStats, epochs: LeaderEpochCache, logger?: Logger, deletedBefore = 0n) {
    this.dir = dir;
    this.#epochs = epochs;
    this.options = options;
    this.#log = logger;
    this.#io = options.io ?? realIo;
    this.#ctx = ctx;
    this.#ownScheduler = resources.scheduler === undefined;
    this.#tail = new TailCache(resources.tail ?? new TailCacheBudget());
    this.#scheduler = resources.scheduler ?? new FlushScheduler();
    this.#saveCheckpoint = resources.saveCheckpoint;
    this.#journal = options.flushMode === 'fsync' ? resources.journal : undefined;
    this.#journalName = resources.journalName ?? path.basename(dir);
    this.#recoveryStats = recovery;
    this.#events = new ThrottledLog(logger, WARN_EVERY_MS);
    this.#segments = segments;
    this.#active = segments[segments.length - 1];
    this.#nextOffset = this.#active.nextOffset;
    this.#writtenEnd = this.#nextOffset;
    this.#durableEnd = this.#nextOffset;
    // Never past the end: a crash may have taken back unsynced records DeleteRecords passed.
    this.#deletedBefore = deletedBefore < this.#nextOffset ? deletedBefore : this.#nextOffset;
    this.#recoveryPoint = this.#pointOf(this.#active);
    this.#bootId = options.bootId === undefined ? currentBootId() : options.bootId;
  }

  /**
   * Opens (recovering) or creates the log in `dir`. `initialOffset` is where a brand-new,
   * empty log starts: a partition restored from tiered storage continues after the history
   * its bucket holds.
   */
  static async open(dir: string, options: Partial<LogOptions> = {}, logger?: Logger, initialOffset = 0n, resources: LogResources = {}): Promise<PartitionLog> {
    const opts: LogOptions = { ...defaultLogOptions, ...options };
    fs.mkdirSync(dir, { recursive: true });
    const ctx: SegmentContext = { files: resources.files ?? new FdCache(opts.maxOpenFiles ?? DEFAULT_MAX_OPEN_FILES), indexIntervalBytes: opts.indexIntervalBytes };
    const { segments, stats, durableAsIs, epochStamps } = await recoverSegments(dir, opts, ctx, logger, initialOffset, resources.recoveryPoint, readDeletedBefore(dir));
    // What recovery found may never have been fsynced (a kill -9 in the interval mode
    // leaves it in the page cache): sync it before calling it durable. Not needed when the
    // checkpoint already covers all of it.
    const active = segments[segments.length - 1];
    if (!active.isEmpty && !durableAsIs) await active.sync(opts.io ?? realIo, true);
    let loaded: ReturnType<typeof LeaderEpochCache.load>;
    try {
      loaded = LeaderEpochCache.load(PartitionFiles.leaderEpochCheckpoint(dir));
    } catch (err) {
      for (const seg of segments) await seg.close();
      throw err;
    }
    const { cache, corrupt } = loaded;
    const log = new PartitionLog(dir, opts, segments, ctx, resources, stats, cache, logger, readDeletedBefore(dir));
    try {
      await log.#loadEpochs(epochStamps, corrupt);
      await log.#loadShipFence();
    } catch (err) {
      await log.close();
      throw err;
    }
    return log;
  }

  /**
   * Reads the ship fence. When the machine restarted since it was written (another boot id)
   * and the log ends below it, records a replicator sent before they were durable may be lost
   * here and held by a remote: the offsets up to the fence are filled (ship-fence.ts) and
   * durable before anything else appends, so no new record takes one of them.
   */
  async #loadShipFence(): Promise<void> {
    this.#fence = new ShipFenceFile(PartitionFiles.shipFence(this.dir), this.#bootId, (fn) => this.#ctx.files.transient(fn), (fields, message) => this.#events.warn('ship-fence', fields, message));
    const fence = this.#fence.fillTo(this.#nextOffset);
    if (fence === undefined) return;
    const from = this.#nextOffset;
    this.#fillOwed = true;
    // Stamped with the newest leader epoch (a cluster's), as a leader's append would be.
    const leaderEpoch = this.#epochs.latest()?.epoch;
    const fillers = encodeOffsetFillers(from, fence);
    for (let i = 0; i < fillers.length; i++) {
      // Each filler in a segment of its own beyond the first, and the records after a huge gap
      // in a fresh one: a segment's index keeps offsets relative to its base in 32 bits.
      if (i > 0) await this.roll();
      await this.appendValidated([fillers[i]], [readBatchHeader(fillers[i])], { sync: true, leaderEpoch }).done;
    }
    if (fence - from > 2n ** 30n) await this.roll();
    this.#fillOwed = false;
    this.#stats.skippedOffsets = Number(fence - from);
    this.#log?.warn(
      { dir: this.dir, fromOffset: String(from), toOffset: String(fence - 1n), skipped: String(fence - from) },
      'the machine restarted since this partition replicated records before they were durable (interval flush mode): the offsets a remote may hold and this log lost are skipped, so that no new record reuses one',
    );
  }

  /**
   * Whether a replicator may send this log's acknowledged records before their fdatasync,
   * below the ship fence (coverUnsynced): in the interval flush mode, on a machine whose boot
   * can be told. In the fsync mode a record is acknowledged only once durable, and is never
   * sent before.
   */
  get unsyncedShipping(): boolean {
    return this.options.flushMode === 'interval' && this.#bootId !== null;
  }

  /** Offsets below it may be held by a remote without being durable here (0: none ever were). */
  get shipFence(): bigint {
    return this.#fence.fence;
  }

  /**
   * Before records up to `lastOffset` that are not durable yet are sent: resolves true once
   * the persisted ship fence lies past `lastOffset` (ShipFenceFile.cover), false when they
   * may not be sent unsynced (see unsyncedShipping; or the fence could not be written: the
   * caller flushes instead).
   */
  coverUnsynced(lastOffset: bigint): Promise<boolean> {
    if (!this.unsyncedShipping || this.#closed || this.#failure) return Promise.resolve(false);
    return this.#fence.cover(lastOffset);
  }

  /**
   * Brings the checkpoint's entries in line with the recovered log: entries at or past the
   * end go (an epoch recorded before its first batch was written, which a crash took back),
   * the stamps the recovery scanned add what the file lacks, the first entry moves up to the
   * log start. A checkpoint that does not parse is rebuilt from the stamps of the whole log.
   * A log without a checkpoint (single-broker mode) learns nothing: its stamps are whatever
   * its producers wrote.
   */
  async #loadEpochs(stamps: Recovered['epochStamps'], corrupt: string | undefined): Promise<void> {
    const cache = this.#epochs;
    if (corrupt !== undefined) {
      this.#log?.warn({ dir: this.dir, file: cache.file, reason: corrupt }, 'leader epoch checkpoint unreadable; rebuilding it from the stamps of the log');
      let last: number | undefined;
      await this.scanBatchHeaders(this.logStartOffset, (h) => {
        if (h.partitionLeaderEpoch !== last) this.#learnEpoch(h.partitionLeaderEpoch, h.baseOffset);
        last = h.partitionLeaderEpoch;
      });
    } else if (cache.tracked) {
      cache.truncateFromEnd(this.#nextOffset);
      for (const s of stamps) this.#learnEpoch(s.epoch, s.startOffset);
    }
    cache.truncateFromStart(this.logStartOffset);
    if (cache.dirty) await cache.persist();
  }

  /**
   * Takes a batch's stamp as an epoch starting at `startOffset` if it is newer than the
   * latest epoch and starts at or after it (a stamp below, such as a single-broker era
   * producer's, is not an epoch of this log's history).
   */
  #learnEpoch(epoch: number, startOffset: bigint): void {
    const latest = this.#epochs.latest();
    if (!isValidEpoch(epoch) || (latest !== undefined && (epoch <= latest.epoch || startOffset < latest.startOffset))) return;
    this.#epochs.assign(epoch, startOffset);
  }

  /**
   * The partition's leader epochs: the first offset of each (read it; only the log changes
   * it). Empty in single-broker mode.
   */
  get leaderEpochs(): LeaderEpochCache {
    return this.#epochs;
  }

  /** The log start moved: the epoch cache's first entry follows (written in the background). */
  #trimEpochs(): void {
    if (!this.#epochs.truncateFromStart(this.logStartOffset)) return;
    // The next append waits for this write (or its retry) anyway.
    this.#epochs.persist().catch((err) => this.#log?.warn({ err, dir: this.dir }, 'leader epoch checkpoint write failed; the next append retries it'));
  }

  /** What the recovery at open did (segments trusted, scanned, bytes read). */
  get recoveryStats(): Readonly<RecoveryStats> {
    return this.#recoveryStats;
  }

  /**
   * How much of the active segment is known fdatasync'd, for the data directory's recovery
   * checkpoint; undefined while a truncation may be changing it.
   */
  get recoveryPoint(): RecoveryPoint | undefined {
    return this.#recoveryPoint;
  }

  /** The first offset served: the first segment's, or where DeleteRecords moved it past that. */
  get logStartOffset(): bigint {
    const base = this.#segments[0].baseOffset;
    return this.#deletedBefore > base ? this.#deletedBefore : base;
  }

  /** Where DeleteRecords last moved the log start (0 if never); the remote tier honours it too. */
  get deletedBefore(): bigint {
    return this.#deletedBefore;
  }

  /**
   * DeleteRecords: moves the log start to `offset` (at most the high watermark), durably,
   * then deletes the segments wholly below it through the retention path, so the retention
   * guards still decide when each file goes (a kept one serves nothing below the new start).
   * The active segment is rolled first if the new start passes all of it. Returns the log
   * start. Moving backwards is a no-op, as in Kafka. The offset may lie below the local log
   * (in the object store's part, which honours `deletedBefore` too).
   */
  async deleteRecordsBefore(offset: bigint): Promise<bigint> {
    this.#checkWritable();
    const hw = this.#writtenEnd;
    if (offset < 0n || offset > hw) {
      throw new MeridianError(ErrorCode.OffsetOutOfRange, `cannot delete records before offset ${offset}: it is outside [0, ${hw}] (the high watermark) in ${this.dir}`);
    }
    // Compared with the last DeleteRecords, not the local start: with tiered storage the
    // offset may lie in the object store's part, below the local log.
    if (offset <= this.#deletedBefore) return this.logStartOffset;
    writeFileAtomicSync(PartitionFiles.logStart(this.dir), JSON.stringify({ logStartOffset: String(offset) }));
    this.#deletedBefore = offset;
    this.#trimEpochs();
    this.#log?.info({ dir: this.dir, logStartOffset: String(offset) }, 'log start moved by DeleteRecords');
    if (offset >= this.#active.baseOffset && this.#active.assignedBytes > 0 && offset >= this.#nextOffset) await this.roll();
    await this.applyRetention();
    return this.logStartOffset;
  }

  /**
   * Removes every record at or past `offset` (failback: the old primary drops the divergent
   * tail its caller has copied elsewhere, then follows the new primary from `offset`).
   *
   * `offset` must lie in [logStartOffset, highWatermark] and be a batch boundary (a batch's
   * base offset, or the log end), else OFFSET_OUT_OF_RANGE naming the directory, the offset
   * and the valid range; so a DeleteRecords that moved the start past `offset` refuses it.
   * Truncating to the log end is a no-op. Truncations run one at a time, in call order.
   *
   * Appends: those queued or in flight when it is called are finished (written and
   * fdatasync'd) first, and then cut with the rest if they lie past `offset` (the caller
   * stops producing before it copies the tail). From the call until it settles, appends and
   * `deleteRecordsBefore` are refused with a retriable LOG_CLOSED (a Kafka client gets
   * NOT_LEADER_OR_FOLLOWER, refreshes its metadata and retries), never queued: one accepted
   * then would be acknowledged and then cut. `roll` waits for it; retention and tiered local
   * deletion skip the log until it settles. A refused truncation (bad offset, a check) only
   * refuses appends for as long as it took to decide.
   *
   * `opts.check`, when given, runs synchronously right before anything changes (after the
   * appends drained) and may throw to refuse: TopicManager's truncation checks (tiered
   * storage refusing offsets the bucket holds) run there, in the same tick as the changes,
   * so nothing the check looked at can move in between.
   *
   * Steps: producer snapshots (`<n>.producers`) past `offset` are removed (they describe
   * records about to go; a missing snapshot only costs a longer replay); segments whose base
   * offset is past `offset` are removed, newest first (index, then data); the segment holding
   * `offset` loses its index file and is cut at the byte position of the batch starting at
   * `offset` (a segment starting exactly there is cut to nothing), its index is rebuilt from
   * what remains and it becomes the active, unsealed segment; the cut is fdatasync'd and the
   * directory fsync'd before the next offset, high watermark and durable offset, which moved
   * back to `offset` at the start of the changes, are final and `onTruncated` listeners run.
   *
   * Crash safety: at every point the directory is a log recovery opens, holding the whole
   * log up to some end between `offset` and the old end: newest segments removed first
   * leave a contiguous prefix; a segment whose index is gone is rescanned; a cut not yet
   * durable leaves the longer file (all whole batches) or the shorter one; a later segment
   * left behind after a durable cut does not continue the log and recovery removes it. So a
   * kill -9 leaves a log that opens with an end >= `offset` (and possibly fewer producer
   * snapshots), and calling `truncateTo(offset)` again completes the truncation. An I/O
   * error part-way takes the log offline (as a failed write does) until a restart; then the
   * same retry completes it.
   */
  truncateTo(offset: bigint, opts: { check?: (offset: bigint) => void } = {}): Promise<void> {
    // Appends are refused from this call on (not from when the truncation starts): one
    // accepted now would be written, acknowledged and then cut.
    this.#truncationsPending++;
    this.#truncatingTo = offset;
    const run = this.#truncations
      .then(() => this.#truncate(offset, opts.check))
      .finally(() => {
        if (--this.#truncationsPending === 0) this.#truncatingTo = undefined;
      });
    this.#truncations = run.catch(() => {});
    return run;
  }

  /**
   * Starts the log over at `offset`, past everything it holds (Kafka's
   * truncateFullyAndStartAt): a follower whose whole log lies below its leader's log start
   * (records deleted by DeleteRecords or retention while it was away) could otherwise never
   * fetch again. The log start moves to `offset` first (durably), the next append lands in a
   * new segment based at `offset`, the leader epochs and producer snapshots of the old
   * records go, and retention then removes the old segments (all below the start). Like a
   * truncation it waits for appends in flight and refuses new ones meanwhile.
   *
   * Crash safety: until the new segment holds data the old segments still continue into it
   * (a crash before the new file exists reopens the old log, with its start clamped to its
   * end, and the follower resets again); after it, recovery drops the segments before the
   * gap because the durable log start lies past them (log-recovery.ts).
   */
  resetTo(offset: bigint): Promise<void> {
    this.#truncationsPending++;
    this.#truncatingTo = offset;
    const run = this.#truncations
      .then(() => this.#reset(offset))
      .finally(() => {
        if (--this.#truncationsPending === 0) this.#truncatingTo = undefined;
      });
    this.#truncations = run.catch(() => {});
    // The old segments, all below the new start, go by retention (which skips a log while a
    // truncation or reset runs, so it runs after).
    return run.then(() => {
      this.applyRetention().catch((err: unknown) => this.#log?.warn({ err, dir: this.dir }, 'retention after a reset failed; the next housekeeping retries'));
    });
  }

  async #reset(offset: bigint): Promise<void> {
    this.#checkOpen();
    if (offset <= this.#nextOffset) {
      throw new MeridianError(ErrorCode.OffsetOutOfRange, `cannot reset ${this.dir} to offset ${offset}: the log already reaches ${this.#nextOffset} (a reset starts over past the log end; truncate instead)`);
    }
    await new Promise<void>((resolve, reject) => this.#enqueue({ kind: 'flush', resolve, reject }));
    await this.#sealing;
    if (this.#failure) throw this.#failure;
    const oldEnd = this.#nextOffset;
    this.#recoveryPoint = undefined;
    await this.#saveCheckpoint?.();
    try {
      writeFileAtomicSync(PartitionFiles.logStart(this.dir), JSON.stringify({ logStartOffset: String(offset) }));
      this.#removeProducerSnapshotsAfter(-1n);
    } catch (err) {
      throw storageError(`cannot reset ${this.dir} to offset ${offset}: writing its new log start failed`, err);
    }
    this.#deletedBefore = offset;
    this.#nextOffset = offset;
    this.#writtenEnd = offset;
    this.#durableEnd = offset;
    // The old active segment is sealed behind the writer; the next append goes to a new one at `offset`.
    if (this.#active.assignedBytes > 0) {
      this.#rollNow();
      await new Promise<void>((resolve, reject) => this.#enqueue({ kind: 'flush', resolve, reject }));
    } else {
      // An empty active segment is based at the old end: replace it with one at `offset`.
      const empty = this.#active;
      const seg = Segment.plan(this.#ctx, this.dir, offset);
      this.#segments[this.#segments.length - 1] = seg;
      this.#active = seg;
      this.#dirty.delete(empty);
      this.#journaled.delete(empty);
      await empty.delete();
    }
    this.#trimEpochs();
    await this.#sealing;
    if (this.#failure) throw this.#failure;
    this.#log?.warn({ dir: this.dir, offset: String(offset), previousEnd: String(oldEnd) }, 'log reset: it starts over at its leader\'s log start');
  }

  async #truncate(offset: bigint, check: ((offset: bigint) => void) | undefined): Promise<void> {
    this.#checkOpen();
    this.#checkTruncationRange(offset);
    // At the end (then nothing is in flight: the end is the high watermark): nothing to do.
    if (offset === this.#nextOffset) return;
    // Refuse a mid-batch offset before holding the log (the bytes below the high watermark
    // do not change while appends drain).
    if (offset < this.#writtenEnd) await this.#batchPosition(offset);
    // Finish everything queued or in flight: written and fdatasync'd.
    await new Promise<void>((resolve, reject) => this.#enqueue({ kind: 'flush', resolve, reject }));
    await this.#sealing;
    if (this.#failure) throw this.#failure;
    // DeleteRecords may have moved the start while the appends drained.
    this.#checkTruncationRange(offset);
    if (offset === this.#nextOffset) return;
    // The flush left everything in the segments themselves: the journal's records of this
    // log are void from here on, so no replay writes the cut tail back.
    await this.#journalBarrier(`cannot truncate ${this.dir} to offset ${offset}`);
    // The recovery checkpoint must not vouch for bytes about to be cut (and then rewritten):
    // forget this log's point, durably, before anything changes.
    this.#recoveryPoint = undefined;
    this.#tail.clear();
    await this.#saveCheckpoint?.();
    const at = this.#segmentFor(offset);
    const position = await this.#batchPosition(offset);
    check?.(offset);
    try {
      this.#removeProducerSnapshotsAfter(offset);
    } catch (err) {
      throw storageError(`cannot truncate ${this.dir} to offset ${offset}: removing its producer snapshots failed`, err);
    }
    // From here on, no await until the in-memory state says what the files will: the
    // segments past `offset` leave the list, the one holding it is no longer sealed (so
    // the offloader and retention leave it alone), the ends move back.
    const oldEnd = this.#nextOffset;
    const cutIndex = this.#segments.indexOf(at);
    const removed = this.#segments.splice(cutIndex + 1);
    const wasSealed = at.sealed;
    at.sealed = false;
    at.dropIndexPast(position);
    at.sizeBytes = position;
    at.assignedBytes = position;
    at.nextOffset = offset;
    this.#active = at;
    this.#nextOffset = offset;
    this.#writtenEnd = offset;
    this.#durableEnd = offset;
    this.#epochs.truncateFromEnd(offset);
    for (const seg of removed) {
      this.#dirty.delete(seg);
      this.#journaled.delete(seg);
    }
    this.#dirty.delete(at);
    this.#journaled.delete(at);
    try {
      for (const seg of removed.reverse()) {
        fs.rmSync(seg.indexPath, { force: true });
        fs.rmSync(seg.logPath, { force: true });
        void seg.close();
      }
      if (wasSealed) fs.rmSync(at.indexPath, { force: true });
      fsyncDirSync(this.dir);
      const cut = await this.#reopenCut(at, position, offset);
      this.#segments[cutIndex] = cut;
      this.#active = cut;
      void at.close();
      fsyncDirSync(this.dir);
      // Before any append: a stale entry left in the file could otherwise end up inside
      // data written later. (A crash before this leaves entries past the end: dropped at open.)
      await this.#epochs.persist();
    } catch (err) {
      // The files are between two valid states: recovery at the next open, then the
      // same truncateTo, completes it.
      const error = storageError(`log ${this.dir} failed part-way through truncating to offset ${offset}; restart (recovery) and truncate again`, err);
      this.#fail(error, []);
      throw error;
    }
    this.#log?.warn({ dir: this.dir, offset: String(offset), previousEnd: String(oldEnd), removedSegments: removed.length }, 'log truncated');
    for (const l of this.#truncatedListeners) this.#notify(l, offset);
  }

  #checkTruncationRange(offset: bigint): void {
    const start = this.logStartOffset;
    const hw = this.#writtenEnd;
    if (offset < start || offset > hw) {
      const why = offset < start && this.#deletedBefore > offset ? ' (DeleteRecords moved the log start past it)' : '';
      throw new MeridianError(ErrorCode.OffsetOutOfRange, `cannot truncate ${this.dir} to offset ${offset}: it is outside [${start}, ${hw}] (log start to high watermark)${why}`);
    }
  }

  /**
   * The byte position, in the segment holding `offset`, of the batch that starts at
   * `offset` (the segment's size when `offset` is its end); OFFSET_OUT_OF_RANGE when
   * `offset` falls inside a batch.
   */
  async #batchPosition(offset: bigint): Promise<number> {
    const seg = this.#segmentFor(offset);
    if (offset === seg.nextOffset) return seg.sizeBytes;
    let found = -1;
    let inside: { base: bigint; last: bigint } | undefined;
    await seg.scanHeaders((await seg.ensureIndex()).lookupPosition(Number(offset - seg.baseOffset)), seg.sizeBytes, (h, pos) => {
      const last = lastOffsetOf(h);
      if (h.baseOffset === offset) found = pos;
      else if (h.baseOffset < offset && last >= offset) inside = { base: h.baseOffset, last };
      else if (last < offset) return true;
      return false;
    });
    if (found >= 0) return found;
    const where = inside ? `it falls inside the batch ${inside.base}..${inside.last}` : 'no batch starts there';
    throw new MeridianError(
      ErrorCode.OffsetOutOfRange,
      `cannot truncate ${this.dir} to offset ${offset}: ${where}; truncate to a batch's base offset within [${this.logStartOffset}, ${this.#writtenEnd}]`,
    );
  }

  /** Producer snapshots past `offset` describe records a truncation removes. */
  #removeProducerSnapshotsAfter(offset: bigint): void {
    let removed = false;
    for (const name of fs.readdirSync(this.dir)) {
      const at = PartitionFiles.producerSnapshotOffset(name);
      if (at !== undefined && at > offset) {
        fs.rmSync(path.join(this.dir, name), { force: true });
        removed = true;
      }
    }
    if (removed) fsyncDirSync(this.dir);
  }

  /**
   * Opens the segment of `old` afresh, cut at `position` (fdatasync'd), with its index and
   * data CRC rebuilt from the batches that remain: the active segment after a truncation.
   */
  async #reopenCut(old: Segment, position: number, end: bigint): Promise<Segment> {
    const seg = Segment.existing(this.#ctx, this.dir, old.baseOffset);
    try {
      if (seg.sizeBytes !== position) await seg.truncate(position);
      else await seg.sync(this.#io, true);
      await seg.scanHeaders(0, position, (h, pos, size) => {
        seg.recordBatch(pos, h.baseOffset, lastOffsetOf(h), h.maxTimestamp, size, this.options.indexIntervalBytes, h.crc, h);
        return true;
      });
      if (seg.nextOffset !== end) throw new Error(`the batches before byte ${position} of ${seg.logPath} end at offset ${seg.nextOffset}, not ${end}`);
      seg.dataCrc32c = await segmentCrc(seg, position);
      seg.dataCrcOfCheckedBatches = false;
      return seg;
    } catch (err) {
      await seg.close();
      throw err;
    }
  }

  /** Offset the next append gets. */
  get logEndOffset(): bigint {
    return this.#nextOffset;
  }

  /** End of written data: what consumers may read. */
  get highWatermark(): bigint {
    return this.#writtenEnd;
  }

  /** End of fdatasync'd data. */
  get durableOffset(): bigint {
    return this.#durableEnd;
  }

  get sizeBytes(): number {
    return this.#segments.reduce((s, seg) => s + seg.sizeBytes, 0);
  }

  /**
   * Counters since open: appends (calls), batches, bytes written, write rounds, fdatasyncs,
   * appends refused because the disk was full, reads that found a corrupt batch, and the
   * bytes of sealed segments whose batch CRCs reads checked.
   */
  stats(): Readonly<{ appends: number; batches: number; bytesWritten: number; writes: number; fsyncs: number; refusedOutOfSpace: number; corruptReads: number; bytesCrcChecked: number; shipFenceWrites: number; skippedOffsets: number }> {
    return { ...this.#stats, shipFenceWrites: this.#fence?.writes ?? 0 };
  }

  /** Whether the log went offline after an I/O error it cannot recover from (until a restart). */
  get offline(): boolean {
    return this.#failure !== undefined;
  }

  segments(): SegmentInfo[] {
    return this.#segments.map((s) => s.info());
  }

  /**
   * Someone read the whole file of the sealed segment at `baseOffset` back and found the
   * CRC-32C `dataCrc32c` (the offloader does, for every upload): if that is the CRC taken
   * from its checked batches as they were appended, every byte on disk is as appended, so
   * reads trust the segment instead of checking each batch's CRC again (the first read
   * after an offload is a consumer catching up, at disk speed; bench:tiered's hot read).
   * Ignored for any other segment, or one whose CRC came from the file itself.
   */
  trustVerifiedFile(baseOffset: bigint, dataCrc32c: number): void {
    const seg = this.#segments.find((s) => s.baseOffset === baseOffset);
    if (seg === undefined || !seg.sealed || !seg.dataCrcOfCheckedBatches || seg.dataCrc32c >>> 0 !== dataCrc32c >>> 0) return;
    let ranges = this.#verified.get(seg);
    if (ranges === undefined) {
      ranges = new VerifiedRanges();
      this.#verified.set(seg, ranges);
    }
    ranges.add(0, seg.sizeBytes);
  }

  /** Called with every segment once it is sealed (immutable and durable). */
  onSegmentSealed(listener: (s: SegmentInfo) => void): () => void {
    this.#sealedListeners.add(listener);
    return () => this.#sealedListeners.delete(listener);
  }

  /** Whether an fdatasync is running or queued (durableOffset is about to advance). */
  get syncPending(): boolean {
    return this.#syncing || this.#syncWaiters.length > 0;
  }

  /** Called each time `durableOffset` advances (geo-replication sends only durable data). */
  onDurable(listener: (durableOffset: bigint) => void): () => void {
    this.#durableListeners.add(listener);
    return () => this.#durableListeners.delete(listener);
  }

  /** Called after each write round with the new high watermark (for long-polling fetches). */
  onAppend(listener: (highWatermark: bigint) => void): () => void {
    this.#appendListeners.add(listener);
    return () => this.#appendListeners.delete(listener);
  }

  /**
   * Called once a `truncateTo` has completed (durably), with the new log end: everything at
   * or past it is gone, so a cache of what the log holds (idempotent-producer state, the
   * replication dedup table, a reader's position) must be reset. The high watermark and
   * durable offset moved back to it; `onAppend` and `onDurable` are not told.
   */
  onTruncated(listener: (offset: bigint) => void): () => void {
    this.#truncatedListeners.add(listener);
    return () => this.#truncatedListeners.delete(listener);
  }

  /**
   * Adds a veto on deleting segments; returns its remover. The broker adds exactly one per
   * log, through retention-guards.ts, which composes every rule in one place.
   */
  addRetentionGuard(guard: RetentionGuard): () => void {
    this.#guards.push(guard);
    return () => {
      this.#guards = this.#guards.filter((g) => g !== guard);
    };
  }

  /**
   * Appends one RecordBatch v2. The batch is validated (magic, length, CRC-32C), stamped
   * with its base offset in place, and stored verbatim. Resolves when written, or when
   * durable if `sync` (the default in fsync mode).
   */
  append(batch: Buffer, opts: AppendOptions = {}): Promise<AppendResult> {
    return this.appendAll([batch], opts);
  }

  /**
   * Appends several batches as one unit: consecutive offsets, one write, one segment (a roll
   * happens before, never between them). Validation of all precedes any change.
   */
  appendAll(batches: readonly Buffer[], opts: AppendOptions = {}): Promise<AppendResult> {
    try {
      return this.appendValidated(batches, this.validate(batches), opts).done;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Validates batches for this log (magic, length, CRC-32C, size limit) without appending. */
  validate(batches: readonly Buffer[]): BatchHeader[] {
    if (batches.length === 0) throw new MeridianError(ErrorCode.InvalidBatch, 'nothing to append');
    return batches.map((b) => validateBatch(b, this.options.maxBatchBytes));
  }

  /**
   * Appends batches already checked by `validate`, returning their offsets at once (they are
   * assigned synchronously, so a caller can record them before anything else appends) and
   * `done`, which settles as `append` would.
   */
  appendValidated(batches: readonly Buffer[], headers: readonly BatchHeader[], opts: AppendOptions = {}): PendingAppend {
    this.#checkWritable();
    const epoch = opts.leaderEpoch;
    if (epoch !== undefined) this.#checkLeaderEpoch(epoch);
    const bytes = batches.reduce((s, b) => s + b.length, 0);
    this.#maybeRoll(bytes);
    const baseOffset = this.#nextOffset;
    let next = baseOffset;
    batches.forEach((b, i) => {
      setBaseOffset(b, next);
      if (epoch !== undefined) b.writeInt32BE(epoch, PARTITION_LEADER_EPOCH_AT);
      next += BigInt(headers[i].lastOffsetDelta) + 1n;
    });
    if (epoch !== undefined) this.#epochs.assign(epoch, baseOffset);
    this.#nextOffset = next;
    this.#active.assignedBytes += bytes;
    const sync = opts.sync ?? this.options.flushMode === 'fsync';
    const lastOffset = next - 1n;
    const before = this.#epochs.dirty ? this.#epochs.persist() : undefined;
    const done = new Promise<AppendResult>((resolve, reject) => {
      this.#enqueue({ kind: 'append', segment: this.#active, batches: [...batches], baseOffset, lastOffset, sync, before, resolve, reject });
    });
    return { baseOffset, lastOffset, done };
  }

  /**
   * A leader's epoch must be an int32 >= 0 and no older than the newest epoch in this log:
   * an older one means a newer leader wrote here since (this broker was its follower), and
   * stamping the old epoch after the newer one would make OffsetForLeaderEpoch lie.
   */
  #checkLeaderEpoch(epoch: number): void {
    if (!isValidEpoch(epoch)) {
      throw new MeridianError(ErrorCode.InvalidBatch, `leader epoch ${epoch} cannot be stamped in ${this.dir}: it must be an int32 >= 0`);
    }
    const latest = this.#epochs.latest();
    if (latest !== undefined && epoch < latest.epoch) {
      throw new MeridianError(
        ErrorCode.FencedLeaderEpoch,
        `append to ${this.dir} as leader of epoch ${epoch} refused: the log already holds epoch ${latest.epoch} from offset ${latest.startOffset}; this broker is not the current leader (refresh the partition state)`,
      );
    }
  }

  /**
   * Appends what a follower fetched from its leader (one Fetch answer's records: whole
   * batches, concatenated, the last possibly cut short by the fetch size, which is ignored)
   * verbatim: offsets and partitionLeaderEpoch stamps as the leader wrote them, so this log
   * stays byte-identical to the leader's. The first batch must start at the log end, and
   * each next one where the previous ended (UNEXPECTED_APPEND_OFFSET otherwise: the caller
   * refetches from `logEndOffset`, or truncates first); every batch is checked (magic,
   * length, CRC-32C, record count) before anything is appended, so a corrupt or misplaced
   * batch leaves the log unchanged; there is no size limit (the leader accepted the batch,
   * and a follower that refused it would stop replicating). A stamp newer than the latest
   * epoch records that epoch's start. The batches go into as many segments as their size
   * needs (rolled where a leader's append would roll); `records` must not change until the
   * promise settles.
   *
   * Resolves as `append` does (durable in fsync mode unless `sync: false`), with the offsets
   * appended; with nothing whole to append, at once with `baseOffset` the log end and
   * `lastOffset` one below it. On a failure (disk full, I/O error) the batches of an earlier
   * segment may have been written: `logEndOffset` says how far the log got.
   */
  appendAsFollower(records: Buffer, opts: { sync?: boolean } = {}): Promise<AppendResult> {
    try {
      return this.#appendAsFollower(records, opts);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #appendAsFollower(records: Buffer, opts: { sync?: boolean }): Promise<AppendResult> {
    this.#checkWritable();
    const batches: Buffer[] = [];
    const headers: BatchHeader[] = [];
    let expected = this.#nextOffset;
    for (let p = 0; p + LOG_OVERHEAD <= records.length; ) {
      const size = records.readInt32BE(p + 8) + LOG_OVERHEAD;
      if (size < BATCH_HEADER_BYTES) {
        throw new MeridianError(ErrorCode.CorruptBatch, `follower append to ${this.dir} refused: the batch at byte ${p} of the fetched records declares ${size} bytes, less than a batch header; nothing was appended`);
      }
      if (p + size > records.length) break; // the partial batch a fetch's size limit cut
      const batch = records.subarray(p, p + size);
      let h: BatchHeader;
      try {
        h = followerBatchHeader(batch);
      } catch (err) {
        const e = err as MeridianError;
        throw new MeridianError(e.code, `follower append to ${this.dir} refused: the batch at byte ${p} of the fetched records is invalid (${e.message}); nothing was appended`, { cause: err });
      }
      if (h.baseOffset !== expected) {
        const what = batches.length === 0 ? `the log end is ${expected}` : `the batch before it ended at ${expected - 1n}`;
        throw new MeridianError(
          ErrorCode.UnexpectedAppendOffset,
          `follower append to ${this.dir} refused: a fetched batch starts at offset ${h.baseOffset} but ${what} (${h.baseOffset > expected ? 'a gap' : 'an overlap'}); fetch from the log end, truncating first if the logs diverged; nothing was appended`,
        );
      }
      batches.push(batch);
      headers.push(h);
      expected = lastOffsetOf(h) + 1n;
      p += size;
    }
    const baseOffset = this.#nextOffset;
    if (batches.length === 0) return Promise.resolve({ baseOffset, lastOffset: baseOffset - 1n });
    for (const h of headers) this.#learnEpoch(h.partitionLeaderEpoch, h.baseOffset);
    const before = this.#epochs.dirty ? this.#epochs.persist() : undefined;
    const sync = opts.sync ?? this.options.flushMode === 'fsync';
    // One append item per segment the batches land in.
    const runs: Array<{ segment: Segment; batches: Buffer[]; baseOffset: bigint; lastOffset: bigint }> = [];
    batches.forEach((b, i) => {
      this.#maybeRoll(b.length);
      let run = runs[runs.length - 1];
      if (run === undefined || run.segment !== this.#active) {
        run = { segment: this.#active, batches: [], baseOffset: headers[i].baseOffset, lastOffset: 0n };
        runs.push(run);
      }
      run.batches.push(b);
      run.lastOffset = lastOffsetOf(headers[i]);
      this.#active.assignedBytes += b.length;
      this.#nextOffset = run.lastOffset + 1n;
    });
    const done = runs.map(
      (run, i) =>
        new Promise<AppendResult>((resolve, reject) => {
          this.#enqueue({ kind: 'append', ...run, sync, before: i === 0 ? before : undefined, resolve, reject });
        }),
    );
    const lastOffset = this.#nextOffset - 1n;
    return Promise.all(done).then(() => ({ baseOffset, lastOffset }));
  }

  /**
   * Visits the header of every batch holding offsets at or past `from`, up to the high
   * watermark, in order (producer-state and dedup rebuilds).
   */
  async scanBatchHeaders(from: bigint, visit: (h: BatchHeader) => void): Promise<void> {
    const start = from < this.logStartOffset ? this.logStartOffset : from;
    for (const seg of this.#segments.filter((s) => s.nextOffset > start)) {
      if (!seg.acquire()) continue;
      try {
        const pos = seg.baseOffset <= start ? (await seg.ensureIndex()).lookupPosition(Number(start - seg.baseOffset)) : 0;
        await seg.scanHeaders(pos, seg.sizeBytes, (h) => {
          if (lastOffsetOf(h) >= start) visit(h);
          return true;
        });
      } finally {
        seg.release();
      }
    }
  }

  /**
   * The base offset of the batch holding `offset`: `offset` itself when a batch starts there,
   * or when it is at or past the written end or before the log start (nothing to round).
   * A follower truncating to its leader's epoch end rounds down with it (Kafka truncates to
   * the base of the batch holding the target): its own batches, copied from an older leader,
   * may be cut differently from the new leader's, and `truncateTo` needs a batch boundary.
   */
  async batchBaseAtOrBefore(offset: bigint): Promise<bigint> {
    if (offset >= this.#writtenEnd || offset <= this.logStartOffset) return offset;
    const seg = this.#segmentFor(offset);
    if (!seg.acquire()) return offset;
    try {
      let base = offset;
      await seg.scanHeaders((await seg.ensureIndex()).lookupPosition(Number(offset - seg.baseOffset)), seg.sizeBytes, (h) => {
        if (lastOffsetOf(h) < offset) return true;
        if (h.baseOffset < offset) base = h.baseOffset;
        return false;
      });
      return base;
    } finally {
      seg.release();
    }
  }

  /**
   * Resolves once everything appended so far is durable, the index files of the segments
   * rolled before it included (seals run behind the writer: #sealInBackground).
   */
  flush(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (this.#failure) return reject(this.#failure);
      this.#enqueue({ kind: 'flush', resolve, reject });
    }).then(() => this.#sealing);
  }

  /** Seals the active segment now if it holds data (an operator's roll, or the age rule). */
  roll(): Promise<void> {
    // A truncation is choosing the active segment: roll what it leaves.
    if (this.#truncatingTo !== undefined) return this.#truncations.then(() => this.roll());
    if (this.#active.assignedBytes === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#rollNow(resolve));
  }

  /**
   * Reads whole batches starting with the one that contains `offset`, up to `maxBytes`
   * (always at least one batch, however large: KIP-74), from a single segment, never past
   * `upTo` (default: the high watermark). Throws OFFSET_OUT_OF_RANGE outside
   * [logStartOffset, highWatermark].
   */
  async read(offset: bigint, maxBytes: number, opts: ReadOptions = {}): Promise<ReadResult> {
    const hw = this.#writtenEnd;
    const limit = opts.upTo !== undefined && opts.upTo < hw ? opts.upTo : hw;
    for (;;) {
      if (this.#closed) throw new MeridianError(ErrorCode.LogClosed, `log ${this.dir} is closed`, { retriable: true });
      const logStart = this.logStartOffset;
      if (offset < logStart || offset > hw) {
        throw new MeridianError(ErrorCode.OffsetOutOfRange, `offset ${offset} is outside the log's range [${logStart}, ${hw}] in ${this.dir}`);
      }
      const empty = { records: NO_RECORDS, highWatermark: hw, logStartOffset: logStart };
      if (offset >= limit) {
        // A reader waiting at the end: what is appended next is worth keeping in memory.
        if (offset >= this.#active.baseOffset) this.#tail.follow();
        return empty;
      }
      const seg = this.#segmentFor(offset);
      if (!seg.acquire()) continue; // deleted by retention between lookup and acquire
      try {
        if (seg === this.#active) this.#tail.follow();
        const cached = this.#tail.read(seg, offset, maxBytes, limit, opts.pool);
        if (cached !== null) return { records: cached.records, pooled: cached.pooled, highWatermark: hw, logStartOffset: logStart };
        const r = await this.#readRange(seg, offset, maxBytes, limit, opts.pool);
        if (r === null) return empty;
        let records = r.records;
        if (seg.sealed) {
          try {
            records = this.#checkCrcs(seg, r.position, r.records);
          } catch (err) {
            if (r.pooled) opts.pool!.release(r.pooled);
            throw err;
          }
        }
        return { records, pooled: r.pooled, highWatermark: hw, logStartOffset: logStart };
      } finally {
        seg.release();
      }
    }
  }

  /**
   * The header of the batch holding `offset` (below the high watermark): read in place from
   * the tail cache when it holds it, nothing copied; else, for the active segment's last
   * batch (a partition's end: what disaster recovery asks for), its 61 header bytes read
   * from the file; else from a read of that batch. Neither file read makes the tail cache
   * follow the log: one header per sync is not a reader at the end.
   */
  async batchHeaderAt(offset: bigint): Promise<BatchHeader | undefined> {
    const known = this.cachedBatchHeaderAt(offset);
    if (known !== undefined) return known;
    const active = this.#active;
    if (offset >= active.baseOffset && offset < this.#writtenEnd) {
      const h = await this.#lastBatchHeader(active, offset);
      if (h !== undefined) return h;
    }
    const r = await this.read(offset, 1);
    return r.records.length >= BATCH_HEADER_BYTES ? readBatchHeader(r.records) : undefined;
  }

  /**
   * `batchHeaderAt` without I/O or a promise: the header when the tail cache holds it, or
   * when it is the active segment's last batch as written; undefined otherwise (ask
   * `batchHeaderAt`). Disaster recovery asks this of every partition whose end moved, at
   * each sync (bench:scale: 10,000 of them several times a second).
   */
  cachedBatchHeaderAt(offset: bigint): BatchHeader | undefined {
    const active = this.#active;
    if (offset < active.baseOffset || offset >= this.#writtenEnd) return undefined;
    return this.#tail.headerAt(active, offset) ?? this.#writtenLastHeader(active, offset);
  }

  /** `seg`'s last batch header as written, when it holds `offset` and still fits the segment's size. */
  #writtenLastHeader(seg: Segment, offset: bigint): BatchHeader | undefined {
    const pos = seg.lastBatchPos;
    const known = seg.lastBatchHeader;
    if (known === undefined || pos < 0 || pos + BATCH_HEADER_BYTES > seg.sizeBytes) return undefined;
    return pos + known.batchLength + LOG_OVERHEAD <= seg.sizeBytes && known.baseOffset <= offset && offset <= lastOffsetOf(known) ? known : undefined;
  }

  /**
   * The header of `seg`'s last batch when it holds `offset`, from a read of its 61 bytes
   * (bench:scale: a read window of ~72 KiB for each, at every sync of 10,000 partitions'
   * ends, was the most memory eu-west allocated); undefined when it does not. Checked
   * against the offset and the segment's size, so a position left by a truncation is
   * never trusted. Asked after `cachedBatchHeaderAt` missed: a header known as written
   * already said it does not hold `offset`, and the file holds the same bytes.
   */
  async #lastBatchHeader(seg: Segment, offset: bigint): Promise<BatchHeader | undefined> {
    const pos = seg.lastBatchPos;
    if (pos < 0 || pos + BATCH_HEADER_BYTES > seg.sizeBytes || seg.lastBatchHeader !== undefined) return undefined;
    if (!seg.acquire()) return undefined;
    try {
      const h = readBatchHeader(await seg.read(pos, BATCH_HEADER_BYTES));
      const fits = h.magic === 2 && pos + h.batchLength + LOG_OVERHEAD <= seg.sizeBytes;
      return fits && h.baseOffset <= offset && offset <= lastOffsetOf(h) ? h : undefined;
    } finally {
      seg.release();
    }
  }

  /**
   * One past the last offset the segment holding `offset` can ever hold: its end once
   * sealed, the current end for the active segment. Undefined outside the log.
   */
  segmentEnd(offset: bigint): bigint | undefined {
    if (offset < this.logStartOffset || offset >= this.#nextOffset) return undefined;
    return this.#segmentFor(offset).nextOffset;
  }

  /**
   * First offset whose record timestamp is >= `timestamp` (ListOffsets by time), with that
   * record's timestamp; compressed batches are opened (within maxUncompressedBatchBytes), as
   * Kafka does. Null when no such record exists.
   */
  async offsetForTimestamp(timestamp: bigint): Promise<{ offset: bigint; timestamp: bigint } | null> {
    const start = this.logStartOffset;
    for (const seg of [...this.#segments]) {
      if (seg.isEmpty || seg.maxTimestamp < timestamp || seg.nextOffset <= start) continue;
      if (!seg.acquire()) continue;
      try {
        const index = await seg.ensureIndex();
        const rel = index.lookupTimestamp(Number(timestamp));
        const startPos = index.lookupPosition(rel);
        let hit: { h: BatchHeader; pos: number; size: number } | undefined;
        await seg.scanHeaders(startPos, seg.sizeBytes, (h, pos, size) => {
          if (h.maxTimestamp < timestamp || lastOffsetOf(h) < start) return true;
          hit = { h, pos, size };
          return false;
        });
        if (hit === undefined) continue;
        const { h, pos, size } = hit;
        const found = timestampHitIn(h, opensRecordsForTimestamp(h.attributes) ? await seg.read(pos, size) : undefined, timestamp, this.options.maxUncompressedBatchBytes);
        // A batch straddling the log start: nothing below it is served.
        return found.offset < start ? { offset: start, timestamp: found.timestamp } : found;
      } finally {
        seg.release();
      }
    }
    return null;
  }

  /**
   * Deletes the oldest sealed segments that exceed the time or size retention, stopping at
   * the first one a guard vetoes (the log stays a contiguous range). Returns what it deleted.
   */
  async applyRetention(now = Date.now()): Promise<SegmentInfo[]> {
    if (this.#retentionRunning || this.#closed || this.#truncatingTo !== undefined) return [];
    this.#retentionRunning = true;
    const deleted: SegmentInfo[] = [];
    try {
      const { retentionBytes, retentionMs } = this.options;
      let total = this.sizeBytes;
      while (this.#segments.length > 1 && this.#segments[0].sealed) {
        const seg = this.#segments[0];
        const byTime = retentionMs >= 0 && seg.maxTimestamp >= 0n && Number(seg.maxTimestamp) < now - retentionMs;
        const bySize = retentionBytes >= 0 && total - seg.sizeBytes >= retentionBytes;
        const byDeleteRecords = seg.nextOffset <= this.#deletedBefore;
        if (!byTime && !bySize && !byDeleteRecords) break;
        const info = seg.info();
        let vetoed = false;
        for (const guard of this.#guards) {
          if (!(await guard(info))) {
            vetoed = true;
            break;
          }
        }
        if (vetoed) {
          this.#log?.debug({ dir: this.dir, baseOffset: String(seg.baseOffset) }, 'retention deferred by a guard');
          break;
        }
        // A guard may be asynchronous: the segment must still be the oldest one, and sealed
        // (a truncation that began meanwhile may be cutting it).
        if (this.#segments[0] !== seg || this.#closed || !seg.sealed || this.#segments.length < 2 || this.#truncatingTo !== undefined) break;
        this.#segments.shift();
        this.#trimEpochs();
        total -= seg.sizeBytes;
        deleted.push(info);
        await seg.delete();
        this.#log?.info(
          { dir: this.dir, baseOffset: String(info.baseOffset), nextOffset: String(info.nextOffset), bytes: info.sizeBytes, reason: byDeleteRecords ? 'delete-records' : byTime ? 'time' : 'size' },
          'retention deleted segment',
        );
      }
    } finally {
      this.#retentionRunning = false;
    }
    return deleted;
  }

  /**
   * Deletes the oldest segment if it is sealed, not the only one, starts at `baseOffset`
   * and no retention guard vetoes it (tiered storage removing a local copy it has
   * offloaded). Returns whether it did; the log start moves to the next segment.
   */
  async deleteOldestSegment(baseOffset: bigint): Promise<boolean> {
    const seg = this.#segments[0];
    if (this.#closed || this.#truncatingTo !== undefined || this.#segments.length < 2 || !seg.sealed || seg.baseOffset !== baseOffset) return false;
    // The guards hold for this deletion too (geo-replication's dedup snapshot, say).
    const info = seg.info();
    for (const guard of this.#guards) if (!(await guard(info))) return false;
    if (this.#segments[0] !== seg || this.#closed || !seg.sealed || this.#segments.length < 2 || this.#truncatingTo !== undefined) return false;
    this.#segments.shift();
    this.#trimEpochs();
    await seg.delete();
    return true;
  }

  /** Periodic housekeeping: the age rule for rolling, then retention. */
  async maintain(now = Date.now()): Promise<SegmentInfo[]> {
    if (this.#closed || this.#failure) return [];
    if (this.#active.assignedBytes > 0 && now - this.#active.createdAtMs >= this.options.segmentMs) await this.roll();
    return this.applyRetention(now);
  }

  /** Drains pending writes, makes them durable and closes the files. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#failure) {
      await new Promise<void>((resolve) => this.#enqueue({ kind: 'flush', resolve, reject: () => resolve() }));
    }
    await this.#writerDone;
    await this.#syncerDone;
    await this.#sealing;
    // A truncation under way finishes (or fails) before its files close.
    await this.#truncations;
    // Everything is in the segments now: the journal's records of this log are void (its
    // directory may be deleted, and a topic of the same name created, after this).
    if (!this.#failure && this.#journal !== undefined) await this.#journalBarrier(`closing ${this.dir}`).catch((err: unknown) => this.#log?.warn({ err, dir: this.dir }, 'journal barrier at close failed'));
    await this.#epochs.settled();
    await this.#fence?.settled();
    // Everything is durable now: no offset past the end can be lost, so a restart after a
    // power loss has nothing to skip. (Left behind, the fence only costs a gap.)
    if (!this.#failure && !this.#fillOwed) this.#fence?.remove();
    for (const seg of this.#segments) await seg.close();
    this.#tail.clear();
    if (this.#ownScheduler) this.#scheduler.close();
  }

  // -- internals --------------------------------------------------------------------------

  #checkOpen(): void {
    if (this.#failure) throw this.#failure;
    if (this.#closed) throw new MeridianError(ErrorCode.LogClosed, `log ${this.dir} is closed`, { retriable: true });
  }

  #checkWritable(): void {
    this.#checkOpen();
    if (this.#truncatingTo !== undefined) {
      throw new MeridianError(ErrorCode.LogClosed, `log ${this.dir} is being truncated to offset ${this.#truncatingTo}; try again once it completes`, { retriable: true });
    }
  }

  #maybeRoll(incoming: number): void {
    const a = this.#active;
    if (a.assignedBytes === 0) return;
    if (a.assignedBytes + incoming > this.options.segmentBytes || Date.now() - a.createdAtMs >= this.options.segmentMs) this.#rollNow();
  }

  #rollNow(onSealed?: () => void): void {
    const old = this.#active;
    // Planned only: the writer creates the file (and fsyncs the directory) off the event loop.
    const seg = Segment.plan(this.#ctx, this.dir, this.#nextOffset);
    this.#segments.push(seg);
    this.#active = seg;
    this.#enqueue({ kind: 'seal', segment: old, next: seg, resolve: onSealed });
  }

  #segmentFor(offset: bigint): Segment {
    const segs = this.#segments;
    let lo = 0;
    let hi = segs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (segs[mid].baseOffset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return segs[lo];
  }

  /**
   * Reads the batches for a fetch in (usually) one pread: a window from the index entry at
   * or before `offset`, sized for the budget plus the sparse-index slack, sliced without a
   * copy. Only a first batch larger than the window costs a second read.
   */
  async #readRange(seg: Segment, offset: bigint, maxBytes: number, limit: bigint, pool?: BufferPool): Promise<{ records: Buffer; position: number; pooled?: Buffer } | null> {
    const startPos = (await seg.ensureIndex()).lookupPosition(Number(offset - seg.baseOffset));
    const end = seg.sizeBytes;
    const windowBytes = Math.min(end - startPos, maxBytes + 2 * this.options.indexIntervalBytes + 64 * 1024);
    const pooled = pool?.acquire(windowBytes);
    const win = await seg.read(startPos, windowBytes, pooled?.subarray(0, windowBytes));
    const { start, length, next } = selectBatchRange(win, offset, maxBytes, limit);
    if (start >= 0 && start + length <= win.length) return { records: win.subarray(start, start + length), position: startPos + start, pooled };
    if (pooled) pool!.release(pooled);
    if (start >= 0) return { records: await seg.read(startPos + start, length), position: startPos + start };
    // The window ended before the batch holding `offset` (batches much larger than the
    // index interval): fall back to scanning headers.
    if (startPos + next >= end) return null;
    return this.#scanRange(seg, startPos + next, offset, maxBytes, limit);
  }

  /**
   * Returns the batches of a read from a sealed segment whose CRC-32C holds, checking each
   * byte once per process (VerifiedRanges). Batches before the first corrupt one are
   * served; a corrupt first batch is reported (log line, `corruptReads`) and refused with
   * CORRUPT_LOG, never handed to a consumer or a replicator.
   */
  #checkCrcs(seg: Segment, position: number, records: Buffer): Buffer {
    let ranges = this.#verified.get(seg);
    if (ranges === undefined) {
      ranges = new VerifiedRanges();
      this.#verified.set(seg, ranges);
    }
    if (ranges.covers(position, position + records.length)) return records;
    let p = 0;
    while (p + BATCH_HEADER_BYTES <= records.length) {
      const size = records.readInt32BE(p + 8) + LOG_OVERHEAD;
      if (size < BATCH_HEADER_BYTES || p + size > records.length || records[p + 16] !== 2) break;
      if (computeBatchCrc(records.subarray(p, p + size)) !== records.readUInt32BE(p + 17)) break;
      p += size;
    }
    this.#stats.bytesCrcChecked += p;
    if (p > 0) ranges.add(position, position + p);
    if (p === records.length) return records;
    this.#stats.corruptReads++;
    const at = position + p;
    this.#events.error(`corrupt:${seg.baseOffset}:${at}`, { dir: this.dir, segment: seg.logPath, position: at }, 'corrupt batch in a sealed segment (CRC-32C mismatch); it is not served');
    if (p > 0) return records.subarray(0, p);
    throw new MeridianError(ErrorCode.CorruptLog, `the batch at byte ${at} of ${seg.logPath} fails its CRC-32C check; it is not served (the segment needs repair or restore from a replica or the object store)`);
  }

  async #scanRange(seg: Segment, fromPos: number, offset: bigint, maxBytes: number, limit: bigint): Promise<{ records: Buffer; position: number } | null> {
    const range = new BatchRange(offset, maxBytes, limit);
    await seg.scanHeaders(fromPos, seg.sizeBytes, (h, pos, size) => range.offer(pos, size, h.baseOffset, lastOffsetOf(h)));
    return range.found ? { records: await seg.read(range.start, range.length), position: range.start } : null;
  }

  #enqueue(item: QueueItem): void {
    this.#queue.push(item);
    if (!this.#writing) {
      this.#writing = true;
      this.#writerDone = this.#writer();
    }
  }

  /** The scheduler's callback, `flushIntervalMs` after the log became dirty. */
  #flushDue(): void {
    this.#flushScheduled = false;
    if (this.#dirty.size > 0 && !this.#failure && !this.#closed) this.#enqueue({ kind: 'flush', resolve: () => {}, reject: () => {} });
  }

  #markDirty(seg: Segment): void {
    this.#dirty.add(seg);
    if (this.#flushScheduled || this.#closed) return;
    this.#flushScheduled = true;
    this.#scheduler.schedule(this.options.flushIntervalMs, () => this.#flushDue());
  }

  /** What a checkpoint taken now would say of `seg` once everything written to it is synced. */
  #pointOf(seg: Segment): RecoveryPoint {
    return {
      baseOffset: seg.baseOffset,
      position: seg.sizeBytes,
      nextOffset: seg.nextOffset,
      dataCrc32c: seg.dataCrc32c,
      maxTimestamp: Number(seg.maxTimestamp),
      lastBatchPos: seg.lastBatchPos,
      lastBatchCrc: seg.lastBatchCrc,
    };
  }

  async #writer(): Promise<void> {
    // Let the appends of the current tick join the first round.
    await new Promise<void>((r) => setImmediate(r));
    while (this.#queue.length > 0 && !this.#failure) {
      const items = this.#queue;
      this.#queue = [];
      try {
        await this.#writeRound(items);
      } catch (err) {
        this.#fail(err, items);
      }
    }
    this.#writing = false;
  }

  /**
   * Writes one round of queued items in order. The items before a failing write are
   * finished as usual (they are on disk); the failing one and everything after it go to
   * #writeFailed.
   */
  async #writeRound(items: QueueItem[]): Promise<void> {
    let i = 0;
    let failure: unknown;
    try {
      while (i < items.length) {
        const item = items[i];
        if (item.kind === 'append') {
          // One pwritev for the run of appends that target the same segment.
          let j = i;
          const bufs: Buffer[] = [];
          while (j < items.length) {
            const it = items[j];
            if (it.kind !== 'append' || it.segment !== item.segment) break;
            bufs.push(...it.batches);
            j++;
          }
          const seg = item.segment;
          for (let k = i; k < j; k++) {
            const before = (items[k] as AppendItem).before;
            // Unwrapped so that a full disk rewinds the appends as a failed write does.
            if (before !== undefined) await before.catch((err: unknown) => Promise.reject((err as Error).cause ?? err));
          }
          const at = seg.sizeBytes;
          let pos = at;
          let length = 0;
          for (const b of bufs) length += b.length;
          // Only a run of appends that wait for durability: the journal reads their batches
          // after this round, and an append answered at its write may have had its buffer
          // (a pooled request frame) reused by then.
          const journaled =
            this.#journal !== undefined &&
            length <= JOURNAL_MAX_ROUND_BYTES &&
            this.#journalDebt + length <= JOURNAL_MAX_LOG_DEBT_BYTES &&
            allSync(items, i, j) &&
            this.#journal.sharing(this.#journalName);
          // A journaled round only needs the page cache: written on this thread, it skips
          // the I/O pool's round trip, which cost the event loop more than the write.
          this.#stats.bytesWritten += (journaled ? seg.writeNow(this.#io, bufs, pos) : undefined) ?? (await seg.write(this.#io, bufs, pos));
          this.#stats.writes++;
          this.#stats.appends += j - i;
          this.#stats.batches += bufs.length;
          const bases: bigint[] = new Array(bufs.length);
          for (let k = 0; k < bufs.length; k++) {
            const b = bufs[k];
            seg.dataCrc32c = crc32c(b, seg.dataCrc32c);
            const h = readBatchHeader(b);
            bases[k] = h.baseOffset;
            seg.recordBatch(pos, h.baseOffset, lastOffsetOf(h), h.maxTimestamp, b.length, this.options.indexIntervalBytes, h.crc, h);
            pos += b.length;
          }
          this.#tail.written(seg, at, bufs, bases);
          seg.sizeBytes = pos;
          if (journaled) {
            this.#journalRuns.push({ segment: seg, position: at, batches: bufs });
            this.#journaled.add(seg);
            this.#journalDebt += length;
          } else {
            this.#markDirty(seg);
          }
          this.#writtenEnd = (items[j - 1] as AppendItem).lastOffset + 1n;
          i = j;
        } else {
          if (item.kind === 'seal') {
            // The next segment's file exists before the old one seals (its directory entry
            // is made durable beside the first writes: Segment.sync waits for it); the seal
            // itself runs behind the writer, so a roll does not hold up the appends after it.
            await item.next.ensureCreated();
            this.#sealing = this.#sealing.then(() => this.#sealInBackground(item));
          }
          i++;
        }
      }
    } catch (err) {
      failure = err;
    }
    const done = i === items.length ? items : items.slice(0, i);
    const written = this.#writtenEnd;
    for (const l of this.#appendListeners) this.#notify(l, written);
    for (const it of done) {
      if (it.kind === 'seal') continue; // settled by #sealInBackground
      if (it.kind === 'flush' || it.sync) this.#syncWaiters.push(it);
      else it.resolve({ baseOffset: it.baseOffset, lastOffset: it.lastOffset });
    }
    if (i < items.length) await this.#writeFailed(failure, items.slice(i));
    if (this.#syncWaiters.length > 0 && !this.#syncing && !this.#failure) {
      this.#syncing = true;
      this.#syncerDone = this.#syncer();
    }
  }

  /** A listener's exception is logged; it never fails the write path. */
  #notify<T>(listener: (arg: T) => void, arg: T): void {
    try {
      listener(arg);
    } catch (err) {
      this.#log?.warn({ err, dir: this.dir }, 'partition log listener failed');
    }
  }

  /**
   * Seals a rolled segment, one at a time in roll order, while the writer goes on with the
   * next segment: nothing writes to a rolled segment again, and its data's durability for
   * acknowledgements is the syncer's business (it is in the dirty set like any other), so
   * only the sealed flag, the index file and the seal listeners wait for this. Out of space
   * for the index is retried (the disk-full rule: it clears when space is freed) until the
   * log closes; the segment then stays unsealed, which recovery completes at the next open.
   * Any other failure takes the log offline, as a failed write would.
   */
  async #sealInBackground(item: SealItem): Promise<void> {
    const seg = item.segment;
    for (let attempt = 0; ; attempt++) {
      if (this.#failure || this.#closed) {
        item.resolve?.();
        return;
      }
      try {
        await this.#seal(seg);
        break;
      } catch (err) {
        if (!(err instanceof SyncFailure) && isOutOfSpace(err)) {
          if (attempt === 0) this.#log?.warn({ err, dir: this.dir, segment: String(seg.baseOffset) }, 'disk full: sealing a rolled segment (its index) waits for space; appends are not held up');
          await new Promise((r) => setTimeout(r, SEAL_RETRY_MS));
          continue;
        }
        this.#fail(err instanceof SyncFailure ? err.cause : err, []);
        item.resolve?.();
        return;
      }
    }
    this.#dirty.delete(seg);
    this.#journaled.delete(seg);
    item.resolve?.();
    const info = seg.info();
    for (const l of this.#sealedListeners) this.#notify(l, info);
  }

  /** Makes a segment's data and then its index durable; after this it never changes. */
  async #seal(seg: Segment): Promise<void> {
    if (seg.sealed) return;
    try {
      // What the syncer already made durable is not synced again.
      await seg.sync(this.#io);
    } catch (err) {
      throw new SyncFailure(err);
    }
    await seg.writeIndexFile();
    seg.sealed = true;
    // Only the active segment's last header is asked for (batchHeaderAt).
    seg.lastBatchHeader = undefined;
  }

  /**
   * A write (or an index write at seal) failed. Out of space is a condition that clears:
   * the log rewinds to the end of what was written and stays writable, so produce gets a
   * retriable KAFKA_STORAGE_ERROR until space is freed, and then simply works again. Any
   * other failure (EIO: a disk going away; any failed fdatasync) takes the log offline.
   */
  async #writeFailed(err: unknown, failed: QueueItem[]): Promise<void> {
    this.#tail.clear();
    if (err instanceof SyncFailure || !isOutOfSpace(err)) {
      this.#fail(err instanceof SyncFailure ? err.cause : err, failed);
      return;
    }
    try {
      await this.#rewind(err, failed);
    } catch (rewindErr) {
      this.#fail(rewindErr, failed);
    }
  }

  /**
   * Undoes everything assigned past the written end: the appends not written are refused,
   * segments rolled after the first unsealed one (which holds the written end) are removed,
   * that segment becomes the active one again with any partial write cut off, and the next
   * append gets the first offset not written. Nothing of a refused append stays behind, so
   * its retry lands once, at the offsets it would have had.
   */
  async #rewind(cause: unknown, failed: QueueItem[]): Promise<void> {
    const pending = [...failed, ...this.#queue];
    this.#queue = [];
    const error = storageError(`log ${this.dir} is out of space; nothing from offset ${this.#writtenEnd} on was written`, cause);
    // The segment holding the written end: the last one starting at or below it (the one
    // before it may still be sealing in the background, so "the first unsealed" would not do).
    let at = -1;
    this.#segments.forEach((seg, i) => {
      if (seg.baseOffset <= this.#writtenEnd) at = i;
    });
    const keep = this.#segments[at];
    if (keep === undefined || keep.nextOffset !== this.#writtenEnd) {
      throw storageError(`log ${this.dir} cannot rewind after running out of space (written end ${this.#writtenEnd})`, cause);
    }
    // The in-memory state first, in this tick, so appends arriving while the files are cut
    // get offsets after the written end (they queue behind this write round).
    const dropped = this.#segments.splice(at + 1);
    this.#active = keep;
    this.#nextOffset = this.#writtenEnd;
    // An epoch recorded for a refused append starts past the end: it goes with it.
    this.#epochs.truncateFromEnd(this.#nextOffset);
    keep.assignedBytes = keep.sizeBytes;
    for (const seg of dropped) {
      this.#dirty.delete(seg);
      this.#journaled.delete(seg);
    }
    const files = (async () => {
      await keep.truncate(keep.sizeBytes);
      for (const seg of dropped) {
        // Removed before the writer runs again: the next roll creates a segment of the same name.
        await fs.promises.rm(seg.logPath, { force: true });
        await fs.promises.rm(seg.indexPath, { force: true });
        void seg.close();
      }
    })();
    let refused = 0;
    for (const it of pending) {
      if (it.kind === 'append') {
        refused++;
        it.reject(error);
      } else if (it.kind === 'flush') {
        this.#syncWaiters.push(it);
      }
    }
    this.#stats.refusedOutOfSpace += refused;
    // The shared journal holds a second copy of recent small writes: it gives that space
    // back, so the producer's retry finds it.
    this.#journal?.giveBackSpace();
    await files;
    this.#events.warn('out-of-space', { dir: this.dir, refusedAppends: refused, nextOffset: String(this.#nextOffset), err: (cause as Error)?.message }, 'disk full: appends refused with KAFKA_STORAGE_ERROR; the log accepts writes again once space is freed');
  }

  async #syncer(): Promise<void> {
    while (this.#syncWaiters.length > 0 && !this.#failure) {
      const waiters = this.#syncWaiters;
      this.#syncWaiters = [];
      // Every waiter's bytes were written before it was handed over, so syncing the
      // segments dirty now covers all of them.
      const target = this.#writtenEnd;
      const point = this.#pointOf(this.#active);
      let runs = this.#journalRuns;
      const segs = [...this.#dirty];
      this.#dirty.clear();
      // A flush (a truncation, a reset, close) wants everything in the segments themselves,
      // and so does a log past its journal debt (a round went to its own segment): the
      // runs pending for the journal are then covered by this fdatasync too.
      const payDebt = this.#journalDebt >= JOURNAL_MAX_LOG_DEBT_BYTES / 2 && segs.length > 0;
      if (this.#journaled.size > 0 && (payDebt || waiters.some((w) => w.kind === 'flush'))) {
        for (const seg of this.#journaled) if (!segs.includes(seg)) segs.push(seg);
        this.#journaled.clear();
        this.#journalDebt = 0;
        runs = [];
      }
      if (this.#journalRuns.length > 0) this.#journalRuns = [];
      try {
        if (runs.length === 0) await (this.#journaledSync = this.#syncSegments(segs));
        else if (segs.length === 0) await this.#journalWrite(runs);
        else await Promise.all([this.#syncSegments(segs), this.#journalWrite(runs)]);
      } catch (err) {
        this.#fail(err, waiters);
        break;
      }
      // Not while a truncation is under way: it dropped the point before cutting.
      if (this.#truncatingTo === undefined && point.baseOffset === this.#active.baseOffset) this.#recoveryPoint = point;
      if (target > this.#durableEnd) {
        this.#durableEnd = target;
        for (const l of this.#durableListeners) this.#notify(l, target);
      }
      for (const w of waiters) {
        if (w.kind === 'flush') w.resolve();
        else w.resolve({ baseOffset: w.baseOffset, lastOffset: w.lastOffset });
      }
    }
    this.#syncing = false;
  }

  async #journalBarrier(what: string): Promise<void> {
    if (this.#journal === undefined) return;
    try {
      await this.#journal.barrier(this.#journalName);
    } catch (err) {
      throw storageError(`${what}: the journal could not record it`, err);
    }
  }

  async #syncSegments(segs: Iterable<Segment>): Promise<void> {
    for (const seg of segs) {
      if (!seg.acquire()) continue; // deleted by retention after sealing: already durable
      try {
        await seg.sync(this.#io);
      } finally {
        seg.release();
      }
      this.#stats.fsyncs++;
    }
  }

  /**
   * Makes `runs` durable through the journal (a new segment's directory entry too). Should
   * the journal refuse them (out of space, offline), the segments are fdatasync'd instead:
   * the bytes are in them, so the appends are durable either way.
   */
  async #journalWrite(runs: ReadonlyArray<{ segment: Segment; position: number; batches: Buffer[] }>): Promise<void> {
    if (runs.length === 0) return;
    const journal = this.#journal!;
    // Most rounds are one run into a segment whose directory entry is long durable: one
    // promise to wait for, not a Promise.all per round (issue 15: 10,000 partitions' rounds).
    const entries: Segment[] = [];
    const waits: Promise<void>[] = [];
    for (const r of runs) {
      waits.push(journal.append(this, this.#journalName, r.segment.baseOffset, r.position, r.batches));
      if (entries.includes(r.segment)) continue;
      entries.push(r.segment);
      if (r.segment.entryPending) waits.push(r.segment.entryDurable());
    }
    try {
      await (waits.length === 1 ? waits[0] : Promise.all(waits));
    } catch (err) {
      this.#events.warn('journal-fallback', { err, dir: this.dir }, 'journal refused a write round; its segments are fdatasync\'d instead');
      await this.#syncSegments(entries);
    }
  }

  /**
   * The journal retires a generation: everything this log wrote through it must be durable
   * in the segments themselves. (journal.ts's JournalMember.)
   */
  async syncForJournal(): Promise<void> {
    // Segments the syncer took out of #journaled are durable once its fdatasync returns.
    await this.#journaledSync.catch(() => undefined);
    const segs = [...this.#journaled];
    this.#journaled.clear();
    this.#journalDebt = 0;
    try {
      await this.#syncSegments(segs);
    } catch (err) {
      for (const seg of segs) this.#journaled.add(seg);
      throw err;
    }
  }

  /**
   * After a failed write or fdatasync the state of the page cache is unknown (fsyncgate),
   * so the log goes offline: everything pending and everything after is refused until a
   * restart runs recovery.
   */
  #fail(err: unknown, items: QueueItem[]): void {
    this.#failure = err instanceof MeridianError ? err : storageError(`log ${this.dir} is offline after an I/O error`, err);
    this.#log?.error({ err: this.#failure, dir: this.dir }, 'partition log failed; appends refused until restart');
    this.#fence?.distrust();
    for (const it of [...items, ...this.#queue, ...this.#syncWaiters]) {
      if (it.kind === 'append' || it.kind === 'flush') it.reject(this.#failure);
      else it.resolve?.();
    }
    this.#queue = [];
    this.#syncWaiters = [];
  }
}
