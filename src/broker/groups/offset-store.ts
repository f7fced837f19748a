/**
 * Committed consumer-group offsets, durable before they are acknowledged.
 *
 * Files in `dir` (codec in offset-record.ts):
 *   offsets.snapshot        every group's latest offsets when generation G began (optional)
 *   offsets-<G>.log         framed records appended since that snapshot
 * On open the snapshot is loaded and `offsets-<G>.log` replayed on top; a torn or corrupt
 * tail of the log (a crash mid-write) is cut at the first bad frame. Logs of any other
 * generation were folded into the snapshot, or never continued it, and are deleted.
 *
 * Concurrency: `commit` encodes its record and queues it synchronously, so records reach the
 * log in call order. One loop takes everything queued, writes it with one pwritev, issues one
 * fdatasync, then applies the records to memory and resolves them all: commits that arrive
 * while an fdatasync runs share the next one (group commit, as in storage/partition-log.ts).
 * Memory is updated only after the fdatasync, so a fetch never sees an offset that a crash
 * could take back.
 *
 * Compaction runs inside the same loop, between rounds, when the log outgrows both the
 * threshold and the last snapshot (so rewriting a large state costs at most 2x the log):
 * create the empty `offsets-<G+1>.log`, write the snapshot for G+1 to a temp file, fsync,
 * rename it over `offsets.snapshot`, fsync the directory, then switch to the new log and
 * delete the old one. Until the rename the old pair is authoritative; after it the new pair
 * is, and the old log only repeats what the snapshot holds.
 *
 * After a failed write, fdatasync or snapshot rename the store goes offline and refuses
 * every commit until a restart replays the files: after a failed fsync the page cache's
 * state is unknown (fsyncgate).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../../errors.js';
import { closeAsync, fdatasyncAsync, isOutOfSpace, storageError, writevFully } from '../../storage/fs-util.js';
import {
  MAX_FRAME_BODY_BYTES,
  RecordType,
  decodeFrames,
  decodeSnapshot,
  encodeRecord,
  encodeSnapshot,
  type OffsetRecord,
  type PartitionCommit,
  type TopicPartitions,
} from './offset-record.js';
import { fsyncDir, writeFileDurable } from './durable-file.js';

const openAsync = promisify(fs.open);
const fsyncAsync = promisify(fs.fsync);
const ftruncateAsync = promisify(fs.ftruncate);

/** Codes of this module's own errors (the shared ones come from errors.ts). */
export const OffsetStoreErrorCode = {
  QueueFull: 'OFFSET_QUEUE_FULL',
  CorruptSnapshot: 'CORRUPT_OFFSET_SNAPSHOT',
} as const;

export interface CommittedOffset {
  readonly offset: bigint;
  readonly leaderEpoch: number;
  readonly metadata: string | null;
  readonly commitTimestamp: number;
}

export interface OffsetStoreOptions {
  dir: string;
  logger?: Logger;
  /** Compact once the log is past this many bytes and past the last snapshot's size. */
  compactThresholdBytes?: number;
  /** Bytes of records waiting for the disk; a commit beyond it is refused retriably. */
  maxQueuedBytes?: number;
  /** Largest single record (one OffsetCommit request); larger ones are refused. */
  maxRecordBytes?: number;
}

export interface OffsetStoreStats {
  /** Records made durable since open. */
  records: number;
  /** fdatasyncs of the log for those records: fewer than `records` under concurrency. */
  fsyncs: number;
  compactions: number;
  logBytes: number;
  snapshotBytes: number;
  queuedBytes: number;
  groups: number;
  partitions: number;
  /** Bytes of torn or corrupt tail cut from the log when it was opened. */
  truncatedBytesOnOpen: number;
}

type QueueItem =
  | { kind: 'record'; record: OffsetRecord; frame: Buffer; resolve: () => void; reject: (err: Error) => void }
  | { kind: 'compact'; resolve: () => void; reject: (err: Error) => void };

/** One group's committed offsets: topic -> partition -> offset. */
export type GroupOffsets = Map<string, Map<number, CommittedOffset>>;

/**
 * Applies one offset record to `state` (group -> its offsets): commits, topic deletion,
 * group deletion, offset deletion. Other record types (group metadata) change no offset.
 * The file store and a cluster's replicated offsets partition replay through it alike.
 */
