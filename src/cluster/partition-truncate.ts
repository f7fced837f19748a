/**
 * Region-wide tail truncation of one partition of a region cluster: "truncate T/P at offset
 * X" so that the leader and every replica end at X, nothing past X is left anywhere, and the
 * partition goes on normally afterwards (new appends replicate from X, the high watermark is
 * min(HW, X) and grows again, consumers read up to it). Failback (src/dr/failback.ts) cuts a
 * DR topic's divergent tail with it; src/cluster/README.md, "Region-wide tail truncation".
 *
 * Kafka has no such request; it is built from Kafka's own rule for divergent tails
 * (KIP-101/KIP-279): a replica never keeps records of an older leader epoch past where the
 * current leader's history of that epoch ends.
 *
 * 1. Request (`truncatePartitionRegionWide`, any broker): one compare-and-swap of
 *    `partitions/<T>/<P>` on its mod revision, like every partition-state write: the same
 *    leader, leaderEpoch + 1, partitionEpoch + 1, and `truncation: { id, offset X, epoch E+1,
 *    status pending }`. A leader election or ISR change meanwhile makes etcd refuse it; it is
 *    decided again from the new state. Not through the controller: one epoch bump needs no
 *    steps, and the CAS fences it against the controller's and the leader's writes alike.
 * 2. Leader (`leaderCut`, replica-manager.ts #becomeLeader): a broker about to lead a state
 *    carrying a truncation of its epoch or an older one first cuts its log to X when it holds
 *    records of epochs before the truncation's past X, then leads. Its epoch cache then says
 *    epoch E ends at X and the new epoch starts at X. It refuses (status `refused`, reason)
 *    an X below its log start, past its log end, or inside a batch (a log is cut between
 *    batches): nothing is cut then.
 * 3. Followers re-enter their truncate phase on every new epoch (replica-fetcher.ts): their
 *    OffsetForLeaderEpoch for epoch E is answered X, so they cut to X by the ordinary path;
 *    a replica down meanwhile does the same when it returns.
 * 4. Completion (`settleTruncation`, the leader): once every in-sync replica fetched in the
 *    leader's epoch (so it went through its truncation and holds nothing past X of the old
 *    epochs), the leader sets status `done` (CAS, partitionEpoch + 1). A follower that
 *    leaves the ISR instead no longer counts; it truncates when it follows again.
 * 5. The caller waits for `done` (or `refused`) of its id through the partition-state watch.
 *
 * A leader change in the middle does not lose the request: the controller's elections keep
 * the state's other fields (assignment.ts spreads the state; a reassignment's completion,
 * built whole, gets it back through `carryTruncation`), so the new leader, at a later epoch,
 * still finds the truncation and applies rule 2 before it leads (an in-sync follower that
 * had not cut yet cuts then). Should a write still drop the field (a broker of an older
 * version), the caller fails with a retriable error; asking again is safe: a repeated
 * truncation at the same X cuts nothing more.
 *
 * The truncation stays in the state after it is done: its rule (no record of an epoch
 * before E+1 past X) holds forever after, so applying it again is a no-op. The next
 * truncation replaces it.
 *
 * Writes during a truncation are the caller's to refuse (failback refuses producers and
 * inbound replication while `failing-back`); a produce the old epoch's leader wrote past X
 * before it applied the new epoch is cut with the rest and was not acknowledged at acks=all
 * (the epoch change fails the waiting requests).
 */
import { randomUUID } from 'node:crypto';
import { ErrorCode, MeridianError } from '../errors.js';
import type { PartitionLog } from '../storage/partition-log.js';
import type { EtcdRegion } from './etcd-region.js';
import type { EtcdPartitionStateSource } from './etcd-state-source.js';
import type { TopicStore } from './etcd-topics.js';
import type { PartitionState, PartitionTruncation } from './partition-state.js';
import type { IsrExpectation, NamedPartitionState } from './partition-state-source.js';

export type { PartitionTruncation };

/** What a leader does with a state's truncation before it leads. */
export type LeaderCut = { readonly kind: 'none' } | { readonly kind: 'cut'; readonly offset: bigint } | { readonly kind: 'refuse'; readonly reason: string };

/** The leader's outcome write (replica-manager.ts calls it through the cluster node). */
export type TruncationSettler = (topic: string, partition: number, expected: IsrExpectation, id: string, status: 'done' | 'refused', reason?: string) => Promise<boolean>;

const NONE: LeaderCut = { kind: 'none' };

/**
 * Where a broker about to lead at `leaderEpoch` must cut `log` for truncation `t`: records of
 * epochs before `t.epoch` at or past `t.offset` go. A refused truncation, or one of a later
 * epoch than the one being led, asks nothing.
 */
