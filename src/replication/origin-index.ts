/**
 * The origin index of one partition: exact consumer-offset translation between regions
 * (disaster recovery).
 *
 * Every data record of a region's log has an *origin*, `originKey(region, topicId)`, and an
 * *origin offset*: a record produced here has this region's key (`selfKey`) and its own log
 * offset; a replicated record (a batch a marker describes, see run-tracker.ts) has its
 * origin's key and `originBaseOffset + (offset - batch baseOffset)`. Markers and other control
 * batches hold no data records: they are neutral. Within one origin, origin offsets increase
 * along the log; several origins interleave in each region's own order (mesh, aggregation,
 * relay). Every offset of a data batch, `baseOffset..baseOffset+lastOffsetDelta`, counts as a
 * record (a compacted batch's missing offsets are mapped like the others: the batch travels
 * verbatim, so they are the same in every region).
 *
 * A consumer's committed offset `o` in region A becomes a vector, `A.vectorAt(o)`: per origin,
 * the highest origin offset it has consumed. `B.translate(vector)` is the furthest offset of
 * B's log such that every data record before it was consumed in A: the consumer resumes there
 * in B and misses nothing (records of B's prefix that A held later are redelivered, never
 * lost).
 *
 * Structure: per origin, *runs* (log start, length, origin start) of records with consecutive
 * log offsets and consecutive origin offsets, in columns sorted by both (they increase
 * together within an origin), so `vectorAt` and `translate` are one binary search per origin:
 * O(origins x log runs). `countOf` uses a prefix count per run: O(log runs).
 *
 * Memory: at most `maxRuns` runs (default 200_000) per partition. Past it the oldest runs (by
 * log offset) are dropped; the *exact region* then starts at `exactFrom`, and below it the
 * index keeps sparse *checkpoints*: (log offset, the exact vector there), at most
 * `maxCheckpoints` (default 1024; thinned by dropping every other one, the newest kept).
 *
 * Guarantees (offsets below `indexedFrom`, the first indexed offset, are treated as absent:
 * `vectorAt` clamps, `translate` never answers below it):
 * - `vectorAt(o)` is exact for o in [exactFrom, indexedTo]; below exactFrom it is the vector of
 *   the greatest checkpoint <= o, a lower bound (translation errs toward redelivery);
 * - `translate(v)` is exact whenever the first record v does not cover lies at or past
 *   exactFrom; otherwise it is the greatest checkpoint whose vector v covers, which is <= the
 *   exact answer (conservative), and never below indexedFrom;
 * - `countOf` counts the records in [max(from, exactFrom), min(to, indexedTo)) exactly.
 * With the default budget the whole retained log is usually exact (one run per switch of
 * origin, and a local stream is one run between replicated ones).
 *
 * Retention: runs below the log start are dropped and `indexedFrom` follows the log start
 * (the vector there is kept, so `vectorAt(logStart)` still says what preceded it). A log start
 * past everything indexed (the index lagged, or a follower's log was reset to its leader's
 * log start, PartitionLog.resetTo, after which the records it held may not be the leader's)
 * starts the index there knowing nothing of what preceded it: conservative.
 *
 * Crash recovery: `origin-index.json` in the partition directory (PartitionFiles.originIndex)
 * holds the index as of a sealed segment's end S, written (atomically) each time a segment
 * seals. It is the live index *restricted to offsets < S*: runs cut at S, checkpoints at or
 * below S, and, when the budget already dropped the runs around S, the exact vector at S that
 * the walk recorded when it crossed that segment boundary. Everything in it is a function of
 * the sealed, durable records before S, never of anything past it (the live index may have
 * indexed unsynced appends). A marker's run never spans segments (one append, one segment),
 * so the walk restarts at S with a fresh RunTracker: a restart walks at most the segments
 * after the last seal. The snapshot also records the identity (base, end, size, CRC-32C of the
 * whole sealed file) of every segment below S, and a load trusts it only if each segment of
 * the log below S is one of them, unchanged: a truncation below S reopens the segment it cuts
 * and removes the later ones, so a snapshot that outlived a truncation is never trusted,
 * however far the log has grown again since (a crash between the durable cut and the
 * listener's delete; a truncation while no index was loaded). A snapshot past the log end,
 * below the log start, of another `selfKey`, not matching the log, or unreadable, is ignored
 * with a warning and the index rebuilds from the log start.
 *
 * Limitation (shared with the dedup table): a walk starts with a fresh RunTracker, so a log
 * start that DeleteRecords moved into the middle of a marker's run makes the rest of that run
 * read as local records. Retention deletes whole segments, which never split a run.
 *
 * Truncation: the index follows its log's truncations (`PartitionLog.onTruncated`, from
 * `open` on, so also during its first walk): `truncatedTo(t)` cuts the exact region at t (or,
 * below it, falls back to the greatest checkpoint and rebuilds from the snapshot or the log
 * start on the next catch-up), deleting a snapshot past t. A walk under way stops (it checks,
 * after each read, that no truncation happened and that the log end did not move back below
 * its target: the end moves back before the listeners run) and the next catch-up walks from
 * t with a fresh RunTracker: new batches after a truncation point are never the rest of an
 * old marker's run. A seal from before a truncation is not snapshotted, and a snapshot is
 * written only at a sealed segment's end with every segment before it sealed.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import { writeFileAtomicSync } from '../storage/fs-util.js';
import { PartitionFiles } from '../storage/partition-files.js';
import type { PartitionLog } from '../storage/partition-log.js';
import { lastOffsetOf, storedBatches, type BatchHeader } from '../storage/record-batch.js';
import { originKey } from './replica-state.js';
import { RunTracker } from './run-tracker.js';

/** origin key -> the highest origin offset covered; an origin that is absent covers nothing (-1). */
export type OriginVector = Map<string, bigint>;

