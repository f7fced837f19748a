/**
 * Partition reassignment, the pure part (no etcd, no I/O): what a reassignment in progress
 * is, how a request is checked, and the controller's next step for one partition. The
 * controller (etcd-controller-work.ts) writes each step as one fenced compare-and-swap;
 * reassign-store.ts keeps the requests in etcd.
 *
 * The steps follow Kafka's (KIP-455), with the adding and removing sets derived from the
 * target and the partition's current replicas instead of being stored, so a controller that
 * takes over mid-way reads the state and continues from wherever the last one stopped:
 *
 *   1. add: replicas := target ++ (current replicas not in the target), partitionEpoch + 1.
 *      The new replicas see themselves in `replicas` and start fetching from the leader as
 *      followers; the leader adds each to the ISR once it has caught up (its own alterIsr).
 *   2. wait until every target replica is in the ISR (a move that only appends replicas has
 *      its target as replicas already: it is done once they are in sync).
 *   3. complete, in one write: replicas := target, ISR := ISR ∩ target, leader := the first
 *      target replica when it is alive and in sync (else the current leader when it stays,
 *      else the first live in-sync target replica), leaderEpoch + 1 if the leader changed.
 *      The removed brokers find themselves out of `replicas` and stop fetching (or leading).
 *      The reassignment's key is deleted in the same transaction.
 *
 * Putting the leader move and the removal in one write keeps the old leader from leading a
 * partition it no longer holds, and nothing acknowledged is lost: the new leader is in the
 * ISR, so it holds everything below the high watermark.
 *
 * Cancelling (Kafka's reassignment with null replicas) marks the request `cancelled`: the
 * partition goes back to its original replicas in one write, without waiting for anyone to
 * catch up (each original replica was a replica all along): replicas := original, ISR := ISR ∩
 * original, the leader kept when it is an original replica, else the first original replica
 * alive and in sync. Only when none is (the original replicas all fell out of sync) does it
 * wait.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import type { PartitionState } from './partition-state.js';

/** A reassignment in progress, the value of `reassignments/<topic>/<p>`. */
export interface Reassignment {
  /** The replicas the partition should end with, in preference order (the first leads). */
  readonly target: readonly number[];
  /** The replicas when it was asked (shown to the operator; the steps do not depend on it). */
  readonly original: readonly number[];
  /** When it was asked (ms since the epoch). */
  readonly requestedAt: number;
  /** Cancelled: the partition goes back to `original` (see above). */
  readonly cancelled?: boolean;
}

/** The controller's next step for a partition being reassigned. */
export type ReassignStep =
  /** Write this state (add the target replicas, or complete: then delete the request too). */
  | { readonly kind: 'add' | 'complete'; readonly state: PartitionState }
  /** Nothing to write yet: these target replicas are not in the ISR (or not alive to lead). */
  | { readonly kind: 'wait'; readonly waitingFor: readonly number[] }
  /** Already done (the replicas are the target): delete the request. */
  | { readonly kind: 'done' };

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => b[i] === x);
}

/** The brokers added by a reassignment and those it removes, from the current replicas. */
export function reassignmentSets(current: readonly number[], target: readonly number[]): { adding: number[]; removing: number[] } {
  return { adding: target.filter((id) => !current.includes(id)), removing: current.filter((id) => !target.includes(id)) };
}

/**
 * The next step of `r` for a partition in `state`, given the live brokers. Pure: every
 * controller decides the same from the same etcd state.
 */
