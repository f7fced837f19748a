/**
 * Membership: join, sync, heartbeat, leave, session expiry and rebalance timeouts, with the
 * error each step answers (the Kafka codes clients get for them: group-kafka-codes.test.ts;
 * the rules: src/broker/groups/README.md). Timeouts are shrunk to tens of milliseconds; the
 * sequence of states is what is asserted, not timing.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ErrorCode } from '../../../src/errors.js';
import {
  cleanupAll,
  getMemberId,
  heartbeat,
  isSettled,
  joinReq,
  openCoordinator,
  rejoinAll,
  stableGroup,
  syncAll,
} from './group-helpers.js';
import { waitFor } from '../../helpers/wait.js';

after(cleanupAll);

test('two members: MEMBER_ID_REQUIRED, held joins, leader gets all metadata, followers wait for the assignment', async () => {
  const gc = await openCoordinator({ initialRebalanceDelayMs: 300 });
  const a = joinReq({ clientId: 'a', protocols: [{ name: 'range', metadata: Buffer.from([0, 1, 0xaa]) }] });
  const b = joinReq({ clientId: 'b', protocols: [{ name: 'range', metadata: Buffer.from([0, 1, 0xbb]) }] });
  const idA = await getMemberId(gc, a);
  const idB = await getMemberId(gc, b);
  assert.notEqual(idA, idB);
  assert.deepEqual(gc.describeGroups(['g'])[0].groupState, 'Empty');

  const joinA = gc.joinGroup({ ...a, memberId: idA });
  assert.equal(gc.describeGroups(['g'])[0].groupState, 'PreparingRebalance');
  assert.equal(await isSettled(joinA, 20), false, 'held during the initial delay');
  const joinB = gc.joinGroup({ ...b, memberId: idB });
  const [ra, rb] = await Promise.all([joinA, joinB]);

  for (const r of [ra, rb]) {
    assert.equal(r.error, null);
    assert.equal(r.generationId, 1);
    assert.equal(r.leader, idA, 'the first member leads');
    assert.equal(r.protocolName, 'range');
    assert.equal(r.protocolType, 'consumer');
  }
  assert.deepEqual(ra.members, [
    { memberId: idA, groupInstanceId: null, metadata: Buffer.from([0, 1, 0xaa]) },
    { memberId: idB, groupInstanceId: null, metadata: Buffer.from([0, 1, 0xbb]) },
  ]);
  assert.deepEqual(rb.members, [], 'followers get no member list');
  assert.equal(gc.describeGroups(['g'])[0].groupState, 'CompletingRebalance');

  const syncB = gc.syncGroup({ groupId: 'g', generationId: 1, memberId: idB, groupInstanceId: null, protocolType: 'consumer', protocolName: 'range', assignments: [] });
  assert.equal(await isSettled(syncB), false, 'a follower waits for the leader');
  const syncA = await gc.syncGroup({
    groupId: 'g',
    generationId: 1,
    memberId: idA,
    groupInstanceId: null,
    protocolType: 'consumer',
    protocolName: 'range',
    assignments: [
      { memberId: idA, assignment: Buffer.from('for-a') },
      { memberId: idB, assignment: Buffer.from('for-b') },
    ],
  });
  assert.equal(syncA.error, null);
  assert.equal(syncA.assignment.toString(), 'for-a');
  const rsB = await syncB;
  assert.equal(rsB.error, null);
  assert.equal(rsB.assignment.toString(), 'for-b');
  assert.equal(rsB.protocolName, 'range');

  const d = gc.describeGroups(['g'])[0];
  assert.equal(d.groupState, 'Stable');
  assert.equal(d.protocolType, 'consumer');
  assert.equal(d.protocolData, 'range');
  assert.deepEqual(
    d.members.map((m) => [m.memberId, m.clientId, m.clientHost, m.memberMetadata.toString('hex'), m.memberAssignment.toString()]),
    [
      [idA, 'a', '/127.0.0.1', '0001aa', 'for-a'],
      [idB, 'b', '/127.0.0.1', '0001bb', 'for-b'],
    ],
  );
  assert.equal(heartbeat(gc, { memberId: idA, generationId: 1 }), null);
  assert.equal(heartbeat(gc, { memberId: idB, generationId: 1 }), null);
  // A late SyncGroup in Stable returns the member's assignment at once.
  const again = await gc.syncGroup({ groupId: 'g', generationId: 1, memberId: idB, groupInstanceId: null, protocolType: null, protocolName: null, assignments: [] });
  assert.equal(again.assignment.toString(), 'for-b');
});

test('members the leader leaves out get empty bytes', async () => {
  const gc = await openCoordinator();
  const a = joinReq({ clientId: 'a' });
  const b = joinReq({ clientId: 'b' });
  const reqs = [
    { ...a, memberId: await getMemberId(gc, a) },
    { ...b, memberId: await getMemberId(gc, b) },
  ];
  const [ja, jb] = await rejoinAll(gc, reqs);
  const waitB = gc.syncGroup({ groupId: 'g', generationId: jb.generationId, memberId: jb.memberId, groupInstanceId: null, protocolType: null, protocolName: null, assignments: [] });
  const sa = await gc.syncGroup({ groupId: 'g', generationId: ja.generationId, memberId: ja.memberId, groupInstanceId: null, protocolType: null, protocolName: null, assignments: [{ memberId: ja.memberId, assignment: Buffer.from('all') }] });
  assert.equal(sa.assignment.toString(), 'all');
  const sb = await waitB;
  assert.equal(sb.error, null);
  assert.equal(sb.assignment.length, 0);
});

test('a third member makes the others heartbeat REBALANCE_IN_PROGRESS; they rejoin into generation 2', async () => {
  const gc = await openCoordinator();
  const { reqs, joined } = await stableGroup(gc, ['a', 'b']);
  const c = joinReq({ clientId: 'c' });
  const cReq = { ...c, memberId: await getMemberId(gc, c) };
  assert.equal(heartbeat(gc, joined[0]), null, 'a pending member id does not rebalance yet');
  const joinC = gc.joinGroup(cReq);
  assert.equal(gc.describeGroups(['g'])[0].groupState, 'PreparingRebalance');
  assert.equal(heartbeat(gc, joined[0]), ErrorCode.RebalanceInProgress);
  assert.equal(heartbeat(gc, joined[1]), ErrorCode.RebalanceInProgress);
  assert.equal(await isSettled(joinC), false, 'held until the others rejoin');
  const [ra, rb] = await rejoinAll(gc, reqs);
  const rc = await joinC;
  assert.equal(rc.error, null);
  for (const r of [ra, rb, rc]) assert.equal(r.generationId, 2);
  assert.equal(ra.leader, joined[0].memberId, 'the leader stays while it remains');
  assert.deepEqual(
    ra.result.members.map((m) => m.memberId),
    [joined[0].memberId, joined[1].memberId, cReq.memberId],
  );
  assert.equal(heartbeat(gc, joined[0]), ErrorCode.IllegalGeneration, 'generation 1 is stale now');
  const assigned = await syncAll(gc, [ra, rb, { memberId: rc.memberId, generationId: 2, leader: rc.leader, result: rc }]);
  assert.deepEqual(assigned, [ra, rb].map((j) => `assign-${j.memberId}`).concat(`assign-${rc.memberId}`));
});

test('a leaving member rebalances the rest; the last one leaving empties the group', async () => {
  const gc = await openCoordinator();
  const { reqs, joined } = await stableGroup(gc, ['a', 'b']);
  const left = gc.leaveGroup({ groupId: 'g', members: [{ memberId: joined[0].memberId, groupInstanceId: null }] });
  assert.deepEqual(left, { error: null, members: [{ memberId: joined[0].memberId, groupInstanceId: null, error: null }] });
  assert.equal(heartbeat(gc, joined[0]), ErrorCode.UnknownMember, 'gone');
  assert.equal(heartbeat(gc, joined[1]), ErrorCode.RebalanceInProgress);
  const [rb] = await rejoinAll(gc, [reqs[1]]);
  assert.equal(rb.generationId, 2);
  assert.equal(rb.leader, joined[1].memberId, 'leadership passes to the oldest remaining member');
  assert.deepEqual(rb.result.members.map((m) => m.memberId), [joined[1].memberId]);
  await syncAll(gc, [rb]);
  const unknown = gc.leaveGroup({ groupId: 'g', members: [{ memberId: 'nobody', groupInstanceId: null }] });
  assert.equal(unknown.members[0].error?.code, ErrorCode.UnknownMember);
  gc.leaveGroup({ groupId: 'g', members: [{ memberId: rb.memberId, groupInstanceId: null }] });
  // No offsets were committed, so nothing of the group remains (Kafka's cleanup, done at once).
  assert.deepEqual(gc.listGroups(), []);
  assert.equal(gc.describeGroups(['g'])[0].groupState, 'Dead');
});

test('an expired session removes the member and rebalances the others', async () => {
  const gc = await openCoordinator();
  const a = joinReq({ clientId: 'a' });
  const b = joinReq({ clientId: 'b', sessionTimeoutMs: 300 });
  const reqs = [
    { ...a, memberId: await getMemberId(gc, a) },
    { ...b, memberId: await getMemberId(gc, b) },
  ];
  const [ja, jb] = await rejoinAll(gc, reqs);
  await syncAll(gc, [ja, jb]);
  // a keeps heartbeating; b goes silent.
  const code = await waitFor('the survivor\'s heartbeat to answer something else than OK', () => heartbeat(gc, ja) ?? undefined, 3000, 25);
  assert.equal(code, ErrorCode.RebalanceInProgress, 'the survivor is told to rejoin');
  assert.equal(heartbeat(gc, jb), ErrorCode.UnknownMember, 'the dead member is gone');
  assert.equal(gc.stats().members, 1);
  const [ra] = await rejoinAll(gc, [reqs[0]]);
  assert.equal(ra.generationId, 2);
  assert.deepEqual(ra.result.members.map((m) => m.memberId), [ja.memberId]);
});

test('a member that does not rejoin within the rebalance timeout is dropped', async () => {
  const gc = await openCoordinator();
  const { reqs, joined } = await stableGroup(gc, ['a', 'b'], { rebalanceTimeoutMs: 200 });
  const c = joinReq({ clientId: 'c', rebalanceTimeoutMs: 200 });
  const joinC = gc.joinGroup({ ...c, memberId: await getMemberId(gc, c) });
  const started = Date.now();
  const joinA = gc.joinGroup(reqs[0]);
  assert.equal(heartbeat(gc, joined[1]), ErrorCode.RebalanceInProgress, 'b is told, and ignores it');
  assert.equal(await isSettled(joinA, 50), false, 'waiting for b');
  const [ra, rc] = await Promise.all([joinA, joinC]);
  assert.ok(Date.now() - started >= 150, 'completed by the rebalance timeout');
  assert.equal(ra.error, null);
  assert.equal(ra.generationId, 2);
  assert.deepEqual(ra.members.map((m) => m.memberId), [joined[0].memberId, rc.memberId]);
  assert.equal(heartbeat(gc, joined[1]), ErrorCode.UnknownMember);
  const late = await gc.joinGroup(reqs[1]);
  assert.equal(late.error?.code, ErrorCode.UnknownMember, 'its id is no longer known');
});

test('protocols: no common protocol or another protocol type is INCONSISTENT_PROTOCOL; the vote picks the most preferred', async () => {
  const gc = await openCoordinator();
  await stableGroup(gc, ['a'], { protocols: [{ name: 'range', metadata: Buffer.from('x') }] });
  const rr = await gc.joinGroup(joinReq({ clientId: 'k', protocols: [{ name: 'roundrobin', metadata: Buffer.from('y') }] }));
  assert.equal(rr.error?.code, ErrorCode.InconsistentProtocol);
  const otherType = await gc.joinGroup(joinReq({ clientId: 'k', protocolType: 'connect' }));
  assert.equal(otherType.error?.code, ErrorCode.InconsistentProtocol);
  const none = await gc.joinGroup(joinReq({ groupId: 'fresh', protocols: [] }));
  assert.equal(none.error?.code, ErrorCode.InconsistentProtocol);
  assert.deepEqual(gc.listGroups().map((g) => g.groupId), ['g'], 'a failed first join leaves no group behind');

  const both = (first: string, second: string) => [
    { name: first, metadata: Buffer.from(first) },
    { name: second, metadata: Buffer.from(second) },
  ];
  const reqs = [
    joinReq({ groupId: 'v', clientId: 'p', protocols: both('range', 'roundrobin') }),
    joinReq({ groupId: 'v', clientId: 'q', protocols: both('roundrobin', 'range') }),
    joinReq({ groupId: 'v', clientId: 'r', protocols: [{ name: 'roundrobin', metadata: Buffer.from('rr') }, { name: 'sticky', metadata: Buffer.from('s') }] }),
  ];
  const withIds = [];
  for (const r of reqs) withIds.push({ ...r, memberId: await getMemberId(gc, r) });
  const results = await rejoinAll(gc, withIds);
  assert.ok(results.every((r) => r.result.protocolName === 'roundrobin'), 'roundrobin: 2 votes to 1, and range is not common');
  assert.deepEqual(results[0].result.members.map((m) => m.metadata.toString()), ['roundrobin', 'roundrobin', 'rr'], "each member's bytes for the chosen protocol");
});

test('stale generations get ILLEGAL_GENERATION; unknown ids UNKNOWN_MEMBER; bad session timeouts INVALID_SESSION_TIMEOUT', async () => {
  const gc = await openCoordinator({ minSessionTimeoutMs: 6000, maxSessionTimeoutMs: 1_800_000 });
  const { joined } = await stableGroup(gc, ['a']);
  const [ja] = joined;
  assert.equal(heartbeat(gc, { memberId: ja.memberId, generationId: 7 }), ErrorCode.IllegalGeneration);
  const sync = await gc.syncGroup({ groupId: 'g', generationId: 0, memberId: ja.memberId, groupInstanceId: null, protocolType: null, protocolName: null, assignments: [] });
  assert.equal(sync.error?.code, ErrorCode.IllegalGeneration);
  assert.equal(heartbeat(gc, { memberId: 'ghost', generationId: 1 }), ErrorCode.UnknownMember);
  assert.equal((await gc.joinGroup(joinReq({ memberId: 'ghost' }))).error?.code, ErrorCode.UnknownMember);
  assert.equal((await gc.joinGroup(joinReq({ groupId: 'nope', memberId: 'ghost' }))).error?.code, ErrorCode.UnknownMember);
  assert.equal(gc.heartbeat({ groupId: 'nope', generationId: 1, memberId: ja.memberId, groupInstanceId: null }).error?.code, ErrorCode.UnknownMember);
  assert.equal((await gc.joinGroup(joinReq({ sessionTimeoutMs: 5999 }))).error?.code, ErrorCode.InvalidSessionTimeout);
  assert.equal((await gc.joinGroup(joinReq({ sessionTimeoutMs: 1_800_001 }))).error?.code, ErrorCode.InvalidSessionTimeout);
  assert.equal((await gc.joinGroup(joinReq({ groupId: '' }))).error?.code, ErrorCode.InvalidGroupId);
  const wrongProto = await gc.syncGroup({ groupId: 'g', generationId: 1, memberId: ja.memberId, groupInstanceId: null, protocolType: 'consumer', protocolName: 'roundrobin', assignments: [] });
  assert.equal(wrongProto.error?.code, ErrorCode.InconsistentProtocol);
});

test('JoinGroup v0-3 (no KIP-394) adds the member at once', async () => {
  const gc = await openCoordinator();
  const r = await gc.joinGroup(joinReq({ clientId: 'old', requireKnownMemberId: false }));
  assert.equal(r.error, null);
  assert.equal(r.generationId, 1);
  assert.ok(r.memberId.startsWith('old-'));
  assert.equal(r.leader, r.memberId);
});

test('a member rejoining as follower with the same metadata in Stable keeps the generation', async () => {
  const gc = await openCoordinator();
  const { reqs, joined } = await stableGroup(gc, ['a', 'b']);
  const again = await gc.joinGroup(reqs[1]);
  assert.equal(again.error, null);
  assert.equal(again.generationId, joined[1].generationId);
  assert.deepEqual(again.members, []);
  assert.equal(gc.describeGroups(['g'])[0].groupState, 'Stable', 'no rebalance');
  const changed = gc.joinGroup({ ...reqs[1], protocols: [{ name: 'range', metadata: Buffer.from('new subscription') }] });
  assert.equal(gc.describeGroups(['g'])[0].groupState, 'PreparingRebalance', 'new metadata rebalances');
  const [ra] = await rejoinAll(gc, [reqs[0]]);
  assert.equal((await changed).generationId, ra.generationId);
  assert.equal(ra.result.members[1].metadata.toString(), 'new subscription');
});

test('static members: a rejoin with the same instance id fences the old member id', async () => {
  const gc = await openCoordinator();
  const first = await gc.joinGroup(joinReq({ clientId: 's', groupInstanceId: 'inst-1' }));
  assert.equal(first.error, null, 'static members skip MEMBER_ID_REQUIRED');
  assert.ok(first.memberId.startsWith('inst-1-'));
  await syncAll(gc, [{ memberId: first.memberId, generationId: first.generationId, leader: first.leader, result: first }]);
  const second = await gc.joinGroup(joinReq({ clientId: 's', groupInstanceId: 'inst-1' }));
  assert.equal(second.error, null);
  assert.notEqual(second.memberId, first.memberId);
  assert.equal(second.generationId, 2);
  assert.equal(gc.heartbeat({ groupId: 'g', generationId: 2, memberId: first.memberId, groupInstanceId: 'inst-1' }).error?.code, ErrorCode.FencedInstance);
  const left = gc.leaveGroup({ groupId: 'g', members: [{ memberId: '', groupInstanceId: 'inst-1' }] });
  assert.equal(left.members[0].error, null, 'LeaveGroup v3 by instance id');
  assert.equal(gc.stats().members, 0);
});

test('close answers held requests with COORDINATOR_CLOSED and refuses new ones', async () => {
  const gc = await openCoordinator({ initialRebalanceDelayMs: 10_000 });
  const a = joinReq({ clientId: 'a' });
  const held = gc.joinGroup({ ...a, memberId: await getMemberId(gc, a) });
  assert.equal(await isSettled(held), false);
  await gc.close();
  await gc.close(); // idempotent
  assert.equal((await held).error?.code, ErrorCode.CoordinatorClosed);
  assert.equal((await gc.joinGroup(joinReq())).error?.code, ErrorCode.CoordinatorClosed);
  assert.equal(gc.heartbeat({ groupId: 'g', generationId: 1, memberId: 'x', groupInstanceId: null }).error?.code, ErrorCode.CoordinatorClosed);
  assert.equal(gc.fetchOffsets({ groupId: 'g', topics: null }).error?.code, ErrorCode.CoordinatorClosed);
});
