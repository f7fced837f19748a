/**
 * OffsetCommit / OffsetFetch through the coordinator: which group states accept a commit,
 * simple commits, per-partition errors, durability across reopen, group commit of fsyncs,
 * and how describe/list show groups that only have offsets.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ErrorCode } from '../../../src/errors.js';
import {
  cleanupAll,
  commitCodes,
  commitReq,
  freshDir,
  getMemberId,
  joinReq,
  openCoordinator,
  rejoinAll,
  stableGroup,
  syncAll,
} from './group-helpers.js';

after(cleanupAll);

test('commits: REBALANCE_IN_PROGRESS while CompletingRebalance, accepted in Stable and PreparingRebalance', async () => {
  const gc = await openCoordinator();
  const a = joinReq({ clientId: 'a' });
  const reqA = { ...a, memberId: await getMemberId(gc, a) };
  const [ja] = await rejoinAll(gc, [reqA]);
  assert.equal(gc.describeGroups(['g'])[0].groupState, 'CompletingRebalance');
  const early = await gc.commitOffsets(commitReq('g', ja.generationId, ja.memberId, [['t', 0, 5n]]));
  assert.deepEqual(commitCodes(early), [ErrorCode.RebalanceInProgress]);
  await syncAll(gc, [ja]);
  const ok = await gc.commitOffsets(commitReq('g', ja.generationId, ja.memberId, [['t', 0, 10n, 'm'], ['t', 1, 11n], ['u', 0, 12n]]));
  assert.deepEqual(commitCodes(ok), [null, null, null]);
  assert.deepEqual(ok.topics.map((t) => [t.name, t.partitions.map((p) => p.partitionIndex)]), [['t', [0, 1]], ['u', [0]]]);

  // A new member puts the group in PreparingRebalance; the current generation may still commit.
  const b = joinReq({ clientId: 'b' });
  void gc.joinGroup({ ...b, memberId: await getMemberId(gc, b) });
  assert.equal(gc.describeGroups(['g'])[0].groupState, 'PreparingRebalance');
  const during = await gc.commitOffsets(commitReq('g', ja.generationId, ja.memberId, [['t', 0, 20n]]));
  assert.deepEqual(commitCodes(during), [null]);
  assert.deepEqual(commitCodes(await gc.commitOffsets(commitReq('g', ja.generationId + 1, ja.memberId, [['t', 0, 1n]]))), [ErrorCode.IllegalGeneration], 'wrong generation');
  assert.deepEqual(commitCodes(await gc.commitOffsets(commitReq('g', ja.generationId, 'ghost', [['t', 0, 1n]]))), [ErrorCode.UnknownMember], 'unknown member');

  const fetched = gc.fetchOffsets({ groupId: 'g', topics: [{ name: 't', partitionIndexes: [0, 1, 2] }, { name: 'nope', partitionIndexes: [0] }] });
  assert.equal(fetched.error, null);
  assert.deepEqual(fetched.topics, [
    {
      name: 't',
      partitions: [
        { partitionIndex: 0, committedOffset: 20n, committedLeaderEpoch: 3, metadata: '' },
        { partitionIndex: 1, committedOffset: 11n, committedLeaderEpoch: 3, metadata: '' },
        { partitionIndex: 2, committedOffset: -1n, committedLeaderEpoch: -1, metadata: '' },
      ],
    },
    { name: 'nope', partitions: [{ partitionIndex: 0, committedOffset: -1n, committedLeaderEpoch: -1, metadata: '' }] },
  ]);
  const all = gc.fetchOffsets({ groupId: 'g', topics: null });
  assert.deepEqual(all.topics.map((t) => [t.name, t.partitions.map((p) => [p.partitionIndex, p.committedOffset])]), [
    ['t', [[0, 20n], [1, 11n]]],
    ['u', [[0, 12n]]],
  ]);
  assert.deepEqual(gc.fetchOffsets({ groupId: 'unknown', topics: [{ name: 't', partitionIndexes: [0] }] }).topics[0].partitions[0].committedOffset, -1n);
});

test('simple commits (generation -1, member "") only while the group is Empty or unknown', async () => {
  const gc = await openCoordinator();
  assert.deepEqual(commitCodes(await gc.commitOffsets(commitReq('tools', -1, '', [['t', 0, 42n, 'by admin']]))), [null]);
  assert.equal(gc.fetchOffsets({ groupId: 'tools', topics: [{ name: 't', partitionIndexes: [0] }] }).topics[0].partitions[0].metadata, 'by admin');
  assert.deepEqual(commitCodes(await gc.commitOffsets(commitReq('gone', 4, 'old-member', [['t', 0, 1n]]))), [ErrorCode.IllegalGeneration], 'Kafka: a commit from a generation of a group that is gone');
  assert.deepEqual(commitCodes(await gc.commitOffsets(commitReq('tools', 4, 'old-member', [['t', 0, 1n]]))), [ErrorCode.UnknownMember], 'an Empty group known by its offsets');

  const { joined } = await stableGroup(gc, ['a']);
  assert.deepEqual(commitCodes(await gc.commitOffsets(commitReq('g', -1, '', [['t', 0, 1n]]))), [ErrorCode.UnknownMember], 'refused while the group has members');
  gc.leaveGroup({ groupId: 'g', members: [{ memberId: joined[0].memberId, groupInstanceId: null }] });
  assert.deepEqual(commitCodes(await gc.commitOffsets(commitReq('g', -1, '', [['t', 0, 7n]]))), [null], 'accepted once Empty');
  assert.equal(gc.fetchOffsets({ groupId: 'g', topics: null }).topics[0].partitions[0].committedOffset, 7n);
});

test('per-partition errors: metadata over the limit is OFFSET_METADATA_TOO_LARGE, the rest commit', async () => {
  const gc = await openCoordinator({ maxMetadataBytes: 8 });
  const r = await gc.commitOffsets(commitReq('g', -1, '', [['t', 0, 1n, '12345678'], ['t', 1, 2n, '123456789']]));
  assert.deepEqual(commitCodes(r), [null, ErrorCode.OffsetMetadataTooLarge]);
  assert.deepEqual(gc.fetchOffsets({ groupId: 'g', topics: null }).topics[0].partitions.map((p) => p.partitionIndex), [0]);
});

test('a full commit queue answers COORDINATOR_BUSY (retriable) instead of buffering without bound', async () => {
  const gc = await openCoordinator({ maxQueuedCommitBytes: 400 });
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) => gc.commitOffsets(commitReq('g', -1, '', [['topic', i, BigInt(i)]]))));
  const codes = results.flatMap(commitCodes);
  assert.ok(codes.includes(null));
  assert.ok(codes.includes(ErrorCode.CoordinatorBusy), `some commits were refused: ${codes.join(',')}`);
  assert.ok(codes.every((c) => c === null || c === ErrorCode.CoordinatorBusy));
  const stored = gc.fetchOffsets({ groupId: 'g', topics: null }).topics[0].partitions.length;
  assert.equal(stored, codes.filter((c) => c === null).length, 'exactly the acknowledged commits are stored');
});

test('concurrent commits share fsyncs (group commit)', async () => {
  const gc = await openCoordinator();
  const before = gc.stats().offsets.fsyncs;
  const results = await Promise.all(Array.from({ length: 200 }, (_, i) => gc.commitOffsets(commitReq(`g${i % 5}`, -1, '', [['t', i, BigInt(1000 + i)]]))));
  assert.ok(results.every((r) => commitCodes(r).every((c) => c === null)));
  const stats = gc.stats().offsets;
  const fsyncs = stats.fsyncs - before;
  assert.equal(stats.records, 200);
  assert.ok(fsyncs >= 1 && fsyncs <= 10, `200 concurrent commits took ${fsyncs} fsyncs`);
  for (let i = 0; i < 200; i++) {
    assert.equal(gc.fetchOffsets({ groupId: `g${i % 5}`, topics: [{ name: 't', partitionIndexes: [i] }] }).topics[0].partitions[0].committedOffset, BigInt(1000 + i));
  }
});

test('committed offsets survive close and reopen; membership does not', async () => {
  const dir = freshDir();
  const gc = await openCoordinator({ dir });
  const { joined } = await stableGroup(gc, ['a']);
  const big = 2n ** 62n + 5n;
  await gc.commitOffsets(commitReq('g', joined[0].generationId, joined[0].memberId, [['t', 0, big, 'meta ✓'], ['t', 3, 0n]]));
  await gc.commitOffsets(commitReq('other', -1, '', [['x', 9, 99n]]));
  await gc.close();

  const again = await openCoordinator({ dir });
  const t = again.fetchOffsets({ groupId: 'g', topics: null }).topics;
  assert.deepEqual(t, [
    {
      name: 't',
      partitions: [
        { partitionIndex: 0, committedOffset: big, committedLeaderEpoch: 3, metadata: 'meta ✓' },
        { partitionIndex: 3, committedOffset: 0n, committedLeaderEpoch: 3, metadata: '' },
      ],
    },
  ]);
  assert.equal(again.fetchOffsets({ groupId: 'other', topics: [{ name: 'x', partitionIndexes: [9] }] }).topics[0].partitions[0].committedOffset, 99n);
  // The old member must rejoin; the group itself is Empty (known by its offsets).
  assert.equal(again.heartbeat({ groupId: 'g', generationId: 1, memberId: joined[0].memberId, groupInstanceId: null }).error?.code, ErrorCode.UnknownMember);
  assert.deepEqual(
    again.listGroups().sort((x, y) => x.groupId.localeCompare(y.groupId)),
    [
      { groupId: 'g', protocolType: '', groupState: 'Empty' },
      { groupId: 'other', protocolType: '', groupState: 'Empty' },
    ],
  );
});

test('describe and list follow the states; an emptied group with offsets stays Empty, without offsets it is gone', async () => {
  const gc = await openCoordinator();
  assert.deepEqual(gc.describeGroups(['g']), [{ error: null, groupId: 'g', groupState: 'Dead', protocolType: '', protocolData: '', members: [] }]);
  const a = joinReq({ clientId: 'a' });
  const req = { ...a, memberId: await getMemberId(gc, a) };
  assert.deepEqual(gc.listGroups(), [{ groupId: 'g', protocolType: '', groupState: 'Empty' }], 'a handed-out member id makes the group exist');
  const join = gc.joinGroup(req);
  assert.deepEqual(gc.listGroups(), [{ groupId: 'g', protocolType: 'consumer', groupState: 'PreparingRebalance' }]);
  const during = gc.describeGroups(['g'])[0];
  assert.equal(during.members.length, 1);
  assert.equal(during.members[0].memberMetadata.length, 0, 'metadata is shown in Stable only');
  const j = await join;
  assert.equal(gc.listGroups()[0].groupState, 'CompletingRebalance');
  await syncAll(gc, [{ memberId: j.memberId, generationId: j.generationId, leader: j.leader, result: j }]);
  assert.equal(gc.listGroups()[0].groupState, 'Stable');
  await gc.commitOffsets(commitReq('g', j.generationId, j.memberId, [['t', 0, 1n]]));
  gc.leaveGroup({ groupId: 'g', members: [{ memberId: j.memberId, groupInstanceId: null }] });
  assert.deepEqual(gc.listGroups(), [{ groupId: 'g', protocolType: 'consumer', groupState: 'Empty' }]);
  const stats = gc.stats();
  assert.equal(stats.groups, 1);
  assert.deepEqual(stats.byState, { Empty: 1, PreparingRebalance: 0, CompletingRebalance: 0, Stable: 0 });
  assert.equal(stats.rebalances, 1);

  await gc.deleteTopicOffsets('t');
  assert.deepEqual(gc.listGroups(), [], 'its only offsets went with the topic');
  assert.equal(gc.describeGroups(['g'])[0].groupState, 'Dead');
});
