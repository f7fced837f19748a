/**
 * RemoteSegmentReader against the real directory store (FsBlobStore) holding segments that a
 * real PartitionLog wrote and sealed: every answer must equal the local log's for the same
 * bytes. `ProbeStore` is a thin wrapper of that real store (not a mock): it counts GETs,
 * measures how many run at once, and injects failures on request.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import type { Readable } from 'node:stream';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { BufferPool } from '../../src/storage/buffer-pool.js';
import { LOG_OVERHEAD, lastOffsetOf, readBatchHeader } from '../../src/storage/record-batch.js';
import { BlobStoreError, type BlobStore, type GetOptions, type ListOptions, type PutOptions } from '../../src/tiered/blobstore/blob-store.js';
import { FsBlobStore } from '../../src/tiered/blobstore/fs-blob-store.js';
import type { RemoteSegment } from '../../src/tiered/manifest.js';
import { RemoteSegmentReader } from '../../src/tiered/remote-reader.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { BASE_TIMESTAMP, variedBatches } from '../helpers/varied-batches.js';

const BLOCK = 4096;

class ProbeStore implements BlobStore {
  readonly name: string;
  readonly gets: Array<{ key: string; range?: { start: number; end: number } }> = [];
  inFlight = 0;
  maxInFlight = 0;
  delayMs = 0;
  /** GETs of keys matching this fail with the given kind, while set. */
  fail: { match: (key: string) => boolean; kind: 'retriable' | 'fatal' } | undefined;
  /** Ranged GETs that reached past the object's last byte (must stay 0). */
  pastEnd = 0;
  readonly sizes = new Map<string, number>();

  constructor(readonly inner: FsBlobStore) {
    this.name = inner.name;
  }

  gotten(key: string): number {
    return this.gets.filter((g) => g.key === key).length;
  }

  async put(key: string, body: Buffer | Readable, opts: PutOptions): Promise<{ etag?: string }> {
    if (Buffer.isBuffer(body)) this.sizes.set(key, body.length);
    return this.inner.put(key, body, opts);
  }

  async get(key: string, opts: GetOptions): Promise<Buffer> {
    this.gets.push({ key, range: opts.range });
    const size = this.sizes.get(key);
    if (opts.range && size !== undefined && opts.range.end >= size) this.pastEnd++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      if (this.fail?.match(key)) throw new BlobStoreError(this.fail.kind, { store: this.name, op: 'get', key }, 'injected by the test', { status: 503 });
      return await this.inner.get(key, opts);
    } finally {
      this.inFlight--;
    }
  }

  head(key: string, opts: { signal: AbortSignal }) {
    return this.inner.head(key, opts);
  }
  list(prefix: string, opts: ListOptions) {
    return this.inner.list(prefix, opts);
  }
  delete(key: string, opts: { signal: AbortSignal }) {
    return this.inner.delete(key, opts);
  }
  close() {
    return this.inner.close();
  }
}

const signal = new AbortController().signal;
const cleanups: Array<() => void> = [];
const readers: RemoteSegmentReader[] = [];
let log: PartitionLog;
let probe: ProbeStore;
let segs: RemoteSegment[];
let minTs = 0n;
let maxTs = 0n;

before(async () => {
  const t = tmpDir('meridian-remote-reader-');
  cleanups.push(t.cleanup);
  log = await PartitionLog.open(path.join(t.dir, 'log'), { segmentBytes: 64 * 1024, indexIntervalBytes: 1024, flushMode: 'interval' });
  for (const b of variedBatches(260)) await log.append(b, { sync: false });
  await log.roll();
  probe = new ProbeStore(new FsBlobStore({ dir: path.join(t.dir, 'bucket') }));
  segs = [];
  for (const s of log.segments().filter((x) => x.sealed)) {
    const dataKey = `p0/${s.baseOffset}-a.log`;
    const indexKey = `p0/${s.baseOffset}-a.index`;
    const index = fs.readFileSync(s.indexPath);
    await probe.put(dataKey, fs.readFileSync(s.logPath), { signal });
    await probe.put(indexKey, index, { signal });
    segs.push({ ...s, attemptId: 'a', dataKey, indexKey, indexSizeBytes: index.length, uploadedAt: new Date().toISOString() });
  }
  const all = log.segments().map((s) => s.maxTimestamp);
  maxTs = all.reduce((a, b) => (b > a ? b : a));
  minTs = BASE_TIMESTAMP - 10n;
});
after(async () => {
  for (const r of readers) await r.close();
  await log?.close();
  cleanups.forEach((c) => c());
});

