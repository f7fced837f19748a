/**
 * Responses written by the generated encoders and read back by KafkaJS 2.2.4's own response
 * decoders (decode + parse, as its connection does): what KafkaJS sees must be exactly what
 * the broker meant. Each response is also decoded by our decoder, which must return it
 * unchanged (every field absent in the version is at its default here).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Reader } from '../../../../src/protocol/kafka/reader.js';
import type { Writer } from '../../../../src/protocol/kafka/writer.js';
import * as m from '../../../../src/protocol/kafka/messages/index.js';
import { decodeBody, encodeBody, kafkajsLong, kafkajsModule, kafkajsParseResponse } from './kafkajs.js';

const ZERO = m.ZERO_UUID;
const NO_AUTHORIZED_OPERATIONS = -2147483648;

interface ResponseCase<T> {
  readonly api: string;
  readonly version: number;
  readonly encode: (writer: Writer, version: number, msg: T) => void;
  readonly decode: (reader: Reader, version: number) => T;
  readonly msg: T;
  /** What KafkaJS's decode + parse returns. */
  readonly kafkajs: unknown;
}

function responseCase<T>(c: ResponseCase<T>): ResponseCase<unknown> {
  return c as ResponseCase<unknown>;
}

function produceResponse(): m.ProduceResponse {
  return {
    responses: [
      {
        name: 'orders',
        partitionResponses: [
          {
            index: 2,
            errorCode: 0,
            baseOffset: 9007199254740993n,
            logAppendTimeMs: -1n,
            logStartOffset: 0n,
            recordErrors: [],
            errorMessage: null,
            currentLeader: { leaderId: -1, leaderEpoch: -1 },
          },
        ],
      },
    ],
    throttleTimeMs: 17,
    nodeEndpoints: [],
  };
}

function metadataResponse(): m.MetadataResponse {
  return {
    throttleTimeMs: 0,
    brokers: [
      { nodeId: 1, host: 'broker-1.local', port: 9092, rack: 'az-1' },
      { nodeId: 2, host: 'broker-2.local', port: 9093, rack: null },
    ],
    clusterId: 'meridian-test',
    controllerId: 1,
    topics: [
      {
        errorCode: 0,
        name: 'orders',
        topicId: ZERO,
        isInternal: false,
        partitions: [
          { errorCode: 0, partitionIndex: 0, leaderId: 1, leaderEpoch: -1, replicaNodes: [1, 2], isrNodes: [1, 2], offlineReplicas: [] },
          { errorCode: 0, partitionIndex: 1, leaderId: 2, leaderEpoch: -1, replicaNodes: [2, 1], isrNodes: [2], offlineReplicas: [] },
        ],
        topicAuthorizedOperations: NO_AUTHORIZED_OPERATIONS,
      },
    ],
    clusterAuthorizedOperations: NO_AUTHORIZED_OPERATIONS,
  };
}

function kafkajsMetadata(version: number): unknown {
  const rackAndMore = version >= 1;
  return {
    ...(version >= 3 ? { throttleTime: 0 } : {}),
    ...(version >= 6 ? { clientSideThrottleTime: 0 } : {}),
    brokers: [
      { nodeId: 1, host: 'broker-1.local', port: 9092, ...(rackAndMore ? { rack: 'az-1' } : {}) },
      { nodeId: 2, host: 'broker-2.local', port: 9093, ...(rackAndMore ? { rack: null } : {}) },
    ],
    ...(version >= 2 ? { clusterId: 'meridian-test' } : {}),
    controllerId: 1,
    topicMetadata: [
      {
        topicErrorCode: 0,
        topic: 'orders',
        isInternal: false,
        partitionMetadata: [
          { partitionErrorCode: 0, partitionId: 0, leader: 1, replicas: [1, 2], isr: [1, 2], ...(version >= 5 ? { offlineReplicas: [] } : {}) },
          { partitionErrorCode: 0, partitionId: 1, leader: 2, replicas: [2, 1], isr: [2], ...(version >= 5 ? { offlineReplicas: [] } : {}) },
        ],
      },
    ],
  };
}