export interface OriginIndexOptions {
  /** Runs kept per partition before the oldest are dropped for checkpoints (default 200_000, >= 1). */
  maxRuns?: number;
  /** Checkpoints kept below the exact region before they are thinned (default 1024, >= 2). */
  maxCheckpoints?: number;
  /**
   * Whether this index reads and writes the partition's snapshot file (default true). Exactly
   * one index per partition should: a second one (a diagnostic, a test with another budget)
   * passes false, builds from the log start and leaves the file alone.
   */
  persist?: boolean;
  logger?: Logger;
}

const SCAN_BYTES = 1024 * 1024;
const DEFAULT_MAX_RUNS = 200_000;
const DEFAULT_MAX_CHECKPOINTS = 1024;
/** 2: with `segments` (version 1 snapshots are rebuilt from the log: they cannot be checked against it). */
const SNAPSHOT_VERSION = 2;
const RESOLVED = Promise.resolve();

interface SnapshotFile {
  version: number;
  selfKey: string;
  /** A sealed segment's end: the index covers [indexedFrom, offset). */
  offset: string;
  indexedFrom: string;
  start: Record<string, string>;
  exactFrom: string;
  base: Record<string, string>;
  checkpoints: Array<[string, Record<string, string>]>;
  /** Per origin, runs flattened as "logStart,length,originStart,logStart,length,...". */
  runs: Record<string, string>;
  /**
   * The log's segments below `offset` when it was written, as "base,next,size,crc;..."
   * (crc: the CRC-32C of the whole sealed file): a load trusts the snapshot only if every
   * segment of the log below `offset` is one of them, unchanged (see segmentsBelow).
   */
  segments: string;
}

/**
 * The runs of one origin, in columns (BigInt64Array: 32 bytes a run), oldest first. `cum[i]`
 * counts the records of this origin before run i (from an arbitrary zero), for range counts.
 */
class RunList {
  logStart = new BigInt64Array(8);
  len = new BigInt64Array(8);
  originStart = new BigInt64Array(8);
  cum = new BigInt64Array(8);
  head = 0;
  tail = 0;
  /** `cum` of the next run pushed. */
  nextCum = 0n;

  get size(): number {
    return this.tail - this.head;
  }

  /** Appends records [ls, ls+n) with origin offsets [os, os+n); true when that opened a new run. */
  push(ls: bigint, n: bigint, os: bigint): boolean {
    const t = this.tail - 1;
    if (t >= this.head && this.logStart[t] + this.len[t] === ls && this.originStart[t] + this.len[t] === os) {
      this.len[t] += n;
      this.nextCum += n;
      return false;
    }
    this.#reserve();
    const i = this.tail++;
    this.logStart[i] = ls;
    this.len[i] = n;
    this.originStart[i] = os;
    this.cum[i] = this.nextCum;
    this.nextCum += n;
    return true;
  }

  /** Drops the oldest run. */
  shift(): void {
    this.head++;
    if (this.head === this.tail) this.head = this.tail = 0;
  }

  /** Forgets the records at or past `offset`; returns how many runs went. */
  truncateAt(offset: bigint): number {
    let gone = 0;
    while (this.tail > this.head && this.logStart[this.tail - 1] >= offset) {
      this.tail--;
      this.nextCum = this.cum[this.tail];
      gone++;
    }
    const t = this.tail - 1;
    if (t >= this.head && this.logStart[t] + this.len[t] > offset) {
      const keep = offset - this.logStart[t];
      this.nextCum -= this.len[t] - keep;
      this.len[t] = keep;
    }
    if (this.head === this.tail) this.head = this.tail = 0;
    return gone;
  }

  /** Forgets the records below `offset` (a run across it is cut); returns how many runs went. */
  cutBelow(offset: bigint): number {
    let gone = 0;
    while (this.tail > this.head && this.logStart[this.head] + this.len[this.head] <= offset) {
      this.head++;
      gone++;
    }
    const h = this.head;
    if (h < this.tail && this.logStart[h] < offset) {
      const d = offset - this.logStart[h];
      this.logStart[h] += d;
      this.originStart[h] += d;
      this.len[h] -= d;
      this.cum[h] += d;
    }
    if (this.head === this.tail) this.head = this.tail = 0;
    return gone;
  }

  /** The greatest run index starting before `offset`, or -1. */
  lastStartingBefore(offset: bigint): number {
    let lo = this.head;
    let hi = this.tail;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.logStart[mid] < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1 >= this.head ? lo - 1 : -1;
  }

  /** The first run index ending after `offset` (holding a record >= offset), or `tail`. */
  firstEndingAfter(offset: bigint): number {
    let lo = this.head;
    let hi = this.tail;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.logStart[mid] + this.len[mid] > offset) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** The first run index holding an origin offset above `limit`, or `tail`. */
  firstOriginAbove(limit: bigint): number {
    let lo = this.head;
    let hi = this.tail;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.originStart[mid] + this.len[mid] - 1n > limit) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** The highest origin offset among the records below `offset`, or undefined (none here). */
  originBefore(offset: bigint): bigint | undefined {
    const i = this.lastStartingBefore(offset);
    if (i < 0) return undefined;
    const k = offset - this.logStart[i];
    return this.originStart[i] + (k < this.len[i] ? k : this.len[i]) - 1n;
  }

