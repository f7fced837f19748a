/**
 * The failback clamp of group commits (src/dr/failback-clamp.ts) on a region cluster's
 * coordinators, without etcd: three real brokers in this process (test/cluster/
 * replica-cluster.ts, its in-memory stand-in for etcd plays the controller) replicate
 * `__meridian_offsets`; on brokers 1 and 2 a ClusterOffsets and the real GroupCoordinator
 * with a FailbackClamp over an in-memory DR entry (what cluster/dr-sync.ts would apply).
 *
 * The gaps of the previous clamp (only a `failing-back` → `following` transition seen live
 * counted) are shown closed: the `following` entry appears without any change being
 * announced (a watch reload, a coordinator that was not leading then); a stale commit is
 * answered at the cut at once, and is rewritten at the cut by the coordinator that loads the
 * offsets partition after a leadership change; a commit from the old history landing after
 * the failback (its committed leader epoch older than the cut's) is clamped too; legitimate
 * commits past the cut made on the new history (a newer leader epoch, or none and made after
 * the failback) are kept, and a second pass moves nothing.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { GroupCoordinator } from '../../src/broker/groups/group-coordinator.js';
import { ProducerStates } from '../../src/broker/producer-states.js';
import { ClusterOffsets } from '../../src/cluster/group-offsets.js';
import { OFFSETS_TOPIC } from '../../src/cluster/group-offsets-topic.js';
import type { TopicDrEntry } from '../../src/dr/dr-state.js';
import { FailbackClamp, failbackCutsOf, staleCommitCut, type FailbackCuts } from '../../src/dr/failback-clamp.js';
import { waitFor } from '../helpers/wait.js';
import { startOffsetsCluster, type ReplicaCluster } from '../cluster/replica-cluster.js';

const T0 = 1_700_000_000_000;

test('the rule: stale past the cut by leader epoch, else by time; at or below the cut never', () => {
  const f: FailbackCuts = { sideTopic: 's', cuts: { '0': '10', '1': '0' }, leaderEpochs: { '0': 5 }, completedAt: T0 };
  const at = (offset: bigint, leaderEpoch: number, commitTimestamp: number) => ({ offset, leaderEpoch, commitTimestamp });
  assert.equal(staleCommitCut(at(15n, 3, T0 + 60_000), 0, f), 10n, 'an older leader epoch: made on the discarded history, however late it landed');
  assert.equal(staleCommitCut(at(15n, 5, T0 - 1), 0, f), undefined, "the cut's epoch: the new history");
  assert.equal(staleCommitCut(at(15n, -1, T0), 0, f), 10n, 'no epoch, made before the cuts were done');
  assert.equal(staleCommitCut(at(15n, -1, T0 + 1), 0, f), undefined, 'no epoch, made after');
  assert.equal(staleCommitCut(at(10n, 3, T0), 0, f), undefined, 'at the cut: nothing to move (a clamped commit stays)');
  assert.equal(staleCommitCut(at(3n, -1, T0), 1, f), 0n, 'a partition without an epoch is judged by time');
  assert.equal(staleCommitCut(at(3n, -1, T0), 2, f), undefined, 'a partition the failback did not cut');

  const entry = (e: Partial<TopicDrEntry>): TopicDrEntry => ({ primary: 'us-east', epoch: 2, phase: 'following', at: T0, ...e });
  assert.equal(failbackCutsOf(entry({ failback: f })), f);
  assert.equal(failbackCutsOf(entry({ failback: { cuts: { '0': '10' } } })), undefined, 'a following entry of an older version: no way to tell, nothing clamped');
  assert.equal(failbackCutsOf(entry({ phase: 'promoted', failback: f })), undefined);
  const going = failbackCutsOf(entry({ phase: 'failing-back', failback: { newPrimary: 'us-east', newEpoch: 2, sideTopic: 's', cuts: { '0': '10' } } }));
  assert.equal(going !== undefined && staleCommitCut(at(11n, 9, T0 + 1), 0, going), 10n, 'while failing back every commit past a cut goes to it');
});

let cluster: ReplicaCluster;

before(async () => {
  cluster = await startOffsetsCluster();
});

after(async () => {
  await cluster?.close();
});

test('a coordinator that loads the offsets partition after the failback rewrites its stale commits; late old-history commits are clamped, new-history ones kept', async (t) => {
  const topic = 'orders';
  const entries = new Map<string, TopicDrEntry>();
  const logger = pino({ level: 'silent' });
  const coordinators = [1, 2].map((id) => {
    const rm = cluster.node(id).broker.replicaManager!;
    const offsets = new ClusterOffsets({ topics: cluster.node(id).broker.topics, partitions: 1, sync: false, commitTimeoutMs: 3000 });
    const groups = GroupCoordinator.withBackend(offsets, { gate: (g) => offsets.gate(g), initialRebalanceDelayMs: 0 });
    const clamp = new FailbackClamp({ groups, entryOf: (name) => entries.get(name), entries: () => [...entries], logger });
    offsets.attach(rm, { topicReady: (name) => name === OFFSETS_TOPIC, createOffsetsTopic: async () => undefined, brokerAddress: () => undefined }, groups, new ProducerStates());
    return { id, offsets, groups, clamp };
  });
  t.after(async () => {
    for (const c of coordinators) {
      c.clamp.close();
      await c.groups.close();
    }
  });
  const [one, two] = coordinators as [(typeof coordinators)[0], (typeof coordinators)[0]];
  const commit = async (c: typeof one, groupId: string, offset: bigint, leaderEpoch: number) => {
    const r = await c.groups.commitOffsets({ groupId, generationIdOrMemberEpoch: -1, memberId: '', groupInstanceId: null, topics: [{ name: topic, partitions: [{ partitionIndex: 0, committedOffset: offset, committedLeaderEpoch: leaderEpoch, committedMetadata: null }] }] });
    assert.equal(r.topics[0]!.partitions[0]!.error, null, `${groupId}'s commit at ${offset} accepted by broker ${c.id}`);
  };
  const fetched = (c: typeof one, groupId: string) => c.groups.fetchOffsets({ groupId, topics: [{ name: topic, partitionIndexes: [0] }] }).topics[0]!.partitions[0]!.committedOffset;
  const stored = (c: typeof one, groupId: string) => c.offsets.get(groupId, topic, 0)?.offset;

  await waitFor('broker 1 to coordinate', () => one.offsets.led().loaded.includes(0), 10_000);
  // On the old history, at leader epoch 3: one group past the cut, one below it.
  await commit(one, 'past', 15n, 3);
  await commit(one, 'below', 7n, 3);

  // The failback cut partition 0 at 10 (leader epoch 5 from then on). Nothing announces it
  // here: this broker's watch reloaded, say, or it applied `following` without the
  // `failing-back` before it.
  const completedAt = Date.now();
  entries.set(topic, { primary: 'us-east', epoch: 2, phase: 'following', at: completedAt - 1000, failback: { sideTopic: `${topic}.diverged-eu-west-e2`, cuts: { '0': '10' }, leaderEpochs: { '0': 5 }, completedAt } satisfies FailbackCuts });
  assert.equal(fetched(one, 'past'), 10n, 'OffsetFetch answers the stale commit at the cut at once');
  assert.equal(fetched(one, 'below'), 7n, 'a commit below the cut is untouched');
  assert.equal(stored(one, 'past'), 15n, 'not rewritten yet: no change was announced and nothing was loaded');

  // A commit from before the cut, in flight, lands after the failback: its leader epoch is the old one.
  await commit(one, 'late', 18n, 3);
  // Made on the new history: a consumer read the new primary's records past the cut.
  await commit(one, 'legit', 18n, 5);
  assert.equal(fetched(one, 'late'), 10n, 'an old-history commit landing late is answered at the cut');
  assert.equal(fetched(one, 'legit'), 18n, "a commit at the cut's leader epoch is kept");

  // The coordinator changes: broker 2 leads the offsets partition, replays it, and rewrites.
  cluster.source.elect(OFFSETS_TOPIC, 0, 2);
  await waitFor('broker 2 to load the offsets partition and rewrite the stale commits', () => two.offsets.led().loaded.includes(0) && stored(two, 'past') === 10n && stored(two, 'late') === 10n, 10_000);
  assert.equal(stored(two, 'legit'), 18n, 'the new-history commit is kept by the rewrite');
  assert.equal(stored(two, 'below'), 7n);
  // A client that sends no leader epoch, committing after the failback: new history, kept.
  await commit(two, 'no-epoch', 19n, -1);
  assert.equal(fetched(two, 'no-epoch'), 19n);
  assert.equal(await two.clamp.rewriteAll(), 0, 'a second pass moves nothing: idempotent');

  // And back to broker 1, which replays what broker 2 wrote: the same offsets, raw.
  cluster.source.elect(OFFSETS_TOPIC, 0, 1);
  await waitFor('broker 1 to load the offsets partition again', () => one.offsets.led().loaded.includes(0) && stored(one, 'no-epoch') === 19n, 10_000);
  assert.deepEqual(
    ['past', 'below', 'late', 'legit', 'no-epoch'].map((g) => stored(one, g)),
    [10n, 7n, 10n, 18n, 19n],
    'past and late rewritten at the cut; below, legit and no-epoch as committed',
  );
  assert.equal(await one.clamp.rewriteAll(), 0, 'nothing left to move');

  // A later entry without the cuts (the next promote) cannot bring a stale commit back: it was rewritten.
  entries.set(topic, { primary: 'eu-west', epoch: 3, phase: 'promoted', at: Date.now() });
  assert.equal(fetched(one, 'past'), 10n);
});
