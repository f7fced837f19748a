/**
 * The dedup table of one partition, on the receiving side of replication:
 * - per origin (region and topic id there), the last origin offset this log holds (a batch
 *   at or below it is a duplicate, whichever path it came by);
 * - per sender (region and topic id there), the last offset of the sender's log this log
 *   holds (where that sender's worker resumes; the remote, not the sender, is the source of
 *   truth).
 * Keying by topic id too means a topic deleted and recreated in a region (its offsets start
 * at 0 again) is a new origin, not a stream of duplicates.
 *
 * The table is a function of the log: it is rebuilt by walking the markers. A snapshot
 * written each time a segment seals bounds the walk to the active segment. The snapshot is
 * computed by scanning the sealed segment from the previous snapshot, never copied from the
 * live table, because the live table may already reflect appends that are not yet durable.
 *
 * Truncation (PartitionLog.truncateTo, failback) takes records, and their markers, out of
 * the log, so neither table may still count them: ReplicaStates drops the live table (the
 * next use rebuilds it, and a load the truncation overtook starts again), and the
 * SnapshotFollower, if its snapshot lies past the new end, resets it to an empty one at the
 * log start, rewrites replication-state.json and folds the sealed segments again. The
 * markers of segments already deleted below the log start cannot be recovered that way (a
 * resend of their batches is appended again rather than recognised; it is logged). A crash
 * before the rewrite leaves a snapshot past the end, which the follower rewrites when it
 * starts (with the broker, before anything appends).
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { writeFileAtomic, writeFileAtomicSync } from '../storage/fs-util.js';
import { PartitionFiles } from '../storage/partition-files.js';
import type { PartitionLog } from '../storage/partition-log.js';
import { lastOffsetOf, storedBatches, type BatchHeader } from '../storage/record-batch.js';
import type { SegmentInfo } from '../storage/segment.js';
import { RunTracker } from './run-tracker.js';

const SCAN_BYTES = 1024 * 1024;

interface Snapshot {
  offset: string;
  origins: Record<string, string>;
  senders: Record<string, string>;
}

export class ReplicaTable {
  readonly origins = new Map<string, bigint>();
  readonly senders = new Map<string, bigint>();

  /** Applies batches that are in the log in this order, starting at a run boundary. */
  observe(tracker: RunTracker, batch: Buffer, h: BatchHeader): void {
    const kind = tracker.classify(batch, h);
    if (kind.kind !== 'replicated') return;
    const o = kind.origin;
    const delta = BigInt(h.lastOffsetDelta);
    raise(this.origins, originKey(o.region, o.topicId), o.baseOffset + delta);
    // The sender resumes after a whole run only: a run cut short by a torn write is resent
    // from its start (and dedups by origin offset), so a relaying sender never resumes in
    // the middle of a run it received, where it could not tell whose batches follow.
    if (o.lastOfRun) raise(this.senders, originKey(o.senderRegion, o.senderTopicId), o.marker.senderEndOffset);
  }

  lastOrigin(region: string, topicId: string): bigint {
    return this.origins.get(originKey(region, topicId)) ?? -1n;
  }

  lastSender(region: string, topicId: string): bigint {
    return this.senders.get(originKey(region, topicId)) ?? -1n;
  }

  copy(): ReplicaTable {
    const t = new ReplicaTable();
    for (const [k, v] of this.origins) t.origins.set(k, v);
    for (const [k, v] of this.senders) t.senders.set(k, v);
    return t;
  }
}

/** The table's key for a region's copy of a topic. */
export function originKey(region: string, topicId: string): string {
  return `${region}/${topicId}`;
}

export function raise(map: Map<string, bigint>, key: string, value: bigint): void {
  const cur = map.get(key);
  if (cur === undefined || value > cur) map.set(key, value);
}

/** Walks whole batches of `log` in [from, to), in order, with one tracker. */
export async function walkBatches(log: PartitionLog, from: bigint, to: bigint, visit: (batch: Buffer, h: BatchHeader) => void): Promise<void> {
  let offset = from < log.logStartOffset ? log.logStartOffset : from;
  while (offset < to) {
    const r = await log.read(offset, SCAN_BYTES, { upTo: to });
    if (r.records.length === 0) break;
    for (const { buf, h } of storedBatches(r.records)) {
      visit(buf, h);
      offset = lastOffsetOf(h) + 1n;
    }
  }
}

