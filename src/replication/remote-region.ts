/**
 * Everything this region shares among the workers that send to one remote region: the
 * connection, the in-flight byte budget, the request queue (`p-queue`), per-policy rate
 * limits, and the handshake that tells each worker where to resume.
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
  readHandshakeResponse,
  ReplicationApiKey,
  writeAppendRequest,
  writeHandshakeRequest,
  type AppendResponse,
  type HandshakeResponse,
  type ReplicatedEntry,
} from './replication-api.js';

export interface RemoteRegionOptions {
  region: string;
  remote: string;
  address: string;
  maxInFlightBytes: number;
  concurrency: number;
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

export class RemoteRegion {
  readonly name: string;
  readonly address: string;
  readonly client: LinkClient;
  #opts: RemoteRegionOptions;
  #budget: ByteBudget;
  #queue: PQueue;
  #limiters = new Map<string, RateLimiter>();
  #handshakes = new Map<string, Promise<HandshakeResponse>>();
  #log: Logger;

  constructor(opts: RemoteRegionOptions) {
    this.#opts = opts;
    this.name = opts.remote;
    this.address = opts.address;
    this.client = new LinkClient({ address: opts.address, remote: opts.remote, security: opts.security, clientId: `meridian-replicator-${opts.region}`, requestTimeoutMs: opts.requestTimeoutMs });
    this.#budget = new ByteBudget(opts.maxInFlightBytes);
    this.#queue = new PQueue({ concurrency: opts.concurrency });
    this.#log = opts.logger.child({ remote: opts.remote });
  }

  get inFlightBytes(): number {
    return this.#budget.used;
  }

  get connected(): boolean {
    return this.client.connected;
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
      const forget = () => this.#handshakes.delete(key);
      p.then(() => setTimeout(forget, 200).unref(), forget);
    }
    const res = await p;
    const entry = res.partitions.find((x) => x.partition === partition);
    if (entry === undefined) throw new MeridianError(ErrorCode.RemoteUnavailable, `region ${this.name} did not report partition ${partition} of ${topic}`);
    return entry.senderCursor;
  }

  async #handshake(topic: string, senderTopicId: string, partitionCount: number): Promise<HandshakeResponse> {
    const r = await this.#queue.add(() =>
      this.client.request(ReplicationApiKey.Handshake, 0, (w) =>
        writeHandshakeRequest(w, { targetRegion: this.name, senderRegion: this.#opts.region, senderTopicId, topic, partitionCount, createIfMissing: true, dr: this.#opts.drViewOf?.(topic) ?? null }),
      ),
    );
    const res = readHandshakeResponse(r!);
    // Partition counts that differ, or a registry that sends here what is meant for another
    // region, are refused until an operator acts; anything else is worth a retry.
    if (res.errorCode !== 0) throw fromRemoteKafkaError(res.errorCode, res.errorMessage, `region ${this.name}`);
    return res;
  }

  async append(link: Link, req: { topic: string; senderTopicId: string; partition: number; senderEndOffset: bigint; continuesFrom: bigint; entries: ReplicatedEntry[] }, bytes: number, signal: AbortSignal): Promise<AppendResponse> {
    const rate = link.policy.rateLimit;
    if (rate > 0) {
      let limiter = this.#limiters.get(link.policy.name);
      if (limiter === undefined || limiter.rate !== rate) this.#limiters.set(link.policy.name, (limiter = new RateLimiter(rate)));
      await limiter.take(bytes, signal);
    }
    const r = await this.#queue.add(() =>
      this.client.request(ReplicationApiKey.Append, 0, (w) => writeAppendRequest(w, { targetRegion: this.name, senderRegion: this.#opts.region, ...req })),
    );
    const res = readAppendResponse(r!);
    // A batch the remote will never take (too large for its limits, refused as invalid)
    // puts the link in error until an operator acts; anything else is worth a retry.
    if (res.errorCode !== 0) throw fromRemoteKafkaError(res.errorCode, res.errorMessage, `region ${this.name} refused the append`);
    return res;
  }

  close(): void {
    // Queued requests are not dropped (their callers would wait forever): they run and fail
    // at once on the closed client.
    this.client.close();
    this.#log.debug('link closed');
  }
}
