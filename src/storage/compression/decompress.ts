/**
 * The one entry point for opening a compressed record batch: Kafka's codec number (the
 * batch attributes' low three bits) to the decompressor, each bounded by `maxBytes`.
 */
import { ErrorCode, MeridianError } from '../../errors.js';
import { gunzipBounded } from './gzip.js';
import { lz4FrameDecompress } from './lz4-frame.js';
import { snappyDecompress } from './snappy.js';
import { zstdDecompress } from './zstd.js';

const DECODERS: Record<number, { name: string; run: (data: Buffer, maxBytes: number) => Buffer }> = {
  1: { name: 'gzip', run: gunzipBounded },
  2: { name: 'snappy', run: snappyDecompress },
  3: { name: 'lz4', run: lz4FrameDecompress },
  4: { name: 'zstd', run: zstdDecompress },
};

/**
 * Decompresses `data` compressed with Kafka codec `codec` (1 gzip, 2 snappy, 3 lz4, 4 zstd).
 * Throws CORRUPT_BATCH, naming the codec and what was wrong, for anything it cannot decode
 * and for output that would exceed `maxBytes` (a decompression bomb is corrupt input as far
 * as the log is concerned, as the config schema documents). Nothing else ever escapes: the
 * input comes from the network.
 */
export function decompress(codec: number, data: Buffer, maxBytes: number): Buffer {
  const decoder = DECODERS[codec];
  if (decoder === undefined) throw new MeridianError(ErrorCode.CorruptBatch, `unknown compression codec ${codec}`);
  try {
    return decoder.run(data, maxBytes);
  } catch (err) {
    if (err instanceof MeridianError && err.code === ErrorCode.CorruptBatch) throw err;
    throw new MeridianError(ErrorCode.CorruptBatch, `${decoder.name}: cannot decompress (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
}