function apiVersionsResponse(): m.ApiVersionsResponse {
  return {
    errorCode: 0,
    apiKeys: [
      { apiKey: 0, minVersion: 3, maxVersion: 7 },
      { apiKey: 18, minVersion: 0, maxVersion: 3 },
    ],
    throttleTimeMs: 0,
    supportedFeatures: [],
    finalizedFeaturesEpoch: -1n,
    finalizedFeatures: [],
    zkMigrationReady: false,
  };
}

const kafkajsApiVersions = [
  { apiKey: 0, minVersion: 3, maxVersion: 7 },
  { apiKey: 18, minVersion: 0, maxVersion: 3 },
];

const memberMetadata = Buffer.from([0, 1, 0, 0, 0, 1, 0, 6, 111, 114, 100, 101, 114, 115, 0, 0, 0, 0]);

const cases: ResponseCase<unknown>[] = [
  responseCase({
    api: 'produce',
    version: 3,
    encode: m.encodeProduceResponse,
    decode: m.decodeProduceResponse,
    msg: { ...produceResponse(), responses: produceResponse().responses.map((t) => ({ ...t, partitionResponses: t.partitionResponses.map((p) => ({ ...p, logStartOffset: -1n })) })) },
    kafkajs: {
      topics: [{ topicName: 'orders', partitions: [{ partition: 2, errorCode: 0, baseOffset: '9007199254740993', logAppendTime: '-1' }] }],
      throttleTime: 17,
    },
  }),
  responseCase({
    api: 'produce',
    version: 7,
    encode: m.encodeProduceResponse,
    decode: m.decodeProduceResponse,
    msg: produceResponse(),
    kafkajs: {
      topics: [
        {
          topicName: 'orders',
          partitions: [{ partition: 2, errorCode: 0, baseOffset: '9007199254740993', logAppendTime: '-1', logStartOffset: '0' }],
        },
      ],
      // From v6 on KafkaJS takes throttle_time_ms as a client-side throttle (KIP-219).
      throttleTime: 0,
      clientSideThrottleTime: 17,
    },
  }),
  ...[1, 4, 6].map((version) =>
    responseCase({
      api: 'metadata',
      version,
      encode: m.encodeMetadataResponse,
      decode: m.decodeMetadataResponse,
      msg: {
        ...metadataResponse(),
        clusterId: version >= 2 ? 'meridian-test' : null,
      },
      kafkajs: kafkajsMetadata(version),
    }),
  ),
  responseCase({
    api: 'apiVersions',
    version: 0,
    encode: m.encodeApiVersionsResponse,
    decode: m.decodeApiVersionsResponse,
    msg: apiVersionsResponse(),
    kafkajs: { errorCode: 0, apiVersions: kafkajsApiVersions },
  }),
  responseCase({
    api: 'apiVersions',
    version: 1,
    encode: m.encodeApiVersionsResponse,
    decode: m.decodeApiVersionsResponse,
    msg: apiVersionsResponse(),
    kafkajs: { errorCode: 0, apiVersions: kafkajsApiVersions, throttleTime: 0 },
  }),
  responseCase({
    api: 'apiVersions',
    version: 2,
    encode: m.encodeApiVersionsResponse,
    decode: m.decodeApiVersionsResponse,
    msg: apiVersionsResponse(),
    kafkajs: { errorCode: 0, apiVersions: kafkajsApiVersions, throttleTime: 0, clientSideThrottleTime: 0 },
  }),
  ...[2, 3].map((version) =>
    responseCase({
      api: 'listOffsets',
      version,
      encode: m.encodeListOffsetsResponse,
      decode: m.decodeListOffsetsResponse,
      msg: {
        throttleTimeMs: 0,
        topics: [
          {
            name: 'orders',
            partitions: [
              { partitionIndex: 0, errorCode: 0, oldStyleOffsets: [], timestamp: -1n, offset: 0n, leaderEpoch: -1 },
              { partitionIndex: 1, errorCode: 0, oldStyleOffsets: [], timestamp: -1n, offset: 9007199254740993n, leaderEpoch: -1 },
            ],
          },
        ],
      },
      kafkajs: {
        throttleTime: 0,
        ...(version >= 3 ? { clientSideThrottleTime: 0 } : {}),
        responses: [
          {
            topic: 'orders',
            partitions: [
              { partition: 0, errorCode: 0, timestamp: '-1', offset: '0' },
              { partition: 1, errorCode: 0, timestamp: '-1', offset: '9007199254740993' },
            ],
          },
        ],
      },
    }),
  ),
  responseCase({
    api: 'joinGroup',
    version: 5,
    encode: m.encodeJoinGroupResponse,
    decode: m.decodeJoinGroupResponse,
    msg: {
      throttleTimeMs: 0,
      errorCode: 0,
      generationId: 3,
      protocolType: null,
      protocolName: 'RoundRobinAssigner',
      leader: 'member-1',
      skipAssignment: false,
      memberId: 'member-2',
      members: [
        { memberId: 'member-1', groupInstanceId: null, metadata: memberMetadata },
        { memberId: 'member-2', groupInstanceId: 'static-2', metadata: memberMetadata },
      ],
    },
    kafkajs: {
      throttleTime: 0,
      clientSideThrottleTime: 0,
      errorCode: 0,
      generationId: 3,
      groupProtocol: 'RoundRobinAssigner',
      leaderId: 'member-1',
      memberId: 'member-2',
      members: [
        { memberId: 'member-1', groupInstanceId: null, memberMetadata },
        { memberId: 'member-2', groupInstanceId: 'static-2', memberMetadata },
      ],
    },
  }),
  responseCase({
    api: 'syncGroup',
    version: 3,
    encode: m.encodeSyncGroupResponse,
    decode: m.decodeSyncGroupResponse,
    msg: { throttleTimeMs: 0, errorCode: 0, protocolType: null, protocolName: null, assignment: Buffer.from('assignment') },
    kafkajs: { throttleTime: 0, clientSideThrottleTime: 0, errorCode: 0, memberAssignment: Buffer.from('assignment') },
  }),
  responseCase({
    api: 'heartbeat',
    version: 3,
    encode: m.encodeHeartbeatResponse,
    decode: m.decodeHeartbeatResponse,
    msg: { throttleTimeMs: 0, errorCode: 0 },
    kafkajs: { throttleTime: 0, clientSideThrottleTime: 0, errorCode: 0 },
  }),
  responseCase({
    api: 'leaveGroup',
    version: 3,
    encode: m.encodeLeaveGroupResponse,
    decode: m.decodeLeaveGroupResponse,
    msg: {
      throttleTimeMs: 0,
      errorCode: 0,
      members: [
        { memberId: 'member-1', groupInstanceId: null, errorCode: 0 },
        { memberId: 'member-2', groupInstanceId: 'static-2', errorCode: 0 },
      ],
    },
    kafkajs: {
      throttleTime: 0,
      clientSideThrottleTime: 0,
      errorCode: 0,
      members: [
        { memberId: 'member-1', groupInstanceId: null, errorCode: 0 },
        { memberId: 'member-2', groupInstanceId: 'static-2', errorCode: 0 },
      ],
    },
  }),
  responseCase({
    api: 'offsetCommit',
    version: 5,
    encode: m.encodeOffsetCommitResponse,
    decode: m.decodeOffsetCommitResponse,
    msg: { throttleTimeMs: 0, topics: [{ name: 'orders', partitions: [{ partitionIndex: 0, errorCode: 0 }, { partitionIndex: 1, errorCode: 0 }] }] },
    kafkajs: {
      throttleTime: 0,
      clientSideThrottleTime: 0,
      responses: [{ topic: 'orders', partitions: [{ partition: 0, errorCode: 0 }, { partition: 1, errorCode: 0 }] }],
    },
  }),
  responseCase({
    api: 'offsetFetch',
    version: 4,
    encode: m.encodeOffsetFetchResponse,
    decode: m.decodeOffsetFetchResponse,
    msg: {
      throttleTimeMs: 0,
      topics: [
        {
          name: 'orders',
          partitions: [
            { partitionIndex: 0, committedOffset: 1234n, committedLeaderEpoch: -1, metadata: '', errorCode: 0 },
            // Unknown group or partition: offset -1 with no error, as Kafka answers.
            { partitionIndex: 1, committedOffset: -1n, committedLeaderEpoch: -1, metadata: null, errorCode: 0 },
          ],
        },
      ],
      errorCode: 0,
      groups: [],
    },
    kafkajs: {
      throttleTime: 0,
      clientSideThrottleTime: 0,
      responses: [
        {
          topic: 'orders',
          partitions: [
            { partition: 0, offset: '1234', metadata: '', errorCode: 0 },
            { partition: 1, offset: '-1', metadata: null, errorCode: 0 },
          ],
        },
      ],
      errorCode: 0,
    },
  }),
  responseCase({
    api: 'findCoordinator',
    version: 2,
    encode: m.encodeFindCoordinatorResponse,
    decode: m.decodeFindCoordinatorResponse,
    msg: { throttleTimeMs: 0, errorCode: 0, errorMessage: null, nodeId: 1, host: 'broker-1.local', port: 9092, coordinators: [] },
    kafkajs: {
      throttleTime: 0,
      clientSideThrottleTime: 0,
      errorCode: 0,
      errorMessage: null,
      coordinator: { nodeId: 1, host: 'broker-1.local', port: 9092 },
    },
  }),
  responseCase({
    api: 'createTopics',
    version: 3,
    encode: m.encodeCreateTopicsResponse,
    decode: m.decodeCreateTopicsResponse,
    msg: {
      throttleTimeMs: 0,
      topics: ['orders', 'audit'].map((name) => ({
        name,
        topicId: ZERO,
        errorCode: 0,
        errorMessage: null,
        topicConfigErrorCode: 0,
        numPartitions: -1,
        replicationFactor: -1,
        configs: [],
      })),
    },
    kafkajs: {
      throttleTime: 0,
      clientSideThrottleTime: 0,
      // KafkaJS sorts by topic name.
      topicErrors: [
        { topic: 'audit', errorCode: 0, errorMessage: null },
        { topic: 'orders', errorCode: 0, errorMessage: null },
      ],
    },
  }),
  responseCase({
    api: 'deleteTopics',
    version: 1,
    encode: m.encodeDeleteTopicsResponse,
    decode: m.decodeDeleteTopicsResponse,
    msg: { throttleTimeMs: 0, responses: [{ name: 'orders', topicId: ZERO, errorCode: 0, errorMessage: null }] },
    kafkajs: { throttleTime: 0, clientSideThrottleTime: 0, topicErrors: [{ topic: 'orders', errorCode: 0 }] },
  }),
  responseCase({
    api: 'initProducerId',
    version: 1,
    encode: m.encodeInitProducerIdResponse,
    decode: m.decodeInitProducerIdResponse,
    msg: { throttleTimeMs: 0, errorCode: 0, producerId: 4000n, producerEpoch: 0 },
    kafkajs: { throttleTime: 0, clientSideThrottleTime: 0, errorCode: 0, producerId: '4000', producerEpoch: 0 },
  }),
  responseCase({
    api: 'describeGroups',
    version: 2,
    encode: m.encodeDescribeGroupsResponse,
    decode: m.decodeDescribeGroupsResponse,
    msg: {
      throttleTimeMs: 0,
      groups: [
        {
          errorCode: 0,
          groupId: 'billing',
          groupState: 'Stable',
          protocolType: 'consumer',
          protocolData: 'RoundRobinAssigner',
          members: [
            {
              memberId: 'member-1',
              groupInstanceId: null,
              clientId: 'billing-app',
              clientHost: '/127.0.0.1',
              memberMetadata,
              memberAssignment: Buffer.from('assignment'),
            },
          ],
          authorizedOperations: NO_AUTHORIZED_OPERATIONS,
        },
      ],
    },
    kafkajs: {
      throttleTime: 0,
      clientSideThrottleTime: 0,
      groups: [
        {
          errorCode: 0,
          groupId: 'billing',
          state: 'Stable',
          protocolType: 'consumer',
          protocol: 'RoundRobinAssigner',
          members: [
            {
              memberId: 'member-1',
              clientId: 'billing-app',
              clientHost: '/127.0.0.1',
              memberMetadata,
              memberAssignment: Buffer.from('assignment'),
            },
          ],
        },
      ],
    },
  }),
  responseCase({
    api: 'listGroups',
    version: 2,
    encode: m.encodeListGroupsResponse,
    decode: m.decodeListGroupsResponse,
    msg: {
      throttleTimeMs: 0,
      errorCode: 0,
      groups: [
        { groupId: 'billing', protocolType: 'consumer', groupState: '', groupType: '' },
        { groupId: 'connect', protocolType: '', groupState: '', groupType: '' },
      ],
    },
    kafkajs: {
      throttleTime: 0,
      clientSideThrottleTime: 0,
      errorCode: 0,
      groups: [
        { groupId: 'billing', protocolType: 'consumer' },
        { groupId: 'connect', protocolType: '' },
      ],
    },
  }),
];

