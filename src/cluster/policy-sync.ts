/**
 * The region's runtime replication policies in a region cluster live in etcd
 * (`config/policies`), so every broker of the region replicates by the same set: a PUT or
 * DELETE of /v1/replication/policies on any broker writes or deletes the key, and every
 * broker applies what the key holds through its PolicyStore (which keeps its local file as
 * a copy and hands the set to the replicator). Without the key the config file's policies
 * are in force, as on a single broker after a revert.
 *
 * Start-up: `open()` reads the key before the replicator exists and applies it to the
 * store alone, so the replicator starts with the region's set (never a stale local one);
 * `watch(target)` then follows the key from the revision after that read. A set this
 * broker cannot validate (its registry lacks a region the set names) is logged and the
 * broker keeps what it had: the operator fixes the broker's registry.
 *
 * The asking broker answers once its own store applied the change (its watch delivered
 * it), so a GET on it right after shows the new set.
 */
import type { Logger } from 'pino';
import { ErrorCode, MeridianError } from '../errors.js';
import type { PolicySet, PolicyStore, PolicyTarget } from '../replication/policy-store.js';
import { AppliedWaiters } from './applied-waiters.js';
import { rev, type EtcdRegion } from './etcd-region.js';
import { PrefixWatch } from './etcd-watch.js';
import type { Versioned } from './partition-state.js';

interface SharedPolicies {
  readonly policies: unknown[];
  readonly updatedAt: string;
  /** Node id of the broker that wrote it. */
  readonly by: number;
}

function parseShared(key: string, raw: Buffer): SharedPolicies {
  const v = JSON.parse(raw.toString()) as SharedPolicies;
  if (!Array.isArray(v.policies)) throw new MeridianError(ErrorCode.MetadataUnavailable, `${key}: expected { policies: [...] }`);
  return v;
}

const NO_TARGET: PolicyTarget = { setPolicies: () => [] };

export class ClusterPolicies {
  readonly #region: EtcdRegion;
  readonly #store: PolicyStore;
  readonly #nodeId: number;
  readonly #log: Logger | undefined;
  #target: PolicyTarget = NO_TARGET;
  #watch: PrefixWatch<SharedPolicies> | undefined;
  /** The etcd revision whose state of the key this broker has applied. */
  #applied: bigint;
  readonly #waiters = new AppliedWaiters();

  private constructor(region: EtcdRegion, store: PolicyStore, nodeId: number, logger: Logger | undefined, revision: bigint) {
    this.#region = region;
    this.#store = store;
    this.#nodeId = nodeId;
    this.#log = logger;
    this.#applied = revision;
  }

  /** Reads the region's set and applies it to `store` (no replicator yet). */
  static async open(region: EtcdRegion, store: PolicyStore, nodeId: number, logger?: Logger): Promise<ClusterPolicies> {
    const { entries, revision } = await region.getPrefix(region.keys.policies, parseShared);
    const c = new ClusterPolicies(region, store, nodeId, logger, revision);
    c.#apply(entries.get(region.keys.policies), revision);
    return c;
  }

  /** Follows the key from the revision after `open`'s read, applying each change to `target` too. */
  watch(target: PolicyTarget): void {
    this.#target = target;
    const key = this.#region.keys.policies;
    this.#watch = new PrefixWatch(this.#region, key, this.#applied + 1n, parseShared, {
      put: (k, v) => {
        if (k === key) this.#apply(v, v.modRevision);
      },
      delete: (k, at) => {
        if (k === key) this.#apply(undefined, at);
      },
      reset: (all, at) => this.#apply(all.get(key), at),
      error: (err) => this.#log?.error({ err }, 'replication policies watch'),
    });
    this.#watch.start();
  }

  close(): void {
    this.#watch?.close();
    this.#waiters.close();
  }

  /** PUT: validates, writes the region's set, resolves with this broker's set once applied. */
  async put(policies: unknown): Promise<PolicySet> {
    this.#store.validate(policies);
    const shared: SharedPolicies = { policies: policies as unknown[], updatedAt: new Date().toISOString(), by: this.#nodeId };
    const { client, keys } = this.#region;
    const res = await this.#region.run('write the region\'s replication policies', () => client.put(keys.policies).value(JSON.stringify(shared)).exec());
    await this.#waitApplied(rev(res.header.revision));
    return this.#store.current;
  }

  /** DELETE: back to every broker's config file policies; resolves once applied here. */
  async revert(): Promise<PolicySet> {
    const { client, keys } = this.#region;
    const res = await this.#region.run('delete the region\'s replication policies', () => client.delete().key(keys.policies).exec());
    // Nothing to delete (no runtime set): no new revision, no watch event; already reverted.
    if (res.deleted === '0') {
      this.#apply(undefined, this.#applied);
      return this.#store.current;
    }
    await this.#waitApplied(rev(res.header.revision));
    return this.#store.current;
  }

  #apply(v: Versioned<SharedPolicies> | undefined, revision: bigint): void {
    try {
      if (v === undefined) {
        if (this.#store.current.source === 'runtime') this.#store.revert(this.#target);
      } else {
        this.#store.replace(v.value.policies, this.#target);
      }
    } catch (err) {
      this.#log?.error({ err, writtenBy: v?.value.by }, 'the region\'s replication policies do not validate on this broker (its replication.regions lacks a region they name?); it keeps its current policies');
    }
    if (revision > this.#applied) this.#applied = revision;
    this.#waiters.wake();
  }

  #waitApplied(revision: bigint): Promise<void> {
    return this.#waiters.until(() => this.#applied >= revision, `the policies were written to etcd (revision ${revision}) but this broker's watch did not deliver them`);
  }
}
