/**
 * The one place where Meridian's errors and Kafka error codes meet. Handlers catch, call
 * `toKafkaError`, and put the code (and message, where the response has a field for it)
 * into the response; the replication link turns a remote region's Kafka code back into a
 * Meridian error with `fromRemoteKafkaError`. Nothing else in the broker knows Kafka's
 * numbers for internal errors.
 *
 * Kafka's clients retry a code Kafka lists as retriable and give up on the others, so each
 * code maps to a Kafka error whose retriability is the code's own (errors.ts): a code that
 * is `always` retriable maps to a retriable Kafka error, `never` to one that is not, and
 * `varies` to a pair chosen by each error's flag. WIRE_RETRIABILITY_DIFFERS lists the few
 * codes that keep a Kafka error of the other kind, and why. The table in src/README.md
 * documents all of it; test/errors.test.ts checks the three agree.
 */
import { ErrorCode, MeridianError } from '../../errors.js';
import { KafkaErrorCode, kafkaErrorByCode, type KafkaErrorName } from './error-codes.js';

/** One Kafka error, or one for retriable errors of the code and one for the others. */
export type KafkaMapping = KafkaErrorName | { readonly retriable: KafkaErrorName; readonly permanent: KafkaErrorName };

export const KAFKA_MAPPING = {
  [ErrorCode.CorruptBatch]: 'CORRUPT_MESSAGE',
  [ErrorCode.InvalidBatch]: 'INVALID_RECORD',
  [ErrorCode.BatchTooLarge]: 'MESSAGE_TOO_LARGE',
  [ErrorCode.OffsetOutOfRange]: 'OFFSET_OUT_OF_RANGE',
  [ErrorCode.UnknownTopic]: 'UNKNOWN_TOPIC_OR_PARTITION',
  [ErrorCode.InvalidTopic]: 'INVALID_TOPIC_EXCEPTION',
  [ErrorCode.TopicExists]: 'TOPIC_ALREADY_EXISTS',
  [ErrorCode.InvalidPartitions]: 'INVALID_PARTITIONS',
  [ErrorCode.InvalidConfig]: 'INVALID_CONFIG',
  // A log closing under a request (shutdown, topic deletion): retriable, and clients
  // refresh metadata on it.
  [ErrorCode.LogClosed]: 'NOT_LEADER_OR_FOLLOWER',
  [ErrorCode.Aborted]: 'NOT_LEADER_OR_FOLLOWER',
  [ErrorCode.StorageIo]: { retriable: 'KAFKA_STORAGE_ERROR', permanent: 'KAFKA_STORAGE_ERROR' },
  [ErrorCode.CorruptLog]: 'KAFKA_STORAGE_ERROR',
  // A follower's own append (Kafka's UnexpectedAppendOffsetException): no client sends it.
  [ErrorCode.UnexpectedAppendOffset]: 'UNKNOWN_SERVER_ERROR',
  [ErrorCode.InvalidProducerEpoch]: 'INVALID_PRODUCER_EPOCH',
  [ErrorCode.OutOfOrderSequence]: 'OUT_OF_ORDER_SEQUENCE_NUMBER',
  [ErrorCode.ReplicationMisrouted]: 'INVALID_REQUEST',
  // The group coordinator's codes: the errors Kafka's GroupCoordinator answers in the same
  // situations, which KafkaJS and librdkafka act on (rejoin, find the coordinator again).
  [ErrorCode.InvalidGroupId]: 'INVALID_GROUP_ID',
  [ErrorCode.InvalidSessionTimeout]: 'INVALID_SESSION_TIMEOUT',
  [ErrorCode.UnknownMember]: 'UNKNOWN_MEMBER_ID',
  [ErrorCode.IllegalGeneration]: 'ILLEGAL_GENERATION',
  [ErrorCode.RebalanceInProgress]: 'REBALANCE_IN_PROGRESS',
  [ErrorCode.InconsistentProtocol]: 'INCONSISTENT_GROUP_PROTOCOL',
  [ErrorCode.FencedInstance]: 'FENCED_INSTANCE_ID',
  [ErrorCode.GroupTooLarge]: 'GROUP_MAX_SIZE_REACHED',
  [ErrorCode.OffsetMetadataTooLarge]: 'OFFSET_METADATA_TOO_LARGE',
  [ErrorCode.CommitTooLarge]: 'INVALID_COMMIT_OFFSET_SIZE',
  // Kafka's GroupMetadataManager.storeOffsets: a closed coordinator, and a storage failure
  // under a commit, are NOT_COORDINATOR, so clients look for the coordinator again; a full
  // commit queue is COORDINATOR_NOT_AVAILABLE, as is a group being unloaded.
  [ErrorCode.CoordinatorClosed]: 'NOT_COORDINATOR',
  [ErrorCode.CoordinatorBusy]: 'COORDINATOR_NOT_AVAILABLE',
  [ErrorCode.OffsetStoreIo]: { retriable: 'NOT_COORDINATOR', permanent: 'NOT_COORDINATOR' },
  // Region clusters (cluster/group-offsets.ts): the group's coordinator is the leader of its
  // offsets partition; Kafka's answers while it moves, is loading or has no leader.
  [ErrorCode.NotCoordinator]: 'NOT_COORDINATOR',
  [ErrorCode.CoordinatorLoading]: 'COORDINATOR_LOAD_IN_PROGRESS',
  [ErrorCode.CoordinatorUnavailable]: 'COORDINATOR_NOT_AVAILABLE',
  [ErrorCode.GroupNotFound]: 'GROUP_ID_NOT_FOUND',
  [ErrorCode.NonEmptyGroup]: 'NON_EMPTY_GROUP',
  [ErrorCode.GroupSubscribedToTopic]: 'GROUP_SUBSCRIBED_TO_TOPIC',
  // A produce to a DR copy: not retriable, and the message names the policy and the primary.
  [ErrorCode.TopicReadOnly]: 'POLICY_VIOLATION',
  // Kafka's answer to a request from a stale leader epoch; the sending region backs off and
  // retries (it is not in REFUSED_BY_REMOTE), so the link resumes by itself after failback.
  [ErrorCode.ReplicationFenced]: 'FENCED_LEADER_EPOCH',
  [ErrorCode.InvalidDrRequest]: 'INVALID_REQUEST',
  [ErrorCode.DrNotFound]: 'UNKNOWN_SERVER_ERROR',
  // Security: Kafka's own answers. A SASL message that does not parse gets the same code as
  // a wrong password, as Kafka's SaslServerAuthenticator answers both.
  [ErrorCode.SaslAuthenticationFailed]: 'SASL_AUTHENTICATION_FAILED',
  [ErrorCode.InvalidSaslMessage]: 'SASL_AUTHENTICATION_FAILED',
  [ErrorCode.IllegalSaslState]: 'ILLEGAL_SASL_STATE',
  [ErrorCode.UnsupportedSaslMechanism]: 'UNSUPPORTED_SASL_MECHANISM',
  [ErrorCode.UnacceptableCredential]: 'UNACCEPTABLE_CREDENTIAL',
  [ErrorCode.CredentialNotFound]: 'RESOURCE_NOT_FOUND',
  [ErrorCode.CorruptCredentialFile]: 'UNKNOWN_SERVER_ERROR',
  [ErrorCode.InvalidPrincipal]: 'INVALID_REQUEST',
  [ErrorCode.InvalidAcl]: 'INVALID_REQUEST',
  [ErrorCode.TopicAuthorizationFailed]: 'TOPIC_AUTHORIZATION_FAILED',
  [ErrorCode.GroupAuthorizationFailed]: 'GROUP_AUTHORIZATION_FAILED',
  [ErrorCode.ClusterAuthorizationFailed]: 'CLUSTER_AUTHORIZATION_FAILED',
  [ErrorCode.TransactionalIdAuthorizationFailed]: 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  // Not in REFUSED_BY_REMOTE: the sender backs off and retries, so the link resumes by
  // itself once the receiving region's policies or ACLs are fixed (both ends log it).
  [ErrorCode.ReplicationUnauthorized]: 'CLUSTER_AUTHORIZATION_FAILED',
  // Region clusters (src/cluster): Kafka's own answers where it has one (CreateTopics,
  // a controller request to a broker that is not the controller, a duplicate broker id).
  [ErrorCode.InvalidReplicationFactor]: 'INVALID_REPLICATION_FACTOR',
  [ErrorCode.InvalidReplicaAssignment]: 'INVALID_REPLICA_ASSIGNMENT',
  [ErrorCode.NotController]: 'NOT_CONTROLLER',
  [ErrorCode.ReassignmentInProgress]: 'REASSIGNMENT_IN_PROGRESS',
  [ErrorCode.NoReassignmentInProgress]: 'NO_REASSIGNMENT_IN_PROGRESS',
  [ErrorCode.NodeIdInUse]: 'DUPLICATE_BROKER_REGISTRATION',
  [ErrorCode.MetadataUnavailable]: 'REQUEST_TIMED_OUT',
  [ErrorCode.CorruptMetadata]: 'UNKNOWN_SERVER_ERROR',
  // In-region replication: Kafka's ReplicaManager answers; clients refresh metadata on the
  // first three and retry all six.
  [ErrorCode.NotLeader]: 'NOT_LEADER_OR_FOLLOWER',
  [ErrorCode.FencedLeaderEpoch]: 'FENCED_LEADER_EPOCH',
  [ErrorCode.UnknownLeaderEpoch]: 'UNKNOWN_LEADER_EPOCH',
  [ErrorCode.NotEnoughReplicas]: 'NOT_ENOUGH_REPLICAS',
  [ErrorCode.NotEnoughReplicasAfterAppend]: 'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  [ErrorCode.ReplicationTimedOut]: 'REQUEST_TIMED_OUT',
  // The codes below are raised where no Kafka client is waiting (start-up, the sending
  // side of a replication link); should one reach a client, it gets an error of the
  // right retriability.
  [ErrorCode.DataDirLocked]: 'UNKNOWN_SERVER_ERROR',
  [ErrorCode.BadConfig]: 'UNKNOWN_SERVER_ERROR',
  [ErrorCode.StartupFailed]: 'UNKNOWN_SERVER_ERROR',
  [ErrorCode.LinkUnreachable]: 'NETWORK_EXCEPTION',
  [ErrorCode.RemoteRefused]: 'UNKNOWN_SERVER_ERROR',
  [ErrorCode.RemoteUnavailable]: 'REPLICA_NOT_AVAILABLE',
  [ErrorCode.ReplicationDiverged]: 'UNKNOWN_SERVER_ERROR',
} as const satisfies Record<ErrorCode, KafkaMapping>;

