/**
 * The last write of a failback (dr/failback.ts `ownFailback`): `following` is written only
 * over the `failing-back` entry this failback wrote; any other entry (a promote through
 * another broker of the cluster meanwhile, another failback's plan, a newer epoch) makes
 * the failback fail, retriable, with nothing written. End to end: test/cluster/cluster-dr.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ownFailback } from '../../src/dr/failback.js';
import type { TopicDrEntry } from '../../src/dr/dr-state.js';

const plan = { newPrimary: 'us-east', newEpoch: 2, sideTopic: 'orders.diverged-eu-west-e2', cuts: { '0': '11' } };
const own: TopicDrEntry = { primary: 'us-east', epoch: 2, phase: 'failing-back', at: 1, failback: plan };

test('ownFailback: only the failing-back entry of this plan', () => {
  assert.equal(ownFailback(own, plan), true);
  assert.equal(ownFailback({ ...own, supersededBy: { primary: 'us-east', epoch: 2, at: 2 } }, plan), true, 'a marking of the same epoch noted meanwhile');
  assert.equal(ownFailback(undefined, plan), false, 'the entry was deleted (topic deleted)');
  assert.equal(ownFailback({ primary: 'eu-west', epoch: 3, phase: 'promoting', at: 2 }, plan), false, 'a promote through another broker');
  assert.equal(ownFailback({ primary: 'eu-west', epoch: 3, phase: 'promoted', at: 2 }, plan), false, 'a completed promote');
  assert.equal(ownFailback({ ...own, phase: 'following' }, plan), false, 'already completed by another attempt');
  assert.equal(ownFailback({ ...own, epoch: 3, failback: { ...plan, newEpoch: 3, sideTopic: 'orders.diverged-eu-west-e3' } }, plan), false, 'a failback to a newer epoch');
  assert.equal(ownFailback({ ...own, failback: { ...plan, sideTopic: 'other' } }, plan), false, "another plan's side topic");
});
