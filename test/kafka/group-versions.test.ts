/**
 * The consumer-group APIs at the versions issue 11 added, through a real broker: raw
 * requests (RawClient, the generated codecs) for the versions no installed client sends, and
 * KafkaJS 2.2.4 as the client a user would check the result with.
 *
 * - OffsetCommit v0 (a "simple" commit, no membership) and v1 (per-partition commit times,
 *   generation and member), as an old Go client sends them without asking ApiVersions: the
 *   offsets are read back by OffsetFetch v0-9 and KafkaJS's admin, and survive a restart.
 * - OffsetFetch v8 and v9: several groups in one request.
 * - ListGroups v4/v5 filters and DescribeGroups v3+ authorized operations.
 * - DeleteGroups v0-2 and KafkaJS's admin.deleteGroups; OffsetDelete v0 (KafkaJS has no
 *   OffsetDelete, so raw requests, checked with KafkaJS's fetchOffsets and setOffsets).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-kafka.js';
import { waitFor } from '../helpers/wait.js';

const NONE = 0;
const UNKNOWN_TOPIC_OR_PARTITION = 3;
const ILLEGAL_GENERATION = 22;
const UNKNOWN_MEMBER_ID = 25;
const NON_EMPTY_GROUP = 68;
const GROUP_ID_NOT_FOUND = 69;
const GROUP_SUBSCRIBED_TO_TOPIC = 86;
/** Kafka's "not asked" authorizedOperations, and READ | DELETE | DESCRIBE (no authorizer: everything). */
const OPERATIONS_OMITTED = -2147483648;
const ALL_GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8);

let tb: TestBroker;
let c: RawClient;
const clients: Array<{ disconnect(): Promise<void> }> = [];

before(async () => {
  tb = await startBroker({ groups: { initialRebalanceDelayMs: 0, minSessionTimeoutMs: 1000 } });
  c = await RawClient.connect(tb.port);
  const admin = kafka().admin();
  await admin.connect();
  await admin.createTopics({ topics: ['legacy', 'od-a', 'od-b', 'live'].map((topic) => ({ topic, numPartitions: 2 })) });
  await admin.disconnect();
});

after(async () => {
  for (const k of clients.splice(0).reverse()) await k.disconnect().catch(() => {});
  c.close();
  await tb.cleanup();
});

function kafka(): Kafka {
  return new Kafka({ clientId: 'group-versions', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 3 } });
}

async function kafkaAdmin(): Promise<ReturnType<Kafka['admin']>> {
  const admin = kafka().admin();
  await admin.connect();
  clients.push(admin);
  return admin;
}

/** KafkaJS's view of a group's committed offsets: partition -> [offset, metadata]. */
async function kafkajsOffsets(groupId: string, topic: string): Promise<Array<[number, string, string | null]>> {
  const admin = await kafkaAdmin();
  const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return t.partitions.map((p) => [p.partition, p.offset, p.metadata] as [number, string, string | null]).sort((a, b) => a[0] - b[0]);
}

interface CommitPartition {
  partitionIndex: number;
  committedOffset: bigint;
  commitTimestamp?: bigint;
  committedMetadata?: string | null;
}

async function commit(version: number, groupId: string, topic: string, partitions: CommitPartition[], generation = -1, memberId = ''): Promise<number[]> {
  const r = await c.request(ApiKey.OffsetCommit, version, {
    groupId,
    generationIdOrMemberEpoch: generation,
    memberId,
    groupInstanceId: null,
    retentionTimeMs: -1n,
    topics: [{ name: topic, partitions: partitions.map((p) => ({ committedLeaderEpoch: -1, commitTimestamp: -1n, committedMetadata: null, ...p })) }],
  });
  return r.body.topics.flatMap((t: any) => t.partitions.map((p: any) => p.errorCode));
}

