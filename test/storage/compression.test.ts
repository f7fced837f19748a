/**
 * The decompressors against real compressors: zlib for gzip, snappyjs (raw, and in the
 * xerial framing the Java client writes, built here), lz4js and the lz4 command line tool
 * for LZ4 frames (with and without checksums, linked and independent blocks, content
 * size), the zstd command line tool for Zstandard. Bombs are refused against the budget;
 * truncated, garbled and random input is refused with CORRUPT_BATCH, never another
 * exception and never a hang.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { decompress } from '../../src/storage/compression/decompress.js';
import { xxhash32 } from '../../src/storage/compression/xxhash32.js';

const require = createRequire(import.meta.url);
const snappyjs = require('snappyjs') as { compress(b: Buffer): Buffer };
const lz4js = require('lz4js') as { compress(b: Buffer): Uint8Array };
const lz4jsXxh32 = require('lz4js/xxh32.js') as { hash(seed: number, b: Uint8Array, start: number, len: number): number };

const GZIP = 1;
const SNAPPY = 2;
const LZ4 = 3;
const ZSTD = 4;
const CODECS = [GZIP, SNAPPY, LZ4, ZSTD];
const MiB = 1024 * 1024;

/** Runs a compressor binary; fails (never skips) naming the tool when it is not installed. */
function tool(name: string, args: string[], input: Buffer): Buffer {
  const r = spawnSync(name, args, { input, maxBuffer: 256 * MiB });
  if (r.error) assert.fail(`the ${name} command line tool is needed for this test and could not run (${r.error.message}): apt-get install -y ${name}`);
  assert.equal(r.status, 0, `${name} ${args.join(' ')} exited ${r.status}: ${r.stderr.toString()}`);
  return r.stdout;
}

const zstdCli = (input: Buffer, ...args: string[]) => tool('zstd', ['-c', '-q', ...args], input);
const lz4Cli = (input: Buffer, ...args: string[]) => tool('lz4', ['-c', '-q', ...args], input);

/** The xerial framing of the Java client's SnappyOutputStream, with 32 KiB blocks as it uses. */
function xerial(input: Buffer, blockBytes = 32 * 1024): Buffer {
  const header = Buffer.alloc(16);
  Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]).copy(header);
  header.writeInt32BE(1, 8);
  header.writeInt32BE(1, 12);
  const parts = [header];
  for (let p = 0; p < input.length || p === 0; p += blockBytes) {
    const block = Buffer.from(snappyjs.compress(input.subarray(p, p + blockBytes)));
    const len = Buffer.alloc(4);
    len.writeInt32BE(block.length);
    parts.push(len, block);
    if (input.length === 0) break;
  }
  return Buffer.concat(parts);
}

/** Where each block of a xerial stream ends. */
function xerialBlockEnds(s: Buffer): number[] {
  const ends: number[] = [];
  for (let p = 16; p < s.length; ) {
    p += 4 + s.readInt32BE(p);
    ends.push(p);
  }
  return ends;
}

/** Data of the kinds record batches hold: text-like, repetitive, random, and empty. */
function samples(): Buffer[] {
  const text = Buffer.from(Array.from({ length: 3000 }, (_, i) => `{"user":${i % 97},"event":"click","page":"/p/${i % 13}"}`).join('\n'));
  return [
    Buffer.alloc(0),
    Buffer.from('x'),
    Buffer.from('hello hello hello hello hello hello'),
    text,
    crypto.randomBytes(70_000),
    Buffer.alloc(300_000, 'abcabcabd'),
    Buffer.concat([crypto.randomBytes(5000), Buffer.alloc(200_000, 7), crypto.randomBytes(3), text]),
  ];
}

function assertCorrupt(fn: () => unknown, pattern?: RegExp): MeridianError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  assert.ok(thrown !== undefined, 'expected a refusal');
  assert.ok(thrown instanceof MeridianError, `expected a MeridianError, got ${String(thrown)}`);
  assert.equal(thrown.code, ErrorCode.CorruptBatch, thrown.message);
  if (pattern) assert.match(thrown.message, pattern);
  return thrown;
}

test('gzip: zlib streams at every level round-trip', () => {
  for (const x of samples()) {
    for (const level of [1, 6, 9]) assert.ok(decompress(GZIP, zlib.gzipSync(x, { level }), 64 * MiB).equals(x));
  }
});

