/**
 * Deterministic randomness for tests that generate data: a failure names the same record on
 * every run, and a seed replays it.
 */

/** mulberry32: a small seeded PRNG returning numbers in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `len` random bytes from `next`, none of them in `exclude` (e.g. a tool's delimiter bytes). */
export function randomBytes(next: () => number, len: number, exclude: ReadonlySet<number> = new Set()): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) {
    let v: number;
    do v = Math.floor(next() * 256);
    while (exclude.has(v));
    b[i] = v;
  }
  return b;
}
