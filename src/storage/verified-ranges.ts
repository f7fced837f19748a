/**
 * Byte ranges of an immutable file already checked (a sealed segment's batches whose CRCs
 * were verified on a read), so each byte is checksummed once rather than on every read.
 * Ranges are kept merged and sorted; a consumer reading forward keeps one range growing.
 * Past `maxRanges` fragments (random access all over a segment) the set starts afresh:
 * re-verifying costs CPU, never correctness.
 */
export class VerifiedRanges {
  #starts: number[] = [];
  #ends: number[] = [];
  readonly #maxRanges: number;

  constructor(maxRanges = 256) {
    this.#maxRanges = maxRanges;
  }

  get size(): number {
    return this.#starts.length;
  }

  /** Whether [start, end) lies inside one verified range. */
  covers(start: number, end: number): boolean {
    const i = this.#last(start);
    return i >= 0 && this.#ends[i] >= end;
  }

  add(start: number, end: number): void {
    if (end <= start) return;
    // Merge with every range that overlaps or touches [start, end).
    let i = this.#last(start);
    if (i < 0 || this.#ends[i] < start) i++;
    let j = i;
    while (j < this.#starts.length && this.#starts[j] <= end) j++;
    if (j > i) {
      start = Math.min(start, this.#starts[i]);
      end = Math.max(end, this.#ends[j - 1]);
    }
    this.#starts.splice(i, j - i, start);
    this.#ends.splice(i, j - i, end);
    if (this.#starts.length > this.#maxRanges) {
      this.#starts = [start];
      this.#ends = [end];
    }
  }

  /** Index of the last range starting at or before `pos`, or -1. */
  #last(pos: number): number {
    let lo = 0;
    let hi = this.#starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#starts[mid] <= pos) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found;
  }
}
