/**
 * Topics of one broker and the partition logs behind them, with the topic metadata kept in
 * the data directory (`topics.json`, replaced atomically): the embedded default, needing no
 * external service.
 *
 * Layout:  <dataDir>/topics.json
 *          <dataDir>/logs/<topic>-<partition>/<segments>
 *
 * Ordering makes both operations crash-safe: create makes the partition directories before
 * it records the topic; delete forgets the topic before it removes the directories. So on
 * open, a log directory of no known topic is leftover work and is removed.
 *
 * Shared by every log (issue 15, 10,000 partitions on one broker): one FlushScheduler (the
 * interval fdatasync of dirty logs, one timer), one FdCache (segment descriptors bounded by
 * `log.maxOpenFiles`, `openFiles()`), and the data directory's RecoveryCheckpoint (how much
 * of each active segment is durable, so that a restart after kill -9 scans only the rest).
 *
 * Lifecycle: `open` opens every partition log (running recovery); `startMaintenance` runs
 * the age roll and retention on a timer; `close` stops the timer, closes every log and
 * writes the recovery checkpoint once more.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import { writeFileAtomic } from './fs-util.js';
import { PartitionFiles } from './partition-files.js';
import { PartitionLog, type LogOptions, type LogResources } from './partition-log.js';
import { JOURNAL_DIR, LogJournal, removeJournalSpares, replayJournal, type ReplayResult } from './journal.js';
import { DEFAULT_MAX_OPEN_FILES, FdCache } from './fd-cache.js';
import { DEFAULT_TAIL_CACHE_BYTES, TailCacheBudget } from './tail-cache.js';
import { FlushScheduler } from './flush-scheduler.js';
import { RecoveryCheckpoint, type NamedPoint } from './recovery-checkpoint.js';
import type { RecoveryStats } from './log-recovery.js';
import type { SegmentInfo } from './segment.js';

export interface TopicInfo {
  readonly name: string;
  readonly id: string;
  readonly partitions: number;
  readonly createdAt: string;
  /** Per-topic overrides of the broker's defaults. */
  readonly config: TopicConfig;
}

/**
 * What a topic may override (set through CreateTopics configs, Kafka's names in
 * topic-config.ts): the log options, and the tiered-storage policy of the topic.
 */
export type TopicConfig = Partial<LogOptions> & {
  /** Kafka remote.storage.enable: false keeps this topic out of tiered storage. */
  remoteStorage?: boolean;
  /** Kafka local.retention.bytes: offloaded bytes kept locally (-1 keep all). */
  localRetentionBytes?: number;
  /** Kafka local.retention.ms. */
  localRetentionMs?: number;
  /**
   * Kafka message.timestamp.type: LogAppendTime stamps every appended batch with the
   * broker's clock; CreateTime (the default) keeps the producer's timestamps.
   */
  timestampType?: 'CreateTime' | 'LogAppendTime';
};

function logOptionsOf(config: TopicConfig): Partial<LogOptions> {
  const { remoteStorage: _r, localRetentionBytes: _b, localRetentionMs: _m, timestampType: _t, ...log } = config;
  return log;
}

interface TopicsFile {
  version: 1;
  topics: TopicInfo[];
}

const TOPICS_FILE = 'topics.json';
const LOGS_DIR = 'logs';
const MAX_PARTITIONS = 10_000;
/** Topics whose partitions open at once when the broker starts. */
const OPEN_CONCURRENCY = 8;
/**
 * The longest a created topic waits for creations queued behind it before topics.json is
 * written anyway (group commit; a steady stream of creations still gets written).
 */
const PERSIST_MAX_DELAY_MS = 200;

/** Kafka's rule: 1-249 characters of [a-zA-Z0-9._-], and not "." or "..". */
export function validateTopicName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > 249 || !/^[a-zA-Z0-9._-]+$/.test(name) || name === '.' || name === '..') {
    throw new MeridianError(
      ErrorCode.InvalidTopic,
      `invalid topic name ${JSON.stringify(name)}: use 1 to 249 characters of letters, digits, '.', '_' and '-' (not "." or "..")`,
    );
  }
}

