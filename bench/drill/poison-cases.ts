/**
 * Poison record batches for scenario 7, and the oracle that says what a consumer must read
 * from one the broker accepted.
 *
 * Every case starts from a valid RecordBatch v2 (1-4 records with keys, values and headers;
 * one in six gzip-compressed) and mutates the records area — bit flips, random bytes, one
 * varint replaced by another value or made overlong or unterminated, bytes cut or appended
 * — or the header's attribute bits or counts, then recomputes batchLength and the CRC so the
 * damage is not caught by the checksum alone. For a gzip batch the mutation is applied to
 * the records before compression (a well-compressed batch of bad records), or to the
 * compressed stream itself. A few cases keep a stale CRC or a wrong batchLength: those must
 * always be refused.
 */
import { gunzipSync, gzipSync } from 'node:zlib';
import { BATCH_HEADER_BYTES, computeBatchCrc, decodeRecords, encodeBatch, LOG_OVERHEAD, readBatchHeader, varintBytes, type DecodedRecord, type RecordInput } from '../../src/storage/record-batch.js';

export interface PoisonCase {
  kind: string;
  batch: Buffer;
}

const CRC_OFFSET = 17;
const ATTRIBUTES_OFFSET = 21;

const zigzagVarint = varintBytes;

/** Start and end of every varint in an uncompressed records area (the first 4 bytes are the count). */
function varintSpans(records: Buffer): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  let p = 4;
  const varint = (): number => {
    const start = p;
    let z = 0;
    let shift = 0;
    while (p < records.length) {
      const b = records[p++];
      z += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) break;
    }
    spans.push([start, p]);
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  };
  const count = records.readInt32BE(0);
  for (let i = 0; i < count && p < records.length; i++) {
    const len = varint();
    const end = p + len;
    p += 1; // record attributes
    varint(); // timestamp delta
    varint(); // offset delta
    const keyLen = varint();
    p += Math.max(0, keyLen);
    const valueLen = varint();
    p += Math.max(0, valueLen);
    const headers = varint();
    for (let h = 0; h < headers; h++) {
      p += Math.max(0, varint());
      p += Math.max(0, varint());
    }
    p = end;
  }
  return spans;
}

/** Header (61 bytes) + records area, with batchLength set to match and the CRC recomputed. */
function assemble(header: Buffer, records: Buffer, o: { fixLength?: boolean; fixCrc?: boolean } = {}): Buffer {
  const batch = Buffer.concat([header.subarray(0, BATCH_HEADER_BYTES - 4), records]);
  if (o.fixLength !== false) batch.writeInt32BE(batch.length - LOG_OVERHEAD, 8);
  if (o.fixCrc !== false) batch.writeUInt32BE(computeBatchCrc(batch), CRC_OFFSET);
  return batch;
}

export class PoisonGenerator {
  readonly #random: () => number;

  constructor(random: () => number) {
    this.#random = random;
  }

  #int(n: number): number {
    return Math.floor(this.#random() * n);
  }

  #bytes(max: number): Buffer {
    const b = Buffer.alloc(this.#int(max + 1));
    for (let i = 0; i < b.length; i++) b[i] = this.#int(256);
    return b;
  }

  #base(): Buffer {
    const records: RecordInput[] = Array.from({ length: 1 + this.#int(4) }, (_, i) => ({
      key: this.#random() < 0.2 ? null : this.#bytes(16),
      value: this.#random() < 0.05 ? null : this.#bytes(80),
      headers: Array.from({ length: this.#int(3) }, () => ({ key: `h${this.#int(1000)}`, value: this.#random() < 0.2 ? null : this.#bytes(16) })),
      timestampDelta: i,
    }));
    return encodeBatch({ records, baseTimestamp: BigInt(Date.now()) });
  }