test('snappy: snappyjs raw streams and xerial-framed streams round-trip', () => {
  for (const x of samples()) {
    assert.ok(decompress(SNAPPY, Buffer.from(snappyjs.compress(x)), 64 * MiB).equals(x), `raw, ${x.length} bytes`);
    assert.ok(decompress(SNAPPY, xerial(x), 64 * MiB).equals(x), `xerial, ${x.length} bytes`);
    assert.ok(decompress(SNAPPY, xerial(x, 1000), 64 * MiB).equals(x), `xerial with small blocks, ${x.length} bytes`);
  }
});

test('lz4: lz4js frames and lz4 tool frames (checksums, linked blocks, content size) round-trip', () => {
  for (const x of samples()) {
    if (x.length > 0) {
      const frame = Buffer.from(lz4js.compress(x));
      assert.equal(frame.readUInt32LE(0), 0x184d2204, 'lz4js writes the LZ4 frame format');
      assert.ok(decompress(LZ4, frame, 64 * MiB).equals(x), `lz4js, ${x.length} bytes`);
    }
    for (const args of [[], ['-BD'], ['-BX'], ['--content-size'], ['-B4', '-BD', '-BX', '--content-size'], ['--no-frame-crc'], ['-9']]) {
      assert.ok(decompress(LZ4, lz4Cli(x, ...args), 64 * MiB).equals(x), `lz4 ${args.join(' ')}, ${x.length} bytes`);
    }
  }
});

test('lz4: concatenated frames and skippable frames decode as the spec asks', () => {
  const a = Buffer.from('first frame '.repeat(100));
  const b = crypto.randomBytes(1000);
  const skippable = Buffer.alloc(8 + 5);
  skippable.writeUInt32LE(0x184d2a53, 0);
  skippable.writeUInt32LE(5, 4);
  const stream = Buffer.concat([lz4Cli(a), skippable, lz4Cli(b, '-BX')]);
  assert.ok(decompress(LZ4, stream, MiB).equals(Buffer.concat([a, b])));
});

test('xxhash32 matches an independent implementation (lz4js) on every length 0-300', () => {
  const data = crypto.randomBytes(300);
  for (let n = 0; n <= 300; n++) {
    for (const seed of [0, 1, 0x9e3779b1]) assert.equal(xxhash32(data, 0, n, seed), lz4jsXxh32.hash(seed, data, 0, n) >>> 0, `length ${n}, seed ${seed}`);
  }
  assert.equal(xxhash32(Buffer.alloc(0), 0, 0), 0x02cc5d05, 'the spec value for empty input');
});

test('zstd: zstd tool frames at several levels, without checksum, and concatenated frames round-trip', () => {
  for (const x of samples()) {
    for (const args of [['-1'], ['-3'], ['-19'], ['--no-check'], ['--long=20', '-5']]) {
      assert.ok(decompress(ZSTD, zstdCli(x, ...args), 64 * MiB).equals(x), `zstd ${args.join(' ')}, ${x.length} bytes`);
    }
  }
  const a = Buffer.from('frame one, '.repeat(500));
  const b = crypto.randomBytes(5000);
  const skippable = Buffer.alloc(8 + 3);
  skippable.writeUInt32LE(0x184d2a5e, 0);
  skippable.writeUInt32LE(3, 4);
  assert.ok(decompress(ZSTD, Buffer.concat([zstdCli(a), skippable, zstdCli(b)]), MiB).equals(Buffer.concat([a, b])));
});

test('zstd: a window declared larger than the budget is shrunk to it, and the stream still decodes', () => {
  const x = Buffer.concat([Buffer.from('windowed '.repeat(3000)), crypto.randomBytes(2000)]);
  // Read from a pipe, the tool cannot know the size: it declares its level's window (2 MiB
  // at level 3) in a frame that is not single-segment, as the Java client does.
  const streamed = zstdCli(x, '-3');
  assert.equal(streamed[4] & 0x20, 0, 'not a single-segment frame');
  assert.ok(decompress(ZSTD, streamed, 200 * 1024).equals(x), 'decodes under a budget smaller than the declared window');
  // A 2 TiB window (exponent 31) would make fzstd itself refuse ("window size too large"),
  // so decoding proves the descriptor was shrunk before fzstd read it; the input is untouched.
  const huge = Buffer.from(streamed);
  huge[5] = 31 << 3;
  const before = Buffer.from(huge);
  assert.ok(decompress(ZSTD, huge, MiB).equals(x));
  assert.ok(huge.equals(before), 'the caller\'s buffer is not modified');
});