export type SealedListener = (topic: string, partition: number, segment: SegmentInfo) => void;
export type TopicListener = (event: 'created' | 'deleted', topic: TopicInfo) => void;
/** A topic grew (CreatePartitions, or a replication handshake): partitions `from`..`topic.partitions - 1` are new. */
export type PartitionsAddedListener = (topic: TopicInfo, from: number) => void;
/** A topic's overrides changed (AlterConfigs): `topic` holds the new ones. */
export type TopicConfigListener = (topic: TopicInfo, previous: TopicConfig) => void;
/**
 * May refuse truncating a partition to `offset` by throwing a MeridianError (tiered storage:
 * the bucket already holds offsets at or past it). Synchronous: it runs once up front and
 * again in the same tick as the truncation's changes (PartitionLog.truncateTo's `check`).
 */
export type TruncationCheck = (topic: string, partition: number, offset: bigint) => void;

/**
 * The log options a config change applies to a live partition log. PartitionLog reads each
 * of them where it is used (the retention check, the roll decision, batch validation on
 * append), so a new value takes effect at its next use. The others are fixed when a log opens.
 */
const LIVE_LOG_OPTIONS = ['segmentBytes', 'segmentMs', 'maxBatchBytes', 'retentionBytes', 'retentionMs'] as const satisfies ReadonlyArray<keyof LogOptions>;

export class TopicManager {
  readonly dataDir: string;
  #logOptions: LogOptions;
  #log: Logger | undefined;
  #topics = new Map<string, TopicInfo>();
  #logs = new Map<string, PartitionLog[]>();
  #sealedListeners = new Set<SealedListener>();
  #topicListeners = new Set<TopicListener>();
  #growthListeners = new Set<PartitionsAddedListener>();
  #configListeners = new Set<TopicConfigListener>();
  #truncationChecks = new Set<TruncationCheck>();
  #maintenanceTimer: NodeJS.Timeout | undefined;
  #maintaining = false;
  #closed = false;
  /** Serialises create/delete so metadata writes never interleave. */
  #metaChain: Promise<unknown> = Promise.resolve();
  #scheduler: FlushScheduler;
  #files: FdCache;
  #tail: TailCacheBudget;
  #journal: LogJournal | undefined;
  #journalReplay: ReplayResult | undefined;
  #checkpoint: RecoveryCheckpoint;
  #recovery: RecoveryStats = { segments: 0, trustedSealed: 0, scannedSegments: 0, scannedBytes: 0, checkpointUsed: false };
  #checkpointsUsed = 0;
  /** Callers waiting for the next topics.json write (group commit, `#persist`). */
  #persistWaiters: Array<{ resolve: () => void; reject: (err: unknown) => void }> = [];
  /** The write loop while it runs; `close` waits for it. */
  #persisting: Promise<void> | undefined;
  #metadataWrites = 0;
  /** A waiter that must not wait for queued creations (any change but a creation). */
  #persistUrgent = false;
  #persistTimer: NodeJS.Timeout | undefined;
  /** createTopic calls not yet staged (waiting in the metadata queue or opening their logs). */
  #creationsQueued = 0;

  private constructor(dataDir: string, logOptions: LogOptions, logger?: Logger) {
    this.dataDir = dataDir;
    this.#logOptions = logOptions;
    this.#log = logger;
    this.#scheduler = new FlushScheduler((err) => logger?.error({ err }, 'a scheduled flush failed'));
    this.#files = new FdCache(logOptions.maxOpenFiles ?? DEFAULT_MAX_OPEN_FILES);
    this.#tail = new TailCacheBudget(logOptions.tailCacheBytes ?? DEFAULT_TAIL_CACHE_BYTES);
    this.#checkpoint = RecoveryCheckpoint.read(dataDir, () => this.#recoveryPoints(), logger);
  }

