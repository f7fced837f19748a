/**
 * In-process harness for the replication worker: a PartitionWorker over a real PartitionLog
 * in a temp directory, sending to a stand-in for the remote region and, where a case needs
 * offloaded history, reading it through a stand-in for tiered storage.
 *
 * The stand-ins are mocks, on purpose: they let a test see every request the worker sends
 * (entries, origins, hops, the bytes it pins) and hold or answer each one, which no real
 * remote region exposes. Cases a user can observe run against real brokers elsewhere
 * (tiered-catch-up, replication-faults, remote-region).
 */
import type { TestContext } from 'node:test';
import pino from 'pino';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { encodeMarker } from '../../src/replication/marker.js';
import type { Link, Policy } from '../../src/replication/policy.js';
import type { RemoteRegion } from '../../src/replication/remote-region.js';
import type { AppendResponse, ReplicatedEntry } from '../../src/replication/replication-api.js';
import { PartitionWorker, type WorkerStatus } from '../../src/replication/worker.js';
import type { BufferPool } from '../../src/storage/buffer-pool.js';
import { PartitionLog, type LogOptions } from '../../src/storage/partition-log.js';
import { decodeRecords, encodeBatch, readBatchHeader } from '../../src/storage/record-batch.js';
import { tmpDir } from './tmp-dir.js';
import { waitFor } from './wait.js';

export const logger = pino({ level: process.env.MERIDIAN_TEST_LOG_LEVEL ?? 'silent' });

/** A batch of `records` records keyed `<tag>-<i>`, values of `valueBytes` bytes. */
export function dataBatch(tag: string, records = 1, valueBytes = 100): Buffer {
  return encodeBatch({ records: Array.from({ length: records }, (_, i) => ({ key: Buffer.from(`${tag}-${i}`), value: Buffer.alloc(valueBytes, `${tag}/${i}/`) })), baseTimestamp: BigInt(Date.now()) });
}

export function keysOf(batch: Buffer): string[] {
  return decodeRecords(batch).map((r) => String(r.key));
}

/** Appends a run as the receiving side does: a marker and the batches it describes, in one append. */
export async function appendRun(log: PartitionLog, origin: string, originBase: bigint, batches: Buffer[], opts: { describe?: number } = {}): Promise<void> {
  let ob = originBase;
  const marked = batches.map((b) => {
    const h = readBatchHeader(b);
    const m = { originBaseOffset: ob, senderBaseOffset: ob, crc: h.crc };
    ob += BigInt(h.lastOffsetDelta) + 1n;
    return m;
  });
  // `describe` > batches.length: a torn run (the marker promises more than survived).
  const extra = Array.from({ length: Math.max(0, (opts.describe ?? batches.length) - batches.length) }, (_, i) => ({ originBaseOffset: ob + BigInt(i), senderBaseOffset: ob + BigInt(i), crc: 12345 + i }));
  const all = [...marked, ...extra];
  const marker = encodeMarker({ originRegion: origin, originTopicId: `${origin}-tid`, originPartition: 0, senderRegion: origin, senderTopicId: `${origin}-tid`, hops: [origin], batches: all, senderEndOffset: all.at(-1)!.originBaseOffset });
  await log.appendAll([marker, ...batches]);
}

export function link(remote: string, relay: boolean): Link {
  const policy: Policy = { name: 'p', topics: ['t'], topology: relay ? 'relay' : 'mesh', regions: [], edges: [], backlogQuota: -1, rateLimit: -1 };
  return { remote, relay, policy };
}

export interface SentRequest {
  continuesFrom: bigint;
  senderEndOffset: bigint;
  entries: ReplicatedEntry[];
}

/** What the remote received, flattened: each record's key with its entry's origin and hops. */
export function receivedRecords(sent: readonly SentRequest[]): Array<{ key: string; origin: string; hops: string }> {
  return sent.flatMap((s) => s.entries.flatMap((e) => e.batches.flatMap((b) => keysOf(b.batch).map((key) => ({ key, origin: e.originRegion, hops: e.hops.join('>') })))));
}

/**
 * A remote region that acknowledges every append (as a RemoteRegion would, minus the
 * network); with `hold`, each answer waits until the test releases it; `onSend` sees each
 * request as it arrives (what the sender's state was at that moment).
 */
