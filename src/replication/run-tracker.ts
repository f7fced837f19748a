/**
 * Tells, walking a partition log in order, where each data batch came from: produced here, or
 * replicated from another region (and then its origin offsets and hop path), by following
 * the markers. A marker describes the batches right after it; each is recognised by its
 * CRC, so a run cut short by a torn write ends at the first batch that does not match.
 */
import { isControlBatch, type BatchHeader } from '../storage/record-batch.js';
import { decodeMarker, type Marker } from './marker.js';

export interface ReplicatedOrigin {
  region: string;
  topicId: string;
  partition: number;
  /** The batch's base offset in the origin region's log. */
  baseOffset: bigint;
  /** The sender's base offset for this batch (in the region that sent it here). */
  senderBaseOffset: bigint;
  senderRegion: string;
  senderTopicId: string;
  hops: readonly string[];
  /** The marker's run is complete with this batch. */
  lastOfRun: boolean;
  marker: Marker;
}

export type BatchKind = { kind: 'marker'; marker: Marker } | { kind: 'control' } | { kind: 'local' } | { kind: 'replicated'; origin: ReplicatedOrigin };

export class RunTracker {
  #marker: Marker | null = null;
  #next = 0;

  /** Whether a marker's run is open (more of its batches are expected). */
  get inRun(): boolean {
    return this.#marker !== null;
  }

  /** How many batches the open run still expects. */
  get runRemaining(): number {
    return this.#marker ? this.#marker.batches.length - this.#next : 0;
  }

  classify(batch: Buffer, h: BatchHeader): BatchKind {
    if (isControlBatch(h)) {
      let marker: Marker | null;
      try {
        marker = decodeMarker(batch, h);
      } catch {
        // Only this broker writes markers, and only well-formed ones; an unreadable one
        // (a damaged disk, a bug) must not stop every reader of the log. It describes
        // nothing: what follows is classified on its own.
        marker = null;
      }
      if (marker === null) {
        this.#marker = null;
        return { kind: 'control' };
      }
      this.#marker = marker.batches.length > 0 ? marker : null;
      this.#next = 0;
      return { kind: 'marker', marker };
    }
    const m = this.#marker;
    if (m !== null) {
      const entry = m.batches[this.#next];
      if (entry.crc === h.crc) {
        this.#next++;
        const lastOfRun = this.#next === m.batches.length;
        if (lastOfRun) this.#marker = null;
        return {
          kind: 'replicated',
          origin: {
            region: m.originRegion,
            topicId: m.originTopicId,
            partition: m.originPartition,
            baseOffset: entry.originBaseOffset,
            senderBaseOffset: entry.senderBaseOffset,
            senderRegion: m.senderRegion,
            senderTopicId: m.senderTopicId,
            hops: m.hops,
            lastOfRun,
            marker: m,
          },
        };
      }
      this.#marker = null; // torn run: what follows is not the marker's
    }
    return { kind: 'local' };
  }
}
