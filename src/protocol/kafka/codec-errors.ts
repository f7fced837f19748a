import { MeridianError } from '../../errors.js';

/**
 * Stable codes of the errors the Kafka codecs raise. They live here rather than in
 * src/errors.ts because they never leave the protocol layer: the connection handler
 * catches them, logs them and closes the connection.
 */
export const KafkaCodecErrorCode = {
  Decode: 'KAFKA_DECODE',
  FrameTooLarge: 'KAFKA_FRAME_TOO_LARGE',
  FrameInvalid: 'KAFKA_FRAME_INVALID',
} as const;
export type KafkaCodecErrorCode = (typeof KafkaCodecErrorCode)[keyof typeof KafkaCodecErrorCode];

/**
 * A request body or header that does not parse: truncated, an impossible length, an
 * overlong varint. Never retriable, because resending the same bytes fails the same way.
 * `offset` is relative to the start of the buffer the Reader was given (normally the frame
 * without its size prefix), so it can be matched against a hex dump of that frame.
 */
export class KafkaDecodeError extends MeridianError {
  readonly offset: number;

  constructor(message: string, offset: number, options: { cause?: unknown } = {}) {
    super(KafkaCodecErrorCode.Decode, message, { retriable: false, cause: options.cause });
    this.name = 'KafkaDecodeError';
    this.offset = offset;
  }
}

/**
 * A size prefix that cannot start a valid frame. After this the byte stream has no
 * trustworthy frame boundary left, so the only safe reaction is to close the connection.
 */
export class KafkaFrameError extends MeridianError {
  readonly size: number;

  constructor(
    code: typeof KafkaCodecErrorCode.FrameTooLarge | typeof KafkaCodecErrorCode.FrameInvalid,
    message: string,
    size: number,
  ) {
    super(code, message, { retriable: false });
    this.name = 'KafkaFrameError';
    this.size = size;
  }
}
