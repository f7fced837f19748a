/**
 * The sending side of offset replication: every committed group offset of a replicated
 * topic goes, as a per-origin vector, to the other regions of the topic's policy, together
 * with the ends of this region's partitions (what a promoted peer reports as the recovery
 * point).
 *
 * One small connection per peer (the data links' queues and rate limits never delay an
 * offset), one OffsetSync in flight per peer. A commit is sent as soon as the peer's
 * connection is free; commits arriving meanwhile are coalesced per group partition (only the
 * newest matters) and go with the next sync, so a peer holds a group's progress one round
 * trip and one fsync after the commit at any commit rate. The tick (`intervalMs`, 200 ms)
 * retries and sends partition ends. A commit leaves the pending
 * set only when the peer acknowledged that very commit (it made it durable first); a failed
 * sync is retried after a backoff, and after a failure (or at start) every current commit is
 * sent again: the peer keeps the newest per group partition, so a resend changes nothing.
 * Partition ends go when they changed, and at least every `endsEveryMs` (the age a promote
 * reports is the time since the last one).
 */
import type { Logger } from 'pino';
import type { LinkSecurityConfig } from '../config/schema.js';
import { ErrorCode, MeridianError } from '../errors.js';
import { LinkClient } from '../replication/link-client.js';
import { policyFor, type Policy, type RegionEntry } from '../replication/policy.js';
import { fromRemoteKafkaError } from '../protocol/kafka/error-mapping.js';
import type { TopicManager } from '../storage/topic-manager.js';
import { DrApiKey, readHead, writeOffsetSyncRequest, type PartitionEnd, type SyncedCommit } from './dr-api.js';

export interface CommitEvent {
  group: string;
  topic: string;
  partition: number;
  offset: bigint;
  commitTimestamp: number;
}

export interface OffsetPublisherOptions {
  region: string;
  regions: () => readonly RegionEntry[];
  policies: () => readonly Policy[];
  topics: TopicManager;
  /** The per-origin vector of `offset` in this region's log of the partition. */
  vectorOf: (topic: string, partition: number, offset: bigint) => Promise<Array<[string, bigint]>>;
  /** The largest timestamp of the last batch of a partition (-1 when empty). */
  lastTimestampOf: (topic: string, partition: number) => Promise<number>;
  /** Every group partition committed here now (the resync after a failure or at start). */
  currentCommits: () => CommitEvent[];
  requestTimeoutMs: number;
  /** TLS and SASL of the connection to a region (replication.tls/sasl and the region's own). */
  linkSecurity?: (entry: RegionEntry) => LinkSecurityConfig | undefined;
  intervalMs?: number;
  endsEveryMs?: number;
  logger: Logger;
}

export interface PeerSyncStatus {
  region: string;
  connected: boolean;
  pendingCommits: number;
  lastSuccessAt: number | null;
  lastError: string | null;
  syncs: number;
  failures: number;
}

const MAX_COMMITS_PER_SYNC = 5000;

class Peer {
  readonly name: string;
  client: LinkClient;
  address: string;
  pending = new Map<string, SyncedCommit>();
  endsSent = new Map<string, string>();
  endsSentAt = 0;
  inFlight = false;
  retryAt = 0;
  backoffMs = 0;
  needResync = true;
  status: PeerSyncStatus;

  constructor(entry: RegionEntry, requestTimeoutMs: number, region: string, security: LinkSecurityConfig | undefined) {
    this.name = entry.name;
    this.address = entry.address;
    this.client = new LinkClient({ address: entry.address, remote: entry.name, security, clientId: `meridian-offsets-${region}`, requestTimeoutMs });
    this.status = { region: entry.name, connected: false, pendingCommits: 0, lastSuccessAt: null, lastError: null, syncs: 0, failures: 0 };
  }
}

export class OffsetPublisher {
  #opts: OffsetPublisherOptions;
  #peers = new Map<string, Peer>();
  #timer: NodeJS.Timeout;
  #closed = false;
  #log: Logger;
  /** Commits whose vectors are being computed, in arrival order per group partition. */
  #chain: Promise<void> = Promise.resolve();

