/**
 * Everything this region shares among the workers that send to one remote region: the
 * connection, the in-flight byte budget, the requests in flight, per-policy rate limits,
 * and the handshake that tells each worker where to resume.
 *
 * Appends are coalesced like a group commit (issue 15): a worker's append goes out at once
 * when fewer than `concurrency` requests are in flight (no timer, no linger: a lone partition
 * pays nothing), and the appends that arrive while the link is full wait in the outbox and
 * leave together, as one ReplicatedAppend v1 of up to `maxLinkRequestBytes`, when a request
 * is answered. Appends submitted in the same turn of the event loop also share a request.
 * Order is kept: the outbox is FIFO and requests leave in order on one connection, whose
 * receiver applies them in order. A remote that has not said it serves v1 (its handshake
 * response) gets one v0 request per append, as before.
 *
 * A remote region cluster (issue 16): every partition goes to its leader there. Requests go
 * to the bootstrap address until the remote says a partition is led elsewhere
 * (NOT_LEADER_OR_FOLLOWER, or a handshake answer without it); the link then asks Metadata
 * (remote-leaders.ts) and keeps one connection and one outbox per remote broker, so the
 * appends of several partitions led by the same broker still share a request. A lost
 * connection or a moved leader refreshes the Metadata; the worker, told by the error,
 * handshakes again with the partition's new leader (the remote is the source of truth of
 * where to resume). A single-broker remote never triggers any of this.
 */
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { LinkSecurityConfig } from '../config/schema.js';
import { ErrorCode, MeridianError } from '../errors.js';
import { fromRemoteKafkaError } from '../protocol/kafka/error-mapping.js';
import { LinkClient } from './link-client.js';
import type { Link } from './policy.js';
import { LEADER_MOVED_CODES, metadataRequest, notReported, RemoteLeaders } from './remote-leaders.js';
import {
  readAppendResponse,
  readAppendResponseV1,
  readHandshakeResponse,
  ReplicationApiKey,
  writeAppendRequest,
  writeAppendRequestV1,
  writeHandshakeRequest,
  type AppendResponse,
  type HandshakeResponse,
  type PartitionAppend,
} from './replication-api.js';

/**
 * A remote region's bootstrap addresses and the one in use: after a failed connection the
 * next one is used, so a region cluster stays reachable while any broker it lists is up.
 * Shared by the data links (RemoteRegion) and disaster recovery's offset sync and probes
 * (src/dr), so both walk the list the same way.
 */
export class BootstrapAddresses {
  readonly all: readonly string[];
  #index = 0;

  constructor(entry: { address: string; bootstrap?: readonly string[] }) {
    this.all = entry.bootstrap !== undefined && entry.bootstrap.length > 0 ? entry.bootstrap : [entry.address];
  }

