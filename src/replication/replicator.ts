/**
 * The sending side of geo-replication in one region: turns the policies into workers, one
 * per (topic, partition, remote region), keeps that set current as topics come and go and
 * policies change at run time, and holds back retention (local and remote) on anything a
 * remote has not received yet, unless the policy's backlog quota says otherwise: the
 * `replication` rules of storage/retention-guards.ts, which the broker binds to
 * `mayDeleteLocal` and `mayDeleteRemote`.
 *
 * In a region cluster (`leadership`, src/cluster/georep-leadership.ts) a partition's workers
 * run only on the broker that leads it in this region, and only while it may act as
 * leader: they start when it becomes leader and stop at once when it stops (another broker
 * elected, the etcd lease lost). A new leader's workers ask the remote where to resume, as
 * after any failure, and send only what every in-sync replica here holds (the replicated
 * high watermark), so nothing is skipped or sent twice across a failover.
 */
import type { Logger } from 'pino';
import type { LinkSecurityConfig } from '../config/schema.js';
import { BufferPool } from '../storage/buffer-pool.js';
import type { PartitionLog } from '../storage/partition-log.js';
import type { SegmentInfo } from '../storage/segment.js';
import type { TopicManager } from '../storage/topic-manager.js';
import type { RemoteTier } from '../tiered/remote-tier.js';
import { bootstrapAddresses, linkSecurityOf, linksFor, parsePolicies, parseRegions, sameLink, type Link, type Policy, type RegionEntry } from './policy.js';
import { RemoteRegion, type LinkCounters } from './remote-region.js';
import { Ticker } from './ticker.js';
import { PartitionWorker, type CommittedEnd, type WorkerOptions, type WorkerStatus } from './worker.js';

const PROGRESS_LOG_MS = 10_000;
/** The shared tick's period: how soon a worker notices an fdatasync that failed (ticker.ts). */
const TICK_MS = 100;

export interface ReplicatorOptions {
  region: string;
  regions: readonly RegionEntry[];
  policies: readonly Policy[];
  topics: TopicManager;
  /** Reads below the local log (tiered storage), for workers behind it. */
  tiered?: RemoteTier;
  worker: WorkerOptions;
  maxInFlightBytes: number;
  concurrency: number;
  /** Batch bytes of one request carrying several partitions (ReplicatedAppend v1). */
  maxLinkRequestBytes?: number;
  requestTimeoutMs: number;
  /** replication.tls and replication.sasl: every link's TLS and SASL unless its region overrides them. */
  linkSecurity?: LinkSecurityConfig;
  logger: Logger;
  /**
   * Disaster recovery's say (dr/disaster-recovery.ts): a one-way or fan-out topic is sent
   * from whichever region is its primary now, and every handshake carries this region's view
   * of its primary and promotion epoch.
   */
  dr?: { effectiveLinks(topic: string, links: Link[]): Link[]; viewOf(topic: string): { primary: string; epoch: number } | null };
  /** A region cluster: workers run on each partition's leader only (see the header). */
  leadership?: ReplicatorLeadership;
}

/** Which partitions this broker leads in its region cluster (absent: a single broker leads all). */
export interface ReplicatorLeadership {
  isLeading(topic: string, partition: number): boolean;
  /** Called whenever `isLeading(topic, partition)` may have changed; returns the unsubscribe. */
  onLeadershipChange(listener: (topic: string, partition: number) => void): () => void;
  /** The partition's replicated high watermark here, what its worker may send up to. */
  committedEnd(topic: string, partition: number): CommittedEnd | undefined;
}

export interface LinkSummary {
  remote: string;
  address: string;
  connected: boolean;
  inFlightBytes: number;
  workers: number;
  states: Record<string, number>;
  /** The ReplicatedAppend version in use (1: several partitions per request). */
  appendVersion: number;
  /** Requests and partition appends sent (their ratio is how many partitions a request carries). */
  counters: LinkCounters;
}

export class Replicator {
  readonly region: string;
  #opts: ReplicatorOptions;
  #policies: readonly Policy[];
  #regions: Map<string, RegionEntry>;
  #remotes = new Map<string, RemoteRegion>();
  #workers = new Map<string, PartitionWorker>();
  #offTopics: () => void;
  #log: Logger;
  #closed = false;
  #progressTimer: NodeJS.Timeout;
  /** One tick for every worker's rare re-checks, running only while one waits (ticker.ts). */
  #ticker = new Ticker(TICK_MS);
  /**
   * The workers' read buffers, given back once a request is answered. Each read would
   * otherwise be a fresh buffer: with 10,000 partitions each forwarding 20 KB at a time
   * (bench:scale), 6% of the broker's time went to allocating them, besides the garbage
   * collector's share. Small reads still take buffers of their own size (BufferPool).
   */
  readonly #pool = new BufferPool({ maxPooledBytes: 32 * 1024 * 1024 });
  /** Quota warnings already logged, per worker key (one line per deletion burst). */
  #quotaWarned = new Set<string>();
  #reconcileQueued = false;
  #reconciles = 0;