describe('responses KafkaJS 2.2.4 reads', () => {
  for (const c of cases) {
    it(`encodes ${c.api} v${c.version} as KafkaJS expects`, async () => {
      const body = encodeBody(c.encode, c.version, c.msg);
      assert.deepEqual(await kafkajsParseResponse(c.api, c.version, body), c.kafkajs);
      assert.deepEqual(decodeBody(c.decode, c.version, body), c.msg);
    });
  }

  it('puts error codes where KafkaJS looks for them', async () => {
    const produce = produceResponse();
    produce.responses[0].partitionResponses[0].errorCode = 6;
    await assert.rejects(kafkajsParseResponse('produce', 7, encodeBody(m.encodeProduceResponse, 7, produce)), {
      name: 'KafkaJSProtocolError',
      type: 'NOT_LEADER_FOR_PARTITION',
    });
    await assert.rejects(
      kafkajsParseResponse('heartbeat', 3, encodeBody(m.encodeHeartbeatResponse, 3, { throttleTimeMs: 0, errorCode: 27 })),
      { type: 'REBALANCE_IN_PROGRESS' },
    );
    // OffsetFetch v2+ puts the group-level error_code last, after the topics.
    await assert.rejects(
      kafkajsParseResponse('offsetFetch', 4, encodeBody(m.encodeOffsetFetchResponse, 4, { throttleTimeMs: 0, topics: [], errorCode: 16, groups: [] })),
      { type: 'NOT_COORDINATOR_FOR_GROUP' }, // KafkaJS's name for code 16
    );
  });

  it('hands KafkaJS the member id with MEMBER_ID_REQUIRED', async () => {
    const body = encodeBody(m.encodeJoinGroupResponse, 5, {
      throttleTimeMs: 0,
      errorCode: 79,
      generationId: -1,
      protocolType: null,
      protocolName: '', // nullable only from v7
      leader: '',
      skipAssignment: false,
      memberId: 'billing-app-0d5e',
      members: [],
    });
    await assert.rejects(kafkajsParseResponse('joinGroup', 5, body), { name: 'KafkaJSMemberIdRequired', memberId: 'billing-app-0d5e' });
  });
});