  constructor(opts: OffsetPublisherOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'offset-sync' });
    this.#timer = setInterval(() => this.#tick(), opts.intervalMs ?? 200);
    this.#timer.unref();
  }

  /** The regions (other than this one) that `topic`'s policy replicates among. */
  peersOf(topic: string): string[] {
    if (topic.startsWith('__')) return [];
    const policy = policyFor(this.#opts.policies(), topic);
    if (policy === undefined || !policy.regions.includes(this.#opts.region)) return [];
    return policy.regions.filter((r) => r !== this.#opts.region);
  }

  /** Called after commits are durable here. */
  committed(events: readonly CommitEvent[]): void {
    const relevant = events.filter((e) => this.peersOf(e.topic).length > 0);
    if (relevant.length === 0 || this.#closed) return;
    this.#chain = this.#chain.then(() => this.#enqueue(relevant)).catch((err) => this.#log.warn({ err: (err as Error).message }, 'offset vector computation failed; the next resync sends the commit'));
  }

  async #enqueue(events: readonly CommitEvent[]): Promise<void> {
    for (const e of events) {
      let vector: Array<[string, bigint]>;
      try {
        vector = await this.#opts.vectorOf(e.topic, e.partition, e.offset);
      } catch (err) {
        // A topic deleted under the commit, a log closing: nothing to send.
        this.#log.debug({ group: e.group, topic: e.topic, partition: e.partition, err: (err as Error).message }, 'no vector for a commit');
        continue;
      }
      const commit: SyncedCommit = { group: e.group, topic: e.topic, partition: e.partition, offset: e.offset, commitTimestamp: e.commitTimestamp, vector };
      for (const name of this.peersOf(e.topic)) {
        const peer = this.#peer(name);
        if (peer !== undefined) peer.pending.set(`${e.group}\0${e.topic}\0${e.partition}`, commit);
      }
    }
    // A commit goes at once when its peer's connection is free (a failover just after a
    // commit then re-reads only what followed it); commits arriving while a sync is in flight
    // wait for it and go together in the next one.
    if (!this.#closed) for (const p of this.#peers.values()) if (p.pending.size > 0 && !p.inFlight && Date.now() >= p.retryAt) void this.#sync(p);
  }

  #peer(name: string): Peer | undefined {
    const entry = this.#opts.regions().find((r) => r.name === name);
    if (entry === undefined) return undefined;
    let p = this.#peers.get(name);
    if (p !== undefined && p.address !== entry.address) {
      p.client.close();
      p = undefined;
    }
    if (p === undefined) {
      p = new Peer(entry, this.#opts.requestTimeoutMs, this.#opts.region, this.#opts.linkSecurity?.(entry));
      this.#peers.set(name, p);
    }
    return p;
  }

  status(): PeerSyncStatus[] {
    return [...this.#peers.values()].map((p) => ({ ...p.status, connected: p.client.connected, pendingCommits: p.pending.size }));
  }

  #tick(): void {
    if (this.#closed) return;
    const wanted = new Set<string>();
    for (const t of this.#opts.topics.listTopics()) for (const r of this.peersOf(t.name)) wanted.add(r);
    for (const name of wanted) this.#peer(name);
    for (const [name, p] of this.#peers) {
      if (!wanted.has(name) && p.pending.size === 0) {
        p.client.close();
        this.#peers.delete(name);
        continue;
      }
      if (!p.inFlight && Date.now() >= p.retryAt) void this.#sync(p);
    }
  }

  async #sync(p: Peer): Promise<void> {
    p.inFlight = true;
    try {
      if (p.needResync) {
        // Everything committed here now, for this peer's topics: after a failure the peer
        // may have missed any of it; it keeps the newest, so resending is harmless.
        const mine = this.#opts.currentCommits().filter((c) => this.peersOf(c.topic).includes(p.name));
        await this.#enqueue(mine.filter((c) => !p.pending.has(`${c.group}\0${c.topic}\0${c.partition}`)));
        p.needResync = false;
      }
      const ends = await this.#ends(p);
      const commits = [...p.pending.entries()].slice(0, MAX_COMMITS_PER_SYNC);
      if (commits.length === 0 && ends === null) return;
      const sentAt = Date.now();
      const r = await p.client.request(DrApiKey.OffsetSync, 0, (w) =>
        writeOffsetSyncRequest(w, { targetRegion: p.name, senderRegion: this.#opts.region, sentAt, commits: commits.map(([, c]) => c), ends: ends?.list ?? [] }),
      );
      const head = readHead(r);
      if (head.errorCode !== 0) throw fromRemoteKafkaError(head.errorCode, head.errorMessage, `region ${p.name} refused the offset sync`);
      for (const [key, c] of commits) if (p.pending.get(key) === c) p.pending.delete(key);
      if (ends !== null) {
        for (const [k, v] of ends.sent) p.endsSent.set(k, v);
        p.endsSentAt = sentAt;
      }
      p.status.syncs++;
      p.status.lastSuccessAt = Date.now();
      p.status.lastError = null;
      p.backoffMs = 0;
    } catch (err) {
      const e = err instanceof MeridianError ? err : new MeridianError(ErrorCode.LinkUnreachable, (err as Error).message, { cause: err });
      p.status.failures++;
      if (p.status.lastError !== e.message) this.#log.warn({ remote: p.name, err: e.message }, 'offset sync failed; retrying');
      p.status.lastError = e.message;
      p.backoffMs = Math.min(5000, Math.max(200, p.backoffMs * 2));
      p.retryAt = Date.now() + p.backoffMs * (0.5 + Math.random() / 2);
      p.needResync = true;
      p.endsSent.clear();
    } finally {
      p.inFlight = false;
    }
  }

  /** The partition ends to send to `p`: the ones that changed, or all of them when due. */
  async #ends(p: Peer): Promise<{ list: PartitionEnd[]; sent: Array<[string, string]> } | null> {
    const due = Date.now() - p.endsSentAt >= (this.#opts.endsEveryMs ?? 2000);
    const list: PartitionEnd[] = [];
    const sent: Array<[string, string]> = [];
    for (const t of this.#opts.topics.listTopics()) {
      if (!this.peersOf(t.name).includes(p.name)) continue;
      for (const [partition, log] of this.#opts.topics.partitions(t.name).entries()) {
        const key = `${t.name}\0${partition}`;
        const endOffset = log.highWatermark;
        const mark = `${t.id}:${endOffset}`;
        if (!due && p.endsSent.get(key) === mark) continue;
        let lastTimestamp = -1;
        try {
          lastTimestamp = await this.#opts.lastTimestampOf(t.name, partition);
        } catch {
          // the end still goes; its age is what matters most
        }
        list.push({ topic: t.name, topicId: t.id, partition, endOffset, lastTimestamp });
        sent.push([key, mark]);
      }
    }
    return list.length === 0 && !due ? null : { list, sent };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const p of this.#peers.values()) p.client.close();
    this.#peers.clear();
  }
}