test('bombs: a small input that expands past the budget is refused for every codec, naming the budget', () => {
  const big = Buffer.alloc(20 * MiB);
  const budget = MiB;
  const bombs: Array<[number, string, Buffer]> = [
    [GZIP, 'gzip', zlib.gzipSync(big, { level: 9 })],
    [SNAPPY, 'snappy raw', Buffer.from(snappyjs.compress(big))],
    [SNAPPY, 'snappy xerial', xerial(big)],
    [LZ4, 'lz4js', Buffer.from(lz4js.compress(big))],
    [LZ4, 'lz4 tool', lz4Cli(big)],
    [LZ4, 'lz4 tool with content size', lz4Cli(big, '--content-size')],
    [ZSTD, 'zstd tool', zstdCli(big, '-19')],
    [ZSTD, 'zstd tool, streamed', tool('sh', ['-c', 'cat | zstd -c -q -3 -'], big)],
  ];
  for (const [codec, name, bomb] of bombs) {
    assert.ok(bomb.length < big.length / 20, `${name}: the bomb is small (${bomb.length} bytes)`);
    const e = assertCorrupt(() => decompress(codec, bomb, budget), /decompression budget/);
    assert.match(e.message, new RegExp(`${budget}-byte`), name);
    assert.ok(e.message.startsWith(`${['', 'gzip', 'snappy', 'lz4', 'zstd'][codec]}:`), `${name}: the message names the codec: ${e.message}`);
    // The same stream with room to spare decodes in full.
    assert.equal(decompress(codec, bomb, 32 * MiB).length, big.length, name);
  }
});

test('declared sizes are checked before anything is allocated for them', () => {
  // snappy: a preamble claiming 4 GiB over a few bytes.
  assertCorrupt(() => decompress(SNAPPY, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x61]), 64 * MiB), /declares 4294967295 bytes/);
  // snappy: a preamble within the budget that the elements cannot possibly fill.
  assertCorrupt(() => decompress(SNAPPY, Buffer.from([0x80, 0x80, 0x10, 0x00, 0x61]), 64 * MiB), /more than 2 bytes of snappy can decode to/);
  // zstd: a 1 TiB single-segment content size.
  const content = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0, 1, 0, 0, 0x01, 0x00, 0x00]);
  assertCorrupt(() => decompress(ZSTD, content, 64 * MiB), /content size of 1099511627776 bytes/);
  // lz4: a frame declaring 1 TiB of content.
  const lz4 = Buffer.alloc(4 + 2 + 8 + 1 + 4);
  lz4.writeUInt32LE(0x184d2204, 0);
  lz4[4] = 0x68; // version 1, independent blocks, content size
  lz4[5] = 0x40;
  lz4.writeUInt32LE(0, 6);
  lz4.writeUInt32LE(256, 10);
  lz4[14] = (xxhash32(lz4, 4, 10) >>> 8) & 0xff;
  assertCorrupt(() => decompress(LZ4, lz4, 64 * MiB), /content size of 1099511627776 bytes/);
});

test('every truncation of a valid stream is refused as CORRUPT_BATCH', () => {
  const x = Buffer.concat([Buffer.from('some records, some records, '.repeat(40)), crypto.randomBytes(300)]);
  const streams: Array<[number, string, Buffer]> = [
    [GZIP, 'gzip', zlib.gzipSync(x)],
    [SNAPPY, 'snappy raw', Buffer.from(snappyjs.compress(x))],
    [SNAPPY, 'snappy xerial', xerial(x, 256)],
    [LZ4, 'lz4js', Buffer.from(lz4js.compress(x))],
    [LZ4, 'lz4 tool', lz4Cli(x, '-BX', '-BD')],
    [ZSTD, 'zstd tool', zstdCli(x)],
  ];
  for (const [codec, name, s] of streams) {
    for (let n = 0; n < s.length; n++) {
      if (name === 'snappy xerial' && xerialBlockEnds(s).includes(n)) {
        // The framing has no end mark: cut between blocks, it is a shorter valid stream. In
        // a record batch the record walk then finds records missing.
        assert.ok(x.subarray(0, decompress(codec, s.subarray(0, n), MiB).length).equals(decompress(codec, s.subarray(0, n), MiB)));
        continue;
      }
      assertCorrupt(() => decompress(codec, s.subarray(0, n), MiB), undefined);
    }
    assert.ok(decompress(codec, s, MiB).equals(x), name);
  }
});

