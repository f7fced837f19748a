/**
 * The on-disk codec of committed offsets: pure, bytes in and values out, no I/O.
 *
 * Both files of the offset store are built from one framed record (all big-endian):
 *
 *   bodyLength u32 | crc32c(body) u32 | body
 *
 * body, by its first byte:
 *   1 COMMIT        groupId str16 | topicCount u32 | topicCount x (topic str16 | partCount u32
 *                   | partCount x (partition i32 | offset i64 | leaderEpoch i32
 *                   | commitTimestamp i64 | metadata nstr32))
 *   2 DELETE_TOPIC  topic str16
 *   3 DELETE_GROUP  groupId str16
 *   4 DELETE_OFFSETS groupId str16 | topicCount u32 | topicCount x (topic str16 | partCount u32
 *                   | partCount x partition i32)          (OffsetDelete; added in issue 11: a
 *                   store older than that cuts its log at the first such record)
 *   5 GROUP_METADATA groupId str16 | generationId i32 | protocolType nstr32 | protocolName nstr32
 *                   | leader nstr32    (region clusters, issue 16: what a new coordinator
 *                   continues from; written to the offsets topic only, never to the file store)
 *
 * str16 = u16 byte length + UTF-8; nstr32 = i32 byte length (-1 = null) + UTF-8.
 *
 * One COMMIT record holds a whole OffsetCommit request, so a request is durable all or
 * nothing, as it is in Kafka (one batch on __consumer_offsets). The CRC covers the body
 * only; a torn length is caught because the body it claims fails its CRC or runs past the
 * end of the file.
 *
 * The snapshot file is a header followed by COMMIT frames (one per group):
 *
 *   magic "MGOF" | version u16 | generation u64 | bodyLength u64 | crc32c(body) u32 | body
 *
 * `generation` names the log that continues the snapshot (`offsets-<generation>.log`).
 */
import { crc32c } from '@node-rs/crc32';

export const RecordType = {
  Commit: 1,
  DeleteTopic: 2,
  DeleteGroup: 3,
  DeleteOffsets: 4,
  GroupMetadata: 5,
} as const;

/** A group's generation as a completed rebalance left it (Kafka's GroupMetadata record, without members). */
export interface GroupMetadataValue {
  readonly generationId: number;
  readonly protocolType: string | null;
  readonly protocolName: string | null;
  readonly leader: string | null;
}

/** The partitions of one topic whose committed offsets a DELETE_OFFSETS record removes. */
export interface TopicPartitions {
  readonly topic: string;
  readonly partitions: readonly number[];
}

export interface PartitionCommit {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly leaderEpoch: number;
  readonly commitTimestamp: number;
  readonly metadata: string | null;
}

export type OffsetRecord =
  | { readonly type: typeof RecordType.Commit; readonly groupId: string; readonly commits: readonly PartitionCommit[] }
  | { readonly type: typeof RecordType.DeleteTopic; readonly topic: string }
  | { readonly type: typeof RecordType.DeleteGroup; readonly groupId: string }
  | { readonly type: typeof RecordType.DeleteOffsets; readonly groupId: string; readonly topics: readonly TopicPartitions[] }
  | ({ readonly type: typeof RecordType.GroupMetadata; readonly groupId: string } & GroupMetadataValue);

export const FRAME_HEADER_BYTES = 8;
/** A frame longer than this is damage, not data: no request produces one (see the store's limit). */
export const MAX_FRAME_BODY_BYTES = 64 * 1024 * 1024;

const SNAPSHOT_MAGIC = 0x4d474f46; // "MGOF"
const SNAPSHOT_VERSION = 1;
const SNAPSHOT_HEADER_BYTES = 4 + 2 + 8 + 8 + 4;

