/**
 * Big-endian int64 fields of batches and journal records without Buffer's BigInt arithmetic.
 *
 * Buffer#readBigInt64BE assembles its value from two halves with BigInt shifts and adds, and
 * Buffer#writeBigInt64BE splits one the same way: four or five BigInts allocated per call.
 * A log over 10,000 partitions reads and writes several of these per partition write (batch
 * headers: base offset, timestamps, producer id), so they were ~6% of a broker's allocation
 * in bench:scale's spread produce. Offsets and timestamps fit in a double's 53 bits; these
 * helpers go through one Number for those (one BigInt made, none on a write) and fall back
 * to Buffer's own methods for the rest (a producer id near 2^63, say).
 */

const TWO_32 = 4294967296;
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Buffer#readBigInt64BE's value. */
export function readInt64BE(buf: Buffer, pos: number): bigint {
  const hi = buf.readInt32BE(pos);
  // |hi| < 2^21: hi * 2^32 + lo is within ±2^53, exact in a double.
  if (hi >= -0x200000 && hi < 0x200000) return BigInt(hi * TWO_32 + buf.readUInt32BE(pos + 4));
  return buf.readBigInt64BE(pos);
}

/** What Buffer#writeBigInt64BE writes; a value out of int64's range throws as it does. */
export function writeInt64BE(buf: Buffer, value: bigint, pos: number): void {
  // In range only: Buffer's method throws the same error for anything else, before it writes.
  if (value >= MIN_SAFE && value <= MAX_SAFE && Number.isInteger(pos) && pos >= 0 && pos <= buf.length - 8) {
    const n = Number(value);
    const hi = Math.floor(n / TWO_32);
    buf.writeInt32BE(hi, pos);
    buf.writeUInt32BE(n - hi * TWO_32, pos + 4);
    return;
  }
  buf.writeBigInt64BE(value, pos);
}