  /** The address in use. */
  get current(): string {
    return this.all[this.#index];
  }

  /** `address` could not be reached: move on to the next one (unless another caller already did). */
  failed(address: string): void {
    if (address === this.current && this.all.length > 1) this.#index = (this.#index + 1) % this.all.length;
  }

  /** Every address, the one in use first, then the others in the registry's order after it. */
  order(): string[] {
    return [...this.all.slice(this.#index), ...this.all.slice(0, this.#index)];
  }

  /**
   * Runs `attempt` against the address in use, then each other one while it fails with
   * LINK_UNREACHABLE (nothing reached: safe to try elsewhere); any other error is the
   * remote's answer and is thrown as is. Throws the last LINK_UNREACHABLE when none answered.
   */
  async first<T>(attempt: (address: string) => Promise<T>): Promise<T> {
    let last: unknown;
    for (const address of this.order()) {
      try {
        return await attempt(address);
      } catch (err) {
        if (!(err instanceof MeridianError && err.code === ErrorCode.LinkUnreachable)) throw err;
        this.failed(address);
        last = err;
      }
    }
    throw last;
  }
}

export interface RemoteRegionOptions {
  region: string;
  remote: string;
  address: string;
  /** Every bootstrap address of the remote (a region cluster: several brokers); absent: [address]. */
  bootstrap?: readonly string[];
  maxInFlightBytes: number;
  /** Requests in flight at once (appends; handshakes have as many of their own). */
  concurrency: number;
  /** Bytes of batches one multi-partition request carries at most (one append larger goes alone). */
  maxLinkRequestBytes?: number;
  requestTimeoutMs: number;
  /** The local partition count of a topic (what the remote must match). */
  partitionCountOf: (topic: string) => number;
  /** This region's view of a DR topic's primary and epoch, sent in the handshake. */
  drViewOf?: (topic: string) => { primary: string; epoch: number } | null;
  /** TLS and SASL of the link (policy.ts `linkSecurityOf`); absent: plain TCP. */
  security?: LinkSecurityConfig;
  logger: Logger;
}

export interface Grant {
  /** Gives back what the read did not use. */
  shrink(bytes: number): void;
  release(): void;
}

/** A byte budget with FIFO waiters; a request larger than the budget runs alone. */
class ByteBudget {
  readonly capacity: number;
  #used = 0;
  #waiters: Array<{ bytes: number; grant: () => void }> = [];

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get used(): number {
    return this.#used;
  }

  /** A grant at once when the budget has room and nobody waits (FIFO); undefined otherwise. */
  tryAcquire(bytes: number): Grant | undefined {
    if (this.#waiters.length > 0 || (this.#used !== 0 && this.#used + bytes > this.capacity)) return undefined;
    return this.#grant(bytes);
  }

  acquire(bytes: number, signal: AbortSignal): Promise<Grant> {
    return new Promise<Grant>((resolve, reject) => {
      if (signal.aborted) return reject(new MeridianError(ErrorCode.Aborted, 'stopped'));
      const now = this.tryAcquire(bytes);
      if (now !== undefined) return resolve(now);
      const onAbort = () => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) {
          this.#waiters.splice(i, 1);
          reject(new MeridianError(ErrorCode.Aborted, 'stopped'));
        }
      };
      const waiter = {
        bytes,
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve(this.#grant(bytes));
        },
      };
      this.#waiters.push(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  #grant(bytes: number): Grant {
    this.#used += bytes;
    let held = bytes;
    return {
      shrink: (n) => {
        if (n < held) {
          this.#used -= held - n;
          held = n;
          this.#pump();
        }
      },
      release: () => {
        this.#used -= held;
        held = 0;
        this.#pump();
      },
    };
  }

  #pump(): void {
    while (this.#waiters.length > 0) {
      const w = this.#waiters[0];
      if (this.#used !== 0 && this.#used + w.bytes > this.capacity) return;
      this.#waiters.shift();
      w.grant();
    }
  }
}

/**
 * Bytes per second, with a burst of one second's worth. A request pays before it goes: one
 * larger than the burst waits until its whole cost has accrued, so the bytes released by
 * any moment t never exceed rate x (1 s + t), whatever the batch sizes (a producer's 1 MB
 * batch on a 256 KiB/s link goes after four seconds, not at once followed by a debt).
 */
class RateLimiter {
  readonly rate: number;
  #tokens: number;
  #at = Date.now();

  constructor(rate: number) {
    this.rate = rate;
    this.#tokens = rate;
  }

  #tail: Promise<void> = Promise.resolve();

  /** Waits for `bytes` worth of tokens; callers are served in call order (FIFO). */
  take(bytes: number, signal: AbortSignal): Promise<void> {
    const turn = this.#tail.then(() => this.#take(bytes, signal));
    this.#tail = turn.catch(() => {});
    return turn;
  }

  async #take(bytes: number, signal: AbortSignal): Promise<void> {
    // The head of the queue may save up beyond the burst, to its own size and no more.
    const cap = Math.max(this.rate, bytes);
    for (;;) {
      const now = Date.now();
      this.#tokens = Math.min(cap, this.#tokens + ((now - this.#at) * this.rate) / 1000);
      this.#at = now;
      if (this.#tokens >= bytes) {
        this.#tokens -= bytes;
        return;
      }
      const waitMs = Math.ceil(((bytes - this.#tokens) * 1000) / this.rate);
      await new Promise<void>((r) => {
        const onAbort = () => {
          clearTimeout(t);
          r();
        };
        const t = setTimeout(() => {
          signal.removeEventListener('abort', onAbort);
          r();
        }, waitMs);
        signal.addEventListener('abort', onAbort, { once: true });
      });
      if (signal.aborted) throw new MeridianError(ErrorCode.Aborted, 'stopped');
    }
  }
}

/** An append waiting in the outbox or in flight. */
interface Outgoing {
  req: PartitionAppend;
  bytes: number;
  resolve: (r: AppendResponse) => void;
  reject: (e: Error) => void;
  /** The sending worker's: when it aborts, the append leaves the outbox unsent (`#watch`). */
  signal: AbortSignal;
}

/** Requests and partition appends sent on a link since it was created (status, tests). */
export interface LinkCounters {
  /** ReplicatedAppend requests sent (v0 and v1). */
  appendRequests: number;
  /** Partition appends they carried: as many as requests with v0, more with v1. */
  partitionAppends: number;
  /** The largest number of partition appends one request carried. */
  maxPartitionsPerRequest: number;
  handshakes: number;
}

const DEFAULT_LINK_REQUEST_BYTES = 4 * 1024 * 1024;

/** One broker of the remote region: its connection and the appends waiting for it. */
class Destination {
  readonly address: string;
  readonly client: LinkClient;
  outbox: Outgoing[] = [];
  inFlightRequests = 0;
  flushQueued = false;

  constructor(address: string, client: LinkClient) {
    this.address = address;
    this.client = client;
  }
}

export class RemoteRegion {
  readonly name: string;
  readonly address: string;
  readonly counters: LinkCounters = { appendRequests: 0, partitionAppends: 0, maxPartitionsPerRequest: 0, handshakes: 0 };
  #opts: RemoteRegionOptions;
  #budget: ByteBudget;
  /** Handshakes in flight at once: pipelined on the connections, bounded so none times out queued. */
  #handshakeQueue: PQueue;
  #limiters = new Map<string, RateLimiter>();
  #handshakes = new Map<string, Promise<HandshakeResponse>>();
  /** The bootstrap addresses and the one in use (the next after a failed connect). */
  readonly #boot: BootstrapAddresses;
  /** One per remote broker in use, by address: the bootstrap one, and each leader's (region clusters). */
  #destinations = new Map<string, Destination>();
  readonly #leaders = new RemoteLeaders();
  #refreshing: Promise<void> | undefined;
  /** The highest ReplicatedAppend version the remote serves, as its last handshake said. */
  #appendVersion = 0;
  #closed = false;
  /** Signals of workers whose appends `#watch` withdraws when they abort. */
  readonly #watched = new WeakSet<AbortSignal>();
  #log: Logger;

  constructor(opts: RemoteRegionOptions) {
    this.#opts = opts;
    this.name = opts.remote;
    this.address = opts.address;
    this.#boot = new BootstrapAddresses(opts);
    this.#budget = new ByteBudget(opts.maxInFlightBytes);
    this.#handshakeQueue = new PQueue({ concurrency: opts.concurrency });
    this.#log = opts.logger.child({ remote: opts.remote });
  }

  /** The connection to the bootstrap address in use (disaster recovery's probes and tests). */
  get client(): LinkClient {
    return this.#destination(this.#boot.current).client;
  }

  /** Whether the remote answered Metadata naming several brokers (a region cluster). */
  get clustered(): boolean {
    return this.#leaders.clustered;
  }

  #destination(address: string): Destination {
    let d = this.#destinations.get(address);
    if (d === undefined) {
      d = new Destination(address, new LinkClient({ address, remote: this.#opts.remote, security: this.#opts.security, clientId: `meridian-replicator-${this.#opts.region}`, requestTimeoutMs: this.#opts.requestTimeoutMs }));
      this.#destinations.set(address, d);
      // A late caller after close gets a closed client: its requests fail at once.
      if (this.#closed) d.client.close();
    }
    return d;
  }

  /**
   * Closes the connections to remote brokers the last Metadata no longer names (a broker
   * that left, or came back at another address), unless they are bootstrap addresses or
   * still carry requests: they would otherwise pile up over a long-lived link.
   */
  #pruneDestinations(): void {
    const keep = new Set([...this.#boot.all, ...this.#leaders.brokerAddresses()]);
    for (const [address, d] of this.#destinations) {
      if (keep.has(address) || d.inFlightRequests > 0 || d.outbox.length > 0 || d.flushQueued) continue;
      d.client.close();
      this.#destinations.delete(address);
    }
  }

  /** Where `topic/partition`'s requests go: its leader's broker, or the bootstrap address while unknown. */
  #route(topic: string, partition: number): Destination {
    this.#leaders.topics.add(topic);
    return this.#destination(this.#leaders.addressOf(topic, partition) ?? this.#boot.current);
  }

  /**
   * Something went wrong on `d` for `topic/partition` (a leader moved, or the connection
   * failed): forget the route and ask Metadata again, once for everyone waiting. A
   * single-broker remote with one bootstrap address is left alone (nothing to learn).
   */
  #rerouteAfter(d: Destination, topic: string | undefined, partition: number | undefined, leaderMoved: boolean): void {
    if (topic !== undefined && partition !== undefined) this.#leaders.forget(topic, partition);
    if (!leaderMoved) this.#boot.failed(d.address);
    if (leaderMoved || this.#leaders.clustered || this.#boot.all.length > 1) void this.#refresh();
  }

  /** One Metadata refresh at a time, from the first broker that answers (bootstrap first, then the known ones). */
  #refresh(): Promise<void> {
    this.#refreshing ??= (async () => {
      const candidates = [...new Set([...this.#boot.order(), ...this.#leaders.brokerAddresses()])];
      const topics = [...this.#leaders.topics];
      const req = metadataRequest(topics);
      for (const address of candidates) {
        if (this.#closed) return;
        try {
          const layout = req.read(await this.#destination(address).client.request(req.apiKey, req.version, req.body));
          const was = this.#leaders.clustered;
          this.#leaders.update(layout);
          this.#pruneDestinations();
          if (layout.brokers.size > 1 && !was) this.#log.info({ brokers: [...layout.brokers.values()] }, 'remote region is a cluster: each partition is sent to its leader there');
          return;
        } catch (err) {
          this.#log.debug({ address, err: (err as Error).message }, 'metadata of the remote region not available from this broker');
        }
      }
    })().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  get inFlightBytes(): number {
    return this.#budget.used;
  }

  get connected(): boolean {
    return [...this.#destinations.values()].some((d) => d.client.connected);
  }

  /** The ReplicatedAppend version appends go out with now (0 until a handshake says more). */
  get appendVersion(): number {
    return this.#appendVersion;
  }

  partitionCountOf(topic: string): number {
    return this.#opts.partitionCountOf(topic);
  }

  acquire(bytes: number, signal: AbortSignal): Promise<Grant> {
    return this.#budget.acquire(bytes, signal);
  }

  /** The same grant without a wait: undefined when the budget is full or others wait for it. */
  tryAcquire(bytes: number): Grant | undefined {
    return this.#budget.tryAcquire(bytes);
  }

  /**
   * Where a worker resumes: the last offset of this region's log for `partition` that the
   * remote holds. One handshake per topic serves every partition asking at the same time;
   * it creates the topic in the remote region if missing, and fails permanently (until the
   * operator fixes it) when partition counts differ.
   */
  async resumePoint(topic: string, topicId: string, partition: number, partitionCount: number): Promise<bigint> {
    // A region cluster answers for the partitions its broker leads: the handshake goes to
    // the partition's leader (one per topic and broker).
    const d = this.#route(topic, partition);
    const key = `${topic}\0${topicId}\0${partitionCount}\0${d.address}`;
    let p = this.#handshakes.get(key);
    if (p === undefined) {
      p = this.#handshake(d, topic, topicId, partitionCount);
      this.#handshakes.set(key, p);
      // Partitions of the topic asking within 200 ms share the answer (their workers start,
      // or back off after a link failure, together). A stale cursor is safe: the remote
      // refuses an append that does not continue what it holds, and the worker asks again.
      const forget = () => this.#handshakes.delete(key);
      p.then(() => setTimeout(forget, 200).unref(), forget);
    }
    let res: HandshakeResponse;
    try {
      res = await p;
    } catch (err) {
      if (err instanceof MeridianError && err.code === ErrorCode.LinkUnreachable) this.#rerouteAfter(d, topic, partition, false);
      throw err;
    }
    const entry = res.partitions.find((x) => x.partition === partition);
    if (entry === undefined) {
      this.#rerouteAfter(d, topic, partition, true);
      await this.#refreshing;
      throw notReported(this.name, topic, partition, d.address);
    }
    return entry.senderCursor;
  }

  async #handshake(d: Destination, topic: string, senderTopicId: string, partitionCount: number): Promise<HandshakeResponse> {
    const r = await this.#handshakeQueue.add(() => {
      this.counters.handshakes++;
      return d.client.request(ReplicationApiKey.Handshake, 0, (w) =>
        writeHandshakeRequest(w, { targetRegion: this.name, senderRegion: this.#opts.region, senderTopicId, topic, partitionCount, createIfMissing: true, dr: this.#opts.drViewOf?.(topic) ?? null }),
      );
    });
    const res = readHandshakeResponse(r!);
    // Partition counts that differ, or a registry that sends here what is meant for another
    // region, are refused until an operator acts; anything else is worth a retry.
    if (res.errorCode !== 0) throw fromRemoteKafkaError(res.errorCode, res.errorMessage, `region ${this.name}`);
    if (res.maxAppendVersion !== this.#appendVersion) {
      this.#log.info({ appendVersion: Math.min(res.maxAppendVersion, 1) }, res.maxAppendVersion > 0 ? 'remote takes several partitions per append request' : 'remote takes one partition per append request (an older version)');
      this.#appendVersion = Math.min(res.maxAppendVersion, 1);
    }
    return res;
  }

  /**
   * Sends one partition's append and resolves with the remote's answer for it, or rejects
   * with what the remote (or the link) said about it. Waits in the outbox while the link has
   * `concurrency` requests in flight; leaves the outbox (rejected, nothing sent) if `signal`
   * aborts first.
   */
  append(link: Link, req: PartitionAppend, bytes: number, signal: AbortSignal): Promise<AppendResponse> {
    // Never throws: the caller releases its budget and buffer when the promise settles.
    const rate = link.policy.rateLimit;
    if (rate > 0) {
      try {
        let limiter = this.#limiters.get(link.policy.name);
        if (limiter === undefined || limiter.rate !== rate) this.#limiters.set(link.policy.name, (limiter = new RateLimiter(rate)));
        return limiter.take(bytes, signal).then(() => this.#enqueue(req, bytes, signal));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return this.#enqueue(req, bytes, signal);
  }

  #enqueue(req: PartitionAppend, bytes: number, signal: AbortSignal): Promise<AppendResponse> {
    return new Promise<AppendResponse>((resolve, reject) => {
      if (this.#closed) return reject(new MeridianError(ErrorCode.Aborted, `link to region ${this.name} is closed`));
      if (signal.aborted) return reject(new MeridianError(ErrorCode.Aborted, 'stopped'));
      this.#watch(signal);
      const d = this.#route(req.topic, req.partition);
      d.outbox.push({ req, bytes, resolve, reject, signal });
      // Sent at the end of this turn's microtasks: appends submitted together share a
      // request, and a lone one waits for nothing.
      if (!d.flushQueued) {
        d.flushQueued = true;
        queueMicrotask(() => {
          d.flushQueued = false;
          this.#flush(d);
        });
      }
    });
  }

  /**
   * Withdraws a stopped worker's appends still in the outbox (rejected, nothing sent) when
   * its signal aborts; those already sent are settled by their answer. One listener per
   * signal, not per append: adding and removing an abort listener for each append was ~2%
   * of the sending broker's time over 10,000 partitions (bench:scale, issue 15).
   */
  #watch(signal: AbortSignal): void {
    if (this.#watched.has(signal)) return;
    this.#watched.add(signal);
    signal.addEventListener(
      'abort',
      () => {
        for (const d of this.#destinations.values()) {
          if (!d.outbox.some((it) => it.signal === signal)) continue;
          const keep: Outgoing[] = [];
          for (const it of d.outbox) {
            if (it.signal === signal) it.reject(new MeridianError(ErrorCode.Aborted, 'stopped'));
            else keep.push(it);
          }
          d.outbox = keep;
        }
      },
      { once: true },
    );
  }

  /** Sends what the outbox holds while the link has room: one request per append (v0) or per `maxLinkRequestBytes` (v1). */
  #flush(d: Destination): void {
    const limit = this.#opts.maxLinkRequestBytes ?? DEFAULT_LINK_REQUEST_BYTES;
    while (d.outbox.length > 0 && d.inFlightRequests < this.#opts.concurrency && !this.#closed) {
      const version = this.#appendVersion;
      let n = 1;
      if (version >= 1) {
        let bytes = d.outbox[0].bytes;
        while (n < d.outbox.length && bytes + d.outbox[n].bytes <= limit) bytes += d.outbox[n++].bytes;
      }
      this.#send(d, d.outbox.splice(0, n), version);
    }
  }

  #send(d: Destination, items: Outgoing[], version: number): void {
    d.inFlightRequests++;
    this.counters.appendRequests++;
    this.counters.partitionAppends += items.length;
    if (items.length > this.counters.maxPartitionsPerRequest) this.counters.maxPartitionsPerRequest = items.length;
    const head = { targetRegion: this.name, senderRegion: this.#opts.region };
    const sent =
      version === 0
        ? d.client.request(ReplicationApiKey.Append, 0, (w) => writeAppendRequest(w, { ...head, ...items[0].req })).then((r) => [readAppendResponse(r)])
        : d.client.request(ReplicationApiKey.Append, 1, (w) => writeAppendRequestV1(w, { ...head, partitions: items.map((it) => it.req) })).then((r) => readAppendResponseV1(r));
    sent
      .then(
        (results) => {
          if (results.length !== items.length) throw new MeridianError(ErrorCode.RemoteUnavailable, `region ${this.name} answered ${results.length} results to an append of ${items.length} partitions`);
          items.forEach((it, i) => {
            const res = results[i];
            // A batch the remote will never take (too large for its limits, refused as
            // invalid) puts that partition's link in error until an operator acts; anything
            // else is worth a retry. Either way only that partition: the others' results stand.
            // A region cluster: the partition is led by another broker there now.
            if (LEADER_MOVED_CODES.has(res.errorCode)) this.#rerouteAfter(d, it.req.topic, it.req.partition, true);
            if (res.errorCode !== 0) it.reject(fromRemoteKafkaError(res.errorCode, res.errorMessage, `region ${this.name} (${d.address}) refused the append`));
            else it.resolve(res);
          });
        },
      )
      .catch((err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        if (e instanceof MeridianError && e.code === ErrorCode.LinkUnreachable) this.#rerouteAfter(d, items[0]?.req.topic, items[0]?.req.partition, false);
        for (const it of items) it.reject(e);
      })
      .finally(() => {
        d.inFlightRequests--;
        // What queued while the link was full leaves now, together.
        this.#flush(d);
      });
  }

  close(): void {
    // Nothing waits forever: appends not sent yet fail now, those in flight fail with the
    // closed client.
    this.#closed = true;
    for (const d of this.#destinations.values()) {
      for (const it of d.outbox.splice(0)) {
        it.reject(new MeridianError(ErrorCode.Aborted, `link to region ${this.name} closed`));
      }
      d.client.close();
    }
    this.#log.debug('link closed');
  }
}
