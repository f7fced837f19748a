/**
 * The one base error of Meridian. Every error that crosses a module boundary is a
 * MeridianError (or wraps one as `cause`), so callers decide on `code` and `retriable`
 * instead of parsing messages. Retriability belongs to the root cause (the lesson of
 * KafkaJS PR #1274): a wrapper copies it from its cause rather than inventing its own.
 */
export class MeridianError extends Error {
  readonly code: string;
  readonly retriable: boolean;

  constructor(code: string, message: string, options: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'MeridianError';
    this.code = code;
    this.retriable = options.retriable ?? (options.cause instanceof MeridianError ? options.cause.retriable : false);
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
   * The broker could not start: a directory it cannot write, a port in use, an object store
   * that refuses it. Never reaches a client (nothing listens yet); the CLI exits 2 on it.
   */
  StartupFailed: 'STARTUP_FAILED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