export async function leaderCut(log: PartitionLog, t: PartitionTruncation, leaderEpoch: number): Promise<LeaderCut> {
  if (t.status === 'refused' || leaderEpoch < t.epoch) return NONE;
  const x = BigInt(t.offset);
  const newer = log.leaderEpochs.entries().find((e) => e.epoch >= t.epoch);
  // Where this log's records of the older epochs end.
  const oldEnd = newer?.startOffset ?? log.logEndOffset;
  if (oldEnd <= x) {
    // Past the end of the first leader's log, the request asks for what is not there. A
    // later leader (the first one left mid-way) may hold less than its predecessor's
    // unreplicated tail: it holds nothing past X, so there is nothing to cut.
    if (t.status === 'pending' && newer === undefined && log.logEndOffset < x && leaderEpoch === t.epoch) {
      return { kind: 'refuse', reason: `offset ${x} is past the log end ${log.logEndOffset} of the leader` };
    }
    return NONE;
  }
  if (newer !== undefined) {
    // Records of the new epochs start past X: the log start moved past X since (retention,
    // DeleteRecords), or, for a pending truncation, something appended without cutting
    // first, which this protocol does not do. Cutting would remove records of the new
    // epochs: a pending truncation is refused, a settled one asks nothing more.
    if (t.status !== 'pending') return NONE;
    return { kind: 'refuse', reason: `records of leader epoch ${newer.epoch} start at ${newer.startOffset}, past offset ${x}; cutting there would remove them` };
  }
  if (x < log.logStartOffset) return { kind: 'refuse', reason: `offset ${x} is below the log start ${log.logStartOffset} of the leader` };
  const base = await log.batchBaseAtOrBefore(x);
  if (base !== x) return { kind: 'refuse', reason: `offset ${x} lies inside the batch starting at ${base}; a log is cut between batches (ask for ${base})` };
  return { kind: 'cut', offset: x };
}

/**
 * Whether the leader of `state` may set its truncation `done`: it cut its own log in this
 * leadership (`cutDone`) and every other in-sync replica fetched in its epoch
 * (`fetchedInEpoch`).
 */
export function truncationComplete(state: PartitionState, selfId: number, cutDone: boolean, fetchedInEpoch: (nodeId: number) => boolean): boolean {
  const t = state.truncation;
  if (t === undefined || t.status !== 'pending' || state.leaderEpoch < t.epoch || !cutDone) return false;
  return state.isr.every((id) => id === selfId || fetchedInEpoch(id));
}

/**
 * `next` with `from`'s truncation when `next` was built without it (a reassignment's
 * completion writes the state whole): the truncation must survive every later write.
 */
export function carryTruncation(from: PartitionState, next: PartitionState): PartitionState {
  return next.truncation === undefined && from.truncation !== undefined ? { ...next, truncation: from.truncation } : next;
}

export interface TruncateDeps {
  readonly region: EtcdRegion;
  readonly topicStore: TopicStore;
  readonly source: EtcdPartitionStateSource;
  readonly nodeId: number;
}

export interface TruncateResult {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  /** The leader that completed it and its epoch. */
  readonly leader: number;
  readonly leaderEpoch: number;
  readonly isr: readonly number[];
}

/**
 * Truncates `topic`/`partition` at `offset` on every replica of the region (the file header)
 * and resolves once every in-sync replica holds nothing past it. Errors: UNKNOWN_TOPIC, an
 * offline partition (NOT_LEADER, retriable), OFFSET_OUT_OF_RANGE as the leader refused it
 * (below its log start, past its end, inside a batch: nothing was cut),
 * REPLICATION_TIMED_OUT after `timeoutMs` naming the replicas not done (the request stays in
 * etcd and completes by itself once they return; asking again is safe), METADATA_UNAVAILABLE
 * (retriable) when a concurrent rewrite dropped the request.
 */
