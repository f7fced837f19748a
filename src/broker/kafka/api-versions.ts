/**
 * ApiVersions, and the table of what this broker advertises: the source of truth for the
 * dispatcher's version checks. Each range covers what KafkaJS 2.2 and librdkafka 2.0 pick
 * (see the protocol/kafka README): the group APIs keep minVersion 0 (librdkafka enables its
 * balanced consumer only if the ranges overlap v0),
 * and OffsetFetch stops at 5 and InitProducerId at 1 so that ApiVersions v3 is the only
 * flexible request a client ever sends.
 */
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import { kafkaCode } from '../../protocol/kafka/error-mapping.js';
import type { ApiVersionsRequest, ApiVersionsResponse } from '../../protocol/kafka/messages/api-versions.js';

export const SUPPORTED_VERSIONS: ReadonlyMap<number, readonly [min: number, max: number]> = new Map([
  // Served from v3 (RecordBatch), but see ADVERTISED_VERSIONS.
  [ApiKey.Produce, [3, 7]],
  [ApiKey.Fetch, [4, 11]],
  [ApiKey.ListOffsets, [1, 3]],
  [ApiKey.Metadata, [0, 6]],
  [ApiKey.OffsetCommit, [2, 7]],
  [ApiKey.OffsetFetch, [1, 5]],
  [ApiKey.FindCoordinator, [0, 2]],
  [ApiKey.JoinGroup, [0, 5]],
  [ApiKey.Heartbeat, [0, 3]],
  [ApiKey.LeaveGroup, [0, 3]],
  [ApiKey.SyncGroup, [0, 3]],
  [ApiKey.DescribeGroups, [0, 2]],
  [ApiKey.ListGroups, [0, 2]],
  [ApiKey.ApiVersions, [0, 3]],
  [ApiKey.CreateTopics, [0, 4]],
  [ApiKey.DeleteTopics, [0, 1]],
  [ApiKey.InitProducerId, [0, 1]],
]);

/**
 * What ApiVersions announces, where it differs from what is served. librdkafka 2.0.2 uses
 * gzip, snappy and lz4 only if the broker's Produce range includes v0
 * (rdkafka_msgset_writer.c); otherwise it silently sends those batches uncompressed. Kafka
 * 4.0 hit the same (KAFKA-18659) and, like it, Meridian advertises Produce 0-7 while
 * answering v0-v2 with UNSUPPORTED_VERSION: no client that speaks RecordBatch sends them.
 */
const ADVERTISED_VERSIONS: ReadonlyMap<number, readonly [min: number, max: number]> = new Map([...SUPPORTED_VERSIONS, [ApiKey.Produce, [0, 7]]]);

export function isSupported(apiKey: number, version: number): boolean {
  const r = SUPPORTED_VERSIONS.get(apiKey);
  return r !== undefined && version >= r[0] && version <= r[1];
}

export function apiVersionsResponse(errorCode = 0): ApiVersionsResponse {
  return {
    errorCode,
    apiKeys: [...ADVERTISED_VERSIONS].map(([apiKey, [minVersion, maxVersion]]) => ({ apiKey, minVersion, maxVersion })),
    throttleTimeMs: 0,
    supportedFeatures: [],
    finalizedFeaturesEpoch: -1n,
    finalizedFeatures: [],
    zkMigrationReady: false,
  };
}

export function handleApiVersions(_req: ApiVersionsRequest): ApiVersionsResponse {
  return apiVersionsResponse();
}

export const UNSUPPORTED_VERSION = kafkaCode('UNSUPPORTED_VERSION');
