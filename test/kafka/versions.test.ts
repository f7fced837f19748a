/**
 * Every advertised API at every served version, over a raw socket: the request decodes, the
 * handler answers, and the response encodes for that exact version and says what it should.
 * (A response field a version cannot carry makes the encoder throw and the connection close:
 * this is the test that catches it for versions the real clients happen not to use.)
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { SUPPORTED_VERSIONS } from '../../src/broker/kafka/apis.js';
import { encodeBatch } from '../../src/storage/record-batch.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { RawClient } from '../helpers/raw-kafka.js';

const ZERO = '00000000-0000-0000-0000-000000000000';
let tb: TestBroker;
let c: RawClient;
before(async () => {
  tb = await startBroker({ groups: { initialRebalanceDelayMs: 0, minSessionTimeoutMs: 1000 } });
  c = await RawClient.connect(tb.port);
});
after(async () => {
  c.close();
  await tb.cleanup();
});

const versions = (key: number) => {
  const [min, max] = SUPPORTED_VERSIONS.get(key)!;
  return Array.from({ length: max - min + 1 }, (_, i) => min + i);
};

const metadata = (names: string[] | null, auto = true) => ({
  topics: names && names.map((name) => ({ topicId: ZERO, name })),
  allowAutoTopicCreation: auto,
  includeClusterAuthorizedOperations: false,
  includeTopicAuthorizedOperations: false,
});

test('CreateTopics, Metadata, DeleteTopics at every version', async () => {
  const ids = new Map<string, string>();
  for (const v of versions(ApiKey.CreateTopics)) {
    const r = await c.request(ApiKey.CreateTopics, v, {
      topics: [{ name: `ct-${v}`, numPartitions: 2, replicationFactor: 1, assignments: [], configs: [{ name: 'retention.ms', value: '3600000' }] }],
      timeoutMs: 5000,
      validateOnly: false,
    });
    const t = r.body.topics[0];
    assert.equal(t.errorCode, 0, `CreateTopics v${v}`);
    if (v >= 5) {
      // KIP-525: the created topic's partition count, replication factor and configs.
      assert.deepEqual([t.numPartitions, t.replicationFactor], [2, 1], `CreateTopics v${v}`);
      const retention = t.configs.find((cfg: any) => cfg.name === 'retention.ms');
      assert.deepEqual([retention.value, retention.configSource, retention.readOnly, retention.isSensitive], ['3600000', 1, false, false], `CreateTopics v${v}: retention.ms is the topic's own (DYNAMIC_TOPIC_CONFIG)`);
      const segment = t.configs.find((cfg: any) => cfg.name === 'segment.bytes');
      assert.notEqual(segment.configSource, 1, `CreateTopics v${v}: segment.bytes is inherited`);
    }
    if (v >= 7) {
      assert.notEqual(t.topicId, ZERO, `CreateTopics v${v}: the new topic's id`);
      ids.set(t.name, t.topicId);
    }
    const again = await c.request(ApiKey.CreateTopics, v, { topics: [{ name: `ct-${v}`, numPartitions: 2, replicationFactor: 1, assignments: [], configs: [] }], timeoutMs: 5000, validateOnly: false });
    assert.equal(again.body.topics[0].errorCode, 36, `CreateTopics v${v} duplicate`);
  }
  for (const v of versions(ApiKey.Metadata)) {
    const r = await c.request(ApiKey.Metadata, v, metadata(['ct-0', 'ct-7'], v < 4));
    assert.deepEqual(
      r.body.topics.map((t: any) => [t.name, t.errorCode, t.partitions.length]),
      [['ct-0', 0, 2], ['ct-7', 0, 2]],
      `Metadata v${v}`,
    );
    assert.equal(r.body.brokers[0].port, tb.port);
    if (v >= 10) assert.equal(r.body.topics[1].topicId, ids.get('ct-7'), `Metadata v${v}: the topic id CreateTopics gave`);
    if (v >= 1) {
      const all = await c.request(ApiKey.Metadata, v, metadata(null));
      assert.ok(all.body.topics.length >= 2, `Metadata v${v} all topics`);
    }
  }
  for (const v of versions(ApiKey.DeleteTopics)) {
    const r = await c.request(ApiKey.DeleteTopics, v, { topics: v >= 6 ? [{ name: `ct-${v}`, topicId: ZERO }] : [], topicNames: [`ct-${v}`], timeoutMs: 5000 });
    assert.deepEqual(r.body.responses.map((t: any) => [t.name, t.errorCode]), [[`ct-${v}`, 0]], `DeleteTopics v${v}`);
    const gone = await c.request(ApiKey.Metadata, 4, metadata([`ct-${v}`], false));
    assert.equal(gone.body.topics[0].errorCode, 3, `DeleteTopics v${v}: the topic is gone`);
  }
});

test('Metadata v10+ and DeleteTopics v6 name topics by id; unknown ids are UNKNOWN_TOPIC_ID', async () => {
  const created = await c.request(ApiKey.CreateTopics, 7, { topics: [{ name: 'by-id', numPartitions: 3, replicationFactor: -1, assignments: [], configs: [] }], timeoutMs: 5000, validateOnly: false });
  const id = created.body.topics[0].topicId;
  const unknown = '0a1b2c3d-0000-4000-8000-000000000001';
  for (const v of [10, 11, 12]) {
    const r = await c.request(ApiKey.Metadata, v, { topics: [{ topicId: id, name: null }, { topicId: unknown, name: null }], allowAutoTopicCreation: false, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false });
    assert.deepEqual(
      r.body.topics.map((t: any) => [t.name, t.topicId, t.errorCode, t.partitions.length]),
      [['by-id', id, 0, 3], [v >= 12 ? null : '', unknown, 100, 0]],
      `Metadata v${v} by id`,
    );
  }
  const del = await c.request(ApiKey.DeleteTopics, 6, { topics: [{ name: null, topicId: id }, { name: null, topicId: unknown }, { name: 'by-id', topicId: id }], topicNames: [], timeoutMs: 5000 });
  assert.deepEqual(
    del.body.responses.map((t: any) => [t.name, t.topicId, t.errorCode]),
    [['by-id', id, 0], [null, unknown, 100], ['by-id', id, 42]],
    'deleted by id; an unknown id; name and id together is INVALID_REQUEST',
  );
  assert.equal((await c.request(ApiKey.Metadata, 12, metadata(['by-id'], false))).body.topics[0].errorCode, 3);
});

test('Metadata v8+ reports authorized operations only when asked, as Kafka without an authorizer', async () => {
  await c.request(ApiKey.Metadata, 4, metadata(['ops']));
  for (const v of versions(ApiKey.Metadata).filter((v) => v >= 8)) {
    const ask = (include: boolean) =>
      c.request(ApiKey.Metadata, v, { topics: [{ topicId: ZERO, name: 'ops' }], allowAutoTopicCreation: false, includeClusterAuthorizedOperations: include && v <= 10, includeTopicAuthorizedOperations: include });
    const none = (await ask(false)).body;
    assert.equal(none.topics[0].topicAuthorizedOperations, -2147483648, `Metadata v${v}: not asked, not provided`);
    const asked = (await ask(true)).body;
    // READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS (AclOperation 3-8, 10, 11).
    assert.equal(asked.topics[0].topicAuthorizedOperations, 0b110111111000, `Metadata v${v}: topic operations`);
    if (v <= 10) assert.equal(asked.clusterAuthorizedOperations, 0b1111110100000, `Metadata v${v}: cluster operations`);
  }
});

test('CreatePartitions at every version: grows a topic, refuses fewer or equal, validateOnly changes nothing', async () => {
  for (const v of versions(ApiKey.CreatePartitions)) {
    const topic = `grow-${v}`;
    await c.request(ApiKey.CreateTopics, 4, { topics: [{ name: topic, numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }], timeoutMs: 5000, validateOnly: false });
    const grow = (count: number, validateOnly = false, assignments: Array<{ brokerIds: number[] }> | null = null) =>
      c.request(ApiKey.CreatePartitions, v, { topics: [{ name: topic, count, assignments }], timeoutMs: 5000, validateOnly });
    const partitions = async () => (await c.request(ApiKey.Metadata, 4, metadata([topic], false))).body.topics[0].partitions.length;
    assert.deepEqual((await grow(3, true)).body.results.map((r: any) => [r.name, r.errorCode]), [[topic, 0]], `CreatePartitions v${v} validateOnly`);
    assert.equal(await partitions(), 1, 'validateOnly leaves the topic as it was');
    assert.equal((await grow(3)).body.results[0].errorCode, 0, `CreatePartitions v${v}`);
    assert.equal(await partitions(), 3);
    for (const count of [3, 2]) {
      const r = (await grow(count)).body.results[0];
      assert.equal(r.errorCode, 37, `CreatePartitions v${v} to ${count}: INVALID_PARTITIONS`);
      assert.match(r.errorMessage, /partitions/);
    }
    assert.equal((await grow(5, false, [{ brokerIds: [99] }, { brokerIds: [99] }])).body.results[0].errorCode, 39, 'an assignment naming another broker');
    const unknown = await c.request(ApiKey.CreatePartitions, v, { topics: [{ name: 'no-such-topic', count: 2, assignments: null }], timeoutMs: 5000, validateOnly: false });
    assert.equal(unknown.body.results[0].errorCode, 3);
  }
});

test('Produce, Fetch, ListOffsets and InitProducerId at every version', async () => {
  await c.request(ApiKey.Metadata, 4, metadata(['data']));
  // Fetch v13+ names topics by id.
  const dataId: string = (await c.request(ApiKey.Metadata, 10, metadata(['data']))).body.topics[0].topicId;
  let expected = 0n;
  for (const v of versions(ApiKey.Produce)) {
    const r = await c.request(ApiKey.Produce, v, {
      transactionalId: null,
      acks: -1,
      timeoutMs: 5000,
      topicData: [{ name: 'data', partitionData: [{ index: 0, records: encodeBatch({ records: [{ value: Buffer.from(`v${v}`) }, { value: null }] }) }] }],
    });
    const p = r.body.responses[0].partitionResponses[0];
    assert.deepEqual([p.errorCode, p.baseOffset], [0, expected], `Produce v${v}`);
    expected += 2n;
  }
  for (const v of versions(ApiKey.Fetch)) {
    const r = await c.request(ApiKey.Fetch, v, {
      clusterId: null,
      replicaId: -1,
      replicaState: { replicaId: -1, replicaEpoch: -1n },
      maxWaitMs: 0,
      minBytes: 1,
      maxBytes: 1 << 20,
      isolationLevel: v >= 4 ? 1 : 0,
      sessionId: 0,
      sessionEpoch: -1,
      topics: [{ topic: v >= 13 ? '' : 'data', topicId: v >= 13 ? dataId : ZERO, partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: 2n, lastFetchedEpoch: -1, logStartOffset: -1n, partitionMaxBytes: 1 << 20, replicaDirectoryId: ZERO }] }],
      forgottenTopicsData: [],
      rackId: '',
    });
    const p = r.body.responses[0].partitions[0];
    assert.equal(p.errorCode, 0, `Fetch v${v}`);
    assert.equal(p.highWatermark, expected);
    assert.ok(p.records.length > 0);
    assert.equal(p.records.readBigInt64BE(0), 2n, `Fetch v${v} starts at the batch holding offset 2`);
  }
  for (const v of versions(ApiKey.ListOffsets)) {
    const ask = async (timestamp: bigint) =>
      (await c.request(ApiKey.ListOffsets, v, { replicaId: -1, isolationLevel: 0, topics: [{ name: 'data', partitions: [{ partitionIndex: 0, currentLeaderEpoch: -1, timestamp, maxNumOffsets: 1 }] }], timeoutMs: 0 })).body.topics[0]
        .partitions[0];
    assert.deepEqual([(await ask(-2n)).errorCode, (await ask(-2n)).offset], [0, 0n], `ListOffsets v${v} earliest`);
    assert.equal((await ask(-1n)).offset, expected, `ListOffsets v${v} latest`);
  }
  for (const v of versions(ApiKey.InitProducerId)) {
    const r = await c.request(ApiKey.InitProducerId, v, { transactionalId: null, transactionTimeoutMs: 60000, producerId: -1n, producerEpoch: -1 });
    assert.equal(r.body.errorCode, 0, `InitProducerId v${v}`);
    assert.ok(r.body.producerId >= 0n);
  }
});

test('the consumer-group APIs at every version, through a whole group lifecycle', async () => {
  await c.request(ApiKey.Metadata, 4, metadata(['grp-topic']));
  const maxOf = (key: number) => SUPPORTED_VERSIONS.get(key)![1];
  for (const v of versions(ApiKey.JoinGroup)) {
    const groupId = `g-v${v}`;
    const fcv = Math.min(v, maxOf(ApiKey.FindCoordinator));
    // v4+ batch their keys (KIP-699): the key and the answer move into the arrays.
    const fc = await c.request(ApiKey.FindCoordinator, fcv, fcv >= 4 ? { key: '', keyType: 0, coordinatorKeys: [groupId] } : { key: groupId, keyType: 0, coordinatorKeys: [] });
    const coordinator = fcv >= 4 ? fc.body.coordinators[0] : fc.body;
    assert.equal(coordinator.errorCode, 0, `FindCoordinator v${fcv}`);
    assert.equal(coordinator.port, tb.port);
    const join = (memberId: string) =>
      c.request(ApiKey.JoinGroup, v, {
        groupId,
        sessionTimeoutMs: 10_000,
        rebalanceTimeoutMs: 10_000,
        memberId,
        groupInstanceId: null,
        protocolType: 'consumer',
        protocols: [{ name: 'range', metadata: Buffer.from([0, 1, 2]) }],
        reason: null,
      });
    let j = await join('');
    if (v >= 4) {
      assert.equal(j.body.errorCode, 79, `JoinGroup v${v}: MEMBER_ID_REQUIRED first`);
      j = await join(j.body.memberId);
    }
    assert.equal(j.body.errorCode, 0, `JoinGroup v${v}`);
    assert.equal(j.body.leader, j.body.memberId);
    assert.deepEqual(j.body.members.map((m: any) => Buffer.from(m.metadata)), [Buffer.from([0, 1, 2])]);
    const memberId = j.body.memberId;
    const gen = j.body.generationId;
    const sv = Math.min(v, maxOf(ApiKey.SyncGroup));
    const s = await c.request(ApiKey.SyncGroup, sv, { groupId, generationId: gen, memberId, groupInstanceId: null, protocolType: null, protocolName: null, assignments: [{ memberId, assignment: Buffer.from('plan') }] });
    assert.equal(s.body.errorCode, 0, `SyncGroup v${sv}`);
    assert.equal(Buffer.from(s.body.assignment).toString(), 'plan');
    const hv = Math.min(v, maxOf(ApiKey.Heartbeat));
    assert.equal((await c.request(ApiKey.Heartbeat, hv, { groupId, generationId: gen, memberId, groupInstanceId: null })).body.errorCode, 0, `Heartbeat v${hv}`);
    const cv = Math.max(2, Math.min(2 + v, maxOf(ApiKey.OffsetCommit)));
    const commit = await c.request(ApiKey.OffsetCommit, cv, {
      groupId,
      generationIdOrMemberEpoch: gen,
      memberId,
      groupInstanceId: null,
      retentionTimeMs: -1n,
      topics: [{ name: 'grp-topic', partitions: [{ partitionIndex: 1, committedOffset: BigInt(40 + v), committedLeaderEpoch: -1, commitTimestamp: -1n, committedMetadata: 'm' }] }],
    });
    assert.equal(commit.body.topics[0].partitions[0].errorCode, 0, `OffsetCommit v${cv}`);
    const fv = Math.max(1, Math.min(v, maxOf(ApiKey.OffsetFetch)));
    // v8+ ask for several groups at once (KIP-709): the group and its answer move into `groups`.
    const asked = [{ name: 'grp-topic', partitionIndexes: [1, 2] }];
    const fetched = await c.request(
      ApiKey.OffsetFetch,
      fv,
      fv >= 8 ? { groupId: '', topics: [], groups: [{ groupId, memberId: null, memberEpoch: -1, topics: asked }], requireStable: false } : { groupId, topics: asked, groups: [], requireStable: false },
    );
    const parts = (fv >= 8 ? fetched.body.groups[0] : fetched.body).topics[0].partitions;
    assert.deepEqual(parts.map((p: any) => [p.partitionIndex, p.committedOffset]), [[1, BigInt(40 + v)], [2, -1n]], `OffsetFetch v${fv}`);
    const dv = Math.min(v, maxOf(ApiKey.DescribeGroups));
    const d = await c.request(ApiKey.DescribeGroups, dv, { groups: [groupId], includeAuthorizedOperations: false });
    assert.deepEqual([d.body.groups[0].errorCode, d.body.groups[0].groupState, d.body.groups[0].members.length], [0, 'Stable', 1], `DescribeGroups v${dv}`);
    const lv = Math.min(v, maxOf(ApiKey.ListGroups));
    const l = await c.request(ApiKey.ListGroups, lv, { statesFilter: [], typesFilter: [] });
    assert.ok(l.body.groups.some((g: any) => g.groupId === groupId), `ListGroups v${lv}`);
    const leaveV = Math.min(v, maxOf(ApiKey.LeaveGroup));
    const leave = await c.request(ApiKey.LeaveGroup, leaveV, leaveV >= 3 ? { groupId, memberId: '', members: [{ memberId, groupInstanceId: null, reason: null }] } : { groupId, memberId, members: [] });
    assert.equal(leave.body.errorCode, 0, `LeaveGroup v${leaveV}`);
    if (leaveV >= 3) assert.equal(leave.body.members[0].errorCode, 0);
    const after = await c.request(ApiKey.DescribeGroups, dv, { groups: [groupId], includeAuthorizedOperations: false });
    assert.equal(after.body.groups[0].groupState, 'Empty');
  }
  // LeaveGroup v1 (what kcat sends) and v0, explicitly.
  for (const lv of [0, 1, 2]) {
    const groupId = `leave-v${lv}`;
    const j = await c.request(ApiKey.JoinGroup, 3, { groupId, sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 10_000, memberId: '', groupInstanceId: null, protocolType: 'consumer', protocols: [{ name: 'range', metadata: Buffer.alloc(0) }], reason: null });
    const r = await c.request(ApiKey.LeaveGroup, lv, { groupId, memberId: j.body.memberId, members: [] });
    assert.equal(r.body.errorCode, 0, `LeaveGroup v${lv}`);
  }
  assert.equal(c.closed, false);
});

test('OffsetForLeaderEpoch and DeleteRecords at every version', async () => {
  await c.request(ApiKey.CreateTopics, 4, { topics: [{ name: 'epoch-del', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }], timeoutMs: 5000, validateOnly: false });
  const r = await c.request(ApiKey.Produce, 7, {
    transactionalId: null,
    acks: -1,
    timeoutMs: 5000,
    topicData: [{ name: 'epoch-del', partitionData: [{ index: 0, records: encodeBatch({ records: Array.from({ length: 10 }, (_, i) => ({ value: Buffer.from(`e${i}`) })) }) }] }],
  });
  assert.equal(r.body.responses[0].partitionResponses[0].errorCode, 0);
  for (const v of versions(ApiKey.OffsetForLeaderEpoch)) {
    const o = await c.request(ApiKey.OffsetForLeaderEpoch, v, { replicaId: -1, topics: [{ topic: 'epoch-del', partitions: [{ partition: 0, currentLeaderEpoch: -1, leaderEpoch: 0 }] }] });
    assert.deepEqual([o.body.topics[0].partitions[0].errorCode, o.body.topics[0].partitions[0].endOffset], [0, 10n], `OffsetForLeaderEpoch v${v}`);
  }
  for (const v of versions(ApiKey.DeleteRecords)) {
    const d = await c.request(ApiKey.DeleteRecords, v, { topics: [{ name: 'epoch-del', partitions: [{ partitionIndex: 0, offset: BigInt(v + 1) }] }], timeoutMs: 5000 });
    assert.deepEqual(d.body.topics[0].partitions[0], { partitionIndex: 0, lowWatermark: BigInt(v + 1), errorCode: 0 }, `DeleteRecords v${v}`);
  }
  assert.equal(c.closed, false);
});