  /** Records of this origin below `offset`, on the `cum` scale. */
  recordsBefore(offset: bigint): bigint {
    const i = this.lastStartingBefore(offset);
    if (i < 0) return this.size > 0 ? this.cum[this.head] : this.nextCum;
    const k = offset - this.logStart[i];
    return this.cum[i] + (k < this.len[i] ? k : this.len[i]);
  }

  lastOrigin(): bigint | undefined {
    return this.size > 0 ? this.originStart[this.tail - 1] + this.len[this.tail - 1] - 1n : undefined;
  }

  #reserve(): void {
    const cap = this.logStart.length;
    if (this.tail < cap) return;
    const size = this.size;
    // Grow when more than half full, else compact in place (the head moved on).
    const next = size * 2 > cap ? cap * 2 : cap;
    for (const col of ['logStart', 'len', 'originStart', 'cum'] as const) {
      const a = new BigInt64Array(next);
      a.set(this[col].subarray(this.head, this.tail));
      this[col] = a;
    }
    this.head = 0;
    this.tail = size;
  }
}

interface Checkpoint {
  offset: bigint;
  vector: OriginVector;
}

export class OriginIndex {
  readonly log: PartitionLog;
  readonly selfKey: string;
  #maxRuns: number;
  #maxCheckpoints: number;
  #persist: boolean;
  #logger?: Logger;

  #runs = new Map<string, RunList>();
  #totalRuns = 0;
  /** The first offset answered for; the vector there as known (exact unless data was skipped). */
  #indexedFrom = 0n;
  #start: OriginVector = new Map();
  /** Runs hold every data record in [exactFrom, indexedTo); `#base` is the exact vector at exactFrom. */
  #exactFrom = 0n;
  #base: OriginVector = new Map();
  /** Exact vectors at offsets in (indexedFrom, exactFrom), ascending. */
  #checkpoints: Checkpoint[] = [];
  #indexedTo = 0n;
  /** The vector at indexedTo. */
  #tip: OriginVector = new Map();
  #tracker = new RunTracker();
  /** Exact vectors at segment boundaries the walk crossed, not yet in a snapshot. */
  #boundaries = new Map<bigint, OriginVector>();
  #snapshotOffset = -1n;

  #gen = 0;
  #reload = false;
  #walking: Promise<void> | null = null;
  #walkTarget = -1n;
  #followUp: Promise<void> | null = null;
  #chain: Promise<void> = Promise.resolve();
  #offSealed: (() => void) | null = null;
  #offTruncated: (() => void) | null = null;
  #closed = false;
  #warnedOrder = false;

  private constructor(log: PartitionLog, selfKey: string, opts: OriginIndexOptions) {
    this.log = log;
    this.selfKey = selfKey;
    const maxRuns = opts.maxRuns ?? DEFAULT_MAX_RUNS;
    const maxCheckpoints = opts.maxCheckpoints ?? DEFAULT_MAX_CHECKPOINTS;
    if (!Number.isSafeInteger(maxRuns) || maxRuns < 1) throw new MeridianError(ErrorCode.BadConfig, `origin index maxRuns must be an integer >= 1, not ${maxRuns}`);
    if (!Number.isSafeInteger(maxCheckpoints) || maxCheckpoints < 2) throw new MeridianError(ErrorCode.BadConfig, `origin index maxCheckpoints must be an integer >= 2, not ${maxCheckpoints}`);
    this.#maxRuns = maxRuns;
    this.#maxCheckpoints = maxCheckpoints;
    this.#persist = opts.persist ?? true;
    this.#logger = opts.logger;
  }

