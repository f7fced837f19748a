/**
 * Disaster recovery in one region: consumer-group offsets that follow a group to another
 * region exactly, DR topics that are read-only until promoted, promote with a recovery
 * report, and failback (failback.ts) that preserves the divergent tail.
 *
 * Offset translation. A commit at offset o in region A stands for a per-origin vector: for
 * each origin region, the highest origin offset of the records before o in A's log
 * (origin-index.ts reads it from the dedup markers). The vector travels to the other
 * regions of the topic's policy (offset-publisher.ts → remote-offsets.ts). In region B the
 * group's translated offset is the furthest offset whose every earlier record the vector
 * covers: exact in every topology, whatever order B interleaved the origins in. OffsetFetch
 * answers it when the peer's commit is newer than the group's own commit here, and never
 * less than that own commit (a late commit from A cannot drag back a group that already
 * committed in B); it is at most B's end (B's index never passes what B holds). A peer's
 * commit made while the group has members here, after they joined, is a conflict: reported
 * (status, log) and not applied.
 *
 * Roles (dr-state.ts). Under one-way and fan-out policies one region is the primary;
 * produce elsewhere is refused (TOPIC_READ_ONLY, naming the policy); replicated data is
 * admitted only from the primary (REPLICATION_FENCED otherwise), so a promoted region is
 * never written by its old primary, and a returning old primary is never written by the new
 * one until it failed back. The replicator sends from whichever region is the primary now
 * (`effectiveLinks`).
 *
 * Lifecycle: built by the broker after the group coordinator and the topic manager; the
 * offset publisher starts at once; `close()` stops it and closes the indexes.
 */
import type { Logger } from 'pino';
import type { LinkSecurityConfig } from '../config/schema.js';
import { ErrorCode, MeridianError } from '../errors.js';
import type { GroupCoordinator } from '../broker/groups/group-coordinator.js';
import type { PartitionLog } from '../storage/partition-log.js';
import type { TopicManager } from '../storage/topic-manager.js';
import { OriginIndex } from '../replication/origin-index.js';
import { linkSecurityOf, policyFor, type Link, type Policy, type RegionEntry } from '../replication/policy.js';
import { originKey, type ReplicaStates } from '../replication/replica-state.js';
import type { OffsetSyncRequest, ProbeRequest, ProbeResponse } from './dr-api.js';
import { DrState, KEEP, isDrPolicy, policySource, sameRole, type TopicDrEntry, type TopicRole } from './dr-state.js';
import { OffsetPublisher, type PeerSyncStatus } from './offset-publisher.js';
import { reportId, type PromoteReport, type RecoveryPartition, type ReportStore } from './recovery-report.js';
import { RemoteOffsets, type RemoteCommit } from './remote-offsets.js';
import type { DrClusterOps } from './failback-cluster.js';
import { FailbackClamp } from './failback-clamp.js';

/** Clocks of two regions may differ this much before a peer's commit counts as concurrent. */
const CLOCK_SKEW_MS = 1000;

export interface DisasterRecoveryOptions {
  region: string;
  dataDir: string;
  topics: TopicManager;
  groups: GroupCoordinator;
  replicaStates: ReplicaStates;
  policies: () => readonly Policy[];
  regions: () => readonly RegionEntry[];
  requestTimeoutMs: number;
  /** A region cluster: the roles are the region's (cluster/dr-sync.ts) and state.json only this broker's copy. */
  regionCluster?: boolean;
  /** replication.tls and replication.sasl: the offset sync's and failback's connections use them (and a region's own). */
  linkSecurity?: LinkSecurityConfig;
  logger: Logger;
  syncIntervalMs?: number;
}

export interface Conflict {
  group: string;
  topic: string;
  partition: number;
  /** The peer that committed while the group had members here. */
  region: string;
  commitTimestamp: number;
  activeSince: number;
  detectedAt: number;
}

export interface Resolved {
  offset: bigint;
  /** `local`: the group's own commit here; `translated`: a peer's commit, translated. */
  source: 'local' | 'translated' | 'none';
  from: RemoteCommit | null;
  translated: bigint | null;
  conflict: Conflict | null;
}

/** A probe's answer before the protocol layer turns `error` into a Kafka code. */
export type ProbeResult = Omit<ProbeResponse, 'errorCode' | 'errorMessage'> & { error: MeridianError | null };

/** A region that heard of a newer primary than the one it records. */
function superseded(role: TopicRole): boolean {
  const by = role.entry?.supersededBy;
  return by !== undefined && by.epoch > role.epoch;
}

/** What `promote --policy/--region` acts on: copies, superseded primaries, and promotes under way here. */
function promotable(role: TopicRole, region: string): boolean {
  return role.readOnly || (role.entry?.phase === 'promoting' && role.entry.primary === region);
}

export type PromoteScope = { topic: string } | { policy: string } | { region: string };

