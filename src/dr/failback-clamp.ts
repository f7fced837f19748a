/**
 * Which group commits a failback on a region cluster makes stale, and where they resume
 * (pure: `failbackCutsOf`, `staleCommitCut`), and `FailbackClamp`, which applies that on one
 * broker's group coordinator (built by disaster-recovery.ts on a region cluster).
 *
 * A failback cuts each partition of a DR topic at its cut; the new primary's records then
 * land at the cut and past it. A commit past a cut made on the old history points into the
 * discarded tail: left alone, the group would resume past the new primary's first records
 * and skip them. A commit past a cut made on the new history (after the new primary's
 * records replicated in) is legitimate and must stay.
 *
 * The region-wide entry of the topic (cluster/dr-sync.ts) carries what tells them apart:
 * - `failing-back`: the plan's cuts. The tail goes away: every commit past a cut is stale.
 * - `following` written by a failback: the cuts, the leader epoch each cut left its
 *   partition at (`ClusterNode.truncatePartition` cuts through an epoch bump, so every
 *   record written past the cut afterwards is stamped with that epoch or a later one) and
 *   `completedAt`, when the cuts were done (before `following` was written). A commit past
 *   the cut is stale when its committed leader epoch (KIP-320, OffsetCommit v6+) is older
 *   than the cut's epoch; a client that sends none (-1) is judged by the commit's time at
 *   its coordinator: at or before `completedAt` (nothing past a cut existed until then,
 *   since producers and replication were refused while failing back).
 *
 * A clamped commit sits at the cut, not past it: applying the rule again changes nothing.
 */
import type { Logger } from 'pino';
import type { GroupCoordinator } from '../broker/groups/group-coordinator.js';
import type { CommittedOffset } from '../broker/groups/offset-store.js';
import type { TopicDrEntry } from './dr-state.js';

/** What a `following` entry written by a failback keeps of it (failback.ts `follow`). */
export interface FailbackCuts {
  readonly sideTopic: string;
  /** Per partition (its number as a string), the offset it was cut at. */
  readonly cuts: Record<string, string>;
  /** Per partition, the leader epoch the region-wide cut left it at (absent: single broker or unknown). */
  readonly leaderEpochs?: Record<string, number>;
  /** When every cut was done (ms, the failing-back broker's clock); absent: still failing back. */
  readonly completedAt?: number;
}

/** The failback cuts `entry` holds: a failback under way, or the `following` one wrote; else undefined. */
export function failbackCutsOf(entry: TopicDrEntry | undefined): FailbackCuts | undefined {
  if (entry?.phase !== 'failing-back' && entry?.phase !== 'following') return undefined;
  const f = entry.failback as Partial<FailbackCuts> | undefined;
  if (f === undefined || typeof f.cuts !== 'object' || f.cuts === null) return undefined;
  // A `following` entry without completedAt (written by an older version) gives no way to
  // tell a later commit from a stale one: nothing is clamped by it.
  if (entry.phase === 'following' && typeof f.completedAt !== 'number') return undefined;
  return entry.phase === 'failing-back' ? { sideTopic: f.sideTopic ?? '', cuts: f.cuts } : (f as FailbackCuts);
}

/** Where `c`, a commit for `partition`, must resume after the failback `f`: its cut when `c` is stale, else undefined. */
export function staleCommitCut(c: Pick<CommittedOffset, 'offset' | 'leaderEpoch' | 'commitTimestamp'>, partition: number, f: FailbackCuts): bigint | undefined {
  const raw = f.cuts[String(partition)];
  if (raw === undefined) return undefined;
  const cut = BigInt(raw);
  if (c.offset <= cut) return undefined;
  if (f.completedAt === undefined) return cut; // still failing back: the tail is being discarded
  const epoch = f.leaderEpochs?.[String(partition)];
  if (c.leaderEpoch >= 0 && epoch !== undefined) return c.leaderEpoch < epoch ? cut : undefined;
  return c.commitTimestamp <= f.completedAt ? cut : undefined;
}

