/**
 * Tiered storage of one broker: the registry of tiered partitions and its lifecycle. It
 * knows which topics are tiered, attaches each (its manifests loaded, objects of
 * interrupted uploads removed) once the store answers, restores topics the bucket knows and
 * the disk does not, detaches deleted topics (their remote data with them), reports
 * `status()`, and drives its parts from the seal events and a timer:
 *
 *   offloader.ts       uploads sealed segments and commits them to the manifest
 *   tier-retention.ts  deletes offloaded local copies, expires remote segments, and the
 *                      `tiering` rule of local retention (storage/retention-guards.ts)
 *   remote-tier.ts     reads below the local log: Fetch, ListOffsets, replication
 *   bucket-topics.ts   topic descriptors in the bucket: written on attach, read by the
 *                      restore, deleted with the topic
 *
 * Lifecycle: `new TieredStorage(opts)` does no I/O (so the composition root can bind its
 * retention rule before anything runs); `start()` probes the store, restores and attaches
 * what it can, then subscribes to seals and topic changes and starts the timer; `close()`
 * (idempotent) stops all of it, waits for running uploads, and closes the reader and store.
 */
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import type { TopicInfo, TopicManager } from '../storage/topic-manager.js';
import type { BlobStore } from './blobstore/blob-store.js';
import { deleteTopicObjects, restoreTopics, writeTopicDescriptor } from './bucket-topics.js';
import { emptyManifest, loadManifest, remoteEndOffset, type PartitionManifest } from './manifest.js';
import { ObjectKeys, type PartitionRef } from './object-keys.js';
import { Offloader } from './offloader.js';
import { newPartitionTier, type PartitionTier, type TierIo, type TierLookup, type TieredPolicy } from './partition-tier.js';
import type { RemoteSegmentReader } from './remote-reader.js';
import { RemoteTier, type RemoteCacheOptions } from './remote-tier.js';
import { defaultRetry, isRetriable, withRetry, type RetryPolicy } from './retry.js';
import { removeUnnamedObjects } from './segment-objects.js';
import { TierRetention, type RemoteRetentionGuard } from './tier-retention.js';
import { ClusterTiering, type ManifestFence, type PointerAt, type TierLeadership } from './cluster-tiering.js';
import { TokenBucketRate } from './upload-rate.js';

export interface TieredStorageOptions {
  store: BlobStore;
  topics: TopicManager;
  /** The remote read cache (the remote tier builds its reader, counting hits per partition). */
  cache: RemoteCacheOptions;
  policy: TieredPolicy;
  retry?: RetryPolicy;
  /** Vetoes on remote retention, composed in storage/retention-guards.ts. */
  mayDeleteRemote?: RemoteRetentionGuard;
  /**
   * tiered.required: `start()` fails when the store cannot be reached. Otherwise the broker
   * starts without it and the store is retried with back-off.
   */
  required?: boolean;
  /** How long `start()` waits for the store's first answer; default 5 s, 30 s when required. */
  startupWaitMs?: number;
  /**
   * A region cluster (`cluster.etcd.endpoints` set): nothing is attached, offloaded or
   * deleted locally until `attachCluster` names the fence and the leadership, no restore
   * from the bucket (etcd says which topics exist), and only each partition's leader
   * offloads (cluster-tiering.ts).
   */
  clustered?: boolean;
  /** This broker's node id: in a cluster it names its own start-up probe object. */
  nodeId?: number;
  logger?: Logger;
}

const STARTUP_WAIT_MS = 5_000;
const REQUIRED_STARTUP_WAIT_MS = 30_000;

export interface PartitionTierStatus {
  topic: string;
  partition: number;
  localSegments: number;
  localBytes: number;
  remoteSegments: number;
  remoteBytes: number;
  remoteStartOffset: string;
  remoteEndOffset: string;
  manifestVersion: number;
  state: 'idle' | 'uploading' | 'backing-off';
  copying: string | null;
  uploadedSegments: number;
  uploadedBytes: number;
  /** Uploads that failed since the broker started (each backs the partition off). */
  uploadFailures: number;
  cacheHitRatio: number | null;
  lastError: string | null;
}

