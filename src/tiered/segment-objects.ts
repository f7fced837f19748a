/**
 * The object-level work on one partition's segments, free of the offloader's state: upload a
 * sealed segment as its two objects (verified), remove objects no manifest names, and list
 * keys under a prefix across pages. The offloader and the registry decide when; this decides how.
 */
import fs from 'node:fs';
import { Transform, pipeline } from 'node:stream';
import { crc32c } from '@node-rs/crc32';
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import type { SegmentInfo } from '../storage/segment.js';
import type { BlobStore } from './blobstore/blob-store.js';
import type { PartitionManifest, RemoteSegment } from './manifest.js';
import { ObjectKeys, type PartitionRef } from './object-keys.js';
import type { UploadRate } from './partition-tier.js';
import { withRetry, type RetryPolicy } from './retry.js';

/** Every key under `prefix`, page after page. */
export async function* listKeys(store: BlobStore, prefix: string, signal: AbortSignal, retry: RetryPolicy): AsyncGenerator<string> {
  let token: string | undefined;
  do {
    const page = await withRetry(() => store.list(prefix, { signal, continuationToken: token }), retry);
    for (const { key } of page.keys) yield key;
    token = page.nextToken;
  } while (token);
}

/**
 * Uploads a sealed segment as `<base>-<attempt>.log` and `.index`. The data is streamed from
 * the file while its CRC-32C is computed and compared with the one taken at seal, and a HEAD
 * checks the stored size. Returns the manifest record (not yet committed).
 */
export async function uploadSegment(
  store: BlobStore,
  ref: PartitionRef,
  seg: SegmentInfo,
  attemptId: string,
  signal: AbortSignal,
  retry: RetryPolicy,
  log?: Logger,
  rate?: UploadRate,
): Promise<RemoteSegment> {
  const dataKey = ObjectKeys.segmentData(ref, seg.baseOffset, attemptId);
  const indexKey = ObjectKeys.segmentIndex(ref, seg.baseOffset, attemptId);
  const started = Date.now();
  await withRetry(async () => {
    let crc = 0;
    let bytes = 0;
    const hashing = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        crc = crc32c(chunk, crc);
        bytes += chunk.length;
        // tiered.offload.maxBytesPerSec: the chunk goes once the shared budget allows it.
        if (rate === undefined) cb(null, chunk);
        else rate.take(chunk.length, signal).then(() => cb(null, chunk), (err: unknown) => cb(err as Error));
      },
    });
    // pipeline(): a read error (the file gone with its topic, EIO) fails the upload instead
    // of crashing the process or hanging the put, and the file is closed on every path.
    // Small reads when rate-limited, so the budget is spent evenly rather than in bursts.
    const source = fs.createReadStream(seg.logPath, rate === undefined ? {} : { highWaterMark: 16 * 1024 });
    const body = pipeline(source, hashing, () => {});
    try {
      await store.put(dataKey, body, { signal, contentLength: seg.sizeBytes });
    } finally {
      source.destroy();
    }
    if (bytes !== seg.sizeBytes || crc >>> 0 !== seg.dataCrc32c >>> 0) {
      throw new MeridianError(ErrorCode.StorageIo, `segment ${seg.logPath} changed since it was sealed (CRC-32C ${crc >>> 0} != ${seg.dataCrc32c >>> 0}); refusing to offload it`);
    }
    const head = await store.head(dataKey, { signal });
    if (head === null || head.size !== seg.sizeBytes) {
      throw new MeridianError(ErrorCode.StorageIo, `upload of ${dataKey} verified ${head?.size ?? 'no'} bytes, expected ${seg.sizeBytes}`, { retriable: true });
    }
  }, retry, signal, (err, attempt) => log?.debug({ dataKey, attempt, err: (err as Error).message }, 'retrying segment upload'));
  const index = fs.readFileSync(seg.indexPath);
  await withRetry(() => store.put(indexKey, index, { signal }), retry, signal);
  const seconds = Math.max(0.001, (Date.now() - started) / 1000);
  log?.info(
    { topic: ref.topic, partition: ref.partition, baseOffset: String(seg.baseOffset), bytes: seg.sizeBytes, mbPerSec: +(seg.sizeBytes / 1e6 / seconds).toFixed(1) },
    'segment uploaded',
  );
  return {
    baseOffset: seg.baseOffset,
    nextOffset: seg.nextOffset,
    maxTimestamp: seg.maxTimestamp,
    sizeBytes: seg.sizeBytes,
    dataCrc32c: seg.dataCrc32c >>> 0,
    indexSizeBytes: index.length,
    attemptId,
    dataKey,
    indexKey,
    uploadedAt: new Date().toISOString(),
  };
}

/**
 * Deletes segment objects `manifest` does not name: what interrupted upload attempts left.
 * Only safe while nothing uploads to the partition. Returns how many went.
 */
export async function removeUnnamedObjects(store: BlobStore, ref: PartitionRef, manifest: PartitionManifest, signal: AbortSignal, retry: RetryPolicy): Promise<number> {
  const named = new Set(manifest.segments.flatMap((s) => [s.dataKey, s.indexKey]));
  let removed = 0;
  for await (const key of listKeys(store, ObjectKeys.segmentsPrefix(ref), signal, retry)) {
    if (named.has(key)) continue;
    await withRetry(() => store.delete(key, { signal }), retry);
    removed++;
  }
  return removed;
}
