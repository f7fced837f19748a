/**
 * Kafka's leader epoch cache of one partition (KIP-101, KIP-279): the first offset written
 * under each leader epoch, `(epoch, startOffset)`, epochs and start offsets both strictly
 * increasing. A follower asks its leader where its latest epoch ended
 * (OffsetForLeaderEpoch) and cuts its log there, which is how a replica finds the exact
 * point where its log diverged from the leader's.
 *
 * Only PartitionLog changes it, in step with the log (partition-log.ts): an append under a
 * new leader epoch, a follower copying a batch stamped with a newer epoch, a truncation
 * (entries at or past the new end go), retention and DeleteRecords (the first entry's start
 * moves up to the log start). Everyone else reads it (`latest`, `entries`, `endOffsetFor`).
 *
 * Persistence: `leader-epoch-checkpoint` in the partition directory, Kafka's text format
 * (version line `0`, count line, then one `epoch startOffset` line per entry), replaced
 * atomically (temp file, fsync, rename, directory fsync) by `persist`. Writes run one at a
 * time and each writes the entries as they are when it starts, so calls that pile up share
 * one write. The file's existence also marks the partition as epoch-tracked: a log written
 * in single-broker mode has none, and its stamps (whatever its producers put there) are never
 * read as epochs.
 */
import fs from 'node:fs';
import { ErrorCode, MeridianError } from '../errors.js';
import { storageError, writeFileAtomic } from './fs-util.js';

export interface EpochEntry {
  readonly epoch: number;
  readonly startOffset: bigint;
}

/** OffsetForLeaderEpoch's "no such epoch": UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET. */
export const UNDEFINED_EPOCH = -1;
export const UNDEFINED_EPOCH_OFFSET = -1n;

const FORMAT_VERSION = 0;
const MAX_EPOCH = 0x7fffffff;

/** Whether `epoch` can be stamped in a batch's partitionLeaderEpoch (an int32 >= 0). */
export function isValidEpoch(epoch: number): boolean {
  return Number.isInteger(epoch) && epoch >= 0 && epoch <= MAX_EPOCH;
}

/** The checkpoint's text for `entries`. */
export function encodeCheckpoint(entries: readonly EpochEntry[]): string {
  return [String(FORMAT_VERSION), String(entries.length), ...entries.map((e) => `${e.epoch} ${e.startOffset}`)].join('\n') + '\n';
}

/** Parses a checkpoint; throws (a plain Error naming the rule) if any line breaks the format. */
export function decodeCheckpoint(text: string): EpochEntry[] {
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (lines[0] !== String(FORMAT_VERSION)) throw new Error(`unknown version line ${JSON.stringify(lines[0])}`);
  const count = Number(lines[1]);
  if (!Number.isInteger(count) || count < 0 || lines.length !== count + 2) throw new Error(`count line ${JSON.stringify(lines[1])} does not match ${lines.length - 2} entries`);
  const entries: EpochEntry[] = [];
  for (const line of lines.slice(2)) {
    const m = /^(\d+) (\d+)$/.exec(line);
    const epoch = m ? Number(m[1]) : NaN;
    if (m === null || !isValidEpoch(epoch)) throw new Error(`bad entry ${JSON.stringify(line)}`);
    const startOffset = BigInt(m[2]);
    const prev = entries[entries.length - 1];
    if (prev !== undefined && (epoch <= prev.epoch || startOffset <= prev.startOffset)) throw new Error(`entry ${JSON.stringify(line)} does not follow ${prev.epoch} ${prev.startOffset}`);
    entries.push({ epoch, startOffset });
  }
  return entries;
}

/**
 * Concurrency: every method but `persist` is synchronous, so a change and the log change it
 * follows happen in the same tick. `persist` may be called at any time; its writes are
 * serialized.
 */
export class LeaderEpochCache {
  readonly file: string;
  #entries: EpochEntry[];
  /** The checkpoint file exists (or is being written): the partition is epoch-tracked. */
  #tracked: boolean;
  /** Bumped by every change; `#persistedVersion` is the version the file holds. */
  #version = 0;
  #persistedVersion = 0;
  #writes: Promise<void> = Promise.resolve();

  /** `file`: where the checkpoint lives; `entries`: what it held (`undefined`: no file). */
  constructor(file: string, entries?: readonly EpochEntry[]) {
    this.file = file;
    this.#tracked = entries !== undefined;
    this.#entries = [...(entries ?? [])];
  }