  constructor(opts: ReplicatorOptions) {
    this.#opts = opts;
    this.region = opts.region;
    this.#policies = opts.policies;
    this.#regions = new Map(opts.regions.map((r) => [r.name, r]));
    this.#log = opts.logger.child({ component: 'replicator' });
    // A deleted topic's workers stop at once (its logs are closing); created topics, and
    // topics that grew (CreatePartitions), get their workers from one reconcile at the end of
    // the turn: a CreateTopics of 250 topics is one pass over the partitions, not 250 (over
    // 10,000 partitions those passes took 1.6 s of bench:scale's topic creation).
    const offTopics = opts.topics.onTopicChange((event) => (event === 'deleted' ? this.reconcile() : this.#queueReconcile()));
    const offGrowth = opts.topics.onPartitionsAdded(() => this.#queueReconcile());
    const offLeadership = opts.leadership?.onLeadershipChange((topic, partition) => this.#leadershipChanged(topic, partition));
    this.#offTopics = () => {
      offTopics();
      offGrowth();
      offLeadership?.();
    };
    this.reconcile();
    this.#progressTimer = setInterval(() => this.#logProgress(), PROGRESS_LOG_MS).unref();
    this.#log.info({ policies: this.#policies.map((p) => p.name), regions: [...this.#regions.keys()] }, 'replicator started');
  }

  get policies(): readonly Policy[] {
    return this.#policies;
  }

  /** Whether the workers' shared tick is running: only while a worker waits on an fdatasync (ticker.ts). */
  get tickRunning(): boolean {
    return this.#ticker.running;
  }

  /** The registry's entries for the remote regions (this region excluded). */
  get registry(): RegionEntry[] {
    return [...this.#regions.values()];
  }

  /** The remote regions of the registry (this region excluded). */
  get remoteRegions(): string[] {
    return [...this.#regions.keys()];
  }

  /** Replaces the policies at run time (validated first; on error nothing changes). */
  setPolicies(input: unknown): Policy[] {
    const policies = parsePolicies(input, [this.region, ...this.#regions.keys()]);
    this.#policies = policies;
    this.#log.info({ policies: policies.map((p) => `${p.name}:${p.topology}`) }, 'replication policies changed');
    this.reconcile();
    return policies;
  }

  /** Replaces the region registry at run time (addresses may change; links reconnect). */
  setRegions(input: unknown): void {
    const regions = parseRegions(input);
    for (const [name, remote] of this.#remotes) {
      const entry = regions.find((r) => r.name === name);
      if (entry?.address !== remote.address || JSON.stringify(entry.bootstrap) !== JSON.stringify(this.#regions.get(name)?.bootstrap) || JSON.stringify([entry.tls, entry.sasl]) !== JSON.stringify([this.#regions.get(name)?.tls, this.#regions.get(name)?.sasl])) {
        for (const [key, w] of this.#workers) if (w.link.remote === name) this.#stopWorker(key);
        remote.close();
        this.#remotes.delete(name);
      }
    }
    this.#regions = new Map(regions.map((r) => [r.name, r]));
    this.reconcile();
  }

  /**
   * A partition's leadership here may have changed: its workers stop at once if this broker
   * no longer leads it (nothing more is sent from here), and a reconcile at the end of this
   * turn starts them if it now does (many changes at once cost one reconcile).
   */
  #leadershipChanged(topic: string, partition: number): void {
    if (this.#closed) return;
    if (!this.#opts.leadership!.isLeading(topic, partition)) {
      for (const [key, w] of this.#workers) if (w.topic === topic && w.partition === partition) this.#stopWorker(key);
    }
    this.#queueReconcile();
  }

  /** A reconcile at the end of this turn: many changes at once cost one. */
  #queueReconcile(): void {
    if (this.#reconcileQueued) return;
    this.#reconcileQueued = true;
    queueMicrotask(() => {
      this.#reconcileQueued = false;
      this.reconcile();
    });
  }

  /** Reconcile passes so far (each walks every partition of every topic). */
  get reconciles(): number {
    return this.#reconciles;
  }

  /** Starts the workers the policies want and stops the ones they no longer want. */
  reconcile(): void {
    if (this.#closed) return;
    this.#reconciles++;
    const wanted = new Map<string, { topic: string; partition: number; link: ReturnType<typeof linksFor>[number] }>();
    for (const t of this.#opts.topics.listTopics()) {
      if (t.name.startsWith('__')) continue; // internal topics stay in their region
      const links = linksFor(this.#policies, this.region, t.name);
      for (const link of this.#opts.dr?.effectiveLinks(t.name, links) ?? links) {
        if (!this.#regions.has(link.remote)) continue;
        for (let p = 0; p < t.partitions; p++) {
          // A region cluster: only the partition's leader here sends it.
          if (this.#opts.leadership !== undefined && !this.#opts.leadership.isLeading(t.name, p)) continue;
          wanted.set(workerKey(t.name, p, link.remote), { topic: t.name, partition: p, link });
        }
      }
    }
    for (const [key, w] of this.#workers) {
      const want = wanted.get(key);
      if (want === undefined || !sameLink(want.link, w.link) || this.#opts.topics.partition(w.topic, w.partition) !== w.log) this.#stopWorker(key);
    }
    for (const [key, want] of wanted) {
      if (this.#workers.has(key)) continue;
      const log = this.#opts.topics.partition(want.topic, want.partition);
      if (log === undefined) continue;
      const worker = new PartitionWorker({
        region: this.region,
        topic: want.topic,
        topicId: this.#opts.topics.getTopic(want.topic)!.id,
        partition: want.partition,
        link: want.link,
        log,
        remote: this.#remote(want.link.remote),
        tiered: this.#opts.tiered,
        options: this.#opts.worker,
        logger: this.#log,
        ticker: this.#ticker,
        committed: this.#opts.leadership?.committedEnd(want.topic, want.partition),
        pool: this.#pool,
      });
      this.#workers.set(key, worker);
      worker.start();
    }
    // Links without workers keep no connection open.
    for (const [name, remote] of this.#remotes) {
      if (![...this.#workers.values()].some((w) => w.link.remote === name)) {
        remote.close();
        this.#remotes.delete(name);
      }
    }
  }

  #stopWorker(key: string): void {
    const w = this.#workers.get(key);
    if (w === undefined) return;
    this.#workers.delete(key);
    void w.stop();
  }

  #remote(name: string): RemoteRegion {
    let r = this.#remotes.get(name);
    if (r === undefined) {
      r = new RemoteRegion({
        region: this.region,
        remote: name,
        address: this.#regions.get(name)!.address,
        bootstrap: bootstrapAddresses(this.#regions.get(name)!),
        security: this.#opts.linkSecurity && linkSecurityOf(this.#regions.get(name)!, this.#opts.linkSecurity),
        maxInFlightBytes: this.#opts.maxInFlightBytes,
        concurrency: this.#opts.concurrency,
        maxLinkRequestBytes: this.#opts.maxLinkRequestBytes,
        requestTimeoutMs: this.#opts.requestTimeoutMs,
        partitionCountOf: (topic) => this.#opts.topics.getTopic(topic)?.partitions ?? 0,
        drViewOf: (topic) => this.#opts.dr?.viewOf(topic) ?? null,
        logger: this.#log,
      });
      this.#remotes.set(name, r);
    }
    return r;
  }

  /**
   * The local `replication` retention rule: a segment of `log` stays while a remote lacks
   * it, unless the bucket holds it (an offloaded segment stays readable from there, so the
   * local copy may go) or the link is over its backlog quota.
   */
  mayDeleteLocal(topic: string, partition: number, log: PartitionLog, seg: SegmentInfo): boolean {
    if (this.#opts.topics.partition(topic, partition) !== log) return true; // topic deleted
    const remoteEnd = this.#opts.tiered?.remoteEnd(topic, partition);
    if (remoteEnd !== undefined && seg.nextOffset <= remoteEnd) return true;
    const leadership = this.#opts.leadership;
    if (leadership !== undefined && !leadership.isLeading(topic, partition)) {
      // A replica that does not lead the partition here has no worker to say what the
      // remotes hold: only the leader's retention asks them. It deletes what lies below the
      // log start it follows from its leader (whose retention already passed this rule) and
      // keeps the rest while a link may need it, so a follower that becomes leader still
      // holds whatever the remotes lack.
      if (seg.nextOffset <= log.logStartOffset) return true;
      return !this.#linked(topic);
    }
    return this.#mayDelete(topic, partition, seg, false);
  }

  /** Whether this region sends `topic` to any remote of its registry. */
  #linked(topic: string): boolean {
    if (topic.startsWith('__')) return false;
    const links = linksFor(this.#policies, this.region, topic);
    return (this.#opts.dr?.effectiveLinks(topic, links) ?? links).some((l) => this.#regions.has(l.remote));
  }

  /** The remote `replication` retention rule: a remote segment stays while a remote lacks it. */
  mayDeleteRemote(topic: string, partition: number, seg: { baseOffset: bigint; nextOffset: bigint; sizeBytes: number }): boolean {
    return this.#mayDelete(topic, partition, seg, true);
  }

  /**
   * Whether retention may delete data of `topic/partition` below `nextOffset`: every remote
   * must hold it, or the link's backlog must exceed its policy's quota (then it is deleted
   * loudly: a warning, the worker's quotaDroppedRecords, its status).
   */
  #mayDelete(topic: string, partition: number, seg: { baseOffset: bigint; nextOffset: bigint; sizeBytes: number }, remoteTier: boolean): boolean {
    const { baseOffset, nextOffset, sizeBytes } = seg;
    const workers = [...this.#workers.entries()].filter(([, w]) => w.topic === topic && w.partition === partition);
    // Vetoes first: a deletion one link allows under its quota must not go ahead while
    // another link still needs the segment.
    const over: Array<[string, PartitionWorker, bigint]> = [];
    for (const [key, w] of workers) {
      const acked = w.acknowledged ?? -1n;
      if (acked >= nextOffset - 1n) continue;
      const quota = w.link.policy.backlogQuota;
      // Pulsar-like eviction: the oldest data goes only while what is still held for the
      // remote exceeds the quota, so the remote keeps receiving the newest quota's worth.
      if (quota < 0 || w.heldBacklogBytes() <= quota) return false;
      over.push([key, w, acked]);
    }
    for (const [key, w, acked] of over) {
      const from = acked + 1n > baseOffset ? acked + 1n : baseOffset;
      const backlog = w.heldBacklogBytes();
      const quota = w.link.policy.backlogQuota;
      w.noteQuotaDrop(nextOffset > from ? Number(nextOffset - from) : 0);
      if (this.#quotaWarned.has(key)) continue;
      this.#quotaWarned.add(key);
      setTimeout(() => this.#quotaWarned.delete(key), 10_000).unref();
      this.#log.warn(
        { topic, partition, remote: w.link.remote, backlogBytes: backlog, quota, deletedBytes: sizeBytes, upTo: String(nextOffset - 1n), tier: remoteTier ? 'remote' : 'local' },
        'backlog quota exceeded: retention deletes data the remote region has not received',
      );
    }
    return true;
  }

  status(): WorkerStatus[] {
    const now = Date.now();
    return [...this.#workers.values()].map((w) => w.status(now)).sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition || a.remote.localeCompare(b.remote));
  }

  /** The workers' read buffers: memory kept free, and reads served from it or newly allocated. */
  readBuffers(): { pooledBytes: number; reused: number; allocated: number } {
    return { pooledBytes: this.#pool.pooledBytes, reused: this.#pool.reused, allocated: this.#pool.allocated };
  }

  links(): LinkSummary[] {
    return [...this.#remotes.values()].map((r) => {
      const workers = [...this.#workers.values()].filter((w) => w.link.remote === r.name);
      const states: Record<string, number> = {};
      for (const w of workers) states[w.state] = (states[w.state] ?? 0) + 1;
      return { remote: r.name, address: r.address, connected: r.connected, inFlightBytes: r.inFlightBytes, workers: workers.length, states, appendVersion: r.appendVersion, counters: { ...r.counters } };
    });
  }

  /** While a link has a backlog, one line per link: how much, how fast, in what state. */
  #logProgress(): void {
    const now = Date.now();
    const byRemote = new Map<string, WorkerStatus[]>();
    for (const w of this.#workers.values()) {
      const s = w.status(now);
      // Appended in place: copying the list for each worker made this quadratic (at 10,000
      // partitions, 400 MB of garbage and a long stall of the event loop every 10 s).
      const list = byRemote.get(s.remote);
      if (list === undefined) byRemote.set(s.remote, [s]);
      else list.push(s);
    }
    for (const [remote, list] of byRemote) {
      const backlogRecords = list.reduce((n, s) => n + s.backlogRecords, 0);
      if (backlogRecords === 0) continue;
      const states: Record<string, number> = {};
      for (const s of list) states[s.state] = (states[s.state] ?? 0) + 1;
      this.#log.info(
        {
          remote,
          backlogRecords,
          backlogBytes: list.reduce((n, s) => n + s.backlogBytes, 0),
          mbPerSecond: Number((list.reduce((n, s) => n + s.bytesPerSecond, 0) / 1e6).toFixed(2)),
          maxLagSeconds: Number(Math.max(...list.map((s) => s.lagSeconds)).toFixed(1)),
          states,
          error: list.find((s) => s.error !== null)?.error,
        },
        'replication progress',
      );
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#progressTimer);
    this.#offTopics();
    const workers = [...this.#workers.values()];
    this.#workers.clear();
    for (const r of this.#remotes.values()) r.close();
    await Promise.all(workers.map((w) => w.stop()));
    this.#remotes.clear();
  }
}

function workerKey(topic: string, partition: number, remote: string): string {
  return `${topic}\0${partition}\0${remote}`;
}
