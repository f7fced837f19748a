/**
 * The classic consumer-group coordinator of a single-node broker: membership (join, sync,
 * heartbeat, leave) and committed offsets, independent of the wire codecs. The Kafka
 * handlers decode a request, call one method here and encode the plain result.
 *
 * Lifecycle: `GroupCoordinator.open()` loads the committed offsets (see offset-store.ts);
 * `close()` answers every held JoinGroup/SyncGroup with COORDINATOR_CLOSED, clears every
 * timer and waits for queued commits to become durable. After close every call answers
 * COORDINATOR_CLOSED (Kafka's NOT_COORDINATOR), so clients look for the coordinator again.
 *
 * Errors are values in the results (codes: src/README.md, built in group-errors.ts); the
 * Kafka handlers map them to Kafka's codes.
 *
 * Membership lives in memory only: after a restart every group is Empty (or unknown) and
 * members learn it from UNKNOWN_MEMBER / ILLEGAL_GENERATION and rejoin, which both clients
 * do on their own. Committed offsets are durable before a commit is acknowledged.
 *
 * A group whose last member is gone and that has no committed offsets is forgotten at once
 * (Kafka does the same in its periodic cleanup), so group ids that never commit cost nothing.
 * Offsets never expire by time (Kafka's offsets.retention.minutes is not implemented, nor
 * OffsetCommit v2-4's retention time); they go when their topic is deleted, or by
 * DeleteGroups (the whole group) and OffsetDelete (named partitions).
 *
 * Concurrency: every method runs synchronously up to its first await; held requests are
 * promises resolved by the group state machines (consumer-group.ts).
 *
 * Region clusters (`GroupCoordinator.withBackend`, cluster/group-offsets.ts): the offsets live
 * in the replicated topic `__meridian_offsets` and this broker coordinates only the groups
 * whose partition it leads. `gate(groupId)` is asked first by every group request (not
 * coordinator, loading, no coordinator); `unloadGroups` drops the membership of the groups of
 * a partition this broker stopped leading; each completed rebalance records the group's
 * generation, from which a coordinator that loads the group later continues.
 */
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../../errors.js';
import { ConsumerGroup } from './consumer-group.js';
import {
  GroupState,
  type DeletedGroup,
  type DescribedGroup,
  type FetchedPartitionOffset,
  type HeartbeatRequest,
  type HeartbeatResult,
  type JoinGroupRequest,
  type JoinGroupResult,
  type LeaveGroupRequest,
  type LeaveGroupResult,
  type ListedGroup,
  type OffsetCommitRequest,
  type OffsetCommitResult,
  type OffsetDeleteRequest,
  type OffsetDeleteResult,
  type OffsetFetchRequest,
  type OffsetFetchResult,
  type SyncGroupRequest,
  type SyncGroupResult,
} from './group-api.js';
import {
  commitFailure,
  coordinatorClosed,
  groupNotFound,
  groupSubscribedToTopic,
  illegalGeneration,
  invalidGroupId,
  invalidSessionTimeout,
  nonEmptyGroup,
  offsetMetadataTooLarge,
  unknownMember,
} from './group-errors.js';
import { joinError, syncError } from './group-results.js';
import type { PartitionCommit, TopicPartitions } from './offset-record.js';
import { OffsetStore, type CommittedOffset, type OffsetStoreStats } from './offset-store.js';
import type { OffsetBackend } from './offset-backend.js';

export interface GroupCoordinatorOptions {
  /** Directory of the offset store (offsets.snapshot, offsets-<G>.log). */
  dir: string;
  logger?: Logger;
  /** Kafka's group.initial.rebalance.delay.ms: 3000. */
  initialRebalanceDelayMs?: number;
  /** Kafka's group.min.session.timeout.ms: 6000. */
  minSessionTimeoutMs?: number;
  /** Kafka's group.max.session.timeout.ms: 1800000. */
  maxSessionTimeoutMs?: number;
  /** Kafka's group.max.size is unbounded; here members + pending ids per group, 1000. */
  maxGroupSize?: number;
  /** Kafka's offset.metadata.max.bytes: 4096. */
  maxMetadataBytes?: number;
  /** Offset log size that triggers compaction into a snapshot: 8 MiB. */
  compactThresholdBytes?: number;
  /** Commit bytes waiting for the disk before commits are refused retriably: 32 MiB. */
  maxQueuedCommitBytes?: number;
  /** Clock for commit timestamps (ms since the epoch). */
  now?: () => number;
}