  /**
   * Reads the checkpoint at `file` (none: an empty, untracked cache). A file that does not
   * parse is reported as `corrupt` with an empty, tracked cache, which the caller rebuilds
   * from the stamps in its log.
   */
  static load(file: string): { cache: LeaderEpochCache; corrupt?: string } {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { cache: new LeaderEpochCache(file) };
      throw storageError(`cannot read the leader epoch checkpoint ${file}`, err);
    }
    try {
      return { cache: new LeaderEpochCache(file, decodeCheckpoint(text)) };
    } catch (err) {
      const cache = new LeaderEpochCache(file, []);
      cache.#version++;
      return { cache, corrupt: (err as Error).message };
    }
  }

  /** Whether the partition keeps epochs (its checkpoint exists, or a first entry was added). */
  get tracked(): boolean {
    return this.#tracked;
  }

  /** The newest epoch and its first offset; undefined while none is known. */
  latest(): EpochEntry | undefined {
    return this.#entries[this.#entries.length - 1];
  }

  entries(): ReadonlyArray<EpochEntry> {
    return [...this.#entries];
  }

  /**
   * Where `epoch` ended, as Kafka's LeaderEpochFileCache.endOffsetFor answers (storage
   * module, Kafka 3.x): the epoch returned is the largest cached epoch <= `epoch`, and the
   * end is the start of the first cached epoch above `epoch`, or `logEndOffset` when `epoch`
   * is the latest. An epoch below every cached one answers itself and the first entry's
   * start (its data is gone from the log; the follower replicates from the log start). An
   * epoch above the latest, UNDEFINED_EPOCH, and anything on an empty cache answer
   * (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET).
   */
  endOffsetFor(epoch: number, logEndOffset: bigint): { epoch: number; endOffset: bigint } {
    const undefinedAnswer = { epoch: UNDEFINED_EPOCH, endOffset: UNDEFINED_EPOCH_OFFSET };
    const latest = this.latest();
    if (epoch === UNDEFINED_EPOCH || latest === undefined) return undefinedAnswer;
    if (epoch === latest.epoch) return { epoch, endOffset: logEndOffset };
    const higher = this.#entries.findIndex((e) => e.epoch > epoch);
    if (higher < 0) return undefinedAnswer;
    const end = this.#entries[higher].startOffset;
    return higher === 0 ? { epoch, endOffset: end } : { epoch: this.#entries[higher - 1].epoch, endOffset: end };
  }

  /**
   * Records that `epoch` starts at `startOffset`, if `epoch` is newer than the latest epoch
   * (returns whether it changed anything). Entries at or past `startOffset` are dropped
   * first, as Kafka's assign does: they hold no data (an append that was refused).
   */
  assign(epoch: number, startOffset: bigint): boolean {
    if (!isValidEpoch(epoch) || startOffset < 0n) {
      throw new MeridianError(ErrorCode.InvalidBatch, `leader epoch ${epoch} at offset ${startOffset} cannot enter the epoch cache of ${this.file} (epochs are int32 >= 0, offsets >= 0)`);
    }
    const latest = this.latest();
    if (latest !== undefined && epoch <= latest.epoch) return false;
    while (this.#entries.length > 0 && this.#entries[this.#entries.length - 1].startOffset >= startOffset) this.#entries.pop();
    this.#entries.push({ epoch, startOffset });
    this.#tracked = true;
    this.#version++;
    return true;
  }

  /** Removes the entries starting at or past `endOffset` (a truncation to it); returns whether any went. */
  truncateFromEnd(endOffset: bigint): boolean {
    const before = this.#entries.length;
    while (this.#entries.length > 0 && this.#entries[this.#entries.length - 1].startOffset >= endOffset) this.#entries.pop();
    if (this.#entries.length === before) return false;
    this.#version++;
    return true;
  }

  /**
   * The log now starts at `startOffset`: the entries starting at or before it give way to
   * the last of them, which now starts there (Kafka's truncateFromStart), so the epoch that
   * covers the new log start is kept. Returns whether anything changed.
   */
  truncateFromStart(startOffset: bigint): boolean {
    let covering = -1;
    for (let i = 0; i < this.#entries.length && this.#entries[i].startOffset <= startOffset; i++) covering = i;
    if (covering < 0 || (covering === 0 && this.#entries[0].startOffset === startOffset)) return false;
    this.#entries.splice(0, covering + 1, { epoch: this.#entries[covering].epoch, startOffset });
    this.#version++;
    return true;
  }

  /** Whether the file lags the entries in memory. */
  get dirty(): boolean {
    return this.#version !== this.#persistedVersion;
  }

  /**
   * Makes the file hold the entries as they are now (or later): resolves once a write that
   * started after this call succeeded, at once when nothing changed since the last write.
   * An untracked cache (single-broker mode, nothing ever assigned) never writes.
   */
  persist(): Promise<void> {
    if (!this.#tracked || !this.dirty) return this.#writes;
    const run = this.#writes.then(async () => {
      const version = this.#version;
      if (version === this.#persistedVersion) return;
      try {
        await writeFileAtomic(this.file, encodeCheckpoint(this.#entries));
      } catch (err) {
        throw storageError(`cannot write the leader epoch checkpoint ${this.file}`, err);
      }
      if (version > this.#persistedVersion) this.#persistedVersion = version;
    });
    this.#writes = run.catch(() => {});
    return run;
  }

  /** Resolves once no write is in flight (close). */
  settled(): Promise<void> {
    return this.#writes;
  }
}
