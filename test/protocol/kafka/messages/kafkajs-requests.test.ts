/**
 * The requests KafkaJS 2.2.4 really sends (built by its own request modules), decoded by the
 * generated decoders: every field, the defaults of the fields the version lacks, and the
 * bytes again when re-encoded. Plus the librdkafka ApiVersions v3 request, built by hand
 * from the bytes librdkafka 2.0.2 sends.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Reader } from '../../../../src/protocol/kafka/reader.js';
import type { Writer } from '../../../../src/protocol/kafka/writer.js';
import * as m from '../../../../src/protocol/kafka/messages/index.js';
import { decodeBody, encodeBody, kafkajsLong, kafkajsModule, kafkajsRequestBody } from './kafkajs.js';

const ZERO = m.ZERO_UUID;

interface RequestCase<T> {
  readonly api: string;
  readonly version: number;
  readonly args: Record<string, unknown>;
  readonly decode: (reader: Reader, version: number) => T;
  readonly encode: (writer: Writer, version: number, msg: T) => void;
  readonly expected: T;
}

function requestCase<T>(c: RequestCase<T>): RequestCase<unknown> {
  return c as RequestCase<unknown>;
}

const cases: RequestCase<unknown>[] = [
  requestCase({
    api: 'fetch',
    version: 11,
    args: {
      replicaId: -1,
      maxWaitTime: 5000,
      minBytes: 1,
      maxBytes: 10485760,
      isolationLevel: 1,
      rackId: 'rack-a',
      topics: [{ topic: 'orders', partitions: [{ partition: 0, currentLeaderEpoch: 3, fetchOffset: '42', maxBytes: 1048576 }] }],
      forgottenTopics: [{ topic: 'old', partitions: [1, 2] }],
    },
    decode: m.decodeFetchRequest,
    encode: m.encodeFetchRequest,
    expected: {
      clusterId: null,
      replicaId: -1,
      replicaState: { replicaId: -1, replicaEpoch: -1n },
      maxWaitMs: 5000,
      minBytes: 1,
      maxBytes: 10485760,
      isolationLevel: 1,
      sessionId: 0,
      sessionEpoch: -1,
      topics: [
        {
          topic: 'orders',
          topicId: ZERO,
          partitions: [
            {
              partition: 0,
              currentLeaderEpoch: 3,
              fetchOffset: 42n,
              lastFetchedEpoch: -1,
              logStartOffset: -1n,
              partitionMaxBytes: 1048576,
              replicaDirectoryId: ZERO,
            },
          ],
        },
      ],
      forgottenTopicsData: [{ topic: 'old', topicId: ZERO, partitions: [1, 2] }],
      rackId: 'rack-a',
    },
  }),
  ...[1, 4, 6].flatMap((version) => [
    requestCase({
      api: 'metadata',
      version,
      args: { topics: ['orders', 'payments'], allowAutoTopicCreation: false },
      decode: m.decodeMetadataRequest,
      encode: m.encodeMetadataRequest,
      expected: {
        topics: [
          { topicId: ZERO, name: 'orders' },
          { topicId: ZERO, name: 'payments' },
        ],
        // v4 added the flag; before it the broker always auto-creates (the default, true).
        allowAutoTopicCreation: version >= 4 ? false : true,
        includeClusterAuthorizedOperations: false,
        includeTopicAuthorizedOperations: false,
      },
    }),
    requestCase({
      api: 'metadata',
      version,
      // KafkaJS writes an empty topic list as null (-1), "all topics" (encoder.js writeNullableArray).
      args: { topics: [], allowAutoTopicCreation: true },
      decode: m.decodeMetadataRequest,
      encode: m.encodeMetadataRequest,
      expected: {
        topics: null,
        allowAutoTopicCreation: true,
        includeClusterAuthorizedOperations: false,
        includeTopicAuthorizedOperations: false,
      },
    }),
  ]),
  ...[0, 1, 2].map((version) =>
    requestCase({
      api: 'apiVersions',
      version,
      args: {},
      decode: m.decodeApiVersionsRequest,
      encode: m.encodeApiVersionsRequest,
      expected: { clientSoftwareName: '', clientSoftwareVersion: '' },
    }),
  ),
  ...[2, 3].map((version) =>
    requestCase({
      api: 'listOffsets',
      version,
      args: {
        replicaId: -1,
        isolationLevel: 1,
        topics: [{ topic: 'orders', partitions: [{ partition: 0, timestamp: -2 }, { partition: 1, timestamp: -1 }] }],
      },
      decode: m.decodeListOffsetsRequest,
      encode: m.encodeListOffsetsRequest,
      expected: {
        replicaId: -1,
        isolationLevel: 1,
        topics: [
          {
            name: 'orders',
            partitions: [
              { partitionIndex: 0, currentLeaderEpoch: -1, timestamp: -2n, maxNumOffsets: 1 },
              { partitionIndex: 1, currentLeaderEpoch: -1, timestamp: -1n, maxNumOffsets: 1 },
            ],
          },
        ],
        timeoutMs: 0,
      },
    }),
  ),
  requestCase({
    api: 'joinGroup',
    version: 5,
    args: {
      groupId: 'billing',
      sessionTimeout: 30000,
      rebalanceTimeout: 60000,
      memberId: '',
      protocolType: 'consumer',
      groupProtocols: [{ name: 'RoundRobinAssigner', metadata: Buffer.from([0, 1, 0, 0, 0, 1, 0, 6, 111, 114, 100, 101, 114, 115]) }],
    },
    decode: m.decodeJoinGroupRequest,
    encode: m.encodeJoinGroupRequest,
    expected: {
      groupId: 'billing',
      sessionTimeoutMs: 30000,
      rebalanceTimeoutMs: 60000,
      memberId: '',
      groupInstanceId: null,
      protocolType: 'consumer',
      protocols: [{ name: 'RoundRobinAssigner', metadata: Buffer.from([0, 1, 0, 0, 0, 1, 0, 6, 111, 114, 100, 101, 114, 115]) }],
      reason: null,
    },
  }),
  requestCase({
    api: 'syncGroup',
    version: 3,
    args: {
      groupId: 'billing',
      generationId: 7,
      memberId: 'member-1',
      groupAssignment: [{ memberId: 'member-1', memberAssignment: Buffer.from('assignment') }],
    },
    decode: m.decodeSyncGroupRequest,
    encode: m.encodeSyncGroupRequest,
    expected: {
      groupId: 'billing',
      generationId: 7,
      memberId: 'member-1',
      groupInstanceId: null,
      protocolType: null,
      protocolName: null,
      assignments: [{ memberId: 'member-1', assignment: Buffer.from('assignment') }],
    },
  }),
  requestCase({
    api: 'heartbeat',
    version: 3,
    args: { groupId: 'billing', groupGenerationId: 7, memberId: 'member-1', groupInstanceId: 'static-1' },
    decode: m.decodeHeartbeatRequest,
    encode: m.encodeHeartbeatRequest,
    expected: { groupId: 'billing', generationId: 7, memberId: 'member-1', groupInstanceId: 'static-1' },
  }),
  requestCase({
    api: 'leaveGroup',
    version: 3,
    args: { groupId: 'billing', members: [{ memberId: 'member-1' }, { memberId: 'member-2', groupInstanceId: 'static-2' }] },
    decode: m.decodeLeaveGroupRequest,
    encode: m.encodeLeaveGroupRequest,
    expected: {
      groupId: 'billing',
      memberId: '',
      members: [
        { memberId: 'member-1', groupInstanceId: null, reason: null },
        { memberId: 'member-2', groupInstanceId: 'static-2', reason: null },
      ],
    },
  }),
  requestCase({
    api: 'offsetCommit',
    version: 5,
    args: {
      groupId: 'billing',
      groupGenerationId: 7,
      memberId: 'member-1',
      topics: [{ topic: 'orders', partitions: [{ partition: 0, offset: '1234' }, { partition: 1, offset: '9007199254740993', metadata: 'm' }] }],
    },
    decode: m.decodeOffsetCommitRequest,
    encode: m.encodeOffsetCommitRequest,
    expected: {
      groupId: 'billing',
      generationIdOrMemberEpoch: 7,
      memberId: 'member-1',
      groupInstanceId: null,
      retentionTimeMs: -1n,
      topics: [
        {
          name: 'orders',
          partitions: [
            { partitionIndex: 0, committedOffset: 1234n, committedLeaderEpoch: -1, commitTimestamp: -1n, committedMetadata: null },
            { partitionIndex: 1, committedOffset: 9007199254740993n, committedLeaderEpoch: -1, commitTimestamp: -1n, committedMetadata: 'm' },
          ],
        },
      ],
    },
  }),
  requestCase({
    api: 'offsetFetch',
    version: 4,
    args: { groupId: 'billing', topics: [{ topic: 'orders', partitions: [{ partition: 0 }, { partition: 3 }] }] },
    decode: m.decodeOffsetFetchRequest,
    encode: m.encodeOffsetFetchRequest,
    expected: {
      groupId: 'billing',
      topics: [{ name: 'orders', partitionIndexes: [0, 3] }],
      groups: [],
      requireStable: false,
    },
  }),
  requestCase({
    api: 'findCoordinator',
    version: 2,
    args: { coordinatorKey: 'billing', coordinatorType: 0 },
    decode: m.decodeFindCoordinatorRequest,
    encode: m.encodeFindCoordinatorRequest,
    expected: { key: 'billing', keyType: 0, coordinatorKeys: [] },
  }),
  requestCase({
    api: 'createTopics',
    version: 3,
    args: {
      timeout: 5000,
      topics: [
        { topic: 'orders', numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
        // KafkaJS sends -1/-1 when unspecified, even at v3.
        { topic: 'audit', replicaAssignment: [{ partition: 0, replicas: [1, 2] }] },
      ],
    },
    decode: m.decodeCreateTopicsRequest,
    encode: m.encodeCreateTopicsRequest,
    expected: {
      topics: [
        {
          name: 'orders',
          numPartitions: 3,
          replicationFactor: 1,
          assignments: [],
          configs: [{ name: 'cleanup.policy', value: 'compact' }],
        },
        {
          name: 'audit',
          numPartitions: -1,
          replicationFactor: -1,
          assignments: [{ partitionIndex: 0, brokerIds: [1, 2] }],
          configs: [],
        },
      ],
      timeoutMs: 5000,
      validateOnly: false,
    },
  }),
  requestCase({
    api: 'deleteTopics',
    version: 1,
    args: { topics: ['orders', 'audit'], timeout: 5000 },
    decode: m.decodeDeleteTopicsRequest,
    encode: m.encodeDeleteTopicsRequest,
    expected: { topics: [], topicNames: ['orders', 'audit'], timeoutMs: 5000 },
  }),
  requestCase({
    api: 'initProducerId',
    version: 1,
    args: { transactionalId: null, transactionTimeout: 60000 },
    decode: m.decodeInitProducerIdRequest,
    encode: m.encodeInitProducerIdRequest,
    expected: { transactionalId: null, transactionTimeoutMs: 60000, producerId: -1n, producerEpoch: -1 },
  }),
  requestCase({
    api: 'describeGroups',
    version: 2,
    args: { groupIds: ['billing', 'audit'] },
    decode: m.decodeDescribeGroupsRequest,
    encode: m.encodeDescribeGroupsRequest,
    expected: { groups: ['billing', 'audit'], includeAuthorizedOperations: false },
  }),
  requestCase({
    api: 'listGroups',
    version: 2,
    args: {},
    decode: m.decodeListGroupsRequest,
    encode: m.encodeListGroupsRequest,
    expected: { statesFilter: [], typesFilter: [] },
  }),
];

describe('requests KafkaJS 2.2.4 sends', () => {
  for (const c of cases) {
    it(`decodes ${c.api} v${c.version} and re-encodes the same bytes`, async () => {
      const body = await kafkajsRequestBody(c.api, c.version, c.args);
      const decoded = decodeBody(c.decode, c.version, body);
      assert.deepEqual(decoded, c.expected);
      assert.deepEqual(encodeBody(c.encode, c.version, decoded), body);
    });
  }
});

describe('Produce requests from KafkaJS 2.2.4, with its RecordBatch encoder', () => {
  const Decoder = kafkajsModule('decoder.js');
  const decodeRecordBatch = kafkajsModule('recordBatch/v0/decoder.js');

  for (const { version, transactionalId } of [
    { version: 3, transactionalId: null },
    { version: 7, transactionalId: 'tx-1' },
  ]) {
    it(`decodes v${version} and keeps the records as a view of the request`, async () => {
      const body = await kafkajsRequestBody('produce', version, {
        acks: -1,
        timeout: 30000,
        transactionalId,
        producerId: kafkajsLong(1000),
        producerEpoch: 0,
        topicData: [
          {
            topic: 'orders',
            partitions: [
              {
                partition: 2,
                firstSequence: 5,
                messages: [
                  { key: 'k1', value: 'v1', headers: { source: 'test' }, timestamp: 1700000000000 },
                  { key: null, value: 'v2', timestamp: 1700000000005 },
                ],
              },
            ],
          },
          { topic: 'audit', partitions: [{ partition: 0, messages: [{ value: 'a' }] }] },
        ],
      });
      const decoded = decodeBody(m.decodeProduceRequest, version, body);
      assert.equal(decoded.transactionalId, transactionalId);
      assert.equal(decoded.acks, -1);
      assert.equal(decoded.timeoutMs, 30000);
      assert.deepEqual(
        decoded.topicData.map((t) => [t.name, t.partitionData.map((p) => p.index)]),
        [
          ['orders', [2]],
          ['audit', [0]],
        ],
      );

      const records = decoded.topicData[0].partitionData[0].records;
      assert.ok(records !== null);
      assert.equal(records.buffer, body.buffer, 'records must be a view of the request, not a copy');
      const batch = await decodeRecordBatch(new Decoder(records));
      assert.equal(batch.producerId, '1000');
      assert.equal(batch.firstSequence, 5);
      assert.equal(batch.inTransaction, transactionalId !== null);
      assert.deepEqual(
        batch.records.map((r: any) => [r.key?.toString() ?? null, r.value.toString(), r.timestamp]),
        [
          ['k1', 'v1', '1700000000000'],
          [null, 'v2', '1700000000005'],
        ],
      );
      assert.equal(batch.records[0].headers.source.toString(), 'test');

      assert.deepEqual(encodeBody(m.encodeProduceRequest, version, decoded), body);
    });
  }
});

describe('the ApiVersions v3 request librdkafka 2.0.2 sends first', () => {
  it('decodes compact strings and the tag buffer', () => {
    // compact_string "librdkafka" (length+1 = 11), compact_string "2.0.2" (6), empty tag buffer.
    const body = Buffer.concat([Buffer.from([11]), Buffer.from('librdkafka'), Buffer.from([6]), Buffer.from('2.0.2'), Buffer.from([0])]);
    const decoded = decodeBody(m.decodeApiVersionsRequest, 3, body);
    assert.deepEqual(decoded, { clientSoftwareName: 'librdkafka', clientSoftwareVersion: '2.0.2' });
    assert.deepEqual(encodeBody(m.encodeApiVersionsRequest, 3, decoded), body);
  });

  it('skips tagged fields it does not know', () => {
    const body = Buffer.concat([
      Buffer.from([11]),
      Buffer.from('librdkafka'),
      Buffer.from([6]),
      Buffer.from('2.0.2'),
      Buffer.from([2, 7, 1, 0xaa, 200, 1, 3, 1, 2, 3]), // two unknown tags: 7 (1 byte) and 200 (3 bytes)
    ]);
    assert.deepEqual(decodeBody(m.decodeApiVersionsRequest, 3, body), {
      clientSoftwareName: 'librdkafka',
      clientSoftwareVersion: '2.0.2',
    });
  });
});
