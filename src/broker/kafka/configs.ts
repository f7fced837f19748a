/**
 * Topic configs over Kafka: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
 *
 * Resources: topics (every config of topic-config.ts, with its value, source and synonyms;
 * changeable) and this broker (its settings under Kafka's names, broker-config.ts; all
 * read-only: Meridian has no dynamic broker configs). A changed topic config is recorded in
 * topics.json and takes effect on the live partition logs at their next retention check,
 * roll or append (TopicManager.updateTopicConfig), and in tiered storage at its next tick.
 *
 * Errors follow Kafka's broker: an unknown topic is UNKNOWN_TOPIC_OR_PARTITION, a config
 * name or value Meridian does not have is INVALID_CONFIG naming it, a malformed request
 * (duplicate resource or key, unknown operation, SET without a value, another broker's id,
 * an unsupported resource type) is INVALID_REQUEST. Each resource is answered on its own.
 *
 * Authorization (authorize.ts), as Kafka's: describing a topic's configs needs
 * DESCRIBE_CONFIGS on it, the broker's DESCRIBE_CONFIGS on the cluster; changing them
 * ALTER_CONFIGS (TOPIC_ or CLUSTER_AUTHORIZATION_FAILED for that resource alone).
 */
import { ErrorCode, MeridianError } from '../../errors.js';
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import { kafkaCode, toKafkaError } from '../../protocol/kafka/error-mapping.js';
import type { AlterConfigsRequest, AlterConfigsResponse } from '../../protocol/kafka/messages/alter-configs.js';
import type {
  DescribeConfigsRequest,
  DescribeConfigsRequestDescribeConfigsResource,
  DescribeConfigsResponse,
  DescribeConfigsResponseDescribeConfigsResult,
} from '../../protocol/kafka/messages/describe-configs.js';
import type { IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse } from '../../protocol/kafka/messages/incremental-alter-configs.js';
import { validateTopicName, type TopicConfig } from '../../storage/topic-manager.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import { describeBroker } from './broker-config.js';
import { ConfigResourceType, ConfigSource, ConfigType, type ConfigEntry } from './config-entry.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';
import { AclOperation, denial, may, ResourceType, UNKNOWN_REQUESTER, type Requester } from './authorize.js';
import { CLUSTER_RESOURCE_NAME } from '../../security/acl.js';
import { AlterOp, applyConfigOp, clusterTopicConfigs, describeTopicConfig, localTopicConfig, requireTieredStorageFor, topicConfigFrom } from './topic-config.js';

export const CONFIG_APIS: readonly KafkaApiEntry[] = [
  { key: ApiKey.DescribeConfigs, versions: [0, 4], handle: (d, c, req, v) => handleDescribeConfigs(d, req, v, c) },
  { key: ApiKey.AlterConfigs, versions: [0, 2], handle: (d, c, req) => handleAlterConfigs(d, req, c) },
  { key: ApiKey.IncrementalAlterConfigs, versions: [0, 1], handle: (d, c, req) => handleIncrementalAlterConfigs(d, req, c) },
];

/** A request Kafka answers INVALID_REQUEST: not a config problem, a malformed ask. */
class BadRequest extends Error {}

interface Outcome {
  errorCode: number;
  errorMessage: string | null;
}

function outcomeOf(err: unknown): Outcome {
  if (err instanceof BadRequest) return { errorCode: kafkaCode('INVALID_REQUEST'), errorMessage: err.message };
  const k = toKafkaError(err);
  return { errorCode: k.code, errorMessage: k.message };
}

const RESOURCE_NAMES: Record<number, string> = { 2: 'TOPIC', 4: 'BROKER', 8: 'BROKER_LOGGER', 16: 'CLIENT_METRICS', 32: 'GROUP' };

function unsupportedType(type: number): BadRequest {
  return new BadRequest(`resource type ${RESOURCE_NAMES[type] ?? type} is not supported; use TOPIC (2) or BROKER (4)`);
}

