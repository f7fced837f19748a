/**
 * Every rule that may keep data a deletion would remove, composed in one place.
 *
 * Three things delete a partition's data:
 *   - local retention: `PartitionLog.applyRetention` (retention.ms / retention.bytes);
 *   - tiered storage removing a local copy it has offloaded: `PartitionLog.deleteOldestSegment`;
 *   - remote retention: tiered/tier-retention.ts expiring the oldest remote segments.
 * The first two ask every local rule below, in this order, and keep the segment (and all
 * after it: a log stays a contiguous range) at the first veto; the third asks the remote rules.
 *
 * | rule             | owner                          | keeps a local segment while                          |
 * |------------------|--------------------------------|------------------------------------------------------|
 * | `dedup-snapshot` | replication/replica-state.ts   | its replication markers are not yet folded into      |
 * |                  |                                | replication-state.json (a veto also starts the fold) |
 * | `tiering`        | tiered/tier-retention.ts       | the bucket does not hold it, or cannot be read yet   |
 * |                  |                                | to know what it holds (store down at start)          |
 * | `replication`    | replication/replicator.ts      | a remote region has not received it and the bucket   |
 * |                  |                                | does not hold it, unless the link is over its        |
 * |                  |                                | backlog quota (then it goes, loudly)                 |
 *
 * | remote rule      | owner                          | keeps a remote segment while                         |
 * |------------------|--------------------------------|------------------------------------------------------|
 * | `replication`    | replication/replicator.ts      | a remote region has not received it, unless over quota |
 *
 * `replication` is asked last because it counts and logs what a backlog quota lets go,
 * which must not happen for a segment another rule keeps anyway.
 *
 * Lifecycle: built by the broker (the composition root) right after the topics open, before
 * anything can delete; each owner's rule is bound as the owner is built (`useLocal`,
 * `useRemote`), and a rule not bound yet keeps nothing. One PartitionLog guard per partition
 * evaluates the rules at the moment of deletion, so they always see their owner's current
 * state. `close` removes the guards.
 */
import type { PartitionLog } from './partition-log.js';
import type { SegmentInfo } from './segment.js';
import type { TopicManager } from './topic-manager.js';

/** The local rules, in the order they are asked. */
export const LOCAL_RULES = ['dedup-snapshot', 'tiering', 'replication'] as const;
/** The remote rules, in the order they are asked. */
export const REMOTE_RULES = ['replication'] as const;

export type LocalRuleName = (typeof LOCAL_RULES)[number];
export type RemoteRuleName = (typeof REMOTE_RULES)[number];

/** What a remote rule sees of a remote segment (tiered/manifest.ts `RemoteSegment`). */
export interface RemoteSegmentInfo {
  readonly baseOffset: bigint;
  readonly nextOffset: bigint;
  readonly sizeBytes: number;
  readonly maxTimestamp: bigint;
}

/** Returns false to keep `segment` of `log` (partition `partition` of `topic`). */
export type LocalRetentionRule = (topic: string, partition: number, log: PartitionLog, segment: SegmentInfo) => boolean;

/** Returns false to keep the remote `segment` of partition `partition` of `topic`. */
export type RemoteRetentionRule = (topic: string, partition: number, segment: RemoteSegmentInfo) => boolean;

export class RetentionGuards {
  #topics: TopicManager;
  #local = new Map<LocalRuleName, LocalRetentionRule>();
  #remote = new Map<RemoteRuleName, RemoteRetentionRule>();
  #guarded = new Map<PartitionLog, () => void>();
  #offTopics: () => void;
  #offGrowth: () => void;

  constructor(topics: TopicManager) {
    this.#topics = topics;
    for (const t of topics.listTopics()) this.#guardTopic(t.name);
    this.#offTopics = topics.onTopicChange((event, info) => {
      if (event === 'created') this.#guardTopic(info.name);
      else this.#forgetDeleted();
    });
    // New partitions (CreatePartitions) are guarded like a new topic's.
    this.#offGrowth = topics.onPartitionsAdded((info) => this.#guardTopic(info.name));
  }

  /** Binds a local rule (replacing one bound before under the name); returns its remover. */
  useLocal(name: LocalRuleName, rule: LocalRetentionRule): () => void {
    return bind(this.#local, name, rule);
  }

  /** Binds a remote rule (replacing one bound before under the name); returns its remover. */
  useRemote(name: RemoteRuleName, rule: RemoteRetentionRule): () => void {
    return bind(this.#remote, name, rule);
  }

  /** Whether every local rule lets `segment` of the partition go. */
  mayDeleteLocal(topic: string, partition: number, log: PartitionLog, segment: SegmentInfo): boolean {
    for (const name of LOCAL_RULES) {
      const rule = this.#local.get(name);
      if (rule !== undefined && !rule(topic, partition, log, segment)) return false;
    }
    return true;
  }

  /** Whether every remote rule lets the remote `segment` go (handed to tiered storage). */
  mayDeleteRemote(topic: string, partition: number, segment: RemoteSegmentInfo): boolean {
    for (const name of REMOTE_RULES) {
      const rule = this.#remote.get(name);
      if (rule !== undefined && !rule(topic, partition, segment)) return false;
    }
    return true;
  }

  close(): void {
    this.#offTopics();
    this.#offGrowth();
    for (const off of this.#guarded.values()) off();
    this.#guarded.clear();
  }

  #guardTopic(topic: string): void {
    this.#topics.partitions(topic).forEach((log, partition) => {
      if (this.#guarded.has(log)) return;
      this.#guarded.set(log, log.addRetentionGuard((segment) => this.mayDeleteLocal(topic, partition, log, segment)));
    });
  }

  #forgetDeleted(): void {
    const live = new Set(this.#topics.listTopics().flatMap((t) => [...this.#topics.partitions(t.name)]));
    for (const [log, off] of this.#guarded) {
      if (live.has(log)) continue;
      off();
      this.#guarded.delete(log);
    }
  }
}

function bind<N, R>(rules: Map<N, R>, name: N, rule: R): () => void {
  rules.set(name, rule);
  return () => {
    if (rules.get(name) === rule) rules.delete(name);
  };
}
