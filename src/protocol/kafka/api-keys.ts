/**
 * The Kafka APIs Meridian has codecs for (every API in its copy of Kafka's message schemas;
 * which of them the broker serves is broker/kafka/apis.ts's table), and the header versions
 * each one uses:
 *
 *   Request Header v1  => request_api_key INT16, request_api_version INT16, correlation_id INT32,
 *                         client_id NULLABLE_STRING
 *   Request Header v2  => v1 + TAG_BUFFER            (flexible request versions)
 *   Response Header v0 => correlation_id INT32
 *   Response Header v1 => v0 + TAG_BUFFER            (flexible response versions)
 *
 * A version is "flexible" (KIP-482: compact strings and arrays, tagged fields) from the
 * `flexibleVersions` of the API's message JSON. The numbers below are copied from Kafka's
 * clients/src/main/resources/common/message/*Request.json and *Response.json at commit
 * 1eb7644349cb07139d6a3c1ad1986979647cac99; request and response agree for every key.
 */

export const ApiKey = {
  Produce: 0,
  Fetch: 1,
  ListOffsets: 2,
  Metadata: 3,
  OffsetCommit: 8,
  OffsetFetch: 9,
  FindCoordinator: 10,
  JoinGroup: 11,
  Heartbeat: 12,
  LeaveGroup: 13,
  SyncGroup: 14,
  DescribeGroups: 15,
  ListGroups: 16,
  SaslHandshake: 17,
  ApiVersions: 18,
  CreateTopics: 19,
  DeleteTopics: 20,
  DeleteRecords: 21,
  InitProducerId: 22,
  OffsetForLeaderEpoch: 23,
  AddPartitionsToTxn: 24,
  AddOffsetsToTxn: 25,
  EndTxn: 26,
  WriteTxnMarkers: 27,
  TxnOffsetCommit: 28,
  DescribeAcls: 29,
  CreateAcls: 30,
  DeleteAcls: 31,
  DescribeConfigs: 32,
  AlterConfigs: 33,
  DescribeLogDirs: 35,
  SaslAuthenticate: 36,
  CreatePartitions: 37,
  DeleteGroups: 42,
  ElectLeaders: 43,
  IncrementalAlterConfigs: 44,
  AlterPartitionReassignments: 45,
  ListPartitionReassignments: 46,
  OffsetDelete: 47,
  DescribeUserScramCredentials: 50,
  AlterUserScramCredentials: 51,
  DescribeCluster: 60,
  DescribeProducers: 61,
  DescribeTransactions: 65,
  ListTransactions: 66,
  ConsumerGroupHeartbeat: 68,
  ConsumerGroupDescribe: 69,
} as const;
export type ApiKey = (typeof ApiKey)[keyof typeof ApiKey];
export type ApiKeyName = keyof typeof ApiKey;

export type RequestHeaderVersion = 1 | 2;
export type ResponseHeaderVersion = 0 | 1;

