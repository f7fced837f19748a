/**
 * The one place that names the files of a partition directory; nobody else builds or parses
 * these names (object-keys.ts does the same for the bucket).
 *
 *   <dataDir>/logs/<topic>-<partition>/
 *     00000000000000000000.log          segment data: RecordBatch v2 bytes, named by base offset
 *     00000000000000000000.index        its offset + time index, written when it seals
 *     00000000000000001000.producers    idempotent-producer state as of offset 1000 (newest two kept)
 *     log-start-offset.json             where DeleteRecords moved the log start (below it nothing is served)
 *     leader-epoch-checkpoint           the leader epoch cache: first offset of each leader epoch
 *                                       (leader-epoch-cache.ts; only in a partition that keeps epochs)
 *     replication-state.json            the replication dedup table as of a sealed offset
 *     origin-index.json                 the origin (offset translation) index as of a sealed offset
 *     replication-hold-<remote>.json    replication to <remote> stopped: this region lost data
 *                                       the remote holds; an operator deletes it to resume
 *     ship-fence.json                   interval mode: offsets below it may be held by a remote
 *                                       without being durable here, and the boot that wrote it
 *                                       (ship-fence.ts)
 *     <any of the above>.tmp            being replaced atomically (writeFileAtomicSync)
 *
 * Offsets are 20 zero-padded digits, so names sort in offset order. Recovery removes `.tmp`
 * files, and `.deleted` ones (what a topic deletion renames a partition directory to before
 * removing it). Owners: `segment.ts` and `log-recovery.ts` (segments), `partition-log.ts` (the log
 * start, the leader epoch checkpoint and the ship fence), `broker/producer-state.ts`,
 * `replication/replica-state.ts`, `replication/origin-index.ts`, `replication/worker.ts` (the hold file).
 * A truncation (`PartitionLog.truncateTo`) also removes the producer snapshots past its
 * offset, first, so that no crash leaves one describing records the log no longer holds.
 */
import crypto from 'node:crypto';
import path from 'node:path';

export const LOG_SUFFIX = '.log';
export const INDEX_SUFFIX = '.index';
const PRODUCERS_SUFFIX = '.producers';
const TMP_SUFFIX = '.tmp';
const DELETED_SUFFIX = '.deleted';
const REPLICATION_STATE = 'replication-state.json';
const ORIGIN_INDEX = 'origin-index.json';
const LOG_START = 'log-start-offset.json';
const LEADER_EPOCH_CHECKPOINT = 'leader-epoch-checkpoint';
const SHIP_FENCE = 'ship-fence.json';

const SEGMENT_LOG = /^(\d{20})\.log$/;
const SEGMENT_INDEX = /^(\d{20})\.index$/;
const PRODUCER_SNAPSHOT = /^(\d{20})\.producers$/;

/** An offset as the 20 zero-padded digits that start a file (or object) name. */
export function paddedOffset(offset: bigint): string {
  return offset.toString().padStart(20, '0');
}

/** `<base offset>.log` or `<base offset>.index`. */
export function segmentFileName(baseOffset: bigint, suffix: typeof LOG_SUFFIX | typeof INDEX_SUFFIX): string {
  return paddedOffset(baseOffset) + suffix;
}

function offsetOf(pattern: RegExp, name: string): bigint | undefined {
  const m = pattern.exec(name);
  return m ? BigInt(m[1]) : undefined;
}

export const PartitionFiles = {
  /** The directory of a partition under `<dataDir>/logs`. */
  dirName(topic: string, partition: number): string {
    return `${topic}-${partition}`;
  },

  segmentLog(dir: string, baseOffset: bigint): string {
    return path.join(dir, segmentFileName(baseOffset, LOG_SUFFIX));
  },

  segmentIndex(dir: string, baseOffset: bigint): string {
    return path.join(dir, segmentFileName(baseOffset, INDEX_SUFFIX));
  },

  producerSnapshot(dir: string, upTo: bigint): string {
    return path.join(dir, paddedOffset(upTo) + PRODUCERS_SUFFIX);
  },

  replicationState(dir: string): string {
    return path.join(dir, REPLICATION_STATE);
  },

  /** The origin index snapshot (replication/origin-index.ts). */
  originIndex(dir: string): string {
    return path.join(dir, ORIGIN_INDEX);
  },

  /** The log start offset DeleteRecords moved to (partition-log.ts). */
  logStart(dir: string): string {
    return path.join(dir, LOG_START);
  },

  /** The leader epoch cache's checkpoint (leader-epoch-cache.ts, written by partition-log.ts). */
  leaderEpochCheckpoint(dir: string): string {
    return path.join(dir, LEADER_EPOCH_CHECKPOINT);
  },

  /** How far records may have been replicated before they were durable (ship-fence.ts, written by partition-log.ts). */
  shipFence(dir: string): string {
    return path.join(dir, SHIP_FENCE);
  },

  replicationHold(dir: string, remote: string): string {
    return path.join(dir, `replication-hold-${remote}.json`);
  },

  /** The temporary name `file` is written under before it replaces `file`. */
  temp(file: string): string {
    return file + TMP_SUFFIX;
  },

  /** A unique name to rename a doomed partition directory to before removing it. */
  doomed(dir: string): string {
    return `${dir}.${crypto.randomUUID()}${DELETED_SUFFIX}`;
  },

  /** The base offset of a segment data file name (undefined: not one). */
  segmentLogOffset(name: string): bigint | undefined {
    return offsetOf(SEGMENT_LOG, name);
  },

  /** The base offset of a segment index file name (undefined: not one). */
  segmentIndexOffset(name: string): bigint | undefined {
    return offsetOf(SEGMENT_INDEX, name);
  },

  /** The offset of a producer snapshot file name (undefined: not one). */
  producerSnapshotOffset(name: string): bigint | undefined {
    return offsetOf(PRODUCER_SNAPSHOT, name);
  },

  /** A leftover of an interrupted write or deletion, removed at recovery. */
  isLeftover(name: string): boolean {
    return name.endsWith(TMP_SUFFIX) || name.endsWith(DELETED_SUFFIX);
  },

  /** A renamed partition directory of a deleted topic (see `doomed`). */
  isDoomed(name: string): boolean {
    return name.endsWith(DELETED_SUFFIX);
  },
} as const;