export class DisasterRecovery {
  readonly region: string;
  readonly state: DrState;
  readonly remote: RemoteOffsets;
  readonly reports: ReportStore;
  readonly publisher: OffsetPublisher;
  readonly topics: TopicManager;
  readonly groups: GroupCoordinator;
  readonly replicaStates: ReplicaStates;
  readonly log: Logger;
  #opts: DisasterRecoveryOptions;
  #indexes = new Map<PartitionLog, Promise<OriginIndex>>();
  #conflicts = new Map<string, Conflict>();
  /** Superseded markings on their way to the region's document (cluster): one per topic and epoch. */
  #marking = new Set<string>();
  #offCommits: () => void;
  /**
   * A region cluster: whether this broker holds an in-sync replica of a partition (the
   * replica manager's answer). A promote measures its recovery point only from those;
   * without it (a single broker) every partition is measured.
   */
  holdsReplica: ((topic: string, partition: number) => boolean) | undefined;
  /**
   * A region cluster: what failback needs of it (failback-cluster.ts: the region-wide cut,
   * the partitions' leaders, topic creation). Set by broker.ts with holdsReplica; without it
   * failback --confirm is refused on a cluster.
   */
  clusterOps: DrClusterOps | undefined;
  /** A region cluster: group commits a failback made stale, answered and rewritten at the cuts (failback-clamp.ts). */
  #clamp: FailbackClamp | undefined;
  #closed = false;

