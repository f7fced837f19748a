/**
 * The consumer-group APIs: thin translations between the wire messages and the group
 * coordinator (broker/groups), which owns the state machine and the committed offsets.
 * This broker is the coordinator of every group (one broker per region).
 *
 * The coordinator's results carry Meridian errors; here, and only here, they become Kafka
 * error codes, through the one mapping (kafkaErrorCodeOf). MEMBER_ID_REQUIRED is the one
 * Kafka code a group handler writes itself: it is JoinGroup v4+'s first round trip, not an
 * error, and the coordinator's result says so as `memberIdRequired`.
 *
 * Authorization (authorize.ts), as Kafka's KafkaApis: JoinGroup, SyncGroup, Heartbeat and
 * LeaveGroup need READ on the group; OffsetCommit READ on the group and on each topic;
 * OffsetFetch and DescribeGroups DESCRIBE on the group (OffsetFetch leaves out, or answers
 * TOPIC_AUTHORIZATION_FAILED for, topics the requester may not DESCRIBE); DeleteGroups DELETE
 * on each group; OffsetDelete DELETE on the group and READ on each topic; ListGroups lists
 * every group to who may DESCRIBE the cluster, else the groups the requester may DESCRIBE.
 * A denied group is GROUP_AUTHORIZATION_FAILED, a denied topic's partitions
 * TOPIC_AUTHORIZATION_FAILED; the coordinator never sees either.
 */
import { ErrorCode, MeridianError } from '../../errors.js';
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import type { RequestContext } from '../../protocol/kafka/connection.js';
import { kafkaCode, kafkaErrorCodeOf } from '../../protocol/kafka/error-mapping.js';
import type { DeleteGroupsRequest, DeleteGroupsResponse } from '../../protocol/kafka/messages/delete-groups.js';
import type { DescribeGroupsRequest, DescribeGroupsResponse } from '../../protocol/kafka/messages/describe-groups.js';
import type { HeartbeatRequest, HeartbeatResponse } from '../../protocol/kafka/messages/heartbeat.js';
import type { JoinGroupRequest, JoinGroupResponse } from '../../protocol/kafka/messages/join-group.js';
import type { LeaveGroupRequest, LeaveGroupResponse } from '../../protocol/kafka/messages/leave-group.js';
import type { ListGroupsRequest, ListGroupsResponse } from '../../protocol/kafka/messages/list-groups.js';
import type { OffsetCommitRequest, OffsetCommitResponse } from '../../protocol/kafka/messages/offset-commit.js';
import type { OffsetDeleteRequest, OffsetDeleteResponse } from '../../protocol/kafka/messages/offset-delete.js';
import type { OffsetFetchRequest, OffsetFetchResponse, OffsetFetchResponseGroup } from '../../protocol/kafka/messages/offset-fetch.js';
import type { SyncGroupRequest, SyncGroupResponse } from '../../protocol/kafka/messages/sync-group.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import type { OffsetFetchResult } from '../groups/group-api.js';
import { CLUSTER_RESOURCE_NAME } from '../../security/acl.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';
import { AclOperation, authorizedOperations, denial, may, ResourceType, sees, SUPPORTED_OPERATIONS, UNKNOWN_REQUESTER, OPERATIONS_NOT_PROVIDED, type Requester } from './authorize.js';

/**
 * Every version of Kafka's schema, from 0 (librdkafka enables its balanced consumer only if
 * the ranges overlap v0, and old clients send OffsetCommit v0-1 without asking).
 */
