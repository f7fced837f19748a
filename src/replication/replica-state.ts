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
import path from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomicSync } from '../storage/fs-util.js';
import type { PartitionLog } from '../storage/partition-log.js';
import { readBatchHeader, type BatchHeader } from '../storage/record-batch.js';
import { RunTracker } from './run-tracker.js';

const SNAPSHOT_FILE = 'replication-state.json';
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
    let p = 0;
    while (p < r.records.length) {
      const h = readBatchHeader(r.records, p);
      const size = h.batchLength + 12;
      visit(r.records.subarray(p, p + size), h);
      p += size;
      offset = h.baseOffset + BigInt(h.lastOffsetDelta) + 1n;
    }
  }
}

export class ReplicaState {
  readonly log: PartitionLog;
  /** The live table: everything appended so far. */
  readonly table: ReplicaTable;
  #snapshot: { offset: bigint; table: ReplicaTable };
  #snapshotting: Promise<void> = Promise.resolve();
  #offSealed: () => void;
  #logger?: Logger;

  private constructor(log: PartitionLog, snapshot: { offset: bigint; table: ReplicaTable }, table: ReplicaTable, logger?: Logger) {
    this.log = log;
    this.#snapshot = snapshot;
    this.table = table;
    this.#logger = logger;
    this.#offSealed = log.onSegmentSealed((seg) => {
      this.#snapshotting = this.#snapshotting.then(() => this.#writeSnapshot(seg.nextOffset)).catch((err) => {
        this.#logger?.warn({ err: (err as Error).message, dir: log.dir }, 'replication state snapshot failed; the next seal retries');
      });
    });
  }

  static async load(log: PartitionLog, logger?: Logger): Promise<ReplicaState> {
    const snapshot = readSnapshot(log, logger);
    const table = snapshot.table.copy();
    const tracker = new RunTracker();
    await walkBatches(log, snapshot.offset, log.highWatermark, (b, h) => table.observe(tracker, b, h));
    return new ReplicaState(log, snapshot, table, logger);
  }

  /** Stops following seals; waits for a snapshot being written. */
  async close(): Promise<void> {
    this.#offSealed();
    await this.#snapshotting;
  }

  async #writeSnapshot(upTo: bigint): Promise<void> {
    if (upTo <= this.#snapshot.offset) return;
    const table = this.#snapshot.table.copy();
    const tracker = new RunTracker();
    await walkBatches(this.log, this.#snapshot.offset, upTo, (b, h) => table.observe(tracker, b, h));
    const snap: Snapshot = {
      offset: String(upTo),
      origins: Object.fromEntries([...table.origins].map(([k, v]) => [k, String(v)])),
      senders: Object.fromEntries([...table.senders].map(([k, v]) => [k, String(v)])),
    };
    writeFileAtomicSync(path.join(this.log.dir, SNAPSHOT_FILE), JSON.stringify(snap) + '\n');
    this.#snapshot = { offset: upTo, table };
  }
}

function readSnapshot(log: PartitionLog, logger?: Logger): { offset: bigint; table: ReplicaTable } {
  const file = path.join(log.dir, SNAPSHOT_FILE);
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

/** Every partition's ReplicaState, loaded on first use; keyed by the log object. */
export class ReplicaStates {
  #states = new Map<PartitionLog, Promise<ReplicaState>>();
  #logger?: Logger;

  constructor(logger?: Logger) {
    this.#logger = logger;
  }

  forLog(log: PartitionLog): Promise<ReplicaState> {
    let p = this.#states.get(log);
    if (p === undefined) {
      p = ReplicaState.load(log, this.#logger);
      this.#states.set(log, p);
      p.catch(() => this.#states.delete(log));
    }
    return p;
  }

  /** Forgets a log (its topic was deleted). */
  drop(log: PartitionLog): void {
    const p = this.#states.get(log);
    this.#states.delete(log);
    void p?.then((s) => s.close(), () => {});
  }

  async close(): Promise<void> {
    const all = [...this.#states.values()];
    this.#states.clear();
    await Promise.allSettled(all.map(async (p) => (await p).close()));
  }
}
