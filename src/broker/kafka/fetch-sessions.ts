/**
 * Incremental fetch sessions (KIP-227): the broker remembers, per session, the partitions a
 * consumer fetches and what it last told it about each, so a consumer of thousands of
 * partitions sends only the partitions whose fetch position changed, and hears back only
 * about partitions with news. This file is the session cache and the state machine; it does
 * no I/O (broker/kafka/fetch.ts reads the partitions and asks it what to send).
 *
 * The request's (sessionId, epoch) — Kafka's FetchMetadata:
 * - epoch -1 (FINAL): a full, sessionless fetch; a nonzero id names a session to close.
 * - epoch 0 (INITIAL): a full fetch that asks for a session; a nonzero id names one to close
 *   first. The answer carries the new session's id, or 0 when the cache has no room (Kafka's
 *   answer too: the client then goes on with full fetches).
 * - epoch > 0: incremental. The request lists only partitions added or changed (fetch
 *   offset, max bytes) and `forgottenTopicsData` removes some; every other partition of the
 *   session is fetched at its cached position. An unknown id is FETCH_SESSION_ID_NOT_FOUND,
 *   an epoch other than the expected one INVALID_FETCH_SESSION_EPOCH, and a session made
 *   with topic names used at v13+ (or the other way round) FETCH_SESSION_TOPIC_ID_ERROR.
 *   A session left with no partitions is closed and the fetch answered sessionless.
 *
 * What an incremental answer holds (Kafka's CachedPartition.maybeUpdateResponseData): a
 * partition with records, an error, or a high watermark or log start offset other than the
 * last one sent; idle partitions are left out. A partition that returned records moves to
 * the end of the session's order, so under the response's byte budget (KIP-74) the others
 * are read first next time, as Kafka does.
 *
 * Bounded: at most `slots` sessions (Kafka's max.incremental.fetch.session.cache.slots,
 * default 1000). When full, a new session takes the slot of the least recently used session
 * if that one has been idle at least `evictionMs` (min.incremental.fetch.session.eviction
 * .ms), else of the session with the fewest partitions if the new one has more; otherwise
 * it is not created. No timers: eviction happens only when a slot is wanted.
 *
 * Bound to a connection: a session belongs to the connection that opened it. Another
 * connection naming its id is told FETCH_SESSION_ID_NOT_FOUND (it cannot read through it or
 * close it), and the session is freed when its connection closes. A connection holds at most
 * one session (a client keeps one per broker connection: Kafka's FetchSessionHandler per
 * node, kafka-ts's per node); a new INITIAL fetch on it replaces the one it had, so a client
 * that asks for a session on every fetch and never uses it (@platformatic/kafka sends id 0,
 * epoch 0 each time) holds one slot, not one per poll. Authorization is not cached: fetch.ts
 * checks READ on every partition of every request, the session's included.
 *
 * Concurrency: used from the event loop only. A session's request state is updated by
 * `open()` and its response state by `respond()`, with the read (and long-poll) between;
 * a client waits for each answer before the next incremental fetch (it needs the epoch),
 * and a request that arrives meanwhile with the same epoch fails the epoch check.
 */
import { randomInt } from 'node:crypto';
import type { FetchRequest, FetchResponsePartitionData } from '../../protocol/kafka/messages/fetch.js';
import { ZERO_UUID } from '../../protocol/kafka/messages/index.js';

/** FetchMetadata's special epochs. */
export const FINAL_EPOCH = -1;
export const INITIAL_EPOCH = 0;
/** Fetch v13+ names topics by id. */
const TOPIC_IDS_FROM = 13;
const INT32_MAX = 0x7fffffff;

/** One partition a fetch reads: the topic by name (v12-) or id (v13+; name null when unknown). */
export interface SessionPartition {
  readonly topic: string | null;
  readonly topicId: string;
  readonly partition: number;
  fetchOffset: bigint;
  maxBytes: number;
}

/** A partition in a session, with what the client was last told about it. */
interface CachedPartition extends SessionPartition {
  topic: string | null;
  /** -1: never sent, or an error was (so the partition is sent again once it clears). */
  highWatermark: bigint;
  logStartOffset: bigint;
}