export class TieredStorage {
  readonly store: BlobStore;
  /** Reads below the local log. */
  readonly remote: RemoteTier;
  /** Local deletion after offload, remote retention, and the `tiering` retention rule. */
  readonly retention: TierRetention;
  #opts: TieredStorageOptions;
  #io: TierIo;
  #offloader: Offloader;
  #lookup: TierLookup;
  #tiers = new Map<string, PartitionTier[]>();
  /** Descriptor rewrites after a config change, per topic (see #reconfigure). */
  #descriptorWrites = new Map<string, Promise<void>>();
  #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #offs: Array<() => void> = [];
  #closed = false;
  /** Topics waiting for their manifests (store down): their local data is kept whole. */
  #pending = new Set<string>();
  #restorePending = true;
  #catchingUp = false;
  /** Why the store could not be reached at the last attempt, if it could not. */
  #unavailable: string | null = null;
  /** Region clusters: set by `attachCluster`. */
  #cluster: ClusterTiering | undefined;

  /** What the object store holds per partition (a failback's truncation asks before it cuts). */
  get lookup(): TierLookup {
    return this.#lookup;
  }

  constructor(opts: TieredStorageOptions) {
    this.#opts = opts;
    this.store = opts.store;
    this.#io = {
      store: opts.store,
      retry: opts.retry ?? defaultRetry,
      signal: this.#abort.signal,
      log: opts.logger?.child({ component: 'tiered', store: opts.store.name }),
      ...(opts.policy.maxBytesPerSec !== undefined && opts.policy.maxBytesPerSec > 0 ? { uploadRate: new TokenBucketRate(opts.policy.maxBytesPerSec) } : {}),
    };
    // A cluster's topics are etcd's: a broker never recreates one from the bucket.
    if (opts.clustered === true) this.#restorePending = false;
    const lookup: TierLookup = {
      tier: (topic, partition) => this.#tiers.get(topic)?.[partition],
      isPending: (topic) => this.#pending.has(topic),
      unavailable: () => this.#unavailable,
    };
    this.#lookup = lookup;
    this.remote = new RemoteTier(opts.store, opts.cache, opts.topics, lookup);
    this.retention = new TierRetention(this.#io, lookup, opts.mayDeleteRemote);
    this.#offloader = new Offloader(this.#io, opts.policy);
    for (const t of opts.topics.listTopics()) this.#pend(t);
  }

