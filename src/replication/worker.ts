/**
 * One replicator worker: forwards one partition of one topic to one remote region.
 *
 *   1. Ask the remote where to resume (the last offset of this log it holds: the remote,
 *      not a local cursor, is the source of truth).
 *   2. Read whole batches from the next offset, up to what is durable here (a power loss
 *      must never take back a record a remote already holds; in the interval flush mode,
 *      up to what is written, below a ship fence that keeps such a loss from reusing the
 *      offsets: storage/ship-fence.ts) and, in a region cluster, held
 *      by every in-sync replica (`CommittedEnd`: a leader change must not take it back
 *      either), from local disk or, for offloaded offsets, from the object store.
 *   3. Keep what this link forwards: data produced here, and with relay also data received
 *      from elsewhere, never to a region already on its hop path. Runs of replicated batches
 *      are sent whole, so a resume point always falls on a run boundary.
 *   4. Send them verbatim in ReplicatedAppends, up to `pipelineDepth` in flight, each
 *      saying which resume point it continues from (the remote refuses one that would leave
 *      a gap); on success move on, on any failure wait for what is in flight, back off
 *      (exponential with jitter) and start again at 1.
 *
 * Memory is bounded by the link's in-flight byte budget, taken before reading, so a remote
 * that is down costs disk, not RAM.
 */
import fs from 'node:fs';
import type { Logger } from 'pino';
import { writeFileAtomicSync } from '../storage/fs-util.js';
import { PartitionFiles } from '../storage/partition-files.js';
import { ErrorCode, MeridianError } from '../errors.js';
import { LogView, type RemoteHistory } from '../storage/log-view.js';
import type { BufferPool } from '../storage/buffer-pool.js';
import type { PartitionLog } from '../storage/partition-log.js';
import { lastOffsetOf, storedBatches, type BatchHeader } from '../storage/record-batch.js';
import type { Link } from './policy.js';
import type { ReplicatedEntry } from './replication-api.js';
import type { RemoteRegion } from './remote-region.js';
import { RunTracker } from './run-tracker.js';
import { Ticker } from './ticker.js';

export type WorkerState = 'starting' | 'running' | 'idle' | 'backing-off' | 'error' | 'stopped';

/**
 * How far a worker may send in a region cluster (issue 16): the partition's replicated high
 * watermark in this region. Data past it may still be lost with this broker (a new leader
 * without it would reuse its offsets for other records, which the remote would then drop as
 * duplicates), so it is sent only once every in-sync replica holds it.
 */
export interface CommittedEnd {
  /** The first offset not yet replicated in this region (exclusive). */
  end(): bigint;
  /** Calls `listener` when `end()` may have moved; returns the unsubscribe. */
  onChange(listener: () => void): () => void;
}

export interface WorkerOptions {
  maxRequestBytes: number;
  /** Requests in flight at once for this partition and link. */
  pipelineDepth: number;
  retryInitialMs: number;
  retryMaxMs: number;
}

export interface WorkerStatus {
  topic: string;
  partition: number;
  remote: string;
  policy: string;
  relay: boolean;
  state: WorkerState;
  error: string | null;
  /** Last offset of this partition the remote holds (-1: none; null: not known yet). */
  replicatedOffset: string | null;
  /** The origin offset of the last record sent (for data produced here, the same offset). */
  lastOriginOffset: string | null;
  backlogRecords: number;
  backlogBytes: number;
  lagSeconds: number;
  bytesPerSecond: number;
  recordsPerSecond: number;
  sentBatches: number;
  sentRecords: number;
  sentBytes: number;
  retries: number;
  /** Records retention deleted before the remote got them (backlog quota). */
  quotaDroppedRecords: number;
}

const RATE_WINDOW_MS = 10_000;
/** The tick of a worker given no shared one (tests): see ticker.ts. */
const OWN_TICK_MS = 100;

interface InFlight {
  chunk: Chunk;
  /** Settles (never rejects) when the request is answered; `error` says how. */
  settled: Promise<void>;
  /** Whether `settled` has settled. */
  done: boolean;
  error: unknown;
}

interface Chunk {
  entries: ReplicatedEntry[];
  /** Last offset of this log the chunk covers (sent or deliberately skipped). */
  lastOffset: bigint;
  bytes: number;
  records: number;
  batches: number;
  firstTimestamp: bigint;
  lastOriginOffset: bigint | null;
  /** The pooled read buffer the entries' batches live in: released once the request settles. */
  pooled?: Buffer;
}