interface FetchSession {
  readonly id: number;
  readonly connectionId: number;
  readonly usesTopicIds: boolean;
  /** The epoch the next incremental request must carry. */
  epoch: number;
  lastUsedMs: number;
  /** Fetch order: a partition that returned records moves to the end. */
  readonly partitions: Map<string, CachedPartition>;
}

/** What to do with one Fetch request. */
export type FetchSessionContext =
  /** A session error: answer it with no partitions and session id 0. */
  | { readonly kind: 'error'; readonly errorCode: SessionErrorName }
  /** Read the request's partitions and answer them all with session id 0. */
  | { readonly kind: 'sessionless'; readonly partitions: SessionPartition[] }
  /** Read the request's partitions, answer them all, and open a session (`created()`). */
  | { readonly kind: 'full'; readonly partitions: SessionPartition[] }
  /** Read the session's partitions; answer those `respond()` keeps. */
  | { readonly kind: 'incremental'; readonly sessionId: number; readonly partitions: SessionPartition[] };

export type SessionErrorName = 'FETCH_SESSION_ID_NOT_FOUND' | 'INVALID_FETCH_SESSION_EPOCH' | 'FETCH_SESSION_TOPIC_ID_ERROR';

/** The connection a request came on: sessions are bound to it and freed when it closes. */
export interface SessionConnection {
  readonly connectionId: number;
  /** Aborted when the connection closes. */
  readonly signal: AbortSignal;
}

export interface FetchSessionsOptions {
  /** Most sessions kept at once; 0 grants none (every fetch is answered sessionless). */
  slots: number;
  /** A session idle this long may lose its slot to a new one. */
  evictionMs: number;
  /** Resolves a topic id to its name (v13+ sessions; null: no such topic now). */
  topicName: (topicId: string) => string | null;
  now?: () => number;
}

/** Counters for the metrics. */
export interface FetchSessionStats {
  sessions: number;
  partitions: number;
  /** Fetch requests by kind. */
  requests: { sessionless: number; full: number; incremental: number; error: number };
  created: number;
  evicted: number;
  /** INITIAL fetches answered without a session because every slot was taken. */
  refused: number;
  /** Partitions left out of incremental answers because nothing about them changed. */
  omittedPartitions: number;
  /** Partitions sent in incremental answers. */
  sentPartitions: number;
}

