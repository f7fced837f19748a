/**
 * The follower side of in-region replication: one fetcher per leader broker, carrying every
 * partition this broker follows from that leader over one connection (Kafka's
 * ReplicaFetcherThread, one per source broker).
 *
 * Per partition, two phases:
 * 1. truncate (on every new leader or epoch): OffsetForLeaderEpoch (API 23, v3, replica_id =
 *    this broker) for the latest epoch of its own log; the leader answers where that epoch
 *    ends on its side, and the follower cuts its log at min(that end, its own end). When the
 *    leader does not know the epoch and answers an older one B (KIP-279): if this log has B
 *    too, it cuts at the smaller of the two ends of B and is done; if it lacks B, it cuts
 *    where its own epochs below B end and asks again with its new (older) latest epoch, in
 *    rounds until the leader answers the epoch asked (Kafka's "truncation not complete").
 *    One round would keep, say, epoch-A records where the leader holds epoch-B ones
 *    (follower [A, C] against leader [A, B, D]). Every cut is rounded down to the start of
 *    the batch holding its target (`PartitionLog.batchBaseAtOrBefore`): the follower's
 *    batches came from older leaders and may be cut differently from the leader's. An empty
 *    log skips the phase; a log with records but no epochs (written in single-broker mode)
 *    is truncated to its log start and fetched again: Kafka truncates it to the high
 *    watermark, and this broker keeps no high watermark across restarts.
 * 2. fetch: Fetch v11 (replica_id = this broker, current_leader_epoch) from its log end,
 *    long-polling `maxWaitMs` on the leader, so an idle follower costs one request per
 *    `maxWaitMs` per leader. What comes back is appended verbatim (appendAsFollower: the
 *    leader's offsets and epoch stamps) and, in flush mode `fsync`, fdatasync'd before the
 *    next fetch: the offset a follower fetches from is what it durably holds, which is what
 *    the leader counts toward the high watermark.
 *
 * Requests use the non-flexible versions (Fetch v11, OffsetForLeaderEpoch v3) because
 * LinkClient (src/replication/link-client.ts, reused here as it is: connection, TLS, SASL,
 * pipelining) writes request header v1. It would belong in protocol/kafka as a generic
 * client; moving it is left for a later change.
 *
 * Errors: a partition the leader refuses (not leader, fenced or unknown epoch: its state is
 * changing) is retried after `backoffMs` and moved by the ReplicaManager when the new state
 * arrives; OFFSET_OUT_OF_RANGE sends it back to the truncate phase, or, when the leader's
 * log start lies past this replica's whole log, starts the log over there (resetTo); a connection failure
 * backs the whole fetcher off (doubling up to 1 s).
 *
 * Lifecycle: `start()`, `add`/`remove` at any time (remove resolves once no append or
 * truncation of that partition is in flight, so a new leader never appends beside a
 * follower append), `pause`/`resume` (tests, drills), `close()` (idempotent).
 */
import type { Logger } from 'pino';
import type { LinkSecurityConfig } from '../config/schema.js';
import { ErrorCode, MeridianError } from '../errors.js';
import { ApiKey } from '../protocol/kafka/api-keys.js';
import { kafkaCode } from '../protocol/kafka/error-mapping.js';
import { decodeFetchResponse, encodeFetchRequest, type FetchRequest } from '../protocol/kafka/messages/fetch.js';
import { ZERO_UUID } from '../protocol/kafka/messages/index.js';
import { decodeOffsetForLeaderEpochResponse, encodeOffsetForLeaderEpochRequest } from '../protocol/kafka/messages/offset-for-leader-epoch.js';
import { LinkClient } from '../replication/link-client.js';
import type { PartitionLog } from '../storage/partition-log.js';
import { ThrottledLog } from '../throttled-log.js';
import type { HostPort } from './partition-state-source.js';

const FETCH_VERSION = 11;
const OFFSET_FOR_LEADER_EPOCH_VERSION = 3;
const MAX_BACKOFF_MS = 1000;

export interface FetcherPartition {
  readonly topic: string;
  readonly partition: number;
  readonly log: PartitionLog;
  /** The leader epoch this broker follows in (sent as current_leader_epoch). */
  readonly leaderEpoch: number;
}

