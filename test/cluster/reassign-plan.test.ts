/**
 * The controller's reassignment steps (src/cluster/reassign-plan.ts), pure: from a
 * partition's state and a target, what the controller writes next. A whole move is walked
 * through step by step with the ISR changes a leader would make in between.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PartitionState } from '../../src/cluster/partition-state.js';
import { parseReassignment, reassignmentSets, reassignStep, validateTarget, type Reassignment } from '../../src/cluster/reassign-plan.js';

const state = (replicas: number[], leader: number, isr: number[], leaderEpoch = 3, partitionEpoch = 7): PartitionState => ({ replicas, leader, isr, leaderEpoch, partitionEpoch });
const move = (target: number[], original: number[] = []): Reassignment => ({ target, original, requestedAt: 0 });
const all = new Set([1, 2, 3, 4, 5]);

test('a move out of the leader: add, wait for the ISR, then one write that moves leadership and removes the old replicas', () => {
  const r = move([4, 2, 3], [1, 2, 3]);
  const s0 = state([1, 2, 3], 1, [1, 2, 3]);
  const add = reassignStep(s0, r, all);
  assert.equal(add.kind, 'add');
  const s1 = (add as { state: PartitionState }).state;
  assert.deepEqual(s1, state([4, 2, 3, 1], 1, [1, 2, 3], 3, 8), 'target first, the leaving replica last; leader and epoch unchanged');
  assert.deepEqual(reassignStep(s1, r, all), { kind: 'wait', waitingFor: [4] });
  // The leader's alterIsr brings 4 in.
  const s2 = { ...s1, isr: [1, 2, 3, 4], partitionEpoch: 9 };
  const done = reassignStep(s2, r, all);
  assert.equal(done.kind, 'complete');
  assert.deepEqual((done as { state: PartitionState }).state, state([4, 2, 3], 4, [2, 3, 4], 4, 10), 'the first target leads at a new epoch; 1 out of replicas and ISR');
  assert.deepEqual(reassignStep(state([4, 2, 3], 4, [2, 3, 4], 4, 10), r, all), { kind: 'done' });
});

test('a move that only adds replicas is done once they are in sync, not when they are added', () => {
  const r = move([1, 2, 4], [1, 2]);
  const add = reassignStep(state([1, 2], 1, [1, 2]), r, all);
  assert.deepEqual(add, { kind: 'add', state: state([1, 2, 4], 1, [1, 2], 3, 8) });
  assert.deepEqual(reassignStep(state([1, 2, 4], 1, [1, 2], 3, 8), r, all), { kind: 'wait', waitingFor: [4] });
  assert.deepEqual(reassignStep(state([1, 2, 4], 1, [1, 2, 4], 3, 9), r, all), { kind: 'done' });
});

test('the leader stays when the first target replica is dead; no leader change, no new epoch', () => {
  const s = state([1, 2, 3, 4], 2, [1, 2, 3, 4]);
  const step = reassignStep(s, move([1, 2, 4]), new Set([2, 3, 4]));
  assert.deepEqual(step, { kind: 'complete', state: state([1, 2, 4], 2, [1, 2, 4], 3, 8) });
});

test('only a reordering: the preferred replica takes over in the completing write', () => {
  const step = reassignStep(state([1, 2, 3], 1, [1, 2, 3]), move([3, 2, 1]), all);
  assert.deepEqual(step, { kind: 'complete', state: state([3, 2, 1], 3, [1, 2, 3], 4, 8) });
});

test('a target replica out of the ISR holds the move; an offline partition gets a leader from the target', () => {
  assert.deepEqual(reassignStep(state([2, 3, 1], 2, [2, 1]), move([2, 3]), all), { kind: 'wait', waitingFor: [3] });
  const offline = reassignStep(state([2, 3, 1], -1, [2, 3, 1]), move([2, 3]), all);
  assert.deepEqual(offline, { kind: 'complete', state: state([2, 3], 2, [2, 3], 4, 8) });
  assert.deepEqual(reassignStep(state([2, 3, 1], -1, [2, 3, 1]), move([2, 3]), new Set([1])), { kind: 'wait', waitingFor: [2, 3] }, 'no target replica alive to lead');
});

test('a cancelled move goes back to the original replicas at once, leader kept where it can be', () => {
  const r: Reassignment = { target: [4, 2, 3], original: [1, 2, 3], requestedAt: 0, cancelled: true };
  // Added, 4 not caught up: back without waiting for anyone.
  assert.deepEqual(reassignStep(state([4, 2, 3, 1], 1, [1, 2, 3]), r, all), { kind: 'complete', state: state([1, 2, 3], 1, [1, 2, 3], 3, 8) });
  // The leader had moved to 4 (preferred): the first original replica in sync leads again.
  assert.deepEqual(reassignStep(state([4, 2, 3, 1], 4, [4, 2, 3]), r, all), { kind: 'complete', state: state([1, 2, 3], 2, [2, 3], 4, 8) });
  assert.deepEqual(reassignStep(state([1, 2, 3], 1, [1, 2, 3]), r, all), { kind: 'done' });
  assert.deepEqual(reassignStep(state([4, 2, 3, 1], 4, [4]), r, all), { kind: 'wait', waitingFor: [1, 2, 3] }, 'no original replica in sync');
});

test('sets, target checks and parsing', () => {
  assert.deepEqual(reassignmentSets([1, 2, 3], [4, 2, 3]), { adding: [4], removing: [1] });
  assert.doesNotThrow(() => validateTarget('t', 0, [4, 2], new Set([2, 4])));
  assert.throws(() => validateTarget('t', 0, [], all), /at least one replica/);
  assert.throws(() => validateTarget('t', 0, [2, 2], all), /named twice/);
  assert.throws(() => validateTarget('t', 0, [2, 9], all), (e: Error & { code?: string }) => e.code === 'INVALID_REPLICA_ASSIGNMENT' && /broker 9 is not registered/.test(e.message));
  assert.deepEqual(parseReassignment('k', JSON.stringify({ target: [1, 2], original: [3], requestedAt: 5 })), { target: [1, 2], original: [3], requestedAt: 5 });
  assert.equal(parseReassignment('k', JSON.stringify({ target: [1], original: [3], requestedAt: 5, cancelled: true })).cancelled, true);
  assert.throws(() => parseReassignment('k', '{"target":[]}'), (e: Error & { code?: string }) => e.code === 'CORRUPT_METADATA' && /etcdctl del k/.test(e.message));
});
