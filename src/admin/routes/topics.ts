/**
 * Topics: list, create (Kafka config names, parsed by broker/kafka/topic-config.ts as
 * CreateTopics parses them), describe with per-partition offsets and bytes in each tier,
 * delete (with the group offsets of the topic, as DeleteTopics does).
 */
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/broker.js';
import { clusterTopicConfigs, describeTopicConfig, requireTieredStorageFor, topicConfigFrom } from '../../broker/kafka/topic-config.js';
import { deleteClusterTopic } from '../../cluster/topic-admin.js';
import { ConfigSource } from '../../broker/kafka/config-entry.js';
import { ErrorCode, MeridianError } from '../../errors.js';
import { policyFor } from '../../replication/policy.js';
import { LogView } from '../../storage/log-view.js';
import type { TopicInfo } from '../../storage/topic-manager.js';
import type { PartitionTierStatus } from '../../tiered/tiered-storage.js';
import type { AdminContext } from '../app.js';
import { arr, errorResponses, obj, ref, schemaTypes as t } from '../schemas.js';

const SOURCE_NAMES: Record<number, string> = {
  [ConfigSource.DynamicTopic]: 'DYNAMIC_TOPIC_CONFIG',
  [ConfigSource.DynamicBroker]: 'DYNAMIC_BROKER_CONFIG',
  [ConfigSource.DynamicDefaultBroker]: 'DYNAMIC_DEFAULT_BROKER_CONFIG',
  [ConfigSource.StaticBroker]: 'STATIC_BROKER_CONFIG',
  [ConfigSource.Default]: 'DEFAULT_CONFIG',
};

function brokerView(broker: Broker) {
  const { host, port } = broker.kafkaAdvertised;
  return { config: broker.config, advertisedHost: host, advertisedPort: port, listenerEndpoints: broker.advertisedListeners };
}

function tierStatus(broker: Broker): Map<string, PartitionTierStatus> {
  return new Map((broker.tiered?.status() ?? []).map((s) => [`${s.topic}\0${s.partition}`, s]));
}

function topicOf(broker: Broker, name: string): TopicInfo {
  const info = broker.topics.getTopic(name);
  if (info === undefined) throw new MeridianError(ErrorCode.UnknownTopic, `topic ${name} does not exist`);
  return info;
}

export function describeTopic(broker: Broker, name: string) {
  const info = topicOf(broker, name);
  const tiers = tierStatus(broker);
  return {
    name: info.name,
    id: info.id,
    replicationPolicy: info.name.startsWith('__') ? null : (policyFor(broker.replicator.policies, info.name)?.name ?? null),
    configs: describeTopicConfig(info.config, brokerView(broker)).map((c) => ({ name: c.name, value: c.value, source: SOURCE_NAMES[c.source] ?? String(c.source), readOnly: c.readOnly, documentation: c.documentation ?? '' })),
    partitions: broker.topics.partitions(info.name).map((log, partition) => {
      const tier = tiers.get(`${info.name}\0${partition}`);
      const view = new LogView(log, info.name, partition, broker.tiered?.remote);
      return {
        partition,
        logStartOffset: String(view.logStartOffset),
        localStartOffset: String(log.logStartOffset),
        highWatermark: String(log.highWatermark),
        durableOffset: String(log.durableOffset),
        shipFence: log.shipFence === 0n ? null : String(log.shipFence),
        localBytes: log.sizeBytes,
        localSegments: log.segments().length,
        tieredBytes: tier?.remoteBytes ?? 0,
        remoteStartOffset: tier === undefined ? null : tier.remoteStartOffset,
        remoteEndOffset: tier === undefined ? null : tier.remoteEndOffset,
      };
    }),
  };
}