export interface ReplicaFetcherOptions {
  /** This broker's node id (replica_id). */
  nodeId: number;
  leaderId: number;
  /** The leader's Kafka listener; undefined while it is not registered. */
  address: () => HostPort | undefined;
  /** Long-poll of each fetch on the leader (Kafka replica.fetch.wait.max.ms). */
  maxWaitMs: number;
  /** Per response and per partition (Kafka replica.fetch.response.max.bytes, replica.fetch.max.bytes). */
  maxBytes: number;
  partitionMaxBytes: number;
  /** fdatasync each append before the next fetch (flush mode `fsync`). */
  sync: boolean;
  backoffMs: number;
  security?: LinkSecurityConfig;
  logger?: Logger;
  /** The leader's high watermark for a partition, from each fetch answer. */
  onHighWatermark?: (topic: string, partition: number, highWatermark: bigint) => void;
}

type CutResult = 'complete' | 'incomplete' | 'failed';

interface Entry extends FetcherPartition {
  readonly key: string;
  phase: 'truncate' | 'fetch';
  /** Not before this time (ms, Date.now) after an error. */
  retryAt: number;
  /** An append or truncation of this partition in flight. */
  busy: Promise<void> | null;
}

export class ReplicaFetcher {
  readonly leaderId: number;
  readonly #opts: ReplicaFetcherOptions;
  readonly #parts = new Map<string, Entry>();
  readonly #events: ThrottledLog;
  #client: LinkClient | undefined;
  #clientAddress = '';
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #closed = false;
  #paused = false;
  #failures = 0;
  /** Fetch requests sent (tests check an idle follower's cost). */
  fetches = 0;

  constructor(opts: ReplicaFetcherOptions) {
    this.leaderId = opts.leaderId;
    this.#opts = opts;
    this.#events = new ThrottledLog(opts.logger);
  }

  get size(): number {
    return this.#parts.size;
  }

  has(topic: string, partition: number): boolean {
    return this.#parts.has(key(topic, partition));
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Follows `p` from this leader (again, from the truncate phase, if it was already followed). */
  add(p: FetcherPartition): void {
    const k = key(p.topic, p.partition);
    const old = this.#parts.get(k);
    this.#parts.set(k, { ...p, key: k, phase: 'truncate', retryAt: 0, busy: old?.busy ?? null });
    this.#poke();
  }

  /** Stops following; resolves once nothing of the partition is in flight here. */
  async remove(topic: string, partition: number): Promise<void> {
    const k = key(topic, partition);
    const e = this.#parts.get(k);
    this.#parts.delete(k);
    await e?.busy?.catch(() => {});
  }

  /**
   * Stops fetching (the partitions stay), including the answer of a fetch already parked on
   * the leader: tests and drills stand in for a slow or dead follower.
   */
  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
    this.#poke();
  }

