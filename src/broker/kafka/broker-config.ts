/**
 * The broker's settings under Kafka's names, for DescribeConfigs of a broker resource and as
 * the broker-level synonyms of topic configs (topic-config.ts). Every value is read from the
 * resolved `BrokerConfig` (or is what Meridian does and cannot be changed), so a client sees
 * what this broker really runs with. All are read-only: Meridian has no dynamic broker
 * configs; they change in the config file and take effect at the next start.
 *
 * Source: STATIC_BROKER_CONFIG when the config sets a value other than Meridian's default,
 * DEFAULT_CONFIG otherwise (a value set to the default cannot be told apart from one left
 * unset once the config is resolved, and reads the same).
 */
import path from 'node:path';
import { effectiveListeners } from '../../config/listeners.js';
import { defaultConfig } from '../../config/load-config.js';
import type { BrokerConfig } from '../../config/schema.js';
import { ConfigSource, type ConfigEntry, type ConfigTypeName } from './config-entry.js';

/** What the broker settings are read from (KafkaApiDeps has these). */
export interface BrokerView {
  readonly config: BrokerConfig;
  readonly advertisedHost: string;
  readonly advertisedPort: number;
  /** Each listener's advertised endpoint (KafkaApiDeps.listenerEndpoints). */
  readonly listenerEndpoints?: ReadonlyMap<string, { readonly host: string; readonly port: number }>;
}

/** Kafka's listeners value: NAME://host:port, comma-separated. */
function listenersOf(b: BrokerView): string {
  return effectiveListeners(b.config.kafka)
    .map((l) => `${l.name}://${l.host}:${l.port}`)
    .join(',');
}

function advertisedListenersOf(b: BrokerView): string {
  const listeners = effectiveListeners(b.config.kafka);
  return listeners
    .map((l, i) => {
      const e = b.listenerEndpoints?.get(l.name) ?? (i === 0 ? { host: b.advertisedHost, port: b.advertisedPort } : { host: l.advertisedHost ?? l.host, port: l.advertisedPort ?? l.port });
      return `${l.name}://${e.host}:${e.port}`;
    })
    .join(',');
}

interface BrokerSetting {
  readonly name: string;
  readonly type: ConfigTypeName;
  readonly doc: string;
  /** The Meridian config field behind it; undefined: fixed, no field changes it. */
  readonly field?: string;
  readonly value: (b: BrokerView) => string;
}

const LONG_MAX = '9223372036854775807';

/** Where the partition directories live: Kafka's log.dirs, and DescribeLogDirs' one dir. */
export function logDirOf(config: BrokerConfig): string {
  return path.join(path.resolve(config.dataDir), 'logs');
}

const s = (name: string, type: ConfigTypeName, field: string | undefined, doc: string, value: (b: BrokerView) => string | number | boolean): BrokerSetting => ({
  name,
  type,
  field,
  doc: field === undefined ? doc : `${doc} (Meridian config: ${field})`,
  value: (b) => String(value(b)),
});

