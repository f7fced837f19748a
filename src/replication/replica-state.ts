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
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { writeFileAtomicSync } from '../storage/fs-util.js';
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
  #logger?: Logger;

  constructor(log: PartitionLog, logger?: Logger) {
    this.log = log;
    this.#logger = logger;
    const file = PartitionFiles.replicationState(log.dir);
    const existed = fs.existsSync(file);
    this.#snapshot = readSnapshot(log, logger);
    // The file marks the partition as one that may hold markers: from now on it is followed.
    if (!existed) this.#write(this.#snapshot);
    this.#offSealed = log.onSegmentSealed((seg) => this.fold(seg.nextOffset));
    // Segments sealed before this process started (or before a crash let it write their
    // snapshot) are folded now, in the background.
    const sealed = log.segments().filter((x) => x.sealed).at(-1);
    if (sealed !== undefined) this.fold(sealed.nextOffset);
  }

  /** The snapshot once every fold asked for so far is done. */
  async current(): Promise<{ offset: bigint; table: ReplicaTable }> {
    await this.#chain;
    return this.#snapshot;
  }

  /** Whether retention may delete `segment`: only once the snapshot holds it (else it is folded now). */
  mayDelete(segment: SegmentInfo): boolean {
    if (segment.nextOffset <= this.#snapshot.offset) return true;
    this.fold(segment.nextOffset);
    return false;
  }

  fold(upTo: bigint): void {
    this.#chain = this.#chain
      .then(() => this.#fold(upTo))
      .catch((err) => this.#logger?.warn({ err: (err as Error).message, dir: this.log.dir }, 'replication state snapshot failed; the next seal retries'));
  }

  async close(): Promise<void> {
    this.#offSealed();
    await this.#chain;
  }

  async #fold(upTo: bigint): Promise<void> {
    if (upTo <= this.#snapshot.offset) return;
    if (this.#snapshot.offset < this.log.logStartOffset) {
      // Only possible for data written before snapshots were followed: say so loudly.
      this.#logger?.warn({ dir: this.log.dir, snapshot: String(this.#snapshot.offset), logStart: String(this.log.logStartOffset) }, 'replication markers below the log start were deleted before the dedup snapshot held them');
    }
    const table = this.#snapshot.table.copy();
    const tracker = new RunTracker();
    await walkBatches(this.log, this.#snapshot.offset, upTo, (b, h) => table.observe(tracker, b, h));
    const next = { offset: upTo, table };
    this.#write(next);
    this.#snapshot = next;
  }

  #write(snapshot: { offset: bigint; table: ReplicaTable }): void {
    const snap: Snapshot = {
      offset: String(snapshot.offset),
      origins: Object.fromEntries([...snapshot.table.origins].map(([k, v]) => [k, String(v)])),
      senders: Object.fromEntries([...snapshot.table.senders].map(([k, v]) => [k, String(v)])),
    };
    writeFileAtomicSync(PartitionFiles.replicationState(this.log.dir), JSON.stringify(snap) + '\n');
  }
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

function readSnapshot(log: PartitionLog, logger?: Logger): { offset: bigint; table: ReplicaTable } {
  const file = PartitionFiles.replicationState(log.dir);
  const empty = { offset: log.logStartOffset, table: new ReplicaTable() };
  if (!fs.existsSync(file)) return empty;
  try {
    const s = JSON.parse(fs.readFileSync(file, 'utf8')) as Snapshot;
    const offset = BigInt(s.offset);
    if (offset > log.highWatermark) {
      // The log lost data the snapshot covered (it cannot, short of a lost disk): rescan.
      logger?.warn({ dir: log.dir, snapshot: s.offset, logEnd: String(log.highWatermark) }, 'replication state snapshot is past the log end; rebuilding from the log');
      return empty;
    }
    const table = new ReplicaTable();
    for (const [k, v] of Object.entries(s.origins)) table.origins.set(k, BigInt(v));
    for (const [k, v] of Object.entries(s.senders)) table.senders.set(k, BigInt(v));
    return { offset: offset < log.logStartOffset ? log.logStartOffset : offset, table };
  } catch (err) {
    logger?.warn({ dir: log.dir, err: (err as Error).message }, 'replication state snapshot unreadable; rebuilding from the log');
    return empty;
  }
}

/**
 * Every partition's ReplicaState, loaded on first use, and the snapshot followers of every
 * partition that has a snapshot (started with the broker). Keyed by the log object.
 */
export class ReplicaStates {
  #states = new Map<PartitionLog, Promise<ReplicaState>>();
  #followers = new Map<PartitionLog, SnapshotFollower>();
  #logger?: Logger;

  constructor(logger?: Logger) {
    this.#logger = logger;
  }

  /** Follows a partition's snapshot from now on if it has one (called at broker start). */
  followIfTracked(log: PartitionLog): void {
    if (!this.#followers.has(log) && fs.existsSync(PartitionFiles.replicationState(log.dir))) this.#follower(log);
  }

  #follower(log: PartitionLog): SnapshotFollower {
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
      p = ReplicaState.load(log, this.#logger, this.#follower(log));
      this.#states.set(log, p);
      p.catch(() => this.#states.delete(log));
    }
    return p;
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
    for (const log of new Set([...this.#states.keys(), ...this.#followers.keys()])) if (!isLive(log)) this.drop(log);
  }

  /** Forgets a log (its topic was deleted). */
  drop(log: PartitionLog): void {
    this.#states.delete(log);
    const f = this.#followers.get(log);
    this.#followers.delete(log);
    void f?.close();
  }

  async close(): Promise<void> {
    const followers = [...this.#followers.values()];
    this.#followers.clear();
    this.#states.clear();
    await Promise.allSettled(followers.map((f) => f.close()));
  }
}