/**
 * Codes whose Kafka error is of the other retriability than the code. Each keeps what
 * Kafka's own broker answers in the same situation, which clients rely on; src/README.md
 * says why for each.
 */
export const WIRE_RETRIABILITY_DIFFERS: ReadonlySet<ErrorCode> = new Set([ErrorCode.CorruptBatch, ErrorCode.StorageIo, ErrorCode.CorruptLog, ErrorCode.OffsetStoreIo]);

/** The Kafka error a client gets for an error of `code` whose retriability is `retriable`. */
export function kafkaErrorNameFor(code: string, retriable: boolean): KafkaErrorName {
  if (!Object.hasOwn(KAFKA_MAPPING, code)) return 'UNKNOWN_SERVER_ERROR';
  const m: KafkaMapping = KAFKA_MAPPING[code as ErrorCode];
  return typeof m === 'string' ? m : retriable ? m.retriable : m.permanent;
}

export interface KafkaError {
  code: number;
  name: KafkaErrorName;
  message: string;
}

/**
 * The Kafka error code of a domain result's error: 0 for none. For responses that carry a
 * code and no message (the group APIs).
 */
export function kafkaErrorCodeOf(err: MeridianError | null): number {
  return err === null ? KafkaErrorCode.NONE.code : toKafkaError(err).code;
}