  constructor(opts: DisasterRecoveryOptions) {
    this.#opts = opts;
    this.region = opts.region;
    this.topics = opts.topics;
    this.groups = opts.groups;
    this.replicaStates = opts.replicaStates;
    this.log = opts.logger.child({ component: 'dr' });
    this.state = new DrState(opts.dataDir, opts.region, { localCopy: opts.regionCluster === true, logger: this.log });
    if (opts.regionCluster === true) {
      const clamp = new FailbackClamp({ groups: opts.groups, entryOf: (topic) => this.state.entry(topic), entries: () => this.state.entries(), logger: this.log });
      this.#clamp = clamp;
      this.state.onChange((topic) => void clamp.entryChanged(topic));
    }
    if (this.state.brokenCopy !== undefined) this.log.error({ moved: this.state.brokenCopy }, "this broker's copy of the region's DR roles (dr/state.json) did not parse: moved aside; the region's roles in etcd replace it");
    this.remote = new RemoteOffsets(this.state.dir, this.log);
    this.reports = this.state.reports;
    this.publisher = new OffsetPublisher({
      region: opts.region,
      regions: opts.regions,
      policies: opts.policies,
      topics: opts.topics,
      vectorOf: (topic, partition, offset) => this.vectorOf(topic, partition, offset),
      lastTimestampOf: (topic, partition) => this.#lastTimestamp(topic, partition),
      currentCommits: () => opts.groups.allCommitted().map((c) => ({ group: c.groupId, topic: c.topic, partition: c.partition, offset: c.committed.offset, commitTimestamp: c.committed.commitTimestamp })),
      requestTimeoutMs: opts.requestTimeoutMs,
      linkSecurity: (entry) => this.linkSecurityTo(entry),
      intervalMs: opts.syncIntervalMs,
      logger: this.log,
    });
    // Ordered by this broker's clock when the commit became durable, never by the commit
    // timestamp an OffsetCommit v1 client may set.
    this.#offCommits = opts.groups.onCommitted((group, commits) => {
      const now = Date.now();
      this.publisher.committed(commits.map((c) => ({ group, topic: c.topic, partition: c.partition, offset: c.offset, commitTimestamp: now })));
    });
  }

  get policies(): readonly Policy[] {
    return this.#opts.policies();
  }

  /** TLS and SASL of this region's connections to `entry`'s region. */
  linkSecurityTo(entry: RegionEntry): LinkSecurityConfig | undefined {
    return this.#opts.linkSecurity && linkSecurityOf(entry, this.#opts.linkSecurity);
  }

  // ---- roles -------------------------------------------------------------------------

  roleOf(topic: string): TopicRole | undefined {
    return this.state.roleOf(this.#opts.policies(), topic);
  }

  /** Null when producers may write `topic` here; else the error they get. */
  checkWritable(topic: string): MeridianError | null {
    const role = this.roleOf(topic);
    if (role === undefined || !role.readOnly) return null;
    const by = role.entry?.supersededBy;
    if (role.primary === this.region && by !== undefined) {
      return new MeridianError(
        ErrorCode.TopicReadOnly,
        `topic ${topic} no longer takes writes in region ${this.region}: region ${by.primary} was promoted to primary (epoch ${by.epoch}, policy '${role.policy.name}'); produce there, and run \`meridian dr failback --topic ${topic}\` here to follow it`,
      );
    }
    return new MeridianError(
      ErrorCode.TopicReadOnly,
      `topic ${topic} is a read-only copy in region ${this.region}: replication policy '${role.policy.name}' (${role.policy.topology}) makes ${role.primary} its primary; produce there, or promote this region with \`meridian dr promote --topic ${topic}\``,
    );
  }

  /** Whether replicated data for `topic` from `sender` may be appended here. */
  admitAppend(topic: string, sender: string): MeridianError | null {
    const role = this.roleOf(topic);
    if (role === undefined) return null;
    if (role.entry?.phase === 'failing-back') return this.#failingBack(role);
    if (superseded(role)) return this.#supersededError(role, sender);
    if (role.primary === sender) return null;
    return this.#fenced(role, sender);
  }

  /** The handshake's check: the sender's view of the topic must match ours. */
  admitHandshake(topic: string, sender: string, view: { primary: string; epoch: number } | null): MeridianError | null {
    const role = this.roleOf(topic);
    if (role === undefined) return null;
    if (role.entry?.phase === 'failing-back') return this.#failingBack(role);
    if (view !== null && view.epoch > role.epoch) {
      this.#noteSuperseded(role, view);
      return new MeridianError(
        ErrorCode.ReplicationFenced,
        `region ${view.primary} was promoted to primary of ${topic} (epoch ${view.epoch}), but region ${this.region} is still at epoch ${role.epoch} (primary ${role.primary}) and may hold records ${view.primary} never received: run \`meridian dr failback --topic ${topic}\` against ${this.region}`,
      );
    }
    if (superseded(role)) return this.#supersededError(role, sender);
    if (role.primary === sender && (view === null || view.epoch === role.epoch)) return null;
    return this.#fenced(role, sender);
  }

  #supersededError(role: TopicRole, sender: string): MeridianError {
    const by = role.entry!.supersededBy!;
    return new MeridianError(
      ErrorCode.ReplicationFenced,
      `topic ${role.topic} in region ${this.region} knows of a newer primary, ${by.primary} (epoch ${by.epoch}), and takes nothing from ${sender} until it fails back: run \`meridian dr failback --topic ${role.topic}\` against ${this.region}`,
    );
  }

  /**
   * A newer primary exists: stop taking writes here (persisted) until failback. On a single
   * broker the file is written before the handshake is answered; on a region cluster the
   * marking goes to the region's document (every broker of the region stops taking writes
   * as it applies it, this one within milliseconds too) and the handshake is refused at once
   * regardless. Several leaders hearing the same peer write it once: the change keeps an
   * entry that already knows of this epoch.
   */
  #noteSuperseded(role: TopicRole, view: { primary: string; epoch: number }): void {
    const by = role.entry?.supersededBy;
    if (by !== undefined && by.epoch >= view.epoch) return;
    const fallback: TopicDrEntry = { primary: role.primary, epoch: role.epoch, phase: 'promoted', at: Date.now() };
    const mark = (e: TopicDrEntry | undefined): TopicDrEntry | typeof KEEP => {
      const cur = e ?? fallback;
      if (cur.epoch >= view.epoch || (cur.supersededBy?.epoch ?? -1) >= view.epoch) return KEEP;
      return { ...cur, supersededBy: { primary: view.primary, epoch: view.epoch, at: Date.now() } };
    };
    const key = `${role.topic}\0${view.epoch}`;
    if (this.#marking.has(key)) return;
    this.#marking.add(key);
    const done = this.state.update(role.topic, mark).then(
      () => this.log.warn({ topic: role.topic, primary: view.primary, epoch: view.epoch, localEpoch: role.epoch }, 'a peer is primary at a newer epoch: producers refused here until failback'),
      (err: unknown) => this.log.error({ err, topic: role.topic, primary: view.primary, epoch: view.epoch }, 'could not record that a peer is primary at a newer epoch (the next handshake tries again)'),
    );
    void done.finally(() => this.#marking.delete(key));
  }

  #failingBack(role: TopicRole): MeridianError {
    return new MeridianError(ErrorCode.ReplicationFenced, `topic ${role.topic} in region ${this.region} is failing back to ${role.primary} (epoch ${role.epoch}): replication resumes when it completes (\`meridian dr failback --topic ${role.topic} --confirm\` completes an interrupted one)`);
  }

  #fenced(role: TopicRole, sender: string): MeridianError {
    const promoted = role.entry?.primary === this.region ? ` (promoted here at ${new Date(role.entry.at).toISOString()}, epoch ${role.epoch})` : '';
    return new MeridianError(
      ErrorCode.ReplicationFenced,
      `topic ${role.topic} in region ${this.region} takes replicated data only from its primary ${role.primary}${promoted}, not from ${sender}: run \`meridian dr failback --topic ${role.topic}\` against ${sender} to make it follow ${role.primary}`,
    );
  }

  /** This region's view of a DR topic, sent in handshakes; null for other topics. */
  viewOf(topic: string): { primary: string; epoch: number } | null {
    const role = this.roleOf(topic);
    return role === undefined ? null : { primary: role.primary, epoch: role.epoch };
  }

  /** The links the replicator runs for `topic`: a DR topic's from whichever region is its primary now. */
  effectiveLinks(topic: string, links: Link[]): Link[] {
    const role = this.roleOf(topic);
    if (role === undefined) return links;
    // A primary that knows of a newer one sends nothing more.
    if (role.primary !== this.region || superseded(role)) return [];
    // Relaying: after a promotion a copy may lack records of the old primary that this region
    // holds (fan-out targets at different points); they go too. A region on a record's hop
    // path (its origin) never gets it back, and duplicates dedup by origin offset.
    return role.policy.regions.filter((r) => r !== this.region).map((remote) => ({ remote, relay: true, policy: role.policy }));
  }

  // ---- offset translation ------------------------------------------------------------

  /** The partition's origin index, caught up with the log. */
  async indexOf(topic: string, partition: number): Promise<OriginIndex> {
    const log = this.topics.partition(topic, partition);
    const info = this.topics.getTopic(topic);
    if (log === undefined || info === undefined) throw new MeridianError(ErrorCode.UnknownTopic, `${topic}/${partition} does not exist in region ${this.region}`);
    let p = this.#indexes.get(log);
    if (p === undefined) {
      p = OriginIndex.open(log, originKey(this.region, info.id), { logger: this.log });
      this.#indexes.set(log, p);
      p.catch(() => this.#indexes.delete(log));
    }
    const idx = await p;
    await idx.catchUp();
    return idx;
  }

  async vectorOf(topic: string, partition: number, offset: bigint): Promise<Array<[string, bigint]>> {
    const idx = await this.indexOf(topic, partition);
    return [...idx.vectorAt(offset)];
  }

  /**
   * The offset a group resumes from in this region: its own commit, or a peer's newer one
   * translated (never below its own commit, never past this region's end).
   */
  async resolve(group: string, topic: string, partition: number): Promise<Resolved> {
    const own = this.groups.committed(group, topic, partition);
    const base: Resolved = { offset: own?.offset ?? -1n, source: own === undefined ? 'none' : 'local', from: null, translated: null, conflict: null };
    const peer = this.remote.commitsFor(group, topic, partition)[0];
    if (peer === undefined || (own !== undefined && own.commitTimestamp >= peer.commitTimestamp)) return base;
    const conflict = this.#conflicts.get(`${group}\0${topic}\0${partition}`) ?? null;
    const activeSince = this.groups.activeSince(group);
    if (activeSince !== undefined && peer.commitTimestamp > activeSince + CLOCK_SKEW_MS) {
      // The group has members here and the peer committed after they joined: two live
      // copies of the group. Its own offsets stand; the conflict is reported.
      return { ...base, from: peer, conflict: conflict ?? this.#noteConflict(group, topic, partition, peer, activeSince) };
    }
    let translated: bigint;
    try {
      translated = (await this.indexOf(topic, partition)).translate(peer.vector);
    } catch (err) {
      this.log.warn({ group, topic, partition, err: (err as Error).message }, 'offset translation failed; the group resumes from its own commit');
      return base;
    }
    const offset = own !== undefined && own.offset > translated ? own.offset : translated;
    return { offset, source: offset === own?.offset && own.offset >= translated ? 'local' : 'translated', from: peer, translated, conflict };
  }

  /** OffsetFetch's answers with translation applied, for the partitions a peer committed. */
  async adjustFetched<P extends { partitionIndex: number; committedOffset: bigint; committedLeaderEpoch: number }>(
    group: string,
    topics: ReadonlyArray<{ readonly name: string; readonly partitions: readonly P[] }>,
  ): Promise<Array<{ name: string; partitions: P[] }>> {
    return Promise.all(
      topics.map(async (t) => ({
        name: t.name,
        partitions: await Promise.all(
          t.partitions.map(async (p) => {
            if (this.remote.commitsFor(group, t.name, p.partitionIndex).length === 0) return p;
            const r = await this.resolve(group, t.name, p.partitionIndex);
            if (r.source !== 'translated') return p;
            return { ...p, committedOffset: r.offset, committedLeaderEpoch: -1 };
          }),
        ),
      })),
    );
  }

  /** Every translation this region can make for `group` (admin API, CLI). */
  async groupStatus(group: string): Promise<
    Array<{ topic: string; partition: number; committed: string | null; committedAt: number | null; translated: string | null; resolved: string; source: Resolved['source']; peer: string | null; peerOffset: string | null; peerCommittedAt: number | null; syncAgeMs: number | null; conflict: Conflict | null }>
  > {
    const parts = new Map<string, { topic: string; partition: number }>();
    for (const g of this.remote.groups()) if (g.group === group) for (const p of g.partitions) parts.set(`${p.topic}\0${p.partition}`, p);
    for (const c of this.groups.allCommitted()) if (c.groupId === group) parts.set(`${c.topic}\0${c.partition}`, { topic: c.topic, partition: c.partition });
    if (parts.size === 0) throw new MeridianError(ErrorCode.DrNotFound, `group ${group} has no committed offsets in region ${this.region} and no peer region sent any`);
    const now = Date.now();
    const out = [];
    for (const { topic, partition } of [...parts.values()].sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition)) {
      const own = this.groups.committed(group, topic, partition);
      const peer = this.remote.commitsFor(group, topic, partition)[0];
      const r = this.topics.partition(topic, partition) === undefined ? null : await this.resolve(group, topic, partition);
      let translated: bigint | null = r?.translated ?? null;
      if (translated === null && peer !== undefined && r !== null) {
        try {
          translated = (await this.indexOf(topic, partition)).translate(peer.vector);
        } catch {
          translated = null;
        }
      }
      out.push({
        topic,
        partition,
        committed: own === undefined ? null : String(own.offset),
        committedAt: own?.commitTimestamp ?? null,
        translated: translated === null ? null : String(translated),
        resolved: String(r?.offset ?? -1n),
        source: r?.source ?? 'none',
        peer: peer?.region ?? null,
        peerOffset: peer === undefined ? null : String(peer.offset),
        peerCommittedAt: peer?.commitTimestamp ?? null,
        syncAgeMs: peer === undefined ? null : now - peer.receivedAt,
        conflict: this.#conflicts.get(`${group}\0${topic}\0${partition}`) ?? null,
      });
    }
    return out;
  }

  /** Groups with offsets here or from peers. */
  groupIds(): string[] {
    return [...new Set([...this.remote.groups().map((g) => g.group), ...this.groups.allCommitted().map((c) => c.groupId)])].sort();
  }

  /**
   * Conflicts detected in the last 10 minutes (each new commit from the peer while the group
   * has members here detects it again, so a live one stays listed).
   */
  conflicts(): Conflict[] {
    const now = Date.now();
    for (const [k, c] of this.#conflicts) if (now - c.detectedAt > 600_000) this.#conflicts.delete(k);
    return [...this.#conflicts.values()];
  }

  /**
   * Records a conflict; a partition's first is logged, or, with `batch`, gathered there so
   * that one sync naming thousands of a group's partitions logs one line per group, not one
   * per partition.
   */
  #noteConflict(group: string, topic: string, partition: number, peer: RemoteCommit, activeSince: number, batch?: Map<string, { activeSince: number; partitions: string[] }>): Conflict {
    const c: Conflict = { group, topic, partition, region: peer.region, commitTimestamp: peer.commitTimestamp, activeSince, detectedAt: Date.now() };
    const key = `${group}\0${topic}\0${partition}`;
    if (!this.#conflicts.has(key)) {
      if (batch === undefined) this.#warnConflict(group, peer.region, activeSince, [`${topic}/${partition}`]);
      else {
        const held = batch.get(group);
        if (held === undefined) batch.set(group, { activeSince, partitions: [`${topic}/${partition}`] });
        else held.partitions.push(`${topic}/${partition}`);
      }
    }
    this.#conflicts.set(key, c);
    return c;
  }

  #warnConflict(group: string, peer: string, activeSince: number, partitions: string[]): void {
    const shown = partitions.slice(0, 10).join(', ') + (partitions.length > 10 ? `, … (${partitions.length - 10} more)` : '');
    this.log.warn({ group, peer, partitions: partitions.length, which: shown, activeSince: new Date(activeSince).toISOString() }, 'consumer group is active in two regions at once: the peer region\'s commits are not applied here');
  }

  // ---- the internal API --------------------------------------------------------------

  /** OffsetSync from a peer: made durable, then acknowledged. */
  async handleOffsetSync(req: OffsetSyncRequest): Promise<MeridianError | null> {
    if (req.targetRegion !== this.region) return new MeridianError(ErrorCode.ReplicationMisrouted, `this broker serves region ${this.region}, not ${req.targetRegion}`);
    const { fresh, durable } = this.remote.apply(req);
    const newConflicts = new Map<string, { activeSince: number; partitions: string[] }>();
    for (const c of fresh) {
      const activeSince = this.groups.activeSince(c.group);
      if (activeSince !== undefined && c.commitTimestamp > activeSince + CLOCK_SKEW_MS) this.#noteConflict(c.group, c.topic, c.partition, c, activeSince, newConflicts);
      // Warm the index so the group's first OffsetFetch here need not build it.
      if (this.topics.partition(c.topic, c.partition) !== undefined) void this.indexOf(c.topic, c.partition).catch(() => {});
    }
    for (const [group, { activeSince, partitions }] of newConflicts) this.#warnConflict(group, req.senderRegion, activeSince, partitions);
    try {
      await durable;
    } catch (err) {
      return new MeridianError(ErrorCode.StorageIo, `cannot save the offsets region ${req.senderRegion} sent: ${(err as Error).message}`, { retriable: true, cause: err });
    }
    return null;
  }

  async handleProbe(req: ProbeRequest): Promise<ProbeResult> {
    const fail = (error: MeridianError): ProbeResult => ({ error, primary: '', epoch: -1, since: 0, partitions: [] });
    if (req.targetRegion !== this.region) return fail(new MeridianError(ErrorCode.ReplicationMisrouted, `this broker serves region ${this.region}, not ${req.targetRegion}`));
    const role = this.roleOf(req.topic);
    if (role === undefined) return fail(new MeridianError(ErrorCode.InvalidDrRequest, `topic ${req.topic} is not under a one-way or fan-out policy in region ${this.region}`));
    const info = this.topics.getTopic(req.topic);
    if (info === undefined) return fail(new MeridianError(ErrorCode.UnknownTopic, `topic ${req.topic} does not exist in region ${this.region}`));
    const logs = this.topics.partitions(req.topic);
    const ownKey = originKey(this.region, info.id);
    const partitions = await Promise.all(
      logs.map(async (log, partition) => {
        const st = await this.replicaStates.forLog(log);
        // Its own records are held up to its end; the others up to what the markers say.
        const origins: Array<[string, bigint]> = [...st.table.origins, [ownKey, log.highWatermark - 1n]];
        return { partition, heldOriginOffset: st.table.lastOrigin(req.senderRegion, req.senderTopicId), origins };
      }),
    );
    return { error: null, primary: role.primary, epoch: role.epoch, since: role.entry?.at ?? 0, partitions };
  }

  // ---- promote -----------------------------------------------------------------------

  /** The DR topics a scope names here; a scope naming nothing known is an error. */
  topicsOf(scope: PromoteScope): TopicRole[] {
    const policies = this.#opts.policies();
    if ('topic' in scope) {
      if (this.topics.getTopic(scope.topic) === undefined) throw new MeridianError(ErrorCode.UnknownTopic, `topic ${scope.topic} does not exist in region ${this.region}`);
      const role = this.roleOf(scope.topic);
      if (role === undefined) {
        const p = policyFor(policies, scope.topic);
        throw new MeridianError(ErrorCode.InvalidDrRequest, p === undefined ? `topic ${scope.topic} is not replicated (no policy matches it): there is nothing to promote` : `topic ${scope.topic} is under ${p.topology} policy '${p.name}', which writes in every region: only one-way and fan-out copies are promoted`);
      }
      return [role];
    }
    if ('policy' in scope) {
      const p = policies.find((x) => x.name === scope.policy);
      if (p === undefined) throw new MeridianError(ErrorCode.InvalidDrRequest, `no replication policy named '${scope.policy}' (known: ${policies.map((x) => x.name).join(', ') || 'none'})`);
      if (!isDrPolicy(p)) throw new MeridianError(ErrorCode.InvalidDrRequest, `policy '${p.name}' is ${p.topology}: only one-way and fan-out copies are promoted`);
      if (!p.regions.includes(this.region)) throw new MeridianError(ErrorCode.InvalidDrRequest, `policy '${p.name}' does not include region ${this.region}`);
      return this.topics
        .listTopics()
        .map((t) => this.roleOf(t.name))
        .filter((r): r is TopicRole => r !== undefined && r.policy.name === p.name && promotable(r, this.region));
    }
    if (scope.region !== this.region) {
      const known = this.#opts.regions().some((r) => r.name === scope.region);
      throw new MeridianError(ErrorCode.InvalidDrRequest, known ? `this is region ${this.region}: promote ${scope.region} against its own admin API` : `no region named ${scope.region} in replication.regions`);
    }
    // A whole region: the copies here (topics this region already leads are left alone).
    return this.topics
      .listTopics()
      .map((t) => this.roleOf(t.name))
      .filter((r): r is TopicRole => r !== undefined && promotable(r, this.region));
  }

  /**
   * Makes this region the primary of every DR topic in `scope` and reports each one's
   * recovery point. Per topic: the new role is persisted first (phase `promoting`: from
   * then on the old primary's data is refused and producers are accepted), then what is
   * held is flushed and measured, the report saved, and the phase set to `promoted`. A crash
   * in between leaves `promoting`, which the same command completes (same epoch, same
   * report id). A topic already promoted here answers its saved report.
   */
  async promote(scope: PromoteScope): Promise<PromoteReport[]> {
    const roles = this.topicsOf(scope);
    const out: PromoteReport[] = [];
    for (const role of roles) out.push(await this.#promoteTopic(role));
    return out;
  }

  async #promoteTopic(role: TopicRole): Promise<PromoteReport> {
    const e = role.entry;
    if (e !== undefined && e.primary === this.region && e.phase === 'promoted' && !superseded(role) && e.reportId !== undefined && this.reports.has(e.reportId)) return this.reports.get(e.reportId) as PromoteReport;
    if (!role.readOnly && e?.phase !== 'promoting') {
      throw new MeridianError(ErrorCode.InvalidDrRequest, `region ${this.region} is already the primary of ${role.topic} (policy '${role.policy.name}', epoch ${role.epoch}): nothing to promote`);
    }
    const resuming = e?.phase === 'promoting' && e.primary === this.region;
    // A region superseded by a newer primary takes over from that one, past its epoch.
    const by = role.primary === this.region ? e?.supersededBy : undefined;
    const formerPrimary = resuming ? ((e.failback as { formerPrimary?: string } | undefined)?.formerPrimary ?? policySource(role.policy)) : (by?.primary ?? role.primary);
    const epoch = resuming ? e.epoch : Math.max(role.epoch, by?.epoch ?? 0) + 1;
    let at = resuming ? e.at : Date.now();
    const id = reportId('promote', role.topic, epoch);
    const promoting: TopicDrEntry = { primary: this.region, epoch, phase: 'promoting', at, reportId: id, failback: { formerPrimary } };
    // Written before the first effect. On a cluster another broker may have changed the
    // role since it was read here (the same promote through it, or a peer's marking): the
    // same promotion is taken over, anything else is refused and the operator retries.
    await this.state.update(role.topic, (cur) => {
      if (cur?.primary === this.region && cur.epoch === epoch && (cur.phase === 'promoting' || cur.phase === 'promoted')) {
        at = cur.at;
        return KEEP;
      }
      // A newer primary noted meanwhile at this epoch or past it: this epoch would not be newer.
      if (!sameRole(cur, e) || (cur?.supersededBy?.epoch ?? -1) >= epoch) {
        throw new MeridianError(ErrorCode.InvalidDrRequest, `the DR role of ${role.topic} changed while this promote began (another broker of the region, or a peer's handshake): nothing was changed; run the promote again`, { retriable: true });
      }
      return promoting;
    });
    this.log.info({ topic: role.topic, formerPrimary, epoch }, 'promoting: inbound replication stopped, producers accepted');
    const partitions: RecoveryPartition[] = [];
    const logs = this.topics.partitions(role.topic);
    for (const [partition, log] of logs.entries()) {
      // A region cluster: a partition this broker holds no in-sync replica of is not measured
      // (its log here is empty, or behind what the leader acknowledged).
      if (this.holdsReplica !== undefined && !this.holdsReplica(role.topic, partition)) {
        partitions.push({ partition, lastOriginOffsetHeld: '-1', originEndOffset: null, originEndAgeMs: null, missingRecords: null, missingOffsets: null, missingSeconds: null, notMeasured: `this broker holds no in-sync replica of ${role.topic}/${partition}: promote through a broker in its ISR to measure it` });
        continue;
      }
      // Appends admitted before the role changed finish first: the report counts what is durable.
      await log.flush();
      partitions.push(await this.#recoveryPoint(role.topic, partition, log, formerPrimary, at));
    }
    const known = partitions.every((p) => p.missingRecords !== null);
    const report: PromoteReport = {
      kind: 'promote',
      id,
      topic: role.topic,
      region: this.region,
      formerPrimary,
      epoch,
      policy: role.policy.name,
      at: new Date(at).toISOString(),
      partitions,
      totals: {
        missingRecords: known ? String(partitions.reduce((n, p) => n + BigInt(p.missingRecords!), 0n)) : null,
        maxMissingSeconds: partitions.some((p) => p.missingSeconds !== null) ? Math.max(...partitions.map((p) => p.missingSeconds ?? 0)) : null,
      },
    };
    // The report and the phase that names it are written together (one etcd transaction on a
    // cluster; report first on a single broker). Only over this promote's own `promoting`: the
    // role may have changed while the recovery point was measured (a peer's newer epoch noted,
    // which must stay; the topic deleted, whose entry must not come back; another promote).
    let kept = false;
    await this.state.update(
      role.topic,
      (cur) => {
        if (cur?.primary !== this.region || cur.epoch !== epoch || (cur.phase !== 'promoting' && cur.phase !== 'promoted')) {
          throw new MeridianError(ErrorCode.InvalidDrRequest, `the DR role of ${role.topic} changed during this promote (now ${cur === undefined ? "the policy's default" : `${cur.primary} at epoch ${cur.epoch}, ${cur.phase}`}; another broker of the region, a peer's handshake, or the topic deleted): its report was not written; run the promote again`, { retriable: true });
        }
        // Completed meanwhile by the same promote through another broker: that one's report stands.
        if (cur.phase === 'promoted') {
          kept = true;
          return KEEP;
        }
        const by = cur.supersededBy !== undefined && cur.supersededBy.epoch > epoch ? { supersededBy: cur.supersededBy } : {};
        return { primary: this.region, epoch, phase: 'promoted', at, reportId: id, failback: { formerPrimary }, ...by };
      },
      report,
    );
    if (kept && this.reports.has(id)) return this.reports.get(id) as PromoteReport;
    this.log.info({ topic: role.topic, epoch, missingRecords: report.totals.missingRecords, maxMissingSeconds: report.totals.maxMissingSeconds, report: id }, 'promoted: this region is the primary');
    return report;
  }

  async #recoveryPoint(topic: string, partition: number, log: PartitionLog, formerPrimary: string, at: number): Promise<RecoveryPartition> {
    const state = await this.replicaStates.forLog(log);
    const end = this.remote.endOf(topic, partition, formerPrimary);
    // The former primary's topic id: from its last report, else from what the markers say.
    const prefix = `${formerPrimary}/`;
    const topicId = end?.topicId ?? [...state.table.origins.keys()].find((k) => k.startsWith(prefix))?.slice(prefix.length);
    const held = topicId === undefined ? -1n : state.table.lastOrigin(formerPrimary, topicId);
    if (end === undefined) {
      return { partition, lastOriginOffsetHeld: String(held), originEndOffset: null, originEndAgeMs: null, missingRecords: null, missingOffsets: null, missingSeconds: null };
    }
    const missing = end.endOffset - (held + 1n) > 0n ? end.endOffset - (held + 1n) : 0n;
    const heldTs = missing > 0n ? await this.#lastTimestamp(topic, partition) : -1;
    return {
      partition,
      lastOriginOffsetHeld: String(held),
      originEndOffset: String(end.endOffset),
      originEndAgeMs: Math.max(0, at - end.receivedAt),
      missingRecords: String(missing),
      missingOffsets: missing > 0n ? { first: String(held + 1n), last: String(end.endOffset - 1n) } : null,
      missingSeconds: missing > 0n && end.lastTimestamp >= 0 ? Math.max(0, end.lastTimestamp - (heldTs >= 0 ? heldTs : end.lastTimestamp)) / 1000 : 0,
    };
  }

  /** The largest timestamp of a partition's last data batch (-1: empty): without a promise when the log has its header in memory. */
  #lastTimestamp(topic: string, partition: number): number | Promise<number> {
    const log = this.topics.partition(topic, partition);
    if (log === undefined || log.highWatermark <= log.logStartOffset) return -1;
    const end = log.highWatermark - 1n;
    const known = log.cachedBatchHeaderAt(end);
    if (known !== undefined) return Number(known.maxTimestamp);
    return log.batchHeaderAt(end).then((h) => (h === undefined ? -1 : Number(h.maxTimestamp)));
  }

  // ---- status ------------------------------------------------------------------------

  /**
   * Each DR topic's role here; for a copy, the primary's partition ends as last reported
   * (what a promote now would measure against) and the age of each report.
   */
  topicStatus(): Array<{ topic: string; policy: string; topology: string; primary: string; epoch: number; readOnly: boolean; phase: string; since: number | null; reportId: string | null; primaryEnds: Array<{ partition: number; endOffset: string; ageMs: number }> }> {
    const now = Date.now();
    return this.topics
      .listTopics()
      .map((t) => this.roleOf(t.name))
      .filter((r): r is TopicRole => r !== undefined)
      .map((r) => ({
        topic: r.topic,
        policy: r.policy.name,
        topology: r.policy.topology,
        primary: r.primary,
        epoch: r.epoch,
        readOnly: r.readOnly,
        phase: r.entry?.phase ?? 'policy',
        since: r.entry?.at ?? null,
        reportId: r.entry?.reportId ?? null,
        primaryEnds: r.readOnly
          ? this.topics.partitions(r.topic).flatMap((_log, partition) => {
              const e = this.remote.endOf(r.topic, partition, r.primary);
              return e === undefined ? [] : [{ partition, endOffset: String(e.endOffset), ageMs: now - e.receivedAt }];
            })
          : [],
      }));
  }

  syncStatus(): PeerSyncStatus[] {
    return this.publisher.status();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#offCommits();
    this.#clamp?.close();
    this.publisher.close();
    await this.remote.flush();
    const idx = [...this.#indexes.values()];
    this.#indexes.clear();
    await Promise.allSettled(idx.map(async (p) => (await p).close()));
  }

  /** Forgets a log's index (its topic was deleted or the log is being truncated); resolves once it is closed. */
  async dropIndex(log: PartitionLog): Promise<void> {
    const p = this.#indexes.get(log);
    this.#indexes.delete(log);
    await p?.then((i) => i.close()).catch(() => {});
  }

  /** Forgets what this region keeps for topics that no longer exist here (a topic deletion). */
  forgetDeletedTopics(): void {
    const live = new Set(this.topics.listTopics().map((t) => t.name));
    for (const [topic] of this.state.entries()) {
      // On a cluster every broker hears the deletion: the first removes the entry, the others find it gone.
      if (!live.has(topic)) void this.state.update(topic, (e) => (e === undefined || this.topics.getTopic(topic) !== undefined ? KEEP : undefined)).catch((err: unknown) => this.log.error({ err, topic }, 'could not forget the DR role of a deleted topic'));
    }
    for (const topic of this.remote.topics()) if (!live.has(topic)) this.remote.dropTopic(topic);
    const logs = new Set(this.topics.listTopics().flatMap((t) => [...this.topics.partitions(t.name)]));
    for (const log of [...this.#indexes.keys()]) if (!logs.has(log)) void this.dropIndex(log);
    for (const [k, c] of this.#conflicts) if (!live.has(c.topic)) this.#conflicts.delete(k);
  }
}
