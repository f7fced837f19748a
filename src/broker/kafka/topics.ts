/**
 * Metadata, CreateTopics, DeleteTopics and CreatePartitions. One broker per region answers as
 * the whole cluster: it is every partition's leader and the controller (KafkaJS sends
 * CreateTopics, DeleteTopics and InitProducerId to the controller, so controller_id must be a
 * real broker: this one), and it advertises its configured host, never a wildcard.
 *
 * Topics have stable ids (Metadata v10+, CreateTopics v7, DeleteTopics v6, Fetch v13+);
 * Metadata v12 and DeleteTopics v6 name topics by id too, and an id no topic has is
 * UNKNOWN_TOPIC_ID. Authorized operations (Metadata v8+) are reported only when asked: the
 * operations the requester may do on the resource (every one the resource supports with
 * authorization off); otherwise Kafka's "not provided" (INT32 min), which clients read as
 * absent.
 *
 * Authorization (authorize.ts), as Kafka's KafkaApis: Metadata for every topic lists only
 * those the requester may DESCRIBE; a topic named and not describable is
 * TOPIC_AUTHORIZATION_FAILED (whether it exists or not: no name is confirmed to someone who
 * may not see it); auto-creating one needs CREATE on the cluster or the topic, else
 * TOPIC_AUTHORIZATION_FAILED. CreateTopics needs CREATE on the cluster or the topic (and
 * DESCRIBE_CONFIGS for v5's configs), DeleteTopics DELETE, CreatePartitions ALTER.
 */
import { ErrorCode, MeridianError } from '../../errors.js';
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import { kafkaCode, toKafkaError } from '../../protocol/kafka/error-mapping.js';
import type { CreatePartitionsRequest, CreatePartitionsResponse } from '../../protocol/kafka/messages/create-partitions.js';
import type { CreateTopicsRequest, CreateTopicsResponse, CreateTopicsResponseCreatableTopicResult } from '../../protocol/kafka/messages/create-topics.js';
import type { DeleteTopicsRequest, DeleteTopicsResponse, DeleteTopicsResponseDeletableTopicResult } from '../../protocol/kafka/messages/delete-topics.js';
import { ZERO_UUID } from '../../protocol/kafka/messages/index.js';
import type { MetadataRequest, MetadataResponse, MetadataResponseTopic } from '../../protocol/kafka/messages/metadata.js';
import { CLUSTER_RESOURCE_NAME } from '../../security/acl.js';
import { validateTopicName, type TopicInfo } from '../../storage/topic-manager.js';
import { isInternalTopic } from '../../cluster/group-offsets-topic.js';
import { advertisedEndpoint, type KafkaApiDeps } from '../kafka-api.js';
import { createClusterPartitions, deleteClusterTopic } from '../../cluster/topic-admin.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';
import { clusterTopicConfigs, describeTopicConfig, requireTieredStorageFor, topicConfigFrom } from './topic-config.js';
import { AclOperation, authorizedOperations, clusterOperations, denial, may, OPERATIONS_NOT_PROVIDED, ResourceType, sees, SUPPORTED_OPERATIONS, UNKNOWN_REQUESTER, type Requester } from './authorize.js';

export const TOPIC_APIS: readonly KafkaApiEntry[] = [
  { key: ApiKey.Metadata, versions: [0, 12], handle: (d, c, req, v) => handleMetadata(d, req, v, c.listener, c) },
  { key: ApiKey.CreateTopics, versions: [0, 7], handle: (d, c, req, v) => handleCreateTopics(d, req, v, c) },
  { key: ApiKey.DeleteTopics, versions: [0, 6], handle: (d, c, req, v) => handleDeleteTopics(d, req, v, c) },
  { key: ApiKey.CreatePartitions, versions: [0, 3], handle: (d, c, req) => handleCreatePartitions(d, req, c) },
];