export function toKafkaError(err: unknown): KafkaError {
  const name: KafkaErrorName = err instanceof MeridianError ? kafkaErrorNameFor(err.code, err.retriable) : 'UNKNOWN_SERVER_ERROR';
  const message = err instanceof Error ? err.message : String(err);
  return { code: KafkaErrorCode[name].code, name, message };
}

/** Kafka error code by name, for handlers that produce protocol-level errors directly. */
export function kafkaCode(name: KafkaErrorName): number {
  return KafkaErrorCode[name].code;
}

/**
 * What a Meridian region answers on the replication API for a request it will never take
 * as sent: a batch beyond its limits or invalid, partition counts that differ, a request
 * meant for another region (see the mapping of those codes above).
 */
const REFUSED_BY_REMOTE: ReadonlySet<number> = new Set(
  (['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE', 'INVALID_PARTITIONS', 'INVALID_REQUEST'] as const).map(kafkaCode),
);

/**
 * A remote region's non-zero error code on the replication API, as the error the sending
 * side acts on: REMOTE_REFUSED (the link stays in error until an operator acts) for a
 * refusal, REMOTE_UNAVAILABLE (retried after a backoff) for anything else, such as its disk
 * being full, its shutting down, or a request that did not continue what it holds.
 * `context` opens the message ("region eu-west refused the append").
 */
export function fromRemoteKafkaError(errorCode: number, errorMessage: string | null, context: string): MeridianError {
  const detail = errorMessage ?? kafkaErrorByCode(errorCode)?.name ?? String(errorCode);
  const code = REFUSED_BY_REMOTE.has(errorCode) ? ErrorCode.RemoteRefused : ErrorCode.RemoteUnavailable;
  return new MeridianError(code, `${context}: ${detail}`);
}
