/**
 * The membership state machine of one classic consumer group, after Kafka's
 * GroupCoordinator.scala and franz-go's kfake/groups.go (the rules: broker/groups/README.md).
 *
 *   Empty --join--> PreparingRebalance --all rejoined / rebalance timeout--> CompletingRebalance
 *   CompletingRebalance --leader's SyncGroup--> Stable
 *   Stable / CompletingRebalance --join, leave, session expiry--> PreparingRebalance
 *   PreparingRebalance --nobody left--> Empty;  shutdown() --> Dead
 *
 * Held requests: a JoinGroup in PreparingRebalance resolves when every member (and every
 * member id handed out with MEMBER_ID_REQUIRED) has rejoined, or when the largest rebalance
 * timeout of the members passes; members that did not rejoin are then removed. When the
 * group was Empty the join waits `initialRebalanceDelayMs` instead (Kafka's
 * group.initial.rebalance.delay.ms), extended by that delay, within the rebalance timeout,
 * while new members keep arriving, so a starting fleet lands in one generation. A follower's
 * SyncGroup resolves when the leader's arrives. With `recordGeneration` (a region cluster),
 * the leader's SyncGroup first stores the generation and every member's SyncGroup is answered
 * only once that is durable, as Kafka's doSyncGroup waits for storeGroup; if storing fails,
 * they all get its error and the group rebalances (Kafka's resetAndPropagateAssignmentError).
 *
 * Concurrency: every method runs to completion on the event loop; results are delivered by
 * resolving promises, never by re-entering the caller. Timers (join deadline, member
 * sessions, pending member ids) are unref'd and all cleared by `shutdown()`.
 *
 * Static membership (group.instance.id) is handled for correctness, not speed: a static
 * member that rejoins with an empty member id gets a new id, its old id is fenced
 * (FENCED_INSTANCE), and the group rebalances; Kafka's no-rebalance shortcut is omitted.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { MeridianError } from '../../errors.js';
import {
  GroupState,
  type DescribedGroup,
  type HeartbeatRequest,
  type JoinGroupRequest,
  type JoinGroupResult,
  type SyncGroupRequest,
  type SyncGroupResult,
} from './group-api.js';
import { EMPTY_BYTES, GroupMember } from './group-member.js';
import { coordinatorClosed, fencedInstance, generationNotStored, groupTooLarge, groupUnloaded, illegalGeneration, inconsistentProtocol, rebalanceInProgress, unknownMember } from './group-errors.js';
import { joinError, memberIdRequired, syncError } from './group-results.js';
import { subscribedTopicsOf } from './consumer-subscription.js';
import { JoinDeadline } from './join-deadline.js';
import { selectProtocol, supportsProtocols } from './protocol-selection.js';

export interface ConsumerGroupOptions {
  initialRebalanceDelayMs: number;
  maxGroupSize: number;
  logger?: Logger;
  /** Called when the group has become Empty with no member left, pending ids included. */
  onIdle: (group: ConsumerGroup) => void;
  /**
   * Region clusters: the generation a group continues from when a new coordinator loads it
   * (the last GROUP_METADATA record of its offsets partition), so numbers are not reused.
   */
  initialGeneration?: { generationId: number; protocolType: string | null };
  /**
   * Stores the group's generation durably (region clusters: a GROUP_METADATA record the
   * in-sync replicas hold). Awaited by the leader's SyncGroup before anyone's is answered, so a
   * coordinator elected next never hands out a generation a member has already synced in;
   * called without waiting when a rebalance leaves the group Empty. Without it (a single
   * broker) SyncGroup answers at once.
   */
  recordGeneration?: (group: ConsumerGroup) => Promise<void>;
}