function topicMetadata(deps: KafkaApiDeps, info: TopicInfo, operations: number): MetadataResponseTopic {
  const node = deps.config.nodeId;
  const rm = deps.replicaManager;
  return {
    errorCode: 0,
    name: info.name,
    topicId: info.id,
    // __meridian_offsets, as Kafka flags __consumer_offsets (clients leave it out of listings).
    isInternal: isInternalTopic(info.name),
    partitions: Array.from({ length: info.partitions }, (_, p) => {
      // A region cluster (src/cluster): the partition's state says who leads it.
      const m = rm?.partitionMetadata(info.name, p);
      if (m !== undefined) {
        const errorCode = m.leaderId < 0 ? kafkaCode('LEADER_NOT_AVAILABLE') : 0;
        return { errorCode, partitionIndex: p, leaderId: m.leaderId, leaderEpoch: m.leaderEpoch, replicaNodes: [...m.replicas], isrNodes: [...m.isr], offlineReplicas: [] };
      }
      // A cluster broker without the partition's state yet: no leader known (clients retry).
      if (deps.cluster !== undefined) return { errorCode: kafkaCode('LEADER_NOT_AVAILABLE'), partitionIndex: p, leaderId: -1, leaderEpoch: -1, replicaNodes: [], isrNodes: [], offlineReplicas: [] };
      return { errorCode: 0, partitionIndex: p, leaderId: node, leaderEpoch: -1, replicaNodes: [node], isrNodes: [node], offlineReplicas: [] };
    }),
    topicAuthorizedOperations: operations,
  };
}

function errorTopic(name: string | null, errorCode: number, topicId = ZERO_UUID): MetadataResponseTopic {
  return { errorCode, name, topicId, isInternal: false, partitions: [], topicAuthorizedOperations: OPERATIONS_NOT_PROVIDED };
}

/** `listener`: the one the request came in on, whose endpoint is advertised (Kafka's behaviour). */
export async function handleMetadata(deps: KafkaApiDeps, req: MetadataRequest, version: number, listener?: string, who: Requester = UNKNOWN_REQUESTER): Promise<MetadataResponse> {
  const topics = servedTopics(deps);
  const described = (info: TopicInfo): MetadataResponseTopic =>
    topicMetadata(deps, info, req.includeTopicAuthorizedOperations ? authorizedOperations(deps, who, ResourceType.Topic, info.name, SUPPORTED_OPERATIONS.topic) : OPERATIONS_NOT_PROVIDED);
  const unauthorized = (name: string | null, topicId = ZERO_UUID) => errorTopic(name, kafkaCode('TOPIC_AUTHORIZATION_FAILED'), topicId);
  // v0: an empty list means all topics; v1+: null means all, empty means none.
  const all = req.topics === null || (version === 0 && req.topics.length === 0);
  const out: MetadataResponseTopic[] = [];
  if (all) {
    for (const t of topics.listTopics()) if (sees(deps, who, AclOperation.Describe, ResourceType.Topic, t.name)) out.push(described(t));
  } else {
    const autoCreate = deps.config.topics.autoCreate && (version < 4 || req.allowAutoTopicCreation);
    for (const { name, topicId } of req.topics ?? []) {
      if (name === null) {
        // v10+: a topic asked for by id (Kafka answers by id from v12; an id is never auto-created).
        const byId = topicId === ZERO_UUID ? undefined : topics.getTopicById(topicId);
        // A response name may be null only from v12: an unknown id at v10-11 has the empty name.
        if (byId === undefined) out.push(errorTopic(version >= 12 ? null : '', kafkaCode('UNKNOWN_TOPIC_ID'), topicId));
        // Ids are not secret (Kafka answers the id, never the name, to who may not describe it).
        else if (!may(deps, who, AclOperation.Describe, ResourceType.Topic, byId.name)) out.push(unauthorized(version >= 12 ? null : '', topicId));
        else out.push(described(byId));
        continue;
      }
      // A replication link's principal holds ClusterAction (as inter-broker principals do):
      // it routes each partition to its leader from Metadata, so it may describe the topics.
      if (!sees(deps, who, AclOperation.ClusterAction, ResourceType.Cluster, CLUSTER_RESOURCE_NAME) && !may(deps, who, AclOperation.Describe, ResourceType.Topic, name)) {
        out.push(unauthorized(name));
        continue;
      }
      let info = topics.getTopic(name);
      if (info === undefined && autoCreate && !mayCreate(deps, who, name)) {
        out.push(unauthorized(name));
        continue;
      }
      if (info === undefined && autoCreate) {
        try {
          // A cluster creates it in etcd through the controller, from any broker (cluster-node.ts).
          info = deps.cluster !== undefined
            ? await deps.cluster.createTopic(name, { partitions: deps.config.topics.defaultPartitions, replicationFactor: null, configs: {} })
            : await deps.topics.createTopic(name, deps.config.topics.defaultPartitions);
          deps.logger.info({ topic: name, partitions: info.partitions }, 'topic auto-created');
        } catch (err) {
          const e = err as MeridianError;
          if (e.code === ErrorCode.TopicExists) info = topics.getTopic(name);
          else {
            out.push(errorTopic(name, toKafkaError(err).code));
            continue;
          }
        }
      }
      if (info === undefined) {
        let code = kafkaCode('UNKNOWN_TOPIC_OR_PARTITION');
        try {
          validateTopicName(name);
        } catch {
          code = kafkaCode('INVALID_TOPIC_EXCEPTION');
        }
        out.push(errorTopic(name, code));
      } else {
        out.push(described(info));
      }
    }
  }
  return {
    throttleTimeMs: 0,
    brokers: metadataBrokers(deps, listener),
    clusterId: deps.clusterId,
    controllerId: controllerIdOf(deps),
    topics: out,
    // v8-10 only; the request field is false at other versions, so the default is written.
    clusterAuthorizedOperations: req.includeClusterAuthorizedOperations ? clusterOperations(deps, who) : OPERATIONS_NOT_PROVIDED,
  };
}

