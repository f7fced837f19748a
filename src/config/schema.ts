/**
 * The one schema of a broker config file. Every file under `config/`, every `MERIDIAN_*`
 * variable and every programmatic override is checked against it, and its `default`s are
 * the embedded defaults, so there is a single place that says what a field means.
 *
 * Two keywords are Meridian's own (registered by load-config.ts):
 * - `unit: 'size' | 'duration'`: the field also accepts a string with a unit ("128MiB",
 *   "7d"); validation rewrites it to a number of bytes or milliseconds before `minimum` and
 *   `maximum` run, so limits are stated once, in bytes or ms.
 * - `expected`: a human phrase for error messages where the generic one would be cryptic
 *   (a regex, a `not`).
 * - `requiredWhen`: the field must not be null while other fields have given values (the
 *   bucket of an s3 store). Checked on the merged config, since a file may set the store's
 *   type and the environment its bucket.
 */

import type { UnitKind } from '../units.js';
import type { ListenerConfig } from './listeners.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export const FLUSH_MODES = ['fsync', 'interval'] as const;
export type FlushMode = (typeof FLUSH_MODES)[number];

/** Fully resolved: every default applied, sizes in bytes, durations in milliseconds. */
export interface BrokerConfig {
  readonly region: string;
  readonly nodeId: number;
  readonly dataDir: string;
  readonly logging: LoggingConfig;
  readonly metrics: MetricsConfig;
  readonly kafka: KafkaListenerConfig;
  readonly log: LogConfig;
  readonly topics: TopicsConfig;
  readonly groups: GroupsConfig;
  readonly tiered: TieredConfig;
  readonly replication: ReplicationConfig;
  readonly admin: AdminConfig;
  readonly security: SecurityConfig;
  readonly cluster: ClusterConfig;
}

/** Several brokers per region with metadata in etcd (src/cluster/README.md). */
export interface ClusterConfig {
  readonly etcd: {
    /** host:port (or http(s)://host:port) of each etcd member; empty: not clustered (one broker, metadata in files). */
    readonly endpoints: readonly string[];
    readonly tls: { readonly caFile: string | null; readonly certFile: string | null; readonly keyFile: string | null };
    readonly username: string | null;
    /** Never logged; prefer MERIDIAN_CLUSTER__ETCD__PASSWORD. */
    readonly password: string | null;
    /** Key prefix; the region's keys are under `<prefix>/<region>/`. */
    readonly prefix: string;
  };
  readonly leaseTtlMs: number;
  /** Leaders go on leading while etcd answers neither them nor any in-sync peer (cluster/README.md). */
  readonly rideThroughEtcdOutage: boolean;
  readonly replicaLagTimeMaxMs: number;
  /** null: min(3, live brokers). */
  readonly defaultReplicationFactor: number | null;
  readonly defaultMinInsyncReplicas: number;
  readonly uncleanLeaderElection: boolean;
  /** Partitions of the internal topic __meridian_offsets (consumer groups on a cluster). */
  readonly offsetsTopicPartitions: number;
  /** Bytes of an __meridian_offsets partition's log past which its leader compacts it (a checkpoint). */
  readonly offsetsCompactionBytes: number;
}

export const SASL_MECHANISMS = ['SCRAM-SHA-256', 'SCRAM-SHA-512', 'PLAIN'] as const;
export type SaslMechanismName = (typeof SASL_MECHANISMS)[number];

/** Authentication, authorization and quotas (src/security/README.md). */
export interface SecurityConfig {
  readonly sasl: {
    /** Offered on SASL listeners, in this order. PLAIN checks the password against the SCRAM credentials. */
    readonly mechanisms: readonly SaslMechanismName[];
    /** Session lifetime told to clients (KIP-368, Kafka connections.max.reauth.ms); 0: sessions do not expire. */
    readonly reauthMs: number;
    /** First delay before a failed authentication is answered, doubled per recent failure from the address. */
    readonly failureDelayMs: number;
    readonly maxFailureDelayMs: number;
  };
  /** A credential created at start when its user has none (both SCRAM mechanisms). Never logged. */
  readonly bootstrap: { readonly user: string | null; readonly password: string | null };
  readonly authorization: {
    readonly enabled: boolean;
    /** Principals allowed everything ("User:admin"). */
    readonly superUsers: readonly string[];
    readonly allowEveryoneIfNoAclFound: boolean;
  };
  /** Defaults for every principal; per-principal values are set at runtime (admin API, CLI). null: no quota. */
  readonly quotas: {
    readonly producerByteRate: number | null;
    readonly consumerByteRate: number | null;
    readonly requestRate: number | null;
  };
}

/** How this region's replication links reach remote regions: TLS and SASL (per region where the registry says). */
export interface LinkSecurityConfig {
  readonly tls: {
    readonly enabled: boolean;
    /** PEM CAs the remote's certificate is verified against; null: the system's. */
    readonly caFile: string | null;
    /** A client certificate and key for mutual TLS; null: none. */
    readonly certFile: string | null;
    readonly keyFile: string | null;
    /** The name checked against the remote's certificate; null: the host of its address. */
    readonly serverName: string | null;
  };
  readonly sasl: {
    /** null: no SASL. */
    readonly mechanism: SaslMechanismName | null;
    readonly username: string | null;
    /** Never logged; prefer MERIDIAN_REPLICATION__SASL__PASSWORD. */
    readonly password: string | null;
  };
}

/** The admin HTTP API (src/admin/README.md). */
export interface AdminConfig {
  readonly host: string;
  /** null: no admin server; 0 picks a free port (tests). */
  readonly port: number | null;
  /** Bearer token for the API; null: no token, which the broker allows on a loopback host only. Never logged. */
  readonly token: string | null;
  /** Read-only calls without the token (mutating calls still need it). */
  readonly openReads: boolean;
  /** Serve HTTPS with this certificate and key (PEM); both null: plain HTTP. */
  readonly tls: { readonly certFile: string | null; readonly keyFile: string | null };
}

