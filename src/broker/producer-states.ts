/**
 * The idempotent-producer state of every partition, loaded on first use: newest snapshot,
 * then a replay of the batch headers after it. A snapshot is written each time a segment
 * seals, covering exactly the sealed offsets, which bounds the replay to about one segment.
 *
 * Keyed by the PartitionLog object (a WeakMap), so a deleted topic's state goes with it.
 *
 * Truncation (PartitionLog.truncateTo, failback): the log removes the snapshots past the
 * new end itself, before it cuts anything (so a crash cannot leave one behind); here the
 * in-memory state of the log is dropped when `onTruncated` fires (its seal listener
 * removed) and the next `forLog` rebuilds it from what the log holds now, so an idempotent
 * producer's next sequence follows the batches that remain. A load that a truncation
 * overtook starts again.
 */
import type { PartitionLog } from '../storage/partition-log.js';
import { ProducerState } from './producer-state.js';

interface Slot {
  state: Promise<ProducerState>;
  /** A truncation happened after this load began: its state describes a longer log. */
  stale: boolean;
  /** Stops the loaded state writing snapshots at seal. */
  offSealed?: () => void;
}

export class ProducerStates {
  #slots = new WeakMap<PartitionLog, Slot>();
  /** Logs whose truncations are followed (one listener per log, for its lifetime). */
  #followed = new WeakSet<PartitionLog>();

  forLog(log: PartitionLog): Promise<ProducerState> {
    let slot = this.#slots.get(log);
    if (slot === undefined) {
      if (!this.#followed.has(log)) {
        this.#followed.add(log);
        log.onTruncated(() => this.#truncated(log));
      }
      const s = { stale: false } as Slot;
      s.state = this.#load(log, s);
      this.#slots.set(log, s);
      s.state.catch(() => {
        if (this.#slots.get(log) === s) this.#slots.delete(log);
      });
      slot = s;
    }
    return slot.state;
  }

  /**
   * Forgets the state of `log` (the next use rebuilds it from the log): a follower that
   * becomes leader (src/cluster) copied batches this state never saw.
   */
  invalidate(log: PartitionLog): void {
    this.#truncated(log);
  }

  /** The log was truncated: forget its state (the next use rebuilds it from the log). */
  #truncated(log: PartitionLog): void {
    const slot = this.#slots.get(log);
    if (slot === undefined) return;
    this.#slots.delete(log);
    slot.stale = true;
    slot.offSealed?.();
  }

  async #load(log: PartitionLog, slot: Slot): Promise<ProducerState> {
    const state = new ProducerState(log.dir);
    const from = state.loadSnapshot(log.highWatermark);
    await log.scanBatchHeaders(from, (h) => state.update(h, h.baseOffset, h.baseOffset + BigInt(h.lastOffsetDelta), Date.now()));
    if (slot.stale) return this.forLog(log);
    slot.offSealed = log.onSegmentSealed((seg) => {
      state.expire();
      state.writeSnapshot(seg.nextOffset);
    });
    return state;
  }
}