/**
 * The brokers Metadata and DescribeCluster list: this one on a single broker; in a region
 * cluster every live (registered) broker, or with an injected replication source the
 * brokers the partition states name.
 */
export function metadataBrokers(deps: KafkaApiDeps, listener: string | undefined): Array<{ nodeId: number; host: string; port: number; rack: string | null }> {
  if (deps.cluster !== undefined) {
    // Each broker's address on the listener this request came in on; a broker without that
    // listener is left out, as Kafka does (a client is never sent to another security
    // protocol). A registration without listeners (an older broker) serves its one address.
    return deps.cluster.brokers().flatMap((b) => {
      const at = listener === undefined || b.listeners === undefined ? b.kafka : b.listeners[listener];
      return at === undefined ? [] : [{ nodeId: b.nodeId, host: at.host, port: at.port, rack: b.rack }];
    });
  }
  if (deps.replicaManager !== undefined) return deps.replicaManager.brokers().map((b) => ({ ...b, rack: null }));
  return [{ nodeId: deps.config.nodeId, ...advertisedEndpoint(deps, listener), rack: null }];
}

/** The controller clients send CreateTopics to: the elected one in a cluster (-1 while none), else this broker. */
export function controllerIdOf(deps: KafkaApiDeps): number {
  return deps.cluster?.controllerId() ?? deps.config.nodeId;
}

/**
 * The topics this broker serves: in a region cluster only those etcd lists (a local topic
 * etcd does not know, left from before the region was a cluster, is not served).
 */
function servedTopics(deps: KafkaApiDeps): Pick<KafkaApiDeps['topics'], 'listTopics' | 'getTopic' | 'getTopicById'> {
  const { topics, cluster } = deps;
  if (cluster === undefined) return topics;
  const served = (t: TopicInfo | undefined) => (t !== undefined && cluster.topicSync.ready(t.name) !== undefined ? t : undefined);
  return {
    listTopics: () => topics.listTopics().filter((t) => served(t) !== undefined),
    getTopic: (name) => served(topics.getTopic(name)),
    getTopicById: (id) => served(topics.getTopicById(id)),
  };
}

/** CREATE on the cluster (any topic) or on the topic, as Kafka asks it for CreateTopics and auto-creation. */
function mayCreate(deps: KafkaApiDeps, who: Requester, topic: string): boolean {
  return sees(deps, who, AclOperation.Create, ResourceType.Cluster, CLUSTER_RESOURCE_NAME) || may(deps, who, AclOperation.Create, ResourceType.Topic, topic);
}

