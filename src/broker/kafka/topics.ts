/**
 * Metadata, CreateTopics and DeleteTopics. One broker per region answers as the whole
 * cluster: it is every partition's leader and the controller (KafkaJS sends CreateTopics,
 * DeleteTopics and InitProducerId to the controller, so controller_id must be a real broker:
 * this one), and it advertises its configured host, never a wildcard.
 */
import { ErrorCode, MeridianError } from '../../errors.js';
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import { kafkaCode, toKafkaError } from '../../protocol/kafka/error-mapping.js';
import type { CreateTopicsRequest, CreateTopicsResponse } from '../../protocol/kafka/messages/create-topics.js';
import type { DeleteTopicsRequest, DeleteTopicsResponse } from '../../protocol/kafka/messages/delete-topics.js';
import type { MetadataRequest, MetadataResponse, MetadataResponseTopic } from '../../protocol/kafka/messages/metadata.js';
import { validateTopicName, type TopicInfo } from '../../storage/topic-manager.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';
import { topicConfigFrom } from './topic-config.js';

export const TOPIC_APIS: readonly KafkaApiEntry[] = [
  { key: ApiKey.Metadata, versions: [0, 6], handle: (d, _c, req, v) => handleMetadata(d, req, v) },
  { key: ApiKey.CreateTopics, versions: [0, 4], handle: (d, _c, req) => handleCreateTopics(d, req) },
  { key: ApiKey.DeleteTopics, versions: [0, 1], handle: (d, _c, req) => handleDeleteTopics(d, req) },
];

function topicMetadata(deps: KafkaApiDeps, info: TopicInfo): MetadataResponseTopic {
  const node = deps.config.nodeId;
  return {
    errorCode: 0,
    name: info.name,
    topicId: info.id,
    isInternal: false,
    partitions: Array.from({ length: info.partitions }, (_, p) => ({
      errorCode: 0,
      partitionIndex: p,
      leaderId: node,
      leaderEpoch: -1,
      replicaNodes: [node],
      isrNodes: [node],
      offlineReplicas: [],
    })),
    topicAuthorizedOperations: -2147483648,
  };
}

function errorTopic(name: string, errorCode: number): MetadataResponseTopic {
  return { errorCode, name, topicId: '00000000-0000-0000-0000-000000000000', isInternal: false, partitions: [], topicAuthorizedOperations: -2147483648 };
}

export async function handleMetadata(deps: KafkaApiDeps, req: MetadataRequest, version: number): Promise<MetadataResponse> {
  const { topics } = deps;
  // v0: an empty list means all topics; v1+: null means all, empty means none.
  const all = req.topics === null || (version === 0 && req.topics.length === 0);
  const out: MetadataResponseTopic[] = [];
  if (all) {
    for (const t of topics.listTopics()) out.push(topicMetadata(deps, t));
  } else {
    const autoCreate = deps.config.topics.autoCreate && (version < 4 || req.allowAutoTopicCreation);
    for (const { name } of req.topics ?? []) {
      if (name === null) continue;
      let info = topics.getTopic(name);
      if (info === undefined && autoCreate) {
        try {
          info = await topics.createTopic(name, deps.config.topics.defaultPartitions);
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
        out.push(topicMetadata(deps, info));
      }
    }
  }
  return {
    throttleTimeMs: 0,
    brokers: [{ nodeId: deps.config.nodeId, host: deps.advertisedHost, port: deps.advertisedPort, rack: null }],
    clusterId: deps.clusterId,
    controllerId: deps.config.nodeId,
    topics: out,
    clusterAuthorizedOperations: -2147483648,
  };
}

export async function handleCreateTopics(deps: KafkaApiDeps, req: CreateTopicsRequest): Promise<CreateTopicsResponse> {
  const results: CreateTopicsResponse['topics'] = [];
  const seen = new Set<string>();
  for (const t of req.topics) {
    const result = {
      name: t.name,
      topicId: '00000000-0000-0000-0000-000000000000',
      errorCode: 0,
      errorMessage: null as string | null,
      topicConfigErrorCode: 0,
      numPartitions: -1,
      replicationFactor: -1,
      configs: null,
    };
    try {
      if (seen.has(t.name)) throw new MeridianError(ErrorCode.InvalidTopic, `topic ${t.name} appears twice in one request`);
      seen.add(t.name);
      // KafkaJS sends -1 for "broker default" when the caller gives no count, even at v3.
      const partitions = t.numPartitions === -1 ? deps.config.topics.defaultPartitions : t.numPartitions;
      if (t.assignments.length > 0) throw new MeridianError(ErrorCode.InvalidPartitions, 'manual replica assignments are not supported');
      if (t.replicationFactor !== -1 && t.replicationFactor !== 1) {
        throw new MeridianError(ErrorCode.InvalidPartitions, `replication factor ${t.replicationFactor} is not available on a single-broker region; use 1 or -1`);
      }
      if (req.validateOnly) {
        validateTopicName(t.name);
        topicConfigFrom(t.configs);
        if (deps.topics.getTopic(t.name)) throw new MeridianError(ErrorCode.TopicExists, `topic ${t.name} already exists`);
      } else {
        const info = await deps.topics.createTopic(t.name, partitions, topicConfigFrom(t.configs));
        result.topicId = info.id;
      }
      result.numPartitions = partitions;
      result.replicationFactor = 1;
    } catch (err) {
      const k = toKafkaError(err);
      result.errorCode = k.name === 'INVALID_PARTITIONS' && /replication factor/.test(k.message) ? kafkaCode('INVALID_REPLICATION_FACTOR') : k.code;
      result.errorMessage = k.message;
    }
    results.push(result);
  }
  return { throttleTimeMs: 0, topics: results };
}

export async function handleDeleteTopics(deps: KafkaApiDeps, req: DeleteTopicsRequest): Promise<DeleteTopicsResponse> {
  const responses: DeleteTopicsResponse['responses'] = [];
  for (const name of req.topicNames) {
    let errorCode = 0;
    let errorMessage: string | null = null;
    try {
      await deps.topics.deleteTopic(name);
      await deps.groups.deleteTopicOffsets?.(name);
    } catch (err) {
      const k = toKafkaError(err);
      errorCode = k.code;
      errorMessage = k.message;
    }
    responses.push({ name, topicId: '00000000-0000-0000-0000-000000000000', errorCode, errorMessage });
  }
  return { throttleTimeMs: 0, responses };
}