  async close(): Promise<void> {
    if (this.#closed) return this.#loop;
    this.#closed = true;
    this.#client?.close();
    this.#poke();
    await this.#loop;
    await Promise.allSettled([...this.#parts.values()].map((e) => e.busy));
  }

  #poke(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** Sleeps until poked or `ms` passed. */
  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.#wake = undefined;
        resolve();
      }, ms);
      t.unref();
      this.#wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      const now = Date.now();
      const ready = this.#paused ? [] : [...this.#parts.values()].filter((e) => e.retryAt <= now);
      if (ready.length === 0) {
        const next = Math.min(...[...this.#parts.values()].map((e) => e.retryAt));
        await this.#sleep(this.#paused || !Number.isFinite(next) ? 60_000 : Math.max(1, next - now));
        continue;
      }
      try {
        const client = this.#clientNow();
        const truncating = ready.filter((e) => e.phase === 'truncate');
        if (truncating.length > 0) await this.#truncate(client, truncating);
        const fetching = ready.filter((e) => e.phase === 'fetch' && this.#parts.get(e.key) === e);
        if (fetching.length > 0) await this.#fetch(client, fetching);
        this.#failures = 0;
      } catch (err) {
        if (this.#closed) break;
        this.#failures++;
        const wait = Math.min(MAX_BACKOFF_MS, this.#opts.backoffMs * 2 ** Math.min(this.#failures - 1, 10));
        this.#events.warn(`fetch-${this.leaderId}`, { err, leader: this.leaderId, retryInMs: wait }, `fetching from leader broker ${this.leaderId} failed; retrying`);
        await this.#sleep(wait);
      }
    }
  }

  /** The connection to the leader, renewed when its registered address changes. */
  #clientNow(): LinkClient {
    const a = this.#opts.address();
    if (a === undefined) throw new MeridianError(ErrorCode.LinkUnreachable, `leader broker ${this.leaderId} is not registered (no address to fetch from)`);
    const address = `${a.host}:${a.port}`;
    if (this.#client === undefined || this.#clientAddress !== address) {
      this.#client?.close();
      this.#client = new LinkClient({
        address,
        clientId: `meridian-replica-${this.#opts.nodeId}`,
        security: this.#opts.security,
        // A fetch parks on the leader for up to maxWaitMs before it is answered.
        requestTimeoutMs: this.#opts.maxWaitMs + 30_000,
      });
      this.#clientAddress = address;
    }
    return this.#client;
  }

  /**
   * The truncate phase, in rounds until every entry is done (Kafka's truncation marked
   * incomplete asks again): a round that cut to where an epoch the leader lacks began asks
   * again with the log's new latest epoch, which is strictly older, so the rounds end.
   */
  async #truncate(client: LinkClient, entries: Entry[]): Promise<void> {
    let pending = entries;
    while (pending.length > 0 && !this.#closed) pending = await this.#truncateRound(client, pending);
  }

  /** One OffsetForLeaderEpoch round; returns the entries whose truncation is not complete yet. */
  async #truncateRound(client: LinkClient, entries: Entry[]): Promise<Entry[]> {
    const asked = new Map<string, { entry: Entry; epoch: number }>();
    const cuts: Array<Promise<CutResult>> = [];
    for (const e of entries) {
      const latest = e.log.leaderEpochs.latest();
      if (latest !== undefined) asked.set(e.key, { entry: e, epoch: latest.epoch });
      else if (e.log.logEndOffset > e.log.logStartOffset) {
        // Records but no epochs (written in single-broker mode): nothing tells where they
        // part from the leader's. Kafka truncates such a replica to its high watermark; a
        // log from single-broker mode has none checkpointed (hw-checkpoint.ts records only
        // replicas), so the whole local log goes and is fetched again.
        cuts.push(this.#cut(e, e.log.logStartOffset, true));
      } else e.phase = 'fetch';
    }
    const incomplete: Entry[] = [];
    if (asked.size > 0) {
      const byTopic = new Map<string, Array<{ partition: number; currentLeaderEpoch: number; leaderEpoch: number }>>();
      for (const { entry, epoch } of asked.values()) {
        let list = byTopic.get(entry.topic);
        if (list === undefined) byTopic.set(entry.topic, (list = []));
        list.push({ partition: entry.partition, currentLeaderEpoch: entry.leaderEpoch, leaderEpoch: epoch });
      }
      const req = { replicaId: this.#opts.nodeId, topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })) };
      const res = decodeOffsetForLeaderEpochResponse(await client.request(ApiKey.OffsetForLeaderEpoch, OFFSET_FOR_LEADER_EPOCH_VERSION, (w) => encodeOffsetForLeaderEpochRequest(w, OFFSET_FOR_LEADER_EPOCH_VERSION, req)), OFFSET_FOR_LEADER_EPOCH_VERSION);
      for (const t of res.topics) {
        for (const p of t.partitions) {
          const a = asked.get(key(t.topic, p.partition));
          if (a === undefined || this.#parts.get(a.entry.key) !== a.entry) continue;
          const e = a.entry;
          if (p.errorCode !== 0 || p.endOffset < 0n) {
            // Not leader yet, or an epoch this leader does not know: its state is moving.
            e.retryAt = Date.now() + this.#opts.backoffMs;
            this.#events.warn(`epoch-${e.key}`, { topic: e.topic, partition: e.partition, leader: this.leaderId, errorCode: p.errorCode, asked: a.epoch }, 'OffsetForLeaderEpoch to the leader did not answer an end offset; retrying');
            continue;
          }
          let target = p.endOffset;
          let complete = true;
          if (p.leaderEpoch < a.epoch) {
            // KIP-279: the leader lacks our latest epoch and answered its newest one below.
            const own = e.log.leaderEpochs.endOffsetFor(p.leaderEpoch, e.log.logEndOffset);
            if (own.epoch === p.leaderEpoch) {
              // Both have that epoch: the common prefix ends where the first of them ends it.
              if (own.endOffset >= 0n && own.endOffset < target) target = own.endOffset;
            } else if (own.endOffset >= 0n) {
              // This log lacks the leader's epoch too: cut to where its own epochs below it
              // end, then ask again with the (older) latest epoch left. Cutting at the
              // leader's end instead would keep records of an older epoch where the leader
              // holds the answered one (Kafka: truncation not complete).
              target = own.endOffset;
              complete = false;
            }
          }
          cuts.push(
            this.#cut(e, target, complete).then((result) => {
              if (result === 'incomplete' && this.#parts.get(e.key) === e) {
                const left = e.log.leaderEpochs.latest();
                // Only while the rounds make progress (each must drop the asked epoch).
                if (left !== undefined && left.epoch < a.epoch) incomplete.push(e);
                else e.phase = 'fetch';
              }
              return result;
            }),
          );
        }
      }
    }
    await Promise.all(cuts);
    return incomplete;
  }

  /**
   * Cuts the log at `target` (rounded down to the start of the batch holding it: Kafka's
   * rule; this log's batches came from older leaders and may be cut differently from the
   * leader's). With `complete`, the entry moves on to fetching; otherwise it stays in the
   * truncate phase for another round ('failed': retried after the backoff).
   */
  async #cut(e: Entry, target: bigint, complete: boolean): Promise<CutResult> {
    const log = e.log;
    if (target >= log.logEndOffset) {
      // Nothing to cut here: the leader's end is at or past ours for the answered epoch.
      e.phase = 'fetch';
      return 'complete';
    }
    const run = (async () => {
      await e.busy?.catch(() => {});
      let to = target < log.logStartOffset ? log.logStartOffset : target;
      to = await log.batchBaseAtOrBefore(to);
      if (to < log.logStartOffset) to = log.logStartOffset;
      this.#opts.logger?.warn({ topic: e.topic, partition: e.partition, leader: this.leaderId, epoch: e.leaderEpoch, from: String(log.logEndOffset), to: String(to), target: String(target), complete }, 'follower truncates its divergent tail to the leader\'s epoch end');
      await log.truncateTo(to);
    })();
    e.busy = run;
    try {
      await run;
      if (!complete) return 'incomplete';
      e.phase = 'fetch';
      return 'complete';
    } catch (err) {
      e.retryAt = Date.now() + this.#opts.backoffMs;
      this.#events.error(`truncate-${e.key}`, { err, topic: e.topic, partition: e.partition, to: String(target) }, 'follower could not truncate its log to the leader\'s epoch end; retrying');
      return 'failed';
    } finally {
      if (e.busy === run) e.busy = null;
    }
  }