export async function handleCreateTopics(deps: KafkaApiDeps, req: CreateTopicsRequest, version: number, who: Requester = UNKNOWN_REQUESTER): Promise<CreateTopicsResponse> {
  const seen = new Set<string>();
  // Every topic of the request is created at once (each one's checks run synchronously, in
  // request order, before its first await), so they share topics.json writes (the topic
  // manager's group commit): 1,000 topics in one request cost a few writes, not 1,000.
  const results = await Promise.all(req.topics.map(async (t) => {
    const result: CreateTopicsResponseCreatableTopicResult = {
      name: t.name,
      topicId: ZERO_UUID,
      errorCode: 0,
      errorMessage: null,
      topicConfigErrorCode: 0,
      numPartitions: -1,
      replicationFactor: -1,
      configs: null,
    };
    try {
      if (seen.has(t.name)) throw new MeridianError(ErrorCode.InvalidTopic, `topic ${t.name} appears twice in one request`);
      seen.add(t.name);
      if (!mayCreate(deps, who, t.name)) throw denial(who, AclOperation.Create, ResourceType.Topic, t.name);
      // KafkaJS sends -1 for "broker default" when the caller gives no count, even at v3.
      const partitions = t.numPartitions === -1 ? deps.config.topics.defaultPartitions : t.numPartitions;
      if (deps.cluster !== undefined) return await createInCluster(deps, deps.cluster, t, partitions, req.validateOnly, version, who, result, req.timeoutMs);
      if (t.assignments.length > 0) throw new MeridianError(ErrorCode.InvalidPartitions, 'manual replica assignments are not supported');
      if (t.replicationFactor !== -1 && t.replicationFactor !== 1) {
        throw new MeridianError(ErrorCode.InvalidPartitions, `replication factor ${t.replicationFactor} is not available on a single-broker region; use 1 or -1`);
      }
      const config = topicConfigFrom(t.configs);
      requireTieredStorageFor(t.name, config, deps.config.tiered.enabled);
      if (req.validateOnly) {
        validateTopicName(t.name);
        if (deps.topics.getTopic(t.name)) throw new MeridianError(ErrorCode.TopicExists, `topic ${t.name} already exists`);
      } else {
        const info = await deps.topics.createTopic(t.name, partitions, config);
        result.topicId = info.id;
      }
      result.numPartitions = partitions;
      result.replicationFactor = 1;
      // v5+: the topic's configs as DescribeConfigs would give them (KIP-525), to who may describe them.
      if (version >= 5 && !sees(deps, who, AclOperation.DescribeConfigs, ResourceType.Topic, t.name)) result.topicConfigErrorCode = kafkaCode('TOPIC_AUTHORIZATION_FAILED');
      else if (version >= 5) result.configs = describeTopicConfig(config, deps).map((c) => ({ name: c.name, value: c.value, readOnly: c.readOnly, configSource: c.source, isSensitive: false }));
    } catch (err) {
      const k = toKafkaError(err);
      result.errorCode = k.name === 'INVALID_PARTITIONS' && /replication factor/.test(k.message) ? kafkaCode('INVALID_REPLICATION_FACTOR') : k.code;
      result.errorMessage = k.message;
    }
    return result;
  }));
  return { throttleTimeMs: 0, topics: results };
}

/**
 * CreateTopics in a region cluster: the controller places the replicas (the request's
 * replication_factor, -1 for cluster.defaultReplicationFactor or min(3, live brokers), or
 * its replica assignments) and writes the topic to etcd; any broker takes the request and
 * forwards it through etcd (cluster-node.ts). Answered once the topic is open here, or
 * after the request's timeout_ms (at least 1 s) with why it is not (etcd unreachable).
 */
