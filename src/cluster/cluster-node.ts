/**
 * One broker's part in a region cluster (`cluster.etcd.endpoints` set): the composition of
 * the etcd layer for the broker (broker/broker.ts builds it; without endpoints nothing here
 * runs).
 *
 * Two phases, because a broker registers the address clients reach it at, which is known
 * only once its listener is bound:
 * - `ClusterNode.open` (before the Kafka listener): the etcd client, the live brokers
 *   (MembersView), the topics (TopicSync: load, open the local logs with etcd's ids, watch),
 *   the partition states (EtcdPartitionStateSource, the replica manager's source) and the
 *   producer id counter.
 * - `join(info)` (after the listener is bound): the lease and registration (Membership), the
 *   controller candidacy (Controller), and the topic creations other brokers forward here
 *   while this broker is the controller.
 *
 * Topic creation from any broker (`createTopic`): the controller creates it itself; another
 * broker puts a request key `requests/topics/<name>` on its own lease (so it goes if the
 * asker dies) that the controller watches and executes, deleting the key when the topic
 * record is written or rewriting it with the error. The asker waits for the topic to be
 * open locally (its record arrives through TopicSync's watch) or for the error. No
 * inter-broker RPC: etcd is the only channel, and a controller elected meanwhile executes
 * what is pending when it takes over.
 *
 * Shutdown (`close`, after the replica manager stopped its fetchers): the controller
 * resigns, the watches stop, the lease is revoked last (the broker leaves at once).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Logger } from 'pino';
import type { BrokerConfig, LinkSecurityConfig } from '../config/schema.js';
import { ErrorCode, MeridianError } from '../errors.js';
import type { TopicManager, TopicConfig, TopicInfo } from '../storage/topic-manager.js';
import { EtcdProducerIds } from './cluster-producer-ids.js';
import { ContactPeers, ledKey, type ContactPeersOptions } from './etcd-contact.js';
import { Controller, type CreateTopicSpec } from './etcd-controller.js';
import { Membership, MembersView } from './etcd-membership.js';
import type { ClusterPolicies } from './policy-sync.js';
import type { ClusterSecurity } from './security-sync.js';
import type { ClusterDrState } from './dr-sync.js';
import { describe, EtcdRegion, type EtcdStatus } from './etcd-region.js';
import { EtcdPartitionStateSource } from './etcd-state-source.js';
import { TopicStore } from './etcd-topics.js';
import { PrefixWatch } from './etcd-watch.js';
import type { BrokerInfo, TopicRecord } from './partition-state.js';
import type { NamedPartitionState } from './partition-state-source.js';
import { settleTruncation, truncatePartitionRegionWide, type TruncateResult, type TruncationSettler } from './partition-truncate.js';
import { TopicSync } from './topic-sync.js';

/** A topic creation as CreateTopics gives it (replicationFactor null: the region's default). */
export interface TopicCreation {
  readonly partitions: number;
  readonly replicationFactor: number | null;
  /** Explicit replicas per partition (replica_assignment); overrides partitions and replicationFactor. */
  readonly assignment?: number[][];
  /** Kafka config names and values, kept in the TopicRecord. */
  readonly configs: Record<string, string>;
}

/** What `attachLeadership` drives (the replica manager). */
export interface LeadershipTarget {
  suspendLeadership(why: string): void;
  resumeLeadership(fresh: Iterable<NamedPartitionState>): void;
  /** Where a leader reports the outcome of a region-wide truncation (partition-truncate.ts). */
  settleTruncationsWith?(settler: TruncationSettler): void;
}

/** What a forwarded creation carries (the value of requests/topics/<name>). */
interface TopicRequest {
  readonly id: string;
  readonly from: number;
  readonly spec: TopicCreation;
  readonly error?: { code: string; message: string };
}

function parseTopicRequest(key: string, raw: Buffer): TopicRequest {
  const v = JSON.parse(raw.toString('utf8')) as TopicRequest;
  if (typeof v !== 'object' || v === null || typeof v.id !== 'string' || typeof v.spec !== 'object') {
    throw new MeridianError(ErrorCode.CorruptMetadata, `etcd key ${key} is not a topic creation request`);
  }
  return v;
}

export interface ClusterNodeOptions {
  readonly config: BrokerConfig;
  readonly topics: TopicManager;
  /** The local topic config of an etcd record (what storage applies). */
  readonly localConfig: (record: TopicRecord) => TopicConfig;
  readonly logger?: Logger;
}

