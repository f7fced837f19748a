/**
 * Tiered storage on a region cluster (issue 16; src/cluster/README.md, "Tiering on a
 * cluster"). Every broker of the region holds a replica of some partitions and shares one
 * object store; this decides, per partition, who writes and what everyone reads:
 *
 * - **Only the leader offloads.** A partition's `PartitionTier` may upload and commit
 *   (`mayWrite`) only while the replica manager says this broker leads it (`isLeading`) and
 *   this broker has *claimed* the manifest at that leader epoch. Leadership lost (a new
 *   epoch elsewhere, the lease suspended, close): the offloader starts a new generation at
 *   once, uploads in flight stop and never commit. Uploads stop at the replicated high
 *   watermark: only what the ISR holds goes to the bucket, never a tail a leader change
 *   could truncate.
 * - **The fence** (`ManifestFence`, in etcd: src/cluster/tier-manifest-fence.ts) holds one
 *   pointer per partition, `{ topicId, leaderEpoch, version, manifestKey, writer }`. A
 *   manifest version is written as its own object (`manifests/<version>-e<epoch>-n<node>.json`,
 *   never overwritten), then the pointer is moved to it by compare-and-swap on the pointer's
 *   revision, refused when the pointer carries a higher leader epoch. Object stores give no
 *   reliable compare-and-swap; etcd does.
 * - **Claim.** A new leader first reads the pointer and the manifest it names, then moves
 *   the pointer to its own epoch (same version): from that moment a deposed leader's commit
 *   fails (its expected revision is gone, and the pointer's epoch is above its own). Then it
 *   deletes segment objects the manifest does not name (a predecessor's interrupted
 *   uploads: orphans) and manifest objects other than the current one, and resumes at the
 *   manifest's end, uploading its own copy of what the predecessor left half-done.
 * - **Everyone follows the pointer.** Every broker watches the pointers; a change loads the
 *   named manifest and adopts it. Local deletion (tier-retention.ts) and cold reads
 *   (remote-tier.ts) use the adopted manifest, so a follower deletes a local segment only
 *   once the durable manifest covers it, and any broker serves offsets below its local log
 *   from the bucket (after a leader change the new leader serves what the old one offloaded).
 *
 * Objects a deposed leader writes after the claim (an upload that was already running) are
 * garbage no manifest names: they are deleted by the current leader's sweep (at each claim
 * and at most every SWEEP_EVERY_MS), never read.
 *
 * Lifecycle: built by `TieredStorage.attachCluster` (after the replica manager starts);
 * `start()` begins watching the pointers and leadership; `close()` stops both.
 */
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import { decodeManifest, emptyManifest, encodeManifest, remoteEndOffset, type PartitionManifest } from './manifest.js';
import { ObjectKeys, type PartitionRef } from './object-keys.js';
import type { ClusterTierHooks, PartitionTier, TierIo, TierLookup } from './partition-tier.js';
import { withRetry } from './retry.js';
import { listKeys } from './segment-objects.js';

/** The fenced pointer of one partition (the value of its fence key). */
export interface ManifestPointer {
  /** The topic incarnation: a pointer of an earlier topic of the same name is ignored. */
  readonly topicId: string;
  /** The epoch of the leader that last moved the pointer (claim or commit). */
  readonly leaderEpoch: number;
  readonly version: number;
  /** The manifest object of `version`; null while nothing was committed. */
  readonly manifestKey: string | null;
  /** The node id of that leader (diagnostics, and recognising an own earlier success). */
  readonly writer: number;
}

export interface PointerAt {
  readonly pointer: ManifestPointer;
  /** The fence key's modification revision: the compare-and-swap token. */
  readonly revision: bigint;
}

export type FenceAnswer = { readonly ok: true; readonly at: PointerAt } | { readonly ok: false; readonly current: PointerAt | null };

/** Where the pointers live (etcd in a region cluster: src/cluster/tier-manifest-fence.ts). */
export interface ManifestFence {
  read(topic: string, partition: number): Promise<PointerAt | null>;
  /**
   * Moves the pointer to `next` if it is still at `expected` (null: absent) and does not
   * carry a higher leader epoch for the same topic; otherwise `{ ok: false, current }`.
   */
  commit(topic: string, partition: number, expected: PointerAt | null, next: ManifestPointer): Promise<FenceAnswer>;
  /** Calls `listener` for every pointer change from now on (null: deleted). Returns the stop. */
  watch(listener: (topic: string, partition: number, at: PointerAt | null) => void): Promise<() => void>;
}

