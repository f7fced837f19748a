/**
 * DeleteGroups and OffsetDelete in the coordinator (Kafka's GroupCoordinator.handleDeleteGroups
 * and handleDeleteOffsets rules), their durability across a reopen and a compaction, the
 * DELETE_OFFSETS record, and the per-version commit rules that live in the coordinator
 * (OffsetCommit v1's commit times, v9's GROUP_NOT_FOUND).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { subscribedTopicsOf } from '../../../src/broker/groups/consumer-subscription.js';
import type { GroupCoordinator } from '../../../src/broker/groups/group-coordinator.js';
import { decodeFrames, encodeRecord, RecordType } from '../../../src/broker/groups/offset-record.js';
import { OffsetStore } from '../../../src/broker/groups/offset-store.js';
import { cleanupAll, codeOf, commitCodes, commitReq, freshDir, openCoordinator, stableGroup } from './group-helpers.js';

after(cleanupAll);

/** Kafka's ConsumerProtocolSubscription v0: version, topics, user data (null). */
function subscription(topics: string[]): Buffer {
  const parts = [Buffer.from([0, 0]), int32(topics.length)];
  for (const t of topics) parts.push(Buffer.from([0, Buffer.byteLength(t)]), Buffer.from(t));
  parts.push(int32(-1));
  return Buffer.concat(parts);
}

function int32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(v);
  return b;
}

function fetched(gc: GroupCoordinator, groupId: string): Array<[string, number, bigint]> {
  return gc
    .fetchOffsets({ groupId, topics: null })
    .topics.flatMap((t) => t.partitions.map((p): [string, number, bigint] => [t.name, p.partitionIndex, p.committedOffset]))
    .sort((a, b) => (a[0] + a[1]).localeCompare(b[0] + b[1]));
}

test('the subscription reader: topics of every subscription version, null for bytes that are not one', () => {
  assert.deepEqual(subscribedTopicsOf(subscription(['a', 'bb'])), ['a', 'bb']);
  const v3 = Buffer.concat([Buffer.from([0, 3]), int32(1), Buffer.from([0, 1]), Buffer.from('t'), int32(0), int32(0), int32(7), Buffer.from([0xff, 0xff])]);
  assert.deepEqual(subscribedTopicsOf(v3), ['t'], 'later fields are not read');
  assert.equal(subscribedTopicsOf(Buffer.from('meta-c')), null);
  assert.equal(subscribedTopicsOf(Buffer.concat([Buffer.from([0, 0]), int32(2), Buffer.from([0, 1]), Buffer.from('t')])), null, 'a second topic that is not there');
  assert.equal(subscribedTopicsOf(Buffer.alloc(0)), null);
});

test('DeleteGroups: an empty group goes with its offsets, durably; members make it NON_EMPTY_GROUP; unknown is GROUP_NOT_FOUND', async () => {
  const dir = freshDir();
  const gc = await openCoordinator({ dir });
  assert.deepEqual(commitCodes(await gc.commitOffsets(commitReq('simple', -1, '', [['t', 0, 5n], ['t', 1, 6n]]))), [null, null]);
  assert.deepEqual(commitCodes(await gc.commitOffsets(commitReq('kept', -1, '', [['t', 0, 9n]]))), [null]);
  const { joined } = await stableGroup(gc, ['a'], { groupId: 'busy' });
  assert.deepEqual(commitCodes(await gc.commitOffsets(commitReq('busy', joined[0].generationId, joined[0].memberId, [['t', 0, 1n]]))), [null]);

  const results = await gc.deleteGroups(['simple', 'busy', 'nobody']);
  assert.deepEqual(
    results.map((r) => [r.groupId, codeOf(r.error)]),
    [['simple', null], ['busy', 'NON_EMPTY_GROUP'], ['nobody', 'GROUP_NOT_FOUND']],
  );
  assert.deepEqual(fetched(gc, 'simple'), []);
  assert.ok(!gc.listGroups().some((g) => g.groupId === 'simple'));
  assert.deepEqual(gc.describeGroups(['simple'])[0].groupState, 'Dead');

  // Once its member leaves, the group is Empty (kept for its offsets) and can go.
  assert.equal(codeOf(gc.leaveGroup({ groupId: 'busy', members: [{ memberId: joined[0].memberId, groupInstanceId: null }] }).members[0].error), null);
  assert.equal(codeOf((await gc.deleteGroups(['busy']))[0].error), null);
  assert.deepEqual(codeOf((await gc.deleteGroups(['simple']))[0].error), 'GROUP_NOT_FOUND', 'deleted already');
  await gc.close();

  const reopened = await openCoordinator({ dir });
  assert.deepEqual(fetched(reopened, 'simple'), [], 'the deletion survives a restart');
  assert.deepEqual(fetched(reopened, 'kept'), [['t', 0, 9n]]);
  assert.deepEqual(reopened.listGroups().map((g) => g.groupId), ['kept']);
});

