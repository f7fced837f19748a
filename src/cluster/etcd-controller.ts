/**
 * The region's controller: elected in etcd, it creates topics and moves partition
 * leadership when brokers come and go. Every broker runs one `Controller`; one of them
 * wins the election and acts, the others only observe who the controller is.
 *
 * Election. etcd's election protocol (the one of etcd's Go `concurrency.Election`, and of
 * etcd3's `election()`), run on the broker's own membership lease: each broker puts
 * `controller/<leaseId>` on its lease; the candidate with the lowest create revision leads
 * once every older candidate is gone. etcd3's `Campaign` grants a lease of its own, which
 * would let a broker stay controller after its registration expired (or the reverse);
 * with one lease, leaving the region and losing the controllership are one event.
 * The create revision of the winner's key is the **controller epoch**.
 *
 * Fencing. Every controller write is one transaction comparing the controller's key's
 * create revision (the key exists, so its lease is alive and no successor can have been
 * elected) and the mod revision of each key it rewrites. A deposed controller's write
 * fails with NOT_CONTROLLER, always; a write that lost a race with a leader's ISR change
 * is re-read and decided again.
 *
 * Reactions (one pass at a time, `reconcile`): on takeover over every partition (a broker
 * may have died while no controller ran), then on each broker leaving or joining, and on
 * each partition change: `reconcilePartition` (assignment.ts) elects a live in-sync leader
 * and drops dead brokers from the ISR, and `preferredLeader` gives leadership back to the
 * first replica once it is alive and in the ISR again.
 *
 * Topics. `createTopic` writes `partitions/<topic>/<p>` first, in transactions of at most
 * `maxTxnOps` operations (etcd's --max-txn-ops, 128 by default), and `topics/<name>` last:
 * a topic exists once its record does, with all its partitions. A creation cut short
 * (controller died) leaves partitions without a record; the next creation of the name
 * deletes them first (a transaction of its own: etcd refuses a delete and a put of the
 * same key in one).
 *
 * The reactions run in ControllerWork (etcd-controller-work.ts) while elected.
 *
 * Lifecycle: `start()` (campaigns whenever the membership is registered), `close()`.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IOperation, IRequestOp, ITxnResponse } from 'etcd3';
import { ErrorCode, MeridianError } from '../errors.js';
import { assignReplicas, initialState, resolveReplicationFactor, validateAssignment } from './assignment.js';
import { describe, rev, sleep, type EtcdRegion, type OpOptions } from './etcd-region.js';
import type { Membership } from './etcd-membership.js';
import { ControllerWork, waitDeleted } from './etcd-controller-work.js';
import { PrefixWatch } from './etcd-watch.js';
import { parseBrokerInfo, parseTopicRecord, type BrokerInfo, type PartitionState, type TopicRecord, type Versioned } from './partition-state.js';

export interface ControllerOptions {
  /** cluster.uncleanLeaderElection: elect an out-of-sync replica rather than stay offline. */
  readonly uncleanLeaderElection: boolean;
  /** cluster.defaultReplicationFactor; null: min(3, live brokers). */
  readonly defaultReplicationFactor: number | null;
  /** Give leadership back to the preferred replica once it is in the ISR again (default true). */
  readonly preferredLeaderElection?: boolean;
  /** Operations per etcd transaction (etcd's --max-txn-ops, default 128). */
  readonly maxTxnOps?: number;
}

export interface CreateTopicSpec {
  readonly partitions: number;
  /** null or -1: the default. Ignored when `assignment` is given. */
  readonly replicationFactor?: number | null;
  /** Explicit replicas per partition (CreateTopics' replica_assignment). */
  readonly assignment?: ReadonlyArray<readonly number[]>;
  readonly configs?: Readonly<Record<string, string>>;
  /** Default: a new random UUID. */
  readonly topicId?: string;
}

export interface CreatedTopic {
  readonly name: string;
  readonly record: TopicRecord;
  readonly states: readonly PartitionState[];
  /** Revision of the write of the topic record. */
  readonly revision: bigint;
}