/** What this needs of the replica manager (src/cluster/replica-manager.ts has it). */
export interface TierLeadership {
  isLeading(topic: string, partition: number): boolean;
  leaderEpochFor(topic: string, partition: number): number | undefined;
  onLeadershipChange(listener: (topic: string, partition: number) => void): () => void;
  replica(topic: string, partition: number): { readonly highWatermark: bigint } | undefined;
}

/** The leader sweeps unnamed objects at most this often (and at every claim). */
const SWEEP_EVERY_MS = 60_000;
/** A claim that failed (etcd or the store unreachable) waits this long before the next try. */
const CLAIM_RETRY_MS = 1_000;
/** A manifest object deleted between reading the pointer and the GET: read the pointer again this often. */
const LOAD_ATTEMPTS = 5;

interface ClusterTierState {
  /** The pointer the adopted manifest came from (or this broker's last claim or commit). */
  at: PointerAt | null;
  /** The epoch this broker claimed the manifest at; -1: not claimed (not leading). */
  claimedEpoch: number;
  claiming: boolean;
  /** Bumped at each leadership change: an older claim gives up. */
  turn: number;
  lastSweep: number;
  /** The fence named a newer epoch than this one: no claim at or below it (the replica manager will catch up). */
  refusedEpoch: number;
  /** A failed claim (etcd or the store unreachable) is tried again from this time on. */
  nextClaimAt: number;
}

export interface ClusterTieringOptions {
  readonly io: TierIo;
  readonly lookup: TierLookup;
  readonly fence: ManifestFence;
  readonly leadership: TierLeadership;
  readonly nodeId: number;
  /** The offloader's new generation (Offloader.reset) and pump. */
  readonly reset: (tier: PartitionTier) => void;
  readonly pump: (tier: PartitionTier) => void;
  readonly logger?: Logger;
}

export class ClusterTiering implements ClusterTierHooks {
  readonly #o: ClusterTieringOptions;
  readonly #states = new WeakMap<PartitionTier, ClusterTierState>();
  #offs: Array<() => void> = [];
  #closed = false;

  constructor(o: ClusterTieringOptions) {
    this.#o = o;
  }

