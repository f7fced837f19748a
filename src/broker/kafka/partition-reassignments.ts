/**
 * Partition reassignment over Kafka: AlterPartitionReassignments (45, v0) and
 * ListPartitionReassignments (46, v0), as `kafka-reassign-partitions.sh` and
 * Admin.alterPartitionReassignments / listPartitionReassignments use them (KIP-455). On a
 * region cluster both map onto the reassignment requests in etcd (cluster/reassign-store.ts),
 * the same ones the admin API writes, so the checks, the steps the controller takes and the
 * answers are the admin API's (src/cluster/README.md, "Reassignment"):
 *
 * - Alter needs ALTER on the cluster, List DESCRIBE on the cluster (Kafka's KafkaApis); a
 *   denial is CLUSTER_AUTHORIZATION_FAILED at the top (Alter: on every partition too, as
 *   Kafka's getErrorResponse).
 * - Alter, per partition: replicas asks for a move (accepted once written to etcd; the
 *   controller then executes it, as Kafka's controller does after answering), null cancels
 *   (NO_REASSIGNMENT_IN_PROGRESS when none is in progress). An unknown topic or partition is
 *   UNKNOWN_TOPIC_OR_PARTITION, an empty target, a broker named twice or one not registered
 *   INVALID_REPLICA_ASSIGNMENT, another target while one is in progress
 *   REASSIGNMENT_IN_PROGRESS (Kafka replaces it; here: cancel, then ask again), each with a
 *   message saying what to fix.
 * - List answers the partitions being reassigned (all, or those of the named topics and
 *   partitions; a named partition that is not being reassigned, or does not exist, is left
 *   out, as Kafka does), each with its current replicas and KIP-455's sets: adding = target
 *   brokers that were not replicas when it was asked, removing = replicas then that are not
 *   in the target. A cancelled move, until the controller has put the original replicas
 *   back, adds nothing and removes what is not original.
 *
 * On a single broker (no etcd) both are still served, as a one-broker Kafka cluster answers
 * them: nothing is ever being reassigned (List is empty), a target of this broker alone is
 * accepted with nothing to do, any other target is INVALID_REPLICA_ASSIGNMENT, a
 * cancellation NO_REASSIGNMENT_IN_PROGRESS. So ApiVersions is the same on every broker.
 */
import { ErrorCode, MeridianError } from '../../errors.js';
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import { kafkaCode, toKafkaError } from '../../protocol/kafka/error-mapping.js';
import type {
  AlterPartitionReassignmentsRequest,
  AlterPartitionReassignmentsResponse,
  AlterPartitionReassignmentsResponseReassignablePartitionResponse,
} from '../../protocol/kafka/messages/alter-partition-reassignments.js';
import type {
  ListPartitionReassignmentsRequest,
  ListPartitionReassignmentsResponse,
  ListPartitionReassignmentsResponseOngoingPartitionReassignment,
} from '../../protocol/kafka/messages/list-partition-reassignments.js';
import { ReassignmentStore, type PartitionReassignmentView } from '../../cluster/reassign-store.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import { AclOperation, denial, mayCluster, ResourceType, UNKNOWN_REQUESTER, type Requester } from './authorize.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';

export const PARTITION_REASSIGNMENT_APIS: readonly KafkaApiEntry[] = [
  { key: ApiKey.AlterPartitionReassignments, versions: [0, 0], handle: (d, c, req) => handleAlterPartitionReassignments(d, req, c) },
  { key: ApiKey.ListPartitionReassignments, versions: [0, 0], handle: (d, c, req) => handleListPartitionReassignments(d, req, c) },
];

/** Each etcd operation's budget when the request gives no timeout (Kafka's default is 60 s). */
const DEFAULT_TIMEOUT_MS = 30_000;

/** Partitions of one Alter request worked on at once. */
const ALTER_CONCURRENCY = 8;

type Outcome = Pick<AlterPartitionReassignmentsResponseReassignablePartitionResponse, 'errorCode' | 'errorMessage'>;

const OK: Outcome = { errorCode: 0, errorMessage: null };

function outcomeOf(err: unknown): Outcome {
  const k = toKafkaError(err);
  return { errorCode: k.code, errorMessage: k.message };
}

// ---------------------------------------------------------------------------------------
// AlterPartitionReassignments