export interface ClusterStatus {
  readonly nodeId: number;
  readonly controllerId: number;
  readonly isController: boolean;
  readonly leaseId: string | null;
  readonly brokerEpoch: string;
  /** ms left of this broker's self-assured membership (0: fenced, or riding). */
  readonly leaseValidForMs: number;
  /** Leading on while etcd answers neither it nor any in-sync peer (etcd-contact.ts). */
  readonly ridingThroughEtcdOutage: boolean;
  readonly etcd: EtcdStatus;
  readonly members: ReadonlyArray<BrokerInfo>;
}

/** Where a broker records its last "no contact with etcd" answer (Membership.answerContact). */
const NO_CONTACT_FILE = 'etcd-no-contact.json';

export class ClusterNode {
  readonly region: EtcdRegion;
  readonly members: MembersView;
  readonly topicStore: TopicStore;
  readonly source: EtcdPartitionStateSource;
  readonly topicSync: TopicSync;
  readonly producerIds: EtcdProducerIds;
  /**
   * The region's cluster id (Metadata, DescribeCluster): one for all its brokers, kept in
   * etcd, created by the first broker to start. librdkafka refuses to mix brokers that report
   * different ids ("a client must not be simultaneously connected to multiple clusters").
   */
  clusterId = '';
  /** The region's runtime replication policies in etcd (policy-sync.ts), once the broker set them up. */
  policies: ClusterPolicies | undefined;
  /** The region's ACLs, SCRAM credentials and quota overrides in etcd (security-sync.ts), once the broker set them up. */
  security: ClusterSecurity | undefined;
  /** The region's disaster-recovery roles and reports in etcd (dr-sync.ts), once the broker set them up. */
  dr: ClusterDrState | undefined;
  membership: Membership | undefined;
  controller: Controller | undefined;
  readonly #o: ClusterNodeOptions;
  #requests: PrefixWatch<TopicRequest> | undefined;
  readonly #executing = new Set<string>();
  /** The broker epoch the replica manager's leaderships were taken under (attachLeadership); -1n while suspended. */
  #leadershipEpoch: bigint | undefined;
  /** Bumped at each lease event: an older fresh read of the states gives up. */
  #leadershipTurn = 0;
  #closed = false;
  #contact: ContactPeers | undefined;

  private constructor(o: ClusterNodeOptions) {
    this.#o = o;
    this.region = EtcdRegion.fromConfig(o.config, o.logger);
    this.members = new MembersView(this.region);
    // alterIsr is fenced on this broker's registration, made later (join()): the store reads
    // the node id and broker epoch at each call (-1 before join: etcd refuses the change).
    // With a replica manager attached (attachLeadership) it is the broker epoch its current
    // leaderships were taken under (-1 while suspended), not the current registration's: a
    // broker registered again must not pass the guard on leaderships from before.
    const epoch = (): bigint => this.#leadershipEpoch ?? this.membership?.brokerEpoch ?? -1n;
    this.topicStore = new TopicStore(this.region, {
      get nodeId() {
        return o.config.nodeId;
      },
      get brokerEpoch() {
        return epoch();
      },
    });
    this.source = new EtcdPartitionStateSource(this.topicStore, this.members);
    this.topicSync = new TopicSync({ store: this.topicStore, topics: o.topics, localConfig: o.localConfig, ...(o.logger ? { logger: o.logger } : {}) });
    this.producerIds = new EtcdProducerIds(this.region);
  }

  /** Connects to etcd and loads the region (brokers, topics, partition states). */
  static async open(o: ClusterNodeOptions): Promise<ClusterNode> {
    const node = new ClusterNode(o);
    try {
      node.clusterId = await node.#loadClusterId();
      await node.members.start();
      await node.topicSync.start();
      await node.source.start();
      return node;
    } catch (err) {
      await node.close();
      throw err;
    }
  }

  get nodeId(): number {
    return this.#o.config.nodeId;
  }

