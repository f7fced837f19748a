/**
 * The partition manifest: the bucket's own description of a partition's remote history, so
 * a broker with an empty disk can serve it from the bucket alone. Written after the segment
 * objects it lists (the manifest is the commit point of an offload), with a version that
 * grows by one on every write; one broker writes a partition's manifest at a time.
 *
 * JSON, with 64-bit offsets and timestamps as decimal strings.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import type { BlobStore } from './blobstore/blob-store.js';
import { ObjectKeys, type PartitionRef } from './object-keys.js';

export interface RemoteSegment {
  baseOffset: bigint;
  /** One past the last offset. */
  nextOffset: bigint;
  maxTimestamp: bigint;
  sizeBytes: number;
  /** CRC-32C of the data object, as recorded when the segment was sealed. */
  dataCrc32c: number;
  indexSizeBytes: number;
  attemptId: string;
  dataKey: string;
  indexKey: string;
  uploadedAt: string;
  /**
   * Region clusters: the first offset this entry serves, when the object starts below it
   * (baseOffset). Replicas roll their segments at different offsets, so a new leader's
   * segment may begin inside the last one its predecessor committed; it is recorded whole
   * (the object is the verified local file) and serves only from here. Absent: baseOffset.
   */
  startOffset?: bigint;
  /** Region clusters: the leader epoch of the broker that committed this entry. */
  leaderEpoch?: number;
}

export interface PartitionManifest extends PartitionRef {
  version: number;
  /** First offset still held remotely (remote retention moves it). */
  startOffset: bigint;
  segments: RemoteSegment[];
  /** Region clusters: the leader epoch of the broker that wrote this version. */
  leaderEpoch?: number;
}

type Json<T> = { [K in keyof T]: T[K] extends bigint | undefined ? (undefined extends T[K] ? string | undefined : string) : T[K] extends Array<infer U> ? Array<Json<U>> : T[K] };

export function emptyManifest(p: PartitionRef): PartitionManifest {
  return { ...p, version: 0, startOffset: 0n, segments: [] };
}

export function encodeManifest(m: PartitionManifest): Buffer {
  const json: Json<PartitionManifest> = {
    ...m,
    startOffset: String(m.startOffset),
    segments: m.segments.map(({ startOffset, ...s }) => ({
      ...s,
      baseOffset: String(s.baseOffset),
      nextOffset: String(s.nextOffset),
      maxTimestamp: String(s.maxTimestamp),
      ...(startOffset !== undefined ? { startOffset: String(startOffset) } : {}),
    })),
  };
  return Buffer.from(JSON.stringify(json, null, 1));
}

export function decodeManifest(buf: Buffer, where: string): PartitionManifest {
  try {
    const j = JSON.parse(buf.toString('utf8')) as Json<PartitionManifest>;
    const m: PartitionManifest = {
      ...j,
      startOffset: BigInt(j.startOffset),
      segments: j.segments.map(({ startOffset, ...s }) => ({
        ...s,
        baseOffset: BigInt(s.baseOffset),
        nextOffset: BigInt(s.nextOffset),
        maxTimestamp: BigInt(s.maxTimestamp),
        ...(startOffset !== undefined ? { startOffset: BigInt(startOffset) } : {}),
      })),
    };
    for (let i = 1; i < m.segments.length; i++) {
      if (servedFrom(m.segments[i]) !== m.segments[i - 1].nextOffset) throw new Error(`segment ${i} does not continue segment ${i - 1}`);
    }
    return m;
  } catch (err) {
    throw new MeridianError(ErrorCode.StorageIo, `manifest ${where} is unreadable: ${(err as Error).message}`, { cause: err });
  }
}

/** Reads a partition's manifest; null when the bucket has none. */
export async function loadManifest(store: BlobStore, p: PartitionRef, signal: AbortSignal): Promise<PartitionManifest | null> {
  const key = ObjectKeys.manifest(p);
  try {
    return decodeManifest(await store.get(key, { signal }), `${store.name}/${key}`);
  } catch (err) {
    if ((err as { kind?: string }).kind === 'not-found') return null;
    throw err;
  }
}

/** Writes the next version of a manifest (the caller's copy gets the new version). */
export async function saveManifest(store: BlobStore, m: PartitionManifest, signal: AbortSignal): Promise<void> {
  const next = { ...m, version: m.version + 1 };
  await store.put(ObjectKeys.manifest(m), encodeManifest(next), { signal });
  m.version = next.version;
}

/** The first offset a manifest entry serves (its object may start below, see `startOffset`). */
export function servedFrom(s: RemoteSegment): bigint {
  return s.startOffset ?? s.baseOffset;
}

/** The remote segment holding `offset`, if any. */
export function segmentFor(m: PartitionManifest, offset: bigint): RemoteSegment | undefined {
  const segs = m.segments;
  let lo = 0;
  let hi = segs.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (segs[mid].nextOffset <= offset) lo = mid + 1;
    else if (servedFrom(segs[mid]) > offset) hi = mid - 1;
    else return segs[mid];
  }
  return undefined;
}

/** One past the last remote offset (the start offset when nothing is remote). */
export function remoteEndOffset(m: PartitionManifest): bigint {
  return m.segments.length > 0 ? m.segments[m.segments.length - 1].nextOffset : m.startOffset;
}