export const GROUP_APIS: readonly KafkaApiEntry[] = [
  { key: ApiKey.JoinGroup, versions: [0, 9], handle: (d, c, req, v) => handleJoinGroup(d, c, req, v) },
  { key: ApiKey.SyncGroup, versions: [0, 5], handle: (d, c, req) => handleSyncGroup(d, req, c) },
  { key: ApiKey.Heartbeat, versions: [0, 4], handle: (d, c, req) => handleHeartbeat(d, req, c) },
  { key: ApiKey.LeaveGroup, versions: [0, 5], handle: (d, c, req, v) => handleLeaveGroup(d, req, v, c) },
  { key: ApiKey.OffsetCommit, versions: [0, 9], handle: (d, c, req, v) => handleOffsetCommit(d, req, v, c) },
  { key: ApiKey.OffsetFetch, versions: [0, 9], handle: (d, c, req, v) => handleOffsetFetch(d, req, v, c) },
  { key: ApiKey.DescribeGroups, versions: [0, 5], handle: (d, c, req) => handleDescribeGroups(d, req, c) },
  { key: ApiKey.ListGroups, versions: [0, 5], handle: (d, c, req) => handleListGroups(d, req, c) },
  { key: ApiKey.DeleteGroups, versions: [0, 2], handle: (d, c, req) => handleDeleteGroups(d, req, c) },
  { key: ApiKey.OffsetDelete, versions: [0, 0], handle: (d, c, req) => handleOffsetDelete(d, req, c) },
];

/** The error of a group request the requester may not make: null when allowed. */
function groupDenied(deps: KafkaApiDeps, who: Requester, op: AclOperation, groupId: string): MeridianError | null {
  return may(deps, who, op, ResourceType.Group, groupId) ? null : denial(who, op, ResourceType.Group, groupId);
}

/** The error of a topic the requester may not `op` on: null when allowed. */
function topicDenied(deps: KafkaApiDeps, who: Requester, op: AclOperation, topic: string): MeridianError | null {
  return may(deps, who, op, ResourceType.Topic, topic) ? null : denial(who, op, ResourceType.Topic, topic);
}
/** The type of every group here (ListGroups v5, KIP-848: the classic protocol's groups are "classic"). */
const CLASSIC = 'classic';

export async function handleJoinGroup(deps: KafkaApiDeps, ctx: RequestContext, req: JoinGroupRequest, version: number): Promise<JoinGroupResponse> {
  const denied = groupDenied(deps, ctx, AclOperation.Read, req.groupId);
  if (denied !== null) {
    return { throttleTimeMs: 0, errorCode: kafkaErrorCodeOf(denied), generationId: -1, protocolType: null, protocolName: version >= 7 ? null : '', leader: '', skipAssignment: false, memberId: '', members: [] };
  }
  const r = await deps.groups.joinGroup({
    groupId: req.groupId,
    memberId: req.memberId,
    groupInstanceId: req.groupInstanceId,
    protocolType: req.protocolType,
    protocols: req.protocols.map((p) => ({ name: p.name, metadata: Buffer.from(p.metadata) })),
    sessionTimeoutMs: req.sessionTimeoutMs,
    // JoinGroup v0 has no rebalance timeout: Kafka uses the session timeout (brod#465).
    rebalanceTimeoutMs: version === 0 ? req.sessionTimeoutMs : req.rebalanceTimeoutMs,
    clientId: ctx.header.clientId ?? '',
    clientHost: ctx.clientHost,
    requireKnownMemberId: version >= 4,
    reason: req.reason,
  });
  return {
    throttleTimeMs: 0,
    errorCode: r.memberIdRequired ? kafkaCode('MEMBER_ID_REQUIRED') : kafkaErrorCodeOf(r.error),
    generationId: r.generationId,
    protocolType: r.protocolType,
    // Not nullable before v7: an absent protocol is the empty string there.
    protocolName: r.protocolName ?? (version >= 7 ? null : ''),
    leader: r.leader,
    skipAssignment: false,
    memberId: r.memberId,
    members: r.members.map((m) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId, metadata: m.metadata })),
  };
}

export async function handleSyncGroup(deps: KafkaApiDeps, req: SyncGroupRequest, who: Requester = UNKNOWN_REQUESTER): Promise<SyncGroupResponse> {
  const denied = groupDenied(deps, who, AclOperation.Read, req.groupId);
  if (denied !== null) return { throttleTimeMs: 0, errorCode: kafkaErrorCodeOf(denied), protocolType: null, protocolName: null, assignment: Buffer.alloc(0) };
  const r = await deps.groups.syncGroup({
    groupId: req.groupId,
    generationId: req.generationId,
    memberId: req.memberId,
    groupInstanceId: req.groupInstanceId,
    protocolType: req.protocolType,
    protocolName: req.protocolName,
    assignments: req.assignments.map((a) => ({ memberId: a.memberId, assignment: Buffer.from(a.assignment) })),
  });
  return { throttleTimeMs: 0, errorCode: kafkaErrorCodeOf(r.error), protocolType: r.protocolType, protocolName: r.protocolName, assignment: r.assignment };
}