export function encodeRecord(record: OffsetRecord): Buffer {
  const parts: Buffer[] = [u8(record.type)];
  if (record.type === RecordType.Commit) {
    parts.push(str16(record.groupId));
    const byTopic = new Map<string, PartitionCommit[]>();
    for (const c of record.commits) {
      const list = byTopic.get(c.topic);
      if (list) list.push(c);
      else byTopic.set(c.topic, [c]);
    }
    parts.push(u32(byTopic.size));
    for (const [topic, commits] of byTopic) {
      parts.push(str16(topic), u32(commits.length));
      for (const c of commits) {
        const fixed = Buffer.allocUnsafe(4 + 8 + 4 + 8);
        fixed.writeInt32BE(c.partition, 0);
        fixed.writeBigInt64BE(c.offset, 4);
        fixed.writeInt32BE(c.leaderEpoch, 12);
        fixed.writeBigInt64BE(BigInt(c.commitTimestamp), 16);
        parts.push(fixed, nstr32(c.metadata));
      }
    }
  } else if (record.type === RecordType.DeleteOffsets) {
    parts.push(str16(record.groupId), u32(record.topics.length));
    for (const t of record.topics) {
      const indexes = Buffer.allocUnsafe(4 * t.partitions.length);
      t.partitions.forEach((p, i) => indexes.writeInt32BE(p, 4 * i));
      parts.push(str16(t.topic), u32(t.partitions.length), indexes);
    }
  } else if (record.type === RecordType.GroupMetadata) {
    const generation = Buffer.allocUnsafe(4);
    generation.writeInt32BE(record.generationId, 0);
    parts.push(str16(record.groupId), generation, nstr32(record.protocolType), nstr32(record.protocolName), nstr32(record.leader));
  } else {
    parts.push(str16(record.type === RecordType.DeleteTopic ? record.topic : record.groupId));
  }
  const body = Buffer.concat(parts);
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUInt32BE(body.length, 0);
  header.writeUInt32BE(crc32c(body), 4);
  return Buffer.concat([header, body]);
}

/**
 * Decodes consecutive frames from the start of `buf` and stops at the first frame that is
 * short, oversized, fails its CRC or does not parse. `validBytes` is where that frame
 * starts: the length a recovering log is cut to.
 */
export function decodeFrames(buf: Buffer): { records: OffsetRecord[]; validBytes: number } {
  const records: OffsetRecord[] = [];
  let pos = 0;
  while (pos + FRAME_HEADER_BYTES <= buf.length) {
    const length = buf.readUInt32BE(pos);
    if (length === 0 || length > MAX_FRAME_BODY_BYTES || pos + FRAME_HEADER_BYTES + length > buf.length) break;
    const body = buf.subarray(pos + FRAME_HEADER_BYTES, pos + FRAME_HEADER_BYTES + length);
    if (crc32c(body) !== buf.readUInt32BE(pos + 4)) break;
    const record = decodeBody(body);
    if (record === null) break;
    records.push(record);
    pos += FRAME_HEADER_BYTES + length;
  }
  return { records, validBytes: pos };
}

export function encodeSnapshot(generation: bigint, frames: readonly Buffer[]): Buffer {
  const body = Buffer.concat(frames);
  const header = Buffer.allocUnsafe(SNAPSHOT_HEADER_BYTES);
  header.writeUInt32BE(SNAPSHOT_MAGIC, 0);
  header.writeUInt16BE(SNAPSHOT_VERSION, 4);
  header.writeBigUInt64BE(generation, 6);
  header.writeBigUInt64BE(BigInt(body.length), 14);
  header.writeUInt32BE(crc32c(body), 22);
  return Buffer.concat([header, body]);
}

/**
 * Parses a snapshot, or returns a reason it is unusable. The snapshot is replaced atomically
 * (temp file, fsync, rename), so unlike the log it has no torn state: any damage is reported,
 * never cut away silently.
 */
export function decodeSnapshot(buf: Buffer): { generation: bigint; records: OffsetRecord[] } | { error: string } {
  if (buf.length < SNAPSHOT_HEADER_BYTES) return { error: `snapshot is ${buf.length} bytes, shorter than its header` };
  if (buf.readUInt32BE(0) !== SNAPSHOT_MAGIC) return { error: 'bad snapshot magic' };
  const version = buf.readUInt16BE(4);
  if (version !== SNAPSHOT_VERSION) return { error: `unsupported snapshot version ${version}` };
  const generation = buf.readBigUInt64BE(6);
  const length = buf.readBigUInt64BE(14);
  if (BigInt(buf.length - SNAPSHOT_HEADER_BYTES) !== length) return { error: `snapshot body is ${buf.length - SNAPSHOT_HEADER_BYTES} bytes, header says ${length}` };
  const body = buf.subarray(SNAPSHOT_HEADER_BYTES);
  if (crc32c(body) !== buf.readUInt32BE(22)) return { error: 'snapshot CRC mismatch' };
  const { records, validBytes } = decodeFrames(body);
  if (validBytes !== body.length) return { error: `snapshot frame at byte ${validBytes} does not parse` };
  return { generation, records };
}