export function topicRoutes(app: FastifyInstance, { broker }: AdminContext): void {
  app.get(
    '/v1/topics',
    {
      schema: {
        summary: 'Every topic with its overrides (Kafka config names) and bytes in each tier',
        tags: ['topics'],
        response: {
          200: arr(
            obj({
              name: t.str,
              id: t.str,
              partitions: t.int,
              configs: { type: 'object', additionalProperties: t.str, description: 'the topic\'s overrides, by Kafka config name' },
              localBytes: t.int,
              tieredBytes: t.int,
              replicated: t.bool,
              replicationPolicy: t.nullableStr,
            }),
          ),
        },
      },
    },
    async () => {
      const tiers = broker.tiered?.status() ?? [];
      const view = brokerView(broker);
      return broker.topics
        .listTopics()
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((info) => {
          const policy = info.name.startsWith('__') ? undefined : policyFor(broker.replicator.policies, info.name);
          const overrides = describeTopicConfig(info.config, view).filter((c) => c.source === ConfigSource.DynamicTopic);
          return {
            name: info.name,
            id: info.id,
            partitions: info.partitions,
            configs: Object.fromEntries(overrides.map((c) => [c.name, c.value ?? ''])),
            localBytes: broker.topics.partitions(info.name).reduce((n, l) => n + l.sizeBytes, 0),
            tieredBytes: tiers.filter((s) => s.topic === info.name).reduce((n, s) => n + s.remoteBytes, 0),
            replicated: policy !== undefined,
            replicationPolicy: policy?.name ?? null,
          };
        });
    },
  );

  app.post<{ Body: { name: string; partitions?: number; configs?: Record<string, string | number | boolean> } }>(
    '/v1/topics',
    {
      schema: {
        summary: 'Create a topic (configs by Kafka name, as CreateTopics)',
        tags: ['topics'],
        body: obj(
          {
            name: { type: 'string', minLength: 1, maxLength: 249 },
            partitions: { type: 'integer', minimum: 1, maximum: 10000, description: 'default: topics.defaultPartitions' },
            configs: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] }, description: 'e.g. { "retention.ms": "86400000", "remote.storage.enable": "true" }' },
          },
          ['name'],
        ),
        response: { 201: ref('TopicDetail'), ...errorResponses(400, 401, 409) },
      },
    },
    async (req, reply) => {
      const { name, partitions, configs = {} } = req.body;
      const given = Object.entries(configs).map(([k, v]) => ({ name: k, value: String(v) }));
      // A region cluster creates it in etcd through the controller, as CreateTopics does.
      if (broker.cluster !== undefined) {
        const { local, record } = clusterTopicConfigs(given);
        requireTieredStorageFor(name, local, broker.config.tiered.enabled);
        await broker.cluster.createTopic(name, { partitions: partitions ?? broker.config.topics.defaultPartitions, replicationFactor: null, configs: record });
        return reply.code(201).send(describeTopic(broker, name));
      }
      const config = topicConfigFrom(given);
      requireTieredStorageFor(name, config, broker.config.tiered.enabled);
      await broker.topics.createTopic(name, partitions ?? broker.config.topics.defaultPartitions, config);
      return reply.code(201).send(describeTopic(broker, name));
    },
  );

  app.get<{ Params: { name: string } }>(
    '/v1/topics/:name',
    { schema: { summary: 'One topic: every config with its source, and per partition its offsets and bytes in each tier', tags: ['topics'], params: obj({ name: t.str }), response: { 200: ref('TopicDetail'), ...errorResponses(401, 404) } } },
    async (req) => describeTopic(broker, req.params.name),
  );

  app.delete<{ Params: { name: string } }>(
    '/v1/topics/:name',
    { schema: { summary: 'Delete a topic, its data in both tiers and its committed group offsets', tags: ['topics'], params: obj({ name: t.str }), response: { 204: { type: 'null', description: 'deleted' }, ...errorResponses(401, 404) } } },
    async (req, reply) => {
      const info = topicOf(broker, req.params.name);
      // A region cluster: deleted from etcd, so from every broker (never only this copy).
      if (broker.cluster !== undefined) await deleteClusterTopic(broker.cluster, info.name, 30_000);
      else await broker.topics.deleteTopic(info.name);
      await broker.groups.deleteTopicOffsets(info.name);
      return reply.code(204).send();
    },
  );
}
