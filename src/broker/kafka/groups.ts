/**
 * The consumer-group APIs: thin translations between the wire messages and the group
 * coordinator (broker/groups), which owns the state machine and the committed offsets.
 * This broker is the coordinator of every group (one broker per region).
 *
 * The coordinator's results carry Meridian errors; here, and only here, they become Kafka
 * error codes, through the one mapping (kafkaErrorCodeOf). MEMBER_ID_REQUIRED is the one
 * Kafka code a group handler writes itself: it is JoinGroup v4+'s first round trip, not an
 * error, and the coordinator's result says so as `memberIdRequired`.
 */
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import type { RequestContext } from '../../protocol/kafka/connection.js';
import { kafkaCode, kafkaErrorCodeOf } from '../../protocol/kafka/error-mapping.js';
import type { DescribeGroupsRequest, DescribeGroupsResponse } from '../../protocol/kafka/messages/describe-groups.js';
import type { HeartbeatRequest, HeartbeatResponse } from '../../protocol/kafka/messages/heartbeat.js';
import type { JoinGroupRequest, JoinGroupResponse } from '../../protocol/kafka/messages/join-group.js';
import type { LeaveGroupRequest, LeaveGroupResponse } from '../../protocol/kafka/messages/leave-group.js';
import type { ListGroupsRequest, ListGroupsResponse } from '../../protocol/kafka/messages/list-groups.js';
import type { OffsetCommitRequest, OffsetCommitResponse } from '../../protocol/kafka/messages/offset-commit.js';
import type { OffsetFetchRequest, OffsetFetchResponse } from '../../protocol/kafka/messages/offset-fetch.js';
import type { SyncGroupRequest, SyncGroupResponse } from '../../protocol/kafka/messages/sync-group.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';

/** The group APIs keep minVersion 0: librdkafka enables its balanced consumer only if the ranges overlap v0. */
export const GROUP_APIS: readonly KafkaApiEntry[] = [
  { key: ApiKey.JoinGroup, versions: [0, 5], handle: (d, c, req, v) => handleJoinGroup(d, c, req, v) },
  { key: ApiKey.SyncGroup, versions: [0, 3], handle: (d, _c, req) => handleSyncGroup(d, req) },
  { key: ApiKey.Heartbeat, versions: [0, 3], handle: (d, _c, req) => handleHeartbeat(d, req) },
  { key: ApiKey.LeaveGroup, versions: [0, 3], handle: (d, _c, req, v) => handleLeaveGroup(d, req, v) },
  { key: ApiKey.OffsetCommit, versions: [2, 7], handle: (d, _c, req) => handleOffsetCommit(d, req) },
  { key: ApiKey.OffsetFetch, versions: [1, 5], handle: (d, _c, req, v) => handleOffsetFetch(d, req, v) },
  { key: ApiKey.DescribeGroups, versions: [0, 2], handle: (d, _c, req) => handleDescribeGroups(d, req) },
  { key: ApiKey.ListGroups, versions: [0, 2], handle: (d, _c, req) => handleListGroups(d, req) },
];

export async function handleJoinGroup(deps: KafkaApiDeps, ctx: RequestContext, req: JoinGroupRequest, version: number): Promise<JoinGroupResponse> {
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

export async function handleSyncGroup(deps: KafkaApiDeps, req: SyncGroupRequest): Promise<SyncGroupResponse> {
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

export function handleHeartbeat(deps: KafkaApiDeps, req: HeartbeatRequest): HeartbeatResponse {
  const r = deps.groups.heartbeat({ groupId: req.groupId, generationId: req.generationId, memberId: req.memberId, groupInstanceId: req.groupInstanceId });
  return { throttleTimeMs: 0, errorCode: kafkaErrorCodeOf(r.error) };
}

export function handleLeaveGroup(deps: KafkaApiDeps, req: LeaveGroupRequest, version: number): LeaveGroupResponse {
  const leaving = version >= 3 ? req.members.map((m) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId })) : [{ memberId: req.memberId, groupInstanceId: null }];
  const r = deps.groups.leaveGroup({ groupId: req.groupId, members: leaving });
  // v0-2 have one member and only the top-level error.
  const error = version >= 3 ? r.error : (r.error ?? r.members[0]?.error ?? null);
  const members = version >= 3 ? r.members.map((m) => ({ memberId: m.memberId, groupInstanceId: m.groupInstanceId, errorCode: kafkaErrorCodeOf(m.error) })) : [];
  return { throttleTimeMs: 0, errorCode: kafkaErrorCodeOf(error), members };
}

export async function handleOffsetCommit(deps: KafkaApiDeps, req: OffsetCommitRequest): Promise<OffsetCommitResponse> {
  const r = await deps.groups.commitOffsets({
    groupId: req.groupId,
    generationIdOrMemberEpoch: req.generationIdOrMemberEpoch,
    memberId: req.memberId,
    groupInstanceId: req.groupInstanceId,
    topics: req.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => ({
        partitionIndex: p.partitionIndex,
        committedOffset: p.committedOffset,
        committedLeaderEpoch: p.committedLeaderEpoch,
        committedMetadata: p.committedMetadata,
      })),
    })),
  });
  return { throttleTimeMs: 0, topics: r.topics.map((t) => ({ name: t.name, partitions: t.partitions.map((p) => ({ partitionIndex: p.partitionIndex, errorCode: kafkaErrorCodeOf(p.error) })) })) };
}

export function handleOffsetFetch(deps: KafkaApiDeps, req: OffsetFetchRequest, version: number): OffsetFetchResponse {
  // v0-1 have no null "all partitions" form; v2+ do.
  const topics = req.topics === null ? null : req.topics.map((t) => ({ name: t.name, partitionIndexes: t.partitionIndexes }));
  const r = deps.groups.fetchOffsets({ groupId: req.groupId, topics: version >= 2 ? topics : (topics ?? []) });
  return {
    throttleTimeMs: 0,
    topics: r.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => ({
        partitionIndex: p.partitionIndex,
        committedOffset: p.committedOffset,
        committedLeaderEpoch: p.committedLeaderEpoch,
        metadata: p.metadata,
        errorCode: 0, // a fetch fails whole or not at all (OffsetFetchResult.error)
      })),
    })),
    errorCode: kafkaErrorCodeOf(r.error),
    groups: [],
  };
}

export function handleDescribeGroups(deps: KafkaApiDeps, req: DescribeGroupsRequest): DescribeGroupsResponse {
  return {
    throttleTimeMs: 0,
    groups: deps.groups.describeGroups(req.groups).map((g) => ({
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
      authorizedOperations: -2147483648,
    })),
  };
}

export function handleListGroups(deps: KafkaApiDeps, _req: ListGroupsRequest): ListGroupsResponse {
  return {
    throttleTimeMs: 0,
    errorCode: 0,
    groups: deps.groups.listGroups().map((g) => ({ groupId: g.groupId, protocolType: g.protocolType, groupState: g.groupState, groupType: 'classic' })),
  };
}