/** OffsetFetch of one group at any version: [partition, offset, metadata, error] per partition asked. */
async function fetchOffsets(version: number, groupId: string, topic: string, partitions: number[]): Promise<Array<[number, bigint, string | null, number]>> {
  const asked = [{ name: topic, partitionIndexes: partitions }];
  const body =
    version >= 8
      ? { groupId: '', topics: [], groups: [{ groupId, memberId: null, memberEpoch: -1, topics: asked }], requireStable: true }
      : { groupId, topics: asked, groups: [], requireStable: version >= 7 };
  const r = await c.request(ApiKey.OffsetFetch, version, body);
  const answer = version >= 8 ? r.body.groups[0] : r.body;
  if (version >= 2) assert.equal(answer.errorCode, NONE, `OffsetFetch v${version}`);
  return answer.topics[0].partitions.map((p: any) => [p.partitionIndex, p.committedOffset, p.metadata, p.errorCode]);
}

/** A one-member group through JoinGroup and SyncGroup at `version`s: its member id and generation. */
async function joinAlone(groupId: string, joinVersion: number, syncVersion: number): Promise<{ memberId: string; generationId: number }> {
  const join = (memberId: string) =>
    c.request(ApiKey.JoinGroup, joinVersion, {
      groupId,
      sessionTimeoutMs: 30_000,
      rebalanceTimeoutMs: 30_000,
      memberId,
      groupInstanceId: null,
      protocolType: 'consumer',
      protocols: [{ name: 'range', metadata: Buffer.from([0, 1]) }],
      reason: joinVersion >= 8 ? 'starting up' : null,
    });
  let j = await join('');
  if (joinVersion >= 4) j = await join(j.body.memberId);
  assert.equal(j.body.errorCode, NONE, `JoinGroup v${joinVersion}`);
  const { memberId, generationId } = j.body;
  const s = await c.request(ApiKey.SyncGroup, syncVersion, { groupId, generationId, memberId, groupInstanceId: null, protocolType: null, protocolName: null, assignments: [{ memberId, assignment: Buffer.alloc(0) }] });
  assert.equal(s.body.errorCode, NONE, `SyncGroup v${syncVersion}`);
  return { memberId, generationId };
}

test('OffsetCommit v0 and v1 commit; OffsetFetch v0-9 and KafkaJS read the offsets back, before and after a restart', async () => {
  // v0: no generation and no member on the wire: a simple commit.
  assert.deepEqual(await commit(0, 'old-v0', 'legacy', [{ partitionIndex: 0, committedOffset: 11n, committedMetadata: 'from v0' }, { partitionIndex: 1, committedOffset: 12n }]), [NONE, NONE]);
  // v1 simple, with a commit time of its own on one partition.
  assert.deepEqual(await commit(1, 'old-v1', 'legacy', [{ partitionIndex: 0, committedOffset: 21n, commitTimestamp: 1_600_000_000_000n, committedMetadata: 'from v1' }, { partitionIndex: 1, committedOffset: 22n }]), [NONE, NONE]);
  // v1 from a member of a group formed with JoinGroup v1 and SyncGroup v0, as an old Go client does.
  const m = await joinAlone('old-member', 1, 0);
  assert.deepEqual(await commit(1, 'old-member', 'legacy', [{ partitionIndex: 1, committedOffset: 31n }], m.generationId, m.memberId), [NONE]);
  assert.deepEqual(await commit(1, 'old-member', 'legacy', [{ partitionIndex: 1, committedOffset: 99n }], m.generationId + 1, m.memberId), [ILLEGAL_GENERATION]);
  assert.deepEqual(await commit(0, 'old-member', 'legacy', [{ partitionIndex: 1, committedOffset: 99n }]), [UNKNOWN_MEMBER_ID], 'a simple commit to a group with members, as Kafka answers it');

  const expectAll = async (when: string): Promise<void> => {
    for (let v = 0; v <= 9; v++) {
      assert.deepEqual(await fetchOffsets(v, 'old-v0', 'legacy', [0, 1]), [[0, 11n, 'from v0', NONE], [1, 12n, '', NONE]], `${when}: OffsetFetch v${v} of the v0 commit`);
      assert.deepEqual(await fetchOffsets(v, 'old-v1', 'legacy', [0, 1]), [[0, 21n, 'from v1', NONE], [1, 22n, '', NONE]], `${when}: OffsetFetch v${v} of the v1 commit`);
      assert.deepEqual(await fetchOffsets(v, 'old-member', 'legacy', [1]), [[1, 31n, '', NONE]], `${when}: OffsetFetch v${v} of the member's v1 commit`);
    }
    // KafkaJS shows an empty metadata string as null.
    assert.deepEqual(await kafkajsOffsets('old-v0', 'legacy'), [[0, '11', 'from v0'], [1, '12', null]], `${when}: KafkaJS admin.fetchOffsets`);
    assert.deepEqual(await kafkajsOffsets('old-v1', 'legacy'), [[0, '21', 'from v1'], [1, '22', null]]);
  };
  await expectAll('before the restart');
  c.close();
  tb = await tb.restart();
  c = await RawClient.connect(tb.port);
  await expectAll('after the restart');
});