export interface ControllerEvents {
  /** This broker became the controller at `epoch`. */
  elected: [bigint];
  /** This broker is no longer the controller. */
  deposed: [];
  /** The controller of the region changed (observed by every broker); -1: none. */
  controllerChanged: [number];
  /** A reconcile pass changed `count` partitions. */
  reconciled: [number];
  error: [Error];
}

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

function parseCandidate(key: string, raw: Buffer): number {
  try {
    const v = JSON.parse(raw.toString('utf8')) as { nodeId?: unknown };
    if (typeof v.nodeId === 'number' && Number.isInteger(v.nodeId)) return v.nodeId;
  } catch {
    // fall through
  }
  throw new MeridianError(ErrorCode.CorruptMetadata, `etcd key ${key} is not a controller candidate ({"nodeId": N})`);
}

export class Controller extends EventEmitter<ControllerEvents> {
  readonly #region: EtcdRegion;
  readonly #membership: Membership;
  readonly #options: Required<ControllerOptions>;
  #closed = false;
  #epoch = -1n;
  #active = false;
  #candidateKey: string | undefined;
  #campaign: AbortController | undefined;
  #loop: Promise<void> | undefined;
  // Observation of the election (every broker).
  readonly #candidates = new Map<string, { nodeId: number; createRevision: bigint }>();
  #observer: PrefixWatch<number> | undefined;
  #controllerId = -1;
  // The controller's own view, while elected.
  #work: ControllerWork | undefined;
  readonly #creating = new Set<string>();

