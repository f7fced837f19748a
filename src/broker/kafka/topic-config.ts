/**
 * Kafka's topic configs as Meridian has them: which names exist, how a value is parsed into
 * the topic's overrides (`TopicConfig`), and what DescribeConfigs reports for a topic. One
 * table serves CreateTopics, AlterConfigs, IncrementalAlterConfigs and DescribeConfigs, so
 * a config a client can set is one it can read back, and one it cannot set is refused with
 * INVALID_CONFIG naming it, never accepted and ignored.
 *
 * Two kinds of config:
 * - settable: stored as an override in topics.json, falling back to the broker's setting
 *   (its Kafka synonym in broker-config.ts). TopicManager.alterTopicConfig applies a change
 *   to the live partition logs; tiered storage picks up its own settings.
 * - read-only: what Meridian does and cannot change (cleanup.policy=delete,
 *   compression.type=producer, min.insync.replicas=1). Setting one to the value it has is
 *   accepted (tools send back what they described); any other value is refused saying why.
 */
import { ErrorCode, MeridianError } from '../../errors.js';
import type { TopicConfig } from '../../storage/topic-manager.js';
import { describeBrokerSetting, type BrokerView } from './broker-config.js';
import { ConfigSource, type ConfigEntry, type ConfigSynonym, type ConfigTypeName } from './config-entry.js';

type Key = keyof TopicConfig;

interface TopicConfigDef {
  readonly name: string;
  readonly type: ConfigTypeName;
  readonly doc: string;
  /** Kafka's broker-level synonym (broker-config.ts): the value when the topic sets none. */
  readonly broker: string;
  /** Settable: the override it is stored as, and the parser of a value. */
  readonly key?: Key;
  readonly parse?: (name: string, v: string) => TopicConfig[Key];
  /** Read-only: the one value there is, and the check of a value a client sends. */
  readonly fixed?: { readonly value: string; readonly check: (name: string, v: string) => void };
}

function invalid(message: string): MeridianError {
  return new MeridianError(ErrorCode.InvalidConfig, message);
}

const INT_MAX = 2 ** 31 - 1;