/** Kafka's rule for a broker resource: this broker's id, or "" for the cluster-wide defaults. */
function checkBrokerName(deps: KafkaApiDeps, name: string): void {
  if (name === '') return;
  if (!/^-?\d+$/.test(name)) throw new BadRequest(`broker id must be an integer, got ${JSON.stringify(name)}`);
  if (Number(name) !== deps.config.nodeId) throw new BadRequest(`unexpected broker id ${name}: this broker is ${deps.config.nodeId} (or use "" for the cluster-wide defaults)`);
}

/** Throws TOPIC_ or CLUSTER_AUTHORIZATION_FAILED unless `who` may `op` on the topic (or, for the broker, the cluster). */
function requireAccess(deps: KafkaApiDeps, who: Requester, op: AclOperation, resourceType: number, name: string): void {
  const [type, resource] = resourceType === ConfigResourceType.Topic ? [ResourceType.Topic, name] : [ResourceType.Cluster, CLUSTER_RESOURCE_NAME];
  if (!may(deps, who, op, type, resource)) throw denial(who, op, type, resource);
}

function topicOf(deps: KafkaApiDeps, name: string) {
  validateTopicName(name);
  const info = deps.topics.getTopic(name);
  if (info === undefined) throw new MeridianError(ErrorCode.UnknownTopic, `topic ${name} does not exist`);
  return info;
}

// ---------------------------------------------------------------------------------------
// DescribeConfigs

export function handleDescribeConfigs(deps: KafkaApiDeps, req: DescribeConfigsRequest, version: number, who: Requester = UNKNOWN_REQUESTER): DescribeConfigsResponse {
  return { throttleTimeMs: 0, results: req.resources.map((r) => describeResource(deps, who, r, req, version)) };
}