  constructor(region: EtcdRegion, membership: Membership, options: ControllerOptions) {
    super();
    this.#region = region;
    this.#membership = membership;
    this.#options = { preferredLeaderElection: true, maxTxnOps: 128, ...options };
    if (this.#options.maxTxnOps < 3) throw new MeridianError(ErrorCode.BadConfig, 'maxTxnOps must be at least 3');
  }

  /**
   * Whether this broker is the controller, with its view of the brokers and partitions
   * loaded (as of the last etcd event it saw; its writes are fenced regardless).
   */
  isController(): boolean {
    return this.#active;
  }

  /** The controller epoch (create revision of its election key) while this broker is controller, else -1. */
  get epoch(): bigint {
    return this.#epoch;
  }

  /** The node id of the region's controller as observed, -1 when there is none. */
  controllerId(): number {
    // Elected, it knows before its watch of the election delivers its own key (Metadata
    // would name no controller meanwhile, and KafkaJS's CreateTopics fails on that).
    return this.#active ? this.#membership.nodeId : this.#controllerId;
  }

  /** Starts observing the election and campaigning (whenever the membership holds a lease). */
  async start(options: OpOptions = {}): Promise<void> {
    const { keys } = this.#region;
    const { entries, revision } = await this.#region.getPrefix(keys.controllerPrefix, parseCandidate, options);
    for (const [k, v] of entries) this.#candidates.set(k, { nodeId: v.value, createRevision: v.createRevision });
    this.#observed();
    this.#observer = new PrefixWatch(this.#region, keys.controllerPrefix, revision + 1n, parseCandidate, {
      put: (k, v) => {
        this.#candidates.set(k, { nodeId: v.value, createRevision: v.createRevision });
        this.#observed();
      },
      delete: (k) => {
        this.#candidates.delete(k);
        this.#observed();
      },
      reset: (all) => {
        this.#candidates.clear();
        for (const [k, v] of all) this.#candidates.set(k, { nodeId: v.value, createRevision: v.createRevision });
        this.#observed();
      },
      error: (err) => this.#report(err),
    });
    this.#observer.start();
    this.#loop = this.#campaignLoop();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#observer?.close();
    this.#campaign?.abort();
    await this.#loop;
  }

  /** Leaves the election (another broker takes over) without leaving the region. */
  async resign(): Promise<void> {
    const key = this.#candidateKey;
    this.#campaign?.abort();
    if (key !== undefined) await this.#region.run(`resign ${key}`, () => this.#region.client.delete().key(key).exec(), { timeoutMs: this.#region.callTimeoutMs * 2 }).catch(() => undefined);
  }

  // -------------------------------------------------------------------------------------
  // Election

  #observed(): void {
    let best: { nodeId: number; createRevision: bigint } | undefined;
    for (const c of this.#candidates.values()) if (best === undefined || c.createRevision < best.createRevision) best = c;
    const id = best?.nodeId ?? -1;
    if (id !== this.#controllerId) {
      this.#controllerId = id;
      this.emit('controllerChanged', id);
    }
  }

  async #campaignLoop(): Promise<void> {
    while (!this.#closed) {
      const leaseId = this.#membership.leaseId;
      if (leaseId === undefined || !this.#membership.isLeased()) {
        await this.#nextRegistration();
        continue;
      }
      const ac = new AbortController();
      this.#campaign = ac;
      const onLost = () => ac.abort();
      this.#membership.once('lost', onLost);
      try {
        const { client, keys } = this.#region;
        const key = keys.controllerCandidate(leaseId);
        this.#candidateKey = key;
        const value = JSON.stringify({ nodeId: this.#membership.nodeId });
        const opts = { signal: ac.signal, timeoutMs: Infinity };
        const res = await this.#region.run(
          'join the controller election',
          () => client.if(key, 'Create', '==', 0).then(client.put(key).value(value).lease(leaseId)).else(client.get(key)).commit(),
          opts,
        );
        const mine = res.succeeded ? rev(res.header.revision) : rev(res.responses[0]!.response_range.kvs[0]!.create_revision);
        await this.#waitElected(mine, ac.signal);
        this.#epoch = mine;
        this.#work = new ControllerWork(this.#region, this, this.#options, (err) => this.#report(err));
        await this.#work.start(ac.signal);
        this.#active = true;
        this.#region.logger?.info({ nodeId: this.#membership.nodeId, epoch: mine.toString() }, 'elected controller of the region');
        this.emit('elected', mine);
        await waitDeleted(this.#region, key, ac.signal);
      } catch (err) {
        if (!(err instanceof MeridianError && err.code === ErrorCode.Aborted)) this.#report(err as Error);
        if (!this.#closed && !ac.signal.aborted) await sleep(200, this.#region.closingSignal).catch(() => undefined);
      } finally {
        this.#membership.off('lost', onLost);
        this.#depose();
      }
    }
  }

  /** Waits until every candidate created before `mine` is gone. */
  async #waitElected(mine: bigint, signal: AbortSignal): Promise<void> {
    const { client, keys } = this.#region;
    for (;;) {
      const older = await this.#region.run(
        'read the controller election',
        () => client.getAll().prefix(keys.controllerPrefix).maxCreateRevision((mine - 1n).toString()).sort('Create', 'Descend').limit(1).exec(),
        { signal, timeoutMs: Infinity },
      );
      const kv = older.kvs[0];
      if (kv === undefined) return;
      await waitDeleted(this.#region, kv.key.toString(), signal);
    }
  }

  #nextRegistration(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearInterval(poll);
        this.#membership.off('registered', done);
        this.#membership.off('leased', done);
        this.#region.closingSignal.removeEventListener('abort', done);
        resolve();
      };
      // A poll as well: a close() of this controller must end the wait, and a registration
      // may have happened between the caller's check and these listeners.
      const poll = setInterval(() => (this.#closed || (this.#membership.leaseId !== undefined && this.#membership.isLeased()) ? done() : undefined), 100);
      this.#membership.once('registered', done);
      this.#membership.once('leased', done);
      this.#region.closingSignal.addEventListener('abort', done, { once: true });
    });
  }

  #depose(): void {
    this.#work?.close();
    this.#work = undefined;
    this.#candidateKey = undefined;
    this.#active = false;
    if (this.#epoch >= 0n) {
      this.#region.logger?.warn({ nodeId: this.#membership.nodeId, epoch: this.#epoch.toString() }, 'no longer the controller of the region');
      this.#epoch = -1n;
      this.emit('deposed');
    }
  }

  /** A fenced write found the election key gone or replaced: stop acting now. */
  fenceLost(): void {
    this.#campaign?.abort();
    this.#depose();
  }

  #report(err: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.#region.logger?.error({ error: describe(err) }, 'controller');
  }

  // -------------------------------------------------------------------------------------
  // Fenced writes

  /**
   * One controller transaction: succeeds only while this broker is the controller at its
   * epoch and every guarded key has the given revision (`Mod`, or `Create` 0 for "absent").
   * Returns the response (not succeeded: a guard failed; `else` reads follow the
   * controller key's read at index 0). Throws NOT_CONTROLLER when deposed.
   */
  async fencedTxn(
    what: string,
    guards: ReadonlyArray<{ key: string; target: 'Mod' | 'Create'; revision: bigint }>,
    ops: ReadonlyArray<IOperation | IRequestOp>,
    elseReads: readonly string[] = [],
    options: OpOptions = {},
  ): Promise<ITxnResponse> {
    const epoch = this.#epoch;
    const myKey = this.#candidateKey;
    if (epoch < 0n || myKey === undefined) throw new MeridianError(ErrorCode.NotController, `${what}: broker ${this.#membership.nodeId} is not the controller of region ${this.#region.region} (the controller is ${this.#controllerId})`);
    const { client } = this.#region;
    const res = await this.#region.run(
      what,
      () => {
        let txn = client.if(myKey, 'Create', '==', epoch.toString());
        for (const g of guards) txn = txn.and(g.key, g.target, '==', g.revision.toString());
        return txn
          .then(...ops)
          .else(client.get(myKey), ...elseReads.map((k) => client.get(k)))
          .commit();
      },
      options,
    );
    if (!res.succeeded) {
      const kv = res.responses[0]?.response_range?.kvs[0];
      if (kv === undefined || rev(kv.create_revision) !== epoch) {
        if (this.#epoch === epoch) this.fenceLost();
        throw new MeridianError(ErrorCode.NotController, `${what}: refused by etcd, broker ${this.#membership.nodeId} is no longer the controller (epoch ${epoch})`);
      }
    }
    return res;
  }

  // -------------------------------------------------------------------------------------
  // Topics

  /** Creates a topic and its partitions (controller only). TOPIC_EXISTS, INVALID_REPLICATION_FACTOR, INVALID_REPLICA_ASSIGNMENT. */
  async createTopic(name: string, spec: CreateTopicSpec, options: OpOptions = {}): Promise<CreatedTopic> {
    if (!TOPIC_NAME.test(name) || name === '.' || name === '..') throw new MeridianError(ErrorCode.InvalidTopic, `topic name ${JSON.stringify(name)} is not allowed: 1 to 249 of a-z A-Z 0-9 . _ -`);
    if (!this.isController()) throw new MeridianError(ErrorCode.NotController, `create topic ${name}: broker ${this.#membership.nodeId} is not the controller (the controller is ${this.#controllerId})`);
    if (this.#creating.has(name)) throw new MeridianError(ErrorCode.TopicExists, `topic ${name} is being created`);
    this.#creating.add(name);
    try {
      return await this.#createTopic(name, spec, options);
    } finally {
      this.#creating.delete(name);
    }
  }

  async #createTopic(name: string, spec: CreateTopicSpec, options: OpOptions): Promise<CreatedTopic> {
    const { client, keys } = this.#region;
    // Read, not the watched view: a broker that registered a moment ago counts.
    const members = new Map([...(await this.#region.getPrefix(keys.brokersPrefix, parseBrokerInfo, options)).entries.values()].map((v) => [v.value.nodeId, v.value]));
    let assignment: number[][];
    if (spec.assignment !== undefined) {
      validateAssignment(spec.assignment, new Set(members.keys()));
      assignment = spec.assignment.map((r) => [...r]);
    } else {
      if (!Number.isInteger(spec.partitions) || spec.partitions < 1) throw new MeridianError(ErrorCode.InvalidPartitions, `topic ${name}: ${spec.partitions} partitions; give at least 1`);
      const rf = resolveReplicationFactor(spec.replicationFactor ?? null, this.#options.defaultReplicationFactor, members.size);
      assignment = assignReplicas([...members.values()], spec.partitions, rf, randomInt(members.size));
    }
    const topicKey = keys.topic(name);
    const existing = await this.#region.getJson(topicKey, parseTopicRecord, options);
    if (existing !== undefined) throw new MeridianError(ErrorCode.TopicExists, `topic ${name} already exists`);
    const record: TopicRecord = {
      topicId: spec.topicId ?? randomUUID(),
      partitions: assignment.length,
      replicationFactor: assignment[0]!.length,
      configs: { ...(spec.configs ?? {}) },
    };
    const states = assignment.map((r) => initialState(r));
    const absent = { key: topicKey, target: 'Create' as const, revision: 0n };
    const exists = () => new MeridianError(ErrorCode.TopicExists, `topic ${name} already exists`);
    // First clear what a cut-short creation of the name left (etcd refuses a delete and a
    // put of the same key in one transaction), then the partitions in batches, then the record.
    // A reassignment requested for an earlier topic of the name (its deletion raced the
    // request) must not move the new topic's partitions.
    const cleared = await this.fencedTxn(`create topic ${name}: clear leftovers`, [absent], [client.delete().prefix(keys.partitionsOf(name)), client.delete().prefix(`${keys.reassignmentsPrefix}${name}/`)], [], options);
    if (!cleared.succeeded) throw exists();
    const perTxn = this.#options.maxTxnOps;
    for (let from = 0; from < states.length; from += perTxn) {
      const batch = states.slice(from, from + perTxn);
      const ops = batch.map((st, i) => client.put(keys.partition(name, from + i)).value(JSON.stringify(st)));
      const res = await this.fencedTxn(`create topic ${name}: partitions ${from}..${from + batch.length - 1}`, [absent], ops, [], options);
      if (!res.succeeded) throw exists();
    }
    const res = await this.fencedTxn(`create topic ${name}`, [absent], [client.put(topicKey).value(JSON.stringify(record))], [topicKey], options);
    if (!res.succeeded) {
      // Ours already (a retry after an answer etcd sent but we lost), or someone else's.
      const kv = res.responses[1]?.response_range?.kvs[0];
      if (kv === undefined || parseTopicRecord(topicKey, kv.value).topicId !== record.topicId) throw exists();
      return { name, record, states, revision: rev(kv.mod_revision) };
    }
    this.#region.logger?.info({ topic: name, partitions: record.partitions, replicationFactor: record.replicationFactor }, 'topic created');
    return { name, record, states, revision: rev(res.header.revision) };
  }

  // -------------------------------------------------------------------------------------
  // Leadership

  /** Runs a reconcile pass over every partition now (controller only); resolves with the partitions changed. */
  async reconcile(): Promise<number> {
    const work = this.#work;
    if (work === undefined) throw new MeridianError(ErrorCode.NotController, `broker ${this.#membership.nodeId} is not the controller`);
    return work.requestPass(true);
  }

  /** The live brokers as the controller sees them (controller only; empty otherwise). */
  liveBrokers(): ReadonlyMap<number, BrokerInfo> {
    return this.#work?.members.members() ?? new Map();
  }

  /** The controller's current view of a partition (controller only; for tests and the admin API). */
  partitionView(topic: string, partition: number): Versioned<PartitionState> | undefined {
    return this.#work?.partitions.get(this.#region.keys.partition(topic, partition));
  }
}