function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (name: string, v: string): number => {
    const t = v.trim();
    const n = /^[-+]?\d+$/.test(t) ? Number(t) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw invalid(`topic config ${name}=${v}: expected an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`}`);
    }
    return n;
  };
}

function boolean(name: string, v: string): boolean {
  const t = v.trim().toLowerCase();
  if (t !== 'true' && t !== 'false') throw invalid(`topic config ${name}=${v}: expected true or false`);
  return t === 'true';
}

function oneOf<T extends string>(...values: T[]) {
  return (name: string, v: string): T => {
    const t = v.trim();
    if (!(values as string[]).includes(t)) throw invalid(`topic config ${name}=${v}: expected ${values.join(' or ')}`);
    return t as T;
  };
}

/** Kafka's -2 for local.retention.* means "as long as retention.*": keep the local copies (-1). */
const localRetention = (name: string, v: string) => Math.max(-1, integer(-2)(name, v));

function only(value: string, why: string) {
  return {
    value,
    check: (name: string, v: string) => {
      if (v.trim() !== value) throw invalid(`topic config ${name}=${v}: ${why}; only ${value} is accepted`);
    },
  };
}

const cleanupPolicy = {
  value: 'delete',
  check: (name: string, v: string) => {
    const policies = v.split(',').map((p) => p.trim().toLowerCase());
    if (policies.includes('compact')) throw invalid(`topic config ${name}=${v}: log compaction is not supported; use ${name}=delete`);
    if (policies.length !== 1 || policies[0] !== 'delete') throw invalid(`topic config ${name}=${v}: expected delete (the only cleanup policy)`);
  },
};

const DEFS: readonly TopicConfigDef[] = [
  { name: 'cleanup.policy', type: 'LIST', broker: 'log.cleanup.policy', fixed: cleanupPolicy, doc: 'Old segments are deleted by retention.ms and retention.bytes. Log compaction is not supported.' },
  {
    name: 'compression.type',
    type: 'STRING',
    broker: 'compression.type',
    fixed: only('producer', 'batches are stored as the producer compressed them; the broker does not recompress'),
    doc: 'Batches are stored as the producer compressed them.',
  },
  {
    name: 'local.retention.bytes',
    type: 'LONG',
    broker: 'log.local.retention.bytes',
    key: 'localRetentionBytes',
    parse: localRetention,
    doc: 'Tiered topics: delete offloaded local segments while a partition holds more than this locally; -1 (or -2): keep them.',
  },
  {
    name: 'local.retention.ms',
    type: 'LONG',
    broker: 'log.local.retention.ms',
    key: 'localRetentionMs',
    parse: localRetention,
    doc: 'Tiered topics: delete offloaded local segments older than this; -1 (or -2): keep them.',
  },
  { name: 'max.message.bytes', type: 'INT', broker: 'message.max.bytes', key: 'maxBatchBytes', parse: integer(1, INT_MAX), doc: 'Largest record batch accepted from a producer.' },
  {
    name: 'message.timestamp.type',
    type: 'STRING',
    broker: 'log.message.timestamp.type',
    key: 'timestampType',
    parse: oneOf('CreateTime', 'LogAppendTime'),
    doc: 'CreateTime keeps the producer\'s timestamps; LogAppendTime stamps every appended batch with the broker\'s clock.',
  },
  {
    name: 'min.insync.replicas',
    type: 'INT',
    broker: 'min.insync.replicas',
    fixed: only('1', 'a partition has one replica in its region'),
    doc: 'One replica per partition within a region; other regions get data by geo-replication.',
  },
  {
    name: 'remote.storage.enable',
    type: 'BOOLEAN',
    broker: 'remote.log.storage.system.enable',
    key: 'remoteStorage',
    parse: boolean,
    doc: 'Offload sealed segments to the object store (when tiered storage is enabled on the broker). Cannot be turned off once a topic is tiered.',
  },
  { name: 'retention.bytes', type: 'LONG', broker: 'log.retention.bytes', key: 'retentionBytes', parse: integer(-1), doc: 'Keep at most this many bytes per partition, over both tiers; -1: unlimited.' },
  { name: 'retention.ms', type: 'LONG', broker: 'log.retention.ms', key: 'retentionMs', parse: integer(-1), doc: 'Delete segments whose newest record is older than this; -1: unlimited.' },
  // Index entries hold 32-bit byte positions (as Kafka's do), hence the 2 GiB ceiling.
  { name: 'segment.bytes', type: 'INT', broker: 'log.segment.bytes', key: 'segmentBytes', parse: integer(1024, INT_MAX), doc: 'Roll to a new segment when the active one reaches this size.' },
  { name: 'segment.ms', type: 'LONG', broker: 'log.roll.ms', key: 'segmentMs', parse: integer(1), doc: 'Roll to a new segment when the active one is this old, even if not full.' },
];

const BY_NAME: ReadonlyMap<string, TopicConfigDef> = new Map(DEFS.map((d) => [d.name, d]));

export const SUPPORTED_TOPIC_CONFIGS: readonly string[] = DEFS.map((d) => d.name);

function defOf(name: string): TopicConfigDef {
  const def = BY_NAME.get(name);
  if (def === undefined) throw invalid(`topic config ${name} is not supported; supported: ${SUPPORTED_TOPIC_CONFIGS.join(', ')}`);
  return def;
}

/** Sets one config on `c` (a read-only one is checked and leaves `c` as it is). */
function set(c: TopicConfig, def: TopicConfigDef, value: string): void {
  if (def.fixed) def.fixed.check(def.name, value);
  else (c as Record<Key, unknown>)[def.key!] = def.parse!(def.name, value);
}

/** A topic's overrides from the configs of a CreateTopics or AlterConfigs request. */
export function topicConfigFrom(configs: ReadonlyArray<{ name: string; value: string | null }>): TopicConfig {
  const out: TopicConfig = {};
  for (const { name, value } of configs) {
    const def = defOf(name);
    if (value !== null) set(out, def, value);
  }
  return out;
}

/**
 * Refuses `remote.storage.enable=true` on a broker without tiered storage (INVALID_CONFIG):
 * the topic would never be tiered. CreateTopics, both alters and the admin API call it.
 */
export function requireTieredStorageFor(topic: string, config: TopicConfig, tieredEnabled: boolean): void {
  if (config.remoteStorage === true && !tieredEnabled) {
    throw invalid(`topic ${topic}: remote.storage.enable=true needs tiered storage, which is not enabled on this broker (Meridian config: tiered.enabled)`);
  }
}

/** IncrementalAlterConfigs' operations (Kafka's AlterConfigOp.OpType). */
export const AlterOp = { Set: 0, Delete: 1, Append: 2, Subtract: 3 } as const;
export type AlterOp = (typeof AlterOp)[keyof typeof AlterOp];

/**
 * `current` with one IncrementalAlterConfigs operation applied (a copy). DELETE reverts to
 * the broker's value; APPEND and SUBTRACT exist for list configs only.
 */
export function applyConfigOp(current: TopicConfig, name: string, op: AlterOp, value: string | null): TopicConfig {
  const def = defOf(name);
  const next: TopicConfig = { ...current };
  switch (op) {
    case AlterOp.Set:
      set(next, def, value ?? '');
      break;
    case AlterOp.Delete:
      if (def.key) delete next[def.key];
      break;
    case AlterOp.Append:
    case AlterOp.Subtract: {
      const verb = op === AlterOp.Append ? 'APPEND' : 'SUBTRACT';
      if (def.type !== 'LIST') throw invalid(`topic config ${name}: ${verb} applies to list configs only; ${name} is a ${def.type}, use SET`);
      // The one list config is read-only: the result must still be its one value.
      const items = (value ?? '').split(',').map((x) => x.trim()).filter((x) => x !== '');
      const was = def.fixed!.value.split(',');
      const result = op === AlterOp.Append ? [...was, ...items.filter((x) => !was.includes(x))] : was.filter((x) => !items.includes(x));
      set(next, def, result.join(','));
      break;
    }
  }
  return next;
}

/**
 * Every topic config with its value, where it comes from and its synonyms (highest
 * precedence first: the topic's override, then the broker's setting).
 */
export function describeTopicConfig(c: TopicConfig, b: BrokerView, cluster?: { readonly configs: Readonly<Record<string, string>>; readonly defaultMinInsyncReplicas: number }): ConfigEntry[] {
  return DEFS.map((def) => {
    const broker = describeBrokerSetting(def.broker, b);
    let inherited: ConfigSynonym = { name: broker.name, value: broker.value, source: broker.source };
    let override: unknown = def.key === undefined ? undefined : c[def.key];
    // A region cluster keeps min.insync.replicas per topic in etcd (clusterTopicConfigs).
    const clustered = cluster !== undefined && def.name === MIN_INSYNC;
    if (clustered) {
      inherited = { name: def.broker, value: String(cluster.defaultMinInsyncReplicas), source: ConfigSource.StaticBroker };
      override = cluster.configs[MIN_INSYNC];
    }
    const synonyms: ConfigSynonym[] = override === undefined ? [inherited] : [{ name: def.name, value: String(override), source: ConfigSource.DynamicTopic }, inherited];
    return {
      name: def.name,
      value: synonyms[0].value,
      source: synonyms[0].source,
      readOnly: def.key === undefined && !clustered,
      type: def.type,
      documentation: def.doc,
      synonyms,
    };
  });
}

const MIN_INSYNC = 'min.insync.replicas';

/**
 * A topic's configs in a region cluster (CreateTopics there): `record` is what the etcd
 * TopicRecord keeps (every config given, by Kafka name), `local` the overrides storage
 * applies. There `min.insync.replicas` is settable (an integer from 1 to the replication
 * factor when that is known), used by the replica manager for acks=all; on a single broker
 * it stays read-only at 1 (topicConfigFrom).
 */
export function clusterTopicConfigs(configs: ReadonlyArray<{ name: string; value: string | null }>, replicationFactor?: number): { local: TopicConfig; record: Record<string, string> } {
  const record: Record<string, string> = {};
  const rest: Array<{ name: string; value: string | null }> = [];
  for (const { name, value } of configs) {
    if (value === null) continue;
    if (name === MIN_INSYNC) {
      const n = Number(value);
      if (!/^\d+$/.test(value.trim()) || n < 1 || n > INT_MAX) throw invalid(`topic config ${MIN_INSYNC}=${value}: give an integer of at least 1`);
      if (replicationFactor !== undefined && replicationFactor > 0 && n > replicationFactor) {
        throw invalid(`topic config ${MIN_INSYNC}=${value} is more than the replication factor ${replicationFactor}: acks=all could never succeed`);
      }
      record[name] = String(n);
    } else {
      rest.push({ name, value });
      record[name] = value;
    }
  }
  return { local: topicConfigFrom(rest), record };
}

/** The storage overrides of an etcd TopicRecord's configs (min.insync.replicas is the replica manager's). */
export function localTopicConfig(configs: Readonly<Record<string, string>>): TopicConfig {
  return clusterTopicConfigs(Object.entries(configs).map(([name, value]) => ({ name, value }))).local;
}
