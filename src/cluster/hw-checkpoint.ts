/**
 * The high-watermark checkpoint of one broker (Kafka's replication-offset-checkpoint): the
 * replicated high watermark of every partition it holds a replica of, in
 * `<dataDir>/replication-offset-checkpoint.json`, so that a broker that restarts exposes what
 * was committed before at once. Without it a restarted leader's high watermark starts at
 * its log start and consumers see nothing until every in-sync follower has fetched again;
 * with a follower down, that is until the follower leaves the ISR (replica.lag.time.max.ms).
 *
 * Why the value is safe to expose after a restart: a high watermark only covers records
 * every in-sync replica held, and the leader-epoch truncation protocol never cuts below it
 * (a follower truncates to its leader's epoch end, which is at or past anything committed;
 * unclean election is off). A region-wide truncation (partition-truncate.ts) can cut below
 * it, but it cuts the log first: the loaded value is clamped to the log end, as Kafka does.
 * A checkpoint older than the truth (written every `intervalMs`, so a crash loses up to that
 * much) is merely lower: the high watermark then rises as followers fetch, as before.
 *
 * Keys are the topic id and the partition, so a topic deleted and created again under the
 * same name starts from its log start. A file that does not parse is logged and ignored
 * (every partition starts from its log start, the behaviour without a checkpoint).
 *
 * Writes: one timer per broker, armed when a high watermark moves and not already armed,
 * so an idle broker has none; each write is the whole file (atomic rename, fsynced), one at
 * a time. `close()` writes what changed since the last write.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../storage/fs-util.js';

export const HW_CHECKPOINT_FILE = 'replication-offset-checkpoint.json';
/** Kafka's replica.high.watermark.checkpoint.interval.ms. */
export const DEFAULT_HW_CHECKPOINT_MS = 5_000;

interface CheckpointFile {
  version: 1;
  /** "<topicId>/<partition>" → high watermark (a decimal string: offsets pass 2^53). */
  partitions: Record<string, string>;
}

export class HighWatermarkCheckpoint {
  readonly file: string;
  readonly #intervalMs: number;
  readonly #snapshot: () => Iterable<[topicId: string, partition: number, hw: bigint]>;
  readonly #logger: Logger | undefined;
  readonly #loaded: Map<string, bigint>;
  #timer: NodeJS.Timeout | undefined;
  #dirty = false;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(dataDir: string, snapshot: () => Iterable<[string, number, bigint]>, opts: { intervalMs?: number; logger?: Logger } = {}) {
    this.file = path.join(dataDir, HW_CHECKPOINT_FILE);
    this.#intervalMs = opts.intervalMs ?? DEFAULT_HW_CHECKPOINT_MS;
    this.#snapshot = snapshot;
    this.#logger = opts.logger;
    this.#loaded = this.#read();
  }

  /**
   * The high watermark the file held for the partition at open, if any; once (a replica
   * removed and added again in this process starts from what its log holds then).
   */
  initial(topicId: string, partition: number): bigint | undefined {
    const k = `${topicId}/${partition}`;
    const hw = this.#loaded.get(k);
    this.#loaded.delete(k);
    return hw;
  }

  /** A high watermark moved: written within `intervalMs`. */
  changed(): void {
    this.#dirty = true;
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.writeNow().catch((err: unknown) => this.#logger?.warn({ err, file: this.file }, 'writing the high-watermark checkpoint failed; retried at the next change'));
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** Writes the current high watermarks now (after any write under way). */
  writeNow(): Promise<void> {
    const run = this.#writing.then(async () => {
      if (!this.#dirty) return;
      this.#dirty = false;
      const body: CheckpointFile = { version: 1, partitions: {} };
      for (const [topicId, partition, hw] of this.#snapshot()) body.partitions[`${topicId}/${partition}`] = String(hw);
      try {
        await writeFileAtomic(this.file, JSON.stringify(body) + '\n');
      } catch (err) {
        this.#dirty = true;
        throw err;
      }
    });
    this.#writing = run.catch(() => {});
    return run;
  }

  /** Stops the timer and writes what changed since the last write. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.writeNow().catch((err: unknown) => this.#logger?.warn({ err, file: this.file }, 'writing the high-watermark checkpoint at close failed'));
  }

  #read(): Map<string, bigint> {
    const out = new Map<string, bigint>();
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#logger?.warn({ err, file: this.file }, 'the high-watermark checkpoint cannot be read; every partition starts from its log start');
      return out;
    }
    try {
      const parsed = JSON.parse(text) as CheckpointFile;
      if (parsed.version !== 1 || typeof parsed.partitions !== 'object' || parsed.partitions === null) throw new Error(`unknown layout (version ${String(parsed.version)})`);
      for (const [k, v] of Object.entries(parsed.partitions)) {
        if (typeof v !== 'string' || !/^\d+$/.test(v)) throw new Error(`entry ${k} is not an offset`);
        out.set(k, BigInt(v));
      }
    } catch (err) {
      this.#logger?.warn({ err, file: this.file }, 'the high-watermark checkpoint does not parse; every partition starts from its log start (records become visible again as followers fetch)');
      out.clear();
    }
    return out;
  }
}
