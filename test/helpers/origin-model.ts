/**
 * The brute-force model the origin-index tests check `OriginIndex` against: every record a
 * partition's log holds, with its origin and origin offset, and the answers `vectorAt` and
 * `translate` must give, computed the slow, obvious way.
 */
import type { OriginVector } from '../../src/replication/origin-index.js';

/** One record of the model: its log offset, origin key and origin offset. */
export interface Rec {
  offset: bigint;
  origin: string;
  originOffset: bigint;
}

/** Per origin, the highest origin offset among the records before log offset `o`. */
export function bfVector(recs: readonly Rec[], o: bigint): OriginVector {
  const v: OriginVector = new Map();
  for (const r of recs) if (r.offset < o) v.set(r.origin, r.originOffset);
  return v;
}

/** The first log offset whose record `v` does not cover (`end` when it covers them all). */
export function bfTranslate(recs: readonly Rec[], v: OriginVector, end: bigint): bigint {
  for (const r of recs) if (r.originOffset > (v.get(r.origin) ?? -1n)) return r.offset;
  return end;
}
