/**
 * Kafka codec 3: the LZ4 frame format (lz4_Frame_format.md), which Kafka's v2 batches use
 * (librdkafka via LZ4F, the Java client's KafkaLZ4BlockOutputStream).
 *
 *   frame      = magic 0x184D2204 (LE) | FLG | BD | [content size: u64 LE] | [dict id: u32] | HC
 *                | block* | end mark (u32 0) | [content checksum: u32 XXH32]
 *   FLG        = version (bits 7-6, = 01) | block independence | block checksum
 *                | content size | content checksum | reserved 0 | dict id
 *   BD         = block max size code (bits 6-4: 4 = 64 KiB .. 7 = 4 MiB), other bits 0
 *   block      = size: u32 LE (high bit set = stored uncompressed) | data | [XXH32 of data]
 * Skippable frames (magic 0x184D2A50..5F) are skipped and frames may follow one another, as
 * the spec asks of a decoder. Every checksum present is verified: the frame's own integrity
 * check is the cheapest place to catch a corrupted stream.
 *
 * LZ4 block (lz4_Block_format.md): sequences of
 *   token (literal length: high nibble, match length - 4: low nibble; 15 = more bytes follow,
 *   each added until one is < 255) | literals | match offset: u16 LE | extra match length
 * where the last sequence stops after its literals. A match may reach back into earlier
 * blocks of the frame unless blocks are independent, never before the frame.
 */
import { BoundedOutput, corrupt, need as needBytes, overBudget, skipSkippableFrame } from './output-budget.js';
import { xxhash32 } from './xxhash32.js';

const MAGIC = 0x184d2204;
const BLOCK_MAX = [0, 0, 0, 0, 64 << 10, 256 << 10, 1 << 20, 4 << 20];

const Flg = { versionMask: 0xc0, version1: 0x40, independent: 0x20, blockChecksum: 0x10, contentSize: 0x08, contentChecksum: 0x04, reserved: 0x02, dictId: 0x01 } as const;

export function lz4FrameDecompress(data: Buffer, maxBytes: number): Buffer {
  if (data.length === 0) throw corrupt('lz4', 'empty input: no LZ4 frame');
  // Without a content size the output is at most a few times the input for real data.
  const out = new BoundedOutput('lz4', maxBytes, Math.max(4096, data.length * 4));
  let p = 0;
  let frames = 0;
  while (p < data.length) {
    const skipped = skipSkippableFrame('lz4', data, p);
    if (skipped >= 0) {
      p = skipped;
      continue;
    }
    const magic = data.readUInt32LE(p);
    if (magic !== MAGIC) throw corrupt('lz4', `bad frame magic 0x${magic.toString(16)} at byte ${p} (expected 0x184d2204; legacy and raw LZ4 blocks are not Kafka's v2 format)`);
    p = frame(data, p + 4, out, maxBytes);
    frames++;
  }
  if (frames === 0) throw corrupt('lz4', 'no LZ4 frame, only skippable frames');
  return out.result();
}

function need(data: Buffer, p: number, n: number, what: string): void {
  needBytes('lz4', data, p, n, what);
}

