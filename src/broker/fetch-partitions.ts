/**
 * What a Fetch request does, wire-independent: read whole stored batches from each
 * requested partition within the per-partition and total byte budgets, and long-poll (no
 * busy loop: it sleeps on the logs' append notifications) until `minBytes` are there,
 * `maxWaitMs` has passed, or the client went away.
 *
 * Budgets follow KIP-74: the first non-empty partition always returns at least one whole
 * batch, however large; later partitions return only what fits what is left.
 */
import { kafkaCode, toKafkaError } from '../protocol/kafka/error-mapping.js';
import type { BufferPool } from '../storage/buffer-pool.js';
import type { LogViews } from '../storage/log-view.js';
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
}

const EMPTY = Buffer.alloc(0);

export async function fetchPartitions(views: LogViews, reqs: readonly FetchPartitionRequest[], opts: FetchOptions): Promise<FetchPartitionResult[]> {
  const deadline = Date.now() + Math.max(0, opts.maxWaitMs);
  for (;;) {
    // Read every partition at once (the reads run in parallel in the I/O pool), each
    // within its own limit; then apply the response's total budget in request order.
    const logs: PartitionLog[] = [];
    const slabs: Buffer[] = [];
    const reads = reqs.map(async (req): Promise<FetchPartitionResult> => {
      const view = views.view(req.topic, req.partition);
      if (view === undefined) {
        return { topic: req.topic, partition: req.partition, errorCode: kafkaCode('UNKNOWN_TOPIC_OR_PARTITION'), highWatermark: -1n, logStartOffset: -1n, records: null };
      }
      logs.push(view.local);
      // The local log start stands in while the store's part is unknown (the error path).
      const base = { topic: req.topic, partition: req.partition, highWatermark: view.highWatermark, logStartOffset: view.local.logStartOffset };
      try {
        base.logStartOffset = view.logStartOffset;
        const budget = Math.max(1, Math.min(req.maxBytes, opts.maxBytes));
        const r = await view.read(req.fetchOffset, budget, { pool: opts.pool, signal: opts.signal });
        if (r.pooled) slabs.push(r.pooled);
        return { ...base, highWatermark: r.highWatermark, errorCode: 0, records: r.records };
      } catch (err) {
        return { ...base, errorCode: toKafkaError(err).code, records: null };
      }
    });
    const results = await Promise.all(reads);
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
    await waitForAppend(logs, remaining, opts.signal);
  }
}

/** Resolves on the first append to any of `logs`, after `ms`, or on abort. */
function waitForAppend(logs: PartitionLog[], ms: number, signal?: AbortSignal): Promise<void> {
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
    for (const log of logs) offs.push(log.onAppend(done));
  });
}
