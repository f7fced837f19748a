/**
 * In-region replication on one broker (Kafka's ReplicaManager): turns the partition states
 * of a `PartitionStateSource` into roles (partition-replica.ts), runs one follower fetcher
 * per leader broker (replica-fetcher.ts), keeps the ISR of the partitions it leads, and
 * answers the broker's request handlers:
 * - Produce: `checkProduce` (leader? enough in-sync replicas for acks=all?),
 *   `leaderEpochFor` (the epoch stamped on the batches), `awaitReplicated` (acks=all).
 * - Fetch: `checkFetch` (leader? current_leader_epoch), `followerFetched` (a follower's
 *   progress), `fetchBounds` (consumers read to the high watermark, followers to the log
 *   end), `watch` (a consumer's long poll wakes when the high watermark moves).
 * - OffsetForLeaderEpoch: `offsetForLeaderEpoch`, from the log's epoch cache plus the
 *   leader's own epoch, which starts at its log end when it is elected (Kafka assigns it then).
 * - Metadata: `partitionMetadata`, `brokers`.
 *
 * Role changes: becoming leader first stops this broker's fetch of the partition and waits
 * for its in-flight append (so no follower append lands beside a produce), then drops the
 * in-memory idempotent-producer state and the geo-replication dedup table (both rebuild
 * from the log, which holds every batch the follower copied), then serves produce under the
 * new epoch. Until then produce gets NOT_LEADER_OR_FOLLOWER, which clients retry. Becoming
 * follower fails the produce requests waiting for replication and hands the partition to
 * the new leader's fetcher, which truncates the divergent tail before it fetches.
 *
 * `min.insync.replicas` is `minInsyncReplicas(topic)` when given, else
 * `defaultMinInsyncReplicas`: the topic-config layer fixes min.insync.replicas at 1
 * (broker/kafka/topic-config.ts); making it a settable topic config is the next layer's.
 *
 * Removed replicas: once a partition's state (as etcd holds it) no longer lists this broker
 * (a reassignment completed, or was cancelled after adding it), its local copy is emptied:
 * the fetch stops first, then the log is truncated to its start (`#discardCopy`), so the
 * segments go and the directory is left as every broker's non-replica partitions are
 * (empty: each broker opens every partition, cluster-node.ts). The same runs for a state read
 * at start-up, for a broker that was down while it was removed. A state listing the broker
 * again while its copy is being emptied is applied once that is done: it then starts as a
 * new follower. Only the states decide: the partition is never emptied while listed.
 *
 * Lifecycle: `start()` reads every state and subscribes; `close()` (idempotent) stops the
 * fetchers, the ISR timer and the subscription, and fails waiting produce requests.
 */
import type { Logger } from 'pino';
import type { LinkSecurityConfig } from '../config/schema.js';
import type { LedPartition } from './etcd-contact.js';
import { ErrorCode, MeridianError } from '../errors.js';
import type { ProducerStates } from '../broker/producer-states.js';
import type { ReplicaStates } from '../replication/replica-state.js';
import { answerFromCache, type EpochAnswer } from '../broker/kafka/offset-for-leader-epoch.js';
import { toKafkaError } from '../protocol/kafka/error-mapping.js';
import { UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET } from '../storage/leader-epoch-cache.js';
import type { LogView } from '../storage/log-view.js';
import type { PartitionLog } from '../storage/partition-log.js';
import type { TopicManager } from '../storage/topic-manager.js';
import { HighWatermarkCheckpoint } from './hw-checkpoint.js';
import { notLeader, PartitionReplica } from './partition-replica.js';
import type { HostPort, NamedPartitionState, PartitionStateSource } from './partition-state-source.js';
import { ReplicaFetcher } from './replica-fetcher.js';
import { leaderCut, truncationComplete, type TruncationSettler } from './partition-truncate.js';

export interface ReplicaManagerOptions {
  nodeId: number;
  source: PartitionStateSource;
  topics: TopicManager;
  producerStates: ProducerStates;
  replicaStates: ReplicaStates;
  /** The log flush mode: in `fsync` the leader's and followers' ends count once fdatasync'd. */
  flushMode: 'fsync' | 'interval';
  /** A follower not caught up for this long leaves the ISR (Kafka replica.lag.time.max.ms; default 10 s). */
  replicaLagTimeMaxMs?: number;
  /** min.insync.replicas of topics that set none (default 1). */
  defaultMinInsyncReplicas?: number;
  /**
   * Whether this broker may act as a leader now (etcd: its lease is fresh, Membership's
   * self-fencing clock). False: produce answers NOT_LEADER_OR_FOLLOWER at once, before the
   * controller can have elected another leader. Default: always.
   */
  leased?: (topic: string, partition: number, leaderEpoch: number) => boolean;
  /**
   * Until when (performance.now()) a leadership this broker has not acted on yet may not
   * start acting: it answered a peer "no contact with etcd" (Membership.coolingUntil).
   */
  coolingUntil?: () => number;
  /** A topic's own min.insync.replicas, when it has one. */
  minInsyncReplicas?: (topic: string) => number | undefined;
  /** Follower fetch long-poll (Kafka replica.fetch.wait.max.ms; default 500 ms). */
  fetchMaxWaitMs?: number;
  /** Follower fetch sizes (default 10 MiB per response, 1 MiB per partition). */
  fetchMaxBytes?: number;
  partitionFetchMaxBytes?: number;
  /** Wait before a refused partition or a failed connection is retried (default 100 ms, doubling to 1 s). */
  fetchBackoffMs?: number;
  /** TLS and SASL of the fetchers' connections to other brokers. */
  linkSecurity?: LinkSecurityConfig;
  /** How soon a moved high watermark is checkpointed (Kafka replica.high.watermark.checkpoint.interval.ms; default 5 s). */
  hwCheckpointMs?: number;
  logger?: Logger;
}

