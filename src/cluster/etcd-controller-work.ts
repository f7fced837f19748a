/**
 * What the region's controller does while elected (etcd-controller.ts holds the election
 * and the fenced writes): it mirrors the live brokers and every partition state, and runs
 * reconcile passes, one at a time, on takeover (over every partition: a broker may have
 * died while no controller ran), on each broker leaving or joining, and on each partition
 * change. A pass decides with assignment.ts (`reconcilePartition`, then `preferredLeader`)
 * and writes in fenced transactions of at most maxTxnOps - 1 partitions, each a CAS on the
 * partition's mod revision: a CAS lost to a leader's ISR change re-reads and decides again.
 *
 * Partition reassignments (reassign-plan.ts): the requests under `reassignments/` are watched
 * too; a partition with one takes its next reassignment step in a pass (after any election
 * its state needs), each step one fenced transaction guarded on the partition's and the
 * request's mod revisions, the last one deleting the request. A controller elected mid-way
 * continues from the state it reads.
 *
 * Lifecycle: constructed and `start()`ed by the Controller when elected, `close()`d when
 * it is deposed.
 */
import { ErrorCode, MeridianError } from '../errors.js';
import { preferredLeader, reconcilePartition } from './assignment.js';
import type { Controller, ControllerOptions } from './etcd-controller.js';
import { MembersView } from './etcd-membership.js';
import { rev, sleep, type EtcdRegion } from './etcd-region.js';
import { PrefixWatch } from './etcd-watch.js';
import { parseBrokerInfo, parsePartitionState, type PartitionState, type Versioned } from './partition-state.js';
import { parseReassignment, reassignStep, type Reassignment } from './reassign-plan.js';
import { carryTruncation } from './partition-truncate.js';

export class ControllerWork {
  readonly members: MembersView;
  readonly partitions = new Map<string, Versioned<PartitionState>>();
  readonly #region: EtcdRegion;
  readonly #controller: Controller;
  readonly #options: Required<ControllerOptions>;
  readonly #report: (err: Error) => void;
  #watch: PrefixWatch<PartitionState> | undefined;
  /** Reassignments in progress, by partition key (`partitions/<topic>/<p>`). */
  readonly reassignments = new Map<string, Versioned<Reassignment>>();
  #reassignWatch: PrefixWatch<Reassignment> | undefined;
  #closed = false;
  /** Keys to look at in the next pass; `all` after a membership change. */
  #dirty = new Set<string>();
  #all = false;
  #running: Promise<number> | undefined;
  #again = false;

  constructor(region: EtcdRegion, controller: Controller, options: Required<ControllerOptions>, report: (err: Error) => void) {
    this.#region = region;
    this.#controller = controller;
    this.#options = options;
    this.#report = report;
    this.members = new MembersView(region);
  }

