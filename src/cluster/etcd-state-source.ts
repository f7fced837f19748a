/**
 * The replica manager's view of the region (partition-state-source.ts) served from etcd:
 * every partition's state loaded at one revision and then watched, the leader's ISR
 * compare-and-swap, and the brokers' addresses from their registrations.
 *
 * A partition is shown once its topic's record exists (the controller writes partitions
 * first and the record last, see etcd-controller.ts); the states of a topic arrive
 * together when its record does. After a watch reloaded (etcd compacted the revision it
 * needed) every state is delivered again; subscribers take a state they already have as
 * a no-op.
 *
 * Lifecycle: `start()` (after the MembersView it is given has started), `close()`.
 */
import type { MembersView } from './etcd-membership.js';
import type { OpOptions } from './etcd-region.js';
import type { TopicStore } from './etcd-topics.js';
import type { HostPort, PartitionState, TopicRecord, Versioned } from './partition-state.js';
import type { AlterIsrResult, IsrExpectation, NamedPartitionState, PartitionStateSource } from './partition-state-source.js';

export class EtcdPartitionStateSource implements PartitionStateSource {
  readonly #topics: TopicStore;
  readonly #members: MembersView;
  readonly #records = new Map<string, Versioned<TopicRecord>>();
  /** By "topic/partition"; partitions of topics without a record included (not shown). */
  readonly #states = new Map<string, { topic: string; partition: number; state: Versioned<PartitionState> }>();
  readonly #listeners = new Set<(state: NamedPartitionState) => void>();
  #watches: Array<{ close(): void }> = [];

  constructor(topics: TopicStore, members: MembersView) {
    this.#topics = topics;
    this.#members = members;
  }

  async start(options: OpOptions = {}): Promise<void> {
    const snap = await this.#topics.snapshot(options);
    for (const [name, r] of snap.topics) this.#records.set(name, r);
    for (const [topic, parts] of snap.partitions) for (const [partition, state] of parts) this.#states.set(`${topic}/${partition}`, { topic, partition, state });
    const from = snap.revision + 1n;
    this.#watches.push(
      this.#topics.watchTopics(from, {
        changed: (name, record) => {
          const isNew = !this.#records.has(name);
          this.#records.set(name, record);
          if (isNew) for (const e of this.#states.values()) if (e.topic === name) this.#emit(e);
        },
        removed: (name) => {
          this.#records.delete(name);
        },
        reset: (all) => {
          this.#records.clear();
          for (const [name, r] of all) this.#records.set(name, r);
          for (const e of this.#states.values()) if (this.#records.has(e.topic)) this.#emit(e);
        },
      }),
      this.#topics.watchPartitions(from, {
        changed: (e) => {
          const key = `${e.topic}/${e.partition}`;
          const had = this.#states.get(key);
          if (had !== undefined && had.state.modRevision >= e.state.modRevision) return;
          const entry = { topic: e.topic, partition: e.partition, state: e.state };
          this.#states.set(key, entry);
          if (this.#records.has(e.topic)) this.#emit(entry);
        },
        removed: (topic, partition) => {
          this.#states.delete(`${topic}/${partition}`);
        },
        reset: (all) => {
          this.#states.clear();
          for (const e of all) this.#states.set(`${e.topic}/${e.partition}`, { topic: e.topic, partition: e.partition, state: e.state });
          for (const e of this.#states.values()) if (this.#records.has(e.topic)) this.#emit(e);
        },
      }),
    );
  }

  close(): void {
    for (const w of this.#watches) w.close();
    this.#watches = [];
    this.#listeners.clear();
  }

  *states(): Iterable<NamedPartitionState> {
    for (const e of this.#states.values()) if (this.#records.has(e.topic)) yield named(e);
  }

  /** The state with its revisions (for callers that CAS themselves), when shown. */
  versioned(topic: string, partition: number): Versioned<PartitionState> | undefined {
    return this.#records.has(topic) ? this.#states.get(`${topic}/${partition}`)?.state : undefined;
  }

  subscribe(listener: (state: NamedPartitionState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * CAS on the state this source last saw, which must be at `expected`'s epochs: a source
   * behind etcd (the watch not there yet) makes etcd refuse it, which is a conflict too.
   */
  async alterIsr(topic: string, partition: number, newIsr: readonly number[], expected: IsrExpectation): Promise<AlterIsrResult> {
    const seen = this.#states.get(`${topic}/${partition}`)?.state;
    if (seen === undefined || seen.value.leaderEpoch !== expected.leaderEpoch || seen.value.partitionEpoch !== expected.partitionEpoch) return { kind: 'conflict' };
    const r = await this.#topics.alterIsr(topic, partition, newIsr, seen);
    if (!r.ok) return { kind: 'conflict' };
    // Seen before the watch delivers it, so the next change decides from it.
    const key = `${topic}/${partition}`;
    const had = this.#states.get(key);
    if (had === undefined || had.state.modRevision < r.state.modRevision) this.#states.set(key, { topic, partition, state: r.state });
    return { kind: 'ok', state: named({ topic, partition, state: r.state }) };
  }

  brokerAddress(nodeId: number): HostPort | undefined {
    return this.#members.members().get(nodeId)?.kafka;
  }

  #emit(e: { topic: string; partition: number; state: Versioned<PartitionState> }): void {
    const s = named(e);
    for (const l of this.#listeners) l(s);
  }
}

function named(e: { topic: string; partition: number; state: Versioned<PartitionState> }): NamedPartitionState {
  return { ...e.state.value, topic: e.topic, partition: e.partition };
}