export function applyOffsetRecord(state: Map<string, GroupOffsets>, record: OffsetRecord): void {
  switch (record.type) {
    case RecordType.Commit: {
      let topics = state.get(record.groupId);
      if (topics === undefined) state.set(record.groupId, (topics = new Map()));
      for (const c of record.commits) {
        let parts = topics.get(c.topic);
        if (parts === undefined) topics.set(c.topic, (parts = new Map()));
        parts.set(c.partition, { offset: c.offset, leaderEpoch: c.leaderEpoch, metadata: c.metadata, commitTimestamp: c.commitTimestamp });
      }
      break;
    }
    case RecordType.DeleteTopic:
      for (const [groupId, topics] of state) {
        topics.delete(record.topic);
        if (topics.size === 0) state.delete(groupId);
      }
      break;
    case RecordType.DeleteGroup:
      state.delete(record.groupId);
      break;
    case RecordType.DeleteOffsets: {
      const topics = state.get(record.groupId);
      if (topics === undefined) break;
      for (const t of record.topics) {
        const parts = topics.get(t.topic);
        if (parts === undefined) continue;
        for (const p of t.partitions) parts.delete(p);
        if (parts.size === 0) topics.delete(t.topic);
      }
      if (topics.size === 0) state.delete(record.groupId);
      break;
    }
  }
}

const SNAPSHOT_FILE = 'offsets.snapshot';
const LOG_FILE = /^offsets-(\d+)\.log$/;

export class OffsetStore {
  readonly dir: string;
  #log: Logger | undefined;
  #compactThreshold: number;
  #maxQueuedBytes: number;
  #maxRecordBytes: number;
  #state = new Map<string, GroupOffsets>();
  #generation: bigint;
  #fd: number;
  #logBytes: number;
  #snapshotBytes: number;
  #compactAt = 0;
  #queue: QueueItem[] = [];
  #queuedBytes = 0;
  #running = false;
  #loopDone: Promise<void> = Promise.resolve();
  #failure: MeridianError | undefined;
  #closing: Promise<void> | undefined;
  #stats = { records: 0, fsyncs: 0, compactions: 0, truncatedBytesOnOpen: 0 };

  private constructor(options: OffsetStoreOptions, generation: bigint, fd: number, logBytes: number, snapshotBytes: number) {
    this.dir = options.dir;
    this.#log = options.logger;
    this.#compactThreshold = options.compactThresholdBytes ?? 8 * 1024 * 1024;
    this.#maxQueuedBytes = options.maxQueuedBytes ?? 32 * 1024 * 1024;
    this.#maxRecordBytes = Math.min(options.maxRecordBytes ?? 16 * 1024 * 1024, MAX_FRAME_BODY_BYTES);
    this.#generation = generation;
    this.#fd = fd;
    this.#logBytes = logBytes;
    this.#snapshotBytes = snapshotBytes;
    this.#resetCompactAt();
  }