/** What Metadata says of a partition. */
export interface PartitionMetadata {
  leaderId: number;
  leaderEpoch: number;
  replicas: readonly number[];
  isr: readonly number[];
}

const NO_CHECK_EPOCH = -1;

export class ReplicaManager {
  readonly nodeId: number;
  readonly #opts: ReplicaManagerOptions;
  readonly #lagMs: number;
  /** Every partition's latest state, this broker's or not (Metadata answers for all). */
  readonly #states = new Map<string, NamedPartitionState>();
  /** The partitions this broker holds a replica of. */
  readonly #replicas = new Map<string, PartitionReplica>();
  readonly #byLog = new WeakMap<PartitionLog, PartitionReplica>();
  /** Bumped at each role change of a partition: an older asynchronous step gives up. */
  readonly #generation = new Map<string, number>();
  readonly #fetchers = new Map<number, ReplicaFetcher>();
  /** Copies of partitions this broker is no longer a replica of, being emptied (`#discardCopy`). */
  readonly #discarding = new Map<string, Promise<void>>();
  #unsubscribe: (() => void) | undefined;
  #offTopics: (() => void) | undefined;
  #isrTimer: NodeJS.Timeout | undefined;
  #fetchersPaused = false;
  /** Why leadership is suspended (the etcd lease was lost or not renewed in time), or undefined. */
  #suspended: string | undefined;
  /** Per partition, the leader epoch this broker has acted as leader at (`#fenced`'s cooldown). */
  readonly #acting = new Map<string, number>();
  #closed = false;
  readonly #leadershipListeners = new Set<(topic: string, partition: number) => void>();
  /** Region-wide truncations (partition-truncate.ts): the id this broker's leadership applied, per partition. */
  readonly #truncationsCut = new Map<string, string>();
  /** Outcome writes in flight, per partition (one at a time). */
  readonly #settling = new Set<string>();
  #settleTruncation: TruncationSettler | undefined;
  /** The replicated high watermarks, kept across restarts (hw-checkpoint.ts). */
  readonly #hwCheckpoint: HighWatermarkCheckpoint;

  constructor(opts: ReplicaManagerOptions) {
    this.nodeId = opts.nodeId;
    this.#opts = opts;
    this.#lagMs = opts.replicaLagTimeMaxMs ?? 10_000;
    this.#hwCheckpoint = new HighWatermarkCheckpoint(opts.topics.dataDir, () => this.#highWatermarks(), { intervalMs: opts.hwCheckpointMs, logger: opts.logger });
  }

