/**
 * Consumer groups on a region cluster: the group coordinator's offset backend
 * (broker/groups/offset-backend.ts) over the replicated internal topic `__meridian_offsets`,
 * and who coordinates which group (src/cluster/README.md, "Groups on a cluster").
 *
 * - The coordinator of group g is the leader of partition `stableHash(g) % N` of the topic
 *   (group-offsets-topic.ts). `coordinatorFor(g)` answers FindCoordinator with that leader's
 *   registered address, creating the topic through the controller the first time a group
 *   asks (`ensureTopic`), or COORDINATOR_UNAVAILABLE while it has no leader.
 * - `gate(g)` is asked by every group request (GroupCoordinator's gate): NOT_COORDINATOR
 *   unless this broker leads g's partition, COORDINATOR_LOADING while it replays it.
 * - Leadership (ReplicaManager.onLeadershipChange): on leading a partition at an epoch, an
 *   `OffsetsPartition` replays its log from start to end, then serves; on losing it (another
 *   leader, lost lease, close) the partition is dropped and the coordinator unloads the
 *   membership of its groups (their members get NOT_COORDINATOR and find the new one).
 * - Reads (`get`, `offsetsOf`, `groupIds`, ...) cover the partitions loaded here: what this
 *   broker coordinates. Writes go to the group's partition (`OffsetsPartition.append`,
 *   acks=all); DELETE_TOPIC goes to every loaded partition that holds the topic.
 *
 * Lifecycle: built before the replica manager exists (the coordinator and disaster recovery
 * are built first), `attach` once it does; `close()` (idempotent) detaches and drops every
 * partition.
 */
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import type { GroupCoordinator } from '../broker/groups/group-coordinator.js';
import type { OffsetBackend } from '../broker/groups/offset-backend.js';
import { RecordType, type GroupMetadataValue, type PartitionCommit, type TopicPartitions } from '../broker/groups/offset-record.js';
import type { CommittedOffset, OffsetStoreStats } from '../broker/groups/offset-store.js';
import type { ProducerStates } from '../broker/producer-states.js';
import type { TopicManager } from '../storage/topic-manager.js';
import type { ReplicaManager } from './replica-manager.js';
import { OffsetsPartition } from './group-offsets-partition.js';
import { OFFSETS_TOPIC, offsetsPartitionFor, offsetsTopicSpec } from './group-offsets-topic.js';
import type { ClusterNode } from './cluster-node.js';

/** What ClusterOffsets needs of the region (cluster-node.ts's ClusterNode, narrowed). */
export interface OffsetsTopicRegion {
  /** Whether the topic exists in etcd and is open here. */
  topicReady(name: string): boolean;
  /** Creates the offsets topic through the controller (a creation already under way is waited for). */
  createOffsetsTopic(): Promise<void>;
  /** A live broker's registered Kafka address. */
  brokerAddress(nodeId: number): { host: string; port: number } | undefined;
}

export interface ClusterOffsetsOptions {
  readonly topics: TopicManager;
  /** Partitions to create the topic with (cluster.offsetsTopicPartitions); an existing topic's count wins. */
  readonly partitions: number;
  /** Log flush mode `fsync`: commits are fdatasync'd on the leader before they count. */
  readonly sync: boolean;
  /** How long a commit waits for the in-sync replicas (default 5 s, Kafka offsets.commit.timeout.ms). */
  readonly commitTimeoutMs?: number;
  /**
   * cluster.offsetsCompactionBytes: a partition led here writes a checkpoint of its groups and
   * moves its log start to it once its log holds this many bytes and twice the checkpoint's
   * (group-offsets-partition.ts). Undefined: never compacted.
   */
  readonly compactionBytes?: number;
  readonly logger?: Logger;
}

export type CoordinatorAnswer = { nodeId: number; host: string; port: number } | { error: MeridianError };

