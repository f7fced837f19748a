/**
 * One partition's replica on this broker, as Kafka's `Partition`: its role (leader of an
 * epoch, follower of a leader, or neither), and on the leader the followers' progress, the
 * high watermark and the produce requests waiting for it (acks=all).
 *
 * High watermark (leader only): the smallest log end over the ISR, the leader's own durable
 * end included (fdatasync'd in flush mode `fsync`, written in `interval`), where a follower's
 * end is the offset it last fetched from (it fetches an offset only once it durably holds
 * everything before it: replica-fetcher.ts). While an ISR change is in flight the larger of
 * the old and new ISR counts (Kafka's "maximal ISR", KIP-497): a follower being added must
 * hold the records before the high watermark passes them, and one being removed still
 * counts until etcd says it is out. It never moves back within an epoch. A follower of the
 * ISR that has not fetched yet in this epoch counts at the high watermark the leader
 * started with, so nothing it may lack is exposed.
 *
 * Lifecycle: built by the ReplicaManager when a state names this broker, then moved between
 * roles by it (`lead`, `follow`, `resign`); every change of role or epoch fails the waiting
 * produce requests with NOT_LEADER_OR_FOLLOWER, as Kafka does. Not thread-shared: every
 * method runs on the event loop; none awaits.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import type { PartitionLog } from '../storage/partition-log.js';
import type { NamedPartitionState } from './partition-state-source.js';

export type ReplicaRole = 'leader' | 'follower' | 'none';

/** What the leader knows of one follower (Kafka's Replica state). */
export interface FollowerProgress {
  /** The offset of its last fetch: it holds everything before it. -1n: no fetch in this epoch. */
  fetchOffset: bigint;
  lastFetchMs: number;
  /** The last time its fetch offset reached the leader's log end (Kafka's lastCaughtUpTimeMs). */
  lastCaughtUpMs: number;
  /** The leader's log end at its previous fetch, and when that was. */
  endAtPreviousFetch: bigint;
  /** Its log start as its last fetch gave it (-1n: not given). */
  logStartOffset: bigint;
  previousFetchMs: number;
}

interface Waiter {
  lastOffset: bigint;
  minInsync: number;
  resolve: (err: MeridianError | null) => void;
  timer: NodeJS.Timeout;
}

export class PartitionReplica {
  readonly topic: string;
  readonly partition: number;
  readonly log: PartitionLog;
  readonly nodeId: number;
  #state: NamedPartitionState;
  #role: ReplicaRole = 'none';
  /** The replicated high watermark (leader), or the last one the leader sent (follower). */
  #hw: bigint;
  #followers = new Map<number, FollowerProgress>();
  /** The log end when this broker became leader of the current epoch (Kafka's leaderEpochStartOffset). */
  #epochStart = 0n;
  #leaderSince = 0;
  /** The ISR being proposed to the state source, until the new state arrives (or a conflict). */
  #pendingIsr: readonly number[] | undefined;
  /** Members of proposals whose outcome is unknown (proposalUnknown), until a newer state. */
  #uncertainIsr: readonly number[] | undefined;
  #waiters: Waiter[] = [];
  #hwListeners = new Set<() => void>();
  #offOwnEnd: (() => void) | undefined;
  readonly #durableEnd: () => bigint;
  readonly #onHwChange: (() => void) | undefined;

  /**
   * `initialHw`: the high watermark this broker's checkpoint held (hw-checkpoint.ts), clamped
   * to the log; `onHwChange` is called whenever the high watermark moves (to checkpoint it).
   */
  constructor(nodeId: number, log: PartitionLog, state: NamedPartitionState, fsyncMode: boolean, opts: { initialHw?: bigint; onHwChange?: () => void } = {}) {
    this.nodeId = nodeId;
    this.log = log;
    this.topic = state.topic;
    this.partition = state.partition;
    this.#state = state;
    // What the checkpoint says was replicated, within what the log holds; without one,
    // nothing is known replicated until the ISR says so.
    const start = log.logStartOffset;
    const initial = opts.initialHw ?? start;
    this.#hw = initial < start ? start : initial > log.highWatermark ? log.highWatermark : initial;
    this.#onHwChange = opts.onHwChange;
    // The leader's own end counts once it is as durable as acks=-1 asks on a single broker.
    this.#durableEnd = fsyncMode ? () => log.durableOffset : () => log.highWatermark;
  }

