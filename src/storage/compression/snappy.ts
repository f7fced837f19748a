/**
 * Kafka codec 2, in both shapes producers send:
 * - raw snappy (librdkafka): a varint uncompressed length, then elements;
 * - xerial framing (the Java client's SnappyOutputStream): the 8-byte magic
 *   0x82 "SNAPPY" 0x00, int32 version, int32 compatible version, then repeated
 *   [int32 BE length][raw snappy block].
 *
 * Raw snappy elements (format_description.txt of google/snappy), by the tag's low two bits:
 *   00 literal   length-1 in the upper six bits; 60..63 mean 1..4 little-endian length bytes follow
 *   01 copy      length 4..11 from bits 2-4, 11-bit offset from bits 5-7 and one more byte
 *   10 copy      length 1..64 from the upper six bits, 16-bit little-endian offset
 *   11 copy      length 1..64 from the upper six bits, 32-bit little-endian offset
 * The declared length is checked against the budget before anything is allocated, and every
 * element is checked against the input, the output written so far and the declared length,
 * so nothing is ever read or written out of bounds.
 */
import { corrupt, overBudget } from './output-budget.js';

const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_HEADER_BYTES = 16;

export function snappyDecompress(data: Buffer, maxBytes: number): Buffer {
  if (data.length >= XERIAL_MAGIC.length && data.subarray(0, XERIAL_MAGIC.length).equals(XERIAL_MAGIC)) return xerial(data, maxBytes);
  const [declared, body] = preamble(data, 0, data.length, 'stream');
  plausible(declared, data.length - body, 'stream');
  if (declared > maxBytes) throw overBudget('snappy', maxBytes, `the stream declares ${declared} bytes,`);
  const out = Buffer.allocUnsafe(declared);
  decodeRaw(data, body, data.length, out, 0, declared, 'stream');
  return out;
}

function xerial(data: Buffer, maxBytes: number): Buffer {
  if (data.length < XERIAL_HEADER_BYTES) throw corrupt('snappy', `xerial header is ${data.length} bytes, expected ${XERIAL_HEADER_BYTES}`);
  // Every block's declared length is summed first: one allocation, checked against the budget.
  let total = 0;
  let blocks = 0;
  for (let p = XERIAL_HEADER_BYTES; p < data.length; blocks++) {
    const [len, body] = xerialBlock(data, p, blocks);
    const [declared, elements] = preamble(data, body, body + len, `xerial block ${blocks}`);
    plausible(declared, body + len - elements, `xerial block ${blocks}`);
    total += declared;
    if (total > maxBytes) throw overBudget('snappy', maxBytes, `the xerial blocks declare ${total} bytes or more in all,`);
    p = body + len;
  }
  if (blocks === 0) throw corrupt('snappy', 'xerial stream holds no block');
  const out = Buffer.allocUnsafe(total);
  let written = 0;
  for (let p = XERIAL_HEADER_BYTES, i = 0; p < data.length; i++) {
    const [len, body] = xerialBlock(data, p, i);
    const [declared, elements] = preamble(data, body, body + len, `xerial block ${i}`);
    decodeRaw(data, elements, body + len, out, written, declared, `xerial block ${i}`);
    written += declared;
    p = body + len;
  }
  return out;
}

function xerialBlock(data: Buffer, p: number, index: number): [length: number, body: number] {
  if (data.length - p < 4) throw corrupt('snappy', `xerial block ${index}: ${data.length - p} bytes left where a 4-byte block length belongs`);
  const len = data.readInt32BE(p);
  if (len <= 0 || len > data.length - p - 4) throw corrupt('snappy', `xerial block ${index} declares ${len} bytes but ${data.length - p - 4} remain`);
  return [len, p + 4];
}

/**
 * The densest element is a 3-byte copy of 64 bytes, so n bytes of elements never decode to
 * more than 64n/3: a bigger declared length is a lie, refused before allocating for it.
 */
function plausible(declared: number, elementBytes: number, where: string): void {
  if (declared > Math.ceil((elementBytes * 64) / 3)) throw corrupt('snappy', `${where}: declares ${declared} bytes, more than ${elementBytes} bytes of snappy can decode to`);
}

/** The uncompressed-length varint (at most 32 bits, so at most 5 bytes). */
function preamble(src: Buffer, p: number, end: number, where: string): [length: number, next: number] {
  let v = 0;
  for (let shift = 0; ; shift += 7) {
    if (p >= end) throw corrupt('snappy', `${where}: truncated length preamble`);
    const b = src[p++];
    if (shift === 28 && b > 0x0f) throw corrupt('snappy', `${where}: length preamble does not fit 32 bits`);
    v += (b & 0x7f) * 2 ** shift;
    if ((b & 0x80) === 0) return [v, p];
  }
}

function decodeRaw(src: Buffer, ip: number, end: number, dst: Buffer, start: number, declared: number, where: string): void {
  let op = start;
  const opEnd = start + declared;
  while (ip < end) {
    const tag = src[ip++];
    const kind = tag & 3;
    let len: number;
    if (kind === 0) {
      len = tag >>> 2;
      if (len >= 60) {
        const n = len - 59;
        if (end - ip < n) throw corrupt('snappy', `${where}: truncated literal length at byte ${ip}`);
        len = src[ip] + (n > 1 ? src[ip + 1] * 0x100 : 0) + (n > 2 ? src[ip + 2] * 0x10000 : 0) + (n > 3 ? src[ip + 3] * 0x1000000 : 0);
        ip += n;
      }
      len += 1;
      if (len > end - ip) throw corrupt('snappy', `${where}: literal of ${len} bytes at byte ${ip} runs past the end of the input`);
      if (len > opEnd - op) throw corrupt('snappy', `${where}: literal of ${len} bytes overruns the declared length ${declared}`);
      if (len < 16) {
        for (let i = 0; i < len; i++) dst[op + i] = src[ip + i];
      } else {
        src.copy(dst, op, ip, ip + len);
      }
      ip += len;
      op += len;
      continue;
    }
    let offset: number;
    if (kind === 1) {
      if (ip >= end) throw corrupt('snappy', `${where}: truncated copy at byte ${ip}`);
      len = 4 + ((tag >>> 2) & 7);
      offset = ((tag >>> 5) << 8) | src[ip++];
    } else if (kind === 2) {
      if (end - ip < 2) throw corrupt('snappy', `${where}: truncated copy at byte ${ip}`);
      len = (tag >>> 2) + 1;
      offset = src[ip] | (src[ip + 1] << 8);
      ip += 2;
    } else {
      if (end - ip < 4) throw corrupt('snappy', `${where}: truncated copy at byte ${ip}`);
      len = (tag >>> 2) + 1;
      offset = src.readUInt32LE(ip);
      ip += 4;
    }
    if (offset === 0 || offset > op - start) throw corrupt('snappy', `${where}: copy offset ${offset} at byte ${ip} points before the start of the output (${op - start} bytes written)`);
    if (len > opEnd - op) throw corrupt('snappy', `${where}: copy of ${len} bytes overruns the declared length ${declared}`);
    // Overlapping copies (offset < len) repeat a pattern, so they go byte by byte.
    let from = op - offset;
    if (offset >= len && len >= 16) {
      dst.copyWithin(op, from, from + len);
      op += len;
    } else {
      for (const stop = op + len; op < stop; ) dst[op++] = dst[from++];
    }
  }
  if (op !== opEnd) throw corrupt('snappy', `${where}: ends after ${op - start} bytes but its preamble declares ${declared}`);
}
