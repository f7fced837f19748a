/**
 * What a Fetch request does, wire-independent: read whole stored batches from each
 * requested partition within the per-partition and total byte budgets, and long-poll (no
 * busy loop: it sleeps on the logs' append notifications) until `minBytes` are there,
 * `maxWaitMs` has passed, or the client went away.
 *
 * Budgets follow KIP-74: the first non-empty partition always returns at least one whole
 * batch, however large; later partitions return only what fits what is left. The reads
 * themselves are bounded by what is left (`readBudgeted`), so a fetch naming 10,000
 * partitions holds about `maxBytes` of read buffers, not a window per partition.
 */
import { kafkaCode, toKafkaError } from '../protocol/kafka/error-mapping.js';
import type { BufferPool } from '../storage/buffer-pool.js';
import type { LogView, LogViews } from '../storage/log-view.js';
import type { PartitionLog } from '../storage/partition-log.js';

export interface FetchPartitionRequest {
  topic: string;
  partition: number;
  fetchOffset: bigint;
  maxBytes: number;
}

export interface FetchPartitionResult {
  topic: string;
  partition: number;
  errorCode: number;
  highWatermark: bigint;
  logStartOffset: bigint;
  records: Buffer | null;
}

export interface FetchOptions {
  maxBytes: number;
  minBytes: number;
  maxWaitMs: number;
  signal?: AbortSignal;
  /** Reads go into this pool's buffers; every one used is passed to `keep`. */
  pool?: BufferPool;
  /** Receives each pooled buffer the returned records live in; release them after the write. */
  keep?: (pooled: Buffer) => void;
  /**
   * Region clusters (src/cluster/replica-manager.ts): where reads of a partition stop and
   * the high watermark answered (a consumer reads to the replicated high watermark, a
   * follower to the log end); may throw (leadership moved), which answers the partition's
   * error. Absent: the log's own high watermark, as on a single broker.
   */
  bounds?: (view: LogView) => { upTo: bigint; highWatermark: bigint };
  /** What a long poll waits on per log (absent: its appends). */
  watch?: (log: PartitionLog, wake: () => void) => () => void;
}

const EMPTY = Buffer.alloc(0);

export async function fetchPartitions(views: LogViews, reqs: readonly FetchPartitionRequest[], opts: FetchOptions): Promise<FetchPartitionResult[]> {
  const deadline = Date.now() + Math.max(0, opts.maxWaitMs);
  for (;;) {
    const { results, logs, slabs } = await readBudgeted(views, reqs, opts);
    let total = 0;
    let anyError = false;
    for (const r of results) {
      if (r.errorCode !== 0) {
        anyError = true;
        continue;
      }
      const size = r.records?.length ?? 0;
      // KIP-74: the first non-empty partition always gets its (first) batch; later ones
      // only what still fits.
      if (total > 0 && total + size > opts.maxBytes) r.records = EMPTY;
      total += r.records?.length ?? 0;
    }
    const remaining = deadline - Date.now();
    if (total >= opts.minBytes || anyError || remaining <= 0 || opts.signal?.aborted || logs.length === 0) {
      for (const slab of slabs) opts.keep ? opts.keep(slab) : opts.pool?.release(slab);
      return results;
    }
    for (const slab of slabs) opts.pool?.release(slab);
    await waitForAppend(logs, remaining, opts.signal, opts.watch);
  }
}

/**
 * Reads the partitions in request order, in parallel in the I/O pool, each within its own
 * limit and within what the response's `maxBytes` has left:
 * a read reserves its budget from the total when it starts and gives back what it did not
 * use when it ends, so the read buffers of one fetch stay within about `maxBytes` however
 * many partitions it names. A partition already read to its end (the usual case in a fetch
 * of 10,000 partitions) costs no read and no buffer. A partition is answered empty for
 * lack of budget only when the reads done already fill `maxBytes` (the response is full;
 * the client fetches it next time), never because reads in flight reserved it.
 */