function reader(opts: Partial<ConstructorParameters<typeof RemoteSegmentReader>[0]> = {}): RemoteSegmentReader {
  const r = new RemoteSegmentReader({ store: probe, cacheBytes: 1024 * 1024, blockBytes: BLOCK, ...opts });
  readers.push(r);
  return r;
}

async function local(offset: bigint, maxBytes: number): Promise<Buffer> {
  return (await log.read(offset, maxBytes)).records;
}

function offsetsOf(s: RemoteSegment): bigint[] {
  return Array.from({ length: Number(s.nextOffset - s.baseOffset) }, (_, i) => s.baseOffset + BigInt(i));
}

function storageError(code: string, retriable: boolean, mentions: RegExp | string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof MeridianError, `not a MeridianError: ${err}`);
    assert.equal(err.code, code);
    assert.equal(err.retriable, retriable, err.message);
    assert.match(err.message, typeof mentions === 'string' ? new RegExp(mentions.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : mentions);
    return true;
  };
}

test('the fixture has many sealed segments and batches larger than a block', () => {
  assert.ok(segs.length >= 8, `only ${segs.length} segments`);
  assert.ok(segs.some((s) => s.sizeBytes % BLOCK !== 0), 'some object ends in a short block');
});

test('every offset at budgets 1, small, block-sized and huge reads byte-identical to the local log (large and tiny cache)', async () => {
  const big = reader();
  const tiny = reader({ cacheBytes: 3 * BLOCK, readAheadBlocks: 1 });
  const budgets = [1, 200, 1500, BLOCK, 3 * BLOCK + 7, 1 << 30];
  for (const s of segs) {
    for (const offset of offsetsOf(s)) {
      for (const maxBytes of budgets) {
        const want = await local(offset, maxBytes);
        assert.deepEqual(await big.read(s, offset, maxBytes), want, `offset ${offset} budget ${maxBytes}`);
        assert.deepEqual(await tiny.read(s, offset, maxBytes), want, `tiny cache: offset ${offset} budget ${maxBytes}`);
        assert.ok(tiny.stats().bytesCached <= 3 * BLOCK, 'the cache stays within its bound');
      }
    }
  }
  assert.ok(tiny.stats().evictions > 0);
  assert.equal(probe.pastEnd, 0, 'no ranged GET reached past an object');
});

test('random offsets, budgets and block sizes (down to less than a header) match the local log', async () => {
  const readers = new Map<number, RemoteSegmentReader>();
  const withBlock = (b: number) => readers.get(b) ?? readers.set(b, reader({ blockBytes: b, cacheBytes: 8 * b })).get(b)!;
  await fc.assert(
    fc.asyncProperty(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 40_000 }), fc.constantFrom(40, 61, 100, 1000, BLOCK, 65_536), async (si, oi, maxBytes, blockBytes) => {
      const s = segs[si % segs.length];
      const offset = s.baseOffset + BigInt(oi % Number(s.nextOffset - s.baseOffset));
      assert.deepEqual(await withBlock(blockBytes).read(s, offset, maxBytes), await local(offset, maxBytes));
    }),
    { numRuns: 250 },
  );
});

test('offsetForTimestamp matches the local log for timestamps spanning every segment', async () => {
  const r = reader();
  for (let ts = minTs; ts <= maxTs + 2n; ts++) {
    let got: { offset: bigint; timestamp: bigint } | null = null;
    for (const s of segs) {
      got = await r.offsetForTimestamp(s, ts);
      if (got) break;
    }
    assert.deepEqual(got, await log.offsetForTimestamp(ts), `timestamp ${ts}`);
  }
});

test('sequential re-reads hit the cache: the hit ratio rises and GETs stop', async () => {
  const r = reader({ readAheadBlocks: 0 });
  const s = segs[1];
  const pass = async () => {
    for (const offset of offsetsOf(s)) await r.read(s, offset, 1);
  };
  await pass();
  const gets = probe.gotten(s.dataKey);
  const first = r.stats();
  await pass();
  await pass();
  const later = r.stats();
  assert.equal(probe.gotten(s.dataKey), gets, 'no GET after the first pass');
  assert.ok(later.hitRatio > first.hitRatio, `${later.hitRatio} > ${first.hitRatio}`);
  assert.equal(later.indexMisses, 1);
  assert.equal(later.getsIssued, first.getsIssued);
});