  get #log(): Logger | undefined {
    return this.#o.logger;
  }

  /** Starts following the pointers and this broker's leaderships. */
  async start(): Promise<void> {
    this.#offs.push(this.#o.leadership.onLeadershipChange((topic, partition) => {
      const tier = this.#o.lookup.tier(topic, partition);
      if (tier !== undefined) this.sync(tier);
    }));
    this.#offs.push(await this.#o.fence.watch((topic, partition, at) => this.#pointerMoved(topic, partition, at)));
  }

  close(): void {
    this.#closed = true;
    for (const off of this.#offs.splice(0)) off();
  }

  /**
   * The manifest a partition starts from on this broker (attach): the one the pointer names,
   * or an empty one when there is none yet (or it belongs to an earlier topic of the name).
   */
  async load(ref: PartitionRef, emptyStart: bigint): Promise<{ manifest: PartitionManifest; at: PointerAt | null }> {
    for (let attempt = 1; ; attempt++) {
      const at = await this.#o.fence.read(ref.topic, ref.partition);
      if (at === null || at.pointer.topicId !== ref.topicId || at.pointer.manifestKey === null) {
        return { manifest: { ...emptyManifest(ref), startOffset: emptyStart }, at: at !== null && at.pointer.topicId === ref.topicId ? at : null };
      }
      const m = await this.#get(at.pointer.manifestKey);
      if (m !== null) return { manifest: m, at };
      // Replaced and deleted since the pointer was read: read the pointer again.
      if (attempt >= LOAD_ATTEMPTS) throw new MeridianError(ErrorCode.StorageIo, `the manifest of ${ref.topic}/${ref.partition} kept moving while it was read (${at.pointer.manifestKey} is gone); will retry`, { retriable: true });
    }
  }

  /** A partition was attached with the manifest `load` gave: follow it, and claim it if led here. */
  attached(tier: PartitionTier, at: PointerAt | null): void {
    this.#states.set(tier, { at, claimedEpoch: -1, claiming: false, turn: 0, lastSweep: 0, refusedEpoch: -1, nextClaimAt: 0 });
    this.sync(tier);
    // A pointer moved between `load` and now reached the watch before this partition was
    // attached and was dropped: read it once more (an idle partition may see no next commit).
    const { topic, partition } = tier.ref;
    this.#o.fence.read(topic, partition).then(
      (now) => {
        if (now !== null && (at === null || now.revision > at.revision)) this.#pointerMoved(topic, partition, now);
      },
      (err: unknown) => this.#log?.warn({ err: (err as Error).message, topic, partition }, 'reading the manifest pointer after attach failed; the next change or claim reads it'),
    );
  }

  // -- ClusterTierHooks ---------------------------------------------------------------

  mayWrite(tier: PartitionTier): boolean {
    const st = this.#states.get(tier);
    if (st === undefined || st.claimedEpoch < 0 || this.#closed) return false;
    const { topic, partition } = tier.ref;
    return this.#o.leadership.isLeading(topic, partition) && this.#o.leadership.leaderEpochFor(topic, partition) === st.claimedEpoch;
  }

  uploadLimit(tier: PartitionTier): bigint {
    return this.#o.leadership.replica(tier.ref.topic, tier.ref.partition)?.highWatermark ?? -1n;
  }

  leaderEpoch(tier: PartitionTier): number | undefined {
    const e = this.#states.get(tier)?.claimedEpoch;
    return e === undefined || e < 0 ? undefined : e;
  }

  /**
   * Commits `next` (runs inside the partition's manifest chain, updateManifest): the new
   * version as its own object, then the pointer moved to it by compare-and-swap. A refusal
   * means another leader moved the pointer: this broker is deposed, the object it just wrote
   * is deleted (unless the pointer names it), and the commit fails with
   * FENCED_LEADER_EPOCH (the offloader's generation ends; the segment is not recorded).
   */
  async save(tier: PartitionTier, next: PartitionManifest): Promise<void> {
    const st = this.#states.get(tier);
    const { topic, partition } = tier.ref;
    if (st === undefined || !this.mayWrite(tier)) {
      throw new MeridianError(ErrorCode.FencedLeaderEpoch, `${topic}/${partition}: broker ${this.#o.nodeId} does not lead it (or has not claimed its manifest), so it may not write its manifest`);
    }
    const epoch = st.claimedEpoch;
    const { store, retry, signal } = this.#o.io;
    const version = tier.manifest.version + 1;
    const key = ObjectKeys.manifestVersion(tier.ref, version, epoch, this.#o.nodeId);
    next.leaderEpoch = epoch;
    const body = encodeManifest({ ...next, version });
    await withRetry(() => store.put(key, body, { signal }), retry, signal);
    const answer = await this.#o.fence.commit(topic, partition, st.at, { topicId: tier.ref.topicId, leaderEpoch: epoch, version, manifestKey: key, writer: this.#o.nodeId });
    if (!answer.ok) {
      // The segment objects are left to the new leader's sweep: if this commit did land
      // (its answer lost) and the new leader built on it, they are named by its manifest.
      if (answer.current?.pointer.manifestKey !== key) await store.delete(key, { signal }).catch(() => undefined);
      this.#deposed(tier, answer.current);
      const c = answer.current?.pointer;
      throw new MeridianError(ErrorCode.FencedLeaderEpoch, `${topic}/${partition}: the manifest commit of broker ${this.#o.nodeId} at leader epoch ${epoch} was refused by the fence (it points to version ${c?.version ?? 'none'} of broker ${c?.writer ?? '-'} at epoch ${c?.leaderEpoch ?? '-'}); another leader took over`);
    }
    const previous = st.at?.pointer.manifestKey ?? null;
    st.at = answer.at;
    // The previous version is no longer named: a reader that still GETs it reads the pointer again.
    if (previous !== null && previous !== key) void store.delete(previous, { signal }).catch(() => undefined);
  }

  // -- leadership ---------------------------------------------------------------------

  /** Re-evaluates the partition's leadership: stop writing at once when lost, claim when gained. */
  sync(tier: PartitionTier): void {
    const st = this.#states.get(tier);
    if (st === undefined || this.#closed || tier.detached) return;
    const { topic, partition } = tier.ref;
    const leading = this.#o.leadership.isLeading(topic, partition);
    const epoch = this.#o.leadership.leaderEpochFor(topic, partition);
    if (st.claimedEpoch >= 0 && (!leading || epoch !== st.claimedEpoch)) {
      this.#log?.info({ topic, partition, claimedEpoch: st.claimedEpoch, leading, leaderEpoch: epoch }, 'offload of this partition stops here: leadership changed');
      st.claimedEpoch = -1;
      st.turn++;
      this.#o.reset(tier);
    }
    if (leading && epoch !== undefined && st.claimedEpoch !== epoch && !st.claiming && epoch > st.refusedEpoch && Date.now() >= st.nextClaimAt) void this.#claim(tier, st, epoch);
  }

  /** From the registry's tick: a claim that failed (etcd or the store down) is retried; the leader sweeps now and then. */
  tick(tier: PartitionTier, now: number): void {
    const st = this.#states.get(tier);
    if (st === undefined) return;
    this.sync(tier);
    // Not only when idle: a leader that never idles would keep a deposed leader's late
    // objects forever. Its own uploads in flight are skipped by attempt id.
    if (this.mayWrite(tier) && now - st.lastSweep >= SWEEP_EVERY_MS) {
      st.lastSweep = now;
      void this.#sweep(tier, st).catch((err) => this.#log?.warn({ err: (err as Error).message, topic: tier.ref.topic, partition: tier.ref.partition }, 'removing unnamed objects failed; will retry'));
    }
  }

  async #claim(tier: PartitionTier, st: ClusterTierState, epoch: number): Promise<void> {
    st.claiming = true;
    const turn = ++st.turn;
    const { topic, partition } = tier.ref;
    const stale = () => this.#closed || tier.detached || turn !== st.turn || !this.#o.leadership.isLeading(topic, partition) || this.#o.leadership.leaderEpochFor(topic, partition) !== epoch;
    let claimed = false;
    try {
      const run = tier.manifestChain.then(async () => {
        while (!stale()) {
          const at = await this.#o.fence.read(topic, partition);
          const ours = at !== null && at.pointer.topicId === tier.ref.topicId;
          if (ours && at.pointer.leaderEpoch > epoch) {
            st.refusedEpoch = epoch;
            this.#log?.warn({ topic, partition, leaderEpoch: epoch, fenceEpoch: at.pointer.leaderEpoch }, 'the manifest fence names a newer leader epoch than this broker leads at; not offloading until its leadership is updated');
            return;
          }
          let manifest = tier.manifest;
          if (ours && at.pointer.manifestKey !== null && at.revision !== st.at?.revision) {
            const m = await this.#get(at.pointer.manifestKey);
            if (m === null) continue; // replaced meanwhile: read the pointer again
            manifest = m;
          } else if (!ours) {
            manifest = { ...emptyManifest(tier.ref), startOffset: tier.log.logStartOffset };
          }
          if (stale()) return;
          const answer = await this.#o.fence.commit(topic, partition, at, {
            topicId: tier.ref.topicId,
            leaderEpoch: epoch,
            version: ours ? at.pointer.version : 0,
            manifestKey: ours ? at.pointer.manifestKey : null,
            writer: this.#o.nodeId,
          });
          if (!answer.ok) continue;
          if (stale()) return;
          tier.manifest = manifest;
          st.at = answer.at;
          st.claimedEpoch = epoch;
          claimed = true;
          return;
        }
      });
      tier.manifestChain = run.catch(() => {});
      await run;
    } catch (err) {
      st.nextClaimAt = Date.now() + CLAIM_RETRY_MS;
      this.#log?.warn({ err: (err as Error).message, topic, partition, leaderEpoch: epoch }, 'claiming the manifest failed; retried at a later tick (nothing is offloaded meanwhile)');
    } finally {
      st.claiming = false;
    }
    if (claimed) {
      this.#log?.info({ topic, partition, leaderEpoch: epoch, manifestVersion: tier.manifest.version, remoteEnd: String(remoteEndOffset(tier.manifest)) }, 'claimed the manifest: this broker offloads the partition from the manifest end');
      this.#o.reset(tier);
      st.lastSweep = Date.now();
      void this.#sweep(tier, st)
        .catch((err) => this.#log?.warn({ err: (err as Error).message, topic, partition }, 'removing unnamed objects failed; retried at the next sweep'))
        .finally(() => this.#o.pump(tier));
    }
    // Leadership may have moved while the claim ran (a claim refused or failed for this
    // epoch is not retried from here: refusedEpoch and nextClaimAt hold it back).
    this.sync(tier);
  }

  /** A pointer moved: adopt the manifest it names (followers), or notice being deposed (leader). */
  #pointerMoved(topic: string, partition: number, at: PointerAt | null): void {
    const tier = this.#o.lookup.tier(topic, partition);
    const st = tier === undefined ? undefined : this.#states.get(tier);
    if (tier === undefined || st === undefined || at === null || at.pointer.topicId !== tier.ref.topicId) return;
    if (st.at !== null && at.revision <= st.at.revision) return; // this broker's own write, or older
    // The watch may deliver this broker's own claim or commit before the transaction's
    // answer is processed (two gRPC streams): that is not another leader.
    if (st.claimedEpoch >= 0 && at.pointer.writer === this.#o.nodeId && at.pointer.leaderEpoch === st.claimedEpoch) return;
    if (st.claimedEpoch >= 0) this.#deposed(tier, at);
    const run = tier.manifestChain.then(async () => {
      if (this.#closed || st.claimedEpoch >= 0 || (st.at !== null && at.revision <= st.at.revision)) return;
      if (at.pointer.manifestKey === null) {
        st.at = at;
        return;
      }
      const m = await this.#get(at.pointer.manifestKey);
      // Gone already: a newer pointer replaced it, and its own event follows.
      if (m === null || this.#closed || st.claimedEpoch >= 0 || (st.at !== null && at.revision <= st.at.revision)) return;
      tier.manifest = m;
      st.at = at;
    });
    tier.manifestChain = run.catch((err) => this.#log?.warn({ err: (err as Error).message, topic, partition }, 'loading the manifest the fence names failed; the next change or claim loads it'));
  }

  /** Another broker moved the pointer past this broker's claim: stop writing at once. */
  #deposed(tier: PartitionTier, current: PointerAt | null): void {
    const st = this.#states.get(tier);
    if (st === undefined || st.claimedEpoch < 0) return;
    this.#log?.warn({ topic: tier.ref.topic, partition: tier.ref.partition, claimedEpoch: st.claimedEpoch, fenceEpoch: current?.pointer.leaderEpoch, fenceWriter: current?.pointer.writer }, 'the manifest fence moved to another leader: this broker stops offloading the partition');
    st.claimedEpoch = -1;
    st.turn++;
    this.#o.reset(tier);
  }

  /**
   * Deletes segment objects the manifest does not name, except this broker's uploads in
   * flight, and manifest objects other than the current one. Only the claimed leader runs
   * it: nobody else can commit, so an unnamed object is garbage (an interrupted or deposed
   * upload) unless it is one of this broker's own attempts.
   */
  async #sweep(tier: PartitionTier, st: ClusterTierState): Promise<void> {
    const { store, retry, signal } = this.#o.io;
    const { topic, partition } = tier.ref;
    // Listed first, then the fence checked: a successor's objects all come after its claim,
    // so anything listed before a check that still finds this broker's pointer is not
    // theirs. (A deposed leader that has not heard of its successor yet must not delete
    // the successor's uploads.)
    const segments: string[] = [];
    for await (const key of listKeys(store, ObjectKeys.segmentsPrefix(tier.ref), signal, retry)) segments.push(key);
    const manifests: string[] = [];
    for await (const key of listKeys(store, ObjectKeys.manifestsPrefix(tier.ref), signal, retry)) manifests.push(key);
    const fence = await this.#o.fence.read(topic, partition);
    if (!this.mayWrite(tier) || fence === null || fence.revision !== st.at?.revision) return;
    const current = fence.pointer.manifestKey;
    const named = (key: string) => tier.manifest.segments.some((s) => s.dataKey === key || s.indexKey === key);
    const ownAttempt = (key: string) => [...tier.offload.copying.values()].some((a) => key.includes(`-${a}.`));
    let removed = 0;
    for (const key of segments) {
      if (!this.mayWrite(tier)) return;
      if (named(key) || ownAttempt(key)) continue;
      await withRetry(() => store.delete(key, { signal }), retry, signal);
      removed++;
    }
    // Versions above the pointer's may be this broker's own next one, written and not yet
    // committed: only older ones go (a deposed leader's of the same version go at the next claim).
    for (const key of manifests) {
      if (!this.mayWrite(tier)) return;
      const version = ObjectKeys.versionOfManifestKey(key);
      if (key === current || version === null || version > fence.pointer.version) continue;
      await withRetry(() => store.delete(key, { signal }), retry, signal);
      removed++;
    }
    if (removed > 0) this.#log?.info({ topic, partition, removed }, 'removed objects no manifest names (interrupted or deposed uploads, old manifest versions)');
  }

  /** A manifest object; null when it is gone. */
  async #get(key: string): Promise<PartitionManifest | null> {
    const { store, retry, signal } = this.#o.io;
    try {
      return decodeManifest(await withRetry(() => store.get(key, { signal }), retry, signal), `${store.name}/${key}`);
    } catch (err) {
      if ((err as { kind?: string }).kind === 'not-found') return null;
      throw err;
    }
  }
}