test('OffsetDelete: an empty group loses exactly the partitions named, durably, and is forgotten with its last offset', async () => {
  const dir = freshDir();
  const gc = await openCoordinator({ dir });
  await gc.commitOffsets(commitReq('g', -1, '', [['a', 0, 1n], ['a', 1, 2n], ['b', 0, 3n]]));
  const r = await gc.deleteOffsets({ groupId: 'g', topics: [{ name: 'a', partitionIndexes: [1, 7] }] });
  assert.equal(r.error, null);
  assert.deepEqual(r.topics.map((t) => t.partitions.map((p) => [p.partitionIndex, codeOf(p.error)])), [[[1, null], [7, null]]], 'nothing committed is no error');
  assert.deepEqual(fetched(gc, 'g'), [['a', 0, 1n], ['b', 0, 3n]]);

  assert.equal(codeOf((await gc.deleteOffsets({ groupId: 'nobody', topics: [{ name: 'a', partitionIndexes: [0] }] })).error), 'GROUP_NOT_FOUND');
  assert.equal(codeOf((await gc.deleteOffsets({ groupId: '', topics: [] })).error), 'INVALID_GROUP_ID');
  await gc.close();

  const reopened = await openCoordinator({ dir });
  assert.deepEqual(fetched(reopened, 'g'), [['a', 0, 1n], ['b', 0, 3n]], 'the deletion survives a restart');
  await reopened.deleteOffsets({ groupId: 'g', topics: [{ name: 'a', partitionIndexes: [0] }, { name: 'b', partitionIndexes: [0] }] });
  assert.deepEqual(reopened.listGroups(), [], 'no offsets and no members: the group is gone');
  assert.equal(reopened.describeGroups(['g'])[0].groupState, 'Dead');
});

test('OffsetDelete in an active consumer group: GROUP_SUBSCRIBED_TO_TOPIC for the topics its members subscribe to, the others go', async () => {
  const gc = await openCoordinator();
  const { joined } = await stableGroup(gc, ['a', 'b'], { groupId: 'live', protocols: [{ name: 'range', metadata: subscription(['orders']) }] });
  const gen = joined[0].generationId;
  await gc.commitOffsets(commitReq('live', gen, joined[0].memberId, [['orders', 0, 10n], ['old', 0, 4n]]));
  const r = await gc.deleteOffsets({ groupId: 'live', topics: [{ name: 'orders', partitionIndexes: [0] }, { name: 'old', partitionIndexes: [0] }] });
  assert.equal(r.error, null);
  assert.deepEqual(
    r.topics.map((t) => [t.name, t.partitions.map((p) => codeOf(p.error))]),
    [['orders', ['GROUP_SUBSCRIBED_TO_TOPIC']], ['old', [null]]],
  );
  assert.deepEqual(fetched(gc, 'live'), [['orders', 0, 10n]]);

  // Another protocol type: Kafka cannot tell what it consumes, so an active group refuses whole.
  await stableGroup(gc, ['w'], { groupId: 'connect', protocolType: 'connect', protocols: [{ name: 'default', metadata: Buffer.from('x') }] });
  await gc.commitOffsets(commitReq('connect-simple', -1, '', [['old', 0, 1n]]));
  assert.equal(codeOf((await gc.deleteOffsets({ groupId: 'connect', topics: [{ name: 'old', partitionIndexes: [0] }] })).error), 'NON_EMPTY_GROUP');
});

test('DELETE_OFFSETS: the record round-trips, replays after the commits it follows and is folded into a compaction', async () => {
  const record = { type: RecordType.DeleteOffsets, groupId: 'g', topics: [{ topic: 'a', partitions: [0, 2] }, { topic: 'é', partitions: [] }] } as const;
  assert.deepEqual(decodeFrames(encodeRecord(record)).records, [record]);

  const dir = freshDir();
  const store = await OffsetStore.open({ dir });
  const at = (offset: bigint, partition: number) => ({ topic: 'a', partition, offset, leaderEpoch: -1, commitTimestamp: 1, metadata: '' });
  await store.commit('g', [at(1n, 0), at(2n, 1), at(3n, 2)]);
  await store.deleteOffsets('g', [{ topic: 'a', partitions: [0, 2] }]);
  await store.close();
  const replayed = await OffsetStore.open({ dir });
  assert.deepEqual([...(replayed.offsetsOf('g')?.get('a')?.keys() ?? [])], [1]);
  await replayed.compact();
  await replayed.close();
  const compacted = await OffsetStore.open({ dir });
  assert.deepEqual([...(compacted.offsetsOf('g')?.get('a')?.keys() ?? [])], [1]);
  await compacted.close();
});

test("OffsetCommit rules by version: v1's commit time is kept, v9 answers GROUP_NOT_FOUND for a group that does not exist", async () => {
  const dir = freshDir();
  const gc = await openCoordinator({ dir, now: () => 5_000 });
  const req = commitReq('v1', -1, '', [['t', 0, 7n], ['t', 1, 8n]]);
  const withTimes = { ...req, topics: [{ name: 't', partitions: req.topics[0].partitions.map((p, i) => ({ ...p, commitTimestamp: i === 0 ? 1_234 : -1 })) }] };
  assert.deepEqual(commitCodes(await gc.commitOffsets(withTimes)), [null, null]);
  assert.deepEqual(commitCodes(await gc.commitOffsets({ ...commitReq('gone', 3, 'm', [['t', 0, 1n]]), unknownGroupIsNotFound: true })), ['GROUP_NOT_FOUND']);
  assert.deepEqual(commitCodes(await gc.commitOffsets(commitReq('gone', 3, 'm', [['t', 0, 1n]]))), ['ILLEGAL_GENERATION'], 'before v9');
  await gc.close();
  const store = await OffsetStore.open({ dir });
  assert.deepEqual([store.get('v1', 't', 0)?.commitTimestamp, store.get('v1', 't', 1)?.commitTimestamp], [1_234, 5_000]);
  await store.close();
});