  /**
   * Region clusters: from now on each partition is offloaded by its leader only, its
   * manifest is committed behind `fence`, and every broker follows the fenced manifest
   * (cluster-tiering.ts). Called once, after the replica manager started; until then a
   * `clustered` registry attaches nothing (every local segment is kept).
   */
  async attachCluster(o: { fence: ManifestFence; leadership: TierLeadership; nodeId: number }): Promise<void> {
    if (this.#closed || this.#cluster !== undefined) return;
    const cluster = new ClusterTiering({
      io: this.#io,
      lookup: this.#lookup,
      fence: o.fence,
      leadership: o.leadership,
      nodeId: o.nodeId,
      reset: (tier) => this.#offloader.reset(tier),
      pump: (tier) => this.#offloader.pump(tier),
      ...(this.#io.log !== undefined ? { logger: this.#io.log } : {}),
    });
    await cluster.start();
    this.#cluster = cluster;
    this.#io.cluster = cluster;
    void this.#catchUp();
  }

  /** The remote segment reader (its cache statistics). */
  get reader(): RemoteSegmentReader {
    return this.remote.reader;
  }

  /**
   * Checks the store takes writes, restores topics the bucket knows and the disk does not,
   * then starts offloading. Throws (with everything closed) when the store refuses the
   * check, or cannot be reached and `required` is set.
   */
  async start(): Promise<void> {
    const topics = this.#opts.topics;
    try {
      // A store that is down must not keep the broker from serving local data: when the
      // probe cannot reach it, everything waits for the timer. When it can, one attempt
      // now (a restore should finish before clients connect), the rest on every tick.
      if (await this.#probe()) await this.#catchUp({ ...this.#io.retry, attempts: 1 });
    } catch (err) {
      await this.close();
      throw err;
    }
    this.#offs.push(
      topics.onSegmentSealed((topic, partition) => {
        const tier = this.#lookup.tier(topic, partition);
        if (tier) this.#offloader.pump(tier);
      }),
      topics.onTopicChange((event, info) => {
        if (event === 'created') {
          this.#pend(info);
          void this.#catchUp();
        } else {
          this.#pending.delete(info.name);
          void this.#detach(info).catch((err) => this.#io.log?.error({ err, topic: info.name }, 'removing a deleted topic from the bucket failed'));
        }
      }),
      topics.onTopicConfigChange((info) => this.#reconfigure(info)),
      topics.onPartitionsAdded((info, from) => {
        void this.#grow(info, from).catch((err) => this.#io.log?.warn({ err: (err as Error).message, topic: info.name }, 'attaching added partitions to the bucket failed; retried at the next restart'));
      }),
    );
    this.#timer = setInterval(() => this.tick(), this.#opts.policy.checkIntervalMs);
    this.#timer.unref();
    this.tick();
  }

  /** Why the store was unreachable at the last attempt (null when it was reached). */
  get unavailable(): string | null {
    return this.#unavailable;
  }

  /** Topics whose manifests could not be loaded yet (their local data is kept whole). */
  get pendingTopics(): string[] {
    return [...this.#pending];
  }

  /** One evaluation of every rule for every partition (also runs on a timer). */
  tick(now = Date.now()): void {
    if (this.#closed) return;
    if (this.#restorePending || this.#pending.size > 0) void this.#catchUp();
    for (const tiers of this.#tiers.values()) {
      for (const tier of tiers) {
        this.#cluster?.tick(tier, now);
        this.#offloader.pump(tier);
        this.retention.run(tier, now);
      }
    }
  }

  /** Rolls the active segments of `topic` and uploads every sealed segment now. */
  async offloadNow(topic: string): Promise<void> {
    const tiers = this.#tiers.get(topic);
    if (!tiers) throw new MeridianError(ErrorCode.UnknownTopic, `topic ${topic} does not exist or is not tiered`);
    await this.#offloader.offloadNow(tiers);
  }

  status(): PartitionTierStatus[] {
    const out: PartitionTierStatus[] = [];
    for (const tiers of this.#tiers.values()) {
      for (const t of tiers) {
        const segs = t.log.segments();
        const o = t.offload;
        out.push({
          topic: t.ref.topic,
          partition: t.ref.partition,
          localSegments: segs.length,
          localBytes: segs.reduce((n, s) => n + s.sizeBytes, 0),
          remoteSegments: t.manifest.segments.length,
          remoteBytes: t.manifest.segments.reduce((n, s) => n + s.sizeBytes, 0),
          remoteStartOffset: String(t.manifest.startOffset),
          remoteEndOffset: String(remoteEndOffset(t.manifest)),
          manifestVersion: t.manifest.version,
          state: o.copying.size > 0 ? 'uploading' : o.lastError ? 'backing-off' : 'idle',
          copying: o.copying.size > 0 ? [...o.copying].map(([b, a]) => `${b}@${a}`).join(',') : null,
          uploadedSegments: o.uploadedSegments,
          uploadedBytes: o.uploadedBytes,
          uploadFailures: o.uploadFailures,
          cacheHitRatio: this.remote.cacheHitRatio(t.ref.topic, t.ref.partition),
          lastError: o.lastError,
        });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const off of this.#offs) off();
    this.#cluster?.close();
    this.#abort.abort();
    await this.#offloader.close();
    await this.remote.close();
    await this.store.close();
  }

  /**
   * Writes and deletes the probe object within the start-up wait; true when the store took
   * both. Why: the catch-up calls the store once per topic and partition in turn, so against
   * a store that accepts connections and never answers, start-up waited out the SDK's
   * socket timeout call after call and the listener never opened, with nothing logged;
   * and a store that refuses writes (a read-only directory, a bucket without write
   * permission) showed up only as offloads failing forever. A refusal is configuration, so
   * the start fails at once; no answer within the wait fails it only when required, and
   * otherwise the timer retries the store while the broker serves.
   */
  async #probe(): Promise<boolean> {
    const required = this.#opts.required === true;
    const retry = this.#io.retry;
    const waitMs = this.#opts.startupWaitMs ?? (required ? REQUIRED_STARTUP_WAIT_MS : STARTUP_WAIT_MS);
    const deadline = AbortSignal.timeout(waitMs);
    const signal = AbortSignal.any([this.#io.signal, deadline]);
    const key = ObjectKeys.startupProbe(this.#opts.clustered === true ? this.#opts.nodeId : undefined);
    const body = Buffer.from(JSON.stringify({ probedAt: new Date().toISOString() }));
    try {
      // Without `required` a single attempt: the timer retries soon enough, and the wait
      // is time the listener is not open.
      await withRetry(
        async () => {
          await this.store.put(key, body, { signal });
          await this.store.delete(key, { signal });
        },
        { ...retry, attempts: required ? retry.attempts : 1 },
        signal,
      );
      return true;
    } catch (err) {
      const unreachable = deadline.aborted || isRetriable(err);
      const why = deadline.aborted ? `no answer within ${waitMs} ms` : (err as Error).message;
      if (!unreachable) {
        throw new MeridianError(ErrorCode.StartupFailed, `the object store ${this.store.name} refused a test write: ${why}`, { cause: err, retriable: false });
      }
      if (required) {
        throw new MeridianError(ErrorCode.StartupFailed, `the object store ${this.store.name} cannot be reached and tiered.required is true: ${why}`, { cause: err, retriable: false });
      }
      this.#unavailable = why;
      this.#io.log?.warn({ err: why, pendingTopics: this.pendingTopics }, 'the object store cannot be reached at start-up; serving local data and retrying it with back-off');
      return false;
    }
  }

  /**
   * Queues a topic for attachment. Until its manifests are loaded its logs keep everything
   * (the `tiering` rule vetoes all local retention), since nobody knows what the bucket holds.
   */
  #pend(info: TopicInfo): void {
    if (this.#tiers.has(info.name) || info.config.remoteStorage === false) return;
    this.#pending.add(info.name);
  }

  /** Restores from the bucket and attaches pending topics; failures wait for the next tick. */
  async #catchUp(retry: RetryPolicy = this.#io.retry): Promise<void> {
    if (this.#catchingUp || this.#closed) return;
    // A cluster's registry waits for attachCluster: which manifest counts is etcd's to say.
    if (this.#opts.clustered === true && this.#cluster === undefined) return;
    this.#catchingUp = true;
    const failures: string[] = [];
    try {
      if (this.#restorePending) {
        try {
          failures.push(...(await restoreTopics(this.#io, this.#opts.topics, retry)));
          this.#restorePending = false;
          for (const t of this.#opts.topics.listTopics()) this.#pend(t);
        } catch (err) {
          failures.push(`listing the bucket: ${(err as Error).message}`);
        }
      }
      // One topic's trouble must not hold the others back.
      for (const name of [...this.#pending]) {
        const info = this.#opts.topics.getTopic(name);
        try {
          if (info) await this.#attach(info, retry);
          this.#pending.delete(name);
        } catch (err) {
          failures.push(`${name}: ${(err as Error).message}`);
        }
      }
    } finally {
      this.#catchingUp = false;
    }
    this.#unavailable = failures.length === 0 ? null : failures.join('; ');
    if (failures.length > 0) this.#io.log?.warn({ failures, pendingTopics: this.pendingTopics }, 'tiered storage cannot reach or read the object store for some topics; their local data is kept whole; will retry');
  }

  /** The broker policy with the topic's overrides. */
  #policyOf(info: TopicInfo): TieredPolicy {
    return {
      ...this.#opts.policy,
      localRetentionBytes: info.config.localRetentionBytes ?? this.#opts.policy.localRetentionBytes,
      localRetentionMs: info.config.localRetentionMs ?? this.#opts.policy.localRetentionMs,
    };
  }

  /**
   * A topic's config changed (AlterConfigs): a tiered topic takes its new local retention
   * at the next tick (retention.ms/bytes are read from the log's options there already) and
   * its descriptor in the bucket is rewritten, so a restore recreates it as it is now; a
   * topic that turned remote.storage.enable on is attached like a new one. Turning it off
   * on a tiered topic is refused before it gets here (broker/kafka/configs.ts).
   */
  #reconfigure(info: TopicInfo): void {
    if (this.#closed) return;
    const tiers = this.#tiers.get(info.name);
    if (tiers === undefined) {
      this.#pend(info);
      if (this.#pending.has(info.name)) void this.#catchUp();
      return;
    }
    const policy = this.#policyOf(info);
    for (const t of tiers) t.policy = policy;
    this.#rewriteDescriptor(info);
  }

  /**
   * The descriptor in the bucket is rewritten after a change (config, partition count), so
   * a restore recreates the topic as it is now. Chained per topic, and awaited by #detach
   * before it deletes the descriptor, so a write in flight can never bring back the
   * descriptor of a deleted topic.
   */
  #rewriteDescriptor(info: TopicInfo): void {
    const previous = this.#descriptorWrites.get(info.name) ?? Promise.resolve();
    const write = previous
      .then(() => writeTopicDescriptor(this.#io, info, this.#io.retry))
      .catch((err) => this.#io.log?.warn({ err: (err as Error).message, topic: info.name }, 'rewriting the topic descriptor in the bucket failed; a restore would use the previous config'));
    this.#descriptorWrites.set(info.name, write);
    void write.then(() => {
      if (this.#descriptorWrites.get(info.name) === write) this.#descriptorWrites.delete(info.name);
    });
  }

  /**
   * A tiered topic gained partitions (CreatePartitions): the new ones are tiered like the
   * first ones, from their own (empty, or left by an earlier incarnation) manifests. A
   * topic not attached yet gets all its partitions when it is.
   */
  async #grow(info: TopicInfo, from: number): Promise<void> {
    if (this.#closed || !this.#tiers.has(info.name)) return;
    const added: PartitionTier[] = [];
    const pointers: Array<PointerAt | null> = [];
    for (let p = from; p < info.partitions; p++) {
      const ref = { topic: info.name, topicId: info.id, partition: p };
      const log = this.#opts.topics.partition(info.name, p);
      if (log === undefined) return; // deleted meanwhile
      const { manifest, at } = await this.#loadManifest(ref, log.logStartOffset, this.#io.retry);
      pointers.push(at);
      added.push(newPartitionTier(ref, log, this.#policyOf(info), manifest));
    }
    const tiers = this.#tiers.get(info.name);
    if (this.#closed || tiers === undefined || this.#opts.topics.getTopic(info.name)?.id !== info.id || tiers.length !== from) return;
    this.#tiers.set(info.name, [...tiers, ...added]);
    added.forEach((t, i) => this.#cluster?.attached(t, pointers[i]!));
    this.#rewriteDescriptor(info);
    this.#io.log?.info({ topic: info.name, from, to: info.partitions }, 'added partitions are tiered');
  }

  async #attach(info: TopicInfo, retry: RetryPolicy = this.#io.retry): Promise<void> {
    if (this.#tiers.has(info.name) || info.config.remoteStorage === false) return;
    const { store, signal } = this.#io;
    const policy = this.#policyOf(info);
    await writeTopicDescriptor(this.#io, info, retry);
    // Everything that can fail first; state only once all of it succeeded.
    const manifests: PartitionManifest[] = [];
    const pointers: Array<PointerAt | null> = [];
    for (let p = 0; p < info.partitions; p++) {
      const ref = { topic: info.name, topicId: info.id, partition: p };
      const { manifest, at } = await this.#loadManifest(ref, this.#opts.topics.partition(info.name, p)?.logStartOffset ?? 0n, retry);
      manifests.push(manifest);
      pointers.push(at);
    }
    // The topic may have been deleted (or deleted and recreated) while we waited.
    if (this.#closed || this.#opts.topics.getTopic(info.name)?.id !== info.id || this.#tiers.has(info.name)) return;
    // From here the `tiering` rule keeps every local segment until the bucket holds it.
    const tiers = manifests.map((manifest, p) => newPartitionTier({ topic: info.name, topicId: info.id, partition: p }, this.#opts.topics.partition(info.name, p)!, policy, manifest));
    this.#tiers.set(info.name, tiers);
    tiers.forEach((t, p) => this.#cluster?.attached(t, pointers[p]!));
  }

  /**
   * A partition's manifest when it is attached. Single broker: `manifest.json`, after the
   * objects of interrupted uploads are removed (nothing uploads to it yet). Region cluster:
   * the version the fence names; orphans are the claiming leader's to remove, since another
   * broker may be uploading to the partition right now.
   */
  async #loadManifest(ref: PartitionRef, emptyStart: bigint, retry: RetryPolicy): Promise<{ manifest: PartitionManifest; at: PointerAt | null }> {
    if (this.#cluster !== undefined) return this.#cluster.load(ref, emptyStart);
    const m = await withRetry(() => loadManifest(this.#io.store, ref, this.#io.signal), retry);
    await this.#removeOrphans(ref, m ?? emptyManifest(ref), retry);
    return { manifest: m ?? { ...emptyManifest(ref), startOffset: emptyStart }, at: null };
  }

  /**
   * Deletes segment objects no manifest names: what interrupted upload attempts left. Run
   * before this broker starts uploading the partition, so no live attempt can be hit.
   */
  async #removeOrphans(ref: PartitionRef, manifest: PartitionManifest, retry: RetryPolicy): Promise<void> {
    const removed = await removeUnnamedObjects(this.store, ref, manifest, this.#io.signal, retry);
    if (removed > 0) this.#io.log?.info({ topic: ref.topic, partition: ref.partition, removed }, 'removed objects of interrupted offload attempts');
  }

  async #detach(info: TopicInfo): Promise<void> {
    const tiers = this.#tiers.get(info.name);
    this.#tiers.delete(info.name);
    for (const t of tiers ?? []) this.#offloader.stop(t);
    await this.#descriptorWrites.get(info.name);
    await deleteTopicObjects(this.#io, info);
  }
}
