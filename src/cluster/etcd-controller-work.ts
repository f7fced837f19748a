/**
 * What the region's controller does while elected (etcd-controller.ts holds the election
 * and the fenced writes): it mirrors the live brokers and every partition state, and runs
 * reconcile passes, one at a time, on takeover (over every partition: a broker may have
 * died while no controller ran), on each broker leaving or joining, and on each partition
 * change. A pass decides with assignment.ts (`reconcilePartition`, then `preferredLeader`)
 * and writes in fenced transactions of at most maxTxnOps - 1 partitions, each a CAS on the
 * partition's mod revision: a CAS lost to a leader's ISR change re-reads and decides again.
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

export class ControllerWork {
  readonly members: MembersView;
  readonly partitions = new Map<string, Versioned<PartitionState>>();
  readonly #region: EtcdRegion;
  readonly #controller: Controller;
  readonly #options: Required<ControllerOptions>;
  readonly #report: (err: Error) => void;
  #watch: PrefixWatch<PartitionState> | undefined;
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
    // Takeover: the state may be stale (a broker died while no controller ran). Not awaited:
    // while etcd is down the pass retries, and the campaign must go on watching its key.
    void this.requestPass(true).catch(() => undefined);
  }

  close(): void {
    this.#closed = true;
    this.#watch?.close();
    this.members.close();
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
    for (const key of keys) {
      const cur = this.partitions.get(key);
      if (cur === undefined) continue;
      const to = reconcilePartition(cur.value, alive, this.#options.uncleanLeaderElection) ?? (this.#options.preferredLeaderElection ? preferredLeader(cur.value, alive) : null);
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
    if (changed > 0) this.#controller.emit('reconciled', changed);
    return changed;
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
