/**
 * Recovery of a partition directory on open. A segment with a valid index whose recorded
 * length matches the file is trusted (it was sealed after an fdatasync); every other segment
 * is scanned batch by batch (length, magic, CRC-32C, offset continuity) and cut at the first
 * bad byte. A segment that does not continue its predecessor's offsets holds nothing that
 * was acknowledged as durable (acks wait for every dirty segment's fdatasync) and is
 * removed with its successors.
 */
import fs from 'node:fs';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type { Logger } from 'pino';
import { BATCH_HEADER_BYTES, LOG_OVERHEAD, computeBatchCrc, lastOffsetOf, readBatchHeader } from './record-batch.js';
import { PartitionFiles } from './partition-files.js';
import { Segment } from './segment.js';
import { SegmentIndex } from './segment-index.js';

/**
 * What recovery needs of a log's options (partition-log.ts passes its LogOptions); stated
 * here so that recovery does not import the log that calls it.
 */
export interface RecoveryOptions {
  /** Bytes of batches between two offset-index entries of a rebuilt index. */
  readonly indexIntervalBytes: number;
}

function listBaseOffsets(dir: string): bigint[] {
  const bases: bigint[] = [];
  for (const name of fs.readdirSync(dir)) {
    const base = PartitionFiles.segmentLogOffset(name);
    if (PartitionFiles.isLeftover(name)) fs.rmSync(path.join(dir, name), { force: true });
    else if (base !== undefined) bases.push(base);
  }
  const known = new Set(bases);
  for (const name of fs.readdirSync(dir)) {
    const base = PartitionFiles.segmentIndexOffset(name);
    if (base !== undefined && !known.has(base)) fs.rmSync(path.join(dir, name), { force: true });
  }
  return bases.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export async function recoverSegments(dir: string, opts: RecoveryOptions, logger?: Logger, initialOffset = 0n): Promise<Segment[]> {
  const bases = listBaseOffsets(dir);
  const segments: Segment[] = [];
  let expected: bigint | undefined;
  for (let i = 0; i < bases.length; i++) {
    const seg = Segment.openExisting(dir, bases[i]);
    if (expected !== undefined && seg.baseOffset !== expected) {
      // Not a continuation of the previous segment: written after data a crash took back,
      // so none of it was ever acknowledged as durable.
      await seg.close();
      for (const b of bases.slice(i)) removeSegmentFiles(dir, b);
      logger?.warn({ dir, removedSegments: bases.length - i, expectedBaseOffset: String(expected) }, 'recovery removed segments that do not continue the log');
      break;
    }
    const trusted = loadSealedIndex(seg);
    if (!trusted) await scanAndRepair(seg, opts, logger);
    segments.push(seg);
    expected = seg.nextOffset;
  }
  // Every segment but the last is sealed; a last one that was sealed gets a fresh successor.
  for (let i = 0; i < segments.length - 1; i++) {
    if (!segments[i].sealed) await segments[i].seal();
  }
  const last = segments[segments.length - 1];
  if (last === undefined) segments.push(Segment.create(dir, initialOffset));
  else if (last.sealed) segments.push(Segment.create(dir, last.nextOffset));
  return segments;
}

function removeSegmentFiles(dir: string, base: bigint): void {
  fs.rmSync(PartitionFiles.segmentLog(dir, base), { force: true });
  fs.rmSync(PartitionFiles.segmentIndex(dir, base), { force: true });
}

function loadSealedIndex(seg: Segment): boolean {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(seg.indexPath);
  } catch {
    return false;
  }
  const parsed = SegmentIndex.decode(raw);
  if (!parsed || parsed.summary.segmentBytes !== seg.sizeBytes || parsed.summary.baseOffset !== seg.baseOffset) {
    fs.rmSync(seg.indexPath, { force: true });
    return false;
  }
  seg.index = parsed.index;
  seg.nextOffset = parsed.summary.nextOffset;
  seg.dataCrc32c = parsed.summary.dataCrc32c;
  seg.sealed = true;
  return true;
}

const RECOVERY_WINDOW = 4 * 1024 * 1024;

/** Rebuilds the index by scanning every batch; truncates at the first invalid one. */
async function scanAndRepair(seg: Segment, opts: RecoveryOptions, logger?: Logger): Promise<void> {
  const fileSize = seg.sizeBytes;
  seg.index = new SegmentIndex();
  seg.dataCrc32c = 0;
  let pos = 0;
  let expected = seg.baseOffset;
  let window: Buffer = Buffer.alloc(0);
  let windowStart = 0;
  let reason = '';
  while (pos < fileSize) {
    if (fileSize - pos < BATCH_HEADER_BYTES) {
      reason = `torn header (${fileSize - pos} trailing bytes)`;
      break;
    }
    if (pos + BATCH_HEADER_BYTES > windowStart + window.length) {
      window = await seg.read(pos, Math.min(RECOVERY_WINDOW, fileSize - pos));
      windowStart = pos;
    }
    const size = window.readInt32BE(pos - windowStart + 8) + LOG_OVERHEAD;
    if (size < BATCH_HEADER_BYTES || pos + size > fileSize) {
      reason = size < BATCH_HEADER_BYTES ? `invalid batch length ${size}` : `torn batch (${size} bytes declared, ${fileSize - pos} present)`;
      break;
    }
    if (pos + size > windowStart + window.length) {
      window = await seg.read(pos, Math.min(Math.max(RECOVERY_WINDOW, size), fileSize - pos));
      windowStart = pos;
    }
    const batch = window.subarray(pos - windowStart, pos - windowStart + size);
    const h = readBatchHeader(batch);
    if (h.magic !== 2) {
      reason = `bad magic ${h.magic}`;
      break;
    }
    if (computeBatchCrc(batch) !== h.crc) {
      reason = 'CRC-32C mismatch';
      break;
    }
    if (h.baseOffset !== expected || h.lastOffsetDelta < 0) {
      reason = `offset ${h.baseOffset} where ${expected} was expected`;
      break;
    }
    seg.recordBatch(pos, h.baseOffset, lastOffsetOf(h), h.maxTimestamp, size, opts.indexIntervalBytes);
    seg.dataCrc32c = crc32c(batch, seg.dataCrc32c);
    expected = lastOffsetOf(h) + 1n;
    pos += size;
  }
  if (pos < fileSize) {
    seg.truncate(pos);
    logger?.warn({ file: seg.logPath, truncatedBytes: fileSize - pos, atPosition: pos, atOffset: String(expected), reason }, 'recovery truncated an invalid log tail');
  }
  seg.sizeBytes = pos;
  seg.assignedBytes = pos;
}
