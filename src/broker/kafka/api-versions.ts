/**
 * ApiVersions: what this broker announces, from the table of served APIs (apis.ts). Each
 * entry's `advertised` range, where set, replaces its served range in the announcement
 * (Produce, see produce.ts). An unserved ApiVersions version gets the v0-shaped body with
 * UNSUPPORTED_VERSION and these ranges, which clients step down on (dispatcher.ts).
 */
import { kafkaCode } from '../../protocol/kafka/error-mapping.js';
import type { ApiVersionsResponse } from '../../protocol/kafka/messages/api-versions.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';

export const API_VERSIONS_VERSIONS: readonly [number, number] = [0, 3];

export function apiVersionsResponse(apis: ReadonlyMap<number, KafkaApiEntry>, errorCode = 0): ApiVersionsResponse {
  return {
    errorCode,
    apiKeys: [...apis.values()].map((e) => {
      const [minVersion, maxVersion] = e.advertised ?? e.versions;
      return { apiKey: e.key, minVersion, maxVersion };
    }),
    throttleTimeMs: 0,
    supportedFeatures: [],
    finalizedFeaturesEpoch: -1n,
    finalizedFeatures: [],
    zkMigrationReady: false,
  };
}

export function handleApiVersions(apis: ReadonlyMap<number, KafkaApiEntry>): ApiVersionsResponse {
  return apiVersionsResponse(apis);
}

export const UNSUPPORTED_VERSION = kafkaCode('UNSUPPORTED_VERSION');
