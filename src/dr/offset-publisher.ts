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
 * Partition ends go when they changed; at least every `endsEveryMs` a sync goes even when
 * nothing changed, a heartbeat: the peer takes every successful sync as "the ends I hold from
 * this sender are current as of now" (remote-offsets.ts), which is true because every sync
 * carries every end that changed since the peer's last acknowledged one, and after a failure
 * or on a new connection every end is sent again. The age a promote reports is the time since
 * the last sync.
 *
 * Idle cost. A broker may hold 10,000 partitions: the publisher does no per-partition work
 * when nothing changed. It watches each log (`onAppend`, `onTruncated`) and keeps, per peer,
 * the set of partitions that changed since the last sync; the tick (`intervalMs`) looks at
 * peers only. The policies' topic lists per peer are recomputed when topics or policies
 * change. The last batch's timestamp of a partition (a read from disk, through the storage
 * layer's bounded descriptor cache) is cached per high watermark: read once per change.
 *
 * A remote region cluster (issue 16). The sync goes to every broker of the remote region
 * (remote-brokers.ts learns them from its Metadata), each with its own pending commits,
 * changed ends, backoff and resync, as a single-broker peer had before: a commit leaves a
 * broker's pending set when that broker acknowledged it. Why every broker rather than the
 * group's coordinator there: the peer commits must already be on whichever broker
 * coordinates the group when it fails over, and by then this region may be gone and unable
 * to send them again. Coordination moves (a broker of the remote dies, leadership of its
 * offsets partition moves) without the sender hearing of it; a copy on every broker, each
 * made durable before acknowledging, survives that, as the offsets partition's replicas
 * do. The price is one sync and one fsync per remote broker per round. A remote broker that
 * is down keeps its pending set and is retried (with backoff) until its region's Metadata
 * stops naming it; one that appears (or returns) gets every current commit and end, as on
 * any new connection. A single-broker remote is sent to as before (one destination, the
 * bootstrap address in use, the next one after a failed connection).
 */
import type { Logger } from 'pino';
import type { LinkSecurityConfig } from '../config/schema.js';
import { ErrorCode, MeridianError } from '../errors.js';
import { policyFor, type Policy, type RegionEntry } from '../replication/policy.js';
import { fromRemoteKafkaError } from '../protocol/kafka/error-mapping.js';
import type { PartitionLog } from '../storage/partition-log.js';
import type { TopicManager } from '../storage/topic-manager.js';
import { DrApiKey, readHead, writeOffsetSyncRequest, type PartitionEnd, type SyncedCommit } from './dr-api.js';
import { RemoteBrokers } from './remote-brokers.js';

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
  /** The largest timestamp of the last batch of a partition (-1 when empty); called once per change of its end. */
  lastTimestampOf: (topic: string, partition: number) => number | Promise<number>;
  /** Every group partition committed here now (the resync after a failure or at start). */
  currentCommits: () => CommitEvent[];
  requestTimeoutMs: number;
  /** TLS and SASL of the connection to a region (replication.tls/sasl and the region's own). */
  linkSecurity?: (entry: RegionEntry) => LinkSecurityConfig | undefined;
  intervalMs?: number;
  endsEveryMs?: number;
  logger: Logger;
}

/** The offset sync with one broker of a peer region. */
export interface BrokerSyncStatus {
  address: string;
  connected: boolean;
  pendingCommits: number;
  lastSuccessAt: number | null;
  lastError: string | null;
  syncs: number;
  failures: number;
}

/**
 * The offset sync with one peer region, over its brokers: connected when any connection is
 * up, the commits some broker has not acknowledged yet, the last success at any broker,
 * the errors of the brokers whose last sync failed (null when none did).
 */
export interface PeerSyncStatus extends Omit<BrokerSyncStatus, 'address'> {
  region: string;
  brokers: BrokerSyncStatus[];
}

const MAX_COMMITS_PER_SYNC = 5000;

/** A partition log the publisher watches, and the last batch timestamp read at a high watermark. */
interface Watched {
  topic: string;
  topicId: string;
  partition: number;
  log: PartitionLog;
  off: () => void;
  ts: { endOffset: bigint; value: number } | undefined;
}

export interface OffsetPublisherStats {
  /** Reads of a partition's last batch (for its timestamp): one per change of its end. */
  lastTimestampReads: number;
  /** Partition ends sent, over all peers. */
  endsSent: number;
  /** Partitions whose ends were considered by syncs, over all peers (what an idle broker keeps near zero). */
  endsConsidered: number;
}