export function handleHeartbeat(deps: KafkaApiDeps, req: HeartbeatRequest, who: Requester = UNKNOWN_REQUESTER): HeartbeatResponse {
  const denied = groupDenied(deps, who, AclOperation.Read, req.groupId);
  if (denied !== null) return { throttleTimeMs: 0, errorCode: kafkaErrorCodeOf(denied) };
  const r = deps.groups.heartbeat({ groupId: req.groupId, generationId: req.generationId, memberId: req.memberId, groupInstanceId: req.groupInstanceId });
  return { throttleTimeMs: 0, errorCode: kafkaErrorCodeOf(r.error) };
}

export function handleLeaveGroup(deps: KafkaApiDeps, req: LeaveGroupRequest, version: number, who: Requester = UNKNOWN_REQUESTER): LeaveGroupResponse {
  const denied = groupDenied(deps, who, AclOperation.Read, req.groupId);
  if (denied !== null) return { throttleTimeMs: 0, errorCode: kafkaErrorCodeOf(denied), members: [] };
  const leaving = version >= 3 ? req.members.map((m) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId, reason: m.reason })) : [{ memberId: req.memberId, groupInstanceId: null }];
  const r = deps.groups.leaveGroup({ groupId: req.groupId, members: leaving });
  // v0-2 have one member and only the top-level error.
  const error = version >= 3 ? r.error : (r.error ?? r.members[0]?.error ?? null);
  const members = version >= 3 ? r.members.map((m) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId, errorCode: kafkaErrorCodeOf(m.error) })) : [];
  return { throttleTimeMs: 0, errorCode: kafkaErrorCodeOf(error), members };
}

/**
 * OffsetCommit v0-9, each as Kafka's KafkaApis takes it. The codec fills what a version
 * lacks with Kafka's defaults, which say what that version means:
 * - v0 has no generation or member: generation -1 and member "", a "simple" commit, taken
 *   while the group has no members (Kafka stored v0 commits in ZooKeeper; here they are
 *   ordinary committed offsets, readable by every OffsetFetch version).
 * - v1 carries a commit time per partition, kept as the offset's commit time (-1: now).
 * - v2-4 carry a retention time. Kafka expires such an offset at commit time + retention;
 *   Meridian accepts the field and keeps offsets until their group or topic is deleted, as
 *   for every other version (offsets never expire here: broker/groups/README.md).
 * - v9 (KIP-848) names the field the member epoch; for a classic group it is the generation,
 *   and a commit with a generation for a group that does not exist gets GROUP_ID_NOT_FOUND
 *   (ILLEGAL_GENERATION before v9, which Kafka keeps for older clients).
 * `version` is the request's; left out, the commit is answered as v2-8 answer it.
 */
export async function handleOffsetCommit(deps: KafkaApiDeps, req: OffsetCommitRequest, version?: number, who: Requester = UNKNOWN_REQUESTER): Promise<OffsetCommitResponse> {
  const everyPartition = (t: OffsetCommitRequest['topics'][number], error: MeridianError) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, errorCode: kafkaErrorCodeOf(error) })) });
  const groupError = groupDenied(deps, who, AclOperation.Read, req.groupId);
  if (groupError !== null) return { throttleTimeMs: 0, topics: req.topics.map((t) => everyPartition(t, groupError)) };
  const topicErrors = req.topics.map((t) => topicDenied(deps, who, AclOperation.Read, t.name));
  const allowed = req.topics.filter((_, i) => topicErrors[i] === null);
  const r = await deps.groups.commitOffsets({
    groupId: req.groupId,
    generationIdOrMemberEpoch: req.generationIdOrMemberEpoch,
    memberId: req.memberId,
    groupInstanceId: req.groupInstanceId,
    unknownGroupIsNotFound: version !== undefined && version >= 9,
    topics: allowed.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => ({
        partitionIndex: p.partitionIndex,
        committedOffset: p.committedOffset,
        committedLeaderEpoch: p.committedLeaderEpoch,
        committedMetadata: p.committedMetadata,
        commitTimestamp: commitTimeOf(p.commitTimestamp),
      })),
    })),
  });
  // The coordinator answers the allowed topics in request order; the denied ones keep their place.
  let next = 0;
  return {
    throttleTimeMs: 0,
    topics: req.topics.map((t, i) => {
      const error = topicErrors[i];
      if (error !== null) return everyPartition(t, error);
      const c = r.topics[next++];
      return { name: c.name, partitions: c.partitions.map((p) => ({ partitionIndex: p.partitionIndex, errorCode: kafkaErrorCodeOf(p.error) })) };
    }),
  };
}