export function reassignStep(state: PartitionState, r: Reassignment, alive: ReadonlySet<number>): ReassignStep {
  if (r.cancelled === true) return revertStep(state, r.original, alive);
  const target = r.target;
  const notInSync = target.filter((id) => !state.isr.includes(id));
  // A move that only adds replicas (in order) has the target as replicas right after its add
  // step: it is done once they are in sync, not before.
  if (sameList(state.replicas, target)) return notInSync.length === 0 ? { kind: 'done' } : { kind: 'wait', waitingFor: notInSync };
  if (target.some((id) => !state.replicas.includes(id))) {
    const replicas = [...target, ...state.replicas.filter((id) => !target.includes(id))];
    return { kind: 'add', state: { ...state, replicas, partitionEpoch: state.partitionEpoch + 1 } };
  }
  if (notInSync.length > 0) return { kind: 'wait', waitingFor: notInSync };
  const candidates = target.filter((id) => alive.has(id));
  if (candidates.length === 0) return { kind: 'wait', waitingFor: [...target] };
  const leader = candidates[0] === target[0] ? target[0]! : target.includes(state.leader) && alive.has(state.leader) ? state.leader : candidates[0]!;
  return {
    kind: 'complete',
    state: {
      replicas: [...target],
      leader,
      leaderEpoch: leader === state.leader ? state.leaderEpoch : state.leaderEpoch + 1,
      isr: state.isr.filter((id) => target.includes(id)),
      partitionEpoch: state.partitionEpoch + 1,
    },
  };
}

/** A cancelled move: back to the original replicas at once (see the header). */
function revertStep(state: PartitionState, original: readonly number[], alive: ReadonlySet<number>): ReassignStep {
  if (sameList(state.replicas, original)) return { kind: 'done' };
  const isr = state.isr.filter((id) => original.includes(id));
  const inSync = original.filter((id) => isr.includes(id) && alive.has(id));
  const leader = original.includes(state.leader) && inSync.includes(state.leader) ? state.leader : inSync[0];
  if (leader === undefined || isr.length === 0) return { kind: 'wait', waitingFor: [...original] };
  return {
    kind: 'complete',
    state: { replicas: [...original], leader, leaderEpoch: leader === state.leader ? state.leaderEpoch : state.leaderEpoch + 1, isr, partitionEpoch: state.partitionEpoch + 1 },
  };
}

/**
 * Checks a requested target: at least one replica, no broker twice, every broker registered
 * in the region (INVALID_REPLICA_ASSIGNMENT naming what is wrong).
 */
export function validateTarget(topic: string, partition: number, target: readonly number[], registered: ReadonlySet<number>): void {
  const bad = (detail: string) => new MeridianError(ErrorCode.InvalidReplicaAssignment, `reassign ${topic}-${partition} to [${target.join(', ')}]: ${detail}`);
  if (target.length === 0) throw bad('give at least one replica');
  if (!target.every((id) => Number.isSafeInteger(id) && id >= 0)) throw bad('replicas are broker node ids (integers >= 0)');
  if (new Set(target).size !== target.length) throw bad('a broker is named twice');
  const unknown = target.filter((id) => !registered.has(id));
  if (unknown.length > 0) {
    throw bad(`broker${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not registered in the region (live brokers: ${[...registered].sort((a, b) => a - b).join(', ') || 'none'}); start ${unknown.length > 1 ? 'them' : 'it'} first`);
  }
}

export function parseReassignment(key: string, raw: Buffer | string): Reassignment {
  let v: unknown;
  try {
    v = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (err) {
    throw new MeridianError(ErrorCode.CorruptMetadata, `etcd key ${key} is not a partition reassignment (not JSON); delete it with etcdctl del ${key}`, { cause: err });
  }
  const o = v as Record<string, unknown> | null;
  const ids = (x: unknown) => Array.isArray(x) && x.length > 0 && x.every((i) => typeof i === 'number' && Number.isSafeInteger(i) && i >= 0) && new Set(x).size === x.length;
  if (typeof o !== 'object' || o === null || !ids(o.target) || !ids(o.original) || typeof o.requestedAt !== 'number' || (o.cancelled !== undefined && typeof o.cancelled !== 'boolean')) {
    throw new MeridianError(ErrorCode.CorruptMetadata, `etcd key ${key} is not a partition reassignment ({ target, original, requestedAt, cancelled? }); delete it with etcdctl del ${key}`);
  }
  return { target: o.target as number[], original: o.original as number[], requestedAt: o.requestedAt, ...(o.cancelled === true ? { cancelled: true } : {}) };
}