export class ConsumerGroup {
  readonly groupId: string;
  #state: GroupState = GroupState.Empty;
  #generation = 0;
  #protocolType: string | null = null;
  #protocolName: string | null = null;
  #leaderId: string | null = null;
  /** Insertion order is join order: the next leader is the oldest member. */
  #members = new Map<string, GroupMember>();
  /** group.instance.id -> member id */
  #staticMembers = new Map<string, string>();
  /** Ids handed out with MEMBER_ID_REQUIRED, expiring after the session timeout. */
  #pending = new Map<string, NodeJS.Timeout>();
  #deadline = new JoinDeadline(() => this.#completeJoin());
  #options: ConsumerGroupOptions;
  #log: Logger | undefined;
  #rebalances = 0;
  /** The generation whose record the leader's SyncGroup is storing (-1: none). */
  #storing = -1;

  constructor(groupId: string, options: ConsumerGroupOptions) {
    this.groupId = groupId;
    this.#options = options;
    this.#log = options.logger?.child({ groupId });
    if (options.initialGeneration !== undefined) {
      this.#generation = options.initialGeneration.generationId;
      this.#protocolType = options.initialGeneration.protocolType;
    }
  }

  /** The protocol chosen in this generation (null while none is). */
  get protocolName(): string | null {
    return this.#protocolName;
  }

  /** The member that leads this generation (null without members). */
  get leaderId(): string | null {
    return this.#leaderId;
  }

  get state(): GroupState {
    return this.#state;
  }

  get generationId(): number {
    return this.#generation;
  }

  get protocolType(): string | null {
    return this.#protocolType;
  }