function decodeBody(body: Buffer): OffsetRecord | null {
  const r = new BodyReader(body);
  try {
    const type = r.u8();
    let record: OffsetRecord;
    if (type === RecordType.Commit) {
      const groupId = r.str16();
      const commits: PartitionCommit[] = [];
      for (let t = r.u32(); t > 0; t--) {
        const topic = r.str16();
        for (let p = r.u32(); p > 0; p--) {
          const partition = r.i32();
          const offset = r.i64();
          const leaderEpoch = r.i32();
          const commitTimestamp = Number(r.i64());
          commits.push({ topic, partition, offset, leaderEpoch, commitTimestamp, metadata: r.nstr32() });
        }
      }
      record = { type, groupId, commits };
    } else if (type === RecordType.DeleteTopic) {
      record = { type, topic: r.str16() };
    } else if (type === RecordType.DeleteGroup) {
      record = { type, groupId: r.str16() };
    } else if (type === RecordType.DeleteOffsets) {
      const groupId = r.str16();
      const topics: TopicPartitions[] = [];
      for (let t = r.u32(); t > 0; t--) {
        const topic = r.str16();
        const partitions: number[] = [];
        for (let p = r.u32(); p > 0; p--) partitions.push(r.i32());
        topics.push({ topic, partitions });
      }
      record = { type, groupId, topics };
    } else if (type === RecordType.GroupMetadata) {
      record = { type, groupId: r.str16(), generationId: r.i32(), protocolType: r.nstr32(), protocolName: r.nstr32(), leader: r.nstr32() };
    } else {
      return null;
    }
    return r.done() ? record : null;
  } catch {
    return null; // RangeError from a read past the end: the body lies about its own lengths
  }
}

class BodyReader {
  #buf: Buffer;
  #pos = 0;

  constructor(buf: Buffer) {
    this.#buf = buf;
  }

  u8(): number {
    return this.#buf.readUInt8(this.#advance(1));
  }

  u32(): number {
    return this.#buf.readUInt32BE(this.#advance(4));
  }

  i32(): number {
    return this.#buf.readInt32BE(this.#advance(4));
  }

  i64(): bigint {
    return this.#buf.readBigInt64BE(this.#advance(8));
  }

  str16(): string {
    const length = this.#buf.readUInt16BE(this.#advance(2));
    const at = this.#advance(length);
    return this.#buf.toString('utf8', at, at + length);
  }

  nstr32(): string | null {
    const length = this.#buf.readInt32BE(this.#advance(4));
    if (length === -1) return null;
    if (length < 0) throw new RangeError(`negative string length ${length}`);
    const at = this.#advance(length);
    return this.#buf.toString('utf8', at, at + length);
  }

  done(): boolean {
    return this.#pos === this.#buf.length;
  }

  #advance(n: number): number {
    const at = this.#pos;
    if (at + n > this.#buf.length) throw new RangeError('read past the end of the record');
    this.#pos += n;
    return at;
  }
}

function u8(v: number): Buffer {
  return Buffer.from([v]);
}

function u32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v, 0);
  return b;
}

function str16(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  if (bytes.length > 0xffff) throw new RangeError(`string of ${bytes.length} bytes does not fit a u16 length`);
  const b = Buffer.allocUnsafe(2 + bytes.length);
  b.writeUInt16BE(bytes.length, 0);
  bytes.copy(b, 2);
  return b;
}

function nstr32(s: string | null): Buffer {
  if (s === null) return Buffer.from([0xff, 0xff, 0xff, 0xff]);
  const bytes = Buffer.from(s, 'utf8');
  const b = Buffer.allocUnsafe(4 + bytes.length);
  b.writeInt32BE(bytes.length, 0);
  bytes.copy(b, 4);
  return b;
}
