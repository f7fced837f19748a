/**
 * The Kafka error codes a client gets from each group API, through the real handlers
 * (broker/kafka/groups.ts) over a real coordinator: the coordinator answers Meridian errors
 * and the handlers translate them in the one mapping, so this file pins what reaches the
 * wire. The numbers are Kafka's, as its GroupCoordinator answers them; KafkaJS and
 * librdkafka act on each (rejoin, find the coordinator again, give up).
 *
 * The handlers read only `deps.groups` and, for JoinGroup, the client id and address of the
 * request context, so the test hands them just those.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { GroupCoordinator } from '../../../src/broker/groups/group-coordinator.js';
import { commitFailure } from '../../../src/broker/groups/group-errors.js';
import { OffsetStoreErrorCode } from '../../../src/broker/groups/offset-store.js';
import type { KafkaApiDeps } from '../../../src/broker/kafka-api.js';
import {
  handleDescribeGroups,
  handleHeartbeat,
  handleJoinGroup,
  handleLeaveGroup,
  handleOffsetCommit,
  handleOffsetFetch,
  handleSyncGroup,
} from '../../../src/broker/kafka/groups.js';
import { ErrorCode, MeridianError } from '../../../src/errors.js';
import type { RequestContext } from '../../../src/protocol/kafka/connection.js';
import { kafkaErrorCodeOf } from '../../../src/protocol/kafka/error-mapping.js';
import type { JoinGroupRequest } from '../../../src/protocol/kafka/messages/join-group.js';
import { cleanupAll, openCoordinator } from './group-helpers.js';

after(cleanupAll);

const NONE = 0;
const OFFSET_METADATA_TOO_LARGE = 12;
const COORDINATOR_NOT_AVAILABLE = 15;
const NOT_COORDINATOR = 16;
const ILLEGAL_GENERATION = 22;
const INCONSISTENT_GROUP_PROTOCOL = 23;
const INVALID_GROUP_ID = 24;
const UNKNOWN_MEMBER_ID = 25;
const INVALID_SESSION_TIMEOUT = 26;
const REBALANCE_IN_PROGRESS = 27;
const INVALID_COMMIT_OFFSET_SIZE = 28;
const MEMBER_ID_REQUIRED = 79;
const GROUP_MAX_SIZE_REACHED = 81;
const FENCED_INSTANCE_ID = 82;

const depsOf = (gc: GroupCoordinator): KafkaApiDeps => ({ groups: gc }) as unknown as KafkaApiDeps;
const ctx = { header: { clientId: 'c' }, clientHost: '/127.0.0.1' } as unknown as RequestContext;

function joinBody(overrides: Partial<JoinGroupRequest> = {}): JoinGroupRequest {
  return {
    groupId: 'g',
    sessionTimeoutMs: 10_000,
    rebalanceTimeoutMs: 1_000,
    memberId: '',
    groupInstanceId: null,
    protocolType: 'consumer',
    protocols: [{ name: 'range', metadata: Buffer.from('m') }],
    reason: null,
    ...overrides,
  };
}

const heartbeat = (gc: GroupCoordinator, memberId: string, generationId: number, groupInstanceId: string | null = null, groupId = 'g') =>
  handleHeartbeat(depsOf(gc), { groupId, generationId, memberId, groupInstanceId }).errorCode;

const sync = async (gc: GroupCoordinator, memberId: string, generationId: number, protocolName: string | null = null, groupId = 'g') =>
  (await handleSyncGroup(depsOf(gc), { groupId, generationId, memberId, groupInstanceId: null, protocolType: null, protocolName, assignments: [{ memberId, assignment: Buffer.from('a') }] })).errorCode;

async function commit(gc: GroupCoordinator, memberId: string, generationId: number, metadata = 'm', groupId = 'g'): Promise<number[]> {
  const r = await handleOffsetCommit(depsOf(gc), {
    groupId,
    generationIdOrMemberEpoch: generationId,
    memberId,
    groupInstanceId: null,
    retentionTimeMs: -1n,
    topics: [{ name: 't', partitions: [{ partitionIndex: 0, committedOffset: 5n, committedLeaderEpoch: -1, commitTimestamp: -1n, committedMetadata: metadata }] }],
  });
  return r.topics.flatMap((t) => t.partitions.map((p) => p.errorCode));
}

/** JoinGroup v5 twice (MEMBER_ID_REQUIRED, then the join): a one-member group in CompletingRebalance. */
async function joinOne(gc: GroupCoordinator, overrides: Partial<JoinGroupRequest> = {}): Promise<{ memberId: string; generationId: number }> {
  const first = await handleJoinGroup(depsOf(gc), ctx, joinBody(overrides), 5);
  assert.equal(first.errorCode, MEMBER_ID_REQUIRED);
  const r = await handleJoinGroup(depsOf(gc), ctx, joinBody({ ...overrides, memberId: first.memberId }), 5);
  assert.equal(r.errorCode, NONE);
  return { memberId: r.memberId, generationId: r.generationId };
}

