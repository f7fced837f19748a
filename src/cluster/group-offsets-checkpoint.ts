/**
 * The in-memory state of one `__meridian_offsets` partition (every group's committed offsets
 * and last generation), how records change it, how it is replayed from a partition log, and
 * its CHECKPOINT: the whole state written back as ordinary records so that the log before
 * it can be deleted (the compaction of the offsets topic; src/cluster/README.md, "Compaction
 * of __meridian_offsets"). No network I/O: group-offsets-partition.ts appends what this
 * encodes; the replay reads a local PartitionLog.
 *
 * A checkpoint reuses the existing record types (offset-record.ts), so nothing that reads
 * the topic needs to learn a new one: per group, COMMIT frames holding every committed
 * offset it has (split into several frames past `chunkBytes`), and a GROUP_METADATA frame for
 * every group with a recorded generation. The frames are packed into Kafka records (one per
 * batch, no key, header `meridian-checkpoint: <i>/<n>` for people reading the topic), each
 * value a run of frames, as replay already decodes.
 *
 * Why replaying works at every point of a crash: a checkpoint summarises exactly the records
 * before it in the log (the leader takes it of the state of everything written, in the step
 * that begins its append, with no append between its batches). Replaying old records, then a
 * whole or partial checkpoint, then newer ones sets each offset and generation to the value
 * it had at the checkpoint's position, which the old records had already produced: nothing
 * regresses and nothing comes back. Only once the whole checkpoint is acknowledged does the
 * leader move the log start to its first offset; from then on a replay starts at it, and
 * whatever it does not name (deleted groups, offsets, topics) is gone, as it should be.
 */
import { decodeFrames, encodeRecord, RecordType, type GroupMetadataValue, type OffsetRecord, type PartitionCommit } from '../broker/groups/offset-record.js';
import { applyOffsetRecord, type GroupOffsets } from '../broker/groups/offset-store.js';
import type { PartitionLog } from '../storage/partition-log.js';
import { decodeStoredRecords, encodeBatch, isControlBatch, lastOffsetOf, storedBatches } from '../storage/record-batch.js';

/** Every group's committed offsets and recorded generation in one offsets partition. */
export interface GroupsState {
  readonly offsets: Map<string, GroupOffsets>;
  readonly generations: Map<string, GroupMetadataValue>;
}

/** The header naming a checkpoint's batches (ignored by replay; for people and tests). */
export const CHECKPOINT_HEADER = 'meridian-checkpoint';

/** Largest value of one checkpoint record unless the log allows less (a batch must fit maxBatchBytes). */
export const DEFAULT_CHECKPOINT_CHUNK_BYTES = 1024 * 1024;

export function emptyState(): GroupsState {
  return { offsets: new Map(), generations: new Map() };
}

/** A copy that later changes to `state` do not reach (the offsets themselves are immutable). */
export function copyState(state: GroupsState): GroupsState {
  const offsets = new Map<string, GroupOffsets>();
  for (const [groupId, topics] of state.offsets) {
    const t: GroupOffsets = new Map();
    for (const [topic, parts] of topics) t.set(topic, new Map(parts));
    offsets.set(groupId, t);
  }
  return { offsets, generations: new Map(state.generations) };
}

/** Applies one record: offsets as the file store does, generations never backwards. */
export function applyToState(state: GroupsState, record: OffsetRecord): void {
  applyOffsetRecord(state.offsets, record);
  switch (record.type) {
    case RecordType.DeleteGroup:
      state.generations.delete(record.groupId);
      break;
    case RecordType.GroupMetadata: {
      const known = state.generations.get(record.groupId);
      // A late record of an older generation changes nothing.
      if (known === undefined || record.generationId >= known.generationId) {
        state.generations.set(record.groupId, { generationId: record.generationId, protocolType: record.protocolType, protocolName: record.protocolName, leader: record.leader });
      }
      break;
    }
  }
}

/**
 * The records of a checkpoint of `state`, in the order they are written: each group's
 * offsets (COMMIT frames of at most about `chunkBytes`), then its generation.
 */