  /** The region's cluster id from etcd; the first broker of the region creates it (CAS on absence). */
  async #loadClusterId(): Promise<string> {
    const { client, keys } = this.region;
    const mine = randomBytes(16).toString('base64url');
    const res = await this.region.run('read or create the region\'s cluster id', () => client.if(keys.clusterId, 'Create', '==', 0).then(client.put(keys.clusterId).value(mine)).else(client.get(keys.clusterId)).commit());
    if (res.succeeded) return mine;
    const kv = res.responses[0]?.response_range?.kvs[0];
    if (kv === undefined) throw new MeridianError(ErrorCode.MetadataUnavailable, `the region's cluster id key ${keys.clusterId} vanished while it was read; restart the broker`);
    return kv.value.toString();
  }

  /** Registers this broker (its lease), campaigns for controller, serves forwarded creations. */
  async join(info: BrokerInfo): Promise<void> {
    const c = this.#o.config.cluster;
    const membership = new Membership(this.region, info, { leaseTtlMs: c.leaseTtlMs });
    this.membership = membership;
    await membership.start();
    const controller = new Controller(this.region, membership, {
      uncleanLeaderElection: c.uncleanLeaderElection,
      defaultReplicationFactor: c.defaultReplicationFactor,
    });
    this.controller = controller;
    controller.on('error', (err) => this.#o.logger?.warn({ error: describe(err) }, 'controller'));
    controller.on('elected', () => void this.#executePending());
    await controller.start();
    const { keys } = this.region;
    const { revision } = await this.region.getPrefix(keys.topicRequestsPrefix, parseTopicRequest);
    this.#requests = new PrefixWatch(this.region, keys.topicRequestsPrefix, revision + 1n, parseTopicRequest, {
      put: (key, v) => void this.#execute(key, v.value, v.modRevision),
      delete: () => undefined,
      reset: () => void this.#executePending(),
      error: (err) => this.#o.logger?.warn({ error: describe(err) }, 'topic requests watch'),
    });
    this.#requests.start();
    void this.#executePending();
  }

  /**
   * Truncates a partition at `offset` on its leader and every replica of the region
   * (partition-truncate.ts): resolves once every in-sync replica holds nothing past it.
   * Writes to the partition are the caller's to hold off meanwhile.
   */
  truncatePartition(topic: string, partition: number, offset: bigint, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<TruncateResult> {
    return truncatePartitionRegionWide(this, topic, partition, offset, opts);
  }

  /** Whether this broker is in contact with etcd (its lease window is open). */
  isLeased(): boolean {
    return this.membership?.isLeased() ?? false;
  }

  /** Whether this broker may act as a leader right now (its lease is fresh, or it rides through an etcd outage): leaders check it before every produce. */
  mayLead(topic?: string, partition?: number, leaderEpoch?: number): boolean {
    const m = this.membership;
    if (m === undefined) return false;
    // Leased (every produce in normal operation): no key to build.
    if (m.isLeased()) return true;
    return m.mayLead(topic === undefined ? undefined : ledKey(topic, partition ?? -1, leaderEpoch ?? -1));
  }

  /**
   * Turns on riding through etcd outages (cluster.rideThroughEtcdOutage; either way the
   * broker's own "no contact" answers are recorded and kept): `question` gives the brokers
   * whose "no contact with etcd" lets this one lead on (the replicas of what it leads) and
   * what it leads, asked over the in-region link's security. After `join`.
   */
  enableRideThrough(question: ContactPeersOptions['question'], security: LinkSecurityConfig): void {
    const m = this.membership;
    if (m === undefined) return;
    const noContactFile = path.join(this.#o.config.dataDir, NO_CONTACT_FILE);
    // Off, this broker still answers its peers truthfully, and keeps what it promised them.
    // With unclean election any replica may be elected, one the peers asked may not know
    // of (a reassignment's new replica): no ride then.
    if (!this.#o.config.cluster.rideThroughEtcdOutage || this.#o.config.cluster.uncleanLeaderElection) return m.enableRideThrough({ noContactFile });
    const contact = new ContactPeers({ nodeId: this.nodeId, question, members: () => this.members.members().keys(), address: (id) => this.source.brokerAddress(id), security });
    this.#contact = contact;
    m.enableRideThrough({ round: (timeoutMs) => contact.round(timeoutMs), noContactFile });
  }

  /** A peer's question (etcd-contact.ts): whether this broker is in contact with etcd; "no" holds it off new leaderships; undefined before it can keep that promise. */
  answerContact(): boolean | undefined {
    return this.membership?.answerContact();
  }

  /** Until when (performance.now()) no leadership this broker has not acted on may start acting. */
  coolingUntil(): number {
    return this.membership?.coolingUntil() ?? 0;
  }

  /**
   * Ties the replica manager's leadership to this broker's lease (after `join`): when the
   * self-fencing clock runs out (`fenced`) or etcd says the lease is gone (`lost`), it
   * suspends leadership at once; once the lease is fresh again (`leased`, `registered`),
   * every partition state is read again from etcd (one snapshot, at a revision past the
   * current registration) and handed to `resumeLeadership`, which applies it before taking
   * produce again. Without this, a broker registered again would lead on its stale states
   * until its watch caught up (up to the watch's restart backoff) and acknowledge writes a
   * newer leader also acknowledges.
   */
  attachLeadership(target: LeadershipTarget): void {
    const m = this.membership;
    if (m === undefined) throw new MeridianError(ErrorCode.MetadataUnavailable, 'attachLeadership needs the broker registered first: call join() before it');
    this.#leadershipEpoch = m.brokerEpoch;
    target.settleTruncationsWith?.((topic, partition, expected, id, status, reason) => settleTruncation(this, topic, partition, expected, id, status, reason));
    const suspend = (why: string) => {
      this.#leadershipTurn++;
      this.#leadershipEpoch = -1n;
      target.suspendLeadership(why);
    };
    m.on('fenced', () => suspend('its etcd lease was not renewed in time'));
    m.on('lost', (err) => suspend(`its etcd lease is gone (${describe(err)})`));
    m.on('leased', () => void this.#reread(m, target));
    m.on('registered', () => void this.#reread(m, target));
  }

  async #reread(m: Membership, target: LeadershipTarget): Promise<void> {
    const turn = ++this.#leadershipTurn;
    while (!this.#closed && turn === this.#leadershipTurn) {
      const epoch = m.brokerEpoch;
      try {
        const snap = await this.topicStore.snapshot({ timeoutMs: Math.max(1000, this.#o.config.cluster.leaseTtlMs) });
        if (this.#closed || turn !== this.#leadershipTurn) return;
        // Fenced again or registered anew meanwhile: that event's own read decides.
        if (!m.isLeased() || m.brokerEpoch !== epoch) return;
        if (snap.revision >= epoch) {
          const states: NamedPartitionState[] = [];
          for (const [topic, parts] of snap.partitions) for (const [partition, v] of parts) states.push({ ...v.value, topic, partition });
          this.#leadershipEpoch = epoch;
          target.resumeLeadership(states);
          return;
        }
      } catch (err) {
        this.#o.logger?.warn({ error: describe(err) }, 'could not read the partition states again after the lease came back; retrying (this broker leads nothing meanwhile)');
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  controllerId(): number {
    return this.controller?.controllerId() ?? -1;
  }

  /** The live brokers, by node id. */
  brokers(): BrokerInfo[] {
    return [...this.members.members().values()].sort((a, b) => a.nodeId - b.nodeId);
  }

  /** A topic's min.insync.replicas from its etcd record, when it sets one. */
  minInsyncReplicas(topic: string): number | undefined {
    const v = this.topicSync.record(topic)?.configs['min.insync.replicas'];
    return v === undefined ? undefined : Number(v);
  }

  /**
   * Creates a topic in the region from any broker (the controller itself, or forwarded to it
   * through etcd), then waits until it is open on this broker. Errors: TOPIC_EXISTS,
   * INVALID_REPLICATION_FACTOR, INVALID_REPLICA_ASSIGNMENT, INVALID_PARTITIONS,
   * METADATA_UNAVAILABLE (no answer within `timeoutMs`).
   */
  async createTopic(name: string, spec: TopicCreation, timeoutMs = 30_000): Promise<TopicInfo> {
    if (this.topicSync.has(name)) throw new MeridianError(ErrorCode.TopicExists, `topic ${name} already exists`);
    const controller = this.controller;
    if (controller?.isController()) {
      await controller.createTopic(name, toSpec(spec), { timeoutMs });
      return this.topicSync.waitReady(name, timeoutMs);
    }
    const { client, keys } = this.region;
    const key = keys.topicRequest(name);
    const lease = this.membership?.leaseId;
    if (lease === undefined) throw new MeridianError(ErrorCode.MetadataUnavailable, `create topic ${name}: this broker is not registered in the region yet; retry`);
    const request: TopicRequest = { id: randomUUID(), from: this.nodeId, spec };
    // Absent: ours. Present: someone's request for the same name is pending; wait for it too.
    await this.region.run(`ask the controller to create topic ${name}`, () => client.if(key, 'Create', '==', 0).then(client.put(key).value(JSON.stringify(request)).lease(lease)).commit(), { timeoutMs });
    try {
      return await this.topicSync.waitReady(name, timeoutMs, async () => {
        const r = await this.region.getJson(key, parseTopicRequest, { timeoutMs: 2000 }).catch(() => undefined);
        if (r?.value.id === request.id && r.value.error !== undefined) {
          if (this.topicSync.has(name)) return;
          const code = Object.values(ErrorCode).includes(r.value.error.code as ErrorCode) ? (r.value.error.code as ErrorCode) : ErrorCode.MetadataUnavailable;
          throw new MeridianError(code, r.value.error.message);
        }
      });
    } finally {
      // Ours only (another asker's request keeps its key).
      await this.region
        .run(`clear the request for topic ${name}`, async () => {
          const kv = (await client.get(key).exec()).kvs[0];
          if (kv !== undefined && parseTopicRequest(key, kv.value).id === request.id) await client.if(key, 'Mod', '==', kv.mod_revision).then(client.delete().key(key)).commit();
        }, { timeoutMs: 2000 })
        .catch(() => undefined);
    }
  }

  /**
   * Partitions by this broker's role in etcd's states: led here, followed here (a replica,
   * another broker leads), and offline in the whole region (no leader).
   */
  partitionCounts(): { led: number; followed: number; offline: number } {
    let led = 0;
    let followed = 0;
    let offline = 0;
    for (const s of this.source.states()) {
      if (s.leader < 0) offline++;
      if (s.leader === this.nodeId) led++;
      else if (s.replicas.includes(this.nodeId)) followed++;
    }
    return { led, followed, offline };
  }

  status(): ClusterStatus {
    const m = this.membership;
    return {
      nodeId: this.nodeId,
      controllerId: this.controllerId(),
      isController: this.controller?.isController() ?? false,
      leaseId: m?.leaseId ?? null,
      brokerEpoch: (m?.brokerEpoch ?? -1n).toString(),
      leaseValidForMs: m === undefined ? 0 : Math.max(0, Math.round(m.leaseValidUntil() - performance.now())),
      ridingThroughEtcdOutage: m?.riding ?? false,
      etcd: this.region.status(),
      members: this.brokers(),
    };
  }

  /** Resigns the controllership, stops the watches, revokes the lease last. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#requests?.close();
    this.#contact?.close();
    // Resign first: another broker takes over the controllership before this one leaves.
    if (this.controller?.isController()) await this.controller.resign().catch(() => undefined);
    await this.controller?.close().catch((err: unknown) => this.#o.logger?.warn({ error: describe(err) }, 'controller close'));
    this.policies?.close();
    this.security?.close();
    this.dr?.close();
    this.source.close();
    this.topicSync.close();
    this.members.close();
    await this.membership?.close();
    this.region.close();
  }

  // -------------------------------------------------------------------------------------
  // The controller's side of forwarded creations

  async #executePending(): Promise<void> {
    if (this.#closed || !this.controller?.isController()) return;
    try {
      const { entries } = await this.region.getPrefix(this.region.keys.topicRequestsPrefix, parseTopicRequest);
      for (const [key, v] of entries) void this.#execute(key, v.value, v.modRevision);
    } catch (err) {
      this.#o.logger?.warn({ error: describe(err) }, 'could not read pending topic requests');
    }
  }

  async #execute(key: string, req: TopicRequest, modRevision: bigint): Promise<void> {
    const controller = this.controller;
    if (this.#closed || controller === undefined || !controller.isController() || req.error !== undefined || this.#executing.has(req.id)) return;
    const name = key.slice(this.region.keys.topicRequestsPrefix.length);
    this.#executing.add(req.id);
    try {
      await controller.createTopic(name, toSpec(req.spec));
      this.#o.logger?.info({ topic: name, from: req.from }, 'topic created for another broker');
      // The asker sees the record through its watch and removes its key.
    } catch (err) {
      if (err instanceof MeridianError && err.code === ErrorCode.NotController) return; // the next controller executes it
      const e = err instanceof MeridianError ? err : new MeridianError(ErrorCode.MetadataUnavailable, describe(err));
      const { client } = this.region;
      const kv = (await client.get(key).exec().catch(() => undefined))?.kvs[0];
      if (kv === undefined || BigInt(kv.mod_revision) !== modRevision) return;
      const answered: TopicRequest = { ...req, error: { code: e.code, message: e.message } };
      await client.if(key, 'Mod', '==', kv.mod_revision).then(client.put(key).value(JSON.stringify(answered)).lease(kv.lease)).commit().catch(() => undefined);
    } finally {
      this.#executing.delete(req.id);
    }
  }
}

function toSpec(s: TopicCreation): CreateTopicSpec {
  return {
    partitions: s.partitions,
    replicationFactor: s.replicationFactor,
    ...(s.assignment !== undefined && s.assignment.length > 0 ? { assignment: s.assignment } : {}),
    configs: s.configs,
  };
}
