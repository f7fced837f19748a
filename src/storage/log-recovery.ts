/**
 * Recovery of a partition directory on open, proportional to what was not known durable:
 * - a sealed segment is trusted from the header of its index file when the header's length
 *   matches the file (the index was written after an fdatasync, atomically): its data is
 *   neither opened nor scanned, and its index entries are loaded on first read
 *   (`Segment.ensureIndex`, which checks their CRC);
 * - the active segment is trusted up to the position the data directory's recovery
 *   checkpoint names (recovery-checkpoint.ts) when the checkpoint's last batch is where it
 *   says, and scanned from there; without a checkpoint it is scanned whole;
 * - a scan checks every batch (length, magic, CRC-32C, offset continuity) and cuts the file
 *   at the first bad byte.
 * A segment that does not continue its predecessor's offsets holds nothing that was
 * acknowledged as durable (acks wait for every dirty segment's fdatasync) and is removed
 * with its successors, except across a gap that lies wholly below the durable log start
 * (`logStart`: a replica reset to its leader's log start, PartitionLog.resetTo, writes the
 * start first and its new segment at it; the older segments may outlive a crash): then the
 * segments before the gap, which hold nothing the log serves, go instead.
 * The scans also report where the batches' partitionLeaderEpoch stamps change
 * (`epochStamps`), from which the log's leader epoch cache learns what its checkpoint may
 * lack (partition-log.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import type { Logger } from 'pino';
import { BATCH_HEADER_BYTES, LOG_OVERHEAD, computeBatchCrc, lastOffsetOf, readBatchHeader } from './record-batch.js';
import { PartitionFiles } from './partition-files.js';
import { Segment, type SegmentContext } from './segment.js';
import { INDEX_HEADER_BYTES, SegmentIndex } from './segment-index.js';
import type { RecoveryPoint } from './recovery-checkpoint.js';
import { realIo } from './fs-util.js';

/**
 * What recovery needs of a log's options (partition-log.ts passes its LogOptions); stated
 * here so that recovery does not import the log that calls it.
 */
export interface RecoveryOptions {
  /** Bytes of batches between two offset-index entries of a rebuilt index. */
  readonly indexIntervalBytes: number;
}

/** What one recovery did: the reopen cost, by segment and by byte. */
export interface RecoveryStats {
  segments: number;
  /** Sealed segments trusted from their index header (not opened, not scanned). */
  trustedSealed: number;
  /** Segments scanned batch by batch (wholly, or past the checkpoint). */
  scannedSegments: number;
  /** Bytes of segment data read by the scans. */
  scannedBytes: number;
  /** The active segment resumed at the checkpoint's position. */
  checkpointUsed: boolean;
}