describe('Fetch v11 response with a RecordBatch built by KafkaJS', () => {
  it('is read by KafkaJS record for record', async () => {
    const { RecordBatch } = kafkajsModule('recordBatch/v0/index.js');
    const Record = kafkajsModule('recordBatch/record/v0/index.js');
    const batch = await RecordBatch({
      firstOffset: kafkajsLong(100),
      firstTimestamp: 1700000000000,
      maxTimestamp: 1700000000001,
      lastOffsetDelta: 1,
      records: [
        Record({ offsetDelta: 0, timestampDelta: 0, key: Buffer.from('k0'), value: Buffer.from('v0'), headers: { trace: 'abc' } }),
        Record({ offsetDelta: 1, timestampDelta: 1, key: null, value: Buffer.from('v1') }),
      ],
    });
    const records: Buffer = batch.buffer;

    const partition = (partitionIndex: number, blob: Buffer | null): m.FetchResponsePartitionData => ({
      partitionIndex,
      errorCode: 0,
      highWatermark: 102n,
      lastStableOffset: 102n,
      logStartOffset: 0n,
      divergingEpoch: { epoch: -1, endOffset: -1n },
      currentLeader: { leaderId: -1, leaderEpoch: -1 },
      snapshotId: { endOffset: -1n, epoch: -1 },
      abortedTransactions: [],
      // Anything but -1 redirects both clients to another replica (Fetch v11).
      preferredReadReplica: -1,
      records: blob,
    });
    const msg: m.FetchResponse = {
      throttleTimeMs: 0,
      errorCode: 0,
      sessionId: 0,
      responses: [{ topic: 'orders', topicId: ZERO, partitions: [partition(0, records), partition(1, null)] }],
      nodeEndpoints: [],
    };
    const body = encodeBody(m.encodeFetchResponse, 11, msg);

    const seen = await kafkajsParseResponse('fetch', 11, body);
    assert.equal(seen.errorCode, 0);
    assert.equal(seen.sessionId, 0);
    assert.equal(seen.clientSideThrottleTime, 0);
    assert.equal(seen.responses.length, 1);
    assert.equal(seen.responses[0].topicName, 'orders');
    const [p0, p1] = seen.responses[0].partitions;
    assert.deepEqual(
      { ...p0, messages: undefined },
      {
        partition: 0,
        errorCode: 0,
        highWatermark: '102',
        lastStableOffset: '102',
        lastStartOffset: '0',
        abortedTransactions: [],
        preferredReadReplica: -1,
        messages: undefined,
      },
    );
    assert.deepEqual(
      p0.messages.map((r: any) => [r.offset, r.key?.toString() ?? null, r.value.toString(), r.timestamp]),
      [
        ['100', 'k0', 'v0', '1700000000000'],
        ['101', null, 'v1', '1700000000001'],
      ],
    );
    assert.equal(p0.messages[0].headers.trace.toString(), 'abc');
    assert.equal(p1.partition, 1);
    assert.deepEqual(p1.messages, []);

    const decoded = decodeBody(m.decodeFetchResponse, 11, body);
    assert.deepEqual(decoded, msg);
    const decodedRecords = decoded.responses[0].partitions[0].records;
    assert.ok(decodedRecords !== null);
    assert.equal(decodedRecords.buffer, body.buffer, 'records must be a view of the response, not a copy');
  });
});

