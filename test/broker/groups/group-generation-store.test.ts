/**
 * SyncGroup waits for the generation to be stored (region clusters, issue 16): with
 * `recordGeneration` (ClusterOffsets' GROUP_METADATA append, acks=all), the leader's SyncGroup
 * stores the generation and no member's SyncGroup is answered before that is durable, as
 * Kafka's doSyncGroup waits for storeGroup; a failed store answers every member its error
 * (COORDINATOR_NOT_AVAILABLE or NOT_COORDINATOR, which clients retry by rejoining) and the
 * group rebalances. `recordGeneration` here is the test's own function standing in for the
 * replicated append (the cluster test drives the real one); the group is the real one.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ErrorCode, MeridianError } from '../../../src/errors.js';
import { ConsumerGroup } from '../../../src/broker/groups/consumer-group.js';
import { GroupState, type SyncGroupResult } from '../../../src/broker/groups/group-api.js';
import { kafkaCode, toKafkaError } from '../../../src/protocol/kafka/error-mapping.js';
import { cleanupAll, isSettled, joinReq } from './group-helpers.js';

after(cleanupAll);

interface Store {
  readonly calls: Array<{ generationId: number; leader: string | null; protocolName: string | null; settle: (err?: Error) => void }>;
  readonly record: (g: ConsumerGroup) => Promise<void>;
}

function store(): Store {
  const calls: Store['calls'] = [];
  return {
    calls,
    record: (g) =>
      new Promise<void>((resolve, reject) => {
        calls.push({ generationId: g.generationId, leader: g.leaderId, protocolName: g.protocolName, settle: (err) => (err === undefined ? resolve() : reject(err)) });
      }),
  };
}

/** Two members through JoinGroup; the leader's and the follower's SyncGroup sent, not answered yet. */
async function twoMembersSyncing(s: Store) {
  const group = new ConsumerGroup('g', { initialRebalanceDelayMs: 10, maxGroupSize: 10, onIdle: () => undefined, recordGeneration: s.record });
  const [a, b] = await Promise.all([group.join(joinReq({ clientId: 'a', requireKnownMemberId: false })), group.join(joinReq({ clientId: 'b', requireKnownMemberId: false }))]);
  assert.equal(a.error, null);
  assert.equal(b.error, null);
  assert.equal(group.state, GroupState.CompletingRebalance);
  const leader = a.memberId === a.leader ? a : b;
  const follower = leader === a ? b : a;
  const sync = (m: typeof a, assignments: Array<{ memberId: string; assignment: Buffer }>): Promise<SyncGroupResult> =>
    group.sync({ groupId: 'g', generationId: m.generationId, memberId: m.memberId, groupInstanceId: null, protocolType: null, protocolName: null, assignments });
  const followerSync = sync(follower, []);
  const leaderSync = sync(leader, [
    { memberId: leader.memberId, assignment: Buffer.from('to-leader') },
    { memberId: follower.memberId, assignment: Buffer.from('to-follower') },
  ]);
  return { group, leader, follower, leaderSync, followerSync, sync };
}

test('no SyncGroup is answered before the generation is stored; then every member gets its assignment', async () => {
  const s = store();
  const { group, leader, leaderSync, followerSync } = await twoMembersSyncing(s);
  assert.equal(s.calls.length, 1, 'the leader\'s SyncGroup stores the generation');
  assert.deepEqual({ ...s.calls[0]!, settle: undefined }, { generationId: leader.generationId, leader: leader.memberId, protocolName: 'range', settle: undefined });
  assert.equal(await isSettled(leaderSync), false, 'the leader waits for the store');
  assert.equal(await isSettled(followerSync), false, 'the follower waits for the store');
  assert.equal(group.state, GroupState.CompletingRebalance);
  s.calls[0]!.settle();
  const [l, f] = await Promise.all([leaderSync, followerSync]);
  assert.equal(l.error, null);
  assert.equal(f.error, null);
  assert.equal(l.assignment.toString(), 'to-leader');
  assert.equal(f.assignment.toString(), 'to-follower');
  assert.equal(group.state, GroupState.Stable);
  group.shutdown();
});

test('a store that fails answers every member COORDINATOR_NOT_AVAILABLE (or NOT_COORDINATOR) and the group rebalances to a new generation', async () => {
  for (const [err, kafka] of [
    [new MeridianError(ErrorCode.CoordinatorUnavailable, 'the commit was not replicated to enough in-sync replicas in time; retry'), 'COORDINATOR_NOT_AVAILABLE'],
    [new MeridianError(ErrorCode.NotCoordinator, 'this broker no longer leads it; find the coordinator again'), 'NOT_COORDINATOR'],
    [new Error('something else'), 'COORDINATOR_NOT_AVAILABLE'],
    // The Java client's SyncGroup handler has no case for COORDINATOR_LOAD_IN_PROGRESS (an
    // unexpected error there); Kafka's storeGroup never answers it.
    [new MeridianError(ErrorCode.CoordinatorLoading, 'the offsets partition is still being loaded'), 'COORDINATOR_NOT_AVAILABLE'],
  ] as const) {
    const s = store();
    const { group, leader, follower, leaderSync, followerSync } = await twoMembersSyncing(s);
    s.calls[0]!.settle(err);
    const [l, f] = await Promise.all([leaderSync, followerSync]);
    for (const r of [l, f]) {
      assert.equal(toKafkaError(r.error).code, kafkaCode(kafka), `${err.message}: answered ${r.error?.code}`);
      assert.equal(r.assignment.length, 0, 'no assignment handed out');
    }
    assert.equal(group.state, GroupState.PreparingRebalance, 'the group rebalances');
    // The members rejoin and get the next generation; its store is asked for again.
    const rejoined = await Promise.all([leader, follower].map((m) => group.join(joinReq({ clientId: m === leader ? 'a' : 'b', memberId: m.memberId, requireKnownMemberId: false }))));
    for (const r of rejoined) assert.equal(r.generationId, leader.generationId + 1);
    group.shutdown();
  }
});

test('an unload while the generation is being stored answers the members at once; the late store changes nothing', async () => {
  const s = store();
  const { group, leaderSync, followerSync } = await twoMembersSyncing(s);
  group.shutdown();
  const [l, f] = await Promise.all([leaderSync, followerSync]);
  assert.equal(toKafkaError(l.error).code, kafkaCode('NOT_COORDINATOR'));
  assert.equal(toKafkaError(f.error).code, kafkaCode('NOT_COORDINATOR'));
  s.calls[0]!.settle();
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(group.state, GroupState.Dead);
});

test('a group left empty by a rebalance records its generation without anyone waiting', async () => {
  const s = store();
  const group = new ConsumerGroup('g', { initialRebalanceDelayMs: 10, maxGroupSize: 10, onIdle: () => undefined, recordGeneration: s.record });
  const a = await group.join(joinReq({ clientId: 'a', requireKnownMemberId: false }));
  // The only member leaves during CompletingRebalance; the next rebalance completes empty.
  assert.equal(group.leave(a.memberId, null), null);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(group.state, GroupState.Empty);
  assert.equal(s.calls.length, 1);
  assert.equal(s.calls[0]!.generationId, a.generationId + 1);
  s.calls[0]!.settle(new Error('not stored')); // only logged
  group.shutdown();
});
