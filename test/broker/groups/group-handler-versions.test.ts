/**
 * What the group handlers (broker/kafka/groups.ts) write where versions differ in shape:
 * OffsetFetch v0-1 have no top-level error, so a failure goes into each partition asked for;
 * v8+ answer per group; DeleteGroups and OffsetDelete answer NOT_COORDINATOR once the
 * coordinator has closed, like every other group API. The handlers here read only
 * `deps.groups` (and OffsetDelete `deps.topics`), so the test hands them just those.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { GroupCoordinator } from '../../../src/broker/groups/group-coordinator.js';
import type { KafkaApiDeps } from '../../../src/broker/kafka-api.js';
import { handleDeleteGroups, handleOffsetDelete, handleOffsetFetch } from '../../../src/broker/kafka/groups.js';
import { cleanupAll, commitReq, openCoordinator } from './group-helpers.js';

after(cleanupAll);

const NONE = 0;
const NOT_COORDINATOR = 16;

const depsOf = (gc: GroupCoordinator): KafkaApiDeps =>
  ({ groups: gc, topics: { getTopic: (name: string) => (name === 't' ? { name, partitions: 2 } : undefined) } }) as unknown as KafkaApiDeps;

test('OffsetFetch: v0-1 carry a failure in every partition asked for, v2-7 at the top, v8+ per group', async () => {
  const gc = await openCoordinator();
  await gc.commitOffsets(commitReq('g', -1, '', [['t', 0, 4n]]));
  const topics = [{ name: 't', partitionIndexes: [0, 1] }];
  const ok = await handleOffsetFetch(depsOf(gc), { groupId: 'g', topics, groups: [], requireStable: false }, 0);
  assert.deepEqual(ok.topics[0].partitions.map((p) => [p.partitionIndex, p.committedOffset, p.errorCode]), [[0, 4n, NONE], [1, -1n, NONE]]);
  await gc.close();

  for (const v of [0, 1]) {
    const r = await handleOffsetFetch(depsOf(gc), { groupId: 'g', topics, groups: [], requireStable: false }, v);
    assert.deepEqual(r.topics[0].partitions.map((p) => [p.partitionIndex, p.committedOffset, p.errorCode]), [[0, -1n, NOT_COORDINATOR], [1, -1n, NOT_COORDINATOR]], `v${v}`);
    assert.equal(r.errorCode, NONE, 'v0-1 have no top-level error');
  }
  const v7 = await handleOffsetFetch(depsOf(gc), { groupId: 'g', topics, groups: [], requireStable: true }, 7);
  assert.deepEqual([v7.errorCode, v7.topics], [NOT_COORDINATOR, []]);
  const v8 = await handleOffsetFetch(depsOf(gc), { groupId: '', topics: [], groups: [{ groupId: 'g', memberId: null, memberEpoch: -1, topics: null }], requireStable: false }, 8);
  assert.deepEqual(v8.groups.map((g) => [g.groupId, g.errorCode, g.topics]), [['g', NOT_COORDINATOR, []]]);
});

test('DeleteGroups and OffsetDelete answer NOT_COORDINATOR from a closed coordinator', async () => {
  const gc = await openCoordinator();
  await gc.commitOffsets(commitReq('g', -1, '', [['t', 0, 4n]]));
  await gc.close();
  const deleted = await handleDeleteGroups(depsOf(gc), { groupsNames: ['g', 'other'] });
  assert.deepEqual(deleted.results.map((r) => [r.groupId, r.errorCode]), [['g', NOT_COORDINATOR], ['other', NOT_COORDINATOR]]);
  const offsets = await handleOffsetDelete(depsOf(gc), { groupId: 'g', topics: [{ name: 't', partitions: [{ partitionIndex: 0 }] }] });
  assert.deepEqual([offsets.errorCode, offsets.topics], [NOT_COORDINATOR, []]);
});
