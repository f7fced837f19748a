/**
 * Batches for read-path tests that compare tiers: from one record of a few bytes to several
 * 4 KiB blocks, some gzip'd or control, with jittered timestamps; deterministic, so a
 * failure reproduces.
 */
import { Attributes, encodeBatch } from '../../src/storage/record-batch.js';
import { gzipBatch } from './batch-mutations.js';

/** A deterministic PRNG: `r(n)` is in [0, n). */
export function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

/** The first timestamp the batches use; every record lies within a few ms of `BASE_TIMESTAMP + 3 * i`. */
export const BASE_TIMESTAMP = 1_700_000_000_000n;

export function variedBatches(count: number, seed = 42): Buffer[] {
  const r = rng(seed);
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const kind = r(100);
    const [records, valueBytes] = kind < 60 ? [1 + r(3), 1 + r(50)] : kind < 85 ? [1 + r(10), 200 + r(1800)] : kind < 97 ? [1 + r(3), 5000 + r(8000)] : [1, 30_000];
    const control = r(100) < 3;
    const gzip = !control && r(100) < 5;
    const attributes = control ? Attributes.transactional | Attributes.control : 0;
    const n = control ? 1 : records;
    const recs = Array.from({ length: n }, (_, j) => ({ key: Buffer.from(`k${i}-${j}`), value: Buffer.alloc(valueBytes, `v${i}/${j}/`), timestampDelta: r(9) - 3 }));
    const batch = encodeBatch({ records: recs, attributes, baseTimestamp: BASE_TIMESTAMP + BigInt(i * 3 + r(11) - 5) });
    out.push(gzip ? gzipBatch(batch) : batch);
  }
  return out;
}