test('JoinGroup: MEMBER_ID_REQUIRED from v4 only, then the membership and request errors', async () => {
  const gc = await openCoordinator({ minSessionTimeoutMs: 6000, maxGroupSize: 1 });
  const v3 = await handleJoinGroup(depsOf(gc), ctx, joinBody({ groupId: 'old' }), 3);
  assert.deepEqual([v3.errorCode, v3.generationId, v3.protocolName], [NONE, 1, 'range'], 'v0-3 join at once');
  const v4 = await handleJoinGroup(depsOf(gc), ctx, joinBody(), 4);
  assert.deepEqual([v4.errorCode, v4.generationId, v4.leader, v4.protocolName], [MEMBER_ID_REQUIRED, -1, '', ''], 'no protocol name before v7 is ""');
  assert.ok(v4.memberId.startsWith('c-'));
  const v7 = await handleJoinGroup(depsOf(gc), ctx, joinBody({ groupId: 'h' }), 7);
  assert.deepEqual([v7.errorCode, v7.protocolName], [MEMBER_ID_REQUIRED, null]);

  assert.equal((await handleJoinGroup(depsOf(gc), ctx, joinBody(), 5)).errorCode, GROUP_MAX_SIZE_REACHED, 'the pending id counts');
  assert.equal((await handleJoinGroup(depsOf(gc), ctx, joinBody({ groupId: '' }), 5)).errorCode, INVALID_GROUP_ID);
  assert.equal((await handleJoinGroup(depsOf(gc), ctx, joinBody({ sessionTimeoutMs: 5999 }), 5)).errorCode, INVALID_SESSION_TIMEOUT);
  assert.equal((await handleJoinGroup(depsOf(gc), ctx, joinBody({ memberId: 'ghost' }), 5)).errorCode, UNKNOWN_MEMBER_ID);
  assert.equal((await handleJoinGroup(depsOf(gc), ctx, joinBody({ groupId: 'x', protocols: [] }), 5)).errorCode, INCONSISTENT_GROUP_PROTOCOL);
});

