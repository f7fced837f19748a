/**
 * The partition log's durable-append measurements and their raw-disk baselines, shared by
 * bench:log and by bench:kafka (which reports the Kafka path against the log in the same run).
 */
import fs from 'node:fs';
import path from 'node:path';
import { PartitionLog } from '../src/storage/partition-log.js';
import { encodeBatch, BATCH_HEADER_BYTES } from '../src/storage/record-batch.js';

/** A batch of exactly `size` bytes: one record whose value fills the rest. */
export function batchOf(size: number): Buffer {
  // Record framing for one record with a null key: length varint, attrs, ts, offset, key len,
  // value len varint, headers count; a few bytes, found by trying.
  for (let overhead = 6; overhead < 16; overhead++) {
    const b = encodeBatch({ records: [{ value: Buffer.alloc(size - BATCH_HEADER_BYTES - overhead, 0x61) }] });
    if (b.length === size) return b;
  }
  throw new Error(`cannot build a batch of ${size} bytes`);
}

/** Enough distinct buffers that none is reused while still queued (append stamps in place). */
export function pool(size: number, n: number): Buffer[] {
  const proto = batchOf(size);
  return Array.from({ length: n }, () => Buffer.from(proto));
}

let trial = 0;

/** Raw baseline: sequential pwrite of `size`-byte chunks, fdatasync after every `group`. */
export function rawWrites(dir: string, size: number, total: number, group: number): { seconds: number; writes: number; syncs: number } {
  const file = path.join(dir, `raw-${size}-${group}-${trial++}.dat`);
  const fd = fs.openSync(file, 'w');
  const buf = Buffer.alloc(size, 0x61);
  const writes = Math.floor(total / size);
  let syncs = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0, pos = 0; i < writes; i++, pos += size) {
    fs.writeSync(fd, buf, 0, size, pos);
    if ((i + 1) % group === 0 || i === writes - 1) {
      fs.fdatasyncSync(fd);
      syncs++;
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  fs.closeSync(fd);
  return { seconds, writes, syncs };
}

/** Raw baseline for one writer at a time: write + fdatasync for `seconds`. */
export function rawDurableRate(dir: string, size: number, seconds: number): number {
  const file = path.join(dir, `raw-rate-${size}.dat`);
  const fd = fs.openSync(file, 'w');
  const buf = Buffer.alloc(size, 0x61);
  const end = Date.now() + seconds * 1000;
  let n = 0;
  const t0 = process.hrtime.bigint();
  while (Date.now() < end) {
    fs.writeSync(fd, buf, 0, size, n * size);
    fs.fdatasyncSync(fd);
    n++;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  fs.closeSync(fd);
  fs.rmSync(file);
  return n / s;
}

/** The log: `total` bytes of `size` batches with `concurrency` appenders awaiting durability. */
export async function logWrites(dir: string, size: number, total: number, concurrency: number) {
  const log = await PartitionLog.open(dir, { segmentBytes: 128 * 1024 * 1024, retentionMs: -1, flushMode: 'fsync' });
  const bufs = pool(size, concurrency * 4);
  const count = Math.floor(total / size);
  let issued = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued < count) {
        const b = bufs[issued++ % bufs.length];
        await log.append(b);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const stats = log.stats();
  await log.close();
  return { seconds, appends: count, fsyncs: stats.fsyncs };
}

/** The log: appends/s over a fixed time with `concurrency` durable appenders. */
export async function logDurableRate(dir: string, size: number, concurrency: number, seconds: number) {
  const log = await PartitionLog.open(dir, { retentionMs: -1, flushMode: 'fsync' });
  const bufs = pool(size, concurrency * 4);
  let n = 0;
  const end = Date.now() + seconds * 1000;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        await log.append(bufs[n++ % bufs.length]);
      }
    }),
  );
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const stats = log.stats();
  await log.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return { rate: n / s, perSync: stats.batches / Math.max(1, stats.fsyncs) };
}