/** One broker of a peer region and what it still needs. */
class Dest {
  readonly address: string;
  pending = new Map<string, SyncedCommit>();
  /** Partitions whose end changed since the last sync that carried ends. */
  dirty = new Set<Watched>();
  /** Send every end with the next sync (at start, after a failure, on a new connection: the peer may lack some). */
  full = true;
  endsSentAt = 0;
  inFlight = false;
  retryAt = 0;
  backoffMs = 0;
  needResync = true;
  status: BrokerSyncStatus;

  constructor(address: string) {
    this.address = address;
    this.status = { address, connected: false, pendingCommits: 0, lastSuccessAt: null, lastError: null, syncs: 0, failures: 0 };
  }
}

/** A peer region: its brokers (one destination each) and the topics whose ends go to it. */
class Peer {
  readonly name: string;
  readonly brokers: RemoteBrokers;
  /** The registry's addresses and security this peer was made with (a change makes a new one). */
  readonly key: string;
  dests = new Map<string, Dest>();
  /** The topics whose ends go to this peer (its policies include this region and the peer). */
  topics = new Set<string>();

  constructor(entry: RegionEntry, key: string, brokers: RemoteBrokers) {
    this.name = entry.name;
    this.key = key;
    this.brokers = brokers;
    this.reconcile();
  }

  /** One destination per broker the peer's Metadata names (a new one resyncs everything). */
  reconcile(): void {
    const want = new Set(this.brokers.destinations());
    for (const address of want) if (!this.dests.has(address)) this.dests.set(address, new Dest(address));
    for (const address of [...this.dests.keys()]) if (!want.has(address)) this.dests.delete(address);
  }

  get pendingCommits(): number {
    const keys = new Set<string>();
    for (const d of this.dests.values()) for (const k of d.pending.keys()) keys.add(k);
    return keys.size;
  }

