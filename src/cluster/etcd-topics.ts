/**
 * Topics and partition states in etcd as every broker reads them, and the one write a
 * partition's leader makes: its ISR (`alterIsr`). Topic creation and leader elections are
 * the controller's (etcd-controller.ts).
 *
 * Load then watch: `snapshot()` reads every topic and partition at one revision, and
 * `watchTopics` / `watchPartitions` continue from the revision after it, so a broker sees
 * every change exactly once in order, none missed between the load and the watch.
 *
 * A topic exists once `topics/<name>` does. Its partitions are written before it (in
 * batches, see the controller); `snapshot()` leaves out partitions of topics without a
 * record, and a watcher should do the same until the record arrives.
 *
 * alterIsr is a compare-and-swap on the partition key's mod revision (and, with a
 * membership, on this broker's registration: a broker whose lease expired cannot change
 * an ISR), as Kafka's ZooKeeper-era leaders wrote LeaderAndIsr: a conflict returns the
 * current state, and the leader decides again from it.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import type { Membership } from './etcd-membership.js';
import { rev, versioned, type EtcdRegion, type OpOptions } from './etcd-region.js';
import { PrefixWatch, type PrefixListener } from './etcd-watch.js';
import { parsePartitionState, parseTopicRecord, samePartitionState, type PartitionState, type TopicRecord, type Versioned } from './partition-state.js';

export interface PartitionEntry {
  readonly topic: string;
  readonly partition: number;
  readonly state: Versioned<PartitionState>;
}

export interface MetadataSnapshot {
  readonly topics: ReadonlyMap<string, Versioned<TopicRecord>>;
  /** By topic, then partition number. */
  readonly partitions: ReadonlyMap<string, ReadonlyMap<number, Versioned<PartitionState>>>;
  /** The revision both were read at: watch from `revision + 1n`. */
  readonly revision: bigint;
}

export interface PartitionListener {
  changed(entry: PartitionEntry): void;
  removed?(topic: string, partition: number, revision: bigint): void;
  /** After a compaction: every partition as it is now (those not listed are gone). */
  reset?(entries: readonly PartitionEntry[], revision: bigint): void;
  error?(err: Error): void;
}

export interface TopicListener {
  changed(name: string, record: Versioned<TopicRecord>): void;
  removed?(name: string, revision: bigint): void;
  reset?(topics: ReadonlyMap<string, Versioned<TopicRecord>>, revision: bigint): void;
  error?(err: Error): void;
}

export type AlterIsrResult =
  | { readonly ok: true; readonly state: Versioned<PartitionState> }
  /**
   * Someone else changed the partition (or the expectation was stale): here is what etcd
   * holds. `fenced`: the partition was as expected but this broker's registration is not
   * the one it made (its lease expired and it registered again): it must not act as leader
   * on its old view.
   */
  | { readonly ok: false; readonly current: Versioned<PartitionState> | undefined; readonly fenced?: boolean };

export class TopicStore {
  readonly #region: EtcdRegion;
  readonly #membership: Pick<Membership, 'nodeId' | 'brokerEpoch'> | undefined;

  /**
   * With a membership, alterIsr also requires this broker's registration to be the one it
   * made (only its node id and broker epoch are read, at each alterIsr: a broker builds the
   * store before it registers, see cluster-node.ts).
   */
  constructor(region: EtcdRegion, membership?: Pick<Membership, 'nodeId' | 'brokerEpoch'>) {
    this.#region = region;
    this.#membership = membership;
  }