  /** Segment file descriptors open now, across every partition (bounded by `log.maxOpenFiles`, softly). */
  openFiles(): number {
    return this.#files.size;
  }

  /**
   * topics.json writes since open. Far fewer than the topics created when many are created
   * at once: they share writes (group commit, `#persist`).
   */
  get metadataWrites(): number {
    return this.#metadataWrites;
  }

  /** The bound on open segment descriptors (`log.maxOpenFiles`). */
  get maxOpenFiles(): number {
    return this.#files.limit;
  }

  /**
   * The shared resources at a glance (for metrics): segment descriptors open, their bound,
   * descriptors closed to stay under it, logs waiting for their interval fdatasync, whether
   * the one flush timer is armed (false when no log is dirty), checkpoint files written.
   */
  resourceStats(): {
    openFiles: number;
    maxOpenFiles: number;
    fdEvictions: number;
    pendingFlushes: number;
    flushTimerArmed: boolean;
    checkpointWrites: number;
    tailCacheBytes: number;
    tailCacheHits: number;
    tailCacheEvictions: number;
    journalRecords: number;
    journalGroups: number;
    journalBytes: number;
    journalRotations: number;
    journalReused: number;
    journalCheckpoints: number;
  } {
    const j = this.#journal?.stats();
    return {
      journalRecords: j?.records ?? 0,
      journalGroups: j?.groups ?? 0,
      journalBytes: j?.bytes ?? 0,
      journalRotations: j?.rotations ?? 0,
      journalReused: j?.reused ?? 0,
      journalCheckpoints: j?.checkpoints ?? 0,
      tailCacheBytes: this.#tail.bytes,
      tailCacheHits: this.#tail.hits,
      tailCacheEvictions: this.#tail.evictions,
      openFiles: this.#files.size,
      maxOpenFiles: this.#files.limit,
      fdEvictions: this.#files.evictions,
      pendingFlushes: this.#scheduler.pending,
      flushTimerArmed: this.#scheduler.armed,
      checkpointWrites: this.#checkpoint.writes,
    };
  }

  /** What the start-up replay of the journal wrote back (storage/journal.ts). */
  get journalReplay(): Readonly<ReplayResult> | undefined {
    return this.#journalReplay;
  }

  /**
   * What the recovery at open cost, summed over the partitions: segments trusted from their
   * index, segments and bytes scanned, and how many partitions resumed at the checkpoint.
   */
  recoveryStats(): Readonly<Omit<RecoveryStats, 'checkpointUsed'> & { partitionsFromCheckpoint: number }> {
    const { checkpointUsed: _c, ...rest } = this.#recovery;
    return { ...rest, partitionsFromCheckpoint: this.#checkpointsUsed };
  }

  *#recoveryPoints(): Iterable<NamedPoint> {
    for (const [name, logs] of this.#logs) {
      const topicId = this.#topics.get(name)?.id;
      if (topicId === undefined) continue;
      for (let p = 0; p < logs.length; p++) {
        const point = logs[p].recoveryPoint;
        if (point !== undefined) yield { dirName: PartitionFiles.dirName(name, p), topicId, point };
      }
    }
  }

  static async open(dataDir: string, logOptions: LogOptions, logger?: Logger): Promise<TopicManager> {
    const tm = new TopicManager(dataDir, logOptions, logger);
    await tm.#load();
    return tm;
  }