export interface FailbackClampOptions {
  readonly groups: GroupCoordinator;
  /** The topic's DR entry as this broker holds it now (the region's, cluster/dr-sync.ts). */
  readonly entryOf: (topic: string) => TopicDrEntry | undefined;
  /** Every topic's DR entry held now. */
  readonly entries: () => ReadonlyArray<readonly [string, TopicDrEntry]>;
  readonly logger: Logger;
}

/**
 * The failback clamp on one broker's coordinator. Nothing depends on seeing a transition
 * live: the rule is read from the entry held now, so an offsets partition whose leadership
 * moves, a watch that reloaded, or a commit that lands late are all judged the same way.
 *
 * - Answers: OffsetFetch (and `committed`) answer a stale commit at its cut from the moment
 *   this broker holds the entry (`failing-back` or the `following` a failback wrote), before
 *   any rewrite is replicated, and whichever commit arrives later.
 * - Rewrites: the stale commits of the groups coordinated here are committed again at the
 *   cut (into `__meridian_offsets`, so a later entry without the cuts, e.g. the next
 *   promote, cannot bring them back) when the `following` entry is applied here and each
 *   time an offsets partition finishes loading here. One rewrite at a time; idempotent.
 *
 * Lifecycle: `close()` detaches from the coordinator (idempotent).
 */
export class FailbackClamp {
  readonly #o: FailbackClampOptions;
  readonly #off: () => void;
  #chain: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(o: FailbackClampOptions) {
    this.#o = o;
    o.groups.setCommitView((topic, partition, c) => {
      const f = failbackCutsOf(o.entryOf(topic));
      const cut = f === undefined ? undefined : staleCommitCut(c, partition, f);
      return cut === undefined ? c : { ...c, offset: cut, leaderEpoch: -1 };
    });
    this.#off = o.groups.onOffsetsLoaded(() => void this.rewriteAll());
  }

  /** The topic's entry changed here: a completed failback's stale commits are rewritten. */
  entryChanged(topic: string): Promise<number> {
    const f = failbackCutsOf(this.#o.entryOf(topic));
    return f?.completedAt === undefined ? Promise.resolve(0) : this.#rewrite(topic);
  }

  /** Every topic with a completed failback: its stale commits rewritten (an offsets partition was loaded). */
  async rewriteAll(): Promise<number> {
    let n = 0;
    for (const [topic, entry] of this.#o.entries()) if (failbackCutsOf(entry)?.completedAt !== undefined) n += await this.#rewrite(topic);
    return n;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#off();
    this.#o.groups.setCommitView(undefined);
  }

  /** Rewrites `topic`'s stale commits held here at their cuts, after any rewrite under way; resolves with how many moved. */
  #rewrite(topic: string): Promise<number> {
    const run = this.#chain.then(async () => {
      // Read again in its turn: the entry may have changed while queued.
      const f = failbackCutsOf(this.#o.entryOf(topic));
      if (this.#closed || f?.completedAt === undefined) return 0;
      let moved = 0;
      for (const [partition, cut] of Object.entries(f.cuts)) {
        const p = Number(partition);
        moved += await this.#o.groups.clampOffsets(topic, p, BigInt(cut), (c) => staleCommitCut(c, p, f) !== undefined);
      }
      if (moved > 0) this.#o.logger.info({ topic, moved, cuts: f.cuts }, 'failback: group commits made on the discarded history moved down to the cuts on this coordinator');
      return moved;
    }).catch((err: unknown) => {
      // Answers stay clamped meanwhile (the commit view); the next load or entry change tries again.
      this.#o.logger.error({ err, topic }, "could not rewrite the group commits past a failback's cuts on this coordinator; OffsetFetch still answers them at the cuts");
      return 0;
    });
    this.#chain = run;
    return run;
  }
}