export class FetchSessions {
  readonly #opts: Required<FetchSessionsOptions>;
  /** By id, least recently used first (a use re-inserts). */
  readonly #sessions = new Map<number, FetchSession>();
  readonly #byConnection = new Map<number, FetchSession>();
  /** Connections whose close is listened for (once each, whatever sessions come and go). */
  readonly #watched = new Set<number>();
  #partitions = 0;
  readonly #stats: Omit<FetchSessionStats, 'sessions' | 'partitions'> = {
    requests: { sessionless: 0, full: 0, incremental: 0, error: 0 },
    created: 0,
    evicted: 0,
    refused: 0,
    omittedPartitions: 0,
    sentPartitions: 0,
  };

  constructor(opts: FetchSessionsOptions) {
    this.#opts = { now: Date.now, ...opts };
  }

  stats(): FetchSessionStats {
    return { sessions: this.#sessions.size, partitions: this.#partitions, ...this.#stats, requests: { ...this.#stats.requests } };
  }

  /**
   * Decides how to serve `req` and, for an incremental fetch, applies its changes to the
   * session (added and updated partitions, forgotten ones) and advances the epoch.
   */
  open(conn: SessionConnection, req: FetchRequest, version: number): FetchSessionContext {
    const usesTopicIds = version >= TOPIC_IDS_FROM;
    const requested = () => requestedPartitions(req, usesTopicIds, this.#opts.topicName);
    if (req.sessionEpoch === FINAL_EPOCH || req.sessionEpoch === INITIAL_EPOCH) {
      // A full fetch closes the session it names, if it is this connection's.
      if (req.sessionId !== 0) {
        const named = this.#sessions.get(req.sessionId);
        if (named !== undefined && named.connectionId === conn.connectionId) this.#remove(named);
      }
      if (req.sessionEpoch === FINAL_EPOCH || this.#opts.slots === 0) {
        this.#stats.requests.sessionless++;
        return { kind: 'sessionless', partitions: requested() };
      }
      this.#stats.requests.full++;
      return { kind: 'full', partitions: requested() };
    }
    const session = this.#sessions.get(req.sessionId);
    // Another connection's session is as good as unknown: nothing says it exists.
    if (session === undefined || session.connectionId !== conn.connectionId) return this.#error('FETCH_SESSION_ID_NOT_FOUND');
    if (session.epoch !== req.sessionEpoch) return this.#error('INVALID_FETCH_SESSION_EPOCH');
    if (session.usesTopicIds !== usesTopicIds) return this.#error('FETCH_SESSION_TOPIC_ID_ERROR');
    for (const p of requested()) {
      const key = partitionKey(usesTopicIds, p.topic ?? '', p.topicId, p.partition);
      const cached = session.partitions.get(key);
      if (cached === undefined) {
        session.partitions.set(key, { ...p, highWatermark: -1n, logStartOffset: -1n });
        this.#partitions++;
      } else {
        cached.fetchOffset = p.fetchOffset;
        cached.maxBytes = p.maxBytes;
      }
    }
    for (const t of req.forgottenTopicsData) {
      for (const partition of t.partitions) {
        if (session.partitions.delete(partitionKey(usesTopicIds, t.topic, t.topicId, partition))) this.#partitions--;
      }
    }
    if (session.partitions.size === 0) {
      // Kafka's rule: nothing left to fetch closes the session; this fetch is sessionless.
      this.#remove(session);
      this.#stats.requests.sessionless++;
      return { kind: 'sessionless', partitions: [] };
    }
    this.#touch(session);
    session.epoch = session.epoch === INT32_MAX ? 1 : session.epoch + 1;
    this.#stats.requests.incremental++;
    const partitions: SessionPartition[] = [];
    for (const p of session.partitions.values()) {
      // A topic id resolves afresh each time: the topic may have been deleted (or created).
      if (usesTopicIds) p.topic = this.#opts.topicName(p.topicId);
      partitions.push(p);
    }
    return { kind: 'incremental', sessionId: session.id, partitions };
  }

  /**
   * After a full fetch asked for a session: opens it with the partitions as answered, and
   * returns its id, or 0 when there is no room (the client goes on with full fetches).
   */
  created(conn: SessionConnection, version: number, answered: ReadonlyArray<{ p: SessionPartition; data: FetchResponsePartitionData }>): number {
    if (conn.signal.aborted) return 0;
    const own = this.#byConnection.get(conn.connectionId);
    if (own !== undefined) this.#remove(own);
    if (this.#sessions.size >= this.#opts.slots && !this.#evictFor(answered.length)) {
      this.#stats.refused++;
      return 0;
    }
    const usesTopicIds = version >= TOPIC_IDS_FROM;
    const partitions = new Map<string, CachedPartition>();
    for (const { p, data } of answered) {
      const sent = { highWatermark: data.errorCode === 0 ? data.highWatermark : -1n, logStartOffset: data.logStartOffset };
      partitions.set(partitionKey(usesTopicIds, p.topic ?? '', p.topicId, p.partition), { ...p, ...sent });
    }
    let id: number;
    do id = randomInt(1, INT32_MAX);
    while (this.#sessions.has(id));
    const session: FetchSession = { id, connectionId: conn.connectionId, usesTopicIds, epoch: 1, lastUsedMs: this.#opts.now(), partitions };
    this.#sessions.set(id, session);
    this.#byConnection.set(conn.connectionId, session);
    this.#partitions += partitions.size;
    this.#stats.created++;
    this.#watch(conn);
    return id;
  }

  /**
   * After an incremental fetch read the session's partitions: which to send (in `answered`'s
   * order), recording what each tells the client. A session evicted or closed meanwhile
   * (its connection went away during the long-poll) keeps everything.
   */
  respond<T extends { p: SessionPartition; data: FetchResponsePartitionData }>(sessionId: number, answered: readonly T[]): T[] {
    const session = this.#sessions.get(sessionId);
    if (session === undefined) return [...answered];
    const sent: T[] = [];
    for (const a of answered) {
      const key = partitionKey(session.usesTopicIds, a.p.topic ?? '', a.p.topicId, a.p.partition);
      const cached = session.partitions.get(key);
      if (cached === undefined) continue; // forgotten by a later request: not this one's to answer
      const { data } = a;
      const hasRecords = (data.records?.length ?? 0) > 0;
      let send = hasRecords || data.errorCode !== 0;
      if (cached.highWatermark !== data.highWatermark) send = true;
      if (cached.logStartOffset !== data.logStartOffset) send = true;
      if (!send) continue;
      cached.highWatermark = data.errorCode === 0 ? data.highWatermark : -1n;
      cached.logStartOffset = data.logStartOffset;
      if (hasRecords) {
        session.partitions.delete(key);
        session.partitions.set(key, cached);
      }
      sent.push(a);
    }
    this.#stats.sentPartitions += sent.length;
    this.#stats.omittedPartitions += answered.length - sent.length;
    return sent;
  }

  #error(errorCode: SessionErrorName): FetchSessionContext {
    this.#stats.requests.error++;
    return { kind: 'error', errorCode };
  }

  #touch(session: FetchSession): void {
    session.lastUsedMs = this.#opts.now();
    this.#sessions.delete(session.id);
    this.#sessions.set(session.id, session);
  }

  /** Makes room for a session of `size` partitions, if the rules allow; true when a slot is free. */
  #evictFor(size: number): boolean {
    if (this.#opts.slots === 0) return false;
    const lru = this.#sessions.values().next().value as FetchSession | undefined;
    if (lru !== undefined && this.#opts.now() - lru.lastUsedMs >= this.#opts.evictionMs) {
      this.#remove(lru);
      this.#stats.evicted++;
      return true;
    }
    let smallest: FetchSession | undefined;
    for (const s of this.#sessions.values()) if (smallest === undefined || s.partitions.size < smallest.partitions.size) smallest = s;
    if (smallest !== undefined && size > smallest.partitions.size) {
      this.#remove(smallest);
      this.#stats.evicted++;
      return true;
    }
    return false;
  }

  #remove(session: FetchSession): void {
    if (!this.#sessions.delete(session.id)) return;
    if (this.#byConnection.get(session.connectionId) === session) this.#byConnection.delete(session.connectionId);
    this.#partitions -= session.partitions.size;
  }

  #watch(conn: SessionConnection): void {
    if (this.#watched.has(conn.connectionId)) return;
    this.#watched.add(conn.connectionId);
    conn.signal.addEventListener(
      'abort',
      () => {
        this.#watched.delete(conn.connectionId);
        const s = this.#byConnection.get(conn.connectionId);
        if (s !== undefined) this.#remove(s);
      },
      { once: true },
    );
  }
}

/** A partition's key in a session: by topic id in v13+ sessions, by name before. */
function partitionKey(usesTopicIds: boolean, topic: string, topicId: string, partition: number): string {
  return `${usesTopicIds ? topicId : topic}\u0000${partition}`;
}

function requestedPartitions(req: FetchRequest, usesTopicIds: boolean, topicName: (id: string) => string | null): SessionPartition[] {
  const out: SessionPartition[] = [];
  for (const t of req.topics) {
    // Before v13 the response carries no topic id: no lookup on the fetch path.
    const topic = usesTopicIds ? topicName(t.topicId) : t.topic;
    const topicId = usesTopicIds ? t.topicId : ZERO_UUID;
    for (const p of t.partitions) out.push({ topic, topicId, partition: p.partition, fetchOffset: p.fetchOffset, maxBytes: p.partitionMaxBytes });
  }
  return out;
}
