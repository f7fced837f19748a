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
 *
 * Region clusters (src/cluster): a state is only kept, and snapshots only written, while
 * this broker leads the log. The state is updated by the leader's own appends only, so on a
 * follower (whose batches are copied by appendAsFollower) it would fall behind the log while
 * its seal listener kept writing snapshots claiming offsets it never saw; a later leadership
 * would trust the newest of them and lose those producers' recent sequences (duplicates, or
 * fatal OUT_OF_ORDER_SEQUENCE). So:
 * - `follow(log)` (the ReplicaManager, when this broker starts following the log) drops the
 *   state and its seal listener and remembers the log end: the point it stopped being led.
 *   Until the next `invalidate`, `forLog` refuses with NOT_LEADER (retriable) instead of
 *   loading, and a load that was running when `follow` came ends with that error instead
 *   of starting again (it would register a seal listener on the follower).
 * - `invalidate(log)` (the ReplicaManager, when this broker becomes leader) drops the state
 *   and marks the log led again. Rule for the files: every producer snapshot past the point
 *   the log stopped being led is deleted (none should exist, as nothing writes them while
 *   following; this also covers one a racing seal wrote). Snapshots at or below that point
 *   were written while leading and describe a prefix this log still holds (a truncation
 *   removes those past its cut), so the next load replays from the newest of them over the
 *   batches copied since: the first idempotent produce after a failover may replay up to
 *   everything copied while following (a header scan), not just one segment.
 * A log never passed to `follow` (single-broker mode, no ReplicaManager) counts as led.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, MeridianError } from '../errors.js';
import { PartitionFiles } from '../storage/partition-files.js';
import type { PartitionLog } from '../storage/partition-log.js';
import { ProducerState } from './producer-state.js';

interface Slot {
  state: Promise<ProducerState>;
  /** A truncation or a leadership change happened after this load began: its state describes another log. */
  stale: boolean;
  /** Stops the loaded state writing snapshots at seal. */
  offSealed?: () => void;
}

export class ProducerStates {
  #slots = new WeakMap<PartitionLog, Slot>();
  /** Logs whose truncations are followed (one listener per log, for its lifetime). */
  #followed = new WeakSet<PartitionLog>();
  /** Logs this broker follows (region clusters), with their end when they stopped being led. */
  #following = new WeakMap<PartitionLog, bigint>();

  forLog(log: PartitionLog): Promise<ProducerState> {
    if (this.#following.has(log)) return Promise.reject(notLed(log));
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
   * This broker leads `log` from now (or it was never followed): forgets its state (the
   * next use rebuilds it from the log, including the batches a follower copied) and deletes
   * the producer snapshots past the point it stopped being led, if it was followed.
   */
  invalidate(log: PartitionLog): void {
    this.#truncated(log);
    const stoppedAt = this.#following.get(log);
    if (stoppedAt === undefined) return;
    this.#following.delete(log);
    let names: string[];
    try {
      names = fs.readdirSync(log.dir);
    } catch (err) {
      // The topic was deleted meanwhile: nothing left to clean.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const name of names) {
      const at = PartitionFiles.producerSnapshotOffset(name);
      if (at !== undefined && at > stoppedAt) fs.rmSync(path.join(log.dir, name), { force: true });
    }
  }

  /**
   * This broker follows `log` from now: forgets its state and stops its snapshots until
   * `invalidate` (becoming leader); `forLog` refuses meanwhile.
   */
  follow(log: PartitionLog): void {
    this.#truncated(log);
    if (!this.#following.has(log)) this.#following.set(log, log.logEndOffset);
  }

  /** The log was truncated, or its leadership changed: forget its state. */
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
    // A load overtaken by `follow` must not reload (a follower's state would write snapshots
    // at each seal): forLog refuses; one overtaken by a truncation starts again.
    if (slot.stale) return this.forLog(log);
    slot.offSealed = log.onSegmentSealed((seg) => {
      state.expire();
      state.writeSnapshot(seg.nextOffset);
    });
    return state;
  }
}

function notLed(log: PartitionLog): MeridianError {
  return new MeridianError(ErrorCode.NotLeader, `${log.dir}: this broker follows the partition, so it keeps no idempotent-producer state for it; produce to its leader`);
}