test('concurrent reads of the same blocks share one GET per block', async () => {
  const r = reader({ readAheadBlocks: 0 });
  for (const s of segs.slice(0, 4)) {
    const before = probe.gets.length;
    const results = await Promise.all(Array.from({ length: 20 }, () => r.read(s, s.baseOffset, 100)));
    const want = await local(s.baseOffset, 100);
    for (const got of results) assert.deepEqual(got, want);
    const gets = probe.gets.slice(before);
    const blocks = gets.filter((g) => g.key === s.dataKey).map((g) => g.range!.start);
    assert.ok(blocks.length > 0);
    assert.equal(new Set(blocks).size, blocks.length, `a block was fetched twice: ${blocks}`);
    assert.equal(gets.filter((g) => g.key === s.indexKey).length, 1);
  }
  assert.ok(r.stats().sharedGets >= 19 * 4);
});

test('read-ahead fetches the following blocks in the background; the last block is short', async () => {
  const r = reader({ readAheadBlocks: 2 });
  const s = segs.find((x) => x.sizeBytes > 4 * BLOCK && x.sizeBytes % BLOCK !== 0)!;
  const ranges = () => probe.gets.filter((g) => g.key === s.dataKey).map((g) => g.range!.start / BLOCK);
  const before = ranges().length;
  await r.read(s, s.baseOffset, 1);
  await r.idle();
  assert.deepEqual(ranges().slice(before).sort((a, b) => a - b).slice(0, 3), [0, 1, 2]);
  assert.ok(r.stats().prefetches >= 2);
  const last = s.nextOffset - 1n;
  await r.read(s, last, 1 << 20);
  await r.idle();
  const tail = probe.gets.filter((g) => g.key === s.dataKey && g.range!.end === s.sizeBytes - 1);
  assert.ok(tail.length >= 1, 'the short last block was fetched up to the last byte exactly');
  assert.equal(probe.pastEnd, 0);
});

test('GETs in flight never exceed maxConcurrentGets', async () => {
  const r = reader({ maxConcurrentGets: 3, readAheadBlocks: 2, cacheBytes: 64 * BLOCK });
  probe.maxInFlight = 0;
  probe.delayMs = 3;
  try {
    const reads = segs.flatMap((s) => [s.baseOffset, (s.baseOffset + s.nextOffset) / 2n].map((o) => r.read(s, o, 3 * BLOCK).then(async (got) => assert.deepEqual(got, await local(o, 3 * BLOCK)))));
    await Promise.all(reads);
    await r.idle();
  } finally {
    probe.delayMs = 0;
  }
  assert.ok(probe.maxInFlight <= 3, `max in flight ${probe.maxInFlight}`);
  assert.ok(probe.maxInFlight >= 2, 'the limit was actually reached for');
});

test('a retriable store error surfaces as retriable STORAGE_IO naming the object and is not cached', async () => {
  const r = reader({ readAheadBlocks: 0 });
  const s = segs[3];
  probe.fail = { match: (k) => k === s.dataKey, kind: 'retriable' };
  try {
    await assert.rejects(r.read(s, s.baseOffset, 100), storageError(ErrorCode.StorageIo, true, s.dataKey));
    assert.equal(r.stats().bytesCached, 0, 'the failed GET left nothing in the cache');
    probe.fail = { match: (k) => k === s.dataKey, kind: 'fatal' };
    await assert.rejects(r.read(s, s.baseOffset, 100), storageError(ErrorCode.StorageIo, false, s.dataKey));
  } finally {
    probe.fail = undefined;
  }
  const gets = probe.gotten(s.dataKey);
  assert.deepEqual(await r.read(s, s.baseOffset, 100), await local(s.baseOffset, 100));
  assert.ok(probe.gotten(s.dataKey) > gets, 'the next read fetched again');
});