/** A coordinator over another backend than the file store (region clusters). */
export interface BackendCoordinatorOptions extends Omit<GroupCoordinatorOptions, 'dir' | 'compactThresholdBytes' | 'maxQueuedCommitBytes'> {
  /**
   * Asked first by every request naming a group: an error (NOT_COORDINATOR,
   * COORDINATOR_LOADING, COORDINATOR_UNAVAILABLE) is answered instead; null serves it here.
   */
  gate?: (groupId: string) => MeridianError | null;
}

export interface GroupCoordinatorStats {
  /** Groups with membership state or committed offsets. */
  groups: number;
  byState: Record<Exclude<GroupState, 'Dead'>, number>;
  members: number;
  /** Member ids handed out with MEMBER_ID_REQUIRED and not yet used. */
  pendingMembers: number;
  /** Generations completed with members, since open. */
  rebalances: number;
  offsets: OffsetStoreStats;
}

export class GroupCoordinator {
  #store: OffsetBackend;
  #gate: (groupId: string) => MeridianError | null;
  #groups = new Map<string, ConsumerGroup>();
  #log: Logger | undefined;
  #initialRebalanceDelayMs: number;
  #minSessionTimeoutMs: number;
  #maxSessionTimeoutMs: number;
  #maxGroupSize: number;
  #maxMetadataBytes: number;
  #now: () => number;
  #rebalancesOfForgotten = 0;
  #closing: Promise<void> | undefined;
  /** When each group last went from no members to some (disaster recovery's conflict check). */
  #activeSince = new Map<string, number>();
  #commitListeners = new Set<(groupId: string, commits: readonly PartitionCommit[]) => void>();
  #loadedListeners = new Set<(partition: number) => void>();
  #commitView: ((topic: string, partition: number, c: CommittedOffset) => CommittedOffset) | undefined;

  private constructor(store: OffsetBackend, options: BackendCoordinatorOptions) {
    this.#store = store;
    this.#gate = options.gate ?? (() => null);
    this.#log = options.logger;
    this.#initialRebalanceDelayMs = options.initialRebalanceDelayMs ?? 3000;
    this.#minSessionTimeoutMs = options.minSessionTimeoutMs ?? 6000;
    this.#maxSessionTimeoutMs = options.maxSessionTimeoutMs ?? 1_800_000;
    this.#maxGroupSize = options.maxGroupSize ?? 1000;
    this.#maxMetadataBytes = options.maxMetadataBytes ?? 4096;
    this.#now = options.now ?? Date.now;
  }

  static async open(options: GroupCoordinatorOptions): Promise<GroupCoordinator> {
    const store = await OffsetStore.open({
      dir: options.dir,
      logger: options.logger,
      compactThresholdBytes: options.compactThresholdBytes,
      maxQueuedBytes: options.maxQueuedCommitBytes,
    });
    return new GroupCoordinator(store, options);
  }

  /** A coordinator over `store` (a region cluster's offsets topic); `close()` closes the store. */
  static withBackend(store: OffsetBackend, options: BackendCoordinatorOptions): GroupCoordinator {
    return new GroupCoordinator(store, options);
  }