const SETTINGS: readonly BrokerSetting[] = [
  s('node.id', 'INT', 'nodeId', 'The id of this broker.', (b) => b.config.nodeId),
  s('broker.id', 'INT', 'nodeId', 'The id of this broker.', (b) => b.config.nodeId),
  s('log.dirs', 'LIST', 'dataDir', 'The directory holding the partition logs.', (b) => logDirOf(b.config)),
  s('listeners', 'LIST', 'kafka.listeners, or kafka.host and kafka.port', 'The Kafka listeners.', listenersOf),
  s('advertised.listeners', 'LIST', 'kafka.listeners, or kafka.advertisedHost and kafka.advertisedPort', 'The addresses clients are told to connect to, per listener.', advertisedListenersOf),
  s('log.segment.bytes', 'INT', 'log.segmentBytes', 'Roll to a new segment when the active one reaches this size.', (b) => b.config.log.segmentBytes),
  s('log.roll.ms', 'LONG', 'log.segmentMs', 'Roll to a new segment when the active one is this old, even if not full.', (b) => b.config.log.segmentMs),
  s('log.retention.ms', 'LONG', 'log.retention.ms', 'Delete segments whose newest record is older than this; -1: unlimited.', (b) => b.config.log.retention.ms),
  s('log.retention.bytes', 'LONG', 'log.retention.bytes', 'Keep at most this many bytes per partition; -1: unlimited.', (b) => b.config.log.retention.bytes),
  s('log.retention.check.interval.ms', 'LONG', 'log.retention.checkIntervalMs', 'How often retention and the age roll run.', (b) => b.config.log.retention.checkIntervalMs),
  s('log.index.interval.bytes', 'INT', 'log.indexIntervalBytes', 'Bytes of batches between two offset-index entries.', (b) => b.config.log.indexIntervalBytes),
  s('message.max.bytes', 'INT', 'log.maxBatchBytes', 'Largest record batch accepted from a producer.', (b) => b.config.log.maxBatchBytes),
  s('log.flush.interval.messages', 'LONG', 'log.flush.mode', 'fsync mode makes every acknowledged write durable first (1); interval mode fsyncs on the timer only.', (b) =>
    b.config.log.flush.mode === 'fsync' ? 1 : LONG_MAX,
  ),
  s('log.flush.interval.ms', 'LONG', 'log.flush.intervalMs', 'Dirty data is fsynced at least this often.', (b) => b.config.log.flush.intervalMs),
  s('log.cleanup.policy', 'LIST', undefined, 'Old segments are deleted; log compaction is not supported.', () => 'delete'),
  s('log.message.timestamp.type', 'STRING', undefined, 'Records keep the producer\'s timestamps unless a topic sets message.timestamp.type=LogAppendTime.', () => 'CreateTime'),
  s('compression.type', 'STRING', undefined, 'Batches are stored as the producer compressed them.', () => 'producer'),
  s('num.partitions', 'INT', 'topics.defaultPartitions', 'Partitions of an auto-created topic.', (b) => b.config.topics.defaultPartitions),
  s('auto.create.topics.enable', 'BOOLEAN', 'topics.autoCreate', 'Create a topic when a client produces to or asks for one that does not exist.', (b) => b.config.topics.autoCreate),
  s('default.replication.factor', 'INT', undefined, 'One replica per partition within a region; other regions get data by geo-replication.', () => 1),
  s('min.insync.replicas', 'INT', undefined, 'One replica per partition within a region.', () => 1),
  s('socket.request.max.bytes', 'INT', 'kafka.maxFrameBytes', 'Largest request frame accepted.', (b) => b.config.kafka.maxFrameBytes),
  s('queued.max.request.bytes', 'LONG', 'kafka.queuedMaxRequestBytes', 'Request bytes received or queued at once, across connections.', (b) => b.config.kafka.queuedMaxRequestBytes),
  s('connections.max.idle.ms', 'LONG', 'kafka.connectionsMaxIdleMs', 'Idle connections are closed after this long.', (b) => b.config.kafka.connectionsMaxIdleMs),
  s('max.connections', 'INT', 'kafka.maxConnections', 'Connections open at once.', (b) => b.config.kafka.maxConnections),
  s('max.connections.per.ip', 'INT', 'kafka.maxConnectionsPerIp', 'Connections open at once from one address.', (b) => b.config.kafka.maxConnectionsPerIp),
  s('max.connection.creation.rate', 'INT', 'kafka.maxConnectionCreationRate', 'New connections accepted per second.', (b) => b.config.kafka.maxConnectionCreationRate),
  s('group.initial.rebalance.delay.ms', 'INT', 'groups.initialRebalanceDelayMs', 'How long the first rebalance of an empty group waits for more members.', (b) => b.config.groups.initialRebalanceDelayMs),
  s('group.min.session.timeout.ms', 'INT', 'groups.minSessionTimeoutMs', 'Smallest session timeout a member may ask for.', (b) => b.config.groups.minSessionTimeoutMs),
  s('group.max.session.timeout.ms', 'INT', 'groups.maxSessionTimeoutMs', 'Largest session timeout a member may ask for.', (b) => b.config.groups.maxSessionTimeoutMs),
  s('remote.log.storage.system.enable', 'BOOLEAN', 'tiered.enabled', 'Tiered storage: when on, topics are tiered unless they set remote.storage.enable=false.', (b) => b.config.tiered.enabled),
  s('log.local.retention.ms', 'LONG', 'tiered.localRetention.ms', 'Delete offloaded local segments older than this; -1: keep them.', (b) => b.config.tiered.localRetention.ms),
  s('log.local.retention.bytes', 'LONG', 'tiered.localRetention.bytes', 'Delete offloaded local segments while a partition holds more than this locally; -1: keep them.', (b) => b.config.tiered.localRetention.bytes),
];

const BY_NAME: ReadonlyMap<string, BrokerSetting> = new Map(SETTINGS.map((x) => [x.name, x]));

/** Meridian's defaults, to tell DEFAULT_CONFIG from STATIC_BROKER_CONFIG. */
const DEFAULTS = defaultConfig();

function sourceOf(setting: BrokerSetting, b: BrokerView, value: string): ConfigSource {
  if (setting.field === undefined) return ConfigSource.Default;
  return setting.value({ ...b, config: DEFAULTS }) === value ? ConfigSource.Default : ConfigSource.StaticBroker;
}

export function describeBrokerSetting(name: string, b: BrokerView): ConfigEntry {
  const setting = BY_NAME.get(name);
  if (setting === undefined) throw new Error(`no broker setting ${name}`);
  const value = setting.value(b);
  const source = sourceOf(setting, b, value);
  return { name, value, source, readOnly: true, type: setting.type, documentation: setting.doc, synonyms: [{ name, value, source }] };
}

/** Every broker setting, as DescribeConfigs of this broker reports them. */
export function describeBroker(b: BrokerView): ConfigEntry[] {
  return SETTINGS.map((x) => describeBrokerSetting(x.name, b));
}