export class PartitionWorker {
  readonly topic: string;
  /** The topic's id here: the remote tracks progress per id. */
  readonly topicId: string;
  readonly partition: number;
  readonly link: Link;
  readonly log: PartitionLog;
  #region: string;
  #remote: RemoteRegion;
  /** `log` and, with tiered storage, what the bucket holds below it: every read goes here. */
  #view: LogView;
  /** Read buffers, shared by the replicator's workers (absent: each read allocates its own). */
  #pool: BufferPool | undefined;
  #opts: WorkerOptions;
  /** The replicator's logger; this worker's child of it is made at its first line (`#logger`). */
  #parentLogger: Logger;
  #childLogger: Logger | undefined;
  #state: WorkerState = 'starting';
  #error: string | null = null;
  /** Whether the remote said where to resume since the last failure (false: ask it). */
  #resumed = false;
  /** Last offset the remote confirmed holding, kept across failures for status and retention. */
  #lastKnownCursor: bigint | undefined;
  /** End of the last request sent (the next request continues from it). */
  #sentEnd = -1n;
  /** Next offset to read: ahead of the confirmed offset by what is in flight. */
  #readFrom = 0n;
  #inFlight: InFlight[] = [];
  /** Batch timestamp of the oldest record not confirmed, when nothing is in flight. */
  #nextTimestamp: bigint | null = null;
  #lastOriginOffset: bigint | null = null;
  #abort = new AbortController();
  #done: Promise<void> | undefined;
  /** Ends the current wait (a stop); set while the worker waits or sleeps. */
  #wake: (() => void) | undefined;
  /** The current wait's check, run at each event that may satisfy it (`#poke`). */
  #check: (() => void) | undefined;
  /** Events seen (appends, durable points, answers): a wait for "anything" compares it. */
  #events = 0;
  /** Runs the current wait's check: the log's and the committed end's listeners, subscribed once per run. */
  readonly #poke = (): void => {
    this.#events++;
    this.#check?.();
  };
  /** The replicator's shared tick: re-checks for waits whose event may never come. */
  #ticker: Ticker;
  /** A region cluster's replicated high watermark; absent on a single broker (the log end). */
  #committed: CommittedEnd | undefined;
  #window: Array<{ t: number; bytes: number; records: number }> = [];
  #started = Date.now();
  readonly totals = { batches: 0, records: 0, bytes: 0, retries: 0, quotaDroppedRecords: 0 };

  constructor(opts: { region: string; topic: string; topicId: string; partition: number; link: Link; log: PartitionLog; remote: RemoteRegion; tiered?: RemoteHistory; options: WorkerOptions; logger: Logger; ticker?: Ticker; committed?: CommittedEnd; pool?: BufferPool }) {
    this.#pool = opts.pool;
    this.#ticker = opts.ticker ?? new Ticker(OWN_TICK_MS);
    this.#committed = opts.committed;
    this.#region = opts.region;
    this.topic = opts.topic;
    this.topicId = opts.topicId;
    this.partition = opts.partition;
    this.link = opts.link;
    this.log = opts.log;
    this.#remote = opts.remote;
    this.#view = new LogView(opts.log, opts.topic, opts.partition, opts.tiered);
    this.#opts = opts.options;
    this.#parentLogger = opts.logger;
  }

  /**
   * Made when first needed: a pino child holds its bindings as a string built by
   * concatenation, ~35 heap objects, and most of 10,000 workers never log a line.
   */
  get #logger(): Logger {
    return (this.#childLogger ??= this.#parentLogger.child({ topic: this.topic, partition: this.partition, remote: this.link.remote }));
  }

  /** Last offset the remote is known to hold: what retention must keep past (undefined: unknown). */
  get acknowledged(): bigint | undefined {
    return this.#lastKnownCursor;
  }

  get state(): WorkerState {
    return this.#state;
  }

  start(): void {
    this.#done ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    this.#wake?.();
    await this.#done;
    this.#state = 'stopped';
  }

  /** Records that retention deleted unreplicated data under the backlog quota. */
  noteQuotaDrop(records: number): void {
    this.totals.quotaDroppedRecords += records;
  }

  status(now = Date.now()): WorkerStatus {
    const cursor = this.#lastKnownCursor;
    const next = cursor === undefined ? this.#earliestKnown() : cursor + 1n;
    const backlogRecords = Number(this.log.highWatermark > next ? this.log.highWatermark - next : 0n);
    this.#trimWindow(now);
    const span = Math.max(1, Math.min(RATE_WINDOW_MS, now - this.#started)) / 1000;
    return {
      topic: this.topic,
      partition: this.partition,
      remote: this.link.remote,
      policy: this.link.policy.name,
      relay: this.link.relay,
      state: this.#state,
      error: this.#error,
      replicatedOffset: cursor === undefined ? null : String(cursor),
      lastOriginOffset: this.#lastOriginOffset === null ? null : String(this.#lastOriginOffset),
      backlogRecords,
      backlogBytes: backlogRecords === 0 ? 0 : this.backlogBytes(next),
      lagSeconds: backlogRecords === 0 ? 0 : this.#lagSeconds(now),
      bytesPerSecond: Math.round(this.#window.reduce((n, w) => n + w.bytes, 0) / span),
      recordsPerSecond: Math.round(this.#window.reduce((n, w) => n + w.records, 0) / span),
      sentBatches: this.totals.batches,
      sentRecords: this.totals.records,
      sentBytes: this.totals.bytes,
      retries: this.totals.retries,
      quotaDroppedRecords: this.totals.quotaDroppedRecords,
    };
  }

  /** Age of the oldest record the remote does not hold yet (by its batch timestamp). */
  #lagSeconds(now: number): number {
    const ts = this.#inFlight[0]?.chunk.firstTimestamp ?? this.#nextTimestamp;
    return ts === null ? 0 : Math.max(0, (now - Number(ts)) / 1000);
  }

  /** Bytes of this log from `next` on (estimated within the segment holding `next`). */
  backlogBytes(next: bigint = (this.#lastKnownCursor ?? -1n) + 1n): number {
    let bytes = 0;
    const segs = this.log.segments();
    for (const s of segs) {
      if (s.nextOffset <= next) continue;
      if (s.baseOffset >= next) bytes += s.sizeBytes;
      else bytes += (s.sizeBytes * Number(s.nextOffset - next)) / Math.max(1, Number(s.nextOffset - s.baseOffset));
    }
    const localStart = this.log.logStartOffset;
    if (next < localStart && segs.length > 0) {
      const perOffset = this.log.sizeBytes / Math.max(1, Number(this.log.highWatermark - localStart));
      bytes += perOffset * Number(localStart - next);
    }
    return Math.round(bytes);
  }

  /**
   * The backlog this region still holds for the remote: from the first offset the remote
   * lacks, or from the oldest offset still held if retention already deleted past it.
   */
  heldBacklogBytes(): number {
    const next = (this.#lastKnownCursor ?? -1n) + 1n;
    const earliest = this.#earliestKnown();
    return this.backlogBytes(next > earliest ? next : earliest);
  }

  /**
   * The first offset this region still holds, across both tiers. Throws (retriable) while
   * the object store's part cannot be known yet: skipping ahead then would skip history
   * that is only temporarily out of reach.
   */
  #earliest(): bigint {
    return this.#view.logStartOffset;
  }

  /** For status and estimates only: the local log start while the store's is unknown. */
  #earliestKnown(): bigint {
    try {
      return this.#earliest();
    } catch {
      return this.log.logStartOffset;
    }
  }

  /**
   * Whether acknowledged records may be sent before their fdatasync: in the interval flush
   * mode of a single-broker region, below the log's ship fence (storage/ship-fence.ts), which
   * keeps a power loss here from reusing offsets the remote holds. In the fsync mode a record
   * is acknowledged only once durable; in a region cluster the committed end bounds what is
   * sent, and only durable records are.
   */
  #shipsUnsynced(): boolean {
    return this.#committed === undefined && this.log.unsyncedShipping;
  }

  /** The end of what may be sent: the log end, or in a region cluster the replicated high watermark. */
  #end(): bigint {
    const written = this.log.highWatermark;
    if (this.#committed === undefined) return written;
    const c = this.#committed.end();
    return c < written ? c : written;
  }

  /**
   * Subscribes `#poke` to every event a wait may be waiting for: the log's appends and
   * durable points, and in a region cluster the committed end. Once per run, not per wait: a
   * live partition waits several times per request, and a subscription per wait was a
   * measurable share of the replicator's allocations over 10,000 partitions (issue 15).
   */
  #subscribe(): () => void {
    const offs = [this.log.onAppend(this.#poke), this.log.onDurable(this.#poke)];
    if (this.#committed !== undefined) offs.push(this.#committed.onChange(this.#poke));
    return () => {
      for (const off of offs) off();
    };
  }

  get #signal(): AbortSignal {
    return this.#abort.signal;
  }

  async #run(): Promise<void> {
    const unsubscribe = this.#subscribe();
    try {
      await this.#loop();
    } finally {
      unsubscribe();
    }
  }

  async #loop(): Promise<void> {
    let backoff = this.#opts.retryInitialMs;
    while (!this.#signal.aborted) {
      try {
        if (!this.#resumed) {
          this.#state = 'starting';
          this.#checkHold();
          const cursor = await this.#remote.resumePoint(this.topic, this.topicId, this.partition, this.#partitionCount());
          if (cursor >= 0n && cursor >= this.log.highWatermark) this.#hold(cursor);
          this.#resumed = true;
          this.#sentEnd = cursor;
          this.#readFrom = cursor + 1n;
          this.#lastKnownCursor = cursor;
          if (this.#error !== null) this.#logger.info({ resumeAfter: String(cursor) }, 'replication link recovered');
          this.#error = null;
        }
        await this.#step();
        backoff = this.#opts.retryInitialMs;
      } catch (err) {
        // Whatever else is in flight is void now: the remote refuses what would not
        // continue its log, and the next handshake says where to resume.
        await Promise.all(this.#inFlight.map((f) => f.settled));
        this.#nextTimestamp = this.#inFlight[0]?.chunk.firstTimestamp ?? this.#nextTimestamp;
        this.#inFlight = [];
        if (this.#signal.aborted) break;
        const message = err instanceof Error ? err.message : String(err);
        // Retention moving the log start under a read is a race, not a fault of the link.
        const permanent = err instanceof MeridianError && !err.retriable && err.code !== ErrorCode.OffsetOutOfRange;
        if (this.#error !== message) this.#logger.warn({ err: message }, permanent ? 'replication link in error; retrying' : 'replication failed; backing off');
        this.#state = permanent ? 'error' : 'backing-off';
        this.#error = message;
        this.#resumed = false;
        this.totals.retries++;
        const delay = permanent ? this.#opts.retryMaxMs : backoff;
        await this.#sleep(delay * (0.5 + Math.random()));
        backoff = Math.min(backoff * 2, this.#opts.retryMaxMs);
      }
    }
    await Promise.all(this.#inFlight.map((f) => f.settled));
  }

  get #holdFile(): string {
    return PartitionFiles.replicationHold(this.log.dir, this.link.remote);
  }

  /**
   * The remote holds offsets of this partition that this region does not have: this
   * region lost data (its disk restored from a backup, or the topic restored from the
   * bucket without its newest segments). Records produced here at those offsets would be
   * taken for duplicates there, so the link stops, durably, until an operator resolves it.
   */
  #hold(cursor: bigint): never {
    const message =
      `region ${this.link.remote} holds ${this.topic}/${this.partition} up to offset ${cursor} but this region's log ends at ${this.log.highWatermark}: ` +
      `this region lost data it had replicated. Replication of this partition to ${this.link.remote} is stopped so that new records are not mistaken for duplicates; ` +
      `resolve it (e.g. delete the topic in ${this.link.remote} or accept the loss), then delete ${this.#holdFile}`;
    writeFileAtomicSync(this.#holdFile, JSON.stringify({ remote: this.link.remote, remoteCursor: String(cursor), logEnd: String(this.log.highWatermark), at: new Date().toISOString(), message }, null, 2) + '\n');
    this.#logger.error({ remoteCursor: String(cursor), logEnd: String(this.log.highWatermark) }, 'replication stopped: the remote holds offsets this region no longer has');
    throw new MeridianError(ErrorCode.ReplicationDiverged, message);
  }

  #checkHold(): void {
    if (!fs.existsSync(this.#holdFile)) return;
    const held = JSON.parse(fs.readFileSync(this.#holdFile, 'utf8')) as { message: string };
    throw new MeridianError(ErrorCode.ReplicationDiverged, held.message);
  }

  #partitionCount(): number {
    return this.#remote.partitionCountOf(this.topic);
  }

  /**
   * One step: send the next chunk if the pipeline has room and there is data, otherwise
   * wait for the oldest request in flight, otherwise wait for data.
   */
  async #step(): Promise<void> {
    let next = this.#readFrom;
    const earliest = this.#earliest();
    if (next < earliest) {
      if (next > 0n) {
        // Retention deleted records the remote never got (only a backlog quota allows it).
        this.#logger.warn({ from: String(next), to: String(earliest - 1n), records: Number(earliest - next) }, 'replication skipped records retention deleted before the remote received them');
      }
      next = earliest;
      this.#readFrom = next;
    }
    const hw = this.#end();
    // Answers already in: taken here, not one loop turn each (a live partition over
    // 10,000 has one answered request per write; each turn is an async step's allocations).
    while (this.#inFlight[0]?.done) this.#takeOldest();
    if (this.#inFlight.length >= this.#opts.pipelineDepth) return this.#settleOldest();
    if (next >= hw) {
      if (this.#inFlight.length > 0) {
        // Caught up with requests in flight: new data goes out as soon as it is here, not
        // after their answers (each waits for the remote's fdatasync), or a live partition
        // would send one request per remote fsync whatever pipelineDepth says.
        await this.#waitForAppendOrAnswer(next, this.#inFlight[0]);
        return;
      }
      this.#state = 'idle';
      this.#nextTimestamp = null;
      await this.#waitForAppend(next);
      return;
    }
    if (next >= this.log.durableOffset && next >= this.log.logStartOffset && !this.#shipsUnsynced()) {
      // Written but not yet fsynced. If a producer's fsync is on its way (acks=all), it
      // covers this; if none is (acks=1), sync it now.
      if (this.log.syncPending) await this.#waitForDurable(next);
      if (next >= this.log.durableOffset) await this.log.flush();
    }
    this.#state = 'running';
    // Stopped while waiting for the fdatasync: no read, no append (acquire refuses an aborted signal; tryAcquire does not look).
    if (this.#signal.aborted) return;
    const grant = this.#remote.tryAcquire(this.#opts.maxRequestBytes) ?? (await this.#remote.acquire(this.#opts.maxRequestBytes, this.#signal));
    let chunk: Chunk | null = null;
    try {
      chunk = await this.#read(next);
      // Records not durable yet go out only below the ship fence; where it cannot be raised, after an fdatasync.
      if (chunk !== null && chunk.entries.length > 0 && chunk.lastOffset >= this.log.durableOffset && !(await this.log.coverUnsynced(chunk.lastOffset))) await this.log.flush();
    } catch (err) {
      if (chunk !== null) this.#release(chunk);
      grant.release();
      throw err;
    }
    if (chunk === null) {
      grant.release();
      if (this.#inFlight.length > 0) return this.#settleOldest();
      await this.#waitForTick(); // readable bytes not there yet (a race with retention or the flush)
      return;
    }
    this.#readFrom = chunk.lastOffset + 1n;
    if (this.#inFlight.length === 0) this.#nextTimestamp = chunk.firstTimestamp;
    if (chunk.entries.length === 0) {
      // Nothing this link forwards: done once everything before it is.
      this.#release(chunk);
      grant.release();
      this.#inFlight.push({ chunk, settled: Promise.resolve(), done: true, error: undefined });
      return;
    }
    grant.shrink(chunk.bytes);
    const continuesFrom = this.#sentEnd;
    this.#sentEnd = chunk.lastOffset;
    const entry: InFlight = { chunk, settled: Promise.resolve(), done: false, error: undefined };
    const settle = (err?: unknown): void => {
      if (err !== undefined) entry.error = err;
      // Answered or failed: the link wrote the batches or dropped them with its
      // connection, so their buffer may be reused.
      this.#release(chunk);
      entry.done = true;
      grant.release();
      this.#poke();
    };
    entry.settled = this.#remote
      .append(this.link, { topic: this.topic, senderTopicId: this.topicId, partition: this.partition, senderEndOffset: chunk.lastOffset, continuesFrom, entries: chunk.entries }, chunk.bytes, this.#signal)
      .then(() => settle(), (err: unknown) => settle(err ?? new Error('replication request failed')));
    this.#inFlight.push(entry);
  }

  /** Waits for the oldest request in flight; on success the remote holds its chunk. */
  async #settleOldest(): Promise<void> {
    await this.#inFlight[0].settled;
    this.#takeOldest();
  }

  /** Takes the oldest request, answered (`done`), off the pipeline; throws what failed it. */
  #takeOldest(): void {
    const f = this.#inFlight[0];
    if (f.error !== undefined) throw f.error;
    this.#inFlight.shift();
    const chunk = f.chunk;
    this.#lastKnownCursor = chunk.lastOffset;
    if (chunk.entries.length > 0) {
      this.totals.batches += chunk.batches;
      this.totals.records += chunk.records;
      this.totals.bytes += chunk.bytes;
      this.#window.push({ t: Date.now(), bytes: chunk.bytes, records: chunk.records });
      this.#trimWindow(Date.now());
      if (chunk.lastOriginOffset !== null) this.#lastOriginOffset = chunk.lastOriginOffset;
    }
  }

  /**
   * Reads whole batches from `next` and keeps what this link forwards. Returns null when
   * nothing is readable yet. A run of replicated batches cut by the byte budget is left for
   * the next read, which starts at its marker; if the run alone exceeds the budget, the
   * budget grows until it fits (a run is one earlier append, bounded by the frame size).
   */
  async #read(next: bigint): Promise<Chunk | null> {
    let budget = this.#opts.maxRequestBytes;
    for (;;) {
      const end = this.#end();
      // What may be sent: durable records, or in the interval mode every written one (the
      // caller raises the ship fence past them before they go).
      const upTo = this.#shipsUnsynced() || this.log.durableOffset >= end ? end : this.log.durableOffset;
      const { records, pooled } = await this.#view.read(next, budget, { upTo, signal: this.#signal, pool: this.#pool });
      // Where the read must stop at the latest: the end of the segment holding `next` (a
      // run never spans segments, so reaching it completes any run, torn or not) or, in the
      // active segment, `upTo` (appends are written, and made durable, whole).
      const segEnd = this.#view.segmentEnd(next);
      const stop = segEnd === undefined || segEnd > upTo ? upTo : segEnd;
      if (records.length === 0) {
        if (pooled !== undefined) this.#pool!.release(pooled);
        return null;
      }
      const batches = storedBatches(records);
      const chunk = this.#select(batches, lastOffsetOf(batches.at(-1)!.h) + 1n >= stop);
      if (chunk !== null && chunk.bytes * 2 >= records.length) {
        chunk.pooled = pooled;
        return chunk;
      }
      // Forwarded batches are slices of the read window; when they are a small part of it (a
      // mesh link skipping data it received), they are copied, so the window is not pinned
      // while the request is in flight (the in-flight budget counts forwarded bytes).
      if (chunk !== null) for (const e of chunk.entries) for (const b of e.batches) b.batch = Buffer.from(b.batch);
      if (pooled !== undefined) this.#pool!.release(pooled);
      if (chunk !== null) return chunk;
      if (budget >= 256 * 1024 * 1024) throw new MeridianError(ErrorCode.CorruptBatch, `a replicated run at offset ${next} of ${this.topic}/${this.partition} does not fit in 256 MiB`);
      budget *= 4;
    }
  }

  /** Gives a chunk's read buffer back to the pool; nothing may use its entries' batches afterwards. */
  #release(chunk: Chunk): void {
    if (chunk.pooled === undefined) return;
    this.#pool!.release(chunk.pooled);
    chunk.pooled = undefined;
  }

  /** Builds the request entries from batches read in log order starting at a run boundary. */
  #select(batches: Array<{ buf: Buffer; h: BatchHeader }>, atEnd: boolean): Chunk | null {
    const tracker = new RunTracker();
    const kinds = batches.map((b) => tracker.classify(b.buf, b.h));
    let usable = batches.length;
    if (tracker.inRun && !atEnd) {
      // Cut before the marker that opened the unfinished run.
      usable = kinds.map((k) => k.kind).lastIndexOf('marker');
      if (usable <= 0) return null;
    }
    const entries: ReplicatedEntry[] = [];
    let bytes = 0;
    let records = 0;
    let sent = 0;
    let firstTimestamp: bigint | null = null;
    let lastOriginOffset: bigint | null = null;
    const remote = this.link.remote;
    for (let i = 0; i < usable; i++) {
      const k = kinds[i];
      const { buf, h } = batches[i];
      let origin: { region: string; topicId: string; partition: number; baseOffset: bigint; hops: readonly string[] } | null = null;
      if (k.kind === 'local') origin = { region: this.#region, topicId: this.topicId, partition: this.partition, baseOffset: h.baseOffset, hops: [this.#region] };
      else if (k.kind === 'replicated' && this.link.relay && !k.origin.hops.includes(remote) && k.origin.region !== remote) {
        origin = { region: k.origin.region, topicId: k.origin.topicId, partition: k.origin.partition, baseOffset: k.origin.baseOffset, hops: [...k.origin.hops, this.#region] };
      }
      if (origin === null) continue;
      firstTimestamp ??= h.maxTimestamp;
      const prev = entries.at(-1);
      const batch = { originBaseOffset: origin.baseOffset, senderBaseOffset: h.baseOffset, batch: buf };
      if (prev && prev.originRegion === origin.region && prev.originTopicId === origin.topicId && prev.originPartition === origin.partition && sameHops(prev.hops, origin.hops)) prev.batches.push(batch);
      else entries.push({ originRegion: origin.region, originTopicId: origin.topicId, originPartition: origin.partition, hops: origin.hops, batches: [batch] });
      bytes += buf.length;
      records += h.recordCount;
      sent++;
      lastOriginOffset = origin.baseOffset + BigInt(h.lastOffsetDelta);
    }
    const last = batches[usable - 1].h;
    return { entries, lastOffset: lastOffsetOf(last), bytes, records, batches: sent, firstTimestamp: firstTimestamp ?? last.maxTimestamp, lastOriginOffset };
  }

  /**
   * Until the log holds more than `next`. Only the log's append event (or the committed
   * end's) wakes an idle worker: no timer, no polling (issue 15: thousands of idle partitions
   * cost no CPU). Nothing but an append can give an idle worker work: the log start
   * (retention, offload, DeleteRecords) never passes the high watermark, and a stop wakes it
   * through `#wake`.
   */
  #waitForAppend(next: bigint): Promise<void> {
    return this.#waitUntil(() => this.#end() > next);
  }

  /** Until the log holds more than `next` or `oldest` is answered (its settling pokes), whichever comes first. */
  #waitForAppendOrAnswer(next: bigint, oldest: InFlight): Promise<void> {
    return this.#waitUntil(() => oldest.done || this.#end() > next);
  }

  /**
   * Until `next` is durable, or no fdatasync is pending any more (then the caller forces
   * one). Woken by the log's durable event; the shared tick re-checks, for a sync that
   * failed (the log went offline, and the caller's flush says so).
   */
  #waitForDurable(next: bigint): Promise<void> {
    return this.#waitUntil(() => this.log.durableOffset > next || !this.log.syncPending, (check) => this.#ticker.subscribe(check));
  }

  /** Until the next shared tick, or anything the log says, whichever comes first. */
  #waitForTick(): Promise<void> {
    const seen = this.#events;
    let ticked = false;
    return this.#waitUntil(
      () => ticked || this.#events !== seen,
      (check) =>
        this.#ticker.subscribe(() => {
          ticked = true;
          check();
        }),
    );
  }

  /**
   * Until `ready()` holds, checked now and at each event `#poke` sees (and at each of
   * `extra`'s, if given), or the worker stops.
   */
  #waitUntil(ready: () => boolean, extra?: (check: () => void) => () => void): Promise<void> {
    if (ready() || this.#signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let off: (() => void) | undefined;
      let settled = false;
      const done = () => {
        if (settled) return;
        settled = true;
        off?.();
        this.#check = undefined;
        this.#wake = undefined;
        resolve();
      };
      const check = () => {
        if (ready() || this.#signal.aborted) done();
      };
      this.#check = check;
      this.#wake = done;
      if (extra !== undefined) off = extra(check);
      if (settled) off?.();
    });
  }

  /** Backoff after a failure: a timer, for a worker in error only. */
  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  #trimWindow(now: number): void {
    while (this.#window.length > 0 && this.#window[0].t < now - RATE_WINDOW_MS) this.#window.shift();
  }
}

function sameHops(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