export interface ReplicationConfig {
  /**
   * The registry: each region's name, the host:port its Kafka listener is reached at, and
   * optionally the host:port of its admin API (for the CLI and the policy check).
   */
  readonly regions: ReadonlyArray<{
    readonly name: string;
    /** host:port, or several (comma-separated or a list) for a region cluster's bootstrap brokers. */
    readonly address: string | readonly string[];
    readonly admin?: string;
    /** This region's link to that region: fields over replication.tls / replication.sasl. */
    readonly tls?: Partial<LinkSecurityConfig['tls']>;
    readonly sasl?: Partial<LinkSecurityConfig['sasl']>;
    /** The principal that region authenticates as here; requests claiming it from others are refused. */
    readonly principal?: string;
  }>;
  /** Raw policies, validated by replication/policy.ts (at load time too). */
  readonly policies: readonly unknown[];
  readonly maxInFlightBytes: number;
  readonly maxRequestBytes: number;
  /** Batch bytes of one request carrying several partitions' appends (ReplicatedAppend v1). */
  readonly maxLinkRequestBytes: number;
  readonly pipelineDepth: number;
  readonly concurrency: number;
  readonly requestTimeoutMs: number;
  readonly retry: { readonly initialMs: number; readonly maxMs: number };
  /** TLS and SASL of this region's links (each region of the registry may override them). */
  readonly tls: LinkSecurityConfig['tls'];
  readonly sasl: LinkSecurityConfig['sasl'];
}

export interface LoggingConfig {
  readonly level: LogLevel;
  readonly format: LogFormat;
}

/** Prometheus metrics on the admin API (src/admin/METRICS.md). */
export interface MetricsConfig {
  /** Series per partition as well as per topic (bytes per tier, high watermark). */
  readonly perPartition: boolean;
  /** Sample period of the event-loop delay histogram behind GET /v1/runtime. */
  readonly eventLoopResolutionMs: number;
}

export interface KafkaListenerConfig {
  readonly host: string;
  readonly port: number;
  /** null: advertise `host`. */
  readonly advertisedHost: string | null;
  /** null: advertise `port`. */
  readonly advertisedPort: number | null;
  readonly maxFrameBytes: number;
  /** Broker-wide budget of request bytes being received or queued (Kafka queued.max.request.bytes). */
  readonly queuedMaxRequestBytes: number;
  readonly connectionsMaxIdleMs: number;
  readonly requestReceiveTimeoutMs: number;
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  /** New connections accepted per second, across clients. */
  readonly maxConnectionCreationRate: number;
  /** Incremental fetch sessions kept at once (Kafka max.incremental.fetch.session.cache.slots); 0: none. */
  readonly fetchSessionCacheSlots: number;
  /** A fetch session idle this long may lose its slot to a new one (min.incremental.fetch.session.eviction.ms). */
  readonly fetchSessionEvictionMs: number;
  /**
   * The listeners, checked and completed (listeners.ts). Empty: one PLAINTEXT listener on
   * host and port; `effectiveListeners()` gives the list the broker serves either way.
   */
  readonly listeners: readonly ListenerConfig[];
}

export interface LogConfig {
  readonly segmentBytes: number;
  readonly segmentMs: number;
  readonly indexIntervalBytes: number;
  readonly maxBatchBytes: number;
  readonly maxUncompressedBatchBytes: number;
  /** Segment file descriptors open at once across all partitions (storage/fd-cache.ts). */
  readonly maxOpenFiles: number | null;
  /** Memory for the newest bytes of active segments, across all partitions (storage/tail-cache.ts). */
  readonly tailCacheBytes: number;
  readonly flush: {
    readonly mode: FlushMode;
    readonly intervalMs: number;
    /** fsync mode: small writes of many partitions made durable together (storage/journal.ts). */
    readonly journal: boolean;
    /** The journal takes a partition's writes only while this many partitions write at once. */
    readonly journalMinPartitions: number;
  };
  readonly retention: {
    /** -1: unlimited. */
    readonly bytes: number;
    /** -1: unlimited. */
    readonly ms: number;
    readonly checkIntervalMs: number;
  };
}

export interface TopicsConfig {
  readonly autoCreate: boolean;
  readonly defaultPartitions: number;
}

export type BlobStoreType = 'fs' | 's3' | 'gcs' | 'azure';

export interface TieredConfig {
  readonly enabled: boolean;
  /** Refuse to start when the object store cannot be reached. */
  readonly required: boolean;
  readonly store: {
    readonly type: BlobStoreType;
    readonly dir: string;
    readonly bucket: string | null;
    readonly prefix: string;
    readonly endpoint: string | null;
    readonly region: string;
    readonly forcePathStyle: boolean;
    readonly accessKeyId: string | null;
    readonly secretAccessKey: string | null;
    readonly projectId: string | null;
    readonly keyFilename: string | null;
    readonly connectionString: string | null;
    readonly accountName: string | null;
    readonly accountKey: string | null;
  };
  readonly offload: { readonly onSeal: boolean; readonly localBytesThreshold: number; readonly minAgeMs: number; readonly maxBytesPerSec: number };
  readonly localRetention: { readonly bytes: number; readonly ms: number };
  readonly deletionLagMs: number;
  readonly uploadConcurrency: number;
  readonly checkIntervalMs: number;
  readonly cache: { readonly bytes: number; readonly blockBytes: number; readonly readConcurrency: number };
}

export interface GroupsConfig {
  readonly initialRebalanceDelayMs: number;
  readonly minSessionTimeoutMs: number;
  readonly maxSessionTimeoutMs: number;
}

/** What a file, the environment or an override may say: sizes and durations may carry units. */
export type SizeInput = number | string;
export type DurationInput = number | string;