async function createInCluster(
  deps: KafkaApiDeps,
  cluster: NonNullable<KafkaApiDeps['cluster']>,
  t: CreateTopicsRequest['topics'][number],
  partitions: number,
  validateOnly: boolean,
  version: number,
  who: Requester,
  result: CreateTopicsResponseCreatableTopicResult,
  timeoutMs: number,
): Promise<CreateTopicsResponseCreatableTopicResult> {
  validateTopicName(t.name);
  const assignment = [...t.assignments].sort((a, b) => a.partitionIndex - b.partitionIndex).map((a) => [...a.brokerIds]);
  const rf = assignment.length > 0 ? assignment[0]!.length : t.replicationFactor;
  if (assignment.length === 0 && rf !== -1 && rf < 1) throw new MeridianError(ErrorCode.InvalidReplicationFactor, `replication factor ${rf}: give at least 1, or -1 for the region's default`);
  const { local, record } = clusterTopicConfigs(t.configs, rf > 0 ? rf : undefined);
  requireTieredStorageFor(t.name, local, deps.config.tiered.enabled);
  if (validateOnly) {
    if (cluster.topicSync.has(t.name)) throw new MeridianError(ErrorCode.TopicExists, `topic ${t.name} already exists`);
    result.numPartitions = assignment.length > 0 ? assignment.length : partitions;
    result.replicationFactor = rf;
    return result;
  }
  // The request's timeout_ms bounds the wait (Kafka's), at least 1 s; etcd down, the answer
  // names why (REQUEST_TIMED_OUT, Kafka's code for METADATA_UNAVAILABLE here, with etcd's last error). The creation may still complete.
  const wait = timeoutMs > 0 ? Math.max(1000, timeoutMs) : undefined;
  const info = await cluster.createTopic(t.name, { partitions, replicationFactor: rf === -1 ? null : rf, ...(assignment.length > 0 ? { assignment } : {}), configs: record }, wait);
  const r = cluster.topicSync.record(t.name);
  result.topicId = info.id;
  result.numPartitions = info.partitions;
  result.replicationFactor = r?.replicationFactor ?? rf;
  if (version >= 5 && !sees(deps, who, AclOperation.DescribeConfigs, ResourceType.Topic, t.name)) result.topicConfigErrorCode = kafkaCode('TOPIC_AUTHORIZATION_FAILED');
  else if (version >= 5) {
    result.configs = describeTopicConfig(local, deps, { configs: record, defaultMinInsyncReplicas: deps.config.cluster.defaultMinInsyncReplicas }).map((c) => ({ name: c.name, value: c.value, readOnly: c.readOnly, configSource: c.source, isSensitive: false }));
  }
  return result;
}

/** DeleteTopics: by name (v0-5), by name or by id (v6+). */
export async function handleDeleteTopics(deps: KafkaApiDeps, req: DeleteTopicsRequest, version: number, who: Requester = UNKNOWN_REQUESTER): Promise<DeleteTopicsResponse> {
  const asked = version >= 6 ? req.topics : req.topicNames.map((name) => ({ name, topicId: ZERO_UUID }));
  const responses: DeleteTopicsResponse['responses'] = [];
  const seen = new Set<string>();
  for (const { name, topicId } of asked) {
    const result: DeleteTopicsResponseDeletableTopicResult = { name, topicId, errorCode: 0, errorMessage: null };
    responses.push(result);
    const fail = (code: 'INVALID_REQUEST' | 'UNKNOWN_TOPIC_ID' | 'TOPIC_AUTHORIZATION_FAILED', message: string) => {
      result.errorCode = kafkaCode(code);
      result.errorMessage = message;
    };
    if (name !== null && topicId !== ZERO_UUID) {
      fail('INVALID_REQUEST', `topic ${name}: give a topic's name or its id, not both`);
      continue;
    }
    const info = name !== null ? deps.topics.getTopic(name) : deps.topics.getTopicById(topicId);
    if (name === null && info === undefined) {
      fail('UNKNOWN_TOPIC_ID', `no topic has id ${topicId}`);
      continue;
    }
    const key = info?.id ?? `name:${name}`;
    if (seen.has(key)) {
      fail('INVALID_REQUEST', `topic ${name ?? topicId} appears twice in one request`);
      continue;
    }
    seen.add(key);
    const topic = info?.name ?? name!;
    // By id, a topic the requester may not describe keeps its name to itself (Kafka answers it null).
    if (name === null && !may(deps, who, AclOperation.Describe, ResourceType.Topic, topic)) {
      fail('TOPIC_AUTHORIZATION_FAILED', denial(who, AclOperation.Describe, ResourceType.Topic, `with id ${topicId}`).message);
      continue;
    }
    if (!may(deps, who, AclOperation.Delete, ResourceType.Topic, topic)) {
      fail('TOPIC_AUTHORIZATION_FAILED', denial(who, AclOperation.Delete, ResourceType.Topic, topic).message);
      continue;
    }
    // Deleting __meridian_offsets would delete every group's committed offsets.
    if (isInternalTopic(topic)) {
      fail('INVALID_REQUEST', `${topic} is an internal topic (the region's consumer-group offsets): it cannot be deleted`);
      continue;
    }
    if (info !== undefined) {
      result.name = info.name;
      result.topicId = info.id;
    }
    try {
      // A region cluster: the topic goes from etcd, and with it from every broker (topic-admin.ts).
      if (deps.cluster !== undefined) await deleteClusterTopic(deps.cluster, info?.name ?? name!, req.timeoutMs > 0 ? req.timeoutMs : 30_000);
      else await deps.topics.deleteTopic(info?.name ?? name!);
      await deps.groups.deleteTopicOffsets?.(info?.name ?? name!);
    } catch (err) {
      const k = toKafkaError(err);
      result.errorCode = k.code;
      result.errorMessage = k.message;
    }
  }
  return { throttleTimeMs: 0, responses };
}