test('OffsetCommit v1: a commit time no clock can mean (INT64 max, min) is accepted as now, and the broker keeps serving', async () => {
  const r = await commit(1, 'odd-times', 'legacy', [
    { partitionIndex: 0, committedOffset: 1n, commitTimestamp: 2n ** 63n - 1n },
    { partitionIndex: 1, committedOffset: 2n, commitTimestamp: -(2n ** 63n) },
  ]);
  assert.deepEqual(r, [NONE, NONE]);
  assert.deepEqual(await fetchOffsets(1, 'odd-times', 'legacy', [0, 1]), [[0, 1n, '', NONE], [1, 2n, '', NONE]]);
  assert.equal(c.closed, false);
});

test('OffsetCommit v9: a generation for a group that does not exist is GROUP_ID_NOT_FOUND (ILLEGAL_GENERATION before v9)', async () => {
  assert.deepEqual(await commit(9, 'never-joined', 'legacy', [{ partitionIndex: 0, committedOffset: 1n }], 4, 'someone'), [GROUP_ID_NOT_FOUND]);
  assert.deepEqual(await commit(8, 'never-joined', 'legacy', [{ partitionIndex: 0, committedOffset: 1n }], 4, 'someone'), [ILLEGAL_GENERATION]);
  const m = await joinAlone('epoch-9', 9, 5);
  assert.deepEqual(await commit(9, 'epoch-9', 'legacy', [{ partitionIndex: 0, committedOffset: 5n }], m.generationId, m.memberId), [NONE], 'the member epoch of a classic group is its generation');
  assert.deepEqual(await fetchOffsets(9, 'epoch-9', 'legacy', [0]), [[0, 5n, '', NONE]]);
});

test('OffsetFetch v8 and v9: several groups in one request, each answered on its own', async () => {
  await commit(8, 'multi-a', 'legacy', [{ partitionIndex: 0, committedOffset: 7n }]);
  await commit(8, 'multi-b', 'legacy', [{ partitionIndex: 1, committedOffset: 8n, committedMetadata: 'b' }]);
  for (const v of [8, 9]) {
    const r = await c.request(ApiKey.OffsetFetch, v, {
      groupId: '',
      topics: [],
      groups: [
        { groupId: 'multi-a', memberId: null, memberEpoch: -1, topics: null },
        { groupId: 'multi-b', memberId: null, memberEpoch: -1, topics: [{ name: 'legacy', partitionIndexes: [0, 1] }] },
        { groupId: 'multi-none', memberId: null, memberEpoch: -1, topics: [{ name: 'legacy', partitionIndexes: [0] }] },
        { groupId: 'multi-none', memberId: null, memberEpoch: -1, topics: null },
      ],
      requireStable: true,
    });
    const seen = r.body.groups.map((g: any) => [g.groupId, g.errorCode, g.topics.flatMap((t: any) => t.partitions.map((p: any) => [t.name, p.partitionIndex, p.committedOffset, p.metadata, p.errorCode]))]);
    assert.deepEqual(
      seen,
      [
        ['multi-a', NONE, [['legacy', 0, 7n, '', NONE]]],
        ['multi-b', NONE, [['legacy', 0, -1n, '', NONE], ['legacy', 1, 8n, 'b', NONE]]],
        ['multi-none', NONE, [['legacy', 0, -1n, '', NONE]]],
        ['multi-none', NONE, []],
      ],
      `OffsetFetch v${v}`,
    );
  }
});