describe('ApiVersions v3 response (librdkafka)', () => {
  it('has the compact layout librdkafka parses', () => {
    const msg: m.ApiVersionsResponse = {
      ...apiVersionsResponse(),
      apiKeys: [{ apiKey: 18, minVersion: 0, maxVersion: 3 }],
    };
    const body = encodeBody(m.encodeApiVersionsResponse, 3, msg);
    // error 0 | compact array of 1 (N+1 = 2): key 18, min 0, max 3, empty tags | throttle 0 | empty tags
    assert.equal(body.toString('hex'), '0000' + '02' + '0012' + '0000' + '0003' + '00' + '00000000' + '00');
    assert.deepEqual(decodeBody(m.decodeApiVersionsResponse, 3, body), msg);
  });

  it('round-trips the tagged feature fields, and writes only the non-default ones', () => {
    const msg: m.ApiVersionsResponse = {
      ...apiVersionsResponse(),
      supportedFeatures: [{ name: 'metadata.version', minVersion: 1, maxVersion: 20 }],
      finalizedFeaturesEpoch: 42n,
      finalizedFeatures: [{ name: 'metadata.version', maxVersionLevel: 20, minVersionLevel: 20 }],
      zkMigrationReady: false,
    };
    const body = encodeBody(m.encodeApiVersionsResponse, 3, msg);
    assert.deepEqual(decodeBody(m.decodeApiVersionsResponse, 3, body), msg);
    // Three tags (0, 1, 2): zkMigrationReady is at its default and stays off the wire.
    const withoutTags = encodeBody(m.encodeApiVersionsResponse, 3, apiVersionsResponse());
    assert.equal(body[withoutTags.length - 1], 3);
    // Below v3 the tagged fields are ignorable: they are dropped, not an error.
    assert.deepEqual(decodeBody(m.decodeApiVersionsResponse, 2, encodeBody(m.encodeApiVersionsResponse, 2, msg)), apiVersionsResponse());
  });
});
