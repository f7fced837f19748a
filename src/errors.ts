/**
 * The one base error of Meridian. Every error that crosses a module boundary is a
 * MeridianError (or wraps one as `cause`), so callers decide on `code` and `retriable`
 * instead of parsing messages. Retriability belongs to the root cause (the lesson of
 * KafkaJS PR #1274): a wrapper copies it from its cause rather than inventing its own.
 *
 * Every code is listed with its meaning, its retriability and the Kafka error a client gets
 * in src/README.md; test/errors.test.ts fails when a code is missing there or in the Kafka
 * mapping (protocol/kafka/error-mapping.ts).
 */
export class MeridianError extends Error {
  readonly code: string;
  readonly retriable: boolean;

  /**
   * `retriable`, when not given, comes from the cause (a MeridianError) or else from the
   * code: a code whose errors are always retriable or never makes the flag follow from it.
   */
  constructor(code: string, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MeridianError';
    this.code = code;
    this.retriable = options.retriable ?? (options.cause instanceof MeridianError ? options.cause.retriable : codeRetriability(code) === 'always');
  }
}

/** Stable codes. Kafka error mapping happens in exactly one place (protocol/kafka). */
export const ErrorCode = {
  CorruptBatch: 'CORRUPT_BATCH',
  InvalidBatch: 'INVALID_BATCH',
  BatchTooLarge: 'BATCH_TOO_LARGE',
  OffsetOutOfRange: 'OFFSET_OUT_OF_RANGE',
  LogClosed: 'LOG_CLOSED',
  DataDirLocked: 'DATA_DIR_LOCKED',
  TopicExists: 'TOPIC_EXISTS',
  UnknownTopic: 'UNKNOWN_TOPIC',
  InvalidTopic: 'INVALID_TOPIC',
  InvalidPartitions: 'INVALID_PARTITIONS',
  BadConfig: 'BAD_CONFIG',
  /** A topic-level config a client asked for that is unknown or has a bad value. */
  InvalidConfig: 'INVALID_CONFIG',
  StorageIo: 'STORAGE_IO',
  /** Stored bytes that fail their CRC on a read: reported, never served. */
  CorruptLog: 'CORRUPT_LOG',
  /**
   * A follower's append (PartitionLog.appendAsFollower) whose batches do not start at the log
   * end or do not follow each other: a gap or an overlap; nothing was appended.
   */
  UnexpectedAppendOffset: 'UNEXPECTED_APPEND_OFFSET',
  /**
   * The broker could not start: a directory it cannot write, a port in use, an object store
   * that refuses it. Never reaches a client (nothing listens yet); the CLI exits 2 on it.
   */
  StartupFailed: 'STARTUP_FAILED',
  /** An idempotent producer's batch from an epoch older than the one this partition knows. */
  InvalidProducerEpoch: 'INVALID_PRODUCER_EPOCH',
  /**
   * A batch whose sequence does not continue its producer's (idempotent produce), or a
   * replicated append that does not continue what the receiving region holds of its sender.
   */
  OutOfOrderSequence: 'OUT_OF_ORDER_SEQUENCE',
  /** A replication request for another region, or from a region to itself: a registry error. */
  ReplicationMisrouted: 'REPLICATION_MISROUTED',
  /** A remote region that cannot be connected to, dropped the connection, or did not answer in time. */
  LinkUnreachable: 'LINK_UNREACHABLE',
  /** A remote region refuses what this region sends, and will until an operator acts. */
  RemoteRefused: 'REMOTE_REFUSED',
  /** A remote region answered that it cannot take a request now (its disk, a restart, a gap). */
  RemoteUnavailable: 'REMOTE_UNAVAILABLE',
  /** A remote region holds offsets of this region's log that this region no longer has. */
  ReplicationDiverged: 'REPLICATION_DIVERGED',
  /** An operation stopped because its caller went away (shutdown, a link or worker stopping). */
  Aborted: 'ABORTED',
  // The consumer-group coordinator (broker/groups). The codes from INVALID_GROUP_ID to
  // COMMIT_TOO_LARGE tell a client to act (rejoin, give up) rather than resend, so none is
  // retriable; the last three are the coordinator's own state.
  /** A group id that is not allowed (the empty string). */
  InvalidGroupId: 'INVALID_GROUP_ID',
  /** A session timeout outside the broker's `groups.minSessionTimeoutMs`..`maxSessionTimeoutMs`. */
  InvalidSessionTimeout: 'INVALID_SESSION_TIMEOUT',
  /** A member id the group does not know (never joined, left, expired, or the broker restarted): the member rejoins with "". */
  UnknownMember: 'UNKNOWN_MEMBER',
  /** A request from another generation than the group's current one: the member rejoins. */
  IllegalGeneration: 'ILLEGAL_GENERATION',
  /** The group is rebalancing: the member rejoins before it syncs, heartbeats or commits. */
  RebalanceInProgress: 'REBALANCE_IN_PROGRESS',
  /** A member whose protocol type or protocols do not fit the group's. */
  InconsistentProtocol: 'INCONSISTENT_PROTOCOL',
  /** A static member (group.instance.id) whose instance id another member id now owns. */
  FencedInstance: 'FENCED_INSTANCE',
  /** A join that would take a group past the coordinator's `maxGroupSize` members (and pending member ids). */
  GroupTooLarge: 'GROUP_TOO_LARGE',
  /** Offset-commit metadata longer than the coordinator's `maxMetadataBytes` (Kafka's offset.metadata.max.bytes). */
  OffsetMetadataTooLarge: 'OFFSET_METADATA_TOO_LARGE',
  /** An offset commit too large for one record of the offset store. */
  CommitTooLarge: 'COMMIT_TOO_LARGE',
  /** The group coordinator is closing (or its offset store closed) under a request. */
  CoordinatorClosed: 'COORDINATOR_CLOSED',
  /** The coordinator cannot take a request now and may shortly: its commit queue is full, or the group was just unloaded. */
  CoordinatorBusy: 'COORDINATOR_BUSY',
  /** The offset store could not make a commit durable: out of space (retriable), or offline after an I/O error until a restart. */
  OffsetStoreIo: 'OFFSET_STORE_IO',
  /** Region clusters: this broker does not lead the group's partition of the offsets topic; find the coordinator again. */
  NotCoordinator: 'NOT_COORDINATOR',
  /** Region clusters: this broker just became the group's coordinator and is still loading its offsets partition. */
  CoordinatorLoading: 'COORDINATOR_LOADING',
  /** Region clusters: the group has no coordinator now (offsets topic not created yet, its partition without a leader, or too few in-sync replicas for a commit). */
  CoordinatorUnavailable: 'COORDINATOR_UNAVAILABLE',
  /** A group that has neither members nor committed offsets (DeleteGroups, OffsetDelete, OffsetCommit v9+). */
  GroupNotFound: 'GROUP_NOT_FOUND',
  /** DeleteGroups of a group that has members, or OffsetDelete in an active group that is not a consumer group. */
  NonEmptyGroup: 'NON_EMPTY_GROUP',
  /** OffsetDelete of a topic an active consumer group is subscribed to. */
  GroupSubscribedToTopic: 'GROUP_SUBSCRIBED_TO_TOPIC',
  // Disaster recovery (src/dr).
  /** A produce to a DR copy: a one-way or fan-out policy makes another region the topic's primary until this one is promoted. */
  TopicReadOnly: 'TOPIC_READ_ONLY',
  /** Replicated data for a DR topic from a region that is not its primary, or at another promotion epoch: fenced until failback. */
  ReplicationFenced: 'REPLICATION_FENCED',
  /** A promote, failback or translation the DR state does not allow (unknown policy or region, not a DR topic, the wrong region). */
  InvalidDrRequest: 'INVALID_DR_REQUEST',
  /** A DR report, or a group's offsets, that no region holds. */
  DrNotFound: 'DR_NOT_FOUND',
  // Security (src/security).
  /** Wrong password, unknown user, an authzid other than the user: the client gives up. */
  SaslAuthenticationFailed: 'SASL_AUTHENTICATION_FAILED',
  /** A SASL message that does not parse, is out of order, or breaks the protocol (nonce, channel binding). */
  InvalidSaslMessage: 'INVALID_SASL_MESSAGE',
  /** A request other than ApiVersions and the SASL ones before authentication, or a SASL request out of turn. */
  IllegalSaslState: 'ILLEGAL_SASL_STATE',
  /** A SASL mechanism this listener does not offer. */
  UnsupportedSaslMechanism: 'UNSUPPORTED_SASL_MECHANISM',
  /** A SCRAM credential that cannot be stored: iterations out of range, empty user, bad salt or key. */
  UnacceptableCredential: 'UNACCEPTABLE_CREDENTIAL',
  /** Deleting a credential that does not exist. */
  CredentialNotFound: 'CREDENTIAL_NOT_FOUND',
  /** The credential file does not parse or holds an invalid entry: the broker does not start. */
  CorruptCredentialFile: 'CORRUPT_CREDENTIAL_FILE',
  /** A principal string that is not `Type:name`. */
  InvalidPrincipal: 'INVALID_PRINCIPAL',
  /** A CreateAcls binding or a Describe/DeleteAcls filter Kafka refuses. */
  InvalidAcl: 'INVALID_ACL',
  /** The principal may not do this to the topic. */
  TopicAuthorizationFailed: 'TOPIC_AUTHORIZATION_FAILED',
  /** The principal may not do this to the group. */
  GroupAuthorizationFailed: 'GROUP_AUTHORIZATION_FAILED',
  /** The principal may not do this to the cluster (admin operations, the replication API). */
  ClusterAuthorizationFailed: 'CLUSTER_AUTHORIZATION_FAILED',
  /** The principal may not use the transactional id. */
  TransactionalIdAuthorizationFailed: 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  /** Replicated data for a topic from a region its policies do not name as a source, or from a principal bound to another region. */
  ReplicationUnauthorized: 'REPLICATION_UNAUTHORIZED',
  // Region clusters on etcd (src/cluster).
  /** A value in etcd that does not parse or has the wrong shape: the message names the key. */
  CorruptMetadata: 'CORRUPT_METADATA',
  /** A replication factor below 1 or above the number of live brokers. */
  InvalidReplicationFactor: 'INVALID_REPLICATION_FACTOR',
  /** An explicit replica assignment that names a broker twice, an unknown broker, or differs in length between partitions. */
  InvalidReplicaAssignment: 'INVALID_REPLICA_ASSIGNMENT',
  /** A controller write from a broker that is not (or no longer) the region's controller: fenced by etcd. */
  NotController: 'NOT_CONTROLLER',
  /** A broker registering a node id that another live broker holds (two brokers configured with the same nodeId). */
  NodeIdInUse: 'NODE_ID_IN_USE',
  /** etcd could not be reached (or did not answer) within the operation's time budget. */
  MetadataUnavailable: 'METADATA_UNAVAILABLE',
  // In-region replication (src/cluster/replica-manager.ts).
  /** Produce or consumer Fetch to a broker that is not the partition's leader (a follower, or no replica). */
  NotLeader: 'NOT_LEADER',
  /** A request carrying a leader epoch older than the partition's current one: the sender's metadata is stale. */
  FencedLeaderEpoch: 'FENCED_LEADER_EPOCH',
  /** A request carrying a leader epoch newer than this broker knows: this broker has not seen the change yet. */
  UnknownLeaderEpoch: 'UNKNOWN_LEADER_EPOCH',
  /** acks=all with fewer in-sync replicas than min.insync.replicas: nothing was written. */
  NotEnoughReplicas: 'NOT_ENOUGH_REPLICAS',
  /** acks=all: written, but the ISR shrank below min.insync.replicas before the high watermark passed it. */
  NotEnoughReplicasAfterAppend: 'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  /** acks=all: written, but the in-sync replicas did not all hold it within the request's timeout. */
  ReplicationTimedOut: 'REPLICATION_TIMED_OUT',
  // Partition reassignment (src/cluster/reassign-*.ts).
  /** A reassignment asked of a partition that is already being reassigned: wait for it to finish. */
  ReassignmentInProgress: 'REASSIGNMENT_IN_PROGRESS',
  /** A cancellation asked of a partition that is not being reassigned. */
  NoReassignmentInProgress: 'NO_REASSIGNMENT_IN_PROGRESS',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Whether an error of a code may succeed if tried again unchanged: `always`, `never`, or
 * `varies` where each error says (a full disk clears, a failed one does not).
 */
export type Retriability = 'always' | 'never' | 'varies';

const RETRIABILITY: Readonly<Record<ErrorCode, Retriability>> = {
  CORRUPT_BATCH: 'never',
  INVALID_BATCH: 'never',
  BATCH_TOO_LARGE: 'never',
  OFFSET_OUT_OF_RANGE: 'never',
  LOG_CLOSED: 'always',
  DATA_DIR_LOCKED: 'never',
  TOPIC_EXISTS: 'never',
  UNKNOWN_TOPIC: 'always',
  INVALID_TOPIC: 'never',
  INVALID_PARTITIONS: 'never',
  BAD_CONFIG: 'never',
  INVALID_CONFIG: 'never',
  STORAGE_IO: 'varies',
  CORRUPT_LOG: 'never',
  UNEXPECTED_APPEND_OFFSET: 'never',
  STARTUP_FAILED: 'never',
  INVALID_PRODUCER_EPOCH: 'never',
  OUT_OF_ORDER_SEQUENCE: 'never',
  REPLICATION_MISROUTED: 'never',
  LINK_UNREACHABLE: 'always',
  REMOTE_REFUSED: 'never',
  REMOTE_UNAVAILABLE: 'always',
  REPLICATION_DIVERGED: 'never',
  ABORTED: 'always',
  INVALID_GROUP_ID: 'never',
  INVALID_SESSION_TIMEOUT: 'never',
  UNKNOWN_MEMBER: 'never',
  ILLEGAL_GENERATION: 'never',
  REBALANCE_IN_PROGRESS: 'never',
  INCONSISTENT_PROTOCOL: 'never',
  FENCED_INSTANCE: 'never',
  GROUP_TOO_LARGE: 'never',
  OFFSET_METADATA_TOO_LARGE: 'never',
  COMMIT_TOO_LARGE: 'never',
  COORDINATOR_CLOSED: 'always',
  COORDINATOR_BUSY: 'always',
  OFFSET_STORE_IO: 'varies',
  NOT_COORDINATOR: 'always',
  COORDINATOR_LOADING: 'always',
  COORDINATOR_UNAVAILABLE: 'always',
  GROUP_NOT_FOUND: 'never',
  NON_EMPTY_GROUP: 'never',
  GROUP_SUBSCRIBED_TO_TOPIC: 'never',
  TOPIC_READ_ONLY: 'never',
  REPLICATION_FENCED: 'always',
  INVALID_DR_REQUEST: 'never',
  DR_NOT_FOUND: 'never',
  SASL_AUTHENTICATION_FAILED: 'never',
  INVALID_SASL_MESSAGE: 'never',
  ILLEGAL_SASL_STATE: 'never',
  UNSUPPORTED_SASL_MECHANISM: 'never',
  UNACCEPTABLE_CREDENTIAL: 'never',
  CREDENTIAL_NOT_FOUND: 'never',
  CORRUPT_CREDENTIAL_FILE: 'never',
  INVALID_PRINCIPAL: 'never',
  INVALID_ACL: 'never',
  TOPIC_AUTHORIZATION_FAILED: 'never',
  GROUP_AUTHORIZATION_FAILED: 'never',
  CLUSTER_AUTHORIZATION_FAILED: 'never',
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 'never',
  REPLICATION_UNAUTHORIZED: 'never',
  CORRUPT_METADATA: 'never',
  INVALID_REPLICATION_FACTOR: 'never',
  INVALID_REPLICA_ASSIGNMENT: 'never',
  NOT_CONTROLLER: 'always',
  NODE_ID_IN_USE: 'never',
  METADATA_UNAVAILABLE: 'always',
  NOT_LEADER: 'always',
  FENCED_LEADER_EPOCH: 'always',
  UNKNOWN_LEADER_EPOCH: 'always',
  NOT_ENOUGH_REPLICAS: 'always',
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: 'always',
  REPLICATION_TIMED_OUT: 'always',
  REASSIGNMENT_IN_PROGRESS: 'never',
  NO_REASSIGNMENT_IN_PROGRESS: 'never',
};

/** The retriability of a code; `varies` for codes of other modules (blob stores, codecs), whose errors say. */
export function codeRetriability(code: string): Retriability {
  return Object.hasOwn(RETRIABILITY, code) ? RETRIABILITY[code as ErrorCode] : 'varies';
}