test('checksums catch corruption: LZ4 block, content and descriptor checksums; snappy offsets; unknown codec', () => {
  const x = Buffer.from('checksummed '.repeat(500));
  const framed = lz4Cli(x, '-BX');
  // Flip a bit inside the first block's data (after magic 4, FLG, BD, HC, block size 4).
  const bad = Buffer.from(framed);
  bad[4 + 3 + 4 + 5] ^= 0x01;
  assertCorrupt(() => decompress(LZ4, bad, MiB), /lz4: .*(checksum|offset|literals|past)/);
  const hc = Buffer.from(framed);
  hc[6] ^= 0xff;
  assertCorrupt(() => decompress(LZ4, hc, MiB), /descriptor checksum/);
  // A copy reaching back before the start of the output.
  assertCorrupt(() => decompress(SNAPPY, Buffer.from([0x08, 0x05, 0x10, 0x00]), MiB), /copy offset 16/);
  assertCorrupt(() => decompress(5, Buffer.from('x'), MiB), /unknown compression codec 5/);
});

/** Applies a few random byte flips, insertions and deletions. */
function mutate(s: Buffer, edits: Array<{ kind: number; at: number; byte: number }>): Buffer {
  let out = Buffer.from(s);
  for (const e of edits) {
    const at = out.length === 0 ? 0 : e.at % out.length;
    if (e.kind === 0 && out.length > 0) out[at] = e.byte;
    else if (e.kind === 1) out = Buffer.concat([out.subarray(0, at), Buffer.from([e.byte]), out.subarray(at)]);
    else out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1)]);
  }
  return out;
}

/** Either decodes within the budget or throws CORRUPT_BATCH; any other outcome fails. */
function decodesOrRefuses(codec: number, data: Buffer, budget: number): void {
  try {
    const out = decompress(codec, data, budget);
    assert.ok(Buffer.isBuffer(out), 'returns a Buffer');
    assert.ok(out.length <= budget, `output of ${out.length} bytes within the ${budget}-byte budget`);
  } catch (err) {
    if (!(err instanceof MeridianError) || err.code !== ErrorCode.CorruptBatch) {
      assert.fail(`codec ${codec} threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)} for ${data.toString('hex').slice(0, 200)}`);
    }
  }
}

test('fuzz: random bytes, with and without a valid magic, are decoded or refused with CORRUPT_BATCH', () => {
  const prefixes: Record<number, Buffer[]> = {
    [GZIP]: [Buffer.from([0x1f, 0x8b, 0x08, 0x00])],
    [SNAPPY]: [Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1])],
    [LZ4]: [Buffer.from([0x04, 0x22, 0x4d, 0x18])],
    [ZSTD]: [Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
  };
  fc.assert(
    fc.property(fc.constantFrom(...CODECS), fc.boolean(), fc.uint8Array({ maxLength: 400 }), (codec, withMagic, bytes) => {
      const body = Buffer.from(bytes);
      decodesOrRefuses(codec, withMagic ? Buffer.concat([prefixes[codec][0], body]) : body, 64 * 1024);
    }),
    { numRuns: 4000, seed: 20261202 },
  );
});

test('fuzz: mutated valid streams of every codec are decoded or refused with CORRUPT_BATCH', () => {
  const x = Buffer.concat([Buffer.from('{"k":"value","n":12345} '.repeat(60)), crypto.randomBytes(200), Buffer.alloc(500, 1)]);
  const streams: Array<[number, Buffer]> = [
    [GZIP, zlib.gzipSync(x)],
    [SNAPPY, Buffer.from(snappyjs.compress(x))],
    [SNAPPY, xerial(x, 300)],
    [LZ4, Buffer.from(lz4js.compress(x))],
    [LZ4, lz4Cli(x, '-BD', '--no-frame-crc')],
    [LZ4, lz4Cli(x, '-BX', '--content-size')],
    [ZSTD, zstdCli(x)],
    [ZSTD, zstdCli(x, '--no-check', '-19')],
  ];
  const edit = fc.record({ kind: fc.integer({ min: 0, max: 2 }), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) });
  fc.assert(
    fc.property(fc.integer({ min: 0, max: streams.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 4 }), (i, edits) => {
      const [codec, s] = streams[i];
      decodesOrRefuses(codec, mutate(s, edits), 64 * 1024);
    }),
    { numRuns: 6000, seed: 7 },
  );
});