  /** Loads the snapshot (if any) and indexes the log from there to the high watermark. */
  static async open(log: PartitionLog, selfKey: string, opts: OriginIndexOptions = {}): Promise<OriginIndex> {
    const idx = new OriginIndex(log, selfKey, opts);
    idx.#load();
    // Followed from before the first walk: a truncation while it runs must cut what it read.
    idx.#offTruncated = log.onTruncated((offset) => idx.truncatedTo(offset));
    try {
      await idx.catchUp();
    } catch (err) {
      idx.#offTruncated();
      idx.#offTruncated = null;
      throw err;
    }
    idx.#offSealed = log.onSegmentSealed((seg) => idx.#snapshotSoon(seg.nextOffset));
    // Segments sealed before this process started (or before a crash let it write the
    // snapshot) are snapshotted now, in the background.
    const sealed = log.segments().filter((s) => s.sealed).at(-1);
    if (sealed !== undefined && sealed.nextOffset > idx.#snapshotOffset) idx.#snapshotSoon(sealed.nextOffset);
    return idx;
  }

  /** The offset up to which the index is built (exclusive). */
  get indexedTo(): bigint {
    return this.#indexedTo;
  }

  /** Indexes what was appended since (up to log.highWatermark). Cheap when nothing is new. Concurrent calls share one walk. */
  catchUp(): Promise<void> {
    if (this.#closed) return Promise.reject(new MeridianError(ErrorCode.LogClosed, `origin index of ${this.log.dir} is closed`, { retriable: true }));
    if (this.#walking !== null) {
      if (!this.#reload && this.log.highWatermark <= this.#walkTarget) return this.#walking;
      this.#followUp ??= this.#walking
        .catch(() => undefined)
        .then(() => {
          this.#followUp = null;
          return this.catchUp();
        });
      return this.#followUp;
    }
    if (!this.#reload && this.#indexedTo >= this.log.highWatermark && this.log.logStartOffset <= this.#indexedFrom) return RESOLVED;
    const p: Promise<void> = this.#walk().finally(() => {
      if (this.#walking === p) this.#walking = null;
    });
    this.#walking = p;
    return p;
  }

  /**
   * For each origin, the highest origin offset among the data records at log offsets < offset
   * (inside a batch, only the records before it count). offset is clamped to
   * [indexedFrom, indexedTo]. Exact from exactFrom on; below it, a checkpoint's (lower bound).
   */
  vectorAt(offset: bigint): OriginVector {
    const o = this.#clamp(offset);
    if (o < this.#exactFrom) {
      let lo = 0;
      let hi = this.#checkpoints.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (this.#checkpoints[mid].offset <= o) lo = mid + 1;
        else hi = mid;
      }
      return new Map(lo === 0 ? this.#start : this.#checkpoints[lo - 1].vector);
    }
    const out = new Map(this.#base);
    for (const [k, runs] of this.#runs) {
      const h = runs.originBefore(o);
      if (h !== undefined) out.set(k, h);
    }
    return out;
  }

  /**
   * The furthest offset t <= indexedTo such that every data record at an offset in
   * [indexedFrom, t) has origin offset <= v[its origin] (absent: -1): the log offset of the
   * first record v does not cover, indexedTo if none. Never below indexedFrom. Exact when that
   * record lies in the exact region; otherwise the greatest checkpoint v covers (<= exact).
   */
  translate(v: OriginVector): bigint {
    let t = this.#indexedTo;
    for (const k of this.#origins()) {
      const limit = v.get(k) ?? -1n;
      const b = this.#base.get(k) ?? -1n;
      // Records of k in [indexedFrom, exactFrom) exist (base above start) and v misses some.
      if (b > limit && b > (this.#start.get(k) ?? -1n)) return this.#coveredCheckpoint(v);
      const runs = this.#runs.get(k);
      if (runs === undefined) continue;
      const i = runs.firstOriginAbove(limit);
      if (i === runs.tail) continue;
      const os = runs.originStart[i];
      const at = runs.logStart[i] + (limit >= os ? limit + 1n - os : 0n);
      if (at < t) t = at;
    }
    return t;
  }

  /**
   * The number of data records of `origin` in log offsets [from, to) and their first/last log
   * offsets. Counts the exact region only: [max(from, exactFrom), min(to, indexedTo)).
   */
  countOf(origin: string, from: bigint, to: bigint): { count: bigint; first: bigint | null; last: bigint | null } {
    const lo = from > this.#exactFrom ? from : this.#exactFrom;
    const hi = to < this.#indexedTo ? to : this.#indexedTo;
    const none = { count: 0n, first: null, last: null };
    const runs = this.#runs.get(origin);
    if (runs === undefined || lo >= hi) return none;
    const count = runs.recordsBefore(hi) - runs.recordsBefore(lo);
    if (count <= 0n) return none;
    const i = runs.firstEndingAfter(lo);
    const j = runs.lastStartingBefore(hi);
    const first = runs.logStart[i] > lo ? runs.logStart[i] : lo;
    const end = runs.logStart[j] + runs.len[j];
    return { count, first, last: (end < hi ? end : hi) - 1n };
  }

  /**
   * Memory accounting for metrics/tests: runs and checkpoints held, origins known, and the
   * indexed range; `exactFrom` is where the exact region starts (see the file comment).
   */
  stats(): { runs: number; checkpoints: number; origins: number; indexedFrom: bigint; indexedTo: bigint; exactFrom: bigint } {
    return { runs: this.#totalRuns, checkpoints: this.#checkpoints.length, origins: this.#origins().size, indexedFrom: this.#indexedFrom, indexedTo: this.#indexedTo, exactFrom: this.#exactFrom };
  }

  /** Offsets where `translate` may answer below the exact region: indexedFrom, the checkpoints, exactFrom (diagnostics, tests). */
  checkpointOffsets(): bigint[] {
    const out = [this.#indexedFrom, ...this.#checkpoints.map((c) => c.offset)];
    if (this.#exactFrom > this.#indexedFrom) out.push(this.#exactFrom);
    return out;
  }

  /** Forgets everything at or past `offset` (the log was truncated there) and re-walks on the next catchUp. */
  truncatedTo(offset: bigint): void {
    this.#gen++; // a walk under way stops: what it read may be gone
    this.#walkTarget = -1n;
    if (this.#persist && offset < this.#snapshotOffset) {
      fs.rmSync(PartitionFiles.originIndex(this.log.dir), { force: true });
      this.#snapshotOffset = -1n;
    }
    if (this.#reload) return;
    if (offset >= this.#indexedTo) {
      // Nothing indexed goes; what follows `offset` is new (no old marker's run continues there).
      if (offset === this.#indexedTo) this.#tracker = new RunTracker();
      return;
    }
    for (const b of [...this.#boundaries.keys()]) if (b > offset) this.#boundaries.delete(b);
    if (offset < this.#indexedFrom) {
      // Below everything: start empty there; the next catch-up rebuilds from the log.
      const at = offset < 0n ? 0n : offset;
      this.#reset(at, at, new Map(), new Map(), []);
      this.#reload = true;
      return;
    }
    if (offset < this.#exactFrom) {
      // Only checkpoints there: fall back to the greatest one (a conservative state), and
      // rebuild on the next catch-up (a checkpoint may lie inside a marker's run, where a
      // walk cannot resume).
      const cps = this.#checkpoints.filter((c) => c.offset <= offset);
      const c = cps.pop();
      if (c === undefined) this.#reset(this.#indexedFrom, this.#indexedFrom, this.#start, new Map(this.#start), []);
      else this.#reset(this.#indexedFrom, c.offset, this.#start, new Map(c.vector), cps);
      this.#reload = true;
      return;
    }
    const tip = this.vectorAt(offset);
    let gone = 0;
    for (const runs of this.#runs.values()) gone += runs.truncateAt(offset);
    this.#totalRuns -= gone;
    this.#tip = tip;
    this.#indexedTo = offset;
    this.#tracker = new RunTracker();
  }

  /** Stops following seals; waits for a walk or a snapshot under way. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#offSealed?.();
    this.#offSealed = null;
    this.#offTruncated?.();
    this.#offTruncated = null;
    await this.#walking?.catch(() => undefined);
    await this.#chain;
  }

  // -- internals --------------------------------------------------------------------------

  #clamp(offset: bigint): bigint {
    if (offset < this.#indexedFrom) return this.#indexedFrom;
    if (offset > this.#indexedTo) return this.#indexedTo;
    return offset;
  }

  #origins(): Set<string> {
    const s = new Set(this.#base.keys());
    for (const [k, r] of this.#runs) if (r.size > 0) s.add(k);
    return s;
  }

  /** Whether every record of [indexedFrom, c) is covered by v, c's vector being exact. */
  #covers(v: OriginVector, vector: OriginVector): boolean {
    for (const [k, x] of vector) if (x > (v.get(k) ?? -1n) && x > (this.#start.get(k) ?? -1n)) return false;
    return true;
  }

  /** The greatest checkpoint v covers (monotone: binary search), else indexedFrom. */
  #coveredCheckpoint(v: OriginVector): bigint {
    let lo = 0;
    let hi = this.#checkpoints.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#covers(v, this.#checkpoints[mid].vector)) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? this.#indexedFrom : this.#checkpoints[lo - 1].offset;
  }

  /** Replaces the whole state: no runs, exact from `exactFrom` (= indexedTo) with vector `base`. */
  #reset(indexedFrom: bigint, exactFrom: bigint, start: OriginVector, base: OriginVector, checkpoints: Checkpoint[]): void {
    this.#runs.clear();
    this.#totalRuns = 0;
    this.#indexedFrom = indexedFrom;
    this.#start = start;
    this.#exactFrom = exactFrom;
    this.#base = base;
    this.#checkpoints = checkpoints;
    this.#indexedTo = exactFrom;
    this.#tip = new Map(base);
    this.#tracker = new RunTracker();
  }

  /** The state from the snapshot file, or empty at the log start. */
  #load(): void {
    this.#boundaries.clear();
    this.#snapshotOffset = -1n;
    const file = PartitionFiles.originIndex(this.log.dir);
    const fresh = (): void => {
      const s = this.log.logStartOffset;
      this.#reset(s, s, new Map(), new Map(), []);
    };
    if (!this.#persist) return fresh();
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#logger?.warn({ dir: this.log.dir, err: (err as Error).message }, 'origin index snapshot unreadable; rebuilding from the log');
      return fresh();
    }
    try {
      const s = parseSnapshot(text);
      if (s.selfKey !== this.selfKey) {
        this.#logger?.warn({ dir: this.log.dir, snapshot: s.selfKey, selfKey: this.selfKey }, 'origin index snapshot is of another origin key; rebuilding from the log');
        return fresh();
      }
      if (s.offset > this.log.highWatermark) {
        this.#logger?.warn({ dir: this.log.dir, snapshot: String(s.offset), logEnd: String(this.log.highWatermark) }, 'origin index snapshot is past the log end; rebuilding from the log');
        return fresh();
      }
      if (s.offset < this.log.logStartOffset) {
        // All it holds is the vector before the log start, which after a reset (a follower
        // starting over at its leader's log start) may describe records the leader never had.
        this.#logger?.info({ dir: this.log.dir, snapshot: String(s.offset), logStart: String(this.log.logStartOffset) }, 'origin index snapshot is below the log start; rebuilding from the log');
        return fresh();
      }
      const stale = staleness(this.log, s.offset, s.segments);
      if (stale !== undefined) {
        this.#logger?.warn({ dir: this.log.dir, snapshot: String(s.offset), reason: stale }, 'origin index snapshot does not match the log; rebuilding from the log');
        return fresh();
      }
      this.#reset(s.indexedFrom, s.exactFrom, s.start, s.base, s.checkpoints);
      const tip = new Map(s.base);
      for (const [k, runs] of s.runs) {
        this.#runs.set(k, runs);
        this.#totalRuns += runs.size;
        const last = runs.lastOrigin();
        if (last !== undefined) tip.set(k, last);
      }
      this.#tip = tip;
      this.#indexedTo = s.offset;
      this.#snapshotOffset = s.offset;
      this.#thinCheckpoints();
      this.#enforceBudget();
    } catch (err) {
      if (err instanceof OldSnapshot) this.#logger?.info({ dir: this.log.dir }, 'origin index snapshot is of an older format; rebuilding from the log');
      else this.#logger?.warn({ dir: this.log.dir, err: (err as Error).message }, 'origin index snapshot unreadable; rebuilding from the log');
      fresh();
    }
  }

  async #walk(): Promise<void> {
    const gen = this.#gen;
    if (this.#reload) {
      this.#reload = false;
      this.#load();
    }
    const target = this.log.highWatermark;
    this.#walkTarget = target;
    if (this.log.logStartOffset > this.#indexedFrom) this.#pruneTo(this.log.logStartOffset);
    // Segment boundaries in reach: the vector there is recorded as the walk crosses them (a
    // segment rolled from now on starts at or past `target`).
    const bounds = this.log
      .segments()
      .map((s) => s.baseOffset)
      .filter((b) => b >= this.#indexedTo && b <= target);
    let bi = 0;
    const mark = (): void => {
      while (bi < bounds.length && bounds[bi] <= this.#indexedTo) {
        if (this.#persist && bounds[bi] === this.#indexedTo) this.#boundaries.set(bounds[bi], new Map(this.#tip));
        bi++;
      }
    };
    while (this.#indexedTo < target) {
      let records: Buffer;
      try {
        records = (await this.log.read(this.#indexedTo, SCAN_BYTES, { upTo: target })).records;
      } catch (err) {
        if (gen !== this.#gen || this.log.highWatermark < target) return; // truncated meanwhile (see below)
        if (err instanceof MeridianError && err.code === ErrorCode.OffsetOutOfRange && this.#indexedTo < this.log.logStartOffset) {
          this.#pruneTo(this.log.logStartOffset); // retention deleted what was next
          continue;
        }
        throw err;
      }
      // Truncated meanwhile: what was read may be gone. The end moves back when the truncation
      // changes the log, its listener (truncatedTo, bumping gen) runs once the cut is durable:
      // in between, stop too rather than index records about to go.
      if (gen !== this.#gen || this.log.highWatermark < target) return;
      if (records.length === 0) break;
      for (const { buf, h } of storedBatches(records)) {
        if (lastOffsetOf(h) < this.#indexedTo) continue;
        mark();
        this.#visit(buf, h);
      }
    }
    mark();
  }

  #visit(buf: Buffer, h: BatchHeader): void {
    const kind = this.#tracker.classify(buf, h);
    const last = lastOffsetOf(h);
    const first = h.baseOffset < this.#indexedTo ? this.#indexedTo : h.baseOffset;
    const n = last - first + 1n;
    if (kind.kind === 'local') this.#add(this.selfKey, first, n, first);
    else if (kind.kind === 'replicated') this.#add(originKey(kind.origin.region, kind.origin.topicId), first, n, kind.origin.baseOffset + (first - h.baseOffset));
    this.#indexedTo = last + 1n;
    this.#enforceBudget();
  }

  #add(key: string, ls: bigint, n: bigint, os: bigint): void {
    const tip = this.#tip.get(key) ?? -1n;
    if (os <= tip) {
      // An origin's offsets go backwards (dedup should make this impossible): the records
      // at or below what the origin already reached are neutral, so searches stay sorted.
      if (!this.#warnedOrder) {
        this.#warnedOrder = true;
        this.#logger?.warn({ dir: this.log.dir, origin: key, offset: String(ls), originOffset: String(os), last: String(tip) }, 'origin offsets go backwards in this log; the records at or below the last one are left out of the origin index');
      }
      const skip = tip - os + 1n;
      if (skip >= n) return;
      ls += skip;
      os += skip;
      n -= skip;
    }
    let runs = this.#runs.get(key);
    if (runs === undefined) {
      runs = new RunList();
      this.#runs.set(key, runs);
    }
    if (runs.push(ls, n, os)) this.#totalRuns++;
    this.#tip.set(key, os + n - 1n);
  }

  /** Over budget: drops the oldest runs (by log offset), the exact region now starting after them. */
  #enforceBudget(): void {
    if (this.#totalRuns <= this.#maxRuns) return;
    const target = this.#maxRuns - Math.floor(this.#maxRuns / 16);
    const base = new Map(this.#base);
    const lists = [...this.#runs.entries()];
    while (this.#totalRuns > target) {
      let best = -1;
      for (let i = 0; i < lists.length; i++) {
        const r = lists[i][1];
        if (r.size > 0 && (best < 0 || r.logStart[r.head] < lists[best][1].logStart[lists[best][1].head])) best = i;
      }
      const [k, r] = lists[best];
      base.set(k, r.originStart[r.head] + r.len[r.head] - 1n);
      r.shift();
      this.#totalRuns--;
    }
    let from = this.#indexedTo;
    for (const [, r] of lists) if (r.size > 0 && r.logStart[r.head] < from) from = r.logStart[r.head];
    if (this.#exactFrom > this.#indexedFrom) this.#checkpoints.push({ offset: this.#exactFrom, vector: this.#base });
    this.#exactFrom = from;
    this.#base = base;
    this.#thinCheckpoints();
  }

  #thinCheckpoints(): void {
    const cps = this.#checkpoints;
    if (cps.length <= this.#maxCheckpoints) return;
    // Every other one goes, the newest (nearest the exact region) stays.
    this.#checkpoints = cps.filter((_, i) => (cps.length - 1 - i) % 2 === 0);
  }

  /** The log start moved to `logStart` (retention, DeleteRecords): what lies below goes. */
  #pruneTo(logStart: bigint): void {
    if (logStart <= this.#indexedFrom) return;
    for (const b of [...this.#boundaries.keys()]) if (b < logStart) this.#boundaries.delete(b);
    if (logStart === this.#indexedTo) {
      // Nothing indexed survives: start there, the vector reached being the one at the log start.
      this.#reset(logStart, logStart, new Map(this.#tip), new Map(this.#tip), []);
      return;
    }
    if (logStart > this.#indexedTo) {
      // What lay between is unknown, and the start may have jumped past the log end (a
      // follower's reset to its leader's log start, PartitionLog.resetTo, which tells no
      // listener): the records indexed may not be the leader's, so their vector is not even
      // a lower bound. Start there knowing nothing (conservative: redelivery, never a skip).
      this.#reset(logStart, logStart, new Map(), new Map(), []);
      return;
    }
    const start = this.vectorAt(logStart);
    if (logStart >= this.#exactFrom) {
      let gone = 0;
      for (const runs of this.#runs.values()) gone += runs.cutBelow(logStart);
      this.#totalRuns -= gone;
      this.#exactFrom = logStart;
      this.#base = new Map(start);
      this.#checkpoints = [];
    } else {
      this.#checkpoints = this.#checkpoints.filter((c) => c.offset > logStart);
    }
    this.#indexedFrom = logStart;
    this.#start = start;
  }

  #snapshotSoon(sealedEnd: bigint): void {
    // A truncation after this seal may have taken the segment away (and new appends may end
    // elsewhere): the next seal snapshots instead.
    const gen = this.#gen;
    this.#chain = this.#chain
      .then(async () => {
        if (this.#closed || sealedEnd <= this.#snapshotOffset || gen !== this.#gen) return;
        await this.catchUp();
        if (gen === this.#gen) this.#writeSnapshot(sealedEnd);
      })
      .catch((err) => this.#logger?.warn({ err: (err as Error).message, dir: this.log.dir }, 'origin index snapshot failed; the next seal retries'));
  }

  /** Writes the index restricted to offsets < `at` (a sealed segment's end). */
  #writeSnapshot(at: bigint): void {
    if (!this.#persist || at <= this.#snapshotOffset || at > this.#indexedTo || at < this.#indexedFrom || this.#reload) return;
    // The identity of the segments the snapshot describes (see segmentsBelow): `at` must be a
    // sealed segment's end with every segment before it sealed (not so while a truncation
    // is under way, its cut segment being open again).
    const segments = segmentsBelow(this.log, at);
    if (segments === undefined) return;
    let exactFrom = this.#exactFrom;
    let base = this.#base;
    let checkpoints = this.#checkpoints;
    const runs: Record<string, string> = {};
    if (at >= this.#exactFrom) {
      for (const [k, r] of this.#runs) {
        const parts: string[] = [];
        for (let i = r.head; i < r.tail && r.logStart[i] < at; i++) {
          const end = r.logStart[i] + r.len[i];
          parts.push(String(r.logStart[i]), String((end < at ? end : at) - r.logStart[i]), String(r.originStart[i]));
        }
        if (parts.length > 0) runs[k] = parts.join(',');
      }
    } else {
      const bv = this.#boundaries.get(at);
      if (bv === undefined) {
        this.#logger?.warn({ dir: this.log.dir, offset: String(at) }, 'origin index has no vector at a sealed segment end; snapshot skipped');
        return;
      }
      exactFrom = at;
      base = bv;
      checkpoints = checkpoints.filter((c) => c.offset < at);
    }
    const snap: SnapshotFile = {
      version: SNAPSHOT_VERSION,
      selfKey: this.selfKey,
      offset: String(at),
      indexedFrom: String(this.#indexedFrom),
      start: encodeVector(this.#start),
      exactFrom: String(exactFrom),
      base: encodeVector(base),
      checkpoints: checkpoints.map((c) => [String(c.offset), encodeVector(c.vector)]),
      runs,
      segments: segments.map((g) => `${g.baseOffset},${g.nextOffset},${g.sizeBytes},${g.dataCrc32c >>> 0}`).join(';'),
    };
    writeFileAtomicSync(PartitionFiles.originIndex(this.log.dir), JSON.stringify(snap) + '\n');
    this.#snapshotOffset = at;
    for (const b of [...this.#boundaries.keys()]) if (b <= at) this.#boundaries.delete(b);
  }
}

/** A segment as a snapshot records it: enough to tell whether the log still holds the same bytes. */
interface SegmentIdentity {
  baseOffset: bigint;
  nextOffset: bigint;
  sizeBytes: number;
  dataCrc32c: number;
}

/**
 * The log's segments below `at`, when `at` is the end of a sealed segment and every segment
 * before it is sealed (their bytes final, their CRC that of the whole file); else undefined.
 */
function segmentsBelow(log: PartitionLog, at: bigint): SegmentIdentity[] | undefined {
  const below = log.segments().filter((g) => g.baseOffset < at);
  if (below.length === 0 || below.some((g) => !g.sealed) || below.at(-1)!.nextOffset !== at) return undefined;
  return below;
}

/**
 * Why a snapshot at `offset` that recorded `recorded` no longer describes `log`, or undefined
 * when it still does: every segment of the log below `offset` must be a recorded one, sealed
 * and with the same end, size and CRC (retention may have deleted the oldest). A truncation
 * below `offset` reopens the segment it cuts and removes the later ones, so however far the
 * log has grown again since (a crash before the truncation listener deleted the file, or a
 * truncation while no index was loaded), that segment differs or is still open.
 */
function staleness(log: PartitionLog, offset: bigint, recorded: SegmentIdentity[]): string | undefined {
  const byBase = new Map(recorded.map((g) => [g.baseOffset, g]));
  const below = log.segments().filter((g) => g.baseOffset < offset);
  for (const g of below) {
    const r = byBase.get(g.baseOffset);
    if (!g.sealed || r === undefined || r.nextOffset !== g.nextOffset || r.sizeBytes !== g.sizeBytes || r.dataCrc32c >>> 0 !== g.dataCrc32c >>> 0) {
      return `the segment at ${g.baseOffset} is not the one it describes (the log was truncated below ${offset} since)`;
    }
  }
  if (below.length > 0 && below.at(-1)!.nextOffset !== offset) return `no segment of the log ends at ${offset}`;
  return undefined;
}

function parseSegments(flat: unknown, offset: bigint): SegmentIdentity[] {
  if (typeof flat !== 'string') throw new Error('segments missing');
  if (flat === '') return [];
  let prev = -1n;
  return flat.split(';').map((entry) => {
    const f = entry.split(',');
    if (f.length !== 4 || !f.every((x) => /^\d{1,20}$/.test(x))) throw new Error(`bad segment ${JSON.stringify(entry)}`);
    const g = { baseOffset: BigInt(f[0]), nextOffset: BigInt(f[1]), sizeBytes: Number(f[2]), dataCrc32c: Number(f[3]) };
    if (g.baseOffset <= prev || g.nextOffset < g.baseOffset || g.nextOffset > offset || !Number.isSafeInteger(g.sizeBytes) || g.dataCrc32c > 0xffffffff) throw new Error(`segment ${entry} out of order`);
    prev = g.baseOffset;
    return g;
  });
}

function parseSnapshot(text: string): { selfKey: string; offset: bigint; indexedFrom: bigint; start: OriginVector; exactFrom: bigint; base: OriginVector; checkpoints: Checkpoint[]; runs: Map<string, RunList>; segments: SegmentIdentity[] } {
  const s = JSON.parse(text) as SnapshotFile;
  if (typeof s === 'object' && s !== null && s.version === 1) throw new OldSnapshot();
  if (typeof s !== 'object' || s === null || s.version !== SNAPSHOT_VERSION) throw new Error(`unknown snapshot version ${String((s as SnapshotFile | null)?.version)}`);
  if (typeof s.selfKey !== 'string') throw new Error('selfKey missing');
  const offset = offsetOf(s.offset, 'offset');
  const indexedFrom = offsetOf(s.indexedFrom, 'indexedFrom');
  const exactFrom = offsetOf(s.exactFrom, 'exactFrom');
  if (!(indexedFrom <= exactFrom && exactFrom <= offset)) throw new Error(`offsets out of order: indexedFrom ${indexedFrom}, exactFrom ${exactFrom}, offset ${offset}`);
  const checkpoints: Checkpoint[] = [];
  if (!Array.isArray(s.checkpoints)) throw new Error('checkpoints missing');
  let prev = indexedFrom;
  for (const c of s.checkpoints) {
    if (!Array.isArray(c) || c.length !== 2) throw new Error('bad checkpoint');
    const at = offsetOf(c[0], 'checkpoint');
    if (at <= prev || at >= exactFrom) throw new Error(`checkpoint ${at} out of order`);
    checkpoints.push({ offset: at, vector: decodeVector(c[1]) });
    prev = at;
  }
  const runs = new Map<string, RunList>();
  if (typeof s.runs !== 'object' || s.runs === null) throw new Error('runs missing');
  for (const [k, flat] of Object.entries(s.runs)) {
    if (typeof flat !== 'string') throw new Error(`runs of ${k} are not a string`);
    const nums = flat.split(',').map((x) => {
      if (!/^-?\d+$/.test(x)) throw new Error(`bad run number ${JSON.stringify(x)}`);
      return BigInt(x);
    });
    if (nums.length % 3 !== 0) throw new Error(`runs of ${k} are not triples`);
    const list = new RunList();
    let end = exactFrom;
    let originEnd = -1n;
    for (let i = 0; i < nums.length; i += 3) {
      const [ls, n, os] = [nums[i], nums[i + 1], nums[i + 2]];
      if (ls < end || n < 1n || ls + n > offset || os <= originEnd || os < 0n) throw new Error(`run ${ls}+${n} of ${k} is out of order`);
      list.push(ls, n, os);
      end = ls + n;
      originEnd = os + n - 1n;
    }
    runs.set(k, list);
  }
  return { selfKey: s.selfKey, offset, indexedFrom, start: decodeVector(s.start), exactFrom, base: decodeVector(s.base), checkpoints, runs, segments: parseSegments(s.segments, offset) };
}

/** A snapshot of the format before segment identities (version 1): rebuilt, it cannot be checked. */
class OldSnapshot extends Error {}

function offsetOf(x: unknown, what: string): bigint {
  if (typeof x !== 'string' || !/^\d+$/.test(x)) throw new Error(`${what} is not an offset: ${JSON.stringify(x)}`);
  return BigInt(x);
}

/** A vector as JSON: origin key -> origin offset as a decimal string. */
export function encodeVector(v: OriginVector): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of v) out[k] = String(x);
  return out;
}

const INT64_MAX = (1n << 63n) - 1n;

/**
 * The inverse of encodeVector. Values may be decimal strings or safe integers, each >= -1
 * (-1: nothing of that origin, the same as absent); anything else throws BAD_CONFIG naming
 * the offending key.
 */
export function decodeVector(o: unknown): OriginVector {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) {
    throw new MeridianError(ErrorCode.BadConfig, `an origin vector must be an object of origin key -> offset, not ${o === null ? 'null' : Array.isArray(o) ? 'an array' : typeof o}`);
  }
  const v: OriginVector = new Map();
  for (const [k, x] of Object.entries(o as Record<string, unknown>)) {
    if (k.length === 0) throw new MeridianError(ErrorCode.BadConfig, 'an origin vector has an empty origin key');
    let n: bigint;
    if (typeof x === 'string' && /^-?\d{1,20}$/.test(x)) n = BigInt(x);
    else if (typeof x === 'number' && Number.isSafeInteger(x)) n = BigInt(x);
    else throw new MeridianError(ErrorCode.BadConfig, `origin vector entry ${JSON.stringify(k)} must be an offset (a decimal string), not ${JSON.stringify(x) ?? typeof x}`);
    if (n < -1n || n > INT64_MAX) throw new MeridianError(ErrorCode.BadConfig, `origin vector entry ${JSON.stringify(k)} is out of range: ${n} (an offset, or -1 for none)`);
    v.set(k, n);
  }
  return v;
}