  close(): void {
    this.brokers.close();
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
  #watched = new Map<PartitionLog, Watched>();
  /** Topics were created, deleted or grew: watch their logs before the next sync. */
  #rescan = true;
  /** The policies the peers' topic sets were computed from. */
  #policiesSeen: readonly Policy[] | undefined;
  #offTopics: Array<() => void>;
  #stats: OffsetPublisherStats = { lastTimestampReads: 0, endsSent: 0, endsConsidered: 0 };

  constructor(opts: OffsetPublisherOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'offset-sync' });
    const rescan = () => {
      this.#rescan = true;
    };
    this.#offTopics = [opts.topics.onTopicChange(rescan), opts.topics.onPartitionsAdded(rescan)];
    this.#timer = setInterval(() => this.#tick(), opts.intervalMs ?? 200);
    this.#timer.unref();
  }

  stats(): OffsetPublisherStats {
    return { ...this.#stats };
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

  /** Computes the commits' vectors and makes them pending for every broker of their peers (or for `only`: a resync). */
  async #enqueue(events: readonly CommitEvent[], only?: Dest): Promise<void> {
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
        if (peer === undefined) continue;
        for (const d of only !== undefined ? [only] : peer.dests.values()) d.pending.set(`${e.group}\0${e.topic}\0${e.partition}`, commit);
      }
    }
    // A commit goes at once when its peer's connection is free (a failover just after a
    // commit then re-reads only what followed it); commits arriving while a sync is in flight
    // wait for it and go together in the next one.
    if (!this.#closed && only === undefined) for (const p of this.#peers.values()) for (const d of p.dests.values()) if (d.pending.size > 0 && !d.inFlight && Date.now() >= d.retryAt) void this.#sync(p, d);
  }

  #peer(name: string): Peer | undefined {
    const entry = this.#opts.regions().find((r) => r.name === name);
    if (entry === undefined) return undefined;
    const security = this.#opts.linkSecurity?.(entry);
    const key = JSON.stringify([entry.bootstrap ?? [entry.address], security ?? null]);
    let p = this.#peers.get(name);
    if (p !== undefined && p.key !== key) {
      p.close();
      p = undefined;
    }
    if (p === undefined) {
      const brokers = new RemoteBrokers({ entry, security, clientId: `meridian-offsets-${this.#opts.region}`, requestTimeoutMs: this.#opts.requestTimeoutMs, logger: this.#log });
      p = new Peer(entry, key, brokers);
      this.#peers.set(name, p);
      // A new peer gets every end with its first sync (`full`).
      p.topics = this.#topicsByPeer.get(name) ?? new Set();
    }
    return p;
  }

  status(): PeerSyncStatus[] {
    return [...this.#peers.values()].map((p) => {
      const brokers = [...p.dests.values()].map((d) => ({ ...d.status, connected: p.brokers.client(d.address).connected, pendingCommits: d.pending.size }));
      const failing = brokers.filter((b) => b.lastError !== null);
      return {
        region: p.name,
        connected: brokers.some((b) => b.connected),
        pendingCommits: p.pendingCommits,
        lastSuccessAt: brokers.reduce<number | null>((t, b) => (b.lastSuccessAt !== null && (t === null || b.lastSuccessAt > t) ? b.lastSuccessAt : t), null),
        lastError: failing.length === 0 ? null : failing.map((b) => (brokers.length > 1 ? `${b.address}: ${b.lastError}` : b.lastError)).join('; '),
        syncs: brokers.reduce((n, b) => n + b.syncs, 0),
        failures: brokers.reduce((n, b) => n + b.failures, 0),
        brokers,
      };
    });
  }

  #tick(): void {
    if (this.#closed) return;
    const policies = this.#opts.policies();
    if (this.#rescan || policies !== this.#policiesSeen) this.#refresh(policies);
    const wanted = this.#wantedPeers;
    for (const name of wanted) this.#peer(name);
    for (const [name, p] of this.#peers) {
      if (!wanted.has(name) && p.pendingCommits === 0) {
        p.close();
        this.#peers.delete(name);
        continue;
      }
      // Which brokers the peer has (a region cluster's Metadata), when due; never blocks the tick.
      void p.brokers.refreshIfDue().then(() => {
        if (!this.#closed) p.reconcile();
      });
      for (const d of p.dests.values()) if (!d.inFlight && Date.now() >= d.retryAt) void this.#sync(p, d);
    }
  }

  /** The peers some topic's policy replicates to (recomputed with the topic sets). */
  #wantedPeers = new Set<string>();
  /** The topic sets per peer, last computed. */
  #topicsByPeer = new Map<string, Set<string>>();

  /**
   * Recomputes which topics go to which peer and watches every partition log (a new one, or
   * one of a topic new to a peer, is dirty for that peer; gone ones are forgotten). Runs when
   * topics or policies changed: O(all partitions), but never on an idle tick.
   */
  #refresh(policies: readonly Policy[]): void {
    this.#rescan = false;
    this.#policiesSeen = policies;
    const byPeer = new Map<string, Set<string>>();
    for (const t of this.#opts.topics.listTopics()) {
      for (const r of this.peersOf(t.name)) {
        let set = byPeer.get(r);
        if (set === undefined) byPeer.set(r, (set = new Set()));
        set.add(t.name);
      }
    }
    this.#topicsByPeer = byPeer;
    this.#wantedPeers = new Set(byPeer.keys());
    for (const name of this.#wantedPeers) this.#peer(name);
    // Topics a peer did not get before: their ends go with its next sync.
    const added = new Map<Peer, Set<string>>();
    for (const p of this.#peers.values()) {
      const topics = byPeer.get(p.name) ?? new Set<string>();
      added.set(p, new Set([...topics].filter((t) => !p.topics.has(t))));
      p.topics = topics;
    }
    // A destination made since (a broker of a peer cluster) sends every end anyway (`full`).
    const seen = new Set<PartitionLog>();
    for (const t of this.#opts.topics.listTopics()) {
      for (const [partition, log] of this.#opts.topics.partitions(t.name).entries()) {
        seen.add(log);
        let w = this.#watched.get(log);
        if (w === undefined) {
          const watched: Watched = { topic: t.name, topicId: t.id, partition, log, off: () => {}, ts: undefined };
          const offAppend = log.onAppend(() => this.#changed(watched));
          const offTruncated = log.onTruncated(() => {
            // The same end may come back with other records (a failback): read again.
            watched.ts = undefined;
            this.#changed(watched);
          });
          watched.off = () => {
            offAppend();
            offTruncated();
          };
          this.#watched.set(log, (w = watched));
          this.#changed(w);
        }
        for (const [p, topics] of added) if (topics.has(t.name)) for (const d of p.dests.values()) d.dirty.add(w);
      }
    }
    for (const [log, w] of this.#watched) {
      if (seen.has(log)) continue;
      w.off();
      this.#watched.delete(log);
      for (const p of this.#peers.values()) for (const d of p.dests.values()) d.dirty.delete(w);
    }
  }

  #changed(w: Watched): void {
    for (const p of this.#peers.values()) if (p.topics.has(w.topic)) for (const d of p.dests.values()) d.dirty.add(w);
  }

  async #sync(p: Peer, d: Dest): Promise<void> {
    d.inFlight = true;
    try {
      if (d.needResync) {
        // Everything committed here now, for this peer's topics: after a failure the broker
        // may have missed any of it; it keeps the newest, so resending is harmless.
        const mine = this.#opts.currentCommits().filter((c) => this.peersOf(c.topic).includes(p.name));
        await this.#enqueue(
          mine.filter((c) => !d.pending.has(`${c.group}\0${c.topic}\0${c.partition}`)),
          d,
        );
        d.needResync = false;
      }
      // Taken before the ends are read: the sync claims them current as of this time.
      const sentAt = Date.now();
      const ends = await this.#ends(p, d, sentAt);
      const commits = [...d.pending.entries()].slice(0, MAX_COMMITS_PER_SYNC);
      if (commits.length === 0 && ends === null) return;
      const r = await p.brokers.client(d.address).request(DrApiKey.OffsetSync, 0, (w) =>
        writeOffsetSyncRequest(w, { targetRegion: p.name, senderRegion: this.#opts.region, sentAt, commits: commits.map(([, c]) => c), ends: ends ?? [] }),
      );
      const head = readHead(r);
      if (head.errorCode !== 0) throw fromRemoteKafkaError(head.errorCode, head.errorMessage, `region ${p.name} (${d.address}) refused the offset sync`);
      for (const [key, c] of commits) if (d.pending.get(key) === c) d.pending.delete(key);
      if (ends !== null) d.endsSentAt = sentAt;
      d.status.syncs++;
      d.status.lastSuccessAt = Date.now();
      d.status.lastError = null;
      d.backoffMs = 0;
    } catch (err) {
      const e = err instanceof MeridianError ? err : new MeridianError(ErrorCode.LinkUnreachable, (err as Error).message, { cause: err });
      d.status.failures++;
      if (d.status.lastError !== e.message) this.#log.warn({ remote: p.name, address: d.address, err: e.message }, 'offset sync failed; retrying');
      d.status.lastError = e.message;
      d.backoffMs = Math.min(5000, Math.max(200, d.backoffMs * 2));
      d.retryAt = Date.now() + d.backoffMs * (0.5 + Math.random() / 2);
      d.needResync = true;
      d.full = true;
      // A broker that is gone: the next bootstrap address, and the peer's brokers looked up again.
      if (e.code === ErrorCode.LinkUnreachable) p.brokers.failed(d.address);
    } finally {
      d.inFlight = false;
    }
  }

  /**
   * The partition ends to send to broker `d` of `p`: the ones that changed since the last sync, or all of
   * them after a failure or on a new connection (the peer may have lost what it held); null
   * when none changed and no heartbeat is due. Taking them clears the dirty set: a failed
   * sync sends everything next time.
   */
  async #ends(p: Peer, d: Dest, now: number): Promise<PartitionEnd[] | null> {
    const due = now - d.endsSentAt >= (this.#opts.endsEveryMs ?? 2000);
    // A topic deleted (or re-created) since the last tick: forget its old logs first.
    if (this.#rescan) this.#refresh(this.#opts.policies());
    if (!p.brokers.client(d.address).connected) d.full = true;
    const candidates = d.full ? [...this.#watched.values()] : [...d.dirty];
    d.full = false;
    d.dirty.clear();
    const list: PartitionEnd[] = [];
    for (const w of candidates) {
      if (!p.topics.has(w.topic) || this.#watched.get(w.log) !== w) continue;
      this.#stats.endsConsidered++;
      const endOffset = w.log.highWatermark;
      // Awaited only when the log has to read it: an await allocates even for a value at
      // hand, and this runs for every moved partition (10,000 per sync in bench:scale).
      let lastTimestamp = this.#lastTimestamp(w, endOffset);
      if (typeof lastTimestamp !== 'number') lastTimestamp = await lastTimestamp;
      list.push({ topic: w.topic, topicId: w.topicId, partition: w.partition, endOffset, lastTimestamp });
    }
    this.#stats.endsSent += list.length;
    return list.length === 0 && !due ? null : list;
  }

  /** The last batch's timestamp at `endOffset`, read from the log once per end. */
  #lastTimestamp(w: Watched, endOffset: bigint): number | Promise<number> {
    if (w.ts !== undefined && w.ts.endOffset === endOffset) return w.ts.value;
    this.#stats.lastTimestampReads++;
    const keep = (value: number): number => {
      w.ts = { endOffset, value };
      return value;
    };
    // A failed read: the end still goes; its age is what matters most.
    try {
      const value = this.#opts.lastTimestampOf(w.topic, w.partition);
      return typeof value === 'number' ? keep(value) : value.then(keep, () => -1);
    } catch {
      return -1;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const off of this.#offTopics) off();
    for (const w of this.#watched.values()) w.off();
    this.#watched.clear();
    for (const p of this.#peers.values()) p.close();
    this.#peers.clear();
  }
}
