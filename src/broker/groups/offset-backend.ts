/**
 * Where the group coordinator keeps committed offsets: what GroupCoordinator needs of its
 * store, so one coordinator runs over either backend.
 * - `OffsetStore` (offset-store.ts): files in the data directory, a single broker's.
 * - `ClusterOffsets` (cluster/group-offsets.ts): records in the replicated internal topic
 *   `__meridian_offsets`, holding only the partitions this broker leads (a region cluster).
 *
 * Every write resolves once durable in the backend's sense (fdatasync'd; in a cluster, below
 * the partition's high watermark, i.e. held by every in-sync replica) and only then shows in
 * the reads, which are synchronous, from memory. Failures reject with a MeridianError that
 * `commitFailure` (group-errors.ts) turns into the answer.
 */
import type { GroupMetadataValue, PartitionCommit, TopicPartitions } from './offset-record.js';
import type { CommittedOffset, OffsetStoreStats } from './offset-store.js';

export interface OffsetBackend {
  /** Durably records `commits` for `groupId`, all or nothing. */
  commit(groupId: string, commits: readonly PartitionCommit[]): Promise<void>;
  /** Forgets every group's offsets for `topic` (the topic was deleted). */
  deleteTopic(topic: string): Promise<void>;
  /** Forgets all offsets (and the recorded generation) of `groupId`. */
  deleteGroup(groupId: string): Promise<void>;
  /** Forgets the offsets of these partitions of `groupId` (OffsetDelete). */
  deleteOffsets(groupId: string, topics: readonly TopicPartitions[]): Promise<void>;
  get(groupId: string, topic: string, partition: number): CommittedOffset | undefined;
  offsetsOf(groupId: string): ReadonlyMap<string, ReadonlyMap<number, CommittedOffset>> | undefined;
  /** Whether the group has committed offsets here. */
  hasGroup(groupId: string): boolean;
  groupIds(): string[];
  stats(): OffsetStoreStats;
  close(): Promise<void>;
  /**
   * Region clusters: records the generation a completed rebalance reached, so a coordinator
   * that takes over continues from it. Absent on a single broker (membership is in memory).
   */
  recordGeneration?(groupId: string, value: GroupMetadataValue): Promise<void>;
  /** Region clusters: the generation last recorded for the group, when one was. */
  generationOf?(groupId: string): GroupMetadataValue | undefined;
  /**
   * Region clusters: whether the log may hold offsets of the group that are not served (an
   * unacknowledged commit that replicated later; the next checkpoint serves them). A
   * DeleteGroups or OffsetDelete of such a group deletes them rather than answer
   * GROUP_ID_NOT_FOUND, or they would come back.
   */
  mayHoldGroup?(groupId: string): boolean;
}