/** First flexible version per API; null when no version is flexible. */
const FIRST_FLEXIBLE_VERSION: Readonly<Record<ApiKey, number | null>> = {
  [ApiKey.Produce]: 9,
  [ApiKey.Fetch]: 12,
  [ApiKey.ListOffsets]: 6,
  [ApiKey.Metadata]: 9,
  [ApiKey.OffsetCommit]: 8,
  [ApiKey.OffsetFetch]: 6,
  [ApiKey.FindCoordinator]: 3,
  [ApiKey.JoinGroup]: 6,
  [ApiKey.Heartbeat]: 4,
  [ApiKey.LeaveGroup]: 4,
  [ApiKey.SyncGroup]: 4,
  [ApiKey.DescribeGroups]: 5,
  [ApiKey.ListGroups]: 3,
  [ApiKey.SaslHandshake]: null,
  [ApiKey.ApiVersions]: 3,
  [ApiKey.CreateTopics]: 5,
  [ApiKey.DeleteTopics]: 4,
  [ApiKey.DeleteRecords]: 2,
  [ApiKey.InitProducerId]: 2,
  [ApiKey.OffsetForLeaderEpoch]: 4,
  [ApiKey.AddPartitionsToTxn]: 3,
  [ApiKey.AddOffsetsToTxn]: 3,
  [ApiKey.EndTxn]: 3,
  [ApiKey.WriteTxnMarkers]: 1,
  [ApiKey.TxnOffsetCommit]: 3,
  [ApiKey.DescribeAcls]: 2,
  [ApiKey.CreateAcls]: 2,
  [ApiKey.DeleteAcls]: 2,
  [ApiKey.DescribeConfigs]: 4,
  [ApiKey.AlterConfigs]: 2,
  [ApiKey.DescribeLogDirs]: 2,
  [ApiKey.SaslAuthenticate]: 2,
  [ApiKey.CreatePartitions]: 2,
  [ApiKey.DeleteGroups]: 2,
  [ApiKey.ElectLeaders]: 2,
  [ApiKey.IncrementalAlterConfigs]: 1,
  [ApiKey.AlterPartitionReassignments]: 0,
  [ApiKey.ListPartitionReassignments]: 0,
  [ApiKey.OffsetDelete]: null,
  [ApiKey.DescribeUserScramCredentials]: 0,
  [ApiKey.AlterUserScramCredentials]: 0,
  [ApiKey.DescribeCluster]: 0,
  [ApiKey.DescribeProducers]: 0,
  [ApiKey.DescribeTransactions]: 0,
  [ApiKey.ListTransactions]: 0,
  [ApiKey.ConsumerGroupHeartbeat]: 0,
  [ApiKey.ConsumerGroupDescribe]: 0,
};

export function isApiKey(value: number): value is ApiKey {
  return Object.hasOwn(FIRST_FLEXIBLE_VERSION, value);
}

/** The API's name as Kafka spells it (e.g. for logs), or undefined for a key Meridian does not know. */
export function apiKeyName(value: number): ApiKeyName | undefined {
  for (const name of Object.keys(ApiKey) as ApiKeyName[]) {
    if (ApiKey[name] === value) return name;
  }
  return undefined;
}

export function firstFlexibleVersion(apiKey: ApiKey): number | null {
  return FIRST_FLEXIBLE_VERSION[apiKey];
}

/** Whether the body of this API version uses compact types and tagged fields. False for unknown keys. */
export function isFlexibleVersion(apiKey: number, apiVersion: number): boolean {
  if (!isApiKey(apiKey)) return false;
  const first = FIRST_FLEXIBLE_VERSION[apiKey];
  return first !== null && apiVersion >= first;
}

/**
 * Header v2 for flexible versions, v1 otherwise. v0 (no client_id) only ever served
 * ControlledShutdown v0, which Meridian does not implement.
 *
 * An unknown API key gets v1: the tag buffer cannot be located without knowing the API, but
 * v1 and v2 share their first four fields, which is all the broker needs to log the request
 * and answer or drop it by correlation id.
 */
export function requestHeaderVersion(apiKey: number, apiVersion: number): RequestHeaderVersion {
  return isFlexibleVersion(apiKey, apiVersion) ? 2 : 1;
}

/**
 * Header v1 for flexible versions, v0 otherwise, except ApiVersions, which always answers
 * with v0: a client that does not yet know the broker's versions must be able to read the
 * correlation id (ApiVersionsResponse.json: "Tagged fields are only supported in the body but
 * not in the header"; librdkafka 2.0.2 skips header tags for every key except ApiVersions).
 */
export function responseHeaderVersion(apiKey: number, apiVersion: number): ResponseHeaderVersion {
  if (apiKey === ApiKey.ApiVersions) return 0;
  return isFlexibleVersion(apiKey, apiVersion) ? 1 : 0;
}
