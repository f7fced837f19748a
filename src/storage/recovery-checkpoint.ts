/**
 * The recovery checkpoint of a data directory (`<dataDir>/recovery-checkpoint.json`), as
 * Kafka's `recovery-point-offset-checkpoint`: for each partition, how much of its active
 * segment is known fdatasync'd (position, next offset, running data CRC, max timestamp,
 * and the last batch there). Recovery after a kill -9 then scans the active segment only
 * past that position: the cost of a restart is the unflushed tail, not the log.
 *
 * Writer: the TopicManager that owns it. A log's durable point moving (`markDirty`) arms
 * one timer (no timer while nothing moves); when it fires, the points of every open log are
 * collected and the file is replaced atomically (temp, fsync, rename, directory fsync, all
 * on the threadpool). `close` writes it once more after the logs closed (a clean shutdown
 * leaves nothing to scan). Writes run one at a time, each from a fresh collection.
 *
 * Why a stale entry is harmless: an entry only says "these bytes were durable", and bytes
 * below a durable position change only by truncation (failback), which first drops the
 * log's point and rewrites this file (`PartitionLog.truncateTo` calls `saveCheckpoint`).
 * Recovery also checks the entry against the file: same topic id, the segment exists and is
 * at least that long, and the batch the entry names ends exactly at the position with the
 * same offsets and stored CRC; any mismatch falls back to a full scan of that segment.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic } from './fs-util.js';

export const RECOVERY_CHECKPOINT_FILE = 'recovery-checkpoint.json';
/** Time between a durable point moving and the checkpoint being written. */
export const CHECKPOINT_INTERVAL_MS = 5_000;

/** How much of a partition's active segment is durable, and what recovery needs to resume there. */
export interface RecoveryPoint {
  readonly baseOffset: bigint;
  readonly position: number;
  readonly nextOffset: bigint;
  readonly dataCrc32c: number;
  readonly maxTimestamp: number;
  /** Byte position and stored CRC-32C of the last batch before `position` (-1: none). */
  readonly lastBatchPos: number;
  readonly lastBatchCrc: number;
}

interface Entry {
  topicId: string;
  base: string;
  position: number;
  next: string;
  crc: number;
  maxTs: number;
  lastPos: number;
  lastCrc: number;
}

interface CheckpointFile {
  version: 1;
  partitions: Record<string, Entry>;
}

/** One partition's point, named by its directory (PartitionFiles.dirName) and topic id. */
export interface NamedPoint {
  readonly dirName: string;
  readonly topicId: string;
  readonly point: RecoveryPoint;
}

export class RecoveryCheckpoint {
  readonly file: string;
  #entries: Record<string, Entry>;
  #collect: () => Iterable<NamedPoint>;
  #log: Logger | undefined;
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  #writes = 0;

  private constructor(file: string, entries: Record<string, Entry>, collect: () => Iterable<NamedPoint>, logger?: Logger) {
    this.file = file;
    this.#entries = entries;
    this.#collect = collect;
    this.#log = logger;
  }

  /**
   * Reads the checkpoint of `dataDir` (none: every active segment is scanned whole). An
   * unreadable file is logged and ignored: it only costs a longer recovery.
   */
  static read(dataDir: string, collect: () => Iterable<NamedPoint>, logger?: Logger): RecoveryCheckpoint {
    const file = path.join(dataDir, RECOVERY_CHECKPOINT_FILE);
    let entries: Record<string, Entry> = {};
    try {
      const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as CheckpointFile;
      if (parsed.version === 1 && typeof parsed.partitions === 'object' && parsed.partitions !== null) entries = parsed.partitions;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger?.warn({ err, file }, 'recovery checkpoint unreadable; active segments are scanned whole');
    }
    return new RecoveryCheckpoint(file, entries, collect, logger);
  }

  /** The point recorded for a partition directory of the topic with this id, as read at open. */
  get(dirName: string, topicId: string): RecoveryPoint | undefined {
    const e = this.#entries[dirName];
    if (e === undefined || e.topicId !== topicId) return undefined;
    try {
      return {
        baseOffset: BigInt(e.base),
        position: e.position,
        nextOffset: BigInt(e.next),
        dataCrc32c: e.crc,
        maxTimestamp: e.maxTs,
        lastBatchPos: e.lastPos,
        lastBatchCrc: e.lastCrc,
      };
    } catch {
      return undefined;
    }
  }

  /** Checkpoint files written since open. */
  get writes(): number {
    return this.#writes;
  }

  /** A durable point moved: write the checkpoint within CHECKPOINT_INTERVAL_MS. */
  markDirty(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.writeNow().catch((err) => this.#log?.warn({ err, file: this.file }, 'recovery checkpoint write failed; the next restart scans more'));
    }, CHECKPOINT_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Writes the points of every open log now (after any write in flight). */
  writeNow(): Promise<void> {
    const run = this.#chain.then(() => this.#write());
    this.#chain = run.catch(() => {});
    return run;
  }

  async #write(): Promise<void> {
    const partitions: Record<string, Entry> = {};
    for (const { dirName, topicId, point: p } of this.#collect()) {
      partitions[dirName] = {
        topicId,
        base: String(p.baseOffset),
        position: p.position,
        next: String(p.nextOffset),
        crc: p.dataCrc32c,
        maxTs: p.maxTimestamp,
        lastPos: p.lastBatchPos,
        lastCrc: p.lastBatchCrc,
      };
    }
    const file: CheckpointFile = { version: 1, partitions };
    await writeFileAtomic(this.file, JSON.stringify(file));
    this.#writes++;
  }

  /** Stops the timer and writes the final checkpoint (call after the logs closed). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.writeNow();
  }
}
