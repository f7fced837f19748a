import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ApiKey,
  apiKeyName,
  firstFlexibleVersion,
  isApiKey,
  isFlexibleVersion,
  requestHeaderVersion,
  responseHeaderVersion,
} from '../../../src/protocol/kafka/api-keys.js';
import { messageCodecs } from '../../../src/protocol/kafka/messages/index.js';

/** [name, key, first flexible version] as listed in Kafka's message JSONs (validVersions/flexibleVersions). */
const EXPECTED: [keyof typeof ApiKey, number, number | null][] = [
  ['Produce', 0, 9],
  ['Fetch', 1, 12],
  ['ListOffsets', 2, 6],
  ['Metadata', 3, 9],
  ['OffsetCommit', 8, 8],
  ['OffsetFetch', 9, 6],
  ['FindCoordinator', 10, 3],
  ['JoinGroup', 11, 6],
  ['Heartbeat', 12, 4],
  ['LeaveGroup', 13, 4],
  ['SyncGroup', 14, 4],
  ['DescribeGroups', 15, 5],
  ['ListGroups', 16, 3],
  ['SaslHandshake', 17, null],
  ['ApiVersions', 18, 3],
  ['CreateTopics', 19, 5],
  ['DeleteTopics', 20, 4],
  ['DeleteRecords', 21, 2],
  ['InitProducerId', 22, 2],
  ['OffsetForLeaderEpoch', 23, 4],
  ['AddPartitionsToTxn', 24, 3],
  ['AddOffsetsToTxn', 25, 3],
  ['EndTxn', 26, 3],
  ['WriteTxnMarkers', 27, 1],
  ['TxnOffsetCommit', 28, 3],
  ['DescribeAcls', 29, 2],
  ['CreateAcls', 30, 2],
  ['DeleteAcls', 31, 2],
  ['DescribeConfigs', 32, 4],
  ['AlterConfigs', 33, 2],
  ['DescribeLogDirs', 35, 2],
  ['SaslAuthenticate', 36, 2],
  ['CreatePartitions', 37, 2],
  ['DeleteGroups', 42, 2],
  ['ElectLeaders', 43, 2],
  ['IncrementalAlterConfigs', 44, 1],
  ['AlterPartitionReassignments', 45, 0],
  ['ListPartitionReassignments', 46, 0],
  ['OffsetDelete', 47, null],
  ['DescribeUserScramCredentials', 50, 0],
  ['AlterUserScramCredentials', 51, 0],
  ['DescribeCluster', 60, 0],
  ['DescribeProducers', 61, 0],
  ['DescribeTransactions', 65, 0],
  ['ListTransactions', 66, 0],
  ['ConsumerGroupHeartbeat', 68, 0],
  ['ConsumerGroupDescribe', 69, 0],
];

describe('ApiKey', () => {
  it('has exactly the keys and first flexible versions of the spec', () => {
    assert.deepEqual(Object.entries(ApiKey), EXPECTED.map(([name, key]) => [name, key]));
    for (const [name, key, flexible] of EXPECTED) {
      assert.equal(isApiKey(key), true, name);
      assert.equal(apiKeyName(key), name);
      assert.equal(firstFlexibleVersion(ApiKey[name]), flexible, name);
    }
    assert.equal(isApiKey(4), false);
    assert.equal(apiKeyName(4), undefined);
    assert.equal(isApiKey(-1), false);
  });

  it('agrees with the generated codecs on every key and first flexible version', () => {
    assert.deepEqual(
      [...messageCodecs.values()].map((c) => [c.name, c.apiKey, c.flexibleFrom]).sort((a, b) => Number(a[1]) - Number(b[1])),
      EXPECTED,
    );
  });

  it('switches to header v2 / v1 exactly at the first flexible version', () => {
    for (const [name, key, flexible] of EXPECTED) {
      if (flexible === null) {
        assert.equal(requestHeaderVersion(key, 100), 1, name);
        continue;
      }
      assert.equal(requestHeaderVersion(key, flexible - 1), 1, name);
      assert.equal(requestHeaderVersion(key, flexible), 2, name);
      assert.equal(isFlexibleVersion(key, flexible - 1), false, name);
      assert.equal(isFlexibleVersion(key, flexible), true, name);
      if (key !== ApiKey.ApiVersions) {
        assert.equal(responseHeaderVersion(key, flexible - 1), 0, name);
        assert.equal(responseHeaderVersion(key, flexible), 1, name);
      }
    }
  });

  it('answers ApiVersions with response header v0 at every version, though its request header is v2 from v3', () => {
    for (const version of [0, 1, 2, 3, 4, 5]) assert.equal(responseHeaderVersion(ApiKey.ApiVersions, version), 0);
    assert.equal(requestHeaderVersion(ApiKey.ApiVersions, 3), 2);
    assert.equal(requestHeaderVersion(ApiKey.ApiVersions, 2), 1);
  });

  it('matches what the target clients use (KafkaJS 2.2.4, librdkafka 2.0.2)', () => {
    assert.equal(requestHeaderVersion(ApiKey.Produce, 7), 1);
    assert.equal(requestHeaderVersion(ApiKey.Fetch, 11), 1);
    assert.equal(requestHeaderVersion(ApiKey.OffsetFetch, 5), 1);
    assert.equal(requestHeaderVersion(ApiKey.OffsetFetch, 7), 2);
    assert.equal(requestHeaderVersion(ApiKey.InitProducerId, 1), 1);
    assert.equal(responseHeaderVersion(ApiKey.InitProducerId, 4), 1);
  });

  it('falls back to header v1 / v0 for unknown API keys', () => {
    assert.equal(requestHeaderVersion(1000, 99), 1);
    assert.equal(responseHeaderVersion(1000, 99), 0);
    assert.equal(isFlexibleVersion(1000, 99), false);
  });
});