export function fakeRemote(opts: { cursor?: bigint; hold?: boolean; copy?: boolean; onSend?: (req: SentRequest) => void } = {}) {
  const sent: SentRequest[] = [];
  /** With `copy`: each request's batches as they were when it was sent (what a link writes out). */
  const copies: SentRequest[] = [];
  const held: Array<() => void> = [];
  let grantedBytes = 0;
  const grant = (bytes: number) => {
    let have = bytes;
    grantedBytes += have;
    return {
      shrink: (n: number) => {
        if (n < have) {
          grantedBytes -= have - n;
          have = n;
        }
      },
      release: () => {
        grantedBytes -= have;
        have = 0;
      },
    };
  };
  const remote = {
    name: 'c',
    partitionCountOf: () => 1,
    resumePoint: async () => opts.cursor ?? -1n,
    // An unbounded budget: every grant at once, counted so a test sees what is held.
    tryAcquire: grant,
    acquire: async (bytes: number) => grant(bytes),
    append: async (_l: Link, req: SentRequest): Promise<AppendResponse> => {
      opts.onSend?.(req);
      sent.push({ continuesFrom: req.continuesFrom, senderEndOffset: req.senderEndOffset, entries: req.entries });
      if (opts.copy) copies.push({ ...sent.at(-1)!, entries: req.entries.map((e) => ({ ...e, batches: e.batches.map((b) => ({ ...b, batch: Buffer.from(b.batch) })) })) });
      if (opts.hold) await new Promise<void>((r) => held.push(r)); // a slow WAN: answered when the test says
      return { errorCode: 0, errorMessage: null, senderCursor: req.senderEndOffset, appendedBatches: 0, duplicateBatches: 0 };
    },
  };
  return {
    sent,
    copies,
    remote: remote as unknown as RemoteRegion,
    get grantedBytes() {
      return grantedBytes;
    },
    /** Answers the oldest request still held. */
    answerNext: () => held.shift()?.(),
    answerAll: () => held.splice(0).forEach((r) => r()),
  };
}

export const WORKER_OPTIONS = { pipelineDepth: 4, retryInitialMs: 10, retryMaxMs: 100 };

export function newWorker(log: PartitionLog, remote: RemoteRegion, l: Link, extra: { tiered?: unknown; maxRequestBytes?: number; pool?: BufferPool } = {}): PartitionWorker {
  return new PartitionWorker({
    region: 'b',
    topic: 't',
    topicId: 'b-tid',
    partition: 0,
    link: l,
    log,
    remote,
    tiered: extra.tiered as never,
    options: { maxRequestBytes: extra.maxRequestBytes ?? 1 << 20, ...WORKER_OPTIONS },
    logger,
    pool: extra.pool,
  });
}

export async function waitIdle(w: PartitionWorker, what: string, timeoutMs = 10_000): Promise<WorkerStatus> {
  return waitFor(
    what,
    () => {
      const s = w.status();
      if (s.state === 'idle' && s.backlogRecords === 0) return s;
      if (s.state === 'error') throw new Error(`worker in error: ${s.error}`);
      return undefined;
    },
    timeoutMs,
    20,
  );
}

/**
 * A fresh PartitionLog for one test (with `options`). `track` registers a worker to stop (after `before`, if
 * given) before the log closes: t.after hooks run in registration order.
 */
export async function scratchLog(t: TestContext, prefix: string, options: Partial<LogOptions> = {}): Promise<{ log: PartitionLog; track: (w: PartitionWorker, before?: () => void) => PartitionWorker }> {
  const d = tmpDir(prefix);
  const log = await PartitionLog.open(d.dir, options);
  const workers: Array<{ w: PartitionWorker; before?: () => void }> = [];
  t.after(async () => {
    for (const { w, before } of workers) {
      before?.();
      await w.stop();
    }
    await log.close();
    d.cleanup();
  });
  return {
    log,
    track: (w, before) => {
      workers.push({ w, before });
      return w;
    },
  };
}

/**
 * A stand-in for tiered storage over `log`: everything below `localStart` is "offloaded" and
 * read back one segment at a time, as TieredStorage reads. `reachable` false: the store is
 * down (its part of the partition unknown), as at a broker start without the store.
 */
export function fakeTiered(log: PartitionLog, opts: { reachable: boolean }) {
  const down = () => new MeridianError(ErrorCode.StorageIo, "the object store holding t's older data is not reachable yet", { retriable: true });
  const segmentOf = (offset: bigint) => log.segments().find((s) => s.baseOffset <= offset && offset < s.nextOffset);
  return {
    opts,
    logStartOffset: () => {
      if (!opts.reachable) throw down();
      return 0n;
    },
    read: async (_t: string, _p: number, offset: bigint, maxBytes: number) => {
      if (!opts.reachable) throw down();
      const seg = segmentOf(offset);
      if (seg === undefined) return undefined;
      const r = await log.read(offset, maxBytes, { upTo: seg.nextOffset });
      return { records: Buffer.from(r.records), highWatermark: log.highWatermark, logStartOffset: 0n };
    },
    remoteSegmentEnd: (_t: string, _p: number, offset: bigint) => segmentOf(offset)?.nextOffset,
  };
}

/** `log` as a worker sees it once everything below `localStart` was deleted locally. */
export function withLocalStart(log: PartitionLog, localStart: () => bigint): PartitionLog {
  return new Proxy(log, {
    get: (target, prop) => {
      if (prop === 'logStartOffset') return localStart();
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
