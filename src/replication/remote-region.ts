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
 */
import PQueue from 'p-queue';
import type { Logger } from 'pino';
import type { LinkSecurityConfig } from '../config/schema.js';
import { ErrorCode, MeridianError } from '../errors.js';
import { fromRemoteKafkaError } from '../protocol/kafka/error-mapping.js';
import { LinkClient } from './link-client.js';
import type { Link } from './policy.js';
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

export interface RemoteRegionOptions {
  region: string;
  remote: string;
  address: string;
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

  acquire(bytes: number, signal: AbortSignal): Promise<Grant> {
    return new Promise<Grant>((resolve, reject) => {
      const grant = () => {
        this.#used += bytes;
        let held = bytes;
        resolve({
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
        });
      };
      if (signal.aborted) return reject(new MeridianError(ErrorCode.Aborted, 'stopped'));
      if (this.#waiters.length === 0 && (this.#used === 0 || this.#used + bytes <= this.capacity)) return grant();
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
          grant();
        },
      };
      this.#waiters.push(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
    });
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
  signal: AbortSignal;
  onAbort: () => void;
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

export class RemoteRegion {
  readonly name: string;
  readonly address: string;
  readonly client: LinkClient;
  readonly counters: LinkCounters = { appendRequests: 0, partitionAppends: 0, maxPartitionsPerRequest: 0, handshakes: 0 };
  #opts: RemoteRegionOptions;
  #budget: ByteBudget;
  /** Handshakes in flight at once: pipelined on the connection, bounded so none times out queued. */
  #handshakeQueue: PQueue;
  #limiters = new Map<string, RateLimiter>();
  #handshakes = new Map<string, Promise<HandshakeResponse>>();
  #outbox: Outgoing[] = [];
  #inFlightRequests = 0;
  #flushQueued = false;
  /** The highest ReplicatedAppend version the remote serves, as its last handshake said. */
  #appendVersion = 0;
  #closed = false;
  #log: Logger;

  constructor(opts: RemoteRegionOptions) {
    this.#opts = opts;
    this.name = opts.remote;
    this.address = opts.address;
    this.client = new LinkClient({ address: opts.address, remote: opts.remote, security: opts.security, clientId: `meridian-replicator-${opts.region}`, requestTimeoutMs: opts.requestTimeoutMs });
    this.#budget = new ByteBudget(opts.maxInFlightBytes);
    this.#handshakeQueue = new PQueue({ concurrency: opts.concurrency });
    this.#log = opts.logger.child({ remote: opts.remote });
  }

  get inFlightBytes(): number {
    return this.#budget.used;
  }