  /**
   * Drops the membership of every group `which` selects (their offsets partition is no
   * longer led here): held JoinGroup and SyncGroup get COORDINATOR_CLOSED (NOT_COORDINATOR),
   * and the members find the new coordinator. Their offsets are the backend's to unload.
   */
  unloadGroups(which: (groupId: string) => boolean): number {
    let n = 0;
    for (const group of [...this.#groups.values()]) {
      if (!which(group.groupId)) continue;
      this.#groups.delete(group.groupId);
      this.#activeSince.delete(group.groupId);
      this.#rebalancesOfForgotten += group.rebalances;
      group.shutdown();
      n++;
    }
    return n;
  }

  /**
   * JoinGroup. Resolves when the rebalance completes (or at once with an error). The v0
   * handler passes rebalanceTimeoutMs = sessionTimeoutMs; v0-3 handlers pass
   * requireKnownMemberId = false.
   */
  joinGroup(req: JoinGroupRequest): Promise<JoinGroupResult> {
    const before = this.#groups.get(req.groupId);
    if (before === undefined || before.memberCount === 0) this.#activeSince.set(req.groupId, this.#now());
    if (this.#closing !== undefined) return Promise.resolve(joinError(req.memberId, coordinatorClosed()));
    if (req.groupId === '') return Promise.resolve(joinError(req.memberId, invalidGroupId()));
    const notHere = this.#gate(req.groupId);
    if (notHere !== null) return Promise.resolve(joinError(req.memberId, notHere));
    if (req.sessionTimeoutMs < this.#minSessionTimeoutMs || req.sessionTimeoutMs > this.#maxSessionTimeoutMs) {
      return Promise.resolve(joinError(req.memberId, invalidSessionTimeout(req.sessionTimeoutMs, this.#minSessionTimeoutMs, this.#maxSessionTimeoutMs)));
    }
    let group = this.#groups.get(req.groupId);
    if (group === undefined) {
      if (req.memberId !== '') return Promise.resolve(joinError(req.memberId, unknownMember(req.groupId, req.memberId)));
      group = this.#createGroup(req.groupId);
    }
    const result = group.join(req);
    this.#forgetIfUnused(group); // a first join that failed leaves nothing behind
    return result;
  }

  /** SyncGroup. A follower's call resolves when the leader's SyncGroup arrives. */
  syncGroup(req: SyncGroupRequest): Promise<SyncGroupResult> {
    const error = (e: MeridianError): Promise<SyncGroupResult> => Promise.resolve(syncError(e));
    if (this.#closing !== undefined) return error(coordinatorClosed());
    if (req.groupId === '') return error(invalidGroupId());
    const notHere = this.#gate(req.groupId);
    if (notHere !== null) return error(notHere);
    const group = this.#groups.get(req.groupId);
    return group === undefined ? error(unknownMember(req.groupId, req.memberId)) : group.sync(req);
  }

  heartbeat(req: HeartbeatRequest): HeartbeatResult {
    if (this.#closing !== undefined) return { error: coordinatorClosed() };
    if (req.groupId === '') return { error: invalidGroupId() };
    const notHere = this.#gate(req.groupId);
    if (notHere !== null) return { error: notHere };
    const group = this.#groups.get(req.groupId);
    return { error: group === undefined ? unknownMember(req.groupId, req.memberId) : group.heartbeat(req) };
  }

  leaveGroup(req: LeaveGroupRequest): LeaveGroupResult {
    if (this.#closing !== undefined) return { error: coordinatorClosed(), members: [] };
    if (req.groupId === '') return { error: invalidGroupId(), members: [] };
    const notHere = this.#gate(req.groupId);
    if (notHere !== null) return { error: notHere, members: [] };
    const group = this.#groups.get(req.groupId);
    return {
      error: null,
      members: req.members.map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        error: group === undefined ? unknownMember(req.groupId, m.memberId) : group.leave(m.memberId, m.groupInstanceId, m.reason ?? null),
      })),
    };
  }

  /**
   * OffsetCommit. Resolves once the accepted offsets are fdatasync'd. Unknown topics are the
   * handler's to reject (UNKNOWN_TOPIC_OR_PARTITION) before calling; a null metadata is
   * stored as "", as Kafka's KafkaApis does, and a partition's commit time is its own
   * (OffsetCommit v1) or else now. A commit with generation -1 for a group without members
   * is a "simple" commit, accepted without membership (OffsetCommit v0 always is one).
   */
  async commitOffsets(req: OffsetCommitRequest): Promise<OffsetCommitResult> {
    const errors = req.topics.map((t) => t.partitions.map((): MeridianError | null => null));
    const result = (): OffsetCommitResult => ({
      topics: req.topics.map((t, i) => ({ name: t.name, partitions: t.partitions.map((p, j) => ({ partitionIndex: p.partitionIndex, error: errors[i][j] })) })),
    });
    const failAll = (error: MeridianError): OffsetCommitResult => {
      for (const e of errors) e.fill(error);
      return result();
    };
    if (this.#closing !== undefined) return failAll(coordinatorClosed());
    const notHere = this.#gate(req.groupId);
    if (notHere !== null) return failAll(notHere);
    const group = this.#groups.get(req.groupId);
    const gate =
      group !== undefined
        ? group.checkCommit(req.generationIdOrMemberEpoch, req.memberId, req.groupInstanceId)
        : req.generationIdOrMemberEpoch < 0
          ? null
          : this.#store.hasGroup(req.groupId)
            ? unknownMember(req.groupId, req.memberId) // an Empty group known from its offsets
            : req.unknownGroupIsNotFound === true
              ? groupNotFound(req.groupId) // Kafka's OffsetCommit v9+
              : illegalGeneration(req.groupId, req.generationIdOrMemberEpoch, null); // Kafka: a commit from an older generation of a gone group
    if (gate !== null) return failAll(gate);

    const commits: PartitionCommit[] = [];
    const accepted: Array<[number, number]> = [];
    const commitTimestamp = this.#now();
    req.topics.forEach((t, i) =>
      t.partitions.forEach((p, j) => {
        const metadata = p.committedMetadata ?? '';
        const metadataBytes = Buffer.byteLength(metadata);
        if (metadataBytes > this.#maxMetadataBytes) {
          errors[i][j] = offsetMetadataTooLarge(metadataBytes, this.#maxMetadataBytes);
          return;
        }
        const timestamp = p.commitTimestamp === undefined || p.commitTimestamp === -1 ? commitTimestamp : p.commitTimestamp;
        commits.push({ topic: t.name, partition: p.partitionIndex, offset: p.committedOffset, leaderEpoch: p.committedLeaderEpoch, commitTimestamp: timestamp, metadata });
        accepted.push([i, j]);
      }),
    );
    try {
      await this.#store.commit(req.groupId, commits);
      for (const l of this.#commitListeners) l(req.groupId, commits);
    } catch (err) {
      const error = commitFailure(err);
      this.#log?.warn({ err: error, groupId: req.groupId }, 'offset commit failed');
      for (const [i, j] of accepted) errors[i][j] = error;
    }
    return result();
  }

  /** Told of every commit once it is durable (offset replication listens). */
  onCommitted(listener: (groupId: string, commits: readonly PartitionCommit[]) => void): () => void {
    this.#commitListeners.add(listener);
    return () => this.#commitListeners.delete(listener);
  }

  /** The offset a group committed for a partition here, with its commit time (as `commitView` answers it). */
  committed(groupId: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.#viewed(topic, partition, this.#store.get(groupId, topic, partition));
  }

  /** A stored commit as `commitView` answers it. */
  #viewed(topic: string, partition: number, c: CommittedOffset | undefined): CommittedOffset | undefined {
    return c === undefined || this.#commitView === undefined ? c : this.#commitView(topic, partition, c);
  }

  /**
   * How OffsetFetch (and `committed`) answer a stored commit: disaster recovery on a region
   * cluster answers a commit a failback made stale at the cut (src/dr/failback-clamp.ts)
   * from the moment this broker holds the failback's entry, before its rewrite is replicated.
   */
  setCommitView(view: ((topic: string, partition: number, c: CommittedOffset) => CommittedOffset) | undefined): void {
    this.#commitView = view;
  }

  /** Told each time an offsets partition finished loading here (a region cluster: this broker became its coordinator). */
  onOffsetsLoaded(listener: (partition: number) => void): () => void {
    this.#loadedListeners.add(listener);
    return () => this.#loadedListeners.delete(listener);
  }

  /** The offset backend says an offsets partition is loaded and served here (cluster/group-offsets.ts). */
  offsetsLoaded(partition: number): void {
    for (const l of this.#loadedListeners) l(partition);
  }

  /** Every committed group partition (offset replication's resync). */
  allCommitted(): Array<{ groupId: string; topic: string; partition: number; committed: CommittedOffset }> {
    const out: Array<{ groupId: string; topic: string; partition: number; committed: CommittedOffset }> = [];
    for (const groupId of this.#store.groupIds()) {
      for (const [topic, parts] of this.#store.offsetsOf(groupId) ?? new Map<string, ReadonlyMap<number, CommittedOffset>>()) {
        for (const [partition, committed] of parts) out.push({ groupId, topic, partition, committed });
      }
    }
    return out;
  }

  /**
   * Moves every group's commit for a partition down to `max` where it is past it and
   * `stale` says so (a DR failback truncated the log there: those offsets pointed into
   * records that are gone). Returns how many commits it moved.
   */
  async clampOffsets(topic: string, partition: number, max: bigint, stale: (c: CommittedOffset) => boolean = () => true): Promise<number> {
    const now = this.#now();
    let moved = 0;
    for (const c of this.allCommitted()) {
      if (c.topic !== topic || c.partition !== partition || c.committed.offset <= max || !stale(c.committed)) continue;
      moved++;
      await this.#store.commit(c.groupId, [{ topic, partition, offset: max, leaderEpoch: -1, commitTimestamp: now, metadata: c.committed.metadata ?? '' }]);
    }
    return moved;
  }

  /** Since when the group has had members here (undefined: it has none). */
  activeSince(groupId: string): number | undefined {
    const g = this.#groups.get(groupId);
    return g === undefined || g.memberCount === 0 ? undefined : this.#activeSince.get(groupId);
  }

  /** OffsetFetch. Nothing committed (or no such group) is offset -1, and no error. */
  fetchOffsets(req: OffsetFetchRequest): OffsetFetchResult {
    if (this.#closing !== undefined) return { error: coordinatorClosed(), topics: [] };
    const notHere = this.#gate(req.groupId);
    if (notHere !== null) return { error: notHere, topics: [] };
    const offsets = this.#store.offsetsOf(req.groupId);
    const requested = req.topics ?? [...(offsets ?? new Map())].map(([name, parts]) => ({ name, partitionIndexes: [...parts.keys()] }));
    return {
      error: null,
      topics: requested.map((t) => ({
        name: t.name,
        partitions: t.partitionIndexes.map((partitionIndex): FetchedPartitionOffset => {
          const c = this.#viewed(t.name, partitionIndex, offsets?.get(t.name)?.get(partitionIndex));
          return c === undefined
            ? { partitionIndex, committedOffset: -1n, committedLeaderEpoch: -1, metadata: '' }
            : { partitionIndex, committedOffset: c.offset, committedLeaderEpoch: c.leaderEpoch, metadata: c.metadata };
        }),
      })),
    };
  }

  /** DescribeGroups v0-5: an unknown group is described as Dead with no error, as Kafka does. */
  describeGroups(groupIds: readonly string[]): DescribedGroup[] {
    return groupIds.map((groupId) => {
      const notHere = this.#closing === undefined ? this.#gate(groupId) : null;
      if (notHere !== null) return { error: notHere, groupId, groupState: GroupState.Dead, protocolType: '', protocolData: '', members: [] };
      const group = this.#groups.get(groupId);
      if (this.#closing === undefined && group !== undefined) return group.describe();
      const known = this.#closing === undefined && this.#store.hasGroup(groupId);
      return {
        error: this.#closing === undefined ? null : coordinatorClosed(),
        groupId,
        groupState: known ? GroupState.Empty : GroupState.Dead,
        protocolType: '',
        protocolData: '',
        members: [],
      };
    });
  }

  listGroups(): ListedGroup[] {
    if (this.#closing !== undefined) return [];
    const listed: ListedGroup[] = [...this.#groups.values()].map((g) => ({ groupId: g.groupId, protocolType: g.protocolType ?? '', groupState: g.state }));
    for (const groupId of this.#store.groupIds()) {
      if (!this.#groups.has(groupId)) listed.push({ groupId, protocolType: '', groupState: GroupState.Empty });
    }
    return listed;
  }

  /**
   * DeleteGroups, after Kafka's GroupCoordinator.handleDeleteGroups: a group without members
   * is forgotten with its committed offsets, durably, before the answer; one with members
   * gets NON_EMPTY_GROUP, one that does not exist GROUP_NOT_FOUND. The empty group id is
   * allowed here, as in Kafka, so that an empty-named group's offsets can be deleted.
   */
  deleteGroups(groupIds: readonly string[]): Promise<DeletedGroup[]> {
    return Promise.all(groupIds.map((groupId) => this.#deleteGroup(groupId)));
  }

  /**
   * OffsetDelete, after Kafka's GroupCoordinator.handleDeleteOffsets: in a group without
   * members every named partition's offset is deleted; in an active "consumer" group only
   * those of topics no member subscribes to (the others get GROUP_SUBSCRIBED_TO_TOPIC); an
   * active group of another protocol type gets NON_EMPTY_GROUP. A partition with nothing
   * committed succeeds. Unknown topics are the handler's to reject before calling.
   */
  async deleteOffsets(req: OffsetDeleteRequest): Promise<OffsetDeleteResult> {
    const failGroup = (error: MeridianError): OffsetDeleteResult => ({ error, topics: [] });
    if (this.#closing !== undefined) return failGroup(coordinatorClosed());
    if (req.groupId === '') return failGroup(invalidGroupId());
    const notHere = this.#gate(req.groupId);
    if (notHere !== null) return failGroup(notHere);
    const group = this.#groups.get(req.groupId);
    if (group === undefined && !this.#knownToStore(req.groupId)) return failGroup(groupNotFound(req.groupId));
    let subscribed: ReadonlySet<string> = new Set();
    if (group !== undefined && group.state !== GroupState.Empty) {
      if (group.protocolType !== 'consumer') return failGroup(nonEmptyGroup(req.groupId, group.state));
      subscribed = group.subscribedTopics() ?? subscribed;
    }
    const eligible: TopicPartitions[] = req.topics.filter((t) => !subscribed.has(t.name)).map((t) => ({ topic: t.name, partitions: t.partitionIndexes }));
    let failure: MeridianError | null = null;
    try {
      await this.#store.deleteOffsets(req.groupId, eligible);
    } catch (err) {
      failure = commitFailure(err, 'offsets not deleted');
      this.#log?.warn({ err: failure, groupId: req.groupId }, 'offset delete failed');
    }
    if (group !== undefined) this.#forgetIfUnused(group);
    return {
      error: null,
      topics: req.topics.map((t) => ({
        name: t.name,
        partitions: t.partitionIndexes.map((partitionIndex) => ({ partitionIndex, error: subscribed.has(t.name) ? groupSubscribedToTopic(req.groupId, t.name) : failure })),
      })),
    };
  }

  /**
   * Forgets every group's offsets of a deleted topic, durably. Throws, as topic deletion
   * does: LOG_CLOSED when closed, since its caller answers a DeleteTopics, not a group API.
   */
  async deleteTopicOffsets(topic: string): Promise<void> {
    if (this.#closing !== undefined) throw new MeridianError(ErrorCode.LogClosed, 'group coordinator is closed');
    await this.#store.deleteTopic(topic);
    for (const group of [...this.#groups.values()]) this.#forgetIfUnused(group);
  }

  stats(): GroupCoordinatorStats {
    const byState = { Empty: 0, PreparingRebalance: 0, CompletingRebalance: 0, Stable: 0 };
    let members = 0;
    let pendingMembers = 0;
    let rebalances = this.#rebalancesOfForgotten;
    for (const g of this.#groups.values()) {
      if (g.state !== GroupState.Dead) byState[g.state]++;
      members += g.memberCount;
      pendingMembers += g.pendingCount;
      rebalances += g.rebalances;
    }
    let groups = this.#groups.size;
    for (const groupId of this.#store.groupIds()) {
      if (!this.#groups.has(groupId)) {
        byState.Empty++;
        groups++;
      }
    }
    return { groups, byState, members, pendingMembers, rebalances, offsets: this.#store.stats() };
  }

  /** Idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const g of this.#groups.values()) g.shutdown();
      this.#groups.clear();
      await this.#store.close();
    })();
    return this.#closing;
  }

  async #deleteGroup(groupId: string): Promise<DeletedGroup> {
    if (this.#closing !== undefined) return { groupId, error: coordinatorClosed() };
    const notHere = this.#gate(groupId);
    if (notHere !== null) return { groupId, error: notHere };
    const group = this.#groups.get(groupId);
    if (group !== undefined && group.state !== GroupState.Empty) return { groupId, error: nonEmptyGroup(groupId, group.state) };
    if (group === undefined && !this.#knownToStore(groupId)) return { groupId, error: groupNotFound(groupId) };
    if (group !== undefined) {
      // Gone at once, as Kafka's group turns Dead: a join from here on starts a new group,
      // and a commit from here on is queued after the deletion, so it survives it.
      this.#groups.delete(groupId);
      this.#rebalancesOfForgotten += group.rebalances;
      group.shutdown();
    }
    try {
      await this.#store.deleteGroup(groupId);
    } catch (err) {
      const error = commitFailure(err, 'group not deleted');
      this.#log?.warn({ err: error, groupId }, 'group delete failed');
      return { groupId, error };
    }
    this.#log?.info({ groupId }, 'group deleted');
    return { groupId, error: null };
  }

  #createGroup(groupId: string): ConsumerGroup {
    const recorded = this.#store.generationOf?.(groupId);
    const record = this.#store.recordGeneration?.bind(this.#store);
    const group = new ConsumerGroup(groupId, {
      initialRebalanceDelayMs: this.#initialRebalanceDelayMs,
      maxGroupSize: this.#maxGroupSize,
      logger: this.#log,
      onIdle: (g) => this.#forgetIfUnused(g),
      ...(recorded !== undefined ? { initialGeneration: { generationId: recorded.generationId, protocolType: recorded.protocolType } } : {}),
      // The leader's SyncGroup waits for it (consumer-group.ts): a coordinator elected next
      // continues from every generation a member synced in, never handing one out again.
      ...(record !== undefined
        ? { recordGeneration: (g: ConsumerGroup) => record(g.groupId, { generationId: g.generationId, protocolType: g.protocolType, protocolName: g.protocolName, leader: g.leaderId }) }
        : {}),
    });
    this.#groups.set(groupId, group);
    return group;
  }

  /**
   * Whether a deletion of a group without membership here has something to delete: served
   * offsets, or (region clusters) offsets only in the log that the next checkpoint would
   * serve. The latter are deleted, not answered GROUP_ID_NOT_FOUND, or they would come back.
   */
  #knownToStore(groupId: string): boolean {
    return this.#store.hasGroup(groupId) || (this.#store.mayHoldGroup?.(groupId) ?? false);
  }

  #forgetIfUnused(group: ConsumerGroup): void {
    if (!group.isIdle || this.#store.hasGroup(group.groupId) || this.#groups.get(group.groupId) !== group) return;
    this.#groups.delete(group.groupId);
    this.#rebalancesOfForgotten += group.rebalances;
    group.shutdown();
  }
}
