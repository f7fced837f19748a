/**
 * Kafka codec 4: Zstandard frames (RFC 8878), decoded by fzstd's streaming decompressor.
 *
 * fzstd allocates each frame's whole window (or its whole content, for a single-segment
 * frame) when it reads the frame header, before any budget check of ours could run on its
 * output. So every frame header is read here first: a frame declaring more content than the
 * budget is refused before fzstd sees it, and the blocks are walked (3-byte headers: last
 * flag, type, size), which finds truncation and trailing bytes without decoding. fzstd then
 * decodes, and its output is counted block by block: decoding stops at the first block
 * past the budget.
 *
 * A window larger than the budget is not refused but shrunk, in a copy of the input: a
 * streaming compressor that does not know its input size (the Java client's, the zstd tool
 * reading a pipe) declares a window by level, 2 MiB at the default level 3 and up to
 * 128 MiB at level 22, whatever it then writes. A match can only reach back over output
 * already produced, which the budget bounds, so a window of max(budget, 128 KiB) (the
 * 128 KiB keeps the spec's block maximum, min(window, 128 KiB), unchanged) decodes every
 * stream that fits the budget exactly as the declared one would.
 *
 * A frame that needs a dictionary is refused: Kafka never uses one, and fzstd cannot.
 */
import { Decompress } from 'fzstd';
import { MeridianError } from '../../errors.js';
import { corrupt, need as needBytes, overBudget, skipSkippableFrame } from './output-budget.js';

const MAGIC = 0xfd2fb528;
const MAX_BLOCK = 128 << 10;

export function zstdDecompress(input: Buffer, maxBytes: number): Buffer {
  const shrink = checkFrames(input, maxBytes);
  let data = input;
  if (shrink.length > 0) {
    data = Buffer.from(input);
    for (const at of shrink) data[at] = windowDescriptorFor(maxBytes);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  const d = new Decompress((chunk) => {
    total += chunk.length;
    if (total > maxBytes) throw overBudget('zstd', maxBytes);
    chunks.push(chunk);
  });
  try {
    d.push(data, true);
  } catch (err) {
    if (err instanceof MeridianError) throw err;
    throw corrupt('zstd', `not a valid zstd stream (${(err as Error).message})`, err);
  }
  return Buffer.concat(chunks, total);
}

function need(data: Buffer, p: number, n: number, what: string): void {
  needBytes('zstd', data, p, n, what);
}

/**
 * The smallest window descriptor (exponent: bits 7-3, window log - 10; mantissa: bits 2-0,
 * eighths) whose window holds max(budget, 128 KiB): at most an eighth over it.
 */
function windowDescriptorFor(maxBytes: number): number {
  const need = Math.max(maxBytes, MAX_BLOCK);
  for (let exponent = 0; exponent < 32; exponent++) {
    const base = 2 ** (10 + exponent);
    for (let mantissa = 0; mantissa < 8; mantissa++) if (base + (base / 8) * mantissa >= need) return (exponent << 3) | mantissa;
  }
  throw corrupt('zstd', `no window descriptor can hold ${need} bytes`);
}

/** Checks every frame; returns the positions of window descriptors to shrink to the budget. */
function checkFrames(data: Buffer, maxBytes: number): number[] {
  if (data.length === 0) throw corrupt('zstd', 'empty input: no zstd frame');
  const shrink: number[] = [];
  let frames = 0;
  for (let p = 0; p < data.length; ) {
    const skipped = skipSkippableFrame('zstd', data, p);
    if (skipped >= 0) {
      p = skipped;
      continue;
    }
    const magic = data.readUInt32LE(p);
    if (magic !== MAGIC) throw corrupt('zstd', `bad frame magic 0x${magic.toString(16)} at byte ${p}`);
    p = checkFrame(data, p + 4, maxBytes, shrink);
    frames++;
  }
  if (frames === 0) throw corrupt('zstd', 'no zstd frame, only skippable frames');
  return shrink;
}

/**
 * Frame header (RFC 8878 3.1.1.1): descriptor | [window descriptor] | [dictionary id]
 * | [content size], then blocks, then an optional 4-byte checksum. Returns the frame's end.
 */
function checkFrame(data: Buffer, p: number, maxBytes: number, shrink: number[]): number {
  need(data, p, 1, 'frame header descriptor');
  const fhd = data[p++];
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd & 0x20) !== 0;
  const checksum = (fhd & 0x04) !== 0;
  if (fhd & 0x08) throw corrupt('zstd', 'reserved bit set in the frame header');
  let window = 0;
  if (!singleSegment) {
    need(data, p, 1, 'window descriptor');
    const wd = data[p];
    const base = 2 ** (10 + (wd >> 3));
    window = base + (base / 8) * (wd & 7);
    if (window > Math.max(maxBytes, MAX_BLOCK)) shrink.push(p);
    p++;
  }
  const dictBytes = [0, 1, 2, 4][fhd & 3];
  need(data, p, dictBytes, 'dictionary id');
  for (let i = 0; i < dictBytes; i++) if (data[p + i] !== 0) throw corrupt('zstd', 'frame needs a dictionary, which Kafka never uses');
  p += dictBytes;
  const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
  need(data, p, fcsBytes, 'frame content size');
  let contentSize = -1;
  if (fcsBytes === 1) contentSize = data[p];
  else if (fcsBytes === 2) contentSize = data.readUInt16LE(p) + 256;
  else if (fcsBytes === 4) contentSize = data.readUInt32LE(p);
  else if (fcsBytes === 8) contentSize = data.readUInt32LE(p) + data.readUInt32LE(p + 4) * 2 ** 32;
  p += fcsBytes;
  if (contentSize > maxBytes) throw overBudget('zstd', maxBytes, `a frame declares a content size of ${contentSize} bytes,`);
  if (singleSegment) window = contentSize;
  const blockMax = Math.min(window, MAX_BLOCK);
  for (let block = 0; ; block++) {
    need(data, p, 3, `block ${block} header`);
    const header = data[p] | (data[p + 1] << 8) | (data[p + 2] << 16);
    p += 3;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) throw corrupt('zstd', `block ${block} has the reserved block type`);
    if (size > blockMax) throw corrupt('zstd', `block ${block} is ${size} bytes, more than the frame's ${blockMax}-byte maximum`);
    const stored = type === 1 ? 1 : size;
    need(data, p, stored, `block ${block}`);
    p += stored;
    if (header & 1) break;
  }
  if (checksum) {
    need(data, p, 4, 'content checksum');
    p += 4;
  }
  return p;
}