  get memberCount(): number {
    return this.#members.size;
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Generations completed with at least one member. */
  get rebalances(): number {
    return this.#rebalances;
  }

  get isIdle(): boolean {
    return this.#state === GroupState.Empty && this.#members.size === 0 && this.#pending.size === 0;
  }

  join(req: JoinGroupRequest): Promise<JoinGroupResult> {
    if (this.#state === GroupState.Dead) return done(joinError(req.memberId, groupUnloaded(this.groupId)));
    if (!supportsProtocols([...this.#members.values()], this.#protocolType, req.protocolType, req.protocols)) return done(joinError(req.memberId, inconsistentProtocol(this.groupId)));
    return req.memberId === '' ? this.#joinNew(req) : this.#joinKnown(req);
  }

  sync(req: SyncGroupRequest): Promise<SyncGroupResult> {
    const m = this.#members.get(req.memberId);
    if (this.#isFenced(req.memberId, req.groupInstanceId)) return done(syncError(this.#fenced(req.groupInstanceId)));
    if (m === undefined) return done(syncError(unknownMember(this.groupId, req.memberId)));
    if (req.generationId !== this.#generation) return done(syncError(illegalGeneration(this.groupId, req.generationId, this.#generation)));
    if ((req.protocolType !== null && req.protocolType !== this.#protocolType) || (req.protocolName !== null && req.protocolName !== this.#protocolName)) {
      return done(syncError(inconsistentProtocol(this.groupId)));
    }
    switch (this.#state) {
      case GroupState.PreparingRebalance:
        return done(syncError(rebalanceInProgress(this.groupId)));
      case GroupState.Stable:
        m.touch();
        return done(this.#syncOk(m.assignment));
      case GroupState.CompletingRebalance: {
        const result = new Promise<SyncGroupResult>((resolve) => {
          const previous = m.syncWaiter;
          m.syncWaiter = resolve;
          previous?.(syncError(rebalanceInProgress(this.groupId)));
        });
        m.touch();
        if (m.memberId === this.#leaderId) this.#leaderSynced(req.assignments);
        return result;
      }
      default:
        return done(syncError(unknownMember(this.groupId, req.memberId)));
    }
  }

  /**
   * Kafka's handleHeartbeat, in its order: unknown member, wrong generation, then
   * REBALANCE_IN_PROGRESS while preparing a rebalance (how members learn to rejoin).
   */
  heartbeat(req: HeartbeatRequest): MeridianError | null {
    if (this.#isFenced(req.memberId, req.groupInstanceId)) return this.#fenced(req.groupInstanceId);
    const m = this.#members.get(req.memberId);
    if (m === undefined) return unknownMember(this.groupId, req.memberId);
    if (req.generationId !== this.#generation) return illegalGeneration(this.groupId, req.generationId, this.#generation);
    m.touch();
    return this.#state === GroupState.PreparingRebalance ? rebalanceInProgress(this.groupId) : null;
  }

  /**
   * The topics the members subscribe to, read from their metadata for the selected protocol
   * (Kafka's GroupMetadata.subscribedTopics); null when that cannot be known: a protocol
   * type other than "consumer", no protocol selected yet, or metadata that does not parse.
   */
  subscribedTopics(): ReadonlySet<string> | null {
    if (this.#protocolType !== 'consumer' || this.#protocolName === null) return null;
    const topics = new Set<string>();
    for (const m of this.#members.values()) {
      const subscribed = subscribedTopicsOf(m.metadataFor(this.#protocolName));
      if (subscribed === null) return null;
      for (const t of subscribed) topics.add(t);
    }
    return topics;
  }

  /** One member of a LeaveGroup; v3+ may name a static member by instance id alone, v5+ says why. */
  leave(memberId: string, groupInstanceId: string | null, reason: string | null = null): MeridianError | null {
    let id = memberId;
    if (id === '' && groupInstanceId !== null) id = this.#staticMembers.get(groupInstanceId) ?? '';
    else if (this.#isFenced(id, groupInstanceId)) return this.#fenced(groupInstanceId);
    if (this.#pending.has(id)) {
      this.#removePending(id);
      return null;
    }
    const m = this.#members.get(id);
    if (m === undefined) return unknownMember(this.groupId, id);
    this.#removeMemberAndUpdate(m, reason === null ? 'left the group' : `left the group (${reason})`);
    return null;
  }

  /** May this member commit offsets now? Kafka's doCommitOffsets checks, in its order. */
  checkCommit(generationId: number, memberId: string, groupInstanceId: string | null): MeridianError | null {
    if (this.#state === GroupState.Dead) return groupUnloaded(this.groupId);
    if (this.#isFenced(memberId, groupInstanceId)) return this.#fenced(groupInstanceId);
    if (generationId < 0 && this.#state === GroupState.Empty) return null; // a "simple" commit
    const m = this.#members.get(memberId);
    if (m === undefined) return unknownMember(this.groupId, memberId);
    if (generationId !== this.#generation) return illegalGeneration(this.groupId, generationId, this.#generation);
    if (this.#state === GroupState.CompletingRebalance) return rebalanceInProgress(this.groupId);
    m.touch();
    return null;
  }

  describe(): DescribedGroup {
    const stable = this.#state === GroupState.Stable;
    return {
      error: null,
      groupId: this.groupId,
      groupState: this.#state,
      protocolType: this.#protocolType ?? '',
      protocolData: stable ? (this.#protocolName ?? '') : '',
      members: [...this.#members.values()].map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        clientHost: m.clientHost,
        memberMetadata: stable ? m.metadataFor(this.#protocolName) : EMPTY_BYTES,
        memberAssignment: stable ? m.assignment : EMPTY_BYTES,
      })),
    };
  }

  /** Clears every timer and answers held requests with COORDINATOR_CLOSED (Kafka's unload). */
  shutdown(): void {
    this.#state = GroupState.Dead;
    this.#deadline.cancel();
    for (const t of this.#pending.values()) clearTimeout(t);
    this.#pending.clear();
    for (const m of this.#members.values()) this.#answerWaiters(m, coordinatorClosed());
    for (const m of this.#members.values()) m.stop();
  }

  #joinNew(req: JoinGroupRequest): Promise<JoinGroupResult> {
    const memberId = `${req.groupInstanceId ?? req.clientId}-${randomUUID()}`;
    const staticId = req.groupInstanceId === null ? undefined : this.#staticMembers.get(req.groupInstanceId);
    if (staticId !== undefined) return this.#updateMemberAndRebalance(this.#replaceStaticMember(staticId, memberId), req);
    if (this.#members.size + this.#pending.size >= this.#options.maxGroupSize) return done(joinError('', groupTooLarge(this.groupId, this.#options.maxGroupSize)));
    if (req.groupInstanceId === null && req.requireKnownMemberId) {
      const timer = setTimeout(() => this.#removePending(memberId), req.sessionTimeoutMs);
      timer.unref();
      this.#pending.set(memberId, timer);
      return done(memberIdRequired(memberId));
    }
    return this.#addMemberAndRebalance(memberId, req);
  }

  #joinKnown(req: JoinGroupRequest): Promise<JoinGroupResult> {
    const { memberId } = req;
    const pending = this.#pending.get(memberId);
    if (pending !== undefined) {
      clearTimeout(pending);
      this.#pending.delete(memberId);
      return this.#addMemberAndRebalance(memberId, req);
    }
    if (this.#isFenced(memberId, req.groupInstanceId)) return done(joinError(memberId, this.#fenced(req.groupInstanceId)));
    const m = this.#members.get(memberId);
    if (m === undefined || m.groupInstanceId !== req.groupInstanceId) return done(joinError(memberId, unknownMember(this.groupId, memberId)));
    switch (this.#state) {
      case GroupState.PreparingRebalance:
        return this.#updateMemberAndRebalance(m, req);
      case GroupState.CompletingRebalance:
      case GroupState.Stable:
        // A follower rejoining with unchanged metadata (or anyone whose JoinGroup response
        // was lost before the leader synced) gets the current generation again; a leader
        // in Stable, or changed metadata, means a new rebalance.
        if (m.sameProtocols(req.protocols) && (this.#state === GroupState.CompletingRebalance || m.memberId !== this.#leaderId)) {
          m.update(req);
          m.touch();
          return done(this.#joinResult(m));
        }
        return this.#updateMemberAndRebalance(m, req);
      default:
        return done(joinError(memberId, unknownMember(this.groupId, memberId)));
    }
  }

  #addMemberAndRebalance(memberId: string, req: JoinGroupRequest): Promise<JoinGroupResult> {
    const m = new GroupMember(memberId, req, (expired) => this.#onSessionExpired(expired));
    if (this.#members.size === 0) this.#protocolType = req.protocolType;
    this.#members.set(memberId, m);
    if (req.groupInstanceId !== null) this.#staticMembers.set(req.groupInstanceId, memberId);
    this.#leaderId ??= memberId;
    this.#deadline.noteNewMember();
    return this.#awaitRebalance(m, withReason(`member ${memberId} joined`, req.reason));
  }

  #updateMemberAndRebalance(m: GroupMember, req: JoinGroupRequest): Promise<JoinGroupResult> {
    m.update(req);
    return this.#awaitRebalance(m, withReason(`member ${m.memberId} rejoined`, req.reason));
  }

  #awaitRebalance(m: GroupMember, reason: string): Promise<JoinGroupResult> {
    const result = new Promise<JoinGroupResult>((resolve) => {
      const previous = m.joinWaiter;
      m.joinWaiter = resolve;
      previous?.(joinError(m.memberId, rebalanceInProgress(this.groupId))); // superseded by this rejoin
    });
    m.touch();
    if (this.#state === GroupState.PreparingRebalance) this.#maybeCompleteJoin();
    else this.#prepareRebalance(reason);
    return result;
  }

  #prepareRebalance(reason: string): void {
    if (this.#state === GroupState.CompletingRebalance) {
      // The leader's assignment for this generation will never come; release the waiters.
      for (const m of this.#members.values()) {
        m.assignment = EMPTY_BYTES;
        const waiter = m.syncWaiter;
        m.syncWaiter = undefined;
        waiter?.(syncError(rebalanceInProgress(this.groupId)));
      }
    }
    const wasEmpty = this.#state === GroupState.Empty;
    this.#state = GroupState.PreparingRebalance;
    const rebalanceTimeoutMs = Math.max(0, ...[...this.#members.values()].map((m) => m.rebalanceTimeoutMs));
    this.#log?.info({ reason, generationId: this.#generation, members: this.#members.size }, 'preparing rebalance');
    if (wasEmpty) {
      this.#deadline.startInitial(this.#options.initialRebalanceDelayMs, rebalanceTimeoutMs);
    } else {
      this.#deadline.start(rebalanceTimeoutMs);
      this.#maybeCompleteJoin();
    }
  }

  #maybeCompleteJoin(): void {
    if (this.#state !== GroupState.PreparingRebalance || this.#deadline.initialPhase || this.#pending.size > 0) return;
    for (const m of this.#members.values()) if (m.joinWaiter === undefined) return;
    this.#completeJoin();
  }

  #completeJoin(): void {
    this.#deadline.cancel();
    if (this.#state !== GroupState.PreparingRebalance) return;
    for (const m of [...this.#members.values()]) {
      if (m.joinWaiter === undefined) this.#dropMember(m, 'did not rejoin within the rebalance timeout');
    }
    this.#generation++;
    if (this.#members.size === 0) {
      this.#protocolName = null;
      this.#state = GroupState.Empty;
      this.#log?.info({ generationId: this.#generation }, 'group is empty');
      // Not waited for (nobody is answered from it), as Kafka stores an empty group's.
      this.#options.recordGeneration?.(this).catch((err: unknown) => this.#log?.warn({ err, generationId: this.#generation }, 'the empty group\'s generation was not recorded'));
      if (this.isIdle) this.#options.onIdle(this);
      return;
    }
    const members = [...this.#members.values()];
    this.#protocolName = selectProtocol(members, this.#members.get(this.#leaderId ?? '') ?? members[0]);
    this.#state = GroupState.CompletingRebalance;
    this.#rebalances++;
    this.#log?.info({ generationId: this.#generation, protocol: this.#protocolName, leader: this.#leaderId, members: this.#members.size }, 'rebalance completed');
    for (const m of this.#members.values()) {
      const waiter = m.joinWaiter;
      m.joinWaiter = undefined;
      m.touch();
      waiter?.(this.#joinResult(m));
    }
  }

  /**
   * The leader's SyncGroup in CompletingRebalance: store the generation (when the coordinator
   * stores them), then hand out the assignment, unless the group moved on meanwhile (a rebalance,
   * an unload) and answered the waiters itself. A second SyncGroup of the leader while storing
   * only waits with the others.
   */
  #leaderSynced(assignments: SyncGroupRequest['assignments']): void {
    const record = this.#options.recordGeneration;
    if (record === undefined) return this.#assign(assignments);
    if (this.#storing === this.#generation) return;
    const generation = this.#generation;
    this.#storing = generation;
    const current = () => this.#state === GroupState.CompletingRebalance && this.#generation === generation;
    record(this).then(
      () => {
        if (current()) this.#assign(assignments);
      },
      (err: unknown) => {
        if (!current()) return;
        const error = generationNotStored(err, this.groupId, generation);
        this.#log?.warn({ err: error, generationId: generation }, 'the generation was not stored: the members get the error and rejoin');
        for (const m of this.#members.values()) {
          m.assignment = EMPTY_BYTES;
          const waiter = m.syncWaiter;
          m.syncWaiter = undefined;
          waiter?.(syncError(error));
        }
        this.#prepareRebalance(`generation ${generation} was not stored`);
      },
    );
  }

  #assign(assignments: SyncGroupRequest['assignments']): void {
    const given = new Map(assignments.map((a) => [a.memberId, a.assignment]));
    this.#state = GroupState.Stable;
    for (const m of this.#members.values()) {
      const bytes = given.get(m.memberId);
      // Members the leader left out (KafkaJS omits those without partitions) get empty bytes.
      m.assignment = bytes === undefined ? EMPTY_BYTES : Buffer.from(bytes);
      const waiter = m.syncWaiter;
      m.syncWaiter = undefined;
      if (waiter !== undefined) {
        m.touch();
        waiter(this.#syncOk(m.assignment));
      }
    }
    this.#log?.debug({ generationId: this.#generation }, 'group is stable');
  }

  #removeMemberAndUpdate(m: GroupMember, reason: string): void {
    this.#dropMember(m, reason);
    if (this.#state === GroupState.Stable || this.#state === GroupState.CompletingRebalance) this.#prepareRebalance(`member ${m.memberId} ${reason}`);
    else if (this.#state === GroupState.PreparingRebalance) this.#maybeCompleteJoin();
  }

  #dropMember(m: GroupMember, reason: string): void {
    m.stop();
    this.#members.delete(m.memberId);
    if (m.groupInstanceId !== null && this.#staticMembers.get(m.groupInstanceId) === m.memberId) this.#staticMembers.delete(m.groupInstanceId);
    if (this.#leaderId === m.memberId) this.#leaderId = this.#members.keys().next().value ?? null;
    this.#answerWaiters(m, unknownMember(this.groupId, m.memberId));
    this.#log?.info({ memberId: m.memberId, clientId: m.clientId, reason }, 'member removed');
  }

  #replaceStaticMember(oldId: string, newId: string): GroupMember {
    const m = this.#members.get(oldId) as GroupMember;
    this.#answerWaiters(m, fencedInstance(this.groupId, m.groupInstanceId as string));
    this.#members.delete(oldId);
    m.memberId = newId;
    this.#members.set(newId, m);
    this.#staticMembers.set(m.groupInstanceId as string, newId);
    if (this.#leaderId === oldId) this.#leaderId = newId;
    return m;
  }

  #onSessionExpired(m: GroupMember): void {
    if (this.#members.get(m.memberId) !== m) return;
    this.#removeMemberAndUpdate(m, `session expired after ${m.sessionTimeoutMs} ms`);
  }

  #removePending(memberId: string): void {
    clearTimeout(this.#pending.get(memberId));
    if (!this.#pending.delete(memberId)) return;
    this.#maybeCompleteJoin();
    if (this.isIdle) this.#options.onIdle(this);
  }

  #answerWaiters(m: GroupMember, error: MeridianError): void {
    const join = m.joinWaiter;
    const sync = m.syncWaiter;
    m.joinWaiter = undefined;
    m.syncWaiter = undefined;
    join?.(joinError(m.memberId, error));
    sync?.(syncError(error));
  }

  /** A group.instance.id now owned by another member id: the caller is a zombie. */
  #isFenced(memberId: string, groupInstanceId: string | null): boolean {
    if (groupInstanceId === null) return false;
    const owner = this.#staticMembers.get(groupInstanceId);
    return owner !== undefined && owner !== memberId;
  }

  /** The answer to a request `#isFenced` refused (its instance id is therefore not null). */
  #fenced(groupInstanceId: string | null): MeridianError {
    return fencedInstance(this.groupId, groupInstanceId ?? '');
  }

  #joinResult(m: GroupMember): JoinGroupResult {
    const isLeader = m.memberId === this.#leaderId;
    return {
      error: null,
      memberIdRequired: false,
      generationId: this.#generation,
      protocolType: this.#protocolType,
      protocolName: this.#protocolName,
      leader: this.#leaderId ?? '',
      memberId: m.memberId,
      members: isLeader
        ? [...this.#members.values()].map((x) => ({ memberId: x.memberId, groupInstanceId: x.groupInstanceId, metadata: x.metadataFor(this.#protocolName) }))
        : [],
    };
  }

  #syncOk(assignment: Buffer): SyncGroupResult {
    return { error: null, protocolType: this.#protocolType, protocolName: this.#protocolName, assignment };
  }
}

/** A client's own reason (JoinGroup v8+, KIP-800) appended to the log line's. */
function withReason(what: string, reason: string | null | undefined): string {
  return reason === null || reason === undefined || reason === '' ? what : `${what} (${reason})`;
}

function done<T>(value: T): Promise<T> {
  return Promise.resolve(value);
}