export function checkpointRecords(state: GroupsState, chunkBytes = DEFAULT_CHECKPOINT_CHUNK_BYTES): OffsetRecord[] {
  const out: OffsetRecord[] = [];
  const groups = new Set([...state.offsets.keys(), ...state.generations.keys()]);
  for (const groupId of groups) {
    const topics = state.offsets.get(groupId);
    if (topics !== undefined) {
      let commits: PartitionCommit[] = [];
      let bytes = 0;
      for (const [topic, parts] of topics) {
        for (const [partition, o] of parts) {
          // A commit's encoded size: its topic's header (counted per commit, an overestimate) and the fixed fields.
          const size = 2 + Buffer.byteLength(topic) + 4 + 28 + (o.metadata === null ? 0 : Buffer.byteLength(o.metadata));
          if (commits.length > 0 && bytes + size > chunkBytes) {
            out.push({ type: RecordType.Commit, groupId, commits });
            commits = [];
            bytes = 0;
          }
          commits.push({ topic, partition, offset: o.offset, leaderEpoch: o.leaderEpoch, commitTimestamp: o.commitTimestamp, metadata: o.metadata });
          bytes += size;
        }
      }
      // A group with no offset left keeps its (empty) entry, as replay would have it.
      out.push({ type: RecordType.Commit, groupId, commits });
    }
    const generation = state.generations.get(groupId);
    if (generation !== undefined) out.push({ type: RecordType.GroupMetadata, groupId, ...generation });
  }
  return out;
}

/**
 * The batches of a checkpoint of `state`: one record each, whose value is a run of frames of
 * at most `chunkBytes` (a single larger frame goes alone). At least one batch, even for an
 * empty state: a checkpoint of nothing still marks where the log may start.
 */
export function checkpointBatches(state: GroupsState, chunkBytes = DEFAULT_CHECKPOINT_CHUNK_BYTES): Buffer[] {
  const values: Buffer[][] = [[]];
  let bytes = 0;
  for (const record of checkpointRecords(state, chunkBytes)) {
    const frame = encodeRecord(record);
    if (values.at(-1)!.length > 0 && bytes + frame.length > chunkBytes) {
      values.push([]);
      bytes = 0;
    }
    values.at(-1)!.push(frame);
    bytes += frame.length;
  }
  return values.map((frames, i) =>
    encodeBatch({ records: [{ key: null, value: Buffer.concat(frames), headers: [{ key: CHECKPOINT_HEADER, value: Buffer.from(`${i + 1}/${values.length}`) }] }] }),
  );
}

/** Bytes a checkpoint of `state` would take (the compaction rule compares the log with it). */
export function checkpointBytes(state: GroupsState, chunkBytes = DEFAULT_CHECKPOINT_CHUNK_BYTES): number {
  return checkpointBatches(state, chunkBytes).reduce((n, b) => n + b.length, 0);
}

/**
 * Replays `log` from its log start to `end` (the written end when omitted) into `into`:
 * every record's frames in order. Resolves with the records replayed and the bytes of the
 * batches read (what the log holds from its start). `stop` is asked between reads and may
 * throw to end the replay (leadership moved on). The written end can lag the log end (an
 * append with its offset, not on disk yet): a leader's load flushes the log first
 * (OffsetsPartition.load), so that nothing assigned before it is left out.
 */
export async function replayOffsetsLog(log: PartitionLog, into: GroupsState, apply: (record: OffsetRecord) => void = (r) => applyToState(into, r), stop?: () => void, end = log.highWatermark): Promise<{ records: number; bytes: number }> {
  let offset = log.logStartOffset;
  let records = 0;
  let bytes = 0;
  while (offset < end) {
    stop?.();
    const r = await log.read(offset, 1024 * 1024, { upTo: end });
    if (r.records.length === 0) break;
    for (const { buf, h } of storedBatches(r.records)) {
      bytes += buf.length;
      if (!isControlBatch(h)) {
        for (const rec of decodeStoredRecords(buf)) {
          if (rec.offset < offset || rec.offset >= end || rec.value === null) continue;
          for (const record of decodeFrames(rec.value).records) apply(record);
          records++;
        }
      }
      offset = lastOffsetOf(h) + 1n;
    }
  }
  stop?.();
  return { records, bytes };
}