test('SyncGroup, Heartbeat and OffsetCommit: the generation, the member and the rebalance', async () => {
  const gc = await openCoordinator();
  const a = await joinOne(gc);
  assert.deepEqual(await commit(gc, a.memberId, a.generationId), [REBALANCE_IN_PROGRESS], 'CompletingRebalance');
  assert.equal(await sync(gc, a.memberId, a.generationId + 1), ILLEGAL_GENERATION);
  assert.equal(await sync(gc, 'ghost', a.generationId), UNKNOWN_MEMBER_ID);
  assert.equal(await sync(gc, a.memberId, a.generationId, 'roundrobin'), INCONSISTENT_GROUP_PROTOCOL);
  assert.equal(await sync(gc, a.memberId, a.generationId, null, ''), INVALID_GROUP_ID);
  assert.equal(await sync(gc, a.memberId, a.generationId), NONE);

  assert.equal(heartbeat(gc, a.memberId, a.generationId), NONE);
  assert.equal(heartbeat(gc, a.memberId, a.generationId + 1), ILLEGAL_GENERATION);
  assert.equal(heartbeat(gc, 'ghost', a.generationId), UNKNOWN_MEMBER_ID);
  assert.equal(heartbeat(gc, 'ghost', a.generationId, null, 'nope'), UNKNOWN_MEMBER_ID);
  assert.equal(heartbeat(gc, a.memberId, a.generationId, null, ''), INVALID_GROUP_ID);
  assert.deepEqual(await commit(gc, a.memberId, a.generationId), [NONE]);
  assert.deepEqual(await commit(gc, a.memberId, a.generationId, 'x'.repeat(4097)), [OFFSET_METADATA_TOO_LARGE]);
  assert.deepEqual(await commit(gc, a.memberId, a.generationId + 1), [ILLEGAL_GENERATION]);
  assert.deepEqual(await commit(gc, 'ghost', a.generationId), [UNKNOWN_MEMBER_ID]);
  assert.deepEqual(await commit(gc, 'old', 3, 'm', 'gone'), [ILLEGAL_GENERATION], 'a group that is gone');

  // A second member puts the group in PreparingRebalance: heartbeats say rejoin.
  const b = await handleJoinGroup(depsOf(gc), ctx, joinBody(), 5);
  void handleJoinGroup(depsOf(gc), ctx, joinBody({ memberId: b.memberId }), 5);
  assert.equal(heartbeat(gc, a.memberId, a.generationId), REBALANCE_IN_PROGRESS);
  assert.equal(await sync(gc, a.memberId, a.generationId), REBALANCE_IN_PROGRESS);
});

test('static members: a replaced instance id is FENCED_INSTANCE_ID, its held join included', async () => {
  const gc = await openCoordinator({ initialRebalanceDelayMs: 300 });
  const held = handleJoinGroup(depsOf(gc), ctx, joinBody({ groupInstanceId: 'i' }), 5); // static: no MEMBER_ID_REQUIRED
  const second = handleJoinGroup(depsOf(gc), ctx, joinBody({ groupInstanceId: 'i' }), 5);
  const old = await held;
  assert.equal(old.errorCode, FENCED_INSTANCE_ID);
  const now = await second;
  assert.equal(now.errorCode, NONE);
  assert.notEqual(now.memberId, old.memberId);
  assert.equal(heartbeat(gc, old.memberId, now.generationId, 'i'), FENCED_INSTANCE_ID);
  const leave = handleLeaveGroup(depsOf(gc), { groupId: 'g', memberId: '', members: [{ memberId: old.memberId, groupInstanceId: 'i', reason: null }] }, 3);
  assert.deepEqual([leave.errorCode, leave.members.map((m) => m.errorCode)], [NONE, [FENCED_INSTANCE_ID]]);
});

test('LeaveGroup: v0-2 answer the member\'s error at the top, v3+ per member', async () => {
  const gc = await openCoordinator();
  for (const v of [0, 1, 2]) {
    const r = handleLeaveGroup(depsOf(gc), { groupId: 'g', memberId: 'ghost', members: [] }, v);
    assert.deepEqual([r.errorCode, r.members], [UNKNOWN_MEMBER_ID, []], `v${v}`);
    assert.equal(handleLeaveGroup(depsOf(gc), { groupId: '', memberId: 'ghost', members: [] }, v).errorCode, INVALID_GROUP_ID);
  }
  const a = await joinOne(gc);
  const v3 = handleLeaveGroup(depsOf(gc), { groupId: 'g', memberId: '', members: [{ memberId: 'ghost', groupInstanceId: null, reason: null }, { memberId: a.memberId, groupInstanceId: null, reason: null }] }, 3);
  assert.deepEqual([v3.errorCode, v3.members.map((m) => m.errorCode)], [NONE, [UNKNOWN_MEMBER_ID, NONE]]);
  assert.equal(handleLeaveGroup(depsOf(gc), { groupId: '', memberId: '', members: [] }, 3).errorCode, INVALID_GROUP_ID);
});

test('a full commit queue is COORDINATOR_NOT_AVAILABLE', async () => {
  const gc = await openCoordinator({ maxQueuedCommitBytes: 400 });
  const codes = (await Promise.all(Array.from({ length: 40 }, (_, i) => commit(gc, '', -1, `m${i}`, `g${i}`)))).flat();
  assert.ok(codes.includes(NONE) && codes.includes(COORDINATOR_NOT_AVAILABLE), codes.join(','));
  assert.ok(codes.every((c) => c === NONE || c === COORDINATOR_NOT_AVAILABLE), codes.join(','));
});