/**
 * Keeps a partition's snapshot current: each sealed segment is folded into it (scanned from
 * the previous snapshot, never copied from the live table, which may reflect appends that
 * are not yet durable), and `mayDelete` (the `dedup-snapshot` retention rule, bound through
 * ReplicaStates in storage/retention-guards.ts) keeps every segment until it is folded, so
 * no marker is ever deleted before the snapshot holds what it said. Runs for every
 * partition that has a snapshot file, from broker start, whether or not its live table is
 * loaded.
 */
export class SnapshotFollower {
  readonly log: PartitionLog;
  #snapshot: { offset: bigint; table: ReplicaTable };
  #chain: Promise<void> = Promise.resolve();
  #offSealed: () => void;
  #offTruncated: () => void;
  /** Bumped by each truncation: a fold that began before one does not write its result. */
  #truncations = 0;
  /** Whether replication-state.json exists for this partition (written or found at start). */
  #onDisk: boolean;
  #logger?: Logger;

  constructor(log: PartitionLog, logger?: Logger) {
    this.log = log;
    this.#logger = logger;
    const file = PartitionFiles.replicationState(log.dir);
    const existed = fs.existsSync(file);
    const { snapshot, rebuilt } = readSnapshot(log, logger);
    this.#snapshot = snapshot;
    this.#onDisk = existed && !rebuilt;
    // A snapshot past the log end (a crash after a truncation, before its rewrite) is
    // replaced at once, before the log can grow past it again and make it look valid.
    if (rebuilt) {
      writeFileAtomicSync(PartitionFiles.replicationState(log.dir), serialise(snapshot));
      this.#onDisk = true;
    }
    // A new partition's file marks it as one that may hold markers (from now on it is followed
    // at every start): written in the background, and `current()` waits for it, so it is on
    // disk before the first marker can be appended. Written synchronously, 10,000 partitions'
    // first handshakes stalled the event loop for seconds (two fsyncs each).
    if (!this.#onDisk) this.#enqueue(() => this.#write(this.#snapshot)).catch(() => {});
    this.#offSealed = log.onSegmentSealed((seg) => this.fold(seg.nextOffset));
    this.#offTruncated = log.onTruncated((offset) => this.truncated(offset));
    // Segments sealed before this process started (or before a crash let it write their
    // snapshot) are folded now, in the background.
    const sealed = log.segments().filter((x) => x.sealed).at(-1);
    if (sealed !== undefined) this.fold(sealed.nextOffset);
  }

  /** The snapshot once every fold asked for so far is done. */
  async current(): Promise<{ offset: bigint; table: ReplicaTable }> {
    await this.#chain;
    // The first write failed (a full disk, say): try again, and fail the caller if it fails.
    if (!this.#onDisk) await this.#enqueue(() => (this.#onDisk ? undefined : this.#write(this.#snapshot)));
    return this.#snapshot;
  }

  /** Whether retention may delete `segment`: only once the snapshot holds it (else it is folded now). */
  mayDelete(segment: SegmentInfo): boolean {
    if (segment.nextOffset <= this.#snapshot.offset) return true;
    this.fold(segment.nextOffset);
    return false;
  }

  /**
   * The log was truncated to `offset`: a snapshot past it is replaced by an empty one at the
   * log start (in memory now, so `mayDelete` keeps every segment until it is folded again;
   * on disk next in the chain), and the sealed segments are folded again. Folds under way
   * do not write their result.
   */
  truncated(offset: bigint): void {
    this.#truncations++;
    if (this.#snapshot.offset > offset) {
      const start = this.log.logStartOffset;
      this.#logger?.warn(
        { dir: this.log.dir, snapshot: String(this.#snapshot.offset), truncatedTo: String(offset), logStart: String(start) },
        start > 0n
          ? 'replication state snapshot was past the truncation point: rebuilding it from the log start (markers of segments deleted below it are no longer known)'
          : 'replication state snapshot was past the truncation point: rebuilding it from the log',
      );
      const reset = { offset: start, table: new ReplicaTable() };
      this.#snapshot = reset;
      this.#enqueue(async () => {
        if (this.#snapshot === reset) await this.#write(reset);
      }).catch((err) => this.#logger?.warn({ err: (err as Error).message, dir: this.log.dir }, 'replication state snapshot rewrite after truncation failed; the next seal retries'));
    }
    const sealed = this.log.segments().filter((x) => x.sealed).at(-1);
    if (sealed !== undefined) this.fold(sealed.nextOffset);
  }

  fold(upTo: bigint): void {
    this.#enqueue(() => this.#fold(upTo)).catch((err) => this.#logger?.warn({ err: (err as Error).message, dir: this.log.dir }, 'replication state snapshot failed; the next seal retries'));
  }

  /** Runs `fn` after everything queued before it; the queue goes on whether it fails or not. */
  #enqueue(fn: () => Promise<void> | undefined): Promise<void> {
    const run = this.#chain.then(fn);
    this.#chain = run.catch(() => {});
    return run;
  }

  async close(): Promise<void> {
    this.#offSealed();
    this.#offTruncated();
    await this.#chain;
  }

  async #fold(upTo: bigint): Promise<void> {
    // Past the end: asked for before a truncation took the segment away.
    if (upTo <= this.#snapshot.offset || upTo > this.log.logEndOffset) return;
    const truncations = this.#truncations;
    const base = this.#snapshot;
    if (this.#snapshot.offset < this.log.logStartOffset) {
      // Only possible for data written before snapshots were followed: say so loudly.
      this.#logger?.warn({ dir: this.log.dir, snapshot: String(this.#snapshot.offset), logStart: String(this.log.logStartOffset) }, 'replication markers below the log start were deleted before the dedup snapshot held them');
    }
    const table = base.table.copy();
    const tracker = new RunTracker();
    await walkBatches(this.log, base.offset, upTo, (b, h) => table.observe(tracker, b, h));
    // A truncation during the walk: what was read may be gone (truncated() asked again).
    if (truncations !== this.#truncations || this.#snapshot !== base) return;
    const next = { offset: upTo, table };
    await this.#write(next);
    // A truncation while it was written: its reset stands (it is written next in the queue).
    if (truncations !== this.#truncations || this.#snapshot !== base) return;
    this.#snapshot = next;
  }

  async #write(snapshot: { offset: bigint; table: ReplicaTable }): Promise<void> {
    await writeFileAtomic(PartitionFiles.replicationState(this.log.dir), serialise(snapshot));
    this.#onDisk = true;
  }
}

function serialise(snapshot: { offset: bigint; table: ReplicaTable }): string {
  const snap: Snapshot = {
    offset: String(snapshot.offset),
    origins: Object.fromEntries([...snapshot.table.origins].map(([k, v]) => [k, String(v)])),
    senders: Object.fromEntries([...snapshot.table.senders].map(([k, v]) => [k, String(v)])),
  };
  return JSON.stringify(snap) + '\n';
}

export class ReplicaState {
  readonly log: PartitionLog;
  /** The live table: everything appended so far. */
  readonly table: ReplicaTable;
  #follower: SnapshotFollower;
  #ownsFollower: boolean;

  private constructor(log: PartitionLog, table: ReplicaTable, follower: SnapshotFollower, ownsFollower: boolean) {
    this.log = log;
    this.table = table;
    this.#follower = follower;
    this.#ownsFollower = ownsFollower;
  }

  /** Rebuilds the live table: the follower's snapshot, then the markers after it. */
  static async load(log: PartitionLog, logger?: Logger, follower?: SnapshotFollower): Promise<ReplicaState> {
    const f = follower ?? new SnapshotFollower(log, logger);
    const snapshot = await f.current();
    const table = snapshot.table.copy();
    const tracker = new RunTracker();
    await walkBatches(log, snapshot.offset, log.highWatermark, (b, h) => table.observe(tracker, b, h));
    return new ReplicaState(log, table, f, follower === undefined);
  }

  /** Stops following seals (if this state started the follower); waits for a snapshot being written. */
  async close(): Promise<void> {
    if (this.#ownsFollower) await this.#follower.close();
  }
}

/** The snapshot on disk; `rebuilt` when the file lies past the log end (the caller rewrites it at once). */
function readSnapshot(log: PartitionLog, logger?: Logger): { snapshot: { offset: bigint; table: ReplicaTable }; rebuilt: boolean } {
  const file = PartitionFiles.replicationState(log.dir);
  const empty = { snapshot: { offset: log.logStartOffset, table: new ReplicaTable() }, rebuilt: true };
  if (!fs.existsSync(file)) return { ...empty, rebuilt: false };
  try {
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as Snapshot;
    const offset = BigInt(s.offset);
    if (offset > log.highWatermark) {
      // The log lost data the snapshot covered (a truncation the snapshot was not yet
      // rewritten for, or a lost disk): rescan.
      logger?.warn({ dir: log.dir, snapshot: s.offset, logEnd: String(log.highWatermark) }, 'replication state snapshot is past the log end; rebuilding from the log');
      return empty;
    }
    const table = new ReplicaTable();
    for (const [k, v] of Object.entries(s.origins)) table.origins.set(k, BigInt(v));
    for (const [k, v] of Object.entries(s.senders)) table.senders.set(k, BigInt(v));
    return { snapshot: { offset: offset < log.logStartOffset ? log.logStartOffset : offset, table }, rebuilt: false };
  } catch (err) {
    logger?.warn({ dir: log.dir, err: (err as Error).message }, 'replication state snapshot unreadable; rebuilding from the log');
    return { ...empty, rebuilt: false };
  }
}

/**
 * Every partition's ReplicaState, loaded on first use, and the snapshot followers of every
 * partition that has a snapshot (started with the broker). Keyed by the log object.
 */
export class ReplicaStates {
  #states = new Map<PartitionLog, Promise<ReplicaState>>();
  #followers = new Map<PartitionLog, SnapshotFollower>();
  /** Per followed log: its truncation listener's remover, and how many truncations it saw. */
  #truncations = new Map<PartitionLog, { off: () => void; count: number }>();
  #logger?: Logger;

  constructor(logger?: Logger) {
    this.#logger = logger;
  }

  /** Follows a partition's snapshot from now on if it has one (called at broker start). */
  followIfTracked(log: PartitionLog): void {
    if (!this.#followers.has(log) && fs.existsSync(PartitionFiles.replicationState(log.dir))) this.#follower(log);
  }

  #follower(log: PartitionLog): SnapshotFollower {
    this.#watch(log);
    let f = this.#followers.get(log);
    if (f === undefined) {
      f = new SnapshotFollower(log, this.#logger);
      this.#followers.set(log, f);
    }
    return f;
  }

  /**
   * The `dedup-snapshot` retention rule (storage/retention-guards.ts): a followed partition
   * keeps each segment until its markers are in the snapshot.
   */
  mayDeleteLocal(log: PartitionLog, segment: SegmentInfo): boolean {
    return this.#followers.get(log)?.mayDelete(segment) ?? true;
  }

  forLog(log: PartitionLog): Promise<ReplicaState> {
    let p = this.#states.get(log);
    if (p === undefined) {
      const loading = this.#load(log);
      p = loading;
      this.#states.set(log, loading);
      loading.catch(() => {
        if (this.#states.get(log) === loading) this.#states.delete(log);
      });
    }
    return p;
  }

  /** Loads the live table; again if a truncation happened while it loaded. */
  async #load(log: PartitionLog): Promise<ReplicaState> {
    for (;;) {
      const follower = this.#follower(log);
      const seen = this.#truncations.get(log)?.count;
      const state = await ReplicaState.load(log, this.#logger, follower);
      if (this.#truncations.get(log)?.count === seen) return state;
    }
  }

  /** Follows the log's truncations (once per log): each drops its live table. */
  #watch(log: PartitionLog): void {
    if (this.#truncations.has(log)) return;
    const entry = {
      count: 0,
      off: log.onTruncated(() => {
        entry.count++;
        this.invalidate(log);
      }),
    };
    this.#truncations.set(log, entry);
  }

  /**
   * Drops the live table of `log` so the next use rebuilds it from the log: an append whose
   * batches the table already counted has failed, and the table must never vouch for a
   * batch the log does not hold.
   */
  invalidate(log: PartitionLog): void {
    this.#states.delete(log);
  }

  /** Forgets every log `isLive` rejects (their topics were deleted). */
  retain(isLive: (log: PartitionLog) => boolean): void {
    for (const log of new Set([...this.#states.keys(), ...this.#followers.keys(), ...this.#truncations.keys()])) if (!isLive(log)) this.drop(log);
  }

  /** Forgets a log (its topic was deleted). */
  drop(log: PartitionLog): void {
    this.#states.delete(log);
    this.#truncations.get(log)?.off();
    this.#truncations.delete(log);
    const f = this.#followers.get(log);
    this.#followers.delete(log);
    void f?.close();
  }

  async close(): Promise<void> {
    const followers = [...this.#followers.values()];
    this.#followers.clear();
    this.#states.clear();
    for (const t of this.#truncations.values()) t.off();
    this.#truncations.clear();
    await Promise.allSettled(followers.map((f) => f.close()));
  }
}