/** Decodes one frame whose descriptor starts at `p`; returns where the frame ends. */
function frame(data: Buffer, p: number, out: BoundedOutput, maxBytes: number): number {
  need(data, p, 3, 'frame descriptor');
  const descStart = p;
  const flg = data[p++];
  const bd = data[p++];
  if ((flg & Flg.versionMask) !== Flg.version1) throw corrupt('lz4', `frame version ${(flg & Flg.versionMask) >> 6} is not 1`);
  if (flg & Flg.reserved || bd & 0x8f) throw corrupt('lz4', `reserved bits set in the frame descriptor (FLG 0x${flg.toString(16)}, BD 0x${bd.toString(16)})`);
  const blockMax = BLOCK_MAX[(bd >> 4) & 7];
  if (blockMax === 0) throw corrupt('lz4', `invalid block maximum size code ${(bd >> 4) & 7}`);
  let contentSize = -1;
  if (flg & Flg.contentSize) {
    need(data, p, 8, 'content size');
    contentSize = data.readUInt32LE(p) + data.readUInt32LE(p + 4) * 2 ** 32;
    if (contentSize > maxBytes) throw overBudget('lz4', maxBytes, `the frame declares a content size of ${contentSize} bytes,`);
    p += 8;
  }
  if (flg & Flg.dictId) throw corrupt('lz4', 'frame needs a preset dictionary, which Kafka never uses');
  need(data, p, 1, 'descriptor checksum');
  const hc = (xxhash32(data, descStart, p - descStart) >>> 8) & 0xff;
  if (data[p] !== hc) throw corrupt('lz4', `frame descriptor checksum is 0x${data[p].toString(16)}, computed 0x${hc.toString(16)}`);
  p++;
  const frameStart = out.length;
  // A declared size is a hint, not a promise: an LZ4 byte yields at most 255 output bytes.
  if (contentSize > 0) out.reserve(Math.min(contentSize, (data.length - p) * 255));
  const independent = (flg & Flg.independent) !== 0;
  for (let block = 0; ; block++) {
    need(data, p, 4, `block ${block} size`);
    const word = data.readUInt32LE(p);
    p += 4;
    if (word === 0) break;
    const size = word & 0x7fffffff;
    if (size > blockMax) throw corrupt('lz4', `block ${block} is ${size} bytes, more than the frame's ${blockMax}-byte maximum`);
    need(data, p, size, `block ${block}`);
    if (flg & Flg.blockChecksum) {
      need(data, p + size, 4, `block ${block} checksum`);
      const sum = xxhash32(data, p, size);
      if (data.readUInt32LE(p + size) !== sum) throw corrupt('lz4', `block ${block} checksum mismatch`);
    }
    const blockStart = out.length;
    if (word & 0x80000000) {
      out.reserve(size);
      data.copy(out.buf, out.length, p, p + size);
      out.length += size;
    } else {
      decodeBlock(data, p, p + size, out, independent ? blockStart : frameStart, block);
      if (out.length - blockStart > blockMax) throw corrupt('lz4', `block ${block} decompresses to ${out.length - blockStart} bytes, more than the frame's ${blockMax}-byte maximum`);
    }
    p += size + (flg & Flg.blockChecksum ? 4 : 0);
  }
  const produced = out.length - frameStart;
  if (contentSize >= 0 && produced !== contentSize) throw corrupt('lz4', `frame decompresses to ${produced} bytes but declares a content size of ${contentSize}`);
  if (flg & Flg.contentChecksum) {
    need(data, p, 4, 'content checksum');
    if (data.readUInt32LE(p) !== xxhash32(out.buf, frameStart, produced)) throw corrupt('lz4', 'content checksum mismatch');
    p += 4;
  }
  return p;
}

function decodeBlock(src: Buffer, ip: number, end: number, out: BoundedOutput, floor: number, block: number): void {
  for (;;) {
    const token = src[ip++];
    let lit = token >>> 4;
    if (lit === 15) {
      for (let b = 255; b === 255; ) {
        if (ip >= end) throw corrupt('lz4', `block ${block}: truncated literal length`);
        b = src[ip++];
        lit += b;
      }
    }
    if (lit > end - ip) throw corrupt('lz4', `block ${block}: ${lit} literals run past the end of the block`);
    out.reserve(lit);
    const dst = out.buf;
    let op = out.length;
    if (lit < 16) {
      for (let i = 0; i < lit; i++) dst[op + i] = src[ip + i];
    } else {
      src.copy(dst, op, ip, ip + lit);
    }
    ip += lit;
    op += lit;
    out.length = op;
    if (ip === end) return;
    if (end - ip < 2) throw corrupt('lz4', `block ${block}: truncated match offset`);
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    if (offset === 0 || offset > op - floor) throw corrupt('lz4', `block ${block}: match offset ${offset} reaches back past the ${op - floor} bytes it may refer to`);
    let len = (token & 15) + 4;
    if (len === 19) {
      for (let b = 255; b === 255; ) {
        if (ip >= end) throw corrupt('lz4', `block ${block}: truncated match length`);
        b = src[ip++];
        len += b;
      }
    }
    out.reserve(len);
    const buf = out.buf;
    let from = op - offset;
    if (offset >= len && len >= 16) {
      buf.copyWithin(op, from, from + len);
      op += len;
    } else {
      for (const stop = op + len; op < stop; ) buf[op++] = buf[from++];
    }
    out.length = op;
    if (ip >= end) throw corrupt('lz4', `block ${block} ends after a match; the last sequence must be literals`);
  }
}
