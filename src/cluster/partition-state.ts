/**
 * The values a region cluster keeps in etcd, shared by every layer of src/cluster (the etcd
 * layer writes them, the replica manager and the broker read them), and their checks.
 *
 * A value is JSON. Every read goes through a `parse*` function here, so a value another
 * version (or a hand edit) left in etcd that does not have the expected shape is a
 * CORRUPT_METADATA error naming the key, never an `undefined` deep inside the broker.
 */
import { ErrorCode, MeridianError } from '../errors.js';

/** Broker id meaning "no leader": the partition is offline (Kafka's -1). */
export const NO_LEADER = -1;

/**
 * One partition's replication state, Kafka's (KRaft PartitionRecord / ZooKeeper-era
 * LeaderAndIsr): who holds a copy, who leads, and who is in sync.
 */
export interface PartitionState {
  /** Broker ids holding a copy, in preference order: the first is the preferred leader. */
  readonly replicas: readonly number[];
  /** The leading broker, or NO_LEADER (-1) when the partition is offline. */
  readonly leader: number;
  /** Bumped at each leader change (Kafka's leader epoch, stamped on every batch). */
  readonly leaderEpoch: number;
  /** In-sync replicas, the leader included (when there is one). */
  readonly isr: readonly number[];
  /** Bumped at every change of this state (Kafka's partition epoch): leader or ISR. */
  readonly partitionEpoch: number;
  /**
   * The last region-wide tail truncation of the partition (partition-truncate.ts): carried
   * by every later write of the state; absent when there never was one.
   */
  readonly truncation?: PartitionTruncation;
}

/**
 * A tail truncation carried by the state (partition-truncate.ts): from leader epoch `epoch`
 * on, no replica keeps a record of an older epoch at or past `offset`. The leader of
 * `epoch` (or a later one) cuts its own log before it leads; followers cut through
 * OffsetForLeaderEpoch; the leader sets `status` once every in-sync replica fetched in its
 * epoch (`done`) or when its log cannot be cut there (`refused`, with `reason`).
 */
export interface PartitionTruncation {
  readonly id: string;
  /** The offset, as a decimal string (64-bit). */
  readonly offset: string;
  readonly epoch: number;
  readonly status: 'pending' | 'done' | 'refused';
  readonly reason?: string;
}

/** A broker's registration, the value of `brokers/<nodeId>` (on the broker's lease). */
export interface BrokerInfo {
  readonly nodeId: number;
  /** Where clients (and follower fetchers) reach its Kafka listener: its first listener's advertised address. */
  readonly kafka: HostPort;
  /**
   * Every listener's advertised address by listener name (kafka.listeners[].name): Metadata
   * answers a client with the brokers' addresses on the listener it came in on, as Kafka
   * does, so a SASL_SSL client is never sent to a PLAINTEXT port. Absent in registrations of
   * brokers from before this field: `kafka` then serves every listener.
   */
  readonly listeners?: Readonly<Record<string, HostPort>>;
  /** Its admin API, when it serves one. */
  readonly admin: HostPort | null;
  /** Rack (Kafka broker.rack), for replica placement; null: none. */
  readonly rack: string | null;
  /** When this registration was made (ms since the epoch): a restart gives a new one. */
  readonly startedAt: number;
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** A topic, the value of `topics/<name>`. */
export interface TopicRecord {
  /** Kafka's topic id (a UUID as 32 hex digits or the canonical dashed form). */
  readonly topicId: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  /** Topic-level configs (Kafka names, string values), as CreateTopics gave them. */
  readonly configs: Readonly<Record<string, string>>;
}

/** A value read from etcd with the revisions a compare-and-swap needs. */
export interface Versioned<T> {
  readonly value: T;
  /** Revision of the last write to the key: the CAS token. */
  readonly modRevision: bigint;
  /** Revision at which the key was created. */
  readonly createRevision: bigint;
}

// ---------------------------------------------------------------------------------------
// Checks

function corrupt(key: string, detail: string, cause?: unknown): MeridianError {
  return new MeridianError(
    ErrorCode.CorruptMetadata,
    `etcd key ${key} holds a value Meridian cannot use: ${detail}. Fix or delete the key (etcdctl get/put ${key}), or check that every broker of the region runs the same Meridian version.`,
    cause === undefined ? {} : { cause },
  );
}

function json(key: string, raw: Buffer | string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (err) {
    throw corrupt(key, 'not JSON', err);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw corrupt(key, 'not a JSON object');
  return v as Record<string, unknown>;
}

function int(key: string, o: Record<string, unknown>, field: string, min: number): number {
  const v = o[field];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw corrupt(key, `${field} is ${JSON.stringify(v)}, expected an integer >= ${min}`);
  return v;
}

function ids(key: string, o: Record<string, unknown>, field: string): number[] {
  const v = o[field];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
    throw corrupt(key, `${field} is ${JSON.stringify(v)}, expected a list of broker ids`);
  }
  if (new Set(v).size !== v.length) throw corrupt(key, `${field} ${JSON.stringify(v)} names a broker twice`);
  return v as number[];
}

function hostPort(key: string, v: unknown, field: string): HostPort {
  const o = v as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || typeof o.host !== 'string' || o.host === '' || typeof o.port !== 'number' || !Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
    throw corrupt(key, `${field} is ${JSON.stringify(v)}, expected { host, port }`);
  }
  return { host: o.host, port: o.port };
}

