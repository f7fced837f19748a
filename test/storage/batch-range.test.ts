/**
 * The batch-range selector both segment readers use (storage/batch-range.ts), against a
 * naive reference written from the rule itself, over random batch layouts: the batch that
 * holds `offset` (or the first after it), then every following one while the total stays
 * within `maxBytes` (at least the first: KIP-74), none whose base offset reaches `limit`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { BatchRange, selectBatchRange } from '../../src/storage/batch-range.js';
import { BATCH_HEADER_BYTES, LOG_OVERHEAD } from '../../src/storage/record-batch.js';

interface Laid {
  pos: number;
  size: number;
  base: bigint;
  last: bigint;
}

interface Case {
  batches: Laid[];
  bytes: Buffer;
  offset: bigint;
  maxBytes: number;
  limit: bigint | undefined;
}

/** Header fields the selector reads (base offset, length, last offset delta); the rest zero. */
function layout(spec: Array<{ records: number; size: number }>, firstOffset: bigint): { batches: Laid[]; bytes: Buffer } {
  const batches: Laid[] = [];
  let pos = 0;
  let base = firstOffset;
  for (const { records, size } of spec) {
    batches.push({ pos, size, base, last: base + BigInt(records - 1) });
    pos += size;
    base += BigInt(records);
  }
  const bytes = Buffer.alloc(pos);
  for (const b of batches) {
    bytes.writeBigInt64BE(b.base, b.pos);
    bytes.writeInt32BE(b.size - LOG_OVERHEAD, b.pos + 8);
    bytes.writeInt32BE(Number(b.last - b.base), b.pos + 23);
  }
  return { batches, bytes };
}

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    spec: fc.array(fc.record({ records: fc.integer({ min: 1, max: 5 }), size: fc.integer({ min: BATCH_HEADER_BYTES, max: 600 }) }), { minLength: 1, maxLength: 30 }),
    first: fc.bigInt({ min: 0n, max: 100n }),
    offsetPick: fc.nat(),
    maxBytes: fc.integer({ min: 1, max: 4000 }),
    limitPick: fc.option(fc.nat(), { nil: undefined }),
  })
  .map(({ spec, first, offsetPick, maxBytes, limitPick }) => {
    const { batches, bytes } = layout(spec, first);
    const end = batches.at(-1)!.last + 1n;
    // Offsets from just before the first batch to just past the last; limits likewise.
    const span = end - first + 4n;
    const offset = first - 2n + (BigInt(offsetPick) % span);
    const limit = limitPick === undefined ? undefined : first - 2n + (BigInt(limitPick) % span);
    return { batches, bytes, offset, maxBytes, limit };
  });

/** The rule, stated directly: an eligible prefix, the first batch reaching `offset`, the longest run from it within budget. */
function reference(c: Case): { start: number; length: number } | null {
  const below = c.batches.findIndex((b) => c.limit !== undefined && b.base >= c.limit);
  const eligible = below < 0 ? c.batches : c.batches.slice(0, below);
  const first = eligible.findIndex((b) => b.last >= c.offset);
  if (first < 0) return null;
  const run = eligible.slice(first);
  const totals = run.map((_, i) => run.slice(0, i + 1).reduce((s, b) => s + b.size, 0));
  const take = Math.max(1, totals.filter((t) => t <= c.maxBytes).length);
  return { start: run[0].pos, length: totals[take - 1] };
}

/** Offers batches from index `from` on, as the remote reader does: it stops once `full`. */
function walk(c: Case, from: number, stopWhenFull: boolean): BatchRange {
  const range = new BatchRange(c.offset, c.maxBytes, c.limit);
  for (const b of c.batches.slice(from)) {
    if (stopWhenFull && range.full) break;
    if (!range.offer(b.pos, b.size, b.base, b.last)) break;
  }
  return range;
}

function resultOf(r: { start: number; length: number }): { start: number; length: number } | null {
  return r.start < 0 ? null : { start: r.start, length: r.length };
}

test('BatchRange agrees with the reference, whether or not the walk stops once full', () => {
  fc.assert(
    fc.property(caseArb, (c) => {
      const want = reference(c);
      assert.deepEqual(resultOf(walk(c, 0, false)), want);
      assert.deepEqual(resultOf(walk(c, 0, true)), want);
    }),
    { numRuns: 2000 },
  );
});

test('selectBatchRange over a window holding every batch agrees with the reference', () => {
  fc.assert(
    fc.property(caseArb, (c) => {
      const got = selectBatchRange(c.bytes, c.offset, c.maxBytes, c.limit);
      assert.deepEqual(resultOf(got), reference(c));
      assert.ok(got.next <= c.bytes.length);
    }),
    { numRuns: 2000 },
  );
});

test('a window cut anywhere, continued as the local log continues it, agrees with the reference', () => {
  fc.assert(
    fc.property(caseArb, fc.nat(), (c, cut) => {
      const want = reference(c);
      const w = cut % (c.bytes.length + 1);
      // The local log sizes its window past the budget: every batch that fits ends inside it.
      fc.pre(want === null || w >= Math.min(c.bytes.length, want.start + c.maxBytes));
      const sel = selectBatchRange(c.bytes.subarray(0, w), c.offset, c.maxBytes, c.limit);
      let got: { start: number; length: number } | null;
      if (sel.start >= 0) {
        got = { start: sel.start, length: sel.length }; // sliced, or read again when it runs past the window
      } else if (sel.next >= c.bytes.length) {
        got = null;
      } else {
        const from = c.batches.findIndex((b) => b.pos === sel.next);
        assert.ok(from >= 0, `the walk stopped at ${sel.next}, not at a batch boundary`);
        got = resultOf(walk(c, from, false));
      }
      assert.deepEqual(got, want);
    }),
    { numRuns: 3000 },
  );
});

test('examples: KIP-74 oversize first batch, a budget that fits two, a limit, an offset inside a batch', () => {
  const { batches, bytes } = layout(
    [
      { records: 3, size: 500 },
      { records: 1, size: 100 },
      { records: 2, size: 100 },
      { records: 1, size: 100 },
    ],
    10n,
  );
  const sel = (offset: bigint, maxBytes: number, limit?: bigint) => resultOf(selectBatchRange(bytes, offset, maxBytes, limit));
  assert.deepEqual(sel(10n, 1), { start: 0, length: 500 }, 'the first batch whole, however large');
  assert.deepEqual(sel(12n, 600), { start: 0, length: 600 }, 'offset 12 lies inside the first batch');
  assert.deepEqual(sel(13n, 250), { start: 500, length: 200 }, 'two of the three that follow fit');
  assert.deepEqual(sel(13n, 1 << 20), { start: 500, length: 300 });
  assert.deepEqual(sel(13n, 1 << 20, 16n), { start: 500, length: 200 }, 'nothing at or past the limit');
  assert.equal(sel(13n, 1 << 20, 13n), null, 'the limit before the offset: nothing');
  assert.equal(sel(17n, 1 << 20), null, 'past the end: nothing');
  assert.equal(batches.length, 4);
});
