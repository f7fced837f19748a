import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { SegmentIndex } from '../../src/storage/segment-index.js';

/** A segment's batches as the log lays them out: consecutive offsets and positions. */
const layout = fc.array(fc.record({ records: fc.integer({ min: 1, max: 50 }), bytes: fc.integer({ min: 61, max: 20_000 }), ts: fc.integer({ min: 0, max: 1_000_000 }) }), {
  minLength: 1,
  maxLength: 300,
});

function build(batches: { records: number; bytes: number; ts: number }[], interval: number) {
  const index = new SegmentIndex();
  const rows: { rel: number; last: number; pos: number; ts: number }[] = [];
  let rel = 0;
  let pos = 0;
  let since = 0;
  for (const b of batches) {
    if (index.offsetEntries === 0 || since >= interval) {
      index.addOffset(rel, pos);
      since = 0;
    }
    since += b.bytes;
    index.addTimestamp(b.ts, rel);
    rows.push({ rel, last: rel + b.records - 1, pos, ts: b.ts });
    rel += b.records;
    pos += b.bytes;
  }
  return { index, rows };
}

test('offset lookup never starts a scan past the batch that holds the offset', () => {
  fc.assert(
    fc.property(layout, fc.integer({ min: 1, max: 64 * 1024 }), fc.nat(), (batches, interval, pick) => {
      const { index, rows } = build(batches, interval);
      const total = rows[rows.length - 1].last + 1;
      const target = pick % total;
      const holder = rows.find((r) => r.rel <= target && target <= r.last)!;
      const pos = index.lookupPosition(target);
      assert.ok(pos <= holder.pos, `start ${pos} is past the holder at ${holder.pos}`);
      assert.ok(rows.some((r) => r.pos === pos), 'start is a batch boundary');
      // Sparse, but not useless: no more than one interval of bytes before the holder.
      const gap = rows.filter((r) => r.pos >= pos && r.pos < holder.pos).reduce((s, r) => s + (rows[rows.indexOf(r) + 1]?.pos ?? 0) - r.pos, 0);
      const largest = Math.max(...batches.map((b) => b.bytes));
      assert.ok(gap <= interval + largest, `scan of ${gap} bytes exceeds interval ${interval}`);
    }),
    { numRuns: 300 },
  );
});

test('time lookup starts at or before the first batch whose max timestamp reaches the target', () => {
  fc.assert(
    fc.property(layout, fc.integer({ min: 0, max: 1_100_000 }), (batches, target) => {
      const { index, rows } = build(batches, 4096);
      const startRel = index.lookupTimestamp(target);
      const firstHit = rows.find((r) => r.ts >= target);
      if (firstHit) assert.ok(startRel <= firstHit.rel);
      // Everything before the start is older than the target.
      for (const r of rows) if (r.rel < startRel) assert.ok(r.ts < target);
    }),
    { numRuns: 300 },
  );
});

test('encode/decode round-trips and rejects any corruption', () => {
  fc.assert(
    fc.property(layout, (batches) => {
      const { index } = build(batches, 4096);
      const summary = { segmentBytes: 12345, baseOffset: 100n, nextOffset: 200n, maxTimestamp: BigInt(index.maxTimestamp), dataCrc32c: 0xdeadbeef };
      const file = index.encode(summary);
      const back = SegmentIndex.decode(file);
      assert.ok(back);
      assert.deepEqual(back.summary, summary);
      assert.deepEqual(back.index.encode(summary), file);
      const bad = Buffer.from(file);
      bad[Math.floor(file.length / 2)] ^= 1;
      assert.equal(SegmentIndex.decode(bad), null);
      assert.equal(SegmentIndex.decode(file.subarray(0, file.length - 1)), null);
    }),
    { numRuns: 100 },
  );
});