test('a closed coordinator answers NOT_COORDINATOR on every group API, held requests included', async () => {
  const gc = await openCoordinator({ initialRebalanceDelayMs: 10_000 });
  const first = await handleJoinGroup(depsOf(gc), ctx, joinBody(), 5);
  const held = handleJoinGroup(depsOf(gc), ctx, joinBody({ memberId: first.memberId }), 5);
  await gc.close();
  assert.equal((await held).errorCode, NOT_COORDINATOR);
  assert.equal((await handleJoinGroup(depsOf(gc), ctx, joinBody(), 5)).errorCode, NOT_COORDINATOR);
  assert.equal(await sync(gc, first.memberId, 1), NOT_COORDINATOR);
  assert.equal(heartbeat(gc, first.memberId, 1), NOT_COORDINATOR);
  for (const v of [0, 3]) assert.equal(handleLeaveGroup(depsOf(gc), { groupId: 'g', memberId: 'x', members: [] }, v).errorCode, NOT_COORDINATOR);
  assert.deepEqual(await commit(gc, '', -1), [NOT_COORDINATOR]);
  const fetched = await handleOffsetFetch(depsOf(gc), { groupId: 'g', topics: null, groups: [], requireStable: false }, 2);
  assert.deepEqual([fetched.errorCode, fetched.topics], [NOT_COORDINATOR, []]);
  assert.equal(handleDescribeGroups(depsOf(gc), { groups: ['g'], includeAuthorizedOperations: false }).groups[0].errorCode, NOT_COORDINATOR);
});

test('OffsetFetch and DescribeGroups answer no error for what is and is not committed', async () => {
  const gc = await openCoordinator();
  assert.deepEqual(await commit(gc, '', -1), [NONE]);
  const fetched = await handleOffsetFetch(depsOf(gc), { groupId: 'g', topics: [{ name: 't', partitionIndexes: [0, 1] }], groups: [], requireStable: false }, 1);
  assert.deepEqual([fetched.errorCode, fetched.topics[0].partitions.map((p) => [p.errorCode, p.committedOffset])], [NONE, [[NONE, 5n], [NONE, -1n]]]);
  const described = handleDescribeGroups(depsOf(gc), { groups: ['g', 'unknown'], includeAuthorizedOperations: false }).groups;
  assert.deepEqual(described.map((g) => [g.errorCode, g.groupState]), [[NONE, 'Empty'], [NONE, 'Dead']]);
});

test("a commit's offset-store failure keeps the Kafka code it had: COORDINATOR_NOT_AVAILABLE, INVALID_COMMIT_OFFSET_SIZE or NOT_COORDINATOR", () => {
  const cases: Array<[unknown, string, number]> = [
    [new MeridianError(OffsetStoreErrorCode.QueueFull, 'full', { retriable: true }), ErrorCode.CoordinatorBusy, COORDINATOR_NOT_AVAILABLE],
    [new MeridianError(ErrorCode.BatchTooLarge, 'too large'), ErrorCode.CommitTooLarge, INVALID_COMMIT_OFFSET_SIZE],
    [new MeridianError(ErrorCode.LogClosed, 'closed'), ErrorCode.CoordinatorClosed, NOT_COORDINATOR],
    [new MeridianError(ErrorCode.StorageIo, 'disk full', { retriable: true }), ErrorCode.OffsetStoreIo, NOT_COORDINATOR],
    [new MeridianError(ErrorCode.StorageIo, 'EIO'), ErrorCode.OffsetStoreIo, NOT_COORDINATOR],
    [new Error('a bug'), ErrorCode.OffsetStoreIo, NOT_COORDINATOR],
  ];
  for (const [cause, code, kafka] of cases) {
    const e = commitFailure(cause);
    assert.equal(e.code, code);
    assert.equal(e.cause, cause);
    assert.equal(e.retriable, cause instanceof MeridianError && cause.retriable, `${code}: the cause decides`);
    assert.equal(kafkaErrorCodeOf(e), kafka, code);
  }
});