export interface RawBrokerConfig {
  region: string;
  nodeId: number;
  dataDir: string;
  logging: { level: LogLevel; format: LogFormat };
  metrics: { perPartition: boolean; eventLoopResolutionMs: DurationInput };
  kafka: {
    host: string;
    port: number;
    advertisedHost: string | null;
    advertisedPort: number | null;
    maxFrameBytes: SizeInput;
    queuedMaxRequestBytes: SizeInput;
    connectionsMaxIdleMs: DurationInput;
    requestReceiveTimeoutMs: DurationInput;
    maxConnections: number;
    maxConnectionsPerIp: number;
    maxConnectionCreationRate: number;
    fetchSessionCacheSlots: number;
    fetchSessionEvictionMs: DurationInput;
    listeners: unknown[];
  };
  log: {
    segmentBytes: SizeInput;
    segmentMs: DurationInput;
    indexIntervalBytes: SizeInput;
    maxBatchBytes: SizeInput;
    maxUncompressedBatchBytes: SizeInput;
    maxOpenFiles: number | null;
    tailCacheBytes: SizeInput;
    flush: { mode: FlushMode; intervalMs: DurationInput; journal: boolean; journalMinPartitions: number };
    retention: { bytes: SizeInput; ms: DurationInput; checkIntervalMs: DurationInput };
  };
  topics: { autoCreate: boolean; defaultPartitions: number };
  groups: { initialRebalanceDelayMs: DurationInput; minSessionTimeoutMs: DurationInput; maxSessionTimeoutMs: DurationInput };
  tiered: {
    enabled: boolean;
    required: boolean;
    store: {
      type: BlobStoreType;
      dir: string;
      bucket: string | null;
      prefix: string;
      endpoint: string | null;
      region: string;
      forcePathStyle: boolean;
      accessKeyId: string | null;
      secretAccessKey: string | null;
      projectId: string | null;
      keyFilename: string | null;
      connectionString: string | null;
      accountName: string | null;
      accountKey: string | null;
    };
    offload: { onSeal: boolean; localBytesThreshold: SizeInput; minAgeMs: DurationInput; maxBytesPerSec: SizeInput };
    localRetention: { bytes: SizeInput; ms: DurationInput };
    deletionLagMs: DurationInput;
    uploadConcurrency: number;
    checkIntervalMs: DurationInput;
    cache: { bytes: SizeInput; blockBytes: SizeInput; readConcurrency: number };
  };
  replication: {
    regions: Array<{ name: string; address: string | string[]; admin?: string; tls?: Partial<LinkSecurityConfig['tls']>; sasl?: Partial<LinkSecurityConfig['sasl']>; principal?: string }>;
    policies: unknown[];
    maxInFlightBytes: SizeInput;
    maxRequestBytes: SizeInput;
    maxLinkRequestBytes: SizeInput;
    pipelineDepth: number;
    concurrency: number;
    requestTimeoutMs: DurationInput;
    retry: { initialMs: DurationInput; maxMs: DurationInput };
    tls: { enabled: boolean; caFile: string | null; certFile: string | null; keyFile: string | null; serverName: string | null };
    sasl: { mechanism: SaslMechanismName | null; username: string | null; password: string | null };
  };
  admin: { host: string; port: number | null; token: string | null; openReads: boolean; tls: { certFile: string | null; keyFile: string | null } };
  security: {
    sasl: { mechanisms: SaslMechanismName[]; reauthMs: DurationInput; failureDelayMs: DurationInput; maxFailureDelayMs: DurationInput };
    bootstrap: { user: string | null; password: string | null };
    authorization: { enabled: boolean; superUsers: string[]; allowEveryoneIfNoAclFound: boolean };
    quotas: { producerByteRate: SizeInput | null; consumerByteRate: SizeInput | null; requestRate: number | null };
  };
  cluster: {
    etcd: {
      endpoints: string[];
      tls: { caFile: string | null; certFile: string | null; keyFile: string | null };
      username: string | null;
      password: string | null;
      prefix: string;
    };
    leaseTtlMs: DurationInput;
    rideThroughEtcdOutage: boolean;
    replicaLagTimeMaxMs: DurationInput;
    defaultReplicationFactor: number | null;
    defaultMinInsyncReplicas: number;
    uncleanLeaderElection: boolean;
    offsetsTopicPartitions: number;
    offsetsCompactionBytes: SizeInput;
  };
}

export type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends Record<string, unknown> ? DeepPartial<T[K]> : T[K];
};

export type BrokerConfigInput = DeepPartial<RawBrokerConfig>;

// ---------------------------------------------------------------------------------------
// Schema

type JsonType = 'string' | 'integer' | 'boolean' | 'null' | 'object' | 'array';

export interface LeafSchema {
  readonly description: string;
  readonly default: unknown;
  readonly type: JsonType | readonly JsonType[];
  readonly unit?: UnitKind;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly pattern?: string;
  readonly enum?: readonly unknown[];
  readonly not?: { readonly enum: readonly unknown[] };
  readonly expected?: string;
  /** For `type: 'array'`: the JSON schema of each item (deeper checks are the owner's). */
  readonly items?: Record<string, unknown>;
  readonly requiredWhen?: RequiredWhen;
}

/**
 * A nullable field that must be set while every field in `when` (dotted path) has one of
 * its listed values, unless the field `unlessSet` is set instead.
 */
export interface RequiredWhen {
  readonly when: Readonly<Record<string, readonly unknown[]>>;
  readonly unlessSet?: string;
  /** What the field should hold, for the error message. */
  readonly expected: string;
}

export interface ObjectSchema {
  readonly description: string;
  readonly type: 'object';
  readonly additionalProperties: false;
  readonly properties: Readonly<Record<string, FieldSchema>>;
}

export type FieldSchema = LeafSchema | ObjectSchema;

export function isObjectSchema(node: FieldSchema): node is ObjectSchema {
  return node.type === 'object';
}

function section(description: string, properties: Record<string, FieldSchema>): ObjectSchema {
  return { description, type: 'object', additionalProperties: false, properties };
}

// Timers in Node overflow above 2^31-1 ms (about 24.8 days) and fire immediately, so any
// duration that ends up in setTimeout/setInterval is capped there.
const MAX_TIMER_MS = 2 ** 31 - 1;

