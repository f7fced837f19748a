/**
 * What the replica manager needs from the region's metadata, and nothing more: the state of
 * every partition (watched), the leader's ISR compare-and-swap, and where a broker's Kafka
 * listener is. The etcd layer implements it (etcd-*.ts); the replication tests hand in an
 * in-memory double. Keeping the manager behind this interface lets it be tested without
 * etcd and lets the etcd layer change without touching replication.
 */

import type { HostPort, PartitionState } from './partition-state.js';

export type { HostPort, PartitionState };

/** One partition's state, named. */
export interface NamedPartitionState extends PartitionState {
  readonly topic: string;
  readonly partition: number;
}

/** The state the leader last saw, which an ISR change must still find (Kafka's AlterPartition check). */
export interface IsrExpectation {
  readonly leaderEpoch: number;
  readonly partitionEpoch: number;
}

/**
 * `ok`: the new state is written (partitionEpoch + 1, same leader and leader epoch).
 * `conflict`: someone changed the partition since `expected` (a leader election, another
 * ISR change); the leader waits for the new state through `subscribe` before it acts again.
 */
export type AlterIsrResult = { readonly kind: 'ok'; readonly state: NamedPartitionState } | { readonly kind: 'conflict' };

export interface PartitionStateSource {
  /** Every partition's current state (the ones this broker does not replicate may be left out). */
  states(): Iterable<NamedPartitionState>;
  /** Called with each partition state that changes from now on; returns the remover. */
  subscribe(listener: (state: NamedPartitionState) => void): () => void;
  /** The leader's ISR change, compare-and-swap on `expected` (partition-state.ts: ISR changes). */
  alterIsr(topic: string, partition: number, newIsr: readonly number[], expected: IsrExpectation): Promise<AlterIsrResult>;
  /** Where broker `nodeId`'s Kafka listener is; undefined while it is not registered. */
  brokerAddress(nodeId: number): HostPort | undefined;
}
