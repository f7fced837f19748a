/**
 * Topic deletion and new partitions in a region cluster (DeleteTopics, CreatePartitions),
 * written to etcd by the broker that was asked, not forwarded to the controller: neither
 * elects a leader, and each is one compare-and-swap on the topic record, so it can never
 * interleave with a creation, a config change or another deletion of the same topic.
 *
 * Deletion: one transaction, conditional on the record's create revision (the same
 * incarnation of the name the request saw), deletes `topics/<name>`, every
 * `partitions/<name>/<p>` and any `reassignments/<name>/<p>`. Every broker's TopicSync then
 * sees the record go and deletes its local copy (topic-sync.ts); replicas stop with it
 * (ReplicaManager on the topic manager's `deleted` event). A controller election or ISR
 * change racing it compares the partition key's mod revision, so it fails on the deleted
 * key and writes nothing back. The asking broker answers once its own copy is gone.
 *
 * New partitions: replicas placed as the controller places a new topic's (assignment.ts,
 * over the registered brokers, the topic's replication factor) or as the request assigns
 * them (each must name registered brokers, as many as the replication factor); their
 * initial states written in batches of at most `MAX_TXN_OPS - 1` puts, each conditional on
 * the record's mod revision not having moved, then the record with the new count, on the
 * same condition. A broker that dies between batches leaves states of partitions the
 * record does not count: nothing opens them (TopicSync opens the record's count), and a
 * retry overwrites them. The asking broker answers once its copy has the new partitions.
 */
import { randomInt } from 'node:crypto';
import { ErrorCode, MeridianError } from '../errors.js';
import { assignReplicas, initialState, validateAssignment } from './assignment.js';
import { rev, type EtcdRegion, type OpOptions } from './etcd-region.js';
import { parseBrokerInfo, type TopicRecord, type Versioned } from './partition-state.js';
import type { TopicSync } from './topic-sync.js';

/** etcd's default --max-txn-ops. */
const MAX_TXN_OPS = 128;

export interface TopicAdminDeps {
  readonly region: EtcdRegion;
  readonly topicSync: TopicSync;
}

function unknownTopic(name: string): MeridianError {
  return new MeridianError(ErrorCode.UnknownTopic, `topic ${name} does not exist in the region`);
}

/** Deletes a topic from the region; resolves once this broker's copy is gone. */
export async function deleteClusterTopic(deps: TopicAdminDeps, name: string, timeoutMs: number): Promise<void> {
  const { region, topicSync } = deps;
  const v = topicSync.versioned(name);
  if (v === undefined) throw unknownTopic(name);
  const { client, keys } = region;
  const topicKey = keys.topic(name);
  const res = await region.run(
    `delete topic ${name}`,
    async () =>
      client
        .if(topicKey, 'Create', '==', v.createRevision.toString())
        .then(client.delete().key(topicKey), client.delete().prefix(keys.partitionsOf(name)), client.delete().prefix(`${keys.reassignmentsPrefix}${name}/`))
        .commit(),
    { timeoutMs },
  );
  // Not there any more with that create revision: deleted already (by us, an answer lost
  // and the transaction retried, or by another broker), or deleted and created again.
  if (!res.succeeded) {
    const now = await topicSync.store.getTopic(name, { timeoutMs });
    if (now !== undefined && now.createRevision !== v.createRevision) throw new MeridianError(ErrorCode.UnknownTopic, `topic ${name} was deleted and created again meanwhile; the new topic was left as it is`);
  }
  region.logger?.info({ topic: name, topicId: v.value.topicId }, 'topic deleted from the region');
  await topicSync.waitGone(name, v.value.topicId, timeoutMs);
}

/**
 * Raises a topic's partition count to `count`; `assignment`, when given, lists the replicas
 * of each new partition. With `validateOnly` nothing is written. Resolves once this
 * broker's copy has the new partitions.
 */
export async function createClusterPartitions(
  deps: TopicAdminDeps,
  name: string,
  count: number,
  assignment: ReadonlyArray<readonly number[]> | null,
  o: { validateOnly: boolean; timeoutMs: number },
): Promise<void> {
  const { region, topicSync } = deps;
  const v: Versioned<TopicRecord> | undefined = topicSync.versioned(name);
  if (v === undefined) throw unknownTopic(name);
  const current = v.value.partitions;
  if (!Number.isInteger(count) || count <= current) {
    throw new MeridianError(ErrorCode.InvalidPartitions, `topic ${name} has ${current} partitions; ask for more than that (partitions can only be added)`);
  }
  const added = count - current;
  const options: OpOptions = { timeoutMs: o.timeoutMs };
  const { client, keys } = region;
  const registered = (await region.getPrefix(keys.brokersPrefix, parseBrokerInfo, options)).entries;
  const brokers = [...registered.values()].map((e) => e.value);
  let replicas: number[][];
  if (assignment !== null) {
    if (assignment.length !== added) throw new MeridianError(ErrorCode.InvalidReplicaAssignment, `topic ${name}: give one assignment per new partition (${added}), or none`);
    validateAssignment(assignment, new Set(brokers.map((b) => b.nodeId)));
    if (assignment[0]!.length !== v.value.replicationFactor) {
      throw new MeridianError(ErrorCode.InvalidReplicaAssignment, `topic ${name}: each new partition needs ${v.value.replicationFactor} replicas (the topic's replication factor), not ${assignment[0]!.length}`);
    }
    replicas = assignment.map((r) => [...r]);
  } else {
    if (brokers.length < v.value.replicationFactor) {
      throw new MeridianError(ErrorCode.InvalidReplicationFactor, `topic ${name}: its replication factor ${v.value.replicationFactor} needs that many registered brokers; ${brokers.length} are`);
    }
    replicas = assignReplicas(brokers, added, v.value.replicationFactor, randomInt(brokers.length), current);
  }
  if (o.validateOnly) return;
  const topicKey = keys.topic(name);
  const unchanged = () => client.if(topicKey, 'Mod', '==', v.modRevision.toString());
  const moved = () => new MeridianError(ErrorCode.MetadataUnavailable, `topic ${name} changed while its partitions were being added (deleted, altered or grown by another request); retry`);
  const perTxn = MAX_TXN_OPS - 1;
  for (let from = 0; from < replicas.length; from += perTxn) {
    const batch = replicas.slice(from, from + perTxn);
    const ops = batch.map((r, i) => client.put(keys.partition(name, current + from + i)).value(JSON.stringify(initialState(r))));
    const res = await region.run(`add partitions ${current + from}..${current + from + batch.length - 1} to topic ${name}`, async () => unchanged().then(...ops).commit(), options);
    if (!res.succeeded) throw moved();
  }
  const record: TopicRecord = { ...v.value, partitions: count };
  const res = await region.run(`raise topic ${name} to ${count} partitions`, async () => unchanged().then(client.put(topicKey).value(JSON.stringify(record))).commit(), options);
  let revision: bigint;
  if (res.succeeded) revision = rev(res.header.revision);
  else {
    // Ours already (an answer lost, the transaction retried), or another change.
    const now = await topicSync.store.getTopic(name, options);
    if (now === undefined || now.value.topicId !== record.topicId || now.value.partitions < count) throw moved();
    revision = now.modRevision;
  }
  region.logger?.info({ topic: name, from: current, to: count }, 'partitions added to the topic');
  await topicSync.waitApplied(name, revision, o.timeoutMs);
}