/**
 * OffsetCommit v1's commit time in ms, -1 for "now". Kafka takes any INT64; one beyond what
 * a millisecond clock can mean (±2^53 ms is ±285,000 years) is taken as now, since commit
 * times only say when an offset was committed here (they expire nothing).
 */
function commitTimeOf(timestamp: bigint): number {
  const ms = Number(timestamp);
  return Number.isSafeInteger(ms) ? ms : -1;
}

/**
 * OffsetFetch v0-9. v0-7 ask for one group, v8+ for several (each answered with its own
 * error). v0-1 cannot ask for "every partition" (null topics) and have no top-level error
 * field, so a failure is written into each requested partition, as Kafka's
 * OffsetFetchRequest.getErrorResponse does. v7+'s requireStable needs no wait: without
 * transactions every committed offset is stable. v9's member id and epoch are KIP-848's;
 * Kafka does not check them for a classic group, nor does Meridian.
 */
export async function handleOffsetFetch(deps: KafkaApiDeps, req: OffsetFetchRequest, version: number, who: Requester = UNKNOWN_REQUESTER): Promise<OffsetFetchResponse> {
  if (version >= 8) {
    return { throttleTimeMs: 0, topics: [], errorCode: 0, groups: await Promise.all(req.groups.map((g) => fetchGroupOffsets(deps, who, g.groupId, g.topics))) };
  }
  const { result: r, denied } = await fetchAuthorized(deps, who, req.groupId, version >= 2 ? req.topics : (req.topics ?? []));
  // v0-1: the error goes into every partition asked for.
  const topics = r.error !== null && version < 2 ? (req.topics ?? []).map((t) => ({ name: t.name, partitions: t.partitionIndexes.map((partitionIndex) => ({ partitionIndex, committedOffset: -1n, committedLeaderEpoch: -1, metadata: '' })) })) : r.topics;
  const partitionError = version < 2 ? kafkaErrorCodeOf(r.error) : 0;
  return {
    throttleTimeMs: 0,
    topics: topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => ({
        partitionIndex: p.partitionIndex,
        committedOffset: p.committedOffset,
        committedLeaderEpoch: p.committedLeaderEpoch,
        metadata: p.metadata,
        errorCode: partitionError, // a fetch fails whole or not at all (OffsetFetchResult.error)
      })),
    })).concat(denied),
    errorCode: version >= 2 ? kafkaErrorCodeOf(r.error) : 0,
    groups: [],
  };
}

/**
 * A group that moved here from another region resumes from its translated offset
 * (dr/disaster-recovery.ts): applied to what the coordinator answers, per partition a peer
 * committed.
 */
async function translated(deps: KafkaApiDeps, groupId: string, r: OffsetFetchResult): Promise<OffsetFetchResult> {
  if (deps.dr === undefined || r.error !== null) return r;
  return { ...r, topics: await deps.dr.adjustFetched(groupId, r.topics) };
}

type UnauthorizedTopic = { name: string; partitions: Array<{ partitionIndex: number; committedOffset: bigint; committedLeaderEpoch: number; metadata: string; errorCode: number }> };

/**
 * The group's committed offsets as the requester may read them (Kafka's KafkaApis): a group
 * it may not DESCRIBE fails whole (GROUP_AUTHORIZATION_FAILED); of every topic (null) those it
 * may not DESCRIBE are left out; a topic it names and may not DESCRIBE is answered apart,
 * each partition TOPIC_AUTHORIZATION_FAILED, and the coordinator is not asked for it.
 */