/**
 * CreatePartitions: raises a topic's partition count at run time (TopicManager.addPartitions);
 * the new partitions take produce, fetch and group assignments at once, and geo-replication
 * grows the topic in the regions it replicates to at their next handshake. Fewer or equal
 * partitions are INVALID_PARTITIONS; replica assignments may only name this broker, one
 * replica per new partition (INVALID_REPLICA_ASSIGNMENT otherwise).
 */
export async function handleCreatePartitions(deps: KafkaApiDeps, req: CreatePartitionsRequest, who: Requester = UNKNOWN_REQUESTER): Promise<CreatePartitionsResponse> {
  const seen = new Set<string>();
  const results: CreatePartitionsResponse['results'] = [];
  for (const t of req.topics) {
    const result = { name: t.name, errorCode: 0, errorMessage: null as string | null };
    results.push(result);
    try {
      if (seen.has(t.name)) {
        result.errorCode = kafkaCode('INVALID_REQUEST');
        result.errorMessage = `topic ${t.name} appears twice in one request`;
        continue;
      }
      seen.add(t.name);
      if (!may(deps, who, AclOperation.Alter, ResourceType.Topic, t.name)) throw denial(who, AclOperation.Alter, ResourceType.Topic, t.name);
      // More partitions of __meridian_offsets would move most groups to a partition that
      // holds none of their offsets (a group's partition is its hash modulo the count).
      if (isInternalTopic(t.name)) {
        result.errorCode = kafkaCode('INVALID_REQUEST');
        result.errorMessage = `${t.name} is an internal topic (the region's consumer-group offsets): its partition count is fixed (cluster.offsetsTopicPartitions)`;
        continue;
      }
      // A region cluster: new partitions are placed over its brokers and written to etcd (topic-admin.ts).
      if (deps.cluster !== undefined) {
        await createClusterPartitions(deps.cluster, t.name, t.count, t.assignments === null ? null : t.assignments.map((a) => a.brokerIds), { validateOnly: req.validateOnly, timeoutMs: req.timeoutMs > 0 ? req.timeoutMs : 30_000 });
        continue;
      }
      const info = deps.topics.getTopic(t.name);
      if (info !== undefined && t.assignments !== null) {
        const node = deps.config.nodeId;
        const added = t.count - info.partitions;
        if (t.assignments.length !== added || t.assignments.some((a) => a.brokerIds.length !== 1 || a.brokerIds[0] !== node)) {
          result.errorCode = kafkaCode('INVALID_REPLICA_ASSIGNMENT');
          result.errorMessage = `topic ${t.name}: give one assignment per new partition (${Math.max(added, 0)}), each naming only this broker (${node}), or none`;
          continue;
        }
      }
      await deps.topics.addPartitions(t.name, t.count, { validateOnly: req.validateOnly });
    } catch (err) {
      const k = toKafkaError(err);
      result.errorCode = k.code;
      result.errorMessage = k.message;
    }
  }
  return { throttleTimeMs: 0, results };
}