  /** One mutated batch. */
  next(): PoisonCase {
    const valid = this.#base();
    const header = Buffer.from(valid.subarray(0, BATCH_HEADER_BYTES));
    // The records area including its 4-byte count, which sits at the end of the header.
    let records = Buffer.from(valid.subarray(BATCH_HEADER_BYTES - 4));
    const gzip = this.#random() < 1 / 6;
    if (gzip) header.writeUInt16BE(header.readUInt16BE(ATTRIBUTES_OFFSET) | 1, ATTRIBUTES_OFFSET);
    const roll = this.#random();
    let kind: string;
    let gzipStreamFlip = false;
    let fix = { fixLength: true, fixCrc: true };
    if (roll < 0.25) {
      kind = 'bit flips';
      for (let n = 1 + this.#int(3); n > 0; n--) {
        const p = 4 + this.#int(records.length - 4);
        records[p] ^= 1 << this.#int(8);
      }
      if (gzip && this.#random() < 0.5) {
        kind = 'gzip stream bit flip';
        records = Buffer.from(valid.subarray(BATCH_HEADER_BYTES - 4));
        gzipStreamFlip = true;
      }
    } else if (roll < 0.35) {
      kind = 'random byte';
      records[4 + this.#int(records.length - 4)] = this.#int(256);
    } else if (roll < 0.65) {
      const spans = varintSpans(records);
      const [s, e] = spans[this.#int(spans.length)];
      const how = this.#int(4);
      let replacement: Buffer;
      if (how === 0) {
        kind = 'varint: other value';
        const choices = [-1, -2, 0, 1, this.#int(200), -this.#int(200) - 3, 2 ** 31 - 1, -(2 ** 31), 1_000_000];
        replacement = zigzagVarint(choices[this.#int(choices.length)]);
      } else if (how === 1) {
        kind = 'varint: off by one';
        const old = records.subarray(s, e);
        let z = 0;
        for (let i = old.length - 1; i >= 0; i--) z = z * 128 + (old[i] & 0x7f);
        const v = z % 2 === 0 ? z / 2 : -(z + 1) / 2;
        replacement = zigzagVarint(v + (this.#random() < 0.5 ? 1 : -1));
      } else if (how === 2) {
        kind = 'varint: overlong';
        replacement = Buffer.from([...Array.from({ length: 5 + this.#int(6) }, () => 0x80 | this.#int(128)), this.#int(128)]);
      } else {
        kind = 'varint: unterminated';
        replacement = Buffer.from(records.subarray(s, e));
        replacement[replacement.length - 1] |= 0x80;
      }
      records = Buffer.concat([records.subarray(0, s), replacement, records.subarray(e)]);
    } else if (roll < 0.75) {
      kind = 'attribute bit';
      header.writeUInt16BE(header.readUInt16BE(ATTRIBUTES_OFFSET) ^ (1 << this.#int(16)), ATTRIBUTES_OFFSET);
    } else if (roll < 0.85) {
      const what = this.#int(4);
      const count = header.readInt32BE(57);
      if (what === 0) {
        kind = 'header: record count and last offset delta +1';
        header.writeInt32BE(count + 1, 57);
        header.writeInt32BE(count, 23);
        records.writeInt32BE(count + 1, 0);
      } else if (what === 1) {
        kind = 'header: record count and last offset delta -1';
        header.writeInt32BE(count - 1, 57);
        header.writeInt32BE(count - 2, 23);
        records.writeInt32BE(count - 1, 0);
      } else if (what === 2) {
        kind = 'header: last offset delta alone';
        header.writeInt32BE(this.#int(10) - 2, 23);
      } else {
        kind = 'header: record count alone';
        records.writeInt32BE(this.#int(10) - 2, 0);
      }
    } else if (roll < 0.9) {
      kind = 'records cut short';
      records = records.subarray(0, Math.max(4, records.length - 1 - this.#int(8)));
    } else if (roll < 0.95) {
      kind = 'bytes appended';
      records = Buffer.concat([records, this.#bytes(7), Buffer.from([this.#int(256)])]);
    } else if (roll < 0.975) {
      kind = 'stale CRC';
      records[4 + this.#int(records.length - 4)] ^= 0xff;
      fix = { fixLength: true, fixCrc: false };
    } else {
      kind = 'wrong batchLength';
      fix = { fixLength: false, fixCrc: true };
      header.writeInt32BE(header.readInt32BE(8) + (this.#random() < 0.5 ? 1 : -1) * (1 + this.#int(20)), 8);
    }
    // In the header, recordCount is the records area's first 4 bytes: keep the two in step.
    header.writeInt32BE(records.length >= 4 ? records.readInt32BE(0) : 0, 57);
    if (!gzip) return { kind, batch: assemble(header, records, fix) };
    let compressed = gzipSync(records.subarray(4));
    if (gzipStreamFlip) {
      compressed = Buffer.from(compressed);
      compressed[this.#int(compressed.length)] ^= 1 << this.#int(8);
    }
    const countBytes = Buffer.alloc(4);
    countBytes.writeInt32BE(records.length >= 4 ? records.readInt32BE(0) : 0);
    return { kind: `gzip, ${kind}`, batch: assemble(header, Buffer.concat([countBytes, compressed]), fix) };
  }
}

/**
 * What a consumer must read from a batch the broker accepted at `baseOffset`: its records,
 * decoded as stored (gzip inflated first), or null when they cannot be decoded — an accepted
 * batch no consumer can read as it was produced.
 */
export function expectedRecords(batch: Buffer, baseOffset: bigint): DecodedRecord[] | null {
  const stored = Buffer.from(batch);
  stored.writeBigInt64BE(baseOffset, 0);
  const h = readBatchHeader(stored);
  const codec = h.attributes & 0x07;
  let inner: Buffer;
  if (codec === 0) inner = stored.subarray(BATCH_HEADER_BYTES);
  else if (codec === 1) {
    try {
      inner = gunzipSync(stored.subarray(BATCH_HEADER_BYTES));
    } catch {
      return null;
    }
  } else return null;
  const view = Buffer.concat([stored.subarray(0, BATCH_HEADER_BYTES), inner]);
  view.writeInt32BE(view.length - LOG_OVERHEAD, 8);
  view.writeInt16BE(h.attributes & ~0x07, ATTRIBUTES_OFFSET);
  try {
    return decodeRecords(view);
  } catch {
    return null;
  }
}