export async function truncatePartitionRegionWide(
  deps: TruncateDeps,
  topic: string,
  partition: number,
  offset: bigint,
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<TruncateResult> {
  if (offset < 0n) throw new MeridianError(ErrorCode.OffsetOutOfRange, `cannot truncate ${topic}-${partition} at ${offset}: offsets are >= 0`);
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const id = `${deps.nodeId}-${randomUUID()}`;
  const where = `${topic}-${partition}`;
  // Subscribed before the write, so no state after it is missed.
  let latest: NamedPartitionState | undefined;
  let wake: (() => void) | undefined;
  const off = deps.source.subscribe((s) => {
    if (s.topic !== topic || s.partition !== partition) return;
    latest = s;
    wake?.();
  });
  try {
    const epoch = await request(deps, topic, partition, offset, id, opts.signal);
    deps.region.logger?.info({ topic, partition, offset: String(offset), leaderEpoch: epoch, id }, 'region-wide truncation requested');
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = latest ?? named(topic, partition, deps.source.versioned(topic, partition)?.value);
      const t = s?.truncation;
      if (s !== undefined && s.leaderEpoch >= epoch) {
        if (t?.id === id && t.status === 'done') return { topic, partition, offset, leader: s.leader, leaderEpoch: s.leaderEpoch, isr: s.isr };
        if (t?.id === id && t.status === 'refused') {
          throw new MeridianError(ErrorCode.OffsetOutOfRange, `cannot truncate ${where} at ${offset}: broker ${s.leader} (leader, epoch ${s.leaderEpoch}) refused it: ${t.reason ?? 'no reason given'}. Nothing was cut`);
        }
        if (t?.id !== id) {
          throw new MeridianError(ErrorCode.MetadataUnavailable, `the truncation of ${where} at ${offset} was replaced in etcd before it completed (${t === undefined ? 'a rewrite of the partition state dropped it' : `another truncation, at ${t.offset}, was asked`}); ask again`, { retriable: true });
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        const waiting = s === undefined ? 'its state is unknown here' : s.leader < 0 ? 'the partition has no leader now' : `leader ${s.leader} at epoch ${s.leaderEpoch} with ISR [${s.isr.join(', ')}] has not confirmed that every in-sync replica cut its log`;
        throw new MeridianError(ErrorCode.ReplicationTimedOut, `the truncation of ${where} at ${offset} did not complete within ${timeoutMs} ms: ${waiting}. It stays in etcd and completes once the replicas are back; asking again is safe`);
      }
      if (opts.signal?.aborted === true) throw new MeridianError(ErrorCode.Aborted, `the truncation of ${where} was abandoned by its caller; it stays in etcd and completes by itself`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        timer.unref();
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  } finally {
    off();
  }
}

/** The epoch bump carrying the truncation, CAS on the state's mod revision; returns its epoch. */
async function request(deps: TruncateDeps, topic: string, partition: number, offset: bigint, id: string, signal: AbortSignal | undefined): Promise<number> {
  const { region } = deps;
  const key = region.keys.partition(topic, partition);
  for (let attempt = 1; ; attempt++) {
    const cur = await deps.topicStore.getPartition(topic, partition, signal === undefined ? {} : { signal });
    if (cur === undefined || (await deps.topicStore.getTopic(topic)) === undefined) {
      throw new MeridianError(ErrorCode.UnknownTopic, `cannot truncate ${topic}-${partition}: no such partition in the region`);
    }
    if (cur.value.truncation?.id === id) return cur.value.truncation.epoch; // our write, its answer lost
    if (cur.value.leader < 0) {
      throw new MeridianError(ErrorCode.NotLeader, `cannot truncate ${topic}-${partition}: the partition has no leader now (offline); bring one of its in-sync replicas [${cur.value.isr.join(', ')}] back and ask again`, { retriable: true });
    }
    const epoch = cur.value.leaderEpoch + 1;
    const next: PartitionState = {
      ...cur.value,
      leaderEpoch: epoch,
      partitionEpoch: cur.value.partitionEpoch + 1,
      truncation: { id, offset: offset.toString(), epoch, status: 'pending' },
    };
    const res = await region.run(
      `truncate ${topic}-${partition} at ${offset}`,
      () => region.client.if(key, 'Mod', '==', cur.modRevision.toString()).then(region.client.put(key).value(JSON.stringify(next))).commit(),
      signal === undefined ? {} : { signal },
    );
    if (res.succeeded) return epoch;
    // Changed meanwhile (an election, an ISR change, or our own write whose answer was lost): decide again.
    if (attempt >= 10) throw new MeridianError(ErrorCode.MetadataUnavailable, `cannot truncate ${topic}-${partition}: its state kept changing in etcd (10 attempts); ask again`, { retriable: true });
  }
}

/**
 * The leader's outcome of truncation `id` (status `done` or `refused`): CAS on the state this
 * broker last saw, which must still be the leader's (`expected` epochs) and still carry the
 * pending truncation. Returns whether it was written; a refusal by etcd is retried by the
 * leader at its next check.
 */
export async function settleTruncation(
  deps: { region: EtcdRegion; source: EtcdPartitionStateSource },
  topic: string,
  partition: number,
  expected: IsrExpectation,
  id: string,
  status: 'done' | 'refused',
  reason?: string,
): Promise<boolean> {
  const seen = deps.source.versioned(topic, partition);
  const t = seen?.value.truncation;
  if (seen === undefined || t === undefined || t.id !== id || t.status !== 'pending') return false;
  if (seen.value.leaderEpoch !== expected.leaderEpoch || seen.value.partitionEpoch !== expected.partitionEpoch) return false;
  const { region } = deps;
  const key = region.keys.partition(topic, partition);
  const next: PartitionState = { ...seen.value, partitionEpoch: seen.value.partitionEpoch + 1, truncation: { ...t, status, ...(reason === undefined ? {} : { reason }) } };
  const res = await region.run(`settle the truncation of ${topic}-${partition}`, () =>
    region.client.if(key, 'Mod', '==', seen.modRevision.toString()).then(region.client.put(key).value(JSON.stringify(next))).commit(),
  );
  if (res.succeeded) region.logger?.info({ topic, partition, offset: t.offset, leaderEpoch: seen.value.leaderEpoch, status, reason, id }, 'region-wide truncation settled');
  return res.succeeded;
}

function named(topic: string, partition: number, s: PartitionState | undefined): NamedPartitionState | undefined {
  return s === undefined ? undefined : { ...s, topic, partition };
}