  get #topicsFile(): string {
    return path.join(this.dataDir, TOPICS_FILE);
  }

  #partitionDir(topic: string, partition: number): string {
    return path.join(this.dataDir, LOGS_DIR, PartitionFiles.dirName(topic, partition));
  }

  async #load(): Promise<void> {
    const logsDir = path.join(this.dataDir, LOGS_DIR);
    fs.mkdirSync(logsDir, { recursive: true });
    // Before any log opens: what the journal holds goes back into the segments (even with
    // the journal now turned off, a previous run may have left one).
    const journalDir = path.join(this.dataDir, JOURNAL_DIR);
    const replayed = await replayJournal(journalDir, logsDir);
    this.#journalReplay = replayed;
    if (replayed.generations > 0) this.#log?.info({ ...replayed }, 'journal replayed into the segment files');
    if (replayed.tornBytes > 0) this.#log?.warn({ tornBytes: replayed.tornBytes }, 'the journal ended in bytes that are not whole records (a write torn by a crash, or older records of a reused file): nothing after them was acknowledged');
    if (this.#logOptions.journal === true) this.#journal = await LogJournal.open(journalDir, { log: this.#log, io: this.#logOptions.io, minSharingLogs: this.#logOptions.journalMinLogs });
    else await removeJournalSpares(journalDir);
    let file: TopicsFile = { version: 1, topics: [] };
    if (fs.existsSync(this.#topicsFile)) {
      try {
        file = JSON.parse(fs.readFileSync(this.#topicsFile, 'utf8')) as TopicsFile;
      } catch (err) {
        throw new MeridianError(ErrorCode.StorageIo, `topic metadata ${this.#topicsFile} is unreadable: ${(err as Error).message}`, { cause: err });
      }
    } else if (fs.readdirSync(logsDir).some((d) => !PartitionFiles.isDoomed(d))) {
      // Logs without metadata: refuse rather than guess (and never delete them).
      throw new MeridianError(ErrorCode.StorageIo, `${this.#topicsFile} is missing but ${logsDir} holds partition logs; restore the file or move the logs away`);
    }
    const known = new Set<string>();
    for (const t of file.topics) {
      this.#topics.set(t.name, t);
      for (let p = 0; p < t.partitions; p++) known.add(PartitionFiles.dirName(t.name, p));
    }
    for (const d of fs.readdirSync(logsDir)) {
      if (!known.has(d)) {
        this.#log?.warn({ dir: d }, 'removing a partition directory of no known topic (an interrupted create or delete)');
        fs.rmSync(path.join(logsDir, d), { recursive: true, force: true });
      }
    }
    // Topics open OPEN_CONCURRENCY at a time: recovery's reads and fdatasyncs overlap on the
    // threadpool (a restart of 10,000 partitions after a kill -9 syncs thousands of tails).
    const topics = [...this.#topics.values()];
    const opened: PartitionLog[][] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < topics.length) {
        const i = next++;
        opened[i] = await this.#openPartitions(topics[i], [], 0, true);
      }
    };
    await Promise.all(Array.from({ length: OPEN_CONCURRENCY }, worker));
    for (let i = 0; i < topics.length; i++) {
      const logs = opened[i];
      this.#logs.set(topics[i].name, logs);
      for (const log of logs) {
        const r = log.recoveryStats;
        this.#recovery.segments += r.segments;
        this.#recovery.trustedSealed += r.trustedSealed;
        this.#recovery.scannedSegments += r.scannedSegments;
        this.#recovery.scannedBytes += r.scannedBytes;
        if (r.checkpointUsed) this.#checkpointsUsed++;
      }
    }
  }

  /** `recovering`: opened at start-up, where the recovery checkpoint applies. */
  async #openPartitions(t: TopicInfo, startOffsets: readonly bigint[] = [], from = 0, recovering = false): Promise<PartitionLog[]> {
    const opts = { ...this.#logOptions, ...logOptionsOf(t.config) };
    const openOne = async (p: number): Promise<PartitionLog> => {
      const resources: LogResources = {
        scheduler: this.#scheduler,
        files: this.#files,
        tail: this.#tail,
        recoveryPoint: recovering ? this.#checkpoint.get(PartitionFiles.dirName(t.name, p), t.id) : undefined,
        saveCheckpoint: () => this.#checkpoint.writeNow(),
        journal: this.#journal,
        journalName: PartitionFiles.dirName(t.name, p),
      };
      const log = await PartitionLog.open(this.#partitionDir(t.name, p), opts, this.#log, startOffsets[p] ?? 0n, resources);
      log.onSegmentSealed((seg) => {
        for (const l of this.#sealedListeners) l(t.name, p, seg);
      });
      log.onDurable(() => this.#checkpoint.markDirty());
      return log;
    };
    const partitions = Array.from({ length: t.partitions - from }, (_, i) => from + i);
    if (recovering) {
      // At start-up topics already open OPEN_CONCURRENCY at a time (#load).
      const logs: PartitionLog[] = [];
      for (const p of partitions) logs.push(await openOne(p));
      return logs;
    }
    // A new topic's partitions open together: each creates its directory and first segment
    // file and fsyncs the directory, on the I/O pool (one after another, 1,000 topics of 10
    // partitions spent most of their creation time here). If one fails, the others close.
    const opened = await Promise.allSettled(partitions.map(openOne));
    const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const logs = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (failed) {
      await Promise.all(logs.map((l) => l.close().catch(() => {})));
      throw failed.reason;
    }
    return logs;
  }

  /**
   * Makes the topics as they are now durable in topics.json (temp file, fsync, rename,
   * directory fsync, on the threadpool). Group commit: callers that arrive while a write is
   * in flight share the next one, which records everything changed up to its start; so
   * 1,000 topics created together cost a few writes, not 1,000 (each was an fsynced
   * rewrite of the whole file: 40 s for 1,001 topics). Every caller resolves only once a
   * write that started after its change succeeded; a failed write rejects all who shared it.
   */
  #persist(urgent = true): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.#persistWaiters.push({ resolve, reject }));
    if (urgent) this.#persistUrgent = true;
    this.#persistSoon();
    return done;
  }

  /**
   * Starts the write loop unless it runs, or creations are still queued behind the one
   * waiting (they would each need a write of their own a moment later): then the last of
   * them starts it, or the timer after PERSIST_MAX_DELAY_MS, whichever comes first.
   */
  #persistSoon(): void {
    if (this.#persisting !== undefined || this.#persistWaiters.length === 0) return;
    if (!this.#persistUrgent && this.#creationsQueued > 0) {
      this.#persistTimer ??= setTimeout(() => {
        this.#persistTimer = undefined;
        this.#persistUrgent = true;
        this.#persistSoon();
      }, PERSIST_MAX_DELAY_MS);
      return;
    }
    clearTimeout(this.#persistTimer);
    this.#persistTimer = undefined;
    this.#persisting = this.#persistLoop();
  }

  async #persistLoop(): Promise<void> {
    try {
      while (this.#persistWaiters.length > 0) {
        const waiters = this.#persistWaiters.splice(0);
        this.#persistUrgent = false;
        const file: TopicsFile = { version: 1, topics: [...this.#topics.values()] };
        try {
          await writeFileAtomic(this.#topicsFile, JSON.stringify(file, null, 2) + '\n');
          this.#metadataWrites++;
          for (const w of waiters) w.resolve();
        } catch (err) {
          for (const w of waiters) w.reject(err);
        }
        if (!this.#persistUrgent && this.#creationsQueued > 0) break;
      }
    } finally {
      this.#persisting = undefined;
    }
    this.#persistSoon();
  }

  #serialised<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#metaChain.then(fn, fn);
    this.#metaChain = run.catch(() => {});
    return run;
  }

  /**
   * Creates a topic. `restore` recreates one known elsewhere (tiered storage's bucket): it
   * keeps the topic id and starts each partition's log at the given offset.
   */
  createTopic(name: string, partitions: number, config: TopicConfig = {}, restore?: { id: string; startOffsets: readonly bigint[] }): Promise<TopicInfo> {
    // In the metadata queue: the checks, the partition logs and the in-memory entry. The
    // wait for topics.json happens outside it, so the next creation proceeds meanwhile and
    // shares the write (group commit); the caller hears of the topic only once it is durable.
    const stage = async () => {
      this.#checkOpen();
      validateTopicName(name);
      if (!Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
        throw new MeridianError(ErrorCode.InvalidPartitions, `topic ${name}: partition count must be an integer from 1 to ${MAX_PARTITIONS}, got ${partitions}`);
      }
      if (this.#topics.has(name)) throw new MeridianError(ErrorCode.TopicExists, `topic ${name} already exists`);
      const info: TopicInfo = { name, id: restore?.id ?? crypto.randomUUID(), partitions, createdAt: new Date().toISOString(), config };
      const logs = await this.#openPartitions(info, restore?.startOffsets);
      this.#topics.set(name, info);
      this.#logs.set(name, logs);
      const durable = this.#persist(false);
      durable.catch(() => {}); // awaited below; this only keeps an early failure handled
      return { info, logs, durable };
    };
    this.#creationsQueued++;
    const staged = this.#serialised(async () => {
      try {
        return await stage();
      } finally {
        // The last queued creation starts the shared write (or one that fails to stage).
        this.#creationsQueued--;
        this.#persistSoon();
      }
    });
    return staged.then(async ({ info, logs, durable }) => {
      try {
        await durable;
      } catch (err) {
        // Not recorded: forget the topic (unless something replaced it meanwhile); its
        // directories are removed by the next open if they outlive this.
        await this.#serialised(async () => {
          if (this.#topics.get(name) !== info) return;
          this.#topics.delete(name);
          this.#logs.delete(name);
          await Promise.all(logs.map((l) => l.close()));
        });
        throw err;
      }
      this.#log?.info({ topic: name, partitions }, 'topic created');
      for (const l of this.#topicListeners) l('created', info);
      return info;
    });
  }

  deleteTopic(name: string): Promise<void> {
    return this.#serialised(async () => {
      this.#checkOpen();
      const info = this.#topics.get(name);
      if (!info) throw new MeridianError(ErrorCode.UnknownTopic, `topic ${name} does not exist`);
      const logs = this.#logs.get(name) ?? [];
      this.#topics.delete(name);
      this.#logs.delete(name);
      await this.#persist();
      await Promise.all(logs.map((l) => l.close()));
      for (let p = 0; p < info.partitions; p++) {
        const dir = this.#partitionDir(name, p);
        const doomed = PartitionFiles.doomed(dir);
        fs.renameSync(dir, doomed);
        await fs.promises.rm(doomed, { recursive: true, force: true });
      }
      this.#log?.info({ topic: name }, 'topic deleted');
      for (const l of this.#topicListeners) l('deleted', info);
    });
  }

  /**
   * Raises a topic's partition count to `count` (Kafka's CreatePartitions): the new
   * partitions' logs are opened (empty) before topics.json records the new count, so a crash
   * in between leaves directories of no known partition, which the next open removes, as an
   * interrupted create does. A count that is not higher is refused (INVALID_PARTITIONS);
   * `validateOnly` stops after the checks. Existing partitions and their logs are untouched.
   */
  addPartitions(name: string, count: number, opts: { validateOnly?: boolean } = {}): Promise<TopicInfo> {
    return this.#serialised(async () => {
      this.#checkOpen();
      const info = this.#topics.get(name);
      if (!info) throw new MeridianError(ErrorCode.UnknownTopic, `topic ${name} does not exist`);
      if (!Number.isInteger(count) || count > MAX_PARTITIONS) {
        throw new MeridianError(ErrorCode.InvalidPartitions, `topic ${name}: partition count must be an integer up to ${MAX_PARTITIONS}, got ${count}`);
      }
      if (count === info.partitions) throw new MeridianError(ErrorCode.InvalidPartitions, `topic ${name} already has ${count} partitions`);
      if (count < info.partitions) {
        throw new MeridianError(ErrorCode.InvalidPartitions, `topic ${name} has ${info.partitions} partitions, more than the requested ${count}; partitions cannot be removed`);
      }
      const next: TopicInfo = { ...info, partitions: count };
      if (opts.validateOnly) return next;
      const added = await this.#openPartitions(next, [], info.partitions);
      const logs = this.#logs.get(name) ?? [];
      this.#topics.set(name, next);
      this.#logs.set(name, [...logs, ...added]);
      try {
        await this.#persist();
      } catch (err) {
        this.#topics.set(name, info);
        this.#logs.set(name, logs);
        await Promise.all(added.map((l) => l.close()));
        throw err;
      }
      this.#log?.info({ topic: name, from: info.partitions, to: count }, 'partitions added');
      for (const l of this.#growthListeners) l(next, info.partitions);
      return next;
    });
  }

  /** Called after a topic gained partitions (`addPartitions`). */
  onPartitionsAdded(listener: PartitionsAddedListener): () => void {
    this.#growthListeners.add(listener);
    return () => this.#growthListeners.delete(listener);
  }

  getTopic(name: string): TopicInfo | undefined {
    return this.#topics.get(name);
  }

  /** The topic with this id (Kafka's topic ids: Fetch v13+, Metadata v10+, DeleteTopics v6+). */
  getTopicById(id: string): TopicInfo | undefined {
    for (const t of this.#topics.values()) if (t.id === id) return t;
    return undefined;
  }

  listTopics(): TopicInfo[] {
    return [...this.#topics.values()];
  }

  partition(topic: string, partition: number): PartitionLog | undefined {
    return this.#logs.get(topic)?.[partition];
  }

  partitions(topic: string): readonly PartitionLog[] {
    return this.#logs.get(topic) ?? [];
  }

  /** Every sealed segment of every partition, as it is sealed (the offloader subscribes). */
  onSegmentSealed(listener: SealedListener): () => void {
    this.#sealedListeners.add(listener);
    return () => this.#sealedListeners.delete(listener);
  }

  /** Called after a topic is created or deleted. */
  onTopicChange(listener: TopicListener): () => void {
    this.#topicListeners.add(listener);
    return () => this.#topicListeners.delete(listener);
  }

  /**
   * Changes a topic's overrides at run time (AlterConfigs, IncrementalAlterConfigs): `change`
   * gets the topic as it is and returns its new overrides, or throws to refuse. It runs in
   * the metadata queue, so concurrent changes of one topic each see the one before.
   * `validateOnly` stops there. Otherwise the new overrides are recorded in topics.json, then
   * applied to the live partition logs (LIVE_LOG_OPTIONS) and announced to the
   * config listeners (tiered storage).
   */
  updateTopicConfig(name: string, change: (current: TopicInfo) => TopicConfig, opts: { validateOnly?: boolean } = {}): Promise<TopicInfo> {
    return this.#serialised(async () => {
      this.#checkOpen();
      const info = this.#topics.get(name);
      if (!info) throw new MeridianError(ErrorCode.UnknownTopic, `topic ${name} does not exist`);
      const next: TopicInfo = { ...info, config: change(info) };
      if (opts.validateOnly) return next;
      this.#topics.set(name, next);
      try {
        await this.#persist();
      } catch (err) {
        this.#topics.set(name, info);
        throw err;
      }
      const options = { ...this.#logOptions, ...logOptionsOf(next.config) };
      for (const log of this.#logs.get(name) ?? []) {
        for (const key of LIVE_LOG_OPTIONS) log.options[key] = options[key];
      }
      this.#log?.info({ topic: name, config: next.config, previous: info.config }, 'topic config changed');
      for (const l of this.#configListeners) {
        try {
          l(next, info.config);
        } catch (err) {
          this.#log?.error({ err, topic: name }, 'a topic config listener failed');
        }
      }
      return next;
    });
  }

  /**
   * Truncates a partition's log to `offset` (failback: the caller has copied the divergent
   * tail elsewhere; see PartitionLog.truncateTo for the rules, the appends it refuses and
   * what a crash leaves). The one entry point the broker calls: an unknown topic or
   * partition is UNKNOWN_TOPIC, and every truncation check (`addTruncationCheck`) may
   * refuse first. It runs in the metadata queue, so a topic is not deleted or grown under
   * it and `close` waits for it. The owners of per-partition state (producer state, the
   * replication dedup table) follow through `PartitionLog.onTruncated`.
   */
  truncatePartition(topic: string, partition: number, offset: bigint): Promise<void> {
    return this.#serialised(async () => {
      this.#checkOpen();
      const info = this.#topics.get(topic);
      if (!info) throw new MeridianError(ErrorCode.UnknownTopic, `cannot truncate ${topic}/${partition}: topic ${topic} does not exist`);
      const log = Number.isInteger(partition) ? this.#logs.get(topic)?.[partition] : undefined;
      if (log === undefined) {
        throw new MeridianError(ErrorCode.UnknownTopic, `cannot truncate ${topic}/${partition}: topic ${topic} has partitions 0 to ${info.partitions - 1}`);
      }
      const check = (at: bigint) => {
        for (const c of this.#truncationChecks) c(topic, partition, at);
      };
      check(offset);
      const before = log.logEndOffset;
      await log.truncateTo(offset, { check });
      this.#log?.info({ topic, partition, offset: String(offset), previousEnd: String(before) }, 'partition truncated');
    });
  }

  /** Adds a check that may refuse a `truncatePartition` (tiered storage's); returns its remover. */
  addTruncationCheck(check: TruncationCheck): () => void {
    this.#truncationChecks.add(check);
    return () => this.#truncationChecks.delete(check);
  }

  /** Called after a topic's overrides changed (`updateTopicConfig`). */
  onTopicConfigChange(listener: TopicConfigListener): () => void {
    this.#configListeners.add(listener);
    return () => this.#configListeners.delete(listener);
  }

  /** Runs the age roll and retention over every partition every `intervalMs`. */
  startMaintenance(intervalMs: number): void {
    if (this.#maintenanceTimer) return;
    this.#maintenanceTimer = setInterval(() => void this.maintain(), intervalMs);
    this.#maintenanceTimer.unref();
  }

  async maintain(now = Date.now()): Promise<number> {
    if (this.#maintaining || this.#closed) return 0;
    this.#maintaining = true;
    let deleted = 0;
    try {
      for (const logs of [...this.#logs.values()]) {
        for (const log of logs) {
          try {
            deleted += (await log.maintain(now)).length;
          } catch (err) {
            this.#log?.error({ err, dir: log.dir }, 'log maintenance failed');
          }
        }
      }
    } finally {
      this.#maintaining = false;
    }
    return deleted;
  }

  #checkOpen(): void {
    if (this.#closed) throw new MeridianError(ErrorCode.LogClosed, 'topic manager is closed', { retriable: true });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#maintenanceTimer);
    await this.#metaChain;
    // Creations staged before close still get their topics.json write.
    while (this.#persisting !== undefined) await this.#persisting;
    await Promise.all([...this.#logs.values()].flat().map((l) => l.close()));
    // Each log synced its segments and voided its records at close: the next start reads
    // the journal and writes nothing back.
    try {
      await this.#journal?.close();
    } catch (err) {
      this.#log?.warn({ err }, 'journal close failed; the next start replays it');
    }
    this.#scheduler.close();
    // After the logs closed (each flushed): a clean shutdown leaves nothing to scan.
    try {
      await this.#checkpoint.close();
    } catch (err) {
      this.#log?.warn({ err }, 'recovery checkpoint not written at close; the next start scans the active segments whole');
    }
  }
}