export function parsePartitionState(key: string, raw: Buffer | string): PartitionState {
  const o = json(key, raw);
  const replicas = ids(key, o, 'replicas');
  const isr = ids(key, o, 'isr');
  const leader = int(key, o, 'leader', NO_LEADER);
  const state: PartitionState = {
    replicas,
    leader,
    leaderEpoch: int(key, o, 'leaderEpoch', 0),
    isr,
    partitionEpoch: int(key, o, 'partitionEpoch', 0),
    ...(o.truncation === undefined ? {} : { truncation: truncationOf(key, o.truncation) }),
  };
  if (replicas.length === 0) throw corrupt(key, 'replicas is empty');
  if (!isr.every((id) => replicas.includes(id))) throw corrupt(key, `isr ${JSON.stringify(isr)} is not a subset of replicas ${JSON.stringify(replicas)}`);
  if (leader !== NO_LEADER && !replicas.includes(leader)) throw corrupt(key, `leader ${leader} is not one of replicas ${JSON.stringify(replicas)}`);
  return state;
}

function truncationOf(key: string, v: unknown): PartitionTruncation {
  const o = v as Record<string, unknown> | null;
  const ok =
    typeof o === 'object' &&
    o !== null &&
    typeof o.id === 'string' &&
    typeof o.offset === 'string' &&
    /^\d+$/.test(o.offset) &&
    typeof o.epoch === 'number' &&
    Number.isSafeInteger(o.epoch) &&
    (o.status === 'pending' || o.status === 'done' || o.status === 'refused') &&
    (o.reason === undefined || typeof o.reason === 'string');
  if (!ok) throw corrupt(key, `truncation is ${JSON.stringify(v)}, expected { id, offset, epoch, status, reason? }`);
  return { id: o.id as string, offset: o.offset as string, epoch: o.epoch as number, status: o.status as PartitionTruncation['status'], ...(o.reason === undefined ? {} : { reason: o.reason as string }) };
}

export function parseBrokerInfo(key: string, raw: Buffer | string): BrokerInfo {
  const o = json(key, raw);
  const rack = o.rack ?? null;
  if (rack !== null && typeof rack !== 'string') throw corrupt(key, `rack is ${JSON.stringify(rack)}, expected a string or null`);
  return {
    nodeId: int(key, o, 'nodeId', 0),
    kafka: hostPort(key, o.kafka, 'kafka'),
    ...(o.listeners === undefined ? {} : { listeners: listenersOf(key, o.listeners) }),
    admin: o.admin === null || o.admin === undefined ? null : hostPort(key, o.admin, 'admin'),
    rack,
    startedAt: int(key, o, 'startedAt', 0),
  };
}

function listenersOf(key: string, v: unknown): Record<string, HostPort> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw corrupt(key, `listeners is ${JSON.stringify(v)}, expected { name: { host, port } }`);
  const out: Record<string, HostPort> = {};
  for (const [name, hp] of Object.entries(v)) out[name] = hostPort(key, hp, `listeners.${name}`);
  return out;
}

export function parseTopicRecord(key: string, raw: Buffer | string): TopicRecord {
  const o = json(key, raw);
  if (typeof o.topicId !== 'string' || o.topicId === '') throw corrupt(key, `topicId is ${JSON.stringify(o.topicId)}, expected a string`);
  const configs = o.configs ?? {};
  if (typeof configs !== 'object' || configs === null || Array.isArray(configs) || !Object.values(configs).every((v) => typeof v === 'string')) {
    throw corrupt(key, 'configs is not a mapping of strings');
  }
  return {
    topicId: o.topicId,
    partitions: int(key, o, 'partitions', 1),
    replicationFactor: int(key, o, 'replicationFactor', 1),
    configs: configs as Record<string, string>,
  };
}

/** Two states are the same (the value a retried write may already have left). */
export function samePartitionState(a: PartitionState, b: PartitionState): boolean {
  return (
    a.leader === b.leader &&
    a.leaderEpoch === b.leaderEpoch &&
    a.partitionEpoch === b.partitionEpoch &&
    a.replicas.length === b.replicas.length &&
    a.replicas.every((r, i) => b.replicas[i] === r) &&
    a.isr.length === b.isr.length &&
    a.isr.every((r, i) => b.isr[i] === r)
  );
}