  get role(): ReplicaRole {
    return this.#role;
  }

  get state(): NamedPartitionState {
    return this.#state;
  }

  get leaderEpoch(): number {
    return this.#state.leaderEpoch;
  }

  /** The replicated high watermark; on a follower, the last one its leader sent. */
  get highWatermark(): bigint {
    return this.#hw;
  }

  /**
   * The ISR the high watermark counts: the committed one, with the members of a change in
   * flight, or of one whose outcome is unknown (its write failed without an answer: etcd may
   * hold it) until a newer state settles it.
   */
  get maximalIsr(): readonly number[] {
    if (this.#pendingIsr === undefined && this.#uncertainIsr === undefined) return this.#state.isr;
    return [...new Set([...this.#state.isr, ...(this.#pendingIsr ?? []), ...(this.#uncertainIsr ?? [])])];
  }

  /** Where the current epoch began on this leader's log (its log end when elected). */
  get epochStartOffset(): bigint {
    return this.#epochStart;
  }

  get pendingIsr(): readonly number[] | undefined {
    return this.#pendingIsr;
  }

  followerProgress(nodeId: number): Readonly<FollowerProgress> | undefined {
    return this.#followers.get(nodeId);
  }

  /** Becomes (or stays) leader of `state`'s epoch. A new epoch starts from a clean slate. */
  lead(state: NamedPartitionState, now: number): void {
    const newEpoch = this.#role !== 'leader' || state.leaderEpoch !== this.#state.leaderEpoch;
    if (newEpoch || state.partitionEpoch > this.#state.partitionEpoch) this.#uncertainIsr = undefined;
    this.#state = state;
    this.#pendingIsr = undefined;
    if (newEpoch) {
      this.#failWaiters(notLeader(this, 'its leader changed while the request waited for replication'));
      this.#role = 'leader';
      this.#epochStart = this.log.logEndOffset;
      this.#leaderSince = now;
      this.#followers.clear();
      // What the previous leader said was replicated (as a follower) is the floor; it can
      // never be above what this log holds.
      if (this.#hw > this.log.highWatermark) this.#setHw(this.log.highWatermark);
      this.#offOwnEnd?.();
      const recompute = () => this.recompute();
      const offs = [this.log.onDurable(recompute), this.log.onAppend(recompute), this.log.onTruncated(() => this.#truncated())];
      this.#offOwnEnd = () => offs.forEach((off) => off());
    }
    this.recompute();
  }

  /** Becomes a follower of `state.leader` (or leaves the ISR-less none role). */
  follow(state: NamedPartitionState): void {
    this.#leave(state, 'follower');
  }

  /** No longer a replica, or the partition is offline. */
  resign(state: NamedPartitionState): void {
    this.#leave(state, 'none');
  }

  #leave(state: NamedPartitionState, role: ReplicaRole): void {
    this.#state = state;
    this.#pendingIsr = undefined;
    this.#uncertainIsr = undefined;
    if (this.#role === 'leader') this.#failWaiters(notLeader(this, 'this broker stopped leading the partition while the request waited for replication'));
    this.#role = role;
    this.#offOwnEnd?.();
    this.#offOwnEnd = undefined;
    this.#followers.clear();
  }

  /**
   * A new state of the same role and epoch (an ISR change). The same state again (a watch
   * re-delivers everything after a compaction reload, or a CAS answer and its watch event)
   * is a no-op: only a higher partitionEpoch settles an ISR proposal in flight, otherwise
   * the high watermark would stop counting a joining follower while its expansion is
   * still being written (and pass offsets it does not hold yet).
   */
  update(state: NamedPartitionState): void {
    if (state.leaderEpoch === this.#state.leaderEpoch && state.partitionEpoch <= this.#state.partitionEpoch) return;
    this.#state = state;
    this.#pendingIsr = undefined;
    this.#uncertainIsr = undefined;
    if (this.#role === 'leader') this.recompute();
  }

  /**
   * Fails the produce requests waiting for replication with NOT_LEADER_OR_FOLLOWER, the
   * role unchanged (the broker lost its etcd lease: replica-manager.ts suspendLeadership).
   */
  failWaiting(why: string): void {
    this.#failWaiters(notLeader(this, why));
  }

  /** An ISR change is being proposed; the high watermark counts the larger set meanwhile. */
  proposeIsr(isr: readonly number[]): void {
    this.#pendingIsr = isr;
  }

  /**
   * The proposal's write failed without an answer, or was refused (etcd holds a newer
   * state, which may carry a lost earlier write of this leader's): its members keep counting
   * (maximalIsr) until a newer state of the partition says which, and another change may be
   * proposed meanwhile.
   */
  proposalUnknown(): void {
    if (this.#pendingIsr !== undefined) this.#uncertainIsr = [...new Set([...(this.#uncertainIsr ?? []), ...this.#pendingIsr])];
    this.#pendingIsr = undefined;
    if (this.#role === 'leader') this.recompute();
  }

  /** The high watermark the leader sent with a fetch answer (follower). */
  setFollowerHighWatermark(hw: bigint): void {
    if (this.#role !== 'leader') this.#setHw(hw < this.log.highWatermark ? hw : this.log.highWatermark);
  }

  /**
   * A follower fetched from `fetchOffset` (leader): it durably holds everything before it.
   * Updates its progress (Kafka's Replica.updateFetchState) and the high watermark.
   */
  followerFetched(nodeId: number, fetchOffset: bigint, now: number, logStartOffset = -1n): void {
    const leaderEnd = this.log.highWatermark;
    const p = this.#followers.get(nodeId) ?? { fetchOffset: -1n, lastFetchMs: 0, lastCaughtUpMs: this.#leaderSince, endAtPreviousFetch: -1n, previousFetchMs: 0, logStartOffset: -1n };
    p.logStartOffset = logStartOffset;
    if (fetchOffset >= leaderEnd) p.lastCaughtUpMs = Math.max(p.lastCaughtUpMs, now);
    else if (fetchOffset >= p.endAtPreviousFetch && p.endAtPreviousFetch >= 0n) p.lastCaughtUpMs = Math.max(p.lastCaughtUpMs, p.previousFetchMs);
    p.fetchOffset = fetchOffset;
    p.lastFetchMs = now;
    p.endAtPreviousFetch = leaderEnd;
    p.previousFetchMs = now;
    this.#followers.set(nodeId, p);
    this.recompute();
  }

  /**
   * The ISR this leader should propose now, or undefined for none: followers out of the ISR
   * whose fetch offset reached the high watermark in this epoch join; followers of the ISR
   * that have not caught up with the log end for `lagTimeMaxMs` leave.
   */
  desiredIsr(now: number, lagTimeMaxMs: number): readonly number[] | undefined {
    if (this.#role !== 'leader' || this.#pendingIsr !== undefined) return undefined;
    const isr = this.#state.isr;
    const leaderEnd = this.log.highWatermark;
    // A follower counts as fetching only if it fetched within the lag time: one that was
    // caught up and then died (nothing produced since) must still leave the ISR, and must not
    // be taken back into it after the controller removed it (its last fetch offset would
    // otherwise still equal the high watermark of an idle partition).
    const fetching = (p: FollowerProgress | undefined): p is FollowerProgress => p !== undefined && now - p.lastFetchMs <= lagTimeMaxMs;
    const out = isr.filter((id) => {
      if (id === this.nodeId) return true;
      const p = this.#followers.get(id);
      if (fetching(p) && p.fetchOffset >= leaderEnd) return true;
      const caughtUp = p?.lastCaughtUpMs ?? this.#leaderSince;
      return now - caughtUp <= lagTimeMaxMs;
    });
    // Only replicas outside the committed ISR join: one leaving now is judged again once the
    // high watermark has moved without it (Kafka evaluates shrink and expand apart).
    for (const id of this.#state.replicas) {
      if (isr.includes(id) || out.includes(id)) continue;
      const p = this.#followers.get(id);
      if (fetching(p) && p.fetchOffset >= this.#hw && p.fetchOffset >= this.#epochStart) out.push(id);
    }
    if (!out.includes(this.nodeId)) out.unshift(this.nodeId);
    const same = out.length === isr.length && out.every((id) => isr.includes(id));
    // A change whose outcome is unknown is settled by writing the ISR again: etcd then either
    // takes it (it never held the lost one) or refuses it (a newer state, which says).
    if (same) return this.#uncertainIsr === undefined ? undefined : [...isr];
    return out;
  }

  /** Recomputes the high watermark (leader) and settles the waiters it passed. */
  recompute(): void {
    if (this.#role !== 'leader') return;
    let hw = this.#durableEnd();
    for (const id of this.maximalIsr) {
      if (id === this.nodeId) continue;
      const p = this.#followers.get(id);
      const end = p === undefined || p.fetchOffset < 0n ? this.#hw : p.fetchOffset;
      if (end < hw) hw = end;
    }
    if (hw <= this.#hw) return;
    this.#setHw(hw);
    if (this.#waiters.length > 0) {
      const size = this.maximalIsr.length;
      const still: Waiter[] = [];
      for (const w of this.#waiters) {
        if (w.lastOffset >= hw) {
          still.push(w);
          continue;
        }
        clearTimeout(w.timer);
        // Kafka's checkEnoughReplicasReachOffset: replicated, but to fewer than asked.
        w.resolve(size < w.minInsync ? new MeridianError(ErrorCode.NotEnoughReplicasAfterAppend, `${this.topic}-${this.partition}: written up to offset ${w.lastOffset}, but the ISR [${this.maximalIsr.join(', ')}] is smaller than min.insync.replicas ${w.minInsync}`) : null);
      }
      this.#waiters = still;
    }
    for (const l of this.#hwListeners) l();
  }

  /**
   * Resolves with null once the high watermark passes `lastOffset` (acks=all), or with the
   * error to answer: NOT_ENOUGH_REPLICAS_AFTER_APPEND, REQUEST_TIMED_OUT after `timeoutMs`,
   * NOT_LEADER_OR_FOLLOWER if leadership moves meanwhile.
   */
  awaitHighWatermark(lastOffset: bigint, minInsync: number, timeoutMs: number): Promise<MeridianError | null> {
    if (this.#role !== 'leader') return Promise.resolve(notLeader(this, 'this broker no longer leads the partition'));
    if (this.#hw > lastOffset) {
      const size = this.maximalIsr.length;
      return Promise.resolve(size < minInsync ? new MeridianError(ErrorCode.NotEnoughReplicasAfterAppend, `${this.topic}-${this.partition}: the ISR [${this.maximalIsr.join(', ')}] is smaller than min.insync.replicas ${minInsync}`) : null);
    }
    return new Promise((resolve) => {
      const w: Waiter = {
        lastOffset,
        minInsync,
        resolve,
        timer: setTimeout(() => {
          this.#waiters = this.#waiters.filter((x) => x !== w);
          resolve(new MeridianError(ErrorCode.ReplicationTimedOut, `${this.topic}-${this.partition}: offset ${lastOffset} was written on the leader but the ISR [${this.maximalIsr.join(', ')}] did not all hold it within ${timeoutMs} ms (high watermark ${this.#hw})`));
        }, Math.max(0, timeoutMs)),
      };
      w.timer.unref();
      this.#waiters.push(w);
    });
  }

  /** Called when the replicated high watermark moves (consumer long polls wait on it). */
  onHighWatermark(listener: () => void): () => void {
    this.#hwListeners.add(listener);
    return () => this.#hwListeners.delete(listener);
  }

  /** Stops everything (the broker closes). */
  close(): void {
    this.#leave(this.#state, 'none');
  }

  #truncated(): void {
    if (this.#hw > this.log.highWatermark) this.#setHw(this.log.highWatermark);
  }

  #setHw(hw: bigint): void {
    if (hw === this.#hw) return;
    this.#hw = hw;
    this.#onHwChange?.();
  }

  #failWaiters(err: MeridianError): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.resolve(err);
    }
  }
}

export function notLeader(r: { topic: string; partition: number; state: NamedPartitionState }, why: string): MeridianError {
  const leader = r.state.leader < 0 ? 'it has no leader now' : `broker ${r.state.leader} leads it (epoch ${r.state.leaderEpoch})`;
  return new MeridianError(ErrorCode.NotLeader, `${r.topic}-${r.partition}: ${why}; ${leader}`);
}