  get connected(): boolean {
    return this.client.connected;
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

  /**
   * Where a worker resumes: the last offset of this region's log for `partition` that the
   * remote holds. One handshake per topic serves every partition asking at the same time;
   * it creates the topic in the remote region if missing, and fails permanently (until the
   * operator fixes it) when partition counts differ.
   */
  async resumePoint(topic: string, topicId: string, partition: number, partitionCount: number): Promise<bigint> {
    const key = `${topic}\0${topicId}\0${partitionCount}`;
    let p = this.#handshakes.get(key);
    if (p === undefined) {
      p = this.#handshake(topic, topicId, partitionCount);
      this.#handshakes.set(key, p);
      // Partitions of the topic asking within 200 ms share the answer (their workers start,
      // or back off after a link failure, together). A stale cursor is safe: the remote
      // refuses an append that does not continue what it holds, and the worker asks again.
      const forget = () => this.#handshakes.delete(key);
      p.then(() => setTimeout(forget, 200).unref(), forget);
    }
    const res = await p;
    const entry = res.partitions.find((x) => x.partition === partition);
    if (entry === undefined) throw new MeridianError(ErrorCode.RemoteUnavailable, `region ${this.name} did not report partition ${partition} of ${topic}`);
    return entry.senderCursor;
  }

  async #handshake(topic: string, senderTopicId: string, partitionCount: number): Promise<HandshakeResponse> {
    const r = await this.#handshakeQueue.add(() => {
      this.counters.handshakes++;
      return this.client.request(ReplicationApiKey.Handshake, 0, (w) =>
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
  async append(link: Link, req: PartitionAppend, bytes: number, signal: AbortSignal): Promise<AppendResponse> {
    const rate = link.policy.rateLimit;
    if (rate > 0) {
      let limiter = this.#limiters.get(link.policy.name);
      if (limiter === undefined || limiter.rate !== rate) this.#limiters.set(link.policy.name, (limiter = new RateLimiter(rate)));
      await limiter.take(bytes, signal);
    }
    return new Promise<AppendResponse>((resolve, reject) => {
      if (this.#closed) return reject(new MeridianError(ErrorCode.Aborted, `link to region ${this.name} is closed`));
      if (signal.aborted) return reject(new MeridianError(ErrorCode.Aborted, 'stopped'));
      const out: Outgoing = {
        req,
        bytes,
        resolve,
        reject,
        signal,
        onAbort: () => {
          const i = this.#outbox.indexOf(out);
          if (i < 0) return; // already sent: its answer settles it
          this.#outbox.splice(i, 1);
          reject(new MeridianError(ErrorCode.Aborted, 'stopped'));
        },
      };
      signal.addEventListener('abort', out.onAbort, { once: true });
      this.#outbox.push(out);
      // Sent at the end of this turn's microtasks: appends submitted together share a
      // request, and a lone one waits for nothing.
      if (!this.#flushQueued) {
        this.#flushQueued = true;
        queueMicrotask(() => {
          this.#flushQueued = false;
          this.#flush();
        });
      }
    });
  }

  /** Sends what the outbox holds while the link has room: one request per append (v0) or per `maxLinkRequestBytes` (v1). */
  #flush(): void {
    const limit = this.#opts.maxLinkRequestBytes ?? DEFAULT_LINK_REQUEST_BYTES;
    while (this.#outbox.length > 0 && this.#inFlightRequests < this.#opts.concurrency && !this.#closed) {
      const version = this.#appendVersion;
      let n = 1;
      if (version >= 1) {
        let bytes = this.#outbox[0].bytes;
        while (n < this.#outbox.length && bytes + this.#outbox[n].bytes <= limit) bytes += this.#outbox[n++].bytes;
      }
      const items = this.#outbox.splice(0, n);
      for (const it of items) it.signal.removeEventListener('abort', it.onAbort);
      this.#send(items, version);
    }
  }

  #send(items: Outgoing[], version: number): void {
    this.#inFlightRequests++;
    this.counters.appendRequests++;
    this.counters.partitionAppends += items.length;
    if (items.length > this.counters.maxPartitionsPerRequest) this.counters.maxPartitionsPerRequest = items.length;
    const head = { targetRegion: this.name, senderRegion: this.#opts.region };
    const sent =
      version === 0
        ? this.client.request(ReplicationApiKey.Append, 0, (w) => writeAppendRequest(w, { ...head, ...items[0].req })).then((r) => [readAppendResponse(r)])
        : this.client.request(ReplicationApiKey.Append, 1, (w) => writeAppendRequestV1(w, { ...head, partitions: items.map((it) => it.req) })).then((r) => readAppendResponseV1(r));
    sent
      .then(
        (results) => {
          if (results.length !== items.length) throw new MeridianError(ErrorCode.RemoteUnavailable, `region ${this.name} answered ${results.length} results to an append of ${items.length} partitions`);
          items.forEach((it, i) => {
            const res = results[i];
            // A batch the remote will never take (too large for its limits, refused as
            // invalid) puts that partition's link in error until an operator acts; anything
            // else is worth a retry. Either way only that partition: the others' results stand.
            if (res.errorCode !== 0) it.reject(fromRemoteKafkaError(res.errorCode, res.errorMessage, `region ${this.name} refused the append`));
            else it.resolve(res);
          });
        },
      )
      .catch((err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        for (const it of items) it.reject(e);
      })
      .finally(() => {
        this.#inFlightRequests--;
        // What queued while the link was full leaves now, together.
        this.#flush();
      });
  }

  close(): void {
    // Nothing waits forever: appends not sent yet fail now, those in flight fail with the
    // closed client.
    this.#closed = true;
    for (const it of this.#outbox.splice(0)) {
      it.signal.removeEventListener('abort', it.onAbort);
      it.reject(new MeridianError(ErrorCode.Aborted, `link to region ${this.name} closed`));
    }
    this.client.close();
    this.#log.debug('link closed');
  }
}