test('a missing data or index object is a STORAGE_IO error naming it', async () => {
  const r = reader();
  const s = segs[0];
  const noData = { ...s, dataKey: 'p0/gone.log' };
  await assert.rejects(r.read(noData, s.baseOffset, 100), storageError(ErrorCode.StorageIo, false, 'p0/gone.log'));
  const noIndex = { ...s, indexKey: 'p0/gone.index' };
  await assert.rejects(r.read(noIndex, s.baseOffset, 100), storageError(ErrorCode.StorageIo, false, 'p0/gone.index'));
  await assert.rejects(r.offsetForTimestamp(noIndex, minTs), storageError(ErrorCode.StorageIo, false, 'p0/gone.index'));
  await assert.rejects(r.read(s, s.nextOffset, 100), storageError(ErrorCode.OffsetOutOfRange, false, 'outside'));
});

test('a flipped byte in the data object fails the read, never returns it, and a restored object reads again', async () => {
  const s = segs.find((x) => x.sizeBytes > 3 * BLOCK)!;
  const good = fs.readFileSync(log.segments().find((x) => x.baseOffset === s.baseOffset)!.logPath);
  const r = reader();
  const pos = 61 + 5; // inside the first batch's records, covered by its CRC
  await probe.put(s.dataKey, flip(good, pos), { signal });
  try {
    await assert.rejects(r.read(s, s.baseOffset, 1 << 20), storageError(ErrorCode.StorageIo, false, new RegExp(`${s.dataKey}.*corrupt`)));
    assert.ok(r.stats().corruptions >= 1);
  } finally {
    await probe.put(s.dataKey, good, { signal });
  }
  assert.deepEqual(await r.read(s, s.baseOffset, 1 << 20), await local(s.baseOffset, 1 << 20), 'cached bad blocks were dropped');
});

test('wherever a byte is flipped, every read either fails as corrupt or returns the original bytes', async () => {
  const s = segs.find((x) => x.sizeBytes > 3 * BLOCK)!;
  const good = fs.readFileSync(log.segments().find((x) => x.baseOffset === s.baseOffset)!.logPath);
  const starts: number[] = [];
  for (let p = 0; p < good.length; p += good.readInt32BE(p + 8) + LOG_OVERHEAD) starts.push(p);
  const offsets = offsetsOf(s);
  const want = new Map<string, Buffer>();
  for (const o of offsets) for (const b of [1, 5000]) want.set(`${o}/${b}`, await local(o, b));
  try {
    for (const batch of [0, 1, Math.floor(starts.length / 2), starts.length - 1]) {
      // baseOffset, length, magic, CRC, attributes, payload, last byte; never 12..15, the
      // partition leader epoch, which no per-batch check covers.
      const end = (starts[batch + 1] ?? good.length) - 1;
      for (const at of [7, 11, 16, 18, 22, 70, end - starts[batch]]) {
        await probe.put(s.dataKey, flip(good, starts[batch] + at), { signal });
        const r = new RemoteSegmentReader({ store: probe, cacheBytes: 64 * BLOCK, blockBytes: 1000 });
        let failures = 0;
        for (const o of offsets) {
          for (const b of [1, 5000]) {
            try {
              assert.deepEqual(await r.read(s, o, b), want.get(`${o}/${b}`), `flip at ${starts[batch] + at}: offset ${o} budget ${b} returned altered bytes`);
            } catch (err) {
              if (err instanceof assert.AssertionError) throw err;
              storageError(ErrorCode.StorageIo, false, /corrupt/)(err);
              failures++;
            }
          }
        }
        assert.ok(failures > 0, `flip at ${starts[batch] + at} went unnoticed by every read`);
        await r.close();
      }
    }
  } finally {
    await probe.put(s.dataKey, good, { signal });
  }
});

test('issue 15: block buffers are recycled and pooled output is used, and every read still equals the local log', async () => {
  // A cache of 8 blocks over segments of many: evictions all the time, so buffers go round.
  const r = reader({ cacheBytes: 8 * BLOCK, readAheadBlocks: 2 });
  const pool = new BufferPool();
  for (let pass = 0; pass < 2; pass++) {
    for (const s of segs) {
      let offset = s.baseOffset;
      while (offset < s.nextOffset) {
        const want = await local(offset, 3 * BLOCK);
        const got = await r.readPooled(s, offset, 3 * BLOCK, { signal, pool });
        assert.deepEqual(got.records, want, `pass ${pass} offset ${offset}`);
        assert.ok(got.pooled !== undefined && got.records.buffer === got.pooled.buffer, 'the records lie in a pooled buffer');
        offset = lastOffsetOf(readBatchHeader(got.records, lastBatchAt(got.records))) + 1n;
        pool.release(got.pooled); // the next read may reuse it at once
      }
    }
  }
  await r.idle();
  const st = r.stats();
  assert.ok(st.evictions > 0 && st.buffersReused > 0, `evictions ${st.evictions}, buffers reused ${st.buffersReused}`);
});