  async #fetch(client: LinkClient, entries: Entry[]): Promise<void> {
    const byTopic = new Map<string, Entry[]>();
    for (const e of entries) {
      let list = byTopic.get(e.topic);
      if (list === undefined) byTopic.set(e.topic, (list = []));
      list.push(e);
    }
    const req: FetchRequest = {
      clusterId: null,
      replicaId: this.#opts.nodeId,
      replicaState: { replicaId: -1, replicaEpoch: -1n },
      maxWaitMs: this.#opts.maxWaitMs,
      minBytes: 1,
      maxBytes: this.#opts.maxBytes,
      isolationLevel: 0,
      // Sessionless (FINAL epoch): every fetch names its partitions; the set changes with the
      // leaders and is small per leader.
      sessionId: 0,
      sessionEpoch: -1,
      topics: [...byTopic].map(([topic, list]) => ({
        topic,
        topicId: ZERO_UUID,
        partitions: list.map((e) => ({
          partition: e.partition,
          currentLeaderEpoch: e.leaderEpoch,
          fetchOffset: e.log.logEndOffset,
          lastFetchedEpoch: -1,
          // Where this replica's deleted records end (DeleteRecords, the leader's start
          // followed), not its local start: with tiered storage the local start is past
          // records the bucket still serves, which a DeleteRecords below it must still cut.
          logStartOffset: e.log.deletedBefore,
          partitionMaxBytes: this.#opts.partitionMaxBytes,
          replicaDirectoryId: ZERO_UUID,
        })),
      })),
      forgottenTopicsData: [],
      rackId: '',
    };
    const sent = new Map(entries.map((e) => [e.key, e]));
    this.fetches++;
    const res = decodeFetchResponse(await client.request(ApiKey.Fetch, FETCH_VERSION, (w) => encodeFetchRequest(w, FETCH_VERSION, req)), FETCH_VERSION);
    if (res.errorCode !== 0) throw new MeridianError(ErrorCode.RemoteUnavailable, `leader broker ${this.leaderId} answered the fetch with error ${res.errorCode}`);
    // Paused while the fetch was parked on the leader: a stopped follower copies nothing more.
    if (this.#paused) return;
    const appends: Promise<void>[] = [];
    for (const t of res.responses) {
      for (const p of t.partitions) {
        const e = sent.get(key(t.topic, p.partitionIndex));
        // Removed or re-added (new epoch) while the fetch was out: its answer is stale.
        if (e === undefined || this.#parts.get(e.key) !== e) continue;
        if (p.errorCode !== 0) {
          if (p.errorCode === kafkaCode('OFFSET_OUT_OF_RANGE') && p.logStartOffset > e.log.logEndOffset) appends.push(this.#reset(e, p.logStartOffset));
          else this.#refused(e, p.errorCode);
          continue;
        }
        this.#opts.onHighWatermark?.(e.topic, e.partition, p.highWatermark);
        if (p.records !== null && p.records.length > 0) appends.push(this.#append(e, p.records, p.highWatermark, p.logStartOffset));
        else if (p.logStartOffset > e.log.deletedBefore) appends.push(this.#followLogStart(e, p.logStartOffset));
      }
    }
    await Promise.all(appends);
  }

  /**
   * The leader's log start moved (DeleteRecords, its retention): this replica's moves too, up
   * to what it holds, so records deleted on the leader do not come back if this replica
   * leads later (Kafka's follower log start increment).
   */
  async #followLogStart(e: Entry, leaderLogStart: bigint): Promise<void> {
    const to = leaderLogStart < e.log.logEndOffset ? leaderLogStart : e.log.logEndOffset;
    if (to <= e.log.deletedBefore || e.busy !== null) return;
    const run = e.log.deleteRecordsBefore(to).then(() => {});
    e.busy = run;
    try {
      await run;
    } catch (err) {
      this.#events.warn(`log-start-${e.key}`, { err, topic: e.topic, partition: e.partition, to: String(to) }, 'follower could not move its log start to the leader\'s; retried at the next fetch');
    } finally {
      if (e.busy === run) e.busy = null;
    }
  }

  async #append(e: Entry, records: Buffer, highWatermark: bigint, leaderLogStart = -1n): Promise<void> {
    const run = e.log
      .appendAsFollower(records, { sync: this.#opts.sync })
      .then(() => {})
      // After the append, so that a log start inside what was just copied can be reached.
      .then(async () => {
        const to = leaderLogStart < e.log.logEndOffset ? leaderLogStart : e.log.logEndOffset;
        if (to > e.log.deletedBefore) await e.log.deleteRecordsBefore(to).catch((err: unknown) => this.#events.warn(`log-start-${e.key}`, { err, topic: e.topic, partition: e.partition, to: String(to) }, 'follower could not move its log start to the leader\'s; retried at the next fetch'));
      });
    e.busy = run;
    try {
      await run;
      this.#opts.onHighWatermark?.(e.topic, e.partition, highWatermark);
    } catch (err) {
      // Does not continue the log (a truncation or another writer moved its end): find the
      // divergence point again.
      e.phase = 'truncate';
      e.retryAt = Date.now() + this.#opts.backoffMs;
      this.#events.error(`append-${e.key}`, { err, topic: e.topic, partition: e.partition, leader: this.leaderId }, 'follower could not append what its leader sent; truncating and fetching again');
    } finally {
      if (e.busy === run) e.busy = null;
    }
  }

  /**
   * This replica's whole log lies below the leader's log start (DeleteRecords or retention
   * there while it was away): it starts over at the leader's log start (Kafka's
   * truncateFullyAndStartAt) and fetches from there.
   */
  async #reset(e: Entry, leaderLogStart: bigint): Promise<void> {
    if (e.busy !== null) return;
    const run = e.log.resetTo(leaderLogStart);
    e.busy = run;
    try {
      await run;
      this.#events.warn(`reset-${e.key}`, { topic: e.topic, partition: e.partition, leader: this.leaderId, logStart: String(leaderLogStart) }, 'follower was wholly behind the leader\'s log start; its log starts over there');
    } catch (err) {
      e.retryAt = Date.now() + this.#opts.backoffMs;
      this.#events.error(`reset-${e.key}`, { err, topic: e.topic, partition: e.partition, to: String(leaderLogStart) }, 'follower could not start its log over at the leader\'s log start; retrying');
    } finally {
      if (e.busy === run) e.busy = null;
    }
  }

  #refused(e: Entry, errorCode: number): void {
    if (errorCode === kafkaCode('OFFSET_OUT_OF_RANGE')) e.phase = 'truncate';
    e.retryAt = Date.now() + this.#opts.backoffMs;
    this.#events.warn(`refused-${e.key}`, { topic: e.topic, partition: e.partition, leader: this.leaderId, errorCode }, 'the leader refused a follower fetch; retrying once the partition state settles');
  }
}

function key(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}