function describeResource(
  deps: KafkaApiDeps,
  who: Requester,
  r: DescribeConfigsRequestDescribeConfigsResource,
  req: DescribeConfigsRequest,
  version: number,
): DescribeConfigsResponseDescribeConfigsResult {
  const result = { errorCode: 0, errorMessage: null as string | null, resourceType: r.resourceType, resourceName: r.resourceName, configs: [] as DescribeConfigsResponseDescribeConfigsResult['configs'] };
  try {
    let entries: ConfigEntry[];
    if (r.resourceType === ConfigResourceType.Topic) {
      requireAccess(deps, who, AclOperation.DescribeConfigs, r.resourceType, r.resourceName);
      // A region cluster: min.insync.replicas as etcd's topic record has it (topic-config.ts).
      const record = deps.cluster?.topicSync.record(r.resourceName);
      entries = describeTopicConfig(topicOf(deps, r.resourceName).config, deps, record === undefined ? undefined : { configs: record.configs, defaultMinInsyncReplicas: deps.config.cluster.defaultMinInsyncReplicas });
    } else if (r.resourceType === ConfigResourceType.Broker) {
      requireAccess(deps, who, AclOperation.DescribeConfigs, r.resourceType, r.resourceName);
      checkBrokerName(deps, r.resourceName);
      // "" asks for the cluster-wide dynamic defaults, of which Meridian has none.
      entries = r.resourceName === '' ? [] : describeBroker(deps);
    } else {
      throw unsupportedType(r.resourceType);
    }
    const keys = r.configurationKeys === null ? null : new Set(r.configurationKeys);
    result.configs = entries
      .filter((e) => keys === null || keys.has(e.name))
      .map((e) => ({
        name: e.name,
        value: e.value,
        readOnly: e.readOnly,
        // v0 has isDefault and no source; v1+ the reverse (the codec requires false there).
        isDefault: version === 0 && e.source === ConfigSource.Default,
        configSource: e.source,
        isSensitive: false,
        synonyms: req.includeSynonyms ? e.synonyms.map((s) => ({ name: s.name, value: s.value, source: s.source })) : [],
        configType: ConfigType[e.type],
        documentation: req.includeDocumentation ? e.documentation : null,
      }));
  } catch (err) {
    Object.assign(result, outcomeOf(err));
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// AlterConfigs and IncrementalAlterConfigs

interface AlterResource {
  resourceType: number;
  resourceName: string;
  configs: ReadonlyArray<{ name: string }>;
}

/** Kafka refuses every copy of a resource named twice in one request. */
function duplicatesOf(resources: readonly AlterResource[]): Set<string> {
  const seen = new Set<string>();
  const dup = new Set<string>();
  for (const r of resources) {
    const id = `${r.resourceType}:${r.resourceName}`;
    if (seen.has(id)) dup.add(id);
    seen.add(id);
  }
  return dup;
}

async function alterEach<R extends AlterResource>(deps: KafkaApiDeps, who: Requester, resources: readonly R[], alterTopic: (r: R) => Promise<unknown>): Promise<AlterConfigsResponse> {
  const dup = duplicatesOf(resources);
  const responses: AlterConfigsResponse['responses'] = [];
  for (const r of resources) {
    let outcome: Outcome = { errorCode: 0, errorMessage: null };
    try {
      if (dup.has(`${r.resourceType}:${r.resourceName}`)) throw new BadRequest(`resource ${r.resourceName} appears more than once in the request`);
      const names = r.configs.map((c) => c.name);
      const twice = names.find((n, i) => names.indexOf(n) !== i);
      if (twice !== undefined) throw new BadRequest(`config ${twice} appears more than once for ${r.resourceName}`);
      if (r.resourceType !== ConfigResourceType.Topic && r.resourceType !== ConfigResourceType.Broker) throw unsupportedType(r.resourceType);
      requireAccess(deps, who, AclOperation.AlterConfigs, r.resourceType, r.resourceName);
      if (r.resourceType === ConfigResourceType.Topic) {
        validateTopicName(r.resourceName);
        await alterTopic(r);
      } else {
        alterBroker(deps, r);
      }
    } catch (err) {
      outcome = outcomeOf(err);
    }
    responses.push({ ...outcome, resourceType: r.resourceType, resourceName: r.resourceName });
  }
  return { throttleTimeMs: 0, responses };
}

function alterBroker(deps: KafkaApiDeps, r: AlterResource): void {
  checkBrokerName(deps, r.resourceName);
  if (r.configs.length === 0) return;
  throw new BadRequest(
    `broker configs cannot be changed at run time (${r.configs.map((c) => c.name).join(', ')}): set them in the broker's config file and restart; DescribeConfigs documents the Meridian field of each`,
  );
}

/**
 * Rules on a change as a whole (the old and new overrides together), beyond each value's
 * own check.
 */
function checkTransition(deps: KafkaApiDeps, topic: string, before: TopicConfig, after: TopicConfig): TopicConfig {
  const tieredOn = deps.config.tiered.enabled;
  const wasTiered = before.remoteStorage ?? tieredOn;
  const willBeTiered = after.remoteStorage ?? tieredOn;
  if (!wasTiered) requireTieredStorageFor(topic, after, tieredOn);
  // Kafka before KIP-950 refuses this too: the topic's history below its local log lives
  // only in the object store, and turning tiering off would cut consumers off from it.
  if (wasTiered && !willBeTiered && tieredOn) {
    throw new MeridianError(
      ErrorCode.InvalidConfig,
      `topic ${topic}: remote.storage.enable cannot be turned off once a topic is tiered (its older segments live in the object store); create a new topic with remote.storage.enable=false instead`,
    );
  }
  return after;
}

/** Attempts at a clustered config change that lost its compare-and-swap to another change. */
const CLUSTER_ALTER_ATTEMPTS = 5;
/** How long the asking broker waits for its own copy to apply a change written to etcd. */
const CLUSTER_APPLY_TIMEOUT_MS = 30_000;

/**
 * A topic config change in a region cluster: the configs live in etcd's topic record (by
 * Kafka name), so every broker of the region applies the same (cluster/topic-sync.ts).
 * `change` maps the record's configs to the new ones; they are validated as CreateTopics
 * validates them there (min.insync.replicas up to the replication factor) plus the
 * transition rules, written by compare-and-swap on the record's revision (a lost race
 * decides again from the record etcd now has), and answered once this broker applied it.
 */
async function alterClusterTopic(deps: KafkaApiDeps, name: string, change: (configs: Readonly<Record<string, string>>) => Record<string, string>, validateOnly: boolean): Promise<void> {
  const cluster = deps.cluster!;
  let v = cluster.topicSync.versioned(name);
  for (let attempt = 1; ; attempt++) {
    if (v === undefined) throw new MeridianError(ErrorCode.UnknownTopic, `topic ${name} does not exist`);
    const next = change(v.value.configs);
    const { local } = clusterTopicConfigs(Object.entries(next).map(([n, value]) => ({ name: n, value })), v.value.replicationFactor);
    checkTransition(deps, name, localTopicConfig(v.value.configs), local);
    if (validateOnly) return;
    const res = await cluster.topicStore.updateTopicConfigs(name, next, v);
    if (res.ok) return cluster.topicSync.waitApplied(name, res.record.modRevision, CLUSTER_APPLY_TIMEOUT_MS);
    if (attempt >= CLUSTER_ALTER_ATTEMPTS) {
      throw new MeridianError(ErrorCode.MetadataUnavailable, `topic ${name}: its configs kept changing under this request (${attempt} attempts lost to concurrent changes); retry`);
    }
    v = res.current;
  }
}

export function handleAlterConfigs(deps: KafkaApiDeps, req: AlterConfigsRequest, who: Requester = UNKNOWN_REQUESTER): Promise<AlterConfigsResponse> {
  // AlterConfigs replaces the topic's whole set of overrides, as Kafka's does: a config
  // left out of the request goes back to the broker's value.
  if (deps.cluster !== undefined) {
    return alterEach(deps, who, req.resources, (r) =>
      alterClusterTopic(deps, r.resourceName, () => Object.fromEntries(r.configs.filter((c) => c.value !== null).map((c) => [c.name, c.value as string])), req.validateOnly),
    );
  }
  return alterEach(deps, who, req.resources, (r) =>
    deps.topics.updateTopicConfig(r.resourceName, (info) => checkTransition(deps, info.name, info.config, topicConfigFrom(r.configs)), { validateOnly: req.validateOnly }),
  );
}

export async function handleIncrementalAlterConfigs(deps: KafkaApiDeps, req: IncrementalAlterConfigsRequest, who: Requester = UNKNOWN_REQUESTER): Promise<IncrementalAlterConfigsResponse> {
  return alterEach(deps, who, req.resources, (r) => {
    for (const c of r.configs) {
      if (c.configOperation < AlterOp.Set || c.configOperation > AlterOp.Subtract) {
        throw new BadRequest(`config ${c.name}: unknown operation ${c.configOperation} (0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT)`);
      }
      if (c.configOperation !== AlterOp.Delete && c.value === null) throw new BadRequest(`config ${c.name}: a null value is only allowed with DELETE`);
    }
    if (deps.cluster !== undefined) {
      return alterClusterTopic(
        deps,
        r.resourceName,
        (configs) => {
          const next: Record<string, string> = { ...configs };
          for (const c of r.configs) {
            if (c.configOperation === AlterOp.Set) next[c.name] = c.value as string;
            else if (c.configOperation === AlterOp.Delete) {
              applyConfigOp({}, c.name, AlterOp.Delete, null); // an unknown name is refused
              delete next[c.name];
            }
            // APPEND and SUBTRACT apply to list configs, all read-only: checked, nothing kept.
            else applyConfigOp(localTopicConfig(next), c.name, c.configOperation as AlterOp, c.value);
          }
          return next;
        },
        req.validateOnly,
      );
    }
    return deps.topics.updateTopicConfig(
      r.resourceName,
      (info) => {
        let next = info.config;
        for (const c of r.configs) next = applyConfigOp(next, c.name, c.configOperation as AlterOp, c.value);
        return checkTransition(deps, info.name, info.config, next);
      },
      { validateOnly: req.validateOnly },
    );
  });
}
