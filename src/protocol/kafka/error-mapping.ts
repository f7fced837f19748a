/**
 * The one place where Meridian's internal errors become Kafka error codes. Handlers catch,
 * call `toKafkaError`, and put the code (and message, where the response has a field for it)
 * into the response; nothing else in the broker knows Kafka's numbers for internal errors.
 */
import { ErrorCode, MeridianError } from '../../errors.js';
import { KafkaErrorCode, type KafkaErrorName } from './error-codes.js';

const MAPPING: Record<string, KafkaErrorName> = {
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
  [ErrorCode.StorageIo]: 'KAFKA_STORAGE_ERROR',
  [ErrorCode.CorruptLog]: 'KAFKA_STORAGE_ERROR',
};

export interface KafkaError {
  code: number;
  name: KafkaErrorName;
  message: string;
}

export function toKafkaError(err: unknown): KafkaError {
  const name: KafkaErrorName = err instanceof MeridianError ? (MAPPING[err.code] ?? 'UNKNOWN_SERVER_ERROR') : 'UNKNOWN_SERVER_ERROR';
  const message = err instanceof Error ? err.message : String(err);
  return { code: KafkaErrorCode[name].code, name, message };
}

/** Kafka error code by name, for handlers that produce protocol-level errors directly. */
export function kafkaCode(name: KafkaErrorName): number {
  return KafkaErrorCode[name].code;
}