  /** Every topic and partition at one revision. */
  async snapshot(options: OpOptions = {}): Promise<MetadataSnapshot> {
    const { client, keys } = this.#region;
    // One transaction with no compares: both ranges are read at the same revision.
    const res = await this.#region.run(
      'read topics and partitions',
      async () => client.kv.txn({ compare: [], success: [await client.getAll().prefix(keys.topicsPrefix).op(), await client.getAll().prefix(keys.partitionsPrefix).op()], failure: [] }),
      options,
    );
    const topics = new Map<string, Versioned<TopicRecord>>();
    for (const kv of res.responses[0]!.response_range.kvs) {
      const name = keys.topicNameOf(kv.key.toString());
      if (name !== undefined) topics.set(name, versioned(kv, parseTopicRecord));
    }
    const partitions = new Map<string, Map<number, Versioned<PartitionState>>>();
    for (const kv of res.responses[1]!.response_range.kvs) {
      const where = keys.partitionOf(kv.key.toString());
      if (where === undefined || !topics.has(where.topic)) continue;
      let m = partitions.get(where.topic);
      if (m === undefined) partitions.set(where.topic, (m = new Map()));
      m.set(where.partition, versioned(kv, parsePartitionState));
    }
    return { topics, partitions, revision: rev(res.header.revision) };
  }

  async getTopic(name: string, options: OpOptions = {}): Promise<Versioned<TopicRecord> | undefined> {
    return this.#region.getJson(this.#region.keys.topic(name), parseTopicRecord, options);
  }

  async getPartition(topic: string, partition: number, options: OpOptions = {}): Promise<Versioned<PartitionState> | undefined> {
    return this.#region.getJson(this.#region.keys.partition(topic, partition), parsePartitionState, options);
  }

  /** Partition states changed from `fromRevision` on (the snapshot's revision + 1). `close()` the result. */
  watchPartitions(fromRevision: bigint, listener: PartitionListener): PrefixWatch<PartitionState> {
    const { keys } = this.#region;
    const entry = (key: string, state: Versioned<PartitionState>): PartitionEntry | undefined => {
      const where = keys.partitionOf(key);
      return where === undefined ? undefined : { ...where, state };
    };
    const l: PrefixListener<PartitionState> = {
      put: (key, v) => {
        const e = entry(key, v);
        if (e !== undefined) listener.changed(e);
      },
      delete: (key, at) => {
        const where = keys.partitionOf(key);
        if (where !== undefined) listener.removed?.(where.topic, where.partition, at);
      },
      reset: (all, at) => listener.reset?.([...all].map(([k, v]) => entry(k, v)).filter((e): e is PartitionEntry => e !== undefined), at),
      error: (err) => listener.error?.(err),
    };
    const w = new PrefixWatch(this.#region, keys.partitionsPrefix, fromRevision, parsePartitionState, l);
    w.start();
    return w;
  }

  /** Topic records changed from `fromRevision` on. `close()` the result. */
  watchTopics(fromRevision: bigint, listener: TopicListener): PrefixWatch<TopicRecord> {
    const { keys } = this.#region;
    const w = new PrefixWatch(this.#region, keys.topicsPrefix, fromRevision, parseTopicRecord, {
      put: (key, v) => {
        const name = keys.topicNameOf(key);
        if (name !== undefined) listener.changed(name, v);
      },
      delete: (key, at) => {
        const name = keys.topicNameOf(key);
        if (name !== undefined) listener.removed?.(name, at);
      },
      reset: (all, at) => listener.reset?.(new Map([...all].flatMap(([k, v]) => {
        const name = keys.topicNameOf(k);
        return name === undefined ? [] : [[name, v] as const];
      })), at),
      error: (err) => listener.error?.(err),
    });
    w.start();
    return w;
  }

  /**
   * A topic's configs changed (AlterConfigs / IncrementalAlterConfigs on any broker): the
   * record is rewritten with `configs`, compared on the mod revision of `expected` (the
   * record the change was decided from), so two brokers altering at once never lose one
   * change silently: the second gets `{ ok: false, current }` and decides again from it.
   * Any broker may write this (not only the controller): a config change elects nothing.
   * The controller writes a record only at its creation today; a later controller rewrite
   * (partitions added) must compare the mod revision as well, so neither overwrites the
   * other.
   */
  async updateTopicConfigs(
    name: string,
    configs: Readonly<Record<string, string>>,
    expected: Versioned<TopicRecord>,
    options: OpOptions = {},
  ): Promise<{ readonly ok: true; readonly record: Versioned<TopicRecord> } | { readonly ok: false; readonly current: Versioned<TopicRecord> | undefined }> {
    const { client, keys } = this.#region;
    const key = keys.topic(name);
    const next: TopicRecord = { ...expected.value, configs: { ...configs } };
    const res = await this.#region.run(
      `update the configs of topic ${name}`,
      async () => client.if(key, 'Mod', '==', expected.modRevision.toString()).then(client.put(key).value(JSON.stringify(next))).else(client.get(key)).commit(),
      options,
    );
    if (res.succeeded) return { ok: true, record: { value: next, modRevision: rev(res.header.revision), createRevision: expected.createRevision } };
    const now = await this.getTopic(name, options);
    // Our own write whose answer was lost (a retried transaction): it is there already.
    if (now !== undefined && now.value.topicId === next.topicId && sameConfigs(now.value.configs, next.configs) && now.modRevision > expected.modRevision) return { ok: true, record: now };
    return { ok: false, current: now };
  }

  /**
   * The leader's ISR change (shrink or expand): partitionEpoch + 1, same leader and
   * leaderEpoch, compared on the mod revision of `expected` (the state the leader decided
   * from, as its watch or snapshot gave it). Refused as a conflict, with etcd's current
   * state, when the partition changed since. `newIsr` must hold the leader and only
   * replicas of the partition.
   */
  async alterIsr(topic: string, partition: number, newIsr: readonly number[], expected: Versioned<PartitionState>, options: OpOptions = {}): Promise<AlterIsrResult> {
    const { client, keys } = this.#region;
    const key = keys.partition(topic, partition);
    const base = expected.value;
    const next: PartitionState = { ...base, isr: [...newIsr], partitionEpoch: base.partitionEpoch + 1 };
    if (base.leader < 0 || !newIsr.includes(base.leader) || !newIsr.every((id) => base.replicas.includes(id)) || new Set(newIsr).size !== newIsr.length) {
      throw new MeridianError(ErrorCode.InvalidReplicaAssignment, `ISR ${JSON.stringify(newIsr)} for ${topic}-${partition}: it must hold the leader (${base.leader}) and only replicas ${JSON.stringify(base.replicas)}, each once`);
    }
    const self = this.#membership;
    const res = await this.#region.run(
      `change the ISR of ${topic}-${partition}`,
      () => {
        let txn = client.if(key, 'Mod', '==', expected.modRevision.toString());
        if (self !== undefined) txn = txn.and(keys.broker(self.nodeId), 'Create', '==', self.brokerEpoch.toString());
        return txn.then(client.put(key).value(JSON.stringify(next))).else(client.get(key)).commit();
      },
      options,
    );
    if (res.succeeded) return { ok: true, state: { value: next, modRevision: rev(res.header.revision), createRevision: expected.createRevision } };
    const kv = res.responses[0]?.response_range?.kvs[0];
    const now = kv === undefined ? undefined : versioned(kv, parsePartitionState);
    // Our own write, applied by an attempt whose answer was lost.
    if (now !== undefined && samePartitionState(now.value, next) && now.modRevision > expected.modRevision) return { ok: true, state: now };
    return { ok: false, current: now, ...(now !== undefined && now.modRevision === expected.modRevision ? { fenced: true } : {}) };
  }
}

function sameConfigs(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => b[k] === a[k]);
}