  async start(signal: AbortSignal): Promise<void> {
    const opts = { signal, timeoutMs: Infinity };
    await this.members.start(opts);
    this.members.on('joined', () => this.requestPass(true).catch(() => undefined));
    this.members.on('left', () => this.requestPass(true).catch(() => undefined));
    const { keys } = this.#region;
    const { entries, revision } = await this.#region.getPrefix(keys.partitionsPrefix, parsePartitionState, opts);
    for (const [k, v] of entries) this.partitions.set(k, v);
    this.#watch = new PrefixWatch(this.#region, keys.partitionsPrefix, revision + 1n, parsePartitionState, {
      put: (k, v) => {
        const had = this.partitions.get(k);
        if (had === undefined || had.modRevision < v.modRevision) this.partitions.set(k, v);
        this.#dirty.add(k);
        void this.requestPass(false).catch(() => undefined);
      },
      delete: (k) => {
        this.partitions.delete(k);
      },
      reset: (all) => {
        this.partitions.clear();
        for (const [k, v] of all) this.partitions.set(k, v);
        void this.requestPass(true).catch(() => undefined);
      },
      error: (err) => this.#report(err),
    });
    this.#watch.start();
    await this.#watchReassignments(opts);
    // Takeover: the state may be stale (a broker died while no controller ran). Not awaited:
    // while etcd is down the pass retries, and the campaign must go on watching its key.
    void this.requestPass(true).catch(() => undefined);
  }

  close(): void {
    this.#closed = true;
    this.#watch?.close();
    this.#reassignWatch?.close();
    this.members.close();
  }

  async #watchReassignments(opts: { signal: AbortSignal; timeoutMs: number }): Promise<void> {
    const { keys } = this.#region;
    const partitionKey = (key: string): string | undefined => {
      const tp = keys.reassignmentOf(key);
      return tp === undefined ? undefined : keys.partition(tp.topic, tp.partition);
    };
    const set = (key: string, v: Versioned<Reassignment>) => {
      const pk = partitionKey(key);
      if (pk === undefined) return;
      this.reassignments.set(pk, v);
      this.#dirty.add(pk);
    };
    const { entries, revision } = await this.#region.getPrefix(keys.reassignmentsPrefix, parseReassignment, opts);
    for (const [k, v] of entries) set(k, v);
    this.#reassignWatch = new PrefixWatch(this.#region, keys.reassignmentsPrefix, revision + 1n, parseReassignment, {
      put: (k, v) => {
        set(k, v);
        void this.requestPass(false).catch(() => undefined);
      },
      delete: (k) => {
        const pk = partitionKey(k);
        if (pk !== undefined) this.reassignments.delete(pk);
      },
      reset: (all) => {
        this.reassignments.clear();
        for (const [k, v] of all) set(k, v);
        void this.requestPass(true).catch(() => undefined);
      },
      error: (err) => this.#report(err),
    });
    this.#reassignWatch.start();
  }

  /** Schedules a pass (coalescing requests made while one runs); resolves when a pass that covers it ends. */
  requestPass(all: boolean): Promise<number> {
    if (all) this.#all = true;
    this.#again = true;
    if (this.#running === undefined) {
      this.#running = this.#passes().finally(() => {
        this.#running = undefined;
        // A request that came between the last check and here.
        if (this.#again && !this.#closed) void this.requestPass(false).catch(() => undefined);
      });
    }
    return this.#running;
  }

  async #passes(): Promise<number> {
    let total = 0;
    while (this.#again && !this.#closed) {
      this.#again = false;
      try {
        total += await this.#pass();
      } catch (err) {
        if (this.#closed) return total;
        if (err instanceof MeridianError && (err.code === ErrorCode.NotController || err.code === ErrorCode.Aborted)) return total;
        this.#report(err as Error);
        this.#all = true;
        this.#again = true;
        await sleep(200, this.#region.closingSignal).catch(() => undefined);
      }
    }
    return total;
  }

  async #pass(): Promise<number> {
    const keys = this.#all ? [...this.partitions.keys()] : [...this.#dirty];
    this.#all = false;
    this.#dirty = new Set();
    if (keys.length === 0) return 0;
    // The live set is read at each pass, not taken from the watched view: a decision is made
    // on registrations at least as new as the partition states it looks at.
    const registered = await this.#region.getPrefix(this.#region.keys.brokersPrefix, parseBrokerInfo);
    const alive = new Set([...registered.entries.values()].map((v) => v.value.nodeId));
    const changes: Array<{ key: string; from: Versioned<PartitionState>; to: PartitionState }> = [];
    const moves: Array<{ key: string; from: Versioned<PartitionState>; request: Versioned<Reassignment>; to: PartitionState | null; complete: boolean }> = [];
    for (const key of keys) {
      const cur = this.partitions.get(key);
      if (cur === undefined) continue;
      let to = reconcilePartition(cur.value, alive, this.#options.uncleanLeaderElection);
      // A reassignment steps only from a state that needs no election first (the next pass
      // sees the elected state).
      const request = this.reassignments.get(key);
      if (to === null && request !== undefined) {
        const step = reassignStep(cur.value, request.value, alive);
        if (step.kind !== 'wait') {
          // reassign-plan builds the completed state whole: a region-wide truncation is carried (partition-truncate.ts).
          moves.push({ key, from: cur, request, to: step.kind === 'done' ? null : carryTruncation(cur.value, step.state), complete: step.kind !== 'add' });
          continue;
        }
      }
      to ??= this.#options.preferredLeaderElection ? preferredLeader(cur.value, alive) : null;
      if (to !== null) changes.push({ key, from: cur, to });
    }
    let changed = 0;
    const perTxn = this.#options.maxTxnOps - 1;
    const { client } = this.#region;
    for (let i = 0; i < changes.length && !this.#closed; i += perTxn) {
      const batch = changes.slice(i, i + perTxn);
      const res = await this.#controller.fencedTxn(
        `leader election for ${batch.length} partition${batch.length === 1 ? '' : 's'}`,
        batch.map((c) => ({ key: c.key, target: 'Mod' as const, revision: c.from.modRevision })),
        batch.map((c) => client.put(c.key).value(JSON.stringify(c.to))),
        batch.map((c) => c.key),
      );
      if (res.succeeded) {
        const at = rev(res.header.revision);
        for (const c of batch) {
          const had = this.partitions.get(c.key);
          if (had === undefined || had.modRevision < at) this.partitions.set(c.key, { value: c.to, modRevision: at, createRevision: c.from.createRevision });
          this.#region.logger?.info({ partition: c.key.slice(this.#region.keys.partitionsPrefix.length), leader: c.to.leader, leaderEpoch: c.to.leaderEpoch, isr: c.to.isr }, 'partition state changed by the controller');
        }
        changed += batch.length;
      } else {
        // A leader changed an ISR meanwhile: take what etcd holds and decide again.
        res.responses.slice(1).forEach((r, j) => {
          const kv = r.response_range?.kvs[0];
          const key = batch[j]!.key;
          if (kv === undefined) this.partitions.delete(key);
          else this.partitions.set(key, { value: parsePartitionState(key, kv.value), modRevision: rev(kv.mod_revision), createRevision: rev(kv.create_revision) });
          this.#dirty.add(key);
        });
        this.#again = true;
      }
    }
    for (const m of moves) {
      if (this.#closed) break;
      if (await this.#reassign(m)) changed++;
    }
    if (changed > 0) this.#controller.emit('reconciled', changed);
    return changed;
  }

  /**
   * One reassignment step: the partition's new state (none when it is already the target) and,
   * when it completes, the request's deletion, in one fenced transaction guarded on both keys'
   * mod revisions. A lost race re-reads both and decides again in the next pass.
   */
  async #reassign(m: { key: string; from: Versioned<PartitionState>; request: Versioned<Reassignment>; to: PartitionState | null; complete: boolean }): Promise<boolean> {
    const { client, keys } = this.#region;
    const tp = keys.partitionOf(m.key)!;
    const requestKey = keys.reassignment(tp.topic, tp.partition);
    const ops = [...(m.to === null ? [] : [client.put(m.key).value(JSON.stringify(m.to))]), ...(m.complete ? [client.delete().key(requestKey)] : [])];
    const res = await this.#controller.fencedTxn(
      `reassign ${tp.topic}-${tp.partition} to [${m.request.value.target.join(', ')}]: ${m.to === null ? 'done' : m.complete ? 'complete' : 'add replicas'}`,
      [
        { key: m.key, target: 'Mod', revision: m.from.modRevision },
        { key: requestKey, target: 'Mod', revision: m.request.modRevision },
      ],
      ops,
      [m.key, requestKey],
    );
    if (!res.succeeded) {
      const [p, r] = [res.responses[1]?.response_range?.kvs[0], res.responses[2]?.response_range?.kvs[0]];
      if (p === undefined) this.partitions.delete(m.key);
      else this.partitions.set(m.key, { value: parsePartitionState(m.key, p.value), modRevision: rev(p.mod_revision), createRevision: rev(p.create_revision) });
      if (r === undefined) this.reassignments.delete(m.key);
      else this.reassignments.set(m.key, { value: parseReassignment(requestKey, r.value), modRevision: rev(r.mod_revision), createRevision: rev(r.create_revision) });
      this.#dirty.add(m.key);
      this.#again = true;
      return false;
    }
    const at = rev(res.header.revision);
    if (m.to !== null) {
      const had = this.partitions.get(m.key);
      if (had === undefined || had.modRevision < at) this.partitions.set(m.key, { value: m.to, modRevision: at, createRevision: m.from.createRevision });
    }
    if (m.complete) this.reassignments.delete(m.key);
    this.#region.logger?.info(
      { partition: `${tp.topic}-${tp.partition}`, target: m.request.value.target, replicas: m.to?.replicas, leader: m.to?.leader, leaderEpoch: m.to?.leaderEpoch, isr: m.to?.isr },
      m.complete ? 'partition reassignment completed' : 'partition reassignment: target replicas added, waiting for them to join the ISR',
    );
    return m.to !== null;
  }
}

/** Resolves when `key` does not exist (now or later); rejects ABORTED on `signal`. */
export async function waitDeleted(region: EtcdRegion, key: string, signal: AbortSignal): Promise<void> {
  const { entries, revision } = await region.getPrefix(key, (_k, raw) => raw, { signal, timeoutMs: Infinity });
  if (!entries.has(key)) return;
  await new Promise<void>((resolve, reject) => {
    const finish = (err?: Error) => {
      watch.close();
      signal.removeEventListener('abort', onAbort);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onAbort = () => finish(new MeridianError(ErrorCode.Aborted, `waiting for ${key} to go: aborted`));
    const watch = new PrefixWatch<Buffer>(region, key, revision + 1n, (_k, raw) => raw, {
      put: () => undefined,
      delete: (k) => (k === key ? finish() : undefined),
      reset: (all) => (all.has(key) ? undefined : finish()),
    });
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) return onAbort();
    watch.start();
  });
}
