/**
 * Idempotent-producer state of one partition: per producer id, its epoch and the metadata
 * of its last five batches (Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN), so that a
 * retried batch is recognised and answered with its original offsets instead of being
 * written twice.
 *
 * Rules (Kafka's ProducerAppendInfo.checkSequence):
 * - epoch below the current one → INVALID_PRODUCER_EPOCH
 * - a batch equal to one of the cached five → duplicate: acknowledged with its offsets
 * - new epoch → the sequence must start at 0, else OUT_OF_ORDER_SEQUENCE
 * - same epoch → the sequence must follow the last one (wrapping at INT32_MAX), else
 *   OUT_OF_ORDER_SEQUENCE
 * - an unknown producer (new, or expired, or from before a restart without state) may
 *   start at any sequence, as modern Kafka allows.
 *
 * State changes when the log assigns offsets (synchronously, in append order), so two
 * connections racing with the same batch see each other. It survives restarts through
 * snapshots written when a segment seals (covering exactly the sealed offsets) plus a
 * replay of batch headers after the snapshot.
 */
import fs from 'node:fs';
import { writeFileAtomicSync } from '../storage/fs-util.js';
import { PartitionFiles } from '../storage/partition-files.js';
import type { BatchHeader } from '../storage/record-batch.js';
import { ErrorCode, MeridianError } from '../errors.js';

const RETAINED_BATCHES = 5;
const KEEP_SNAPSHOTS = 2;

export interface BatchMeta {
  epoch: number;
  firstSeq: number;
  lastSeq: number;
  baseOffset: bigint;
  lastOffset: bigint;
  /** Producer's max timestamp of the batch, for expiry. */
  timestamp: number;
  /** The append's completion while it is in flight (never persisted). */
  pending?: Promise<unknown>;
}

interface Entry {
  epoch: number;
  batches: BatchMeta[];
  lastSeenMs: number;
}

export type SequenceCheck =
  | { kind: 'append' }
  | { kind: 'duplicate'; baseOffset: bigint; lastOffset: bigint; pending?: Promise<unknown> }
  | { kind: 'error'; error: MeridianError };

const APPEND: SequenceCheck = { kind: 'append' };

function lastSeqOf(h: BatchHeader): number {
  // Sequences wrap at INT32_MAX back to 0.
  return (h.baseSequence + h.lastOffsetDelta) % 0x80000000;
}

function nextSeq(seq: number): number {
  return seq === 0x7fffffff ? 0 : seq + 1;
}

export class ProducerState {
  readonly #dir: string;
  readonly #entries = new Map<bigint, Entry>();
  readonly #expiryMs: number;

  constructor(dir: string, expiryMs = 7 * 24 * 3600 * 1000) {
    this.#dir = dir;
    this.#expiryMs = expiryMs;
  }

  get producerCount(): number {
    return this.#entries.size;
  }

  check(h: BatchHeader): SequenceCheck {
    if (h.producerId < 0n) return APPEND;
    const e = this.#entries.get(h.producerId);
    if (e === undefined) return APPEND;
    if (h.producerEpoch < e.epoch) {
      return { kind: 'error', error: new MeridianError(ErrorCode.InvalidProducerEpoch, `producer ${h.producerId} epoch ${h.producerEpoch} is older than ${e.epoch}`) };
    }
    const lastSeq = lastSeqOf(h);
    if (h.producerEpoch === e.epoch) {
      const dup = e.batches.find((b) => b.firstSeq === h.baseSequence && b.lastSeq === lastSeq);
      if (dup) return { kind: 'duplicate', baseOffset: dup.baseOffset, lastOffset: dup.lastOffset, pending: dup.pending };
      const last = e.batches[e.batches.length - 1];
      if (last !== undefined && h.baseSequence !== nextSeq(last.lastSeq)) {
        return { kind: 'error', error: new MeridianError(ErrorCode.OutOfOrderSequence, `producer ${h.producerId} sent sequence ${h.baseSequence} after ${last.lastSeq}`) };
      }
      return APPEND;
    }
    if (h.baseSequence !== 0) {
      return { kind: 'error', error: new MeridianError(ErrorCode.OutOfOrderSequence, `producer ${h.producerId} started epoch ${h.producerEpoch} at sequence ${h.baseSequence}, not 0`) };
    }
    return APPEND;
  }