  /** Every replica's high watermark, by topic id (the checkpoint's contents). */
  *#highWatermarks(): Iterable<[string, number, bigint]> {
    for (const r of this.#replicas.values()) {
      const id = this.#opts.topics.getTopic(r.topic)?.id;
      if (id !== undefined) yield [id, r.partition, r.highWatermark];
    }
  }

  start(): void {
    this.#unsubscribe = this.#opts.source.subscribe((s) => this.#apply(s));
    for (const s of this.#opts.source.states()) this.#apply(s);
    // A state naming a topic (or a partition) this broker has not opened yet is applied once it is.
    const applyWaiting = () => {
      for (const s of [...this.#states.values()]) if (s.replicas.includes(this.nodeId) && !this.#replicas.has(keyOf(s.topic, s.partition))) this.#reapply(s);
    };
    const offChange = this.#opts.topics.onTopicChange((event) => {
      if (event === 'deleted') return this.#forgetDeleted();
      applyWaiting();
    });
    const offGrown = this.#opts.topics.onPartitionsAdded(() => applyWaiting());
    this.#offTopics = () => {
      offChange();
      offGrown();
    };
    // Kafka checks the ISR every replica.lag.time.max.ms / 2.
    this.#isrTimer = setInterval(() => this.#checkIsr(), Math.max(10, Math.floor(this.#lagMs / 2)));
    this.#isrTimer.unref();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe?.();
    this.#offTopics?.();
    clearInterval(this.#isrTimer);
    // Before the replicas close: what they hold now is what the next start exposes.
    await this.#hwCheckpoint.close();
    const led = [...this.#replicas.values()].filter((r) => r.role === 'leader');
    for (const r of this.#replicas.values()) r.close();
    for (const r of led) this.#leadershipChanged(r.topic, r.partition);
    await Promise.all([...this.#fetchers.values()].map((f) => f.close()));
    this.#fetchers.clear();
  }

  /**
   * Whether this broker leads the partition and may act as its leader now: role leader and
   * leadership not suspended (the etcd lease). What runs only on a leader (group
   * coordination, offload, geo-replication workers) asks this, with `leaderEpochFor` for
   * the epoch to fence its writes with.
   */
  isLeading(topic: string, partition: number): boolean {
    return this.#suspended === undefined && !this.#closed && this.#replicas.get(keyOf(topic, partition))?.role === 'leader';
  }

  /**
   * Calls `listener(topic, partition)` whenever `isLeading` of a partition may have changed
   * (became leader, stopped leading, a new epoch, suspension and resumption, close); the
   * listener asks `isLeading` / `leaderEpochFor` again (a call may repeat an unchanged
   * answer). Called synchronously from the role change; a throwing listener is logged.
   * Returns the unsubscribe.
   */
  onLeadershipChange(listener: (topic: string, partition: number) => void): () => void {
    this.#leadershipListeners.add(listener);
    return () => this.#leadershipListeners.delete(listener);
  }

  /** Every partition this broker leads now (`isLeading`). */
  ledPartitions(): Array<{ topic: string; partition: number; leaderEpoch: number }> {
    if (this.#suspended !== undefined || this.#closed) return [];
    const out: Array<{ topic: string; partition: number; leaderEpoch: number }> = [];
    for (const r of this.#replicas.values()) if (r.role === 'leader') out.push({ topic: r.topic, partition: r.partition, leaderEpoch: r.leaderEpoch });
    return out;
  }

  #leadershipChanged(topic: string, partition: number): void {
    for (const l of this.#leadershipListeners) {
      try {
        l(topic, partition);
      } catch (err) {
        this.#opts.logger?.error({ err, topic, partition }, 'a leadership listener failed');
      }
    }
  }

  /**
   * DeleteRecords in a cluster: the replicated high watermark, the highest offset records
   * may be deleted before; NOT_LEADER_OR_FOLLOWER (or the lease error) when this broker may
   * not act as the partition's leader now.
   */
  deletableBefore(topic: string, partition: number): bigint {
    const fenced = this.#fenced(topic, partition);
    if (fenced !== null) throw fenced;
    const r = this.#replicas.get(keyOf(topic, partition));
    if (r === undefined || r.role !== 'leader') throw this.#notLeader(topic, partition, r);
    const written = r.log.highWatermark;
    return r.highWatermark < written ? r.highWatermark : written;
  }

  /**
   * DeleteRecords' completion (Kafka's DelayedDeleteRecords): resolves once every replica in
   * the ISR reported a log start at or past `offset` in its fetches (followers move theirs
   * after the leader's: replica-fetcher.ts), so a follower elected next cannot serve the
   * deleted records again. REQUEST_TIMED_OUT after `timeoutMs`; NOT_LEADER_OR_FOLLOWER if
   * leadership moves meanwhile.
   */
  async awaitLogStart(topic: string, partition: number, offset: bigint, timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const r = this.#replicas.get(keyOf(topic, partition));
      if (r === undefined || r.role !== 'leader') throw this.#notLeader(topic, partition, r);
      const behind = r.state.isr.filter((id) => id !== this.nodeId && (r.followerProgress(id)?.logStartOffset ?? -1n) < offset);
      if (behind.length === 0) return;
      if (Date.now() >= until) {
        throw new MeridianError(ErrorCode.ReplicationTimedOut, `${topic}-${partition}: records before ${offset} are deleted on the leader, but in-sync replica${behind.length > 1 ? 's' : ''} ${behind.join(', ')} did not report ${behind.length > 1 ? 'their' : 'its'} log start there within ${timeoutMs} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /**
   * Where the leader writes the outcome of a region-wide truncation it carried out
   * (partition-truncate.ts settleTruncation; the cluster node sets it). Without it a
   * truncation is still applied, and never reported done.
   */
  settleTruncationsWith(settler: TruncationSettler): void {
    this.#settleTruncation = settler;
  }

  /** This broker's replica of a partition, when it has one. */
  replica(topic: string, partition: number): PartitionReplica | undefined {
    return this.#replicas.get(keyOf(topic, partition));
  }

  /** The fetcher from leader `leaderId`, when this broker follows something of it. */
  fetcher(leaderId: number): ReplicaFetcher | undefined {
    return this.#fetchers.get(leaderId);
  }

  /** Stops every follower fetch (the partitions stay followed): tests and drills stand in for a slow follower. */
  pauseFetchers(): void {
    this.#fetchersPaused = true;
    for (const f of this.#fetchers.values()) f.pause();
  }

  resumeFetchers(): void {
    this.#fetchersPaused = false;
    for (const f of this.#fetchers.values()) f.resume();
  }

  // -------------------------------------------------------------------------------------
  // Leadership suspension (the etcd lease; cluster-node.ts wires Membership's events here)

  /**
   * The broker lost its lease or its self-fencing clock ran out: it stops leading at once,
   * before the controller can have elected anyone else. Every acks=all request waiting
   * fails with NOT_LEADER_OR_FOLLOWER and produce is refused until `resumeLeadership`.
   * Roles are kept (followers go on fetching); the states in hand may be stale by now, so
   * only a fresh read decides what this broker leads again.
   */
  suspendLeadership(why: string): void {
    if (this.#closed) return;
    if (this.#suspended === undefined) this.#opts.logger?.warn({ nodeId: this.nodeId, why }, 'leadership suspended: no produce is acknowledged until the partition states are read again from etcd');
    const was = this.#suspended;
    this.#suspended = why;
    for (const r of this.#replicas.values()) if (r.role === 'leader') r.failWaiting(`broker ${this.nodeId} stopped acting as leader while the request waited for replication (${why})`);
    if (was === undefined) for (const r of this.#replicas.values()) if (r.role === 'leader') this.#leadershipChanged(r.topic, r.partition);
  }

  /**
   * Ends a suspension with `fresh`, every partition state as read from etcd after this
   * broker registered again (a read whose revision is past its new broker epoch): each is
   * applied first (a newer leader makes this broker follow it), a partition led here that
   * the read does not hold stops being led, and only then is produce taken again.
   */
  resumeLeadership(fresh: Iterable<NamedPartitionState>): void {
    if (this.#closed || this.#suspended === undefined) return;
    const seen = new Set<string>();
    for (const s of fresh) {
      seen.add(keyOf(s.topic, s.partition));
      this.#apply(s);
    }
    for (const [k, r] of this.#replicas) {
      if (r.role !== 'leader' || seen.has(k)) continue;
      this.#bump(k);
      r.resign(r.state);
      this.#leadershipChanged(r.topic, r.partition);
    }
    this.#suspended = undefined;
    this.#opts.logger?.info({ nodeId: this.nodeId }, 'leadership resumed from a fresh read of the partition states');
    for (const r of this.#replicas.values()) if (r.role === 'leader') this.#leadershipChanged(r.topic, r.partition);
  }

  /** Whether leadership is suspended (see suspendLeadership). */
  get leadershipSuspended(): boolean {
    return this.#suspended !== undefined;
  }

  // -------------------------------------------------------------------------------------
  // Produce

  /**
   * Whether a produce may append now (called before any work and again right before the
   * append): only the leader takes produce; acks=all needs an ISR of min.insync.replicas.
   */
  checkProduce(topic: string, partition: number, acks: number): MeridianError | null {
    const r = this.#replicas.get(keyOf(topic, partition));
    if (r === undefined || r.role !== 'leader') return this.#notLeader(topic, partition, r);
    const fenced = this.#fenced(topic, partition);
    if (fenced !== null) return fenced;
    if (acks === -1) {
      const min = this.minInsyncReplicas(topic);
      const isr = r.state.isr;
      if (isr.length < min) {
        return new MeridianError(ErrorCode.NotEnoughReplicas, `${topic}-${partition}: the ISR [${isr.join(', ')}] has ${isr.length} replica(s), fewer than min.insync.replicas ${min}; nothing was written (acks=all)`);
      }
    }
    return null;
  }

  /**
   * Asked right before a produce is answered with success (acks=1 once written, acks=all
   * once replicated): this broker must still be leased and lead the partition at
   * `leaderEpoch`, the epoch stamped on the batches (undefined: any epoch, for a duplicate's
   * answer). Otherwise NOT_LEADER_OR_FOLLOWER: the record stays in the log unacknowledged
   * and is truncated if another leader took over, as in Kafka.
   */
  checkAnswer(topic: string, partition: number, leaderEpoch: number | undefined): MeridianError | null {
    const r = this.#replicas.get(keyOf(topic, partition));
    if (r === undefined || r.role !== 'leader') return this.#notLeader(topic, partition, r);
    if (leaderEpoch !== undefined && r.leaderEpoch !== leaderEpoch) {
      return notLeader(r, `the leader epoch changed from ${leaderEpoch} while the request was written; it is not acknowledged`);
    }
    return this.#fenced(topic, partition);
  }

  /** The leader epoch to stamp on a produce's batches (undefined: not the leader). */
  leaderEpochFor(topic: string, partition: number): number | undefined {
    const r = this.#replicas.get(keyOf(topic, partition));
    return r?.role === 'leader' ? r.leaderEpoch : undefined;
  }

  /** acks=all: resolves once the high watermark passes `lastOffset`; rejects with the error to answer. */
  async awaitReplicated(topic: string, partition: number, lastOffset: bigint, timeoutMs: number): Promise<void> {
    const r = this.#replicas.get(keyOf(topic, partition));
    if (r === undefined) throw this.#notLeader(topic, partition, r);
    const err = await r.awaitHighWatermark(lastOffset, this.minInsyncReplicas(topic), timeoutMs);
    if (err !== null) throw err;
  }

  minInsyncReplicas(topic: string): number {
    return this.#opts.minInsyncReplicas?.(topic) ?? this.#opts.defaultMinInsyncReplicas ?? 1;
  }

  // -------------------------------------------------------------------------------------
  // Fetch

  /**
   * Whether a fetch of the partition is served here: consumers (replicaId < 0) and followers
   * alike read from the leader only, a follower only of a partition it replicates; a
   * `currentLeaderEpoch` other than -1 must be the leader's (older: FENCED_LEADER_EPOCH,
   * newer: UNKNOWN_LEADER_EPOCH).
   */
  checkFetch(topic: string, partition: number, replicaId: number, currentLeaderEpoch: number): MeridianError | null {
    const r = this.#replicas.get(keyOf(topic, partition));
    const epochError = this.#checkEpoch(topic, partition, currentLeaderEpoch, r);
    if (epochError !== null) return epochError;
    if (r === undefined || r.role !== 'leader') return this.#notLeader(topic, partition, r);
    if (replicaId >= 0 && !r.state.replicas.includes(replicaId)) {
      return new MeridianError(ErrorCode.NotLeader, `${topic}-${partition}: broker ${replicaId} fetched as a follower but is not one of its replicas [${r.state.replicas.join(', ')}]`);
    }
    return null;
  }

  /** A follower fetched from `fetchOffset`: it holds everything before it. */
  followerFetched(replicaId: number, topic: string, partition: number, fetchOffset: bigint, logStartOffset = -1n): void {
    const r = this.#replicas.get(keyOf(topic, partition));
    // Past what the leader has written, the follower's log diverged (it truncates before it
    // fetches again): it holds nothing the high watermark may count.
    if (r === undefined || r.role !== 'leader' || fetchOffset > r.log.highWatermark) return;
    r.followerFetched(replicaId, fetchOffset, Date.now(), logStartOffset);
    this.#maybeAlterIsr(r);
    this.#maybeSettleTruncation(r);
  }

  /** The log end when this broker became leader of the partition's current epoch (Kafka's leaderEpochStartOffset); undefined unless it leads it. */
  leaderEpochStartOffset(topic: string, partition: number): bigint | undefined {
    const r = this.#replicas.get(keyOf(topic, partition));
    return r === undefined || r.role !== 'leader' ? undefined : r.epochStartOffset;
  }

  /**
   * Where a fetch's reads of the partition stop and the high watermark it answers: a
   * follower reads to the log end, a consumer to the replicated high watermark (never past
   * what the log has written). Throws NOT_LEADER_OR_FOLLOWER once leadership moved.
   */
  fetchBounds(view: LogView, follower: boolean): { upTo: bigint; highWatermark: bigint } {
    const r = this.#replicas.get(keyOf(view.topic, view.partition));
    if (r === undefined || r.role !== 'leader') throw this.#notLeader(view.topic, view.partition, r);
    const written = view.local.highWatermark;
    const hw = r.highWatermark < written ? r.highWatermark : written;
    return { upTo: follower ? written : hw, highWatermark: hw };
  }

  /** A consumer's long poll wakes on appends and on the high watermark moving. */
  watch(log: PartitionLog, wake: () => void): () => void {
    const offAppend = log.onAppend(wake);
    const offHw = this.#byLog.get(log)?.onHighWatermark(wake);
    return () => {
      offAppend();
      offHw?.();
    };
  }

  // -------------------------------------------------------------------------------------
  // OffsetForLeaderEpoch

  /**
   * OffsetForLeaderEpoch on this broker (Kafka's Partition.lastOffsetForLeaderEpoch): only
   * the leader answers, from its log's epoch cache with its own epoch counted from its
   * election on (broker/kafka/offset-for-leader-epoch.ts answerFromCache); a
   * `currentLeaderEpoch` other than the leader's is fenced there.
   */
  offsetForLeaderEpoch(topic: string, partition: number, currentLeaderEpoch: number, leaderEpoch: number): EpochAnswer {
    const r = this.#replicas.get(keyOf(topic, partition));
    const error = this.#checkEpoch(topic, partition, currentLeaderEpoch, r) ?? (r === undefined || r.role !== 'leader' ? this.#notLeader(topic, partition, r) : null);
    if (error !== null) return { errorCode: toKafkaError(error).code, leaderEpoch: UNDEFINED_EPOCH, endOffset: UNDEFINED_EPOCH_OFFSET };
    return answerFromCache(r!.log, leaderEpoch, currentLeaderEpoch, r!.leaderEpoch);
  }

  // -------------------------------------------------------------------------------------
  // Metadata

  partitionMetadata(topic: string, partition: number): PartitionMetadata | undefined {
    const s = this.#states.get(keyOf(topic, partition));
    return s === undefined ? undefined : { leaderId: s.leader, leaderEpoch: s.leaderEpoch, replicas: s.replicas, isr: s.isr };
  }

  /** Every broker the states name, with its registered Kafka listener (unregistered ones left out). */
  brokers(): Array<{ nodeId: number } & HostPort> {
    const ids = new Set<number>([this.nodeId]);
    for (const s of this.#states.values()) for (const id of s.replicas) ids.add(id);
    const out: Array<{ nodeId: number } & HostPort> = [];
    for (const nodeId of [...ids].sort((a, b) => a - b)) {
      const a = this.#opts.source.brokerAddress(nodeId);
      if (a !== undefined) out.push({ nodeId, host: a.host, port: a.port });
    }
    return out;
  }

  // -------------------------------------------------------------------------------------
  // Roles

  #apply(s: NamedPartitionState): void {
    const before = this.#replicas.get(keyOf(s.topic, s.partition));
    const was = before?.role === 'leader' ? before.leaderEpoch : undefined;
    this.#applyState(s);
    const after = this.#replicas.get(keyOf(s.topic, s.partition));
    // Becoming leader is announced by #becomeLeader once it leads; this catches the rest.
    if (was !== undefined && (after !== before || after?.role !== 'leader' || after.leaderEpoch !== was)) this.#leadershipChanged(s.topic, s.partition);
  }

  #applyState(s: NamedPartitionState): void {
    if (this.#closed) return;
    const k = keyOf(s.topic, s.partition);
    const known = this.#states.get(k);
    // Watches may deliver an older state after a newer one (a CAS answer and a watch event),
    // or the same one again (a watch reloads after a compaction and re-delivers everything):
    // neither changes anything (re-applying would drop an ISR proposal in flight).
    if (known !== undefined && (s.leaderEpoch < known.leaderEpoch || (s.leaderEpoch === known.leaderEpoch && s.partitionEpoch <= known.partitionEpoch))) return;
    this.#states.set(k, s);
    let r = this.#replicas.get(k);
    if (!s.replicas.includes(this.nodeId)) {
      if (r !== undefined) {
        this.#bump(k);
        r.resign(s);
        this.#replicas.delete(k);
        this.#acting.delete(k);
        void this.#unfollow(s.topic, s.partition);
      }
      this.#discardCopy(s);
      return;
    }
    if (r === undefined) {
      const discarding = this.#discarding.get(k);
      if (discarding !== undefined) {
        // Listed again while its old copy is emptied: the latest state is applied once done.
        void discarding.then(() => {
          const latest = this.#states.get(k);
          if (latest !== undefined && !this.#closed) this.#reapply(latest);
        });
        return;
      }
      const log = this.#opts.topics.partition(s.topic, s.partition);
      // Not opened here yet: applied when the topic is (start()'s topic listener).
      if (log === undefined) return;
      const topicId = this.#opts.topics.getTopic(s.topic)?.id;
      r = new PartitionReplica(this.nodeId, log, s, this.#opts.flushMode === 'fsync', {
        initialHw: topicId === undefined ? undefined : this.#hwCheckpoint.initial(topicId, s.partition),
        onHwChange: () => this.#hwCheckpoint.changed(),
      });
      this.#replicas.set(k, r);
      this.#byLog.set(log, r);
    }
    if (s.leader === this.nodeId) {
      if (r.role === 'leader' && r.leaderEpoch === s.leaderEpoch) return r.update(s);
      const gen = this.#bump(k);
      r.resign(s);
      void this.#becomeLeader(r, s, gen);
    } else if (s.leader < 0) {
      this.#bump(k);
      r.resign(s);
      void this.#unfollow(s.topic, s.partition);
    } else {
      if (r.role === 'follower' && r.leaderEpoch === s.leaderEpoch && r.state.leader === s.leader) return r.update(s);
      this.#bump(k);
      r.follow(s);
      // A loaded producer state would miss what the follower copies, yet write snapshots at
      // each seal that a later leadership would trust: none is kept while following (the
      // invalidate in #becomeLeader marks the log led again).
      this.#opts.producerStates.follow(r.log);
      this.#opts.replicaStates.invalidate(r.log);
      for (const [leader, f] of this.#fetchers) if (leader !== s.leader) void f.remove(s.topic, s.partition);
      this.#fetcherFor(s.leader).add({ topic: s.topic, partition: s.partition, log: r.log, leaderEpoch: s.leaderEpoch });
    }
  }

  /** Replicas whose log went with a deleted topic stop (a recreated topic gets new ones). */
  #forgetDeleted(): void {
    for (const [k, r] of [...this.#replicas]) {
      if (this.#opts.topics.partition(r.topic, r.partition) === r.log) continue;
      this.#bump(k);
      const led = r.role === 'leader';
      r.close();
      this.#replicas.delete(k);
      this.#acting.delete(k);
      if (led) this.#leadershipChanged(r.topic, r.partition);
      void this.#unfollow(r.topic, r.partition);
    }
  }

  /**
   * Empties the local copy of a partition whose state does not list this broker, when it
   * holds records: a replica removed by a reassignment (Kafka's StopReplica with deletion),
   * now or while this broker was down. The fetch of it stops first (no follower append runs
   * beside the truncation); the state is checked again right before (a newer one may list
   * this broker again: then it is kept). Truncated to its start, the log holds nothing, as a
   * partition this broker never replicated; added back later, it fetches from the leader's
   * log start like any new replica. A failure is logged and retried at the partition's next
   * state (or the next start).
   */
  #discardCopy(s: NamedPartitionState): void {
    const k = keyOf(s.topic, s.partition);
    if (this.#closed || this.#discarding.has(k)) return;
    const log = this.#opts.topics.partition(s.topic, s.partition);
    if (log === undefined || log.logEndOffset <= log.logStartOffset) return;
    const run = (async () => {
      await this.#unfollow(s.topic, s.partition);
      const now = this.#states.get(k);
      if (this.#closed || this.#replicas.has(k) || now === undefined || now.replicas.includes(this.nodeId)) return;
      // The topic deleted (or recreated under another id) meanwhile: its log is not ours to touch.
      if (this.#opts.topics.partition(s.topic, s.partition) !== log) return;
      const [start, end] = [log.logStartOffset, log.logEndOffset];
      await log.truncateTo(start);
      this.#opts.logger?.info({ topic: s.topic, partition: s.partition, replicas: now.replicas, logStart: String(start), previousEnd: String(end) }, 'removed replica: local copy of the partition emptied (this broker is not among its replicas)');
    })()
      .catch((err: unknown) => this.#opts.logger?.warn({ err, topic: s.topic, partition: s.partition }, 'could not empty the local copy of a partition this broker no longer replicates; retried at its next state or start'))
      .finally(() => this.#discarding.delete(k));
    this.#discarding.set(k, run);
  }

  /** A state not applied yet because its topic was not open here: applied as new. */
  #reapply(s: NamedPartitionState): void {
    this.#states.delete(keyOf(s.topic, s.partition));
    this.#apply(s);
  }

  async #becomeLeader(r: PartitionReplica, s: NamedPartitionState, gen: number): Promise<void> {
    const k = keyOf(s.topic, s.partition);
    // No follower append may land beside this leader's first produce.
    await this.#unfollow(s.topic, s.partition);
    if (this.#closed || this.#generation.get(k) !== gen) return;
    if (s.truncation !== undefined && !(await this.#applyTruncation(r, s, gen))) return;
    // The follower copied batches its in-memory tables never saw: both rebuild from the log.
    this.#opts.producerStates.invalidate(r.log);
    this.#opts.replicaStates.invalidate(r.log);
    r.lead(s, Date.now());
    // Begun outside any "no contact" promise: it acts from now on, also a quiet one that has
    // acknowledged nothing yet when a later promise comes (#fenced).
    if ((this.#opts.coolingUntil?.() ?? 0) <= performance.now()) this.#acting.set(k, s.leaderEpoch);
    this.#leadershipChanged(s.topic, s.partition);
    this.#opts.logger?.info({ topic: s.topic, partition: s.partition, leaderEpoch: s.leaderEpoch, isr: s.isr, logEnd: String(r.log.logEndOffset) }, 'leading partition');
    this.#maybeSettleTruncation(r);
  }

  /**
   * A region-wide truncation in `s` (partition-truncate.ts), before this broker leads it:
   * records of the epochs before the truncation's past its offset are cut from this log, so
   * the epoch cache says they end there and followers cut to the same point. A truncation
   * the log cannot take is reported refused and nothing is cut. Returns false when the
   * leadership moved on meanwhile.
   */
  async #applyTruncation(r: PartitionReplica, s: NamedPartitionState, gen: number): Promise<boolean> {
    const k = keyOf(s.topic, s.partition);
    const t = s.truncation!;
    const stale = () => this.#closed || this.#generation.get(k) !== gen;
    let refused: string | undefined;
    try {
      const cut = await leaderCut(r.log, t, s.leaderEpoch);
      if (stale()) return false;
      if (cut.kind === 'refuse') refused = cut.reason;
      else if (cut.kind === 'cut') {
        const from = r.log.logEndOffset;
        // Through the topic manager: its checks (tiered storage's) may refuse the cut.
        await this.#opts.topics.truncatePartition(s.topic, s.partition, cut.offset);
        this.#opts.logger?.warn({ topic: s.topic, partition: s.partition, leaderEpoch: s.leaderEpoch, from: String(from), to: String(cut.offset), id: t.id }, 'leader cut its log for a region-wide truncation before leading');
      }
    } catch (err) {
      refused = `the leader could not cut its log: ${(err as Error).message}`;
    }
    if (stale()) return false;
    if (refused === undefined) this.#truncationsCut.set(k, t.id);
    else {
      this.#truncationsCut.delete(k);
      if (t.status === 'pending' && s.leaderEpoch >= t.epoch) {
        this.#opts.logger?.warn({ topic: s.topic, partition: s.partition, offset: t.offset, reason: refused, id: t.id }, 'region-wide truncation refused by this leader; nothing cut');
        const settle = this.#settleTruncation;
        if (settle !== undefined) void settle(s.topic, s.partition, { leaderEpoch: s.leaderEpoch, partitionEpoch: s.partitionEpoch }, t.id, 'refused', refused).catch((err: unknown) => this.#opts.logger?.warn({ err, topic: s.topic, partition: s.partition }, 'could not report a refused truncation'));
      }
    }
    return true;
  }

  /**
   * The leader reports a truncation done once it cut its own log in this leadership and every
   * other in-sync replica fetched in its epoch (so went through its truncate phase). Asked
   * after each follower fetch, at each ISR check and when leading; a failed write is asked
   * again at the next.
   */
  #maybeSettleTruncation(r: PartitionReplica): void {
    const s = r.state;
    const k = keyOf(s.topic, s.partition);
    const settle = this.#settleTruncation;
    if (settle === undefined || r.role !== 'leader' || this.#suspended !== undefined || this.#settling.has(k)) return;
    const cutDone = s.truncation !== undefined && this.#truncationsCut.get(k) === s.truncation.id;
    if (!truncationComplete(s, this.nodeId, cutDone, (id) => (r.followerProgress(id)?.fetchOffset ?? -1n) >= 0n)) return;
    this.#settling.add(k);
    void settle(s.topic, s.partition, { leaderEpoch: s.leaderEpoch, partitionEpoch: s.partitionEpoch }, s.truncation!.id, 'done')
      .catch((err: unknown) => this.#opts.logger?.warn({ err, topic: s.topic, partition: s.partition }, 'could not report a region-wide truncation done; asked again at the next check'))
      .finally(() => this.#settling.delete(k));
  }

  async #unfollow(topic: string, partition: number): Promise<void> {
    await Promise.all([...this.#fetchers.values()].map((f) => f.remove(topic, partition)));
  }

  #bump(k: string): number {
    const g = (this.#generation.get(k) ?? 0) + 1;
    this.#generation.set(k, g);
    return g;
  }

  #fetcherFor(leaderId: number): ReplicaFetcher {
    let f = this.#fetchers.get(leaderId);
    if (f === undefined) {
      f = new ReplicaFetcher({
        nodeId: this.nodeId,
        leaderId,
        address: () => this.#opts.source.brokerAddress(leaderId),
        // Under half the lag time: a caught-up follower parked on an idle leader must fetch
        // again before it would count as not fetching (partition-replica.ts desiredIsr).
        maxWaitMs: this.#opts.fetchMaxWaitMs ?? Math.min(500, Math.max(10, Math.floor(this.#lagMs / 2))),
        maxBytes: this.#opts.fetchMaxBytes ?? 10 * 1024 * 1024,
        partitionMaxBytes: this.#opts.partitionFetchMaxBytes ?? 1024 * 1024,
        sync: this.#opts.flushMode === 'fsync',
        backoffMs: this.#opts.fetchBackoffMs ?? 100,
        security: this.#opts.linkSecurity,
        logger: this.#opts.logger,
        onHighWatermark: (topic, partition, hw) => this.#replicas.get(keyOf(topic, partition))?.setFollowerHighWatermark(hw),
      });
      if (this.#fetchersPaused) f.pause();
      f.start();
      this.#fetchers.set(leaderId, f);
    }
    return f;
  }

  // -------------------------------------------------------------------------------------
  // ISR

  #checkIsr(): void {
    if (this.#suspended !== undefined) return;
    for (const r of this.#replicas.values()) {
      if (r.role !== 'leader') continue;
      this.#maybeAlterIsr(r);
      this.#maybeSettleTruncation(r);
    }
  }

  #maybeAlterIsr(r: PartitionReplica): void {
    // A suspended leader proposes nothing: its view of the partition may be stale.
    if (this.#suspended !== undefined) return;
    const desired = r.desiredIsr(Date.now(), this.#lagMs);
    if (desired === undefined) return;
    const s = r.state;
    r.proposeIsr(desired);
    this.#opts.logger?.info({ topic: s.topic, partition: s.partition, from: s.isr, to: desired, leaderEpoch: s.leaderEpoch }, 'proposing an ISR change');
    this.#opts.source.alterIsr(s.topic, s.partition, desired, { leaderEpoch: s.leaderEpoch, partitionEpoch: s.partitionEpoch }).then(
      (res) => {
        if (res.kind === 'ok') this.#apply(res.state);
        // Someone else changed the partition: its new state arrives through the subscription,
        // and until it does the proposal's members keep counting (etcd may hold a lost
        // earlier write of this leader's under it).
        else if (r.pendingIsr === desired) r.proposalUnknown();
      },
      (err) => {
        // Unanswered, not refused: etcd may hold it, so its members keep counting for the
        // high watermark (and are asked before a ride through an etcd outage) until a newer
        // state of the partition settles it.
        if (r.pendingIsr === desired) r.proposalUnknown();
        this.#opts.logger?.warn({ err, topic: s.topic, partition: s.partition, to: desired }, 'ISR change failed without an answer; its members count until a newer state settles it, and it is retried at the next check');
      },
    );
  }

  /** NOT_LEADER_OR_FOLLOWER while the lease is not fresh or leadership is suspended. */
  #fenced(topic: string, partition: number): MeridianError | null {
    const k = keyOf(topic, partition);
    const r = this.#replicas.get(k);
    if (this.#opts.leased?.(topic, partition, r?.leaderEpoch ?? -1) === false) {
      return new MeridianError(ErrorCode.NotLeader, `${topic}-${partition}: broker ${this.nodeId}'s etcd lease was not renewed in time; it does not act as leader until it is (self-fencing)`);
    }
    if (this.#suspended !== undefined) {
      return new MeridianError(ErrorCode.NotLeader, `${topic}-${partition}: broker ${this.nodeId} does not act as leader until it has read the partition states again from etcd (${this.#suspended})`);
    }
    // A leadership this broker has not acted on yet waits out the promise of a "no contact
    // with etcd" answer it gave (cluster/etcd-contact.ts): the broker that asked may still be
    // riding through the outage as this partition's leader at an older epoch.
    if (r !== undefined && r.role === 'leader' && this.#acting.get(k) !== r.leaderEpoch) {
      const until = this.#opts.coolingUntil?.() ?? 0;
      const wait = until - performance.now();
      if (wait > 0) {
        return new MeridianError(ErrorCode.NotLeader, `${topic}-${partition}: broker ${this.nodeId} starts leading epoch ${r.leaderEpoch} in ${Math.ceil(wait)} ms: it told a peer it could not reach etcd, and that peer may still lead the partition until then`);
      }
      this.#acting.set(k, r.leaderEpoch);
    }
    return null;
  }

  /**
   * What a leader asks its peers before riding through an etcd outage (etcd-contact.ts):
   * every partition it leads with its epoch, and the brokers that could be elected in its
   * place (every replica, and every member of an ISR change that may be in etcd), itself
   * excluded. Unclean election may elect any replica, so all are asked, whatever this
   * broker's own setting says.
   */
  rideThroughQuestion(): { peers: Set<number>; led: LedPartition[] } {
    const peers = new Set<number>();
    const led: LedPartition[] = [];
    for (const r of this.#replicas.values()) {
      if (r.role !== 'leader') continue;
      led.push({ topic: r.topic, partition: r.partition, leaderEpoch: r.leaderEpoch, partitionEpoch: r.state.partitionEpoch });
      for (const id of [...r.state.replicas, ...r.maximalIsr]) if (id !== this.nodeId) peers.add(id);
    }
    return { peers, led };
  }

  /**
   * A peer riding through an etcd outage leads these partitions at these epochs: what this
   * broker knows otherwise (another leader, another epoch, a partition it does not know, or
   * one it leads), or null when it agrees. A conflict ends that peer's ride.
   */
  contradicts(asker: number, led: readonly LedPartition[]): string | null {
    for (const { topic, partition, leaderEpoch, partitionEpoch } of led) {
      const k = keyOf(topic, partition);
      const s = this.#replicas.get(k)?.state ?? this.#states.get(k);
      if (s === undefined) return `broker ${this.nodeId} does not know ${topic}-${partition}`;
      if (s.leader !== asker || s.leaderEpoch !== leaderEpoch) return `broker ${this.nodeId} knows ${topic}-${partition} led by ${s.leader} at epoch ${s.leaderEpoch}, not by ${asker} at ${leaderEpoch}`;
      // Another state of the same leadership (replicas added by a reassignment, another ISR):
      // one of the two views is stale, and a ride needs them to agree.
      if (s.partitionEpoch !== partitionEpoch) return `broker ${this.nodeId} knows ${topic}-${partition} at partition epoch ${s.partitionEpoch}, not ${partitionEpoch}`;
    }
    return null;
  }

  #checkEpoch(topic: string, partition: number, currentLeaderEpoch: number, r: PartitionReplica | undefined): MeridianError | null {
    if (currentLeaderEpoch === NO_CHECK_EPOCH) return null;
    const epoch = r?.state.leaderEpoch ?? this.#states.get(keyOf(topic, partition))?.leaderEpoch;
    if (epoch === undefined) return null;
    if (currentLeaderEpoch < epoch) return new MeridianError(ErrorCode.FencedLeaderEpoch, `${topic}-${partition}: the request's leader epoch ${currentLeaderEpoch} is older than the current ${epoch}; refresh metadata`);
    if (currentLeaderEpoch > epoch) return new MeridianError(ErrorCode.UnknownLeaderEpoch, `${topic}-${partition}: the request's leader epoch ${currentLeaderEpoch} is newer than this broker's ${epoch}; it has not seen the change yet`);
    return null;
  }

  #notLeader(topic: string, partition: number, r: PartitionReplica | undefined): MeridianError {
    const s = r?.state ?? this.#states.get(keyOf(topic, partition));
    if (s === undefined) return new MeridianError(ErrorCode.NotLeader, `${topic}-${partition}: this broker has no state for the partition yet`);
    return notLeader({ topic, partition, state: s }, s.leader === this.nodeId ? `broker ${this.nodeId} is taking over leadership` : `broker ${this.nodeId} does not lead it`);
  }
}

function keyOf(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}