async function fetchAuthorized(
  deps: KafkaApiDeps,
  who: Requester,
  groupId: string,
  topics: ReadonlyArray<{ name: string; partitionIndexes: readonly number[] }> | null,
): Promise<{ result: OffsetFetchResult; denied: UnauthorizedTopic[] }> {
  const groupError = groupDenied(deps, who, AclOperation.Describe, groupId);
  if (groupError !== null) return { result: { error: groupError, topics: [] }, denied: [] };
  if (topics === null) {
    const r = await translated(deps, groupId, deps.groups.fetchOffsets({ groupId, topics: null }));
    return { result: { ...r, topics: r.topics.filter((t) => sees(deps, who, AclOperation.Describe, ResourceType.Topic, t.name)) }, denied: [] };
  }
  const refused = topics.map((t) => topicDenied(deps, who, AclOperation.Describe, t.name));
  const r = await translated(deps, groupId, deps.groups.fetchOffsets({ groupId, topics: topics.filter((_, i) => refused[i] === null) }));
  const denied = topics.flatMap((t, i) => {
    const error = refused[i];
    if (error === null) return [];
    return [{ name: t.name, partitions: t.partitionIndexes.map((partitionIndex) => ({ partitionIndex, committedOffset: -1n, committedLeaderEpoch: -1, metadata: '', errorCode: kafkaErrorCodeOf(error) })) }];
  });
  return { result: r, denied };
}

async function fetchGroupOffsets(deps: KafkaApiDeps, who: Requester, groupId: string, topics: OffsetFetchRequest['groups'][number]['topics']): Promise<OffsetFetchResponseGroup> {
  const { result: r, denied } = await fetchAuthorized(deps, who, groupId, topics);
  return {
    groupId,
    errorCode: kafkaErrorCodeOf(r.error),
    topics: r.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, committedOffset: p.committedOffset, committedLeaderEpoch: p.committedLeaderEpoch, metadata: p.metadata, errorCode: 0 })),
    })).concat(denied),
  };
}

/**
 * OffsetDelete v0. Partitions of topics that do not exist get UNKNOWN_TOPIC_OR_PARTITION
 * before the coordinator is asked, as in Kafka's KafkaApis; the coordinator decides the rest
 * (group missing, active and subscribed: GroupCoordinator.deleteOffsets).
 */
export async function handleOffsetDelete(deps: KafkaApiDeps, req: OffsetDeleteRequest, who: Requester = UNKNOWN_REQUESTER): Promise<OffsetDeleteResponse> {
  const groupError = groupDenied(deps, who, AclOperation.Delete, req.groupId);
  if (groupError !== null) return { errorCode: kafkaErrorCodeOf(groupError), throttleTimeMs: 0, topics: [] };
  const refused = new Map<string, MeridianError>();
  for (const t of req.topics) {
    const error = refused.has(t.name) ? null : topicDenied(deps, who, AclOperation.Read, t.name);
    if (error !== null) refused.set(t.name, error);
  }
  const exists = (topic: string, partition: number): boolean => {
    const info = deps.topics.getTopic(topic);
    return info !== undefined && partition >= 0 && partition < info.partitions;
  };
  const known = req.topics
    .filter((t) => !refused.has(t.name))
    .map((t) => ({ name: t.name, partitionIndexes: t.partitions.map((p) => p.partitionIndex).filter((p) => exists(t.name, p)) }))
    .filter((t) => t.partitionIndexes.length > 0);
  const r = await deps.groups.deleteOffsets({ groupId: req.groupId, topics: known });
  if (r.error !== null) return { errorCode: kafkaErrorCodeOf(r.error), throttleTimeMs: 0, topics: [] };
  const answered = new Map(r.topics.map((t) => [t.name, new Map(t.partitions.map((p) => [p.partitionIndex, kafkaErrorCodeOf(p.error)]))]));
  return {
    errorCode: 0,
    throttleTimeMs: 0,
    topics: req.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => ({
        partitionIndex: p.partitionIndex,
        errorCode: answered.get(t.name)?.get(p.partitionIndex) ?? kafkaErrorCodeOf(refused.get(t.name) ?? unknownTopic(t.name, p.partitionIndex)),
      })),
    })),
  };
}