export async function handleAlterPartitionReassignments(deps: KafkaApiDeps, req: AlterPartitionReassignmentsRequest, who: Requester = UNKNOWN_REQUESTER): Promise<AlterPartitionReassignmentsResponse> {
  if (!mayCluster(deps, who, AclOperation.Alter)) {
    const denied: Outcome = { errorCode: kafkaCode('CLUSTER_AUTHORIZATION_FAILED'), errorMessage: denial(who, AclOperation.Alter, ResourceType.Cluster, '').message };
    return { throttleTimeMs: 0, ...denied, responses: req.topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, ...denied })) })) };
  }
  const alter = deps.cluster === undefined ? singleBroker(deps) : inCluster(new ReassignmentStore(deps.cluster.region), req.timeoutMs > 0 ? req.timeoutMs : DEFAULT_TIMEOUT_MS);
  const responses = req.topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, ...OK })) }));
  const work = req.topics.flatMap((t, i) => t.partitions.map((p, j) => ({ topic: t.name, p, answer: responses[i]!.partitions[j]! })));
  // A few partitions at a time: each is a few etcd round trips, and a request may name thousands.
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < work.length) {
      const w = work[next++]!;
      try {
        await alter(w.topic, w.p.partitionIndex, w.p.replicas);
      } catch (err) {
        Object.assign(w.answer, outcomeOf(err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(ALTER_CONCURRENCY, work.length) }, worker));
  return { throttleTimeMs: 0, ...OK, responses };
}

type Alter = (topic: string, partition: number, replicas: readonly number[] | null) => Promise<void>;

function inCluster(store: ReassignmentStore, timeoutMs: number): Alter {
  return async (topic, partition, replicas) => {
    if (replicas === null) await store.cancel(topic, partition, { timeoutMs });
    else await store.request(topic, partition, replicas, { timeoutMs });
  };
}

/** A one-broker region: every partition is on this broker and stays there. */
function singleBroker(deps: KafkaApiDeps): Alter {
  const self = deps.config.nodeId;
  return async (topic, partition, replicas) => {
    const info = deps.topics.getTopic(topic);
    if (info === undefined) throw new MeridianError(ErrorCode.UnknownTopic, `topic ${topic} does not exist`);
    if (!Number.isInteger(partition) || partition < 0 || partition >= info.partitions) {
      throw new MeridianError(ErrorCode.UnknownTopic, `topic ${topic} has no partition ${partition} (it has ${info.partitions}: 0 to ${info.partitions - 1})`);
    }
    if (replicas === null) throw new MeridianError(ErrorCode.NoReassignmentInProgress, `${topic}-${partition} is not being reassigned (its replicas are [${self}]); nothing to cancel`);
    if (replicas.length === 1 && replicas[0] === self) return;
    throw new MeridianError(
      ErrorCode.InvalidReplicaAssignment,
      `reassign ${topic}-${partition} to [${replicas.join(', ')}]: region ${deps.config.region} is a single broker (node ${self}), so its partitions can only be on [${self}]; replicas are moved between the brokers of a region cluster (cluster.etcd.endpoints)`,
    );
  };
}

// ---------------------------------------------------------------------------------------
// ListPartitionReassignments

export async function handleListPartitionReassignments(deps: KafkaApiDeps, req: ListPartitionReassignmentsRequest, who: Requester = UNKNOWN_REQUESTER): Promise<ListPartitionReassignmentsResponse> {
  if (!mayCluster(deps, who, AclOperation.Describe)) {
    return { throttleTimeMs: 0, errorCode: kafkaCode('CLUSTER_AUTHORIZATION_FAILED'), errorMessage: denial(who, AclOperation.Describe, ResourceType.Cluster, '').message, topics: [] };
  }
  if (deps.cluster === undefined) return { throttleTimeMs: 0, ...OK, topics: [] };
  let views: PartitionReassignmentView[];
  try {
    views = await new ReassignmentStore(deps.cluster.region).list({ timeoutMs: req.timeoutMs > 0 ? req.timeoutMs : DEFAULT_TIMEOUT_MS });
  } catch (err) {
    return { throttleTimeMs: 0, ...outcomeOf(err), topics: [] };
  }
  const wanted = req.topics === null ? null : new Set(req.topics.flatMap((t) => t.partitionIndexes.map((p) => `${t.name}\u0000${p}`)));
  const byTopic = new Map<string, ListPartitionReassignmentsResponseOngoingPartitionReassignment[]>();
  for (const v of views) {
    if (v.reassignment === null || (wanted !== null && !wanted.has(`${v.topic}\u0000${v.partition}`))) continue;
    const list = byTopic.get(v.topic) ?? [];
    byTopic.set(v.topic, list);
    list.push({ partitionIndex: v.partition, replicas: [...v.replicas], ...kafkaSets(v) });
  }
  return { throttleTimeMs: 0, ...OK, topics: [...byTopic].map(([name, partitions]) => ({ name, partitions })) };
}

/** KIP-455's adding and removing sets of a reassignment in progress (see the header). */
function kafkaSets(v: PartitionReassignmentView): { addingReplicas: number[]; removingReplicas: number[] } {
  const r = v.reassignment!;
  if (r.cancelled) return { addingReplicas: [], removingReplicas: v.replicas.filter((id) => !r.original.includes(id)) };
  return { addingReplicas: r.target.filter((id) => !r.original.includes(id)), removingReplicas: r.original.filter((id) => !r.target.includes(id)) };
}
