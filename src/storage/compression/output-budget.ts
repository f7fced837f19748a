/**
 * What every decompressor shares: the error it throws, the growable output buffer that
 * refuses to grow past the budget, the truncation check, and the skippable frames LZ4 and
 * zstd have in common. A decompressor never allocates more than its budget
 * (plus what one codec step writes at once), whatever the input claims.
 */
import { ErrorCode, MeridianError } from '../../errors.js';

export type CodecName = 'gzip' | 'snappy' | 'lz4' | 'zstd';

export function corrupt(codec: CodecName, detail: string, cause?: unknown): MeridianError {
  return new MeridianError(ErrorCode.CorruptBatch, `${codec}: ${detail}`, cause === undefined ? {} : { cause });
}

/** `claim` is what went over, e.g. "the stream declares 9000 bytes,". */
export function overBudget(codec: CodecName, maxBytes: number, claim = 'the output grows'): MeridianError {
  return corrupt(codec, `${claim} past the ${maxBytes}-byte decompression budget (log.maxUncompressedBatchBytes): refused as a possible decompression bomb`);
}

/**
 * An output buffer that doubles as it fills, never past `maxBytes`. The bytes are written
 * through `buf` and `length` directly by the decoders' inner loops; `reserve` is the only
 * place that allocates.
 */
export class BoundedOutput {
  buf: Buffer;
  length = 0;
  readonly #codec: CodecName;
  readonly #maxBytes: number;

  constructor(codec: CodecName, maxBytes: number, initial: number) {
    this.#codec = codec;
    this.#maxBytes = maxBytes;
    this.buf = Buffer.allocUnsafe(Math.max(0, Math.min(initial, maxBytes)));
  }

  /** Makes room for `n` more bytes, or throws if that would pass the budget. */
  reserve(n: number): void {
    const need = this.length + n;
    if (need <= this.buf.length) return;
    if (need > this.#maxBytes) throw overBudget(this.#codec, this.#maxBytes);
    const grown = Buffer.allocUnsafe(Math.min(this.#maxBytes, Math.max(need, this.buf.length * 2, 1024)));
    this.buf.copy(grown, 0, 0, this.length);
    this.buf = grown;
  }

  /** The bytes written so far (a view: the unused tail of the allocation is never exposed). */
  result(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

/** Throws `codec`'s truncation error unless `n` bytes remain at `p`. */
export function need(codec: CodecName, data: Buffer, p: number, n: number, what: string): void {
  if (data.length - p < n) throw corrupt(codec, `truncated ${what} at byte ${p}: needs ${n} bytes, ${Math.max(0, data.length - p)} remain`);
}

const SKIPPABLE_MASK = 0xfffffff0;
const SKIPPABLE = 0x184d2a50;

/**
 * LZ4 and zstd share the skippable-frame format (magic 0x184D2A5?, a little-endian u32
 * size, that many bytes): returns where the skippable frame at `p` ends, or -1 when the
 * frame at `p` is not one.
 */
export function skipSkippableFrame(codec: CodecName, data: Buffer, p: number): number {
  need(codec, data, p, 4, 'frame magic');
  if (((data.readUInt32LE(p) & SKIPPABLE_MASK) >>> 0) !== SKIPPABLE) return -1;
  need(codec, data, p + 4, 4, 'skippable frame size');
  const size = data.readUInt32LE(p + 4);
  need(codec, data, p + 8, size, 'skippable frame');
  return p + 8 + size;
}