  /**
   * Records an appended batch (call right after the log assigned its offsets). With
   * `pending`, the batch is only vouched for while its append has not failed: if it fails,
   * the batch and every later batch of the same producer are forgotten, so a retry is
   * appended again (or refused as out of order) rather than acknowledged as a duplicate of
   * records the log never stored (Kafka updates producer state only after the append).
   */
  update(h: BatchHeader, baseOffset: bigint, lastOffset: bigint, nowMs = Date.now(), pending?: Promise<unknown>): void {
    if (h.producerId < 0n) return;
    const meta: BatchMeta = { epoch: h.producerEpoch, firstSeq: h.baseSequence, lastSeq: lastSeqOf(h), baseOffset, lastOffset, timestamp: Number(h.maxTimestamp) };
    let e = this.#entries.get(h.producerId);
    if (e === undefined || h.producerEpoch > e.epoch) {
      e = { epoch: h.producerEpoch, batches: [], lastSeenMs: nowMs };
      this.#entries.set(h.producerId, e);
    }
    e.batches.push(meta);
    if (e.batches.length > RETAINED_BATCHES) e.batches.shift();
    e.lastSeenMs = nowMs;
    if (pending) {
      meta.pending = pending;
      const entry = e;
      pending.then(
        () => delete meta.pending,
        () => {
          delete meta.pending;
          this.#forget(h.producerId, entry, meta);
        },
      );
    }
  }

  /** Drops a failed batch and the producer's batches after it (their appends failed too). */
  #forget(producerId: bigint, entry: Entry, meta: BatchMeta): void {
    const i = entry.batches.indexOf(meta);
    if (i < 0) return;
    entry.batches.splice(i);
    if (entry.batches.length === 0 && this.#entries.get(producerId) === entry) this.#entries.delete(producerId);
  }

  /** Forgets producers idle longer than the expiry (Kafka's producer.id.expiration.ms). */
  expire(nowMs = Date.now()): number {
    let n = 0;
    for (const [pid, e] of this.#entries) {
      if (nowMs - e.lastSeenMs > this.#expiryMs) {
        this.#entries.delete(pid);
        n++;
      }
    }
    return n;
  }

  /**
   * Writes the state as of `upTo` (exclusive): batches at or past it are left out, since a
   * crash may still take them back. Keeps the newest two snapshots.
   */
  writeSnapshot(upTo: bigint): void {
    const producers: Array<{ pid: string; lastSeenMs: number; batches: Array<Omit<BatchMeta, 'baseOffset' | 'lastOffset' | 'pending'> & { baseOffset: string; lastOffset: string }> }> = [];
    for (const [pid, e] of this.#entries) {
      const kept = e.batches.filter((b) => b.lastOffset < upTo);
      if (kept.length === 0) continue;
      producers.push({
        pid: String(pid),
        lastSeenMs: e.lastSeenMs,
        batches: kept.map((b) => ({ epoch: b.epoch, firstSeq: b.firstSeq, lastSeq: b.lastSeq, timestamp: b.timestamp, baseOffset: String(b.baseOffset), lastOffset: String(b.lastOffset) })),
      });
    }
    writeFileAtomicSync(PartitionFiles.producerSnapshot(this.#dir, upTo), JSON.stringify({ version: 1, offset: String(upTo), producers }));
    const all = this.#snapshotOffsets();
    for (const old of all.slice(0, Math.max(0, all.length - KEEP_SNAPSHOTS))) fs.rmSync(PartitionFiles.producerSnapshot(this.#dir, old), { force: true });
  }

  /** The offsets of the snapshots on disk, oldest first. */
  #snapshotOffsets(): bigint[] {
    return fs
      .readdirSync(this.#dir)
      .map((f) => PartitionFiles.producerSnapshotOffset(f))
      .filter((o): o is bigint => o !== undefined)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /**
   * Loads the newest readable snapshot at or below `maxOffset` and returns the offset from
   * which batches must be replayed (`update`) to bring the state up to the log's end.
   * Snapshots beyond the log's end (the log lost a tail) are deleted.
   */
  loadSnapshot(maxOffset: bigint): bigint {
    this.#entries.clear();
    for (const offset of this.#snapshotOffsets().reverse()) {
      const file = PartitionFiles.producerSnapshot(this.#dir, offset);
      if (offset > maxOffset) {
        fs.rmSync(file, { force: true });
        continue;
      }
      try {
        const snap = JSON.parse(fs.readFileSync(file, 'utf8')) as {
          producers: Array<{ pid: string; lastSeenMs: number; batches: Array<BatchMeta & { baseOffset: string; lastOffset: string }> }>;
        };
        for (const p of snap.producers) {
          const batches = p.batches.map((b) => ({ ...b, baseOffset: BigInt(b.baseOffset), lastOffset: BigInt(b.lastOffset) }));
          this.#entries.set(BigInt(p.pid), { epoch: batches[batches.length - 1].epoch, batches, lastSeenMs: p.lastSeenMs });
        }
        return offset;
      } catch {
        fs.rmSync(file, { force: true });
      }
    }
    return 0n;
  }
}
