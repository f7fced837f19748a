/**
 * The idempotent-producer state of every partition, loaded on first use: newest snapshot,
 * then a replay of the batch headers after it. A snapshot is written each time a segment
 * seals, covering exactly the sealed offsets, which bounds the replay to about one segment.
 *
 * Keyed by the PartitionLog object (a WeakMap), so a deleted topic's state goes with it.
 */
import type { PartitionLog } from '../storage/partition-log.js';
import { ProducerState } from './producer-state.js';

export class ProducerStates {
  #states = new WeakMap<PartitionLog, Promise<ProducerState>>();

  forLog(log: PartitionLog): Promise<ProducerState> {
    let p = this.#states.get(log);
    if (p === undefined) {
      p = this.#load(log);
      this.#states.set(log, p);
      p.catch(() => this.#states.delete(log));
    }
    return p;
  }

  async #load(log: PartitionLog): Promise<ProducerState> {
    const state = new ProducerState(log.dir);
    const from = state.loadSnapshot(log.highWatermark);
    await log.scanBatchHeaders(from, (h) => state.update(h, h.baseOffset, h.baseOffset + BigInt(h.lastOffsetDelta), Date.now()));
    log.onSegmentSealed((seg) => {
      state.expire();
      state.writeSnapshot(seg.nextOffset);
    });
    return state;
  }
}