test('ListGroups v4 and v5 filter by state and type; DescribeGroups v3+ answer authorized operations when asked', async () => {
  await joinAlone('listed-stable', 5, 3);
  await commit(7, 'listed-empty', 'legacy', [{ partitionIndex: 0, committedOffset: 1n }]);
  const list = async (v: number, statesFilter: string[], typesFilter: string[] = []) =>
    new Map<string, [string, string]>((await c.request(ApiKey.ListGroups, v, { statesFilter, typesFilter })).body.groups.map((g: any) => [g.groupId, [g.groupState, g.groupType]]));

  const all = await list(5, []);
  assert.deepEqual([all.get('listed-stable'), all.get('listed-empty')], [['Stable', 'classic'], ['Empty', 'classic']]);
  for (const v of [4, 5]) {
    const stable = await list(v, ['Stable']);
    assert.ok(stable.has('listed-stable') && !stable.has('listed-empty'), `v${v} Stable`);
    const empty = await list(v, ['empty', 'Dead']);
    assert.ok(empty.has('listed-empty') && !empty.has('listed-stable'), `v${v}: states compare case-insensitively, as Kafka 4 does`);
  }
  assert.equal((await list(5, [], ['Classic'])).size, all.size, 'every group is classic');
  assert.equal((await list(5, [], ['consumer', 'share'])).size, 0, 'no KIP-848 or share groups');
  assert.equal((await list(5, ['Stable'], ['classic'])).has('listed-empty'), false, 'both filters apply');

  for (let v = 0; v <= 5; v++) {
    for (const ask of [false, true]) {
      const d = await c.request(ApiKey.DescribeGroups, v, { groups: ['listed-stable'], includeAuthorizedOperations: v >= 3 && ask });
      assert.equal(d.body.groups[0].groupState, 'Stable', `DescribeGroups v${v}`);
      assert.equal(d.body.groups[0].authorizedOperations, v >= 3 && ask ? ALL_GROUP_OPERATIONS : OPERATIONS_OMITTED, `DescribeGroups v${v} asking ${ask}`);
    }
  }
});

async function runningConsumer(groupId: string, topic: string): Promise<Consumer> {
  const consumer = kafka().consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 500 });
  clients.push(consumer);
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => (joined = true));
  await consumer.run({ eachMessage: async () => {} });
  await waitFor(`consumer of ${groupId} joined`, () => joined);
  return consumer;
}

test('DeleteGroups v0-2 and KafkaJS admin.deleteGroups: empty groups go with their offsets, across a restart; active ones are NON_EMPTY_GROUP', async () => {
  for (const g of ['del-0', 'del-1', 'del-2', 'del-kafkajs']) assert.deepEqual(await commit(2, g, 'legacy', [{ partitionIndex: 0, committedOffset: 3n }]), [NONE]);
  const busy = await runningConsumer('del-busy', 'live');

  for (const v of [0, 1, 2]) {
    const r = await c.request(ApiKey.DeleteGroups, v, { groupsNames: [`del-${v}`, 'del-busy', 'del-unknown'] });
    assert.deepEqual(
      r.body.results.map((x: any) => [x.groupId, x.errorCode]),
      [[`del-${v}`, NONE], ['del-busy', NON_EMPTY_GROUP], ['del-unknown', GROUP_ID_NOT_FOUND]],
      `DeleteGroups v${v}`,
    );
  }

  const admin = await kafkaAdmin();
  assert.deepEqual(await admin.deleteGroups(['del-kafkajs']), [{ groupId: 'del-kafkajs', errorCode: NONE }]);
  await assert.rejects(admin.deleteGroups(['del-busy']), (err: any) => {
    assert.equal(err.name, 'KafkaJSDeleteGroupsError');
    assert.deepEqual(err.groups.map((g: any) => [g.groupId, g.errorCode]), [['del-busy', NON_EMPTY_GROUP]]);
    return true;
  });

  const gone = async (when: string): Promise<void> => {
    const listed = (await admin.listGroups()).groups.map((g) => g.groupId);
    for (const g of ['del-0', 'del-1', 'del-2', 'del-kafkajs']) {
      assert.ok(!listed.includes(g), `${when}: ${g} is not listed`);
      assert.deepEqual(await kafkajsOffsets(g, 'legacy'), [[0, '-1', null], [1, '-1', null]], `${when}: ${g}'s offsets are gone`);
    }
  };
  await gone('before the restart');

  await busy.stop();
  await busy.disconnect();
  // It committed nothing, so once its member has left it is forgotten (Dead), not kept Empty.
  await waitFor('del-busy has no members', async () => ['Empty', 'Dead'].includes((await admin.describeGroups(['del-busy'])).groups[0].state));
  c.close();
  tb = await tb.restart();
  c = await RawClient.connect(tb.port);
  await admin.disconnect();
  await gone('after the restart');
});