function size(description: string, def: string | number, limits: { minimum?: number; maximum?: number; unlimited?: boolean } = {}): LeafSchema {
  return {
    description,
    default: def,
    type: ['integer', 'string'],
    unit: 'size',
    minimum: limits.unlimited ? -1 : limits.minimum ?? 0,
    maximum: limits.maximum ?? Number.MAX_SAFE_INTEGER,
  };
}

function duration(
  description: string,
  def: string | number,
  limits: { minimum?: number; maximum?: number; unlimited?: boolean } = {},
): LeafSchema {
  return {
    description,
    default: def,
    type: ['integer', 'string'],
    unit: 'duration',
    minimum: limits.unlimited ? -1 : limits.minimum ?? 0,
    maximum: limits.maximum ?? Number.MAX_SAFE_INTEGER,
  };
}

const WILDCARD_HOSTS = ['0.0.0.0', '::', '[::]', '0:0:0:0:0:0:0:0'] as const;

/** Addresses that mean "every interface": fine to listen on, useless to hand to a client. */
export function isWildcardHost(host: string): boolean {
  return (WILDCARD_HOSTS as readonly string[]).includes(host);
}

export const brokerConfigSchema: ObjectSchema = section('A Meridian broker: one region, one node.', {
  region: {
    description:
      'Name of the region this broker serves. It tags every record this region originates, so it must be stable and unique across the mesh.',
    default: 'us-east',
    type: 'string',
    pattern: '^[a-z0-9][a-z0-9-]{0,62}$',
    expected: 'a region name of lowercase letters, digits and dashes, starting with a letter or digit, at most 63 characters (e.g. eu-west)',
  },
  nodeId: {
    description: 'Kafka broker id of this node, as clients see it in Metadata responses (an int32 on the wire).',
    default: 1,
    type: 'integer',
    minimum: 0,
    maximum: 2 ** 31 - 1,
  },
  dataDir: {
    description: 'Directory holding this broker\'s logs and metadata. Relative paths resolve against the working directory.',
    default: './meridian-data/us-east',
    type: 'string',
    minLength: 1,
  },
  logging: section('Structured logging (pino).', {
    level: {
      description: 'Lowest level written; "silent" writes nothing.',
      default: 'info',
      type: 'string',
      enum: LOG_LEVELS,
    },
    format: {
      description: 'Output format: "json" (one JSON object per line), "pretty" (human-readable lines), or "auto": pretty when stdout is a terminal, JSON otherwise.',
      default: 'auto',
      type: 'string',
      enum: LOG_FORMATS,
    },
  }),
  kafka: section('The Kafka protocol listeners.', {
    host: {
      description: 'Address to listen on. 0.0.0.0 or :: listen on every interface (then set advertisedHost). Not used when listeners is set.',
      default: '127.0.0.1',
      type: 'string',
      minLength: 1,
    },
    port: {
      description: 'TCP port to listen on; 0 picks a free port (tests). Not used when listeners is set.',
      default: 19092,
      type: 'integer',
      minimum: 0,
      maximum: 65535,
    },
    advertisedHost: {
      description:
        'Host name clients are told to connect to (Metadata responses). null: use host. Must be reachable by clients, so never a wildcard address. Not used when listeners is set.',
      default: null,
      type: ['string', 'null'],
      minLength: 1,
      not: { enum: WILDCARD_HOSTS },
      expected:
        'a host name or address that clients can connect to, or null to use kafka.host (not a wildcard such as 0.0.0.0 or ::, which clients cannot reach)',
    },
    advertisedPort: {
      description: 'Port clients are told to connect to. null: use port. Not used when listeners is set.',
      default: null,
      type: ['integer', 'null'],
      minimum: 1,
      maximum: 65535,
    },
    maxFrameBytes: size(
      'Largest request frame accepted; a bigger one closes the connection before it is buffered, which bounds memory per connection.',
      '100MiB',
      { minimum: 1 },
    ),
    queuedMaxRequestBytes: size(
      'Bytes of requests being received or waiting to be handled, across all connections (Kafka queued.max.request.bytes), counted as they arrive and given back when the request has been handled. When it is used up the broker stops reading from sockets until requests finish; a request still arriving holds its bytes at most requestReceiveTimeoutMs. At least maxFrameBytes.',
      '128MiB',
      { minimum: 1024 * 1024 },
    ),
    connectionsMaxIdleMs: duration(
      'Close a connection that has sent nothing and has had no request being handled for this long (Kafka connections.max.idle.ms). A waiting long-poll Fetch keeps it open; a response the client does not read does not.',
      '10min',
      { minimum: 100, maximum: MAX_TIMER_MS },
    ),
    requestReceiveTimeoutMs: duration(
      'Close a connection whose request has not finished arriving this long after its first byte (slow clients pin memory). Time the broker is not reading because queuedMaxRequestBytes is used up counts, since only this timeout frees a budget held by unfinished requests.',
      '30s',
      { minimum: 100, maximum: MAX_TIMER_MS },
    ),
    maxConnections: {
      description: 'Connections open at once, across clients; more are closed as soon as they are accepted (Kafka max.connections, which makes them wait instead).',
      default: 10000,
      type: 'integer',
      minimum: 1,
      maximum: 1_000_000,
    },
    maxConnectionsPerIp: { description: 'Connections open at once from one client address; more from it are closed at once (Kafka max.connections.per.ip).', default: 1000, type: 'integer', minimum: 1, maximum: 1_000_000 },
    maxConnectionCreationRate: {
      description: 'New connections accepted per second across clients, with a burst of one second; connections over the rate are closed at once (Kafka max.connection.creation.rate).',
      default: 1000,
      type: 'integer',
      minimum: 1,
      maximum: 1_000_000,
    },
    fetchSessionCacheSlots: {
      description:
        'Incremental fetch sessions (KIP-227) kept at once, across connections (Kafka max.incremental.fetch.session.cache.slots). A session lets a consumer send only the partitions that changed and hear only about those with news; a connection holds at most one, freed when it closes. When full, a new session takes the slot of one idle at least fetchSessionEvictionMs, else of the smallest if it has more partitions, else the fetch is answered without a session. 0: no sessions (every fetch is full).',
      default: 1000,
      type: 'integer',
      minimum: 0,
      maximum: 1_000_000,
    },
    fetchSessionEvictionMs: duration(
      'A fetch session unused this long may lose its slot to a new session when the cache is full (Kafka min.incremental.fetch.session.eviction.ms). Sessions are never expired by a timer; a closed connection frees its session at once.',
      '2min',
      { minimum: 0, maximum: MAX_TIMER_MS },
    ),
    listeners: {
      description:
        'The listeners, each { name, host, port, securityProtocol (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL), advertisedHost?, advertisedPort?, tls? }, tls being { certFile, keyFile, caFile?, clientAuth? (none, requested, required), reloadIntervalMs? } for SSL and SASL_SSL. Empty: one PLAINTEXT listener named PLAINTEXT on host and port (advertisedHost, advertisedPort); with listeners set, those four must not be. Limits above are shared by all listeners. As an environment variable: JSON.',
      default: [],
      type: 'array',
      items: { type: 'object' },
    },
  }),
  log: section('The partition log on local disk.', {
    // Index entries hold 32-bit byte positions (as Kafka's do), hence the 2 GiB ceiling.
    segmentBytes: size('Roll to a new segment when the active one reaches this size.', '128MiB', { minimum: 1024, maximum: 2 ** 31 - 1 }),
    segmentMs: duration('Roll to a new segment when the active one is this old, even if not full.', '7d', { minimum: 1 }),
    indexIntervalBytes: size('Bytes of batches between two offset-index entries: smaller means faster seeks and a bigger index.', '4KiB'),
    maxBatchBytes: size('Largest record batch accepted from a producer (Kafka message.max.bytes).', '8MiB', { minimum: 1 }),
    maxUncompressedBatchBytes: size(
      'Largest size a compressed batch may decompress to while it is validated on append; a bigger one (a decompression bomb) is refused as corrupt.',
      '64MiB',
      { minimum: 1024 },
    ),
    maxOpenFiles: {
      description:
        'Segment files kept open at once across all partitions: files open on first read or write and the least recently used idle ones close above this (a file being read, or written and not yet fsynced, stays open, so the count can pass it briefly). null: 60% of the process limit (ulimit -n, read at start; at least 256, 4096 where it cannot be read). Set it well below the process limit, leaving room for connections.',
      default: null,
      type: ['integer', 'null'],
      minimum: 16,
      maximum: 1_000_000,
    },
    tailCacheBytes: size(
      'Memory for the newest bytes of each followed partition (one a consumer, replicator or follower reads at its end), across all partitions: reads at the end of the log are answered from it instead of the disk. Up to 1 MiB per partition; past the total, the least recently written partitions give theirs up. 0 turns it off.',
      '32MiB',
      { minimum: 0, maximum: 64 * 1024 * 1024 * 1024 },
    ),
    flush: section('When appended data is made durable.', {
      mode: {
        description: 'fsync: fsync before acknowledging a produce. interval: fsync every intervalMs (faster, may lose the last interval on power loss); replicators send records before their fsync, and after a power loss a partition skips the offsets a remote may hold (its ship fence, storage/ship-fence.ts) instead of reusing them.',
        default: 'fsync',
        type: 'string',
        enum: FLUSH_MODES,
      },
      intervalMs: duration('Time between fsyncs when mode is interval.', '1s', { minimum: 1, maximum: MAX_TIMER_MS }),
      journal: {
        description: 'fsync mode: a partition\'s write of up to 256 KiB is made durable in a shared journal together with other partitions\' writes (one fdatasync for all) instead of by an fdatasync of its own segment file; a restart writes the journal back into the segments before they open. Costs a second write of those bytes, whose space it gives back when the disk fills. On by default since 2026-12-06: with many partitions written at once it cut the brokers\' CPU per byte by a fifth to a third, while one busy partition keeps its own fdatasync (journalMinPartitions; storage/README.md, "the shared journal").',
        default: true,
        type: 'boolean',
      },
      journalMinPartitions: {
        description: 'With the journal: a partition\'s write goes to it only while at least this many partitions wrote within the last 10 ms (a group must hold several partitions\' writes to save fdatasyncs); below that each partition fdatasyncs its own segment. 1: every small write is journaled.',
        default: 4,
        type: 'integer',
        minimum: 1,
        maximum: 1000000,
      },
    }),
    retention: section('When old segments are deleted.', {
      bytes: size('Keep at most this many bytes per partition; -1: unlimited.', -1, { unlimited: true }),
      ms: duration('Delete segments whose newest record is older than this; -1: unlimited.', '7d', { unlimited: true }),
      checkIntervalMs: duration('How often retention is checked.', '5min', { minimum: 1, maximum: MAX_TIMER_MS }),
    }),
  }),
  topics: section('Topic creation.', {
    autoCreate: {
      description: 'Create a topic when a client produces to or fetches metadata for one that does not exist.',
      default: true,
      type: 'boolean',
    },
    defaultPartitions: {
      description: 'Partitions of an auto-created topic.',
      default: 3,
      type: 'integer',
      minimum: 1,
      maximum: 10000,
    },
  }),
  groups: section('Consumer groups (the classic protocol).', {
    initialRebalanceDelayMs: duration(
      'How long the first rebalance of an empty group waits for more members to join (Kafka group.initial.rebalance.delay.ms).',
      '3s',
      { minimum: 0, maximum: MAX_TIMER_MS },
    ),
    minSessionTimeoutMs: duration('Smallest session timeout a member may ask for (Kafka group.min.session.timeout.ms).', '6s', { minimum: 1, maximum: MAX_TIMER_MS }),
    maxSessionTimeoutMs: duration('Largest session timeout a member may ask for (Kafka group.max.session.timeout.ms).', '30min', { minimum: 1, maximum: MAX_TIMER_MS }),
  }),
  metrics: section('Prometheus metrics, served at GET /metrics on the admin API (src/admin/METRICS.md).', {
    perPartition: {
      description: 'Also export series per partition (bytes per tier, high watermark), not only per topic. Off by default: a broker with thousands of partitions would export thousands of series per metric.',
      default: false,
      type: 'boolean',
    },
    eventLoopResolutionMs: duration(
      'Sample period of the event-loop delay histogram served at GET /v1/runtime: a stall longer than it is always seen, a shorter one only when it covers a sample. One timer per process.',
      '10ms',
      { minimum: 1, maximum: 1000 },
    ),
  }),
  tiered: section('Tiered storage: sealed segments move to an object store and are read back through Fetch.', {
    enabled: { description: 'Offload sealed segments and serve offloaded history.', default: false, type: 'boolean' },
    required: {
      description: 'Refuse to start (exit status 2) when the object store cannot be reached at start-up; false: start, serve local data, and retry the store with back-off.',
      default: false,
      type: 'boolean',
    },
    store: section('The object store. Credentials left null come from the cloud SDK\'s standard chain.', {
      type: { description: 'fs (a local directory), s3 (or S3-compatible), gcs, or azure.', default: 'fs', type: 'string', enum: ['fs', 's3', 'gcs', 'azure'] },
      dir: { description: 'fs: the directory holding the objects.', default: './meridian-data/tiered', type: 'string', minLength: 1 },
      bucket: {
        ...optionalString('s3 and gcs: the bucket; azure: the container.'),
        requiredWhen: { when: { 'tiered.enabled': [true], 'tiered.store.type': ['s3', 'gcs', 'azure'] }, expected: 'the name of the bucket (s3, gcs) or container (azure)' },
      },
      prefix: { description: 'Key prefix inside the bucket or directory; the region name is appended, so regions may share a bucket.', default: '', type: 'string' },
      endpoint: optionalString('s3: a custom endpoint (MinIO, other S3-compatible stores); gcs: the API endpoint (emulators).'),
      region: { description: 's3: the AWS region.', default: 'us-east-1', type: 'string', minLength: 1 },
      forcePathStyle: { description: 's3: path-style addressing (MinIO and most S3-compatible stores).', default: false, type: 'boolean' },
      accessKeyId: optionalString('s3: access key id; null: the AWS default credential chain.'),
      secretAccessKey: optionalString('s3: secret access key (prefer MERIDIAN_TIERED__STORE__SECRET_ACCESS_KEY); never logged.'),
      projectId: optionalString('gcs: the project id.'),
      keyFilename: optionalString('gcs: a service-account key file; null: application default credentials.'),
      connectionString: {
        ...optionalString('azure: a storage connection string (never logged).'),
        requiredWhen: {
          when: { 'tiered.enabled': [true], 'tiered.store.type': ['azure'] },
          unlessSet: 'tiered.store.accountName',
          expected: 'an Azure storage connection string, or tiered.store.accountName to use the account instead',
        },
      },
      accountName: optionalString('azure: the storage account, with accountKey or the default Azure credential.'),
      accountKey: optionalString('azure: the account key (never logged).'),
    }),
    offload: section('When a sealed segment is uploaded.', {
      onSeal: { description: 'Upload every segment as soon as it is sealed.', default: true, type: 'boolean' },
      localBytesThreshold: size('Also upload the oldest sealed segments while a partition holds more than this locally; -1: off.', -1, { unlimited: true }),
      minAgeMs: duration('Also upload sealed segments older than this; -1: off.', -1, { unlimited: true }),
      maxBytesPerSec: size('Upload bandwidth shared by all uploads, bytes per second (Kafka remote.log.manager.copy.max.bytes.per.second); -1: unlimited.', -1, { unlimited: true, minimum: 1024 }),
    }),
    localRetention: section('How much offloaded data stays on local disk too.', {
      bytes: size('Delete offloaded local segments while a partition holds more than this locally; -1: keep them.', '1GiB', { unlimited: true }),
      ms: duration('Delete offloaded local segments older than this; -1: keep them.', -1, { unlimited: true }),
    }),
    deletionLagMs: duration('Wait at least this long after an upload is recorded before deleting the local copy.', '1min', { minimum: 0, maximum: MAX_TIMER_MS }),
    uploadConcurrency: { description: 'Segment uploads in flight at once, across all partitions.', default: 4, type: 'integer', minimum: 1, maximum: 64 },
    checkIntervalMs: duration('How often offload and local-deletion rules are evaluated.', '10s', { minimum: 10, maximum: MAX_TIMER_MS }),
    cache: section('The read cache for offloaded segments.', {
      bytes: size('Memory for cached blocks of remote segments.', '64MiB', { minimum: 1024 * 1024 }),
      blockBytes: size('Size of one cached block (one ranged GET).', '1MiB', { minimum: 4096, maximum: 64 * 1024 * 1024 }),
      readConcurrency: { description: 'Ranged GETs in flight at once.', default: 8, type: 'integer', minimum: 1, maximum: 256 },
    }),
  }),
  replication: section('Geo-replication: this region forwards topics to other regions (the receiving side is always on).', {
    regions: {
      description:
        'The region registry: a list of { name, address, admin?, tls?, sasl?, principal? }, address being host:port of that region\'s Kafka listener (a region cluster: several of its brokers, comma-separated or as a list, used as bootstrap addresses; the link then follows each partition\'s leader there) and admin (optional) host:port of its admin API, this region included (a registry without it is refused); tls and sasl override replication.tls and replication.sasl field by field for the link to that region; principal (e.g. User:eu-west-link) is the only principal allowed to send as that region. As an environment variable: JSON.',
      default: [],
      type: 'array',
      items: { type: 'object' },
    },
    policies: {
      description:
        'Replication policies, first match wins: a list of { name?, topics, topology, ... } where topology is mesh (regions), one-way or fan-out (source, targets), aggregation (sources, target) or relay (hub and regions, or path), with optional backlogQuota and rateLimit (sizes, -1: none). As an environment variable: JSON.',
      default: [],
      type: 'array',
      items: { type: 'object' },
    },
    maxInFlightBytes: size('Bytes read for and sent to one remote region but not yet acknowledged, across its partitions.', '16MiB', { minimum: 64 * 1024 }),
    maxRequestBytes: size('Batch bytes per replication request (a larger batch is still sent, alone).', '1MiB', { minimum: 1024, maximum: 64 * 1024 * 1024 }),
    maxLinkRequestBytes: size(
      'Batch bytes of one replication request carrying several partitions: appends of a link\'s partitions that wait while concurrency requests are in flight leave together, up to this (one larger append still goes, alone).',
      '4MiB',
      { minimum: 1024, maximum: 64 * 1024 * 1024 },
    ),
    pipelineDepth: {
      description: 'Replication requests in flight at once per partition and remote region (pipelining hides the link\'s round trip; the remote refuses any request that would not continue its log).',
      default: 4,
      type: 'integer',
      minimum: 1,
      maximum: 16,
    },
    concurrency: { description: 'Append requests in flight at once per remote region, across its partitions (each may carry many partitions; handshakes have their own limit of the same size).', default: 16, type: 'integer', minimum: 1, maximum: 64 },
    requestTimeoutMs: duration('A remote region that does not answer a request within this is treated as unreachable.', '30s', { minimum: 100, maximum: MAX_TIMER_MS }),
    retry: section('Backoff after a failed replication request: exponential with jitter.', {
      initialMs: duration('First delay.', '100ms', { minimum: 1, maximum: MAX_TIMER_MS }),
      maxMs: duration('Largest delay.', '10s', { minimum: 1, maximum: MAX_TIMER_MS }),
    }),
    tls: section('TLS on the links to remote regions (a region of the registry may override it with its own tls mapping).', {
      enabled: { description: 'Connect to remote regions over TLS (their listener must be SSL or SASL_SSL).', default: false, type: 'boolean' },
      caFile: optionalString('PEM CA certificates the remote region\'s certificate is verified against. null: the system\'s CAs.'),
      certFile: optionalString('PEM client certificate for mutual TLS. null: none.'),
      keyFile: optionalString('PEM private key of certFile; never logged.'),
      serverName: optionalString('The name checked against the remote\'s certificate. null: the host of the region\'s address.'),
    }),
    sasl: section('SASL credentials of this region on remote regions\' SASL listeners (a region of the registry may override them).', {
      mechanism: { description: 'SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN; null: no SASL.', default: null, type: ['string', 'null'], enum: [...SASL_MECHANISMS, null] },
      username: optionalString('The user this region authenticates as on remote regions.'),
      password: optionalString('Its password. Prefer MERIDIAN_REPLICATION__SASL__PASSWORD; never logged.'),
    }),
  }),
  admin: section('The admin HTTP API (REST, OpenAPI at /openapi.json, Prometheus /metrics, the dashboard): src/admin/README.md.', {
    host: {
      description: 'Address the admin API listens on. Without a token it must be a loopback address (127.0.0.1, ::1, localhost).',
      default: '127.0.0.1',
      type: 'string',
      minLength: 1,
    },
    port: {
      description: 'TCP port of the admin API; null: no admin API; 0 picks a free port (tests).',
      default: null,
      type: ['integer', 'null'],
      minimum: 0,
      maximum: 65535,
    },
    token: optionalString(
      'Bearer token the admin API requires (Authorization: Bearer <token>) on mutating calls, and on reads unless openReads. null: no token, allowed only on a loopback host. Prefer MERIDIAN_ADMIN__TOKEN; never logged.',
    ),
    openReads: { description: 'With a token set: allow read-only calls (GET) without it; mutating calls still need it.', default: false, type: 'boolean' },
    tls: section('HTTPS for the admin API: set both files, or neither for plain HTTP. The files are re-read when they change.', {
      certFile: optionalString('PEM certificate (chain) of the admin API.'),
      keyFile: optionalString('PEM private key of certFile; never logged.'),
    }),
  }),
  security: section('Authentication (SASL on SASL_PLAINTEXT and SASL_SSL listeners), authorization (Kafka ACLs) and quotas: src/security/README.md.', {
    sasl: section('SASL on SASL listeners.', {
      mechanisms: {
        description: 'Mechanisms offered, of SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN. PLAIN checks the password against the SCRAM credentials; it sends the password itself, so offer it over SASL_SSL only, unless on a trusted network.',
        default: [...SASL_MECHANISMS],
        type: 'array',
        items: { type: 'string', enum: [...SASL_MECHANISMS] },
      },
      reauthMs: duration('Session lifetime told to clients after authentication (KIP-368, Kafka connections.max.reauth.ms): a client re-authenticates before it ends, and a connection that does not is closed at its next request. 0: sessions do not expire.', 0, { maximum: MAX_TIMER_MS }),
      failureDelayMs: duration('A failed authentication is answered after this delay, doubled for each recent failure from the same address (failures slowed down, not counted against others).', '100ms', { maximum: MAX_TIMER_MS }),
      maxFailureDelayMs: duration('Largest such delay.', '5s', { maximum: MAX_TIMER_MS }),
    }),
    bootstrap: section('A SCRAM credential (both mechanisms) created at start when its user has none, so a fresh region can be administered. Changed later through AlterUserScramCredentials, the admin API or the CLI, never overwritten from here.', {
      user: optionalString('User name, e.g. admin (give it superuser rights in authorization.superUsers).'),
      password: optionalString('Its password. Prefer MERIDIAN_SECURITY__BOOTSTRAP__PASSWORD; never logged nor stored (only salted and hashed).'),
    }),
    authorization: section('Kafka ACLs (CreateAcls, DescribeAcls, DeleteAcls), kept per region in <dataDir>/security/acls.json.', {
      enabled: { description: 'Check every request against the ACLs. With no ACL on a resource, only superusers may use it (secure by default).', default: false, type: 'boolean' },
      superUsers: { description: 'Principals allowed everything, e.g. ["User:admin"].', default: [], type: 'array', items: { type: 'string', pattern: '^[A-Za-z]+:.+$' } },
      allowEveryoneIfNoAclFound: { description: 'Allow requests on resources no ACL names (Kafka allow.everyone.if.no.acl.found). Off: deny them.', default: false, type: 'boolean' },
    }),
    quotas: section('Default quotas of every principal (Kafka client quotas: throttle_time_ms and a muted connection, not errors). Per-principal quotas are set through the admin API and CLI. null: none.', {
      producerByteRate: { description: 'Produce bytes per second per principal.', default: null, type: ['integer', 'string', 'null'], unit: 'size', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
      consumerByteRate: { description: 'Fetch bytes per second per principal.', default: null, type: ['integer', 'string', 'null'], unit: 'size', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
      requestRate: { description: 'Requests per second per principal.', default: null, type: ['integer', 'null'], minimum: 1, maximum: 1_000_000_000 },
    }),
  }),
  cluster: section('Several brokers per region, metadata in etcd, partitions replicated between the brokers (src/cluster/README.md). Off while cluster.etcd.endpoints is empty.', {
    etcd: section('The etcd cluster holding the region\'s metadata (brokers, controller, topics, partition states).', {
      endpoints: {
        description: 'host:port (or http(s)://host:port) of each etcd member. Empty: the region is one broker with its metadata in files (the default). As an environment variable: JSON, e.g. ["10.0.0.5:2379"].',
        default: [],
        type: 'array',
        items: { type: 'string', minLength: 1 },
      },
      tls: section('TLS to etcd: set caFile (and certFile with keyFile for client certificates), or nothing for plain HTTP.', {
        caFile: optionalString('PEM CA certificates etcd\'s certificate is verified against. null: no TLS.'),
        certFile: optionalString('PEM client certificate (etcd --client-cert-auth). null: none.'),
        keyFile: optionalString('PEM private key of certFile; never logged.'),
      }),
      username: optionalString('etcd user (etcd authentication); null: none.'),
      password: optionalString('Its password. Prefer MERIDIAN_CLUSTER__ETCD__PASSWORD; never logged.'),
      prefix: {
        description: 'Key prefix in etcd; a region\'s keys are under <prefix>/<region>/, so regions (and other applications) may share an etcd.',
        default: '/meridian',
        type: 'string',
        pattern: '^/[^\\s]*[^/\\s]$',
        expected: 'a key prefix starting with / and not ending with / (e.g. /meridian)',
      },
    }),
    leaseTtlMs: duration(
      'Lifetime of a broker\'s etcd lease (whole seconds; rounded up), renewed every third of it. A broker that stops (SIGKILL, network cut) leaves the region when it expires: its partitions get new leaders then, so it bounds failover time (bench:cluster). It stops acting as leader itself a little before (self-fencing); a broker whose keepalives stall for most of it (a pause, an overloaded etcd) stops leading too.',
      '3s',
      { minimum: 2000, maximum: 3_600_000 },
    ),
    rideThroughEtcdOutage: {
      description: 'When etcd answers neither a leader nor any in-sync replica of the partitions it leads (etcd down for the whole region), the leader goes on taking produce past its lease window, asking those peers again every third of the lease; a peer in contact with etcd, or one that does not answer, ends it at once, so a broker cut off alone still stops before another leader can be elected. false: every leader stops at its lease window, whatever the others see.',
      default: true,
      type: 'boolean',
    },
    replicaLagTimeMaxMs: duration('A follower that has not caught up with the leader\'s log end for this long leaves the ISR (Kafka replica.lag.time.max.ms).', '10s', { minimum: 100, maximum: MAX_TIMER_MS }),
    defaultReplicationFactor: {
      description: 'Replicas per partition of a topic created without a replication factor; null: min(3, live brokers).',
      default: null,
      type: ['integer', 'null'],
      minimum: 1,
      maximum: 1000,
    },
    defaultMinInsyncReplicas: {
      description: 'In-sync replicas an acks=all produce needs, for topics without min.insync.replicas (Kafka min.insync.replicas).',
      default: 1,
      type: 'integer',
      minimum: 1,
      maximum: 1000,
    },
    uncleanLeaderElection: {
      description: 'When no in-sync replica of a partition is alive, elect an out-of-sync one (acknowledged records may be lost) instead of leaving the partition offline (Kafka unclean.leader.election.enable).',
      default: false,
      type: 'boolean',
    },
    offsetsTopicPartitions: {
      description: 'Partitions of the internal topic __meridian_offsets, created when a group first looks for its coordinator; the coordinator of a group is the leader of its partition (Kafka offsets.topic.num.partitions). Fixed once the topic exists.',
      default: 16,
      type: 'integer',
      minimum: 1,
      maximum: 1000,
    },
    offsetsCompactionBytes: size(
      'Compaction of __meridian_offsets: once a partition\'s log, from its start, holds this many bytes and twice what a checkpoint of its groups takes, its leader appends that checkpoint (every group\'s committed offsets and generation) and, once the in-sync replicas hold it, moves the log start to it. Checked on each commit only: an idle cluster does nothing (Kafka compacts __consumer_offsets).',
      '8MiB',
      { minimum: 1024, maximum: 2 ** 31 - 1 },
    ),
  }),
});

function optionalString(description: string): LeafSchema {
  return { description, default: null, type: ['string', 'null'], minLength: 1 };
}

/** Every leaf field with its path, in schema order. */
export function schemaLeaves(node: ObjectSchema = brokerConfigSchema, prefix: readonly string[] = []): Array<{ path: string[]; schema: LeafSchema }> {
  const out: Array<{ path: string[]; schema: LeafSchema }> = [];
  for (const [key, child] of Object.entries(node.properties)) {
    const path = [...prefix, key];
    if (isObjectSchema(child)) out.push(...schemaLeaves(child, path));
    else out.push({ path, schema: child });
  }
  return out;
}

/** The schema node at a path, or undefined if the path names no field. */
export function schemaAt(path: readonly string[]): FieldSchema | undefined {
  let node: FieldSchema = brokerConfigSchema;
  for (const key of path) {
    if (!isObjectSchema(node) || !Object.hasOwn(node.properties, key)) return undefined;
    node = node.properties[key]!;
  }
  return node;
}