export class ClusterOffsets implements OffsetBackend {
  readonly #o: ClusterOffsetsOptions;
  readonly #parts = new Map<number, OffsetsPartition>();
  #rm: ReplicaManager | undefined;
  #region: OffsetsTopicRegion | undefined;
  #coordinator: GroupCoordinator | undefined;
  #producerStates: ProducerStates | undefined;
  #offLeadership: (() => void) | undefined;
  #creating: Promise<void> | undefined;
  #closed = false;
  #loads = 0;

  constructor(o: ClusterOffsetsOptions) {
    this.#o = o;
  }

  /**
   * Starts following leadership of the offsets partitions: those led now are loaded, and
   * each change loads or unloads one. `coordinator` is told to unload a partition's groups.
   */
  attach(replicaManager: ReplicaManager, region: OffsetsTopicRegion, coordinator: GroupCoordinator, producerStates: ProducerStates): void {
    this.#producerStates = producerStates;
    this.#rm = replicaManager;
    this.#region = region;
    this.#coordinator = coordinator;
    const offLeadership = replicaManager.onLeadershipChange((topic, partition) => {
      if (topic === OFFSETS_TOPIC) this.#refresh(partition);
    });
    // A topic deleted through any broker goes from every broker (cluster/topic-sync.ts):
    // each drops the offsets of the groups it coordinates, so a topic created again under
    // the name starts with none (the asking broker alone reached only its own groups).
    const offTopics = this.#o.topics.onTopicChange((event, info) => {
      if (event !== 'deleted' || info.name === OFFSETS_TOPIC) return;
      this.deleteTopic(info.name).catch((err: unknown) => this.#o.logger?.warn({ err, topic: info.name }, 'could not drop the committed offsets of a deleted topic; a group of this coordinator may still list them'));
    });
    this.#offLeadership = () => {
      offLeadership();
      offTopics();
    };
    for (const { topic, partition } of replicaManager.ledPartitions()) if (topic === OFFSETS_TOPIC) this.#refresh(partition);
  }

  /** The partition count in force: the topic's once it exists, else the configured one. */
  get partitionCount(): number {
    return this.#o.topics.getTopic(OFFSETS_TOPIC)?.partitions ?? this.#o.partitions;
  }

  partitionFor(groupId: string): number {
    return offsetsPartitionFor(groupId, this.partitionCount);
  }

  /** Null when this broker coordinates `groupId` now; else the error to answer (see the header). */
  gate(groupId: string): MeridianError | null {
    if (this.#closed) return new MeridianError(ErrorCode.CoordinatorClosed, 'the group coordinator is closed');
    if (this.#region === undefined || !this.#region.topicReady(OFFSETS_TOPIC)) {
      return new MeridianError(ErrorCode.CoordinatorUnavailable, `the offsets topic ${OFFSETS_TOPIC} does not exist yet (FindCoordinator creates it); retry`);
    }
    const p = this.partitionFor(groupId);
    const part = this.#parts.get(p);
    if (part === undefined || part.closed) {
      const leader = this.#rm?.partitionMetadata(OFFSETS_TOPIC, p)?.leaderId ?? -1;
      return new MeridianError(ErrorCode.NotCoordinator, `broker ${this.#rm?.nodeId ?? '?'} is not the coordinator of group ${groupId}: ${OFFSETS_TOPIC}-${p} is led by ${leader < 0 ? 'no broker now' : `broker ${leader}`}; find the coordinator again`);
    }
    if (!part.loaded) return new MeridianError(ErrorCode.CoordinatorLoading, `group ${groupId}: ${OFFSETS_TOPIC}-${p} is still being loaded here; retry shortly`);
    // Kept through a suspended lease: nothing is answered until the leadership is resumed.
    if (this.#rm !== undefined && !this.#rm.isLeading(OFFSETS_TOPIC, p)) {
      return new MeridianError(ErrorCode.NotCoordinator, `broker ${this.#rm.nodeId} does not act as coordinator of group ${groupId} until its etcd lease is assured again; find the coordinator again`);
    }
    return null;
  }

  /**
   * FindCoordinator for a group: the leader of its partition, at its registered address.
   * Creates the offsets topic when it does not exist (waiting up to `waitMs` for it and a
   * leader); COORDINATOR_UNAVAILABLE until both are there.
   */
  async coordinatorFor(groupId: string, waitMs = 3000): Promise<CoordinatorAnswer> {
    const region = this.#region;
    const rm = this.#rm;
    if (region === undefined || rm === undefined || this.#closed) return { error: new MeridianError(ErrorCode.CoordinatorUnavailable, 'this broker has not joined its region yet; retry') };
    const deadline = Date.now() + waitMs;
    if (!region.topicReady(OFFSETS_TOPIC)) {
      const creating = this.ensureTopic();
      const timedOut = await Promise.race([creating.then(() => false, () => false), sleep(waitMs).then(() => true)]);
      if (timedOut || !region.topicReady(OFFSETS_TOPIC)) return { error: new MeridianError(ErrorCode.CoordinatorUnavailable, `the offsets topic ${OFFSETS_TOPIC} is being created; retry`) };
    }
    const p = this.partitionFor(groupId);
    for (;;) {
      const leader = rm.partitionMetadata(OFFSETS_TOPIC, p)?.leaderId ?? -1;
      const address = leader < 0 ? undefined : region.brokerAddress(leader);
      if (address !== undefined) return { nodeId: leader, host: address.host, port: address.port };
      if (Date.now() >= deadline) return { error: new MeridianError(ErrorCode.CoordinatorUnavailable, `${OFFSETS_TOPIC}-${p}, which holds group ${groupId}, has no leader now; retry`) };
      await sleep(50);
    }
  }

  /** Creates the offsets topic once (a failed creation is tried again at the next ask). */
  ensureTopic(): Promise<void> {
    const region = this.#region;
    if (region === undefined) return Promise.reject(new MeridianError(ErrorCode.CoordinatorUnavailable, 'this broker has not joined its region yet'));
    this.#creating ??= region.createOffsetsTopic().then(
      () => this.#o.logger?.info({ topic: OFFSETS_TOPIC }, 'offsets topic ready'),
      (err: unknown) => {
        this.#creating = undefined;
        if (err instanceof MeridianError && err.code === ErrorCode.TopicExists) return;
        this.#o.logger?.warn({ err, topic: OFFSETS_TOPIC }, 'could not create the offsets topic; retried at the next FindCoordinator');
        throw err;
      },
    );
    return this.#creating;
  }

  // -------------------------------------------------------------------------------------
  // OffsetBackend

  commit(groupId: string, commits: readonly PartitionCommit[]): Promise<void> {
    if (commits.length === 0) return Promise.resolve();
    return this.#partOf(groupId).then((p) => p.append({ type: RecordType.Commit, groupId, commits }));
  }

  // The deletions decide whether to append against what the log holds, not only what is
  // served: an unacknowledged commit that replicated later is in the log and in the next
  // checkpoint, which becomes the served state; without a deletion record after it, what
  // was deleted would come back then.

  async deleteTopic(topic: string): Promise<void> {
    await Promise.all([...this.#parts.values()].filter((p) => p.loaded && p.holdsTopic(topic)).map((p) => p.append({ type: RecordType.DeleteTopic, topic })));
  }

  deleteGroup(groupId: string): Promise<void> {
    return this.#partOf(groupId).then((p) => (p.holdsGroup(groupId) ? p.append({ type: RecordType.DeleteGroup, groupId }) : undefined));
  }

  deleteOffsets(groupId: string, topics: readonly TopicPartitions[]): Promise<void> {
    return this.#partOf(groupId).then((p) => {
      const present = topics.map((t) => ({ topic: t.topic, partitions: t.partitions.filter((x) => p.holdsOffset(groupId, t.topic, x)) })).filter((t) => t.partitions.length > 0);
      return present.length > 0 ? p.append({ type: RecordType.DeleteOffsets, groupId, topics: present }) : undefined;
    });
  }

  recordGeneration(groupId: string, value: GroupMetadataValue): Promise<void> {
    return this.#partOf(groupId).then((p) => p.append({ type: RecordType.GroupMetadata, groupId, ...value }));
  }

  generationOf(groupId: string): GroupMetadataValue | undefined {
    return this.#loadedPartOf(groupId)?.generationOf(groupId);
  }

  get(groupId: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.#loadedPartOf(groupId)?.get(groupId, topic, partition);
  }

  offsetsOf(groupId: string): ReadonlyMap<string, ReadonlyMap<number, CommittedOffset>> | undefined {
    return this.#loadedPartOf(groupId)?.offsetsOf(groupId);
  }

  hasGroup(groupId: string): boolean {
    return this.#loadedPartOf(groupId)?.hasGroup(groupId) ?? false;
  }

  mayHoldGroup(groupId: string): boolean {
    return this.#loadedPartOf(groupId)?.holdsGroupOffsets(groupId) ?? false;
  }

  groupIds(): string[] {
    return [...this.#parts.values()].filter((p) => p.loaded).flatMap((p) => p.groupIds());
  }

  stats(): OffsetStoreStats {
    let records = 0;
    let groups = 0;
    let partitions = 0;
    let compactions = 0;
    let logBytes = 0;
    for (const p of this.#parts.values()) {
      if (!p.loaded) continue;
      records += p.records;
      groups += p.groupIds().length;
      partitions += p.partitionCount();
      compactions += p.checkpoints;
      logBytes += p.logBytes;
    }
    // compactions: checkpoints that moved a log start; logBytes: the led partitions' logs from
    // their starts. The file store's other disk counters have no meaning here.
    return { records, fsyncs: 0, compactions, logBytes, snapshotBytes: 0, queuedBytes: 0, groups, partitions, truncatedBytesOnOpen: 0 };
  }

  /** The offsets partitions loaded here and how many are still loading (admin, tests). */
  led(): { loaded: number[]; loading: number[]; loads: number } {
    const loaded: number[] = [];
    const loading: number[] = [];
    for (const [p, part] of this.#parts) (part.loaded ? loaded : loading).push(p);
    return { loaded: loaded.sort((a, b) => a - b), loading: loading.sort((a, b) => a - b), loads: this.#loads };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#offLeadership?.();
    for (const p of this.#parts.values()) p.close();
    this.#parts.clear();
  }

  // -------------------------------------------------------------------------------------

  /** The loaded partition of the group, or the gate's error (rejected). */
  #partOf(groupId: string): Promise<OffsetsPartition> {
    const refused = this.gate(groupId);
    if (refused !== null) return Promise.reject(refused);
    return Promise.resolve(this.#parts.get(this.partitionFor(groupId))!);
  }

  #loadedPartOf(groupId: string): OffsetsPartition | undefined {
    if (this.#region === undefined || !this.#region.topicReady(OFFSETS_TOPIC)) return undefined;
    const p = this.#parts.get(this.partitionFor(groupId));
    return p?.loaded ? p : undefined;
  }

  /** Loads or unloads partition `p` after a possible leadership change. */
  #refresh(p: number): void {
    const rm = this.#rm;
    const producerStates = this.#producerStates;
    if (rm === undefined || producerStates === undefined || this.#closed) return;
    const leading = rm.isLeading(OFFSETS_TOPIC, p);
    const epoch = rm.leaderEpochFor(OFFSETS_TOPIC, p);
    const current = this.#parts.get(p);
    if (current !== undefined && leading && current.leaderEpoch === epoch) return;
    // Leadership suspended (the etcd lease not renewed in time) but still the leader of that
    // epoch here: keep the groups (the gate refuses meanwhile); a blip must not unload every
    // group this broker coordinates and send them all through a rebalance. The fresh read
    // that ends the suspension either resumes the same epoch (kept) or moves it (unloaded).
    const replica = rm.replica(OFFSETS_TOPIC, p);
    if (current !== undefined && !leading && rm.leadershipSuspended && replica?.role === 'leader' && replica.leaderEpoch === current.leaderEpoch) return;
    if (current !== undefined) this.#unload(p, current, leading ? `leading again at epoch ${epoch}` : 'no longer leading it');
    if (!leading || epoch === undefined) return;
    const log = this.#o.topics.partition(OFFSETS_TOPIC, p);
    if (log === undefined) return;
    const part = new OffsetsPartition({
      partition: p,
      leaderEpoch: epoch,
      log,
      replicaManager: rm,
      producerStates,
      sync: this.#o.sync,
      commitTimeoutMs: this.#o.commitTimeoutMs ?? 5000,
      ...(this.#o.compactionBytes !== undefined ? { compactionBytes: this.#o.compactionBytes } : {}),
      ...(this.#o.logger ? { logger: this.#o.logger } : {}),
    });
    this.#parts.set(p, part);
    this.#loads++;
    const started = Date.now();
    part.load().then(
      (records) => {
        this.#o.logger?.info({ topic: OFFSETS_TOPIC, partition: p, leaderEpoch: epoch, records, groups: part.groupIds().length, ms: Date.now() - started }, 'offsets partition loaded: coordinating its groups');
        // Whoever rewrites commits on load (a DR failback's clamp) does it as soon as it serves.
        if (!part.closed) this.#coordinator?.offsetsLoaded(p);
      },
      (err: unknown) => {
        if (part.closed) return;
        // A log that cannot be read: serve nothing of it (NOT_COORDINATOR) rather than rewind groups.
        this.#o.logger?.error({ err, topic: OFFSETS_TOPIC, partition: p }, 'could not load the offsets partition; its groups are not coordinated here until a retry loads it');
        this.#unload(p, part, 'its load failed');
        // Still the leader: try again (a transient read error must not orphan its groups
        // until leadership happens to move).
        setTimeout(() => this.#refresh(p), LOAD_RETRY_MS).unref();
      },
    );
  }

  #unload(p: number, part: OffsetsPartition, why: string): void {
    part.close();
    if (this.#parts.get(p) === part) this.#parts.delete(p);
    const n = this.#coordinator?.unloadGroups((g) => this.partitionFor(g) === p) ?? 0;
    this.#o.logger?.info({ topic: OFFSETS_TOPIC, partition: p, leaderEpoch: part.leaderEpoch, groups: n, why }, 'offsets partition unloaded');
  }
}

/** The region as ClusterOffsets sees it, from this broker's ClusterNode. */
export function offsetsTopicRegion(node: ClusterNode, partitions: () => number, defaultReplicationFactor: number | null): OffsetsTopicRegion {
  const since = Date.now();
  return {
    topicReady: (name) => node.topicSync.ready(name) !== undefined,
    createOffsetsTopic: async () => {
      // Its replication factor is fixed at creation: during a (rolling) start, wait a while
      // for the region's other brokers rather than make it RF 1 for good because one broker
      // happened to be first (Kafka waits for offsets.topic.replication.factor brokers).
      const live = node.brokers().length;
      const want = defaultReplicationFactor ?? 3;
      if (live < want && Date.now() - since < OFFSETS_TOPIC_SETTLE_MS) {
        throw new MeridianError(ErrorCode.CoordinatorUnavailable, `${OFFSETS_TOPIC} is created once ${want} brokers are registered (${live} are) or ${OFFSETS_TOPIC_SETTLE_MS / 1000} s after this broker joined; retry`);
      }
      const spec = offsetsTopicSpec(partitions(), live, defaultReplicationFactor);
      try {
        await node.createTopic(OFFSETS_TOPIC, spec);
      } catch (err) {
        // Another broker created it first: wait until it is open here too.
        if (!(err instanceof MeridianError && err.code === ErrorCode.TopicExists)) throw err;
        await node.topicSync.waitReady(OFFSETS_TOPIC, 30_000);
      }
    },
    brokerAddress: (nodeId) => node.brokers().find((b) => b.nodeId === nodeId)?.kafka,
  };
}

/** Pause before loading an offsets partition again after a failed load. */
const LOAD_RETRY_MS = 1000;

/** How long a broker waits for the region's other brokers before it creates the offsets topic with fewer replicas. */
const OFFSETS_TOPIC_SETTLE_MS = 30_000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