test('OffsetDelete v0: refused for topics an active consumer group subscribes to, deleted for the others and once the group is empty, across a restart', async () => {
  const admin = await kafkaAdmin();
  // KafkaJS's setOffsets commits through a consumer of its own while the group is empty.
  await admin.setOffsets({ groupId: 'od', topic: 'od-a', partitions: [{ partition: 0, offset: '4' }, { partition: 1, offset: '5' }] });
  await admin.setOffsets({ groupId: 'od', topic: 'od-b', partitions: [{ partition: 0, offset: '6' }] });
  assert.deepEqual(await kafkajsOffsets('od', 'od-a'), [[0, '4', null], [1, '5', null]]);

  const offsetDelete = async (groupId: string, topics: Array<[string, number[]]>) =>
    (await c.request(ApiKey.OffsetDelete, 0, { groupId, topics: topics.map(([name, ps]) => ({ name, partitions: ps.map((partitionIndex) => ({ partitionIndex })) })) })).body;

  const live = await runningConsumer('od', 'od-a');
  const r = await offsetDelete('od', [['od-a', [0]], ['od-b', [0]], ['no-such-topic', [0]], ['od-b', [9]]]);
  assert.equal(r.errorCode, NONE);
  assert.deepEqual(
    r.topics.map((t: any) => [t.name, t.partitions.map((p: any) => [p.partitionIndex, p.errorCode])]),
    [
      ['od-a', [[0, GROUP_SUBSCRIBED_TO_TOPIC]]],
      ['od-b', [[0, NONE]]],
      ['no-such-topic', [[0, UNKNOWN_TOPIC_OR_PARTITION]]],
      ['od-b', [[9, UNKNOWN_TOPIC_OR_PARTITION]]],
    ],
  );
  assert.deepEqual((await kafkajsOffsets('od', 'od-b'))[0].slice(0, 2), [0, '-1'], 'od-b is not subscribed: its offset went');
  assert.equal((await kafkajsOffsets('od', 'od-a'))[0][1] !== '-1', true, 'od-a is subscribed: its offset stays');

  await live.stop();
  await live.disconnect();
  await waitFor('od is empty', async () => (await admin.describeGroups(['od'])).groups[0].state === 'Empty');
  const after = await offsetDelete('od', [['od-a', [0]]]);
  assert.deepEqual([after.errorCode, after.topics[0].partitions[0].errorCode], [NONE, NONE]);
  assert.equal((await offsetDelete('od-unknown', [['od-a', [0]]])).errorCode, GROUP_ID_NOT_FOUND);

  const expected = async (when: string): Promise<void> => {
    const a = await kafkajsOffsets('od', 'od-a');
    assert.equal(a[0][1], '-1', `${when}: od-a/0 deleted`);
    assert.notEqual(a[1][1], '-1', `${when}: od-a/1 kept`);
  };
  await expected('before the restart');
  c.close();
  tb = await tb.restart();
  c = await RawClient.connect(tb.port);
  await admin.disconnect();
  await expected('after the restart');
});