function unknownTopic(topic: string, partition: number): MeridianError {
  return new MeridianError(ErrorCode.UnknownTopic, `partition ${partition} of topic ${topic} does not exist`);
}

/** DeleteGroups v0-2: one result per group named (GroupCoordinator.deleteGroups). */
export async function handleDeleteGroups(deps: KafkaApiDeps, req: DeleteGroupsRequest, who: Requester = UNKNOWN_REQUESTER): Promise<DeleteGroupsResponse> {
  const refused = req.groupsNames.map((g) => groupDenied(deps, who, AclOperation.Delete, g));
  const deleted = await deps.groups.deleteGroups(req.groupsNames.filter((_, i) => refused[i] === null));
  const errors = new Map(deleted.map((g) => [g.groupId, g.error]));
  return { throttleTimeMs: 0, results: req.groupsNames.map((groupId, i) => ({ groupId, errorCode: kafkaErrorCodeOf(refused[i] ?? errors.get(groupId) ?? null) })) };
}

export function handleDescribeGroups(deps: KafkaApiDeps, req: DescribeGroupsRequest, who: Requester = UNKNOWN_REQUESTER): DescribeGroupsResponse {
  const refused = req.groups.map((g) => groupDenied(deps, who, AclOperation.Describe, g));
  const described = deps.groups.describeGroups(req.groups.filter((_, i) => refused[i] === null));
  const operations = (groupId: string) => (req.includeAuthorizedOperations ? authorizedOperations(deps, who, ResourceType.Group, groupId, SUPPORTED_OPERATIONS.group) : OPERATIONS_NOT_PROVIDED);
  let next = 0;
  return {
    throttleTimeMs: 0,
    groups: req.groups.map((groupId, i) => {
      const error = refused[i];
      if (error !== null) return { errorCode: kafkaErrorCodeOf(error), groupId, groupState: '', protocolType: '', protocolData: '', members: [], authorizedOperations: OPERATIONS_NOT_PROVIDED };
      const g = described[next++];
      return {
        errorCode: kafkaErrorCodeOf(g.error),
        groupId: g.groupId,
        groupState: g.groupState,
        protocolType: g.protocolType,
        protocolData: g.protocolData,
        members: g.members.map((m) => ({
          memberId: m.memberId,
          groupInstanceId: m.groupInstanceId,
          clientId: m.clientId,
          clientHost: m.clientHost,
          memberMetadata: m.memberMetadata,
          memberAssignment: m.memberAssignment,
        })),
        authorizedOperations: operations(g.groupId),
      };
    }),
  };
}

/**
 * ListGroups v0-5. v4's states filter and v5's types filter keep the groups whose state
 * (type) is one of those named, compared case-insensitively as Kafka 4's coordinator does;
 * an empty filter keeps all. Every group here is a classic group. Who may not DESCRIBE the
 * cluster sees only the groups it may DESCRIBE.
 */
export function handleListGroups(deps: KafkaApiDeps, req: ListGroupsRequest, who: Requester = UNKNOWN_REQUESTER): ListGroupsResponse {
  const everyGroup = sees(deps, who, AclOperation.Describe, ResourceType.Cluster, CLUSTER_RESOURCE_NAME);
  const visible = (groupId: string): boolean => everyGroup || sees(deps, who, AclOperation.Describe, ResourceType.Group, groupId);
  const states = new Set(req.statesFilter.map((s) => s.trim().toLowerCase()));
  const types = new Set(req.typesFilter.map((t) => t.trim().toLowerCase()));
  const kept = (state: string): boolean => (states.size === 0 || states.has(state.toLowerCase())) && (types.size === 0 || types.has(CLASSIC));
  return {
    throttleTimeMs: 0,
    errorCode: 0,
    groups: deps.groups
      .listGroups()
      .filter((g) => kept(g.groupState) && visible(g.groupId))
      .map((g) => ({ groupId: g.groupId, protocolType: g.protocolType, groupState: g.groupState, groupType: CLASSIC })),
  };
}