async function readBudgeted(views: LogViews, reqs: readonly FetchPartitionRequest[], opts: FetchOptions): Promise<{ results: FetchPartitionResult[]; logs: PartitionLog[]; slabs: Buffer[] }> {
  const results: FetchPartitionResult[] = new Array(reqs.length);
  const logs: PartitionLog[] = [];
  const slabs: Buffer[] = [];
  let used = 0;
  let reserved = 0;
  let inFlight = 0;
  let settled: (() => void) | undefined;
  const reads: Promise<void>[] = [];
  for (let i = 0; i < reqs.length; i++) {
    const req = reqs[i];
    const view = views.view(req.topic, req.partition);
    if (view === undefined) {
      results[i] = { topic: req.topic, partition: req.partition, errorCode: kafkaCode('UNKNOWN_TOPIC_OR_PARTITION'), highWatermark: -1n, logStartOffset: -1n, records: null };
      continue;
    }
    logs.push(view.local);
    // The local log start stands in while the store's part is unknown (the error path).
    const base: FetchPartitionResult = { topic: req.topic, partition: req.partition, errorCode: 0, highWatermark: view.highWatermark, logStartOffset: view.local.logStartOffset, records: EMPTY };
    let upTo: bigint | undefined;
    try {
      base.logStartOffset = view.logStartOffset;
      if (opts.bounds !== undefined) {
        const b = opts.bounds(view);
        upTo = b.upTo;
        base.highWatermark = b.highWatermark;
      }
    } catch (err) {
      results[i] = { ...base, errorCode: toKafkaError(err).code, records: null };
      continue;
    }
    if (req.fetchOffset === (upTo ?? base.highWatermark) && req.fetchOffset >= base.logStartOffset) {
      // The usual case of a fetch naming thousands of partitions: no read, one object.
      results[i] = base;
      continue;
    }
    // Wait for budget while reads in flight hold it. No cap on reads in flight beyond that:
    // queued behind produce's fdatasyncs on the 4-thread I/O pool, a few at a time took a
    // tail-following kcat group from 26 ms to 778 ms (p50, bench:scale at 2,000 partitions).
    while (inFlight > 0 && opts.maxBytes - used - reserved <= 0) {
      await new Promise<void>((resolve) => (settled = resolve));
    }
    const left = opts.maxBytes - used - reserved;
    if (left <= 0 && used > 0) {
      results[i] = { ...base, errorCode: 0, records: EMPTY };
      continue;
    }
    const budget = Math.max(1, Math.min(req.maxBytes, left));
    reserved += budget;
    inFlight++;
    reads.push(
      (async () => {
        try {
          const r = await view.read(req.fetchOffset, budget, upTo === undefined ? { pool: opts.pool, signal: opts.signal } : { pool: opts.pool, signal: opts.signal, upTo });
          if (r.pooled) slabs.push(r.pooled);
          used += r.records.length;
          results[i] = { ...base, highWatermark: upTo === undefined ? r.highWatermark : base.highWatermark, errorCode: 0, records: r.records };
        } catch (err) {
          results[i] = { ...base, errorCode: toKafkaError(err).code, records: null };
        } finally {
          reserved -= budget;
          inFlight--;
          const wake = settled;
          settled = undefined;
          wake?.();
        }
      })(),
    );
  }
  await Promise.all(reads);
  return { results, logs, slabs };
}

/** Resolves on the first append to any of `logs` (or what `watch` watches), after `ms`, or on abort. */
function waitForAppend(logs: PartitionLog[], ms: number, signal?: AbortSignal, watch?: FetchOptions['watch']): Promise<void> {
  return new Promise<void>((resolve) => {
    const offs: Array<() => void> = [];
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      for (const off of offs) off();
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done);
    for (const log of logs) offs.push(watch === undefined ? log.onAppend(done) : watch(log, done));
  });
}