test('issue 15: a batch CRC is computed once per fetched copy: re-reads of cached bytes skip it, re-fetched bytes are checked again', async () => {
  const s = segs.find((x) => x.sizeBytes > 3 * BLOCK)!;
  const r = reader({ cacheBytes: 1024 * 1024, readAheadBlocks: 0 });
  const want = await local(s.baseOffset, 1 << 20);
  assert.deepEqual(await r.read(s, s.baseOffset, 1 << 20), want);
  const once = r.stats().crcBytes;
  assert.equal(once, want.length, 'every byte served was checked');
  // A second consumer of the same cached blocks, whole and in pieces: nothing checked again.
  assert.deepEqual(await r.read(s, s.baseOffset, 1 << 20), want);
  for (const offset of offsetsOf(s).filter((_, i) => i % 7 === 0)) await r.read(s, offset, 2 * BLOCK);
  assert.equal(r.stats().crcBytes, once);
  // Dropped from the cache (as on eviction): the next GET's bytes are checked again, and a
  // byte flipped in the store meanwhile is caught although the old bytes had passed.
  const good = fs.readFileSync(log.segments().find((x) => x.baseOffset === s.baseOffset)!.logPath);
  const small = reader({ cacheBytes: 8 * BLOCK, readAheadBlocks: 0 });
  const first = await local(s.baseOffset, 1);
  assert.deepEqual(await small.read(s, s.baseOffset, 1), first);
  await probe.put(s.dataKey, flip(good, 61 + 5), { signal });
  try {
    // Still cached: the bytes that passed are served (they are the object's true bytes).
    assert.deepEqual(await small.read(s, s.baseOffset, 1), first);
    for (const other of segs.filter((x) => x !== s)) await small.read(other, other.baseOffset, 1 << 20); // evicts s's blocks
    assert.ok(small.stats().evictions > 0);
    await assert.rejects(small.read(s, s.baseOffset, 1 << 20), storageError(ErrorCode.StorageIo, false, new RegExp(`${s.dataKey}.*CRC`)));
  } finally {
    await probe.put(s.dataKey, good, { signal });
  }
});

test('a corrupt index object fails the read and is not cached', async () => {
  const s = segs[4];
  const good = fs.readFileSync(log.segments().find((x) => x.baseOffset === s.baseOffset)!.indexPath);
  const r = reader();
  await probe.put(s.indexKey, flip(good, 50), { signal });
  try {
    await assert.rejects(r.read(s, s.baseOffset, 100), storageError(ErrorCode.StorageIo, false, new RegExp(`${s.indexKey}.*corrupt`)));
  } finally {
    await probe.put(s.indexKey, good, { signal });
  }
  assert.deepEqual(await r.read(s, s.baseOffset, 100), await local(s.baseOffset, 100));
});

test('an aborted read rejects; close is idempotent and later reads fail', async () => {
  const r = reader();
  const s = segs[5];
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(r.read(s, s.baseOffset, 100, { signal: ac.signal }), (err: unknown) => err instanceof MeridianError && err.code === ErrorCode.StorageIo);
  assert.deepEqual(await r.read(s, s.baseOffset, 100), await local(s.baseOffset, 100));
  await r.close();
  await r.close();
  await assert.rejects(r.read(s, s.baseOffset, 100), storageError(ErrorCode.StorageIo, true, 'closed'));
});

/** Byte position of the last batch in `records` (whole batches, concatenated). */
function lastBatchAt(records: Buffer): number {
  let p = 0;
  for (;;) {
    const next = p + records.readInt32BE(p + 8) + LOG_OVERHEAD;
    if (next >= records.length) return p;
    p = next;
  }
}

function flip(buf: Buffer, pos: number): Buffer {
  const copy = Buffer.from(buf);
  copy[pos] ^= 0x10;
  return copy;
}