export interface Recovered {
  segments: Segment[];
  stats: RecoveryStats;
  /** The active segment's bytes are all covered by the checkpoint (nothing to fdatasync). */
  durableAsIs: boolean;
  /**
   * In offset order, each scanned batch whose partitionLeaderEpoch stamp differs from the
   * batch scanned before it: (stamp, its base offset). Only what the scans read (the
   * unflushed tail), never the trusted prefix.
   */
  epochStamps: Array<{ epoch: number; startOffset: bigint }>;
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


export async function recoverSegments(
  dir: string,
  opts: RecoveryOptions,
  ctx: SegmentContext,
  logger?: Logger,
  initialOffset = 0n,
  point?: RecoveryPoint,
  logStart = 0n,
): Promise<Recovered> {
  const bases = listBaseOffsets(dir);
  const segments: Segment[] = [];
  const stats: RecoveryStats = { segments: bases.length, trustedSealed: 0, scannedSegments: 0, scannedBytes: 0, checkpointUsed: false };
  let durableAsIs = false;
  const epochStamps: Recovered['epochStamps'] = [];
  let expected: bigint | undefined;
  for (let i = 0; i < bases.length; i++) {
    const seg = Segment.existing(ctx, dir, bases[i]);
    if (expected !== undefined && seg.baseOffset !== expected && expected <= logStart && seg.baseOffset <= logStart && seg.baseOffset > expected) {
      // Everything before the gap is below the log start: a reset (PartitionLog.resetTo)
      // that a crash interrupted before retention removed the old segments.
      for (const old of segments.splice(0)) {
        await old.close();
        removeSegmentFiles(dir, old.baseOffset);
      }
      epochStamps.length = 0;
      logger?.warn({ dir, logStart: String(logStart), resumedAt: String(seg.baseOffset) }, 'recovery removed segments below the log start that a reset had left');
    } else if (expected !== undefined && seg.baseOffset !== expected) {
      // Not a continuation of the previous segment: written after data a crash took back,
      // so none of it was ever acknowledged as durable.
      for (const b of bases.slice(i)) removeSegmentFiles(dir, b);
      logger?.warn({ dir, removedSegments: bases.length - i, expectedBaseOffset: String(expected) }, 'recovery removed segments that do not continue the log');
      break;
    }
    if (trustSealedIndex(seg)) {
      stats.trustedSealed++;
    } else {
      const isLast = i === bases.length - 1;
      const fileSize = seg.sizeBytes;
      let from = 0;
      if (isLast && point !== undefined && (await resumesAt(seg, point))) {
        seg.adoptCheckpoint(point.position, point.nextOffset, point.dataCrc32c, point.maxTimestamp, point.lastBatchPos, point.lastBatchCrc);
        stats.checkpointUsed = true;
        from = point.position;
      }
      if (fileSize > from) {
        stats.scannedSegments++;
        stats.scannedBytes += fileSize - from;
        await scanAndRepair(seg, opts, fileSize, from, epochStamps, logger);
      } else {
        durableAsIs = stats.checkpointUsed;
      }
    }
    segments.push(seg);
    expected = seg.nextOffset;
  }
  // Every segment but the last is sealed; a last one that was sealed gets a fresh successor.
  for (let i = 0; i < segments.length - 1; i++) {
    if (!segments[i].sealed) await segments[i].seal(realIo);
  }
  const last = segments[segments.length - 1];
  if (last === undefined) segments.push(await Segment.create(ctx, dir, logStart > initialOffset ? logStart : initialOffset));
  else if (last.sealed) segments.push(await Segment.create(ctx, dir, last.nextOffset));
  if (segments[segments.length - 1] !== last) durableAsIs = true;
  return { segments, stats, durableAsIs, epochStamps };
}

function removeSegmentFiles(dir: string, base: bigint): void {
  fs.rmSync(PartitionFiles.segmentLog(dir, base), { force: true });
  fs.rmSync(PartitionFiles.segmentIndex(dir, base), { force: true });
}

/** Trusts a sealed segment from its index file's header alone (the entries load on first read). */
function trustSealedIndex(seg: Segment): boolean {
  let header: Buffer;
  try {
    const fd = fs.openSync(seg.indexPath, 'r');
    try {
      header = Buffer.alloc(INDEX_HEADER_BYTES);
      header = header.subarray(0, fs.readSync(fd, header, 0, INDEX_HEADER_BYTES, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
  const summary = SegmentIndex.decodeSummary(header);
  if (!summary || summary.segmentBytes !== seg.sizeBytes || summary.baseOffset !== seg.baseOffset) {
    fs.rmSync(seg.indexPath, { force: true });
    return false;
  }
  seg.adoptSummary(summary);
  return true;
}

/**
 * Whether the active segment still holds what the checkpoint describes: the file is long
 * enough and the batch the checkpoint names as the last before its position is there, ends
 * at it, and has the same offsets and stored CRC.
 */
async function resumesAt(seg: Segment, point: RecoveryPoint): Promise<boolean> {
  if (point.baseOffset !== seg.baseOffset || point.position > seg.sizeBytes || point.position < 0) return false;
  if (point.position === 0) return point.nextOffset === seg.baseOffset;
  if (point.lastBatchPos < 0 || point.lastBatchPos + BATCH_HEADER_BYTES > point.position) return false;
  const head = await seg.read(point.lastBatchPos, BATCH_HEADER_BYTES);
  if (head.length < BATCH_HEADER_BYTES) return false;
  const h = readBatchHeader(head);
  return point.lastBatchPos + h.batchLength + LOG_OVERHEAD === point.position && lastOffsetOf(h) + 1n === point.nextOffset && h.crc === point.lastBatchCrc && h.magic === 2;
}

const RECOVERY_WINDOW = 4 * 1024 * 1024;

/**
 * Checks the batches of [from, fileSize) (from: 0, or a checkpoint's position, the segment
 * already holding what is before it) and continues the index and data CRC with them;
 * truncates at the first invalid one.
 */
async function scanAndRepair(seg: Segment, opts: RecoveryOptions, fileSize: number, from: number, epochStamps: Recovered['epochStamps'], logger?: Logger): Promise<void> {
  if (from === 0) {
    seg.index = new SegmentIndex();
    seg.dataCrc32c = 0;
    seg.nextOffset = seg.baseOffset;
  }
  let pos = from;
  let expected = seg.nextOffset;
  let window: Buffer = Buffer.alloc(0);
  let windowStart = pos;
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
    seg.recordBatch(pos, h.baseOffset, lastOffsetOf(h), h.maxTimestamp, size, opts.indexIntervalBytes, h.crc, h);
    seg.dataCrc32c = crc32c(batch, seg.dataCrc32c);
    if (epochStamps[epochStamps.length - 1]?.epoch !== h.partitionLeaderEpoch) epochStamps.push({ epoch: h.partitionLeaderEpoch, startOffset: h.baseOffset });
    expected = lastOffsetOf(h) + 1n;
    pos += size;
  }
  if (pos < fileSize) {
    await seg.truncate(pos);
    logger?.warn({ file: seg.logPath, truncatedBytes: fileSize - pos, atPosition: pos, atOffset: String(expected), reason }, 'recovery truncated an invalid log tail');
  }
  seg.sizeBytes = pos;
  seg.assignedBytes = pos;
}