  static async open(options: OffsetStoreOptions): Promise<OffsetStore> {
    const { dir } = options;
    await fsp.mkdir(dir, { recursive: true });
    await fsp.rm(path.join(dir, `${SNAPSHOT_FILE}.tmp`), { force: true });
    let generation = 0n;
    let snapshotBytes = 0;
    let replay: OffsetRecord[] = [];
    const snapshot = await fsp.readFile(path.join(dir, SNAPSHOT_FILE)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw storageError(`reading ${SNAPSHOT_FILE} in ${dir}`, err);
    });
    if (snapshot !== null) {
      const decoded = decodeSnapshot(snapshot);
      // Cutting a damaged snapshot would silently rewind every group; a human decides.
      if ('error' in decoded) throw new MeridianError(OffsetStoreErrorCode.CorruptSnapshot, `${path.join(dir, SNAPSHOT_FILE)}: ${decoded.error}`);
      generation = decoded.generation;
      snapshotBytes = snapshot.length;
      replay = decoded.records;
    }
    const logName = `offsets-${generation}.log`;
    for (const name of await fsp.readdir(dir)) {
      if (LOG_FILE.test(name) && name !== logName) await fsp.rm(path.join(dir, name), { force: true });
    }
    const logPath = path.join(dir, logName);
    let fd: number | undefined;
    let truncated = 0;
    let validBytes: number;
    try {
      fd = await openAsync(logPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
      await fsyncDir(dir); // a log created just now must survive with the commits it will hold
      const content = await fsp.readFile(logPath);
      const decoded = decodeFrames(content);
      validBytes = decoded.validBytes;
      replay = replay.concat(decoded.records);
      if (validBytes < content.length) {
        truncated = content.length - validBytes;
        await ftruncateAsync(fd, validBytes);
        await fsyncAsync(fd);
        options.logger?.warn({ file: logPath, validBytes, cutBytes: truncated }, 'offset log had a torn or corrupt tail; cut it');
      }
    } catch (err) {
      if (fd !== undefined) await closeAsync(fd).catch(() => undefined);
      throw storageError(`opening ${logPath}`, err);
    }
    const store = new OffsetStore(options, generation, fd, validBytes, snapshotBytes);
    for (const record of replay) store.#apply(record);
    store.#stats.truncatedBytesOnOpen = truncated;
    options.logger?.info({ dir, generation: String(generation), groups: store.#state.size, logBytes: validBytes }, 'offset store opened');
    return store;
  }

  /** Durably records `commits` for `groupId`, all or nothing; resolves once fdatasync'd. */
  commit(groupId: string, commits: readonly PartitionCommit[]): Promise<void> {
    if (commits.length === 0) return Promise.resolve();
    return this.#enqueue({ type: RecordType.Commit, groupId, commits });
  }

  /** Forgets every group's offsets for `topic` (the topic was deleted). */
  deleteTopic(topic: string): Promise<void> {
    let present = false;
    for (const topics of this.#state.values()) present ||= topics.has(topic);
    return present ? this.#enqueue({ type: RecordType.DeleteTopic, topic }) : Promise.resolve();
  }

  /** Forgets all offsets of `groupId`. */
  deleteGroup(groupId: string): Promise<void> {
    return this.#state.has(groupId) ? this.#enqueue({ type: RecordType.DeleteGroup, groupId }) : Promise.resolve();
  }

  /**
   * Forgets the offsets of these partitions of `groupId` (OffsetDelete); the group is
   * forgotten with its last offset. Partitions with nothing committed cost no record.
   */
  deleteOffsets(groupId: string, topics: readonly TopicPartitions[]): Promise<void> {
    const committed = this.#state.get(groupId);
    const present = topics
      .map((t) => ({ topic: t.topic, partitions: t.partitions.filter((p) => committed?.get(t.topic)?.has(p) === true) }))
      .filter((t) => t.partitions.length > 0);
    return present.length > 0 ? this.#enqueue({ type: RecordType.DeleteOffsets, groupId, topics: present }) : Promise.resolve();
  }

  /** Compacts now (normally automatic); resolves when the new snapshot is in place. */
  compact(): Promise<void> {
    if (this.#closing !== undefined) return Promise.reject(new MeridianError(ErrorCode.LogClosed, 'offset store is closed'));
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#queue.push({ kind: 'compact', resolve, reject });
      this.#kick();
    });
  }

  get(groupId: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.#state.get(groupId)?.get(topic)?.get(partition);
  }

  /** Every committed offset of `groupId` by topic and partition. */
  offsetsOf(groupId: string): ReadonlyMap<string, ReadonlyMap<number, CommittedOffset>> | undefined {
    return this.#state.get(groupId);
  }

  hasGroup(groupId: string): boolean {
    return this.#state.has(groupId);
  }

  groupIds(): string[] {
    return [...this.#state.keys()];
  }

  stats(): OffsetStoreStats {
    let partitions = 0;
    for (const topics of this.#state.values()) for (const parts of topics.values()) partitions += parts.size;
    return {
      ...this.#stats,
      logBytes: this.#logBytes,
      snapshotBytes: this.#snapshotBytes,
      queuedBytes: this.#queuedBytes,
      groups: this.#state.size,
      partitions,
    };
  }

  /** Idempotent: refuses new records, drains and syncs the queued ones, closes the log. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#loopDone;
      await closeAsync(this.#fd).catch(() => undefined);
    })();
    return this.#closing;
  }

  #enqueue(record: OffsetRecord): Promise<void> {
    if (this.#closing !== undefined) return Promise.reject(new MeridianError(ErrorCode.LogClosed, 'offset store is closed'));
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const frame = encodeRecord(record);
    if (frame.length > this.#maxRecordBytes) {
      return Promise.reject(new MeridianError(ErrorCode.BatchTooLarge, `offset commit record of ${frame.length} bytes exceeds ${this.#maxRecordBytes}`));
    }
    if (this.#queuedBytes + frame.length > this.#maxQueuedBytes) {
      return Promise.reject(new MeridianError(OffsetStoreErrorCode.QueueFull, `${this.#queuedBytes} bytes of offset commits already wait for the disk`, { retriable: true }));
    }
    this.#queuedBytes += frame.length;
    return new Promise((resolve, reject) => {
      this.#queue.push({ kind: 'record', record, frame, resolve, reject });
      this.#kick();
    });
  }

  #kick(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loopDone = this.#loop();
  }

  async #loop(): Promise<void> {
    try {
      while (this.#queue.length > 0 && this.#failure === undefined) {
        const items = this.#queue;
        this.#queue = [];
        const records = items.filter((it) => it.kind === 'record');
        if (records.length > 0) {
          const frames = records.map((r) => r.frame);
          const bytes = frames.reduce((s, f) => s + f.length, 0);
          try {
            await writevFully(this.#fd, frames, this.#logBytes);
          } catch (err) {
            if (!isOutOfSpace(err)) {
              this.#fail(err, items);
              break;
            }
            // A full disk clears once space is freed: cut off the partial write, refuse
            // these commits (retriably) and stay online, as the partition logs do.
            try {
              fs.ftruncateSync(this.#fd, this.#logBytes);
            } catch (truncateErr) {
              this.#fail(truncateErr, items);
              break;
            }
            const refused = storageError(`offset store in ${this.dir} is out of space; the commit was not written`, err);
            this.#queuedBytes -= bytes;
            for (const it of items) it.reject(refused);
            this.#log?.warn({ dir: this.dir, commits: records.length }, 'disk full: offset commits refused; accepted again once space is freed');
            continue;
          }
          try {
            await fdatasyncAsync(this.#fd);
          } catch (err) {
            this.#fail(err, items);
            break;
          }
          this.#logBytes += bytes;
          this.#queuedBytes -= bytes;
          this.#stats.fsyncs++;
          this.#stats.records += records.length;
          for (const r of records) {
            this.#apply(r.record);
            r.resolve();
          }
        }
        const compacts = items.filter((it) => it.kind === 'compact');
        if (compacts.length > 0 || this.#logBytes >= this.#compactAt) {
          try {
            await this.#compact();
            for (const c of compacts) c.resolve();
          } catch (err) {
            for (const c of compacts) c.reject(err as Error);
          }
        }
      }
    } finally {
      this.#running = false;
    }
  }

  async #compact(): Promise<void> {
    const next = this.#generation + 1n;
    const frames: Buffer[] = [];
    for (const [groupId, topics] of this.#state) {
      const commits: PartitionCommit[] = [];
      for (const [topic, parts] of topics) for (const [partition, c] of parts) commits.push({ topic, partition, ...c });
      frames.push(encodeRecord({ type: RecordType.Commit, groupId, commits }));
    }
    const snapshot = encodeSnapshot(next, frames);
    const snapshotPath = path.join(this.dir, SNAPSHOT_FILE);
    const tmpPath = `${snapshotPath}.tmp`;
    const nextLogPath = this.#logPath(next);
    let nextFd: number | undefined;
    try {
      nextFd = await openAsync(nextLogPath, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o644);
      await writeFileDurable(tmpPath, snapshot);
    } catch (err) {
      // Nothing authoritative changed: keep appending to the current log, retry later.
      if (nextFd !== undefined) await closeAsync(nextFd).catch(() => undefined);
      await fsp.rm(nextLogPath, { force: true }).catch(() => undefined);
      await fsp.rm(tmpPath, { force: true }).catch(() => undefined);
      this.#compactAt = this.#logBytes + this.#compactThreshold;
      const failure = storageError(`compacting offsets in ${this.dir}`, err);
      this.#log?.warn({ err: failure }, 'offset compaction failed; continuing on the current log');
      throw failure;
    }
    try {
      await fsp.rename(tmpPath, snapshotPath);
      await fsyncDir(this.dir); // makes both the new log's entry and the rename durable
    } catch (err) {
      await closeAsync(nextFd).catch(() => undefined);
      this.#fail(err, []);
      throw this.#failure;
    }
    const oldFd = this.#fd;
    const oldPath = this.#logPath(this.#generation);
    this.#fd = nextFd;
    this.#generation = next;
    this.#logBytes = 0;
    this.#snapshotBytes = snapshot.length;
    this.#resetCompactAt();
    this.#stats.compactions++;
    await closeAsync(oldFd).catch(() => undefined);
    // A leftover old log is deleted by the next open, so failing here loses nothing.
    await fsp.rm(oldPath, { force: true }).catch(() => undefined);
    this.#log?.debug({ dir: this.dir, generation: String(next), snapshotBytes: snapshot.length }, 'offsets compacted');
  }

  #apply(record: OffsetRecord): void {
    applyOffsetRecord(this.#state, record);
  }


  #fail(err: unknown, items: QueueItem[]): void {
    this.#failure = storageError(`offset store in ${this.dir} is offline after an I/O error`, err);
    this.#log?.error({ err: this.#failure }, 'offset store failed; commits refused until restart');
    for (const it of [...items, ...this.#queue]) it.reject(this.#failure);
    this.#queue = [];
    this.#queuedBytes = 0;
  }

  #resetCompactAt(): void {
    this.#compactAt = Math.max(this.#compactThreshold, this.#snapshotBytes);
  }

  #logPath(generation: bigint): string {
    return path.join(this.dir, `offsets-${generation}.log`);
  }
}
