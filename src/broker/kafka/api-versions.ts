/**
 * ApiVersions: what this broker announces, from the table of served APIs (apis.ts). Each
 * entry's `advertised` range, where set, replaces its served range in the announcement
 * (Produce, see produce.ts). An unserved ApiVersions version gets the v0-shaped body with
 * UNSUPPORTED_VERSION and these ranges, which clients step down on (dispatcher.ts).
 *
 * v3+ requests name the client software (KIP-511); v4 is v3 on the wire (it only tells a
 * broker that the client handles UNSUPPORTED_VERSION at v4). The names are logged at debug
 * and checked as Kafka checks them: a name or version that is empty or not made of letters,
 * digits, '-' and '.' (starting and ending with a letter or digit) gets INVALID_REQUEST.
 */
import type { Logger } from 'pino';
import { kafkaCode } from '../../protocol/kafka/error-mapping.js';
import type { ApiVersionsRequest, ApiVersionsResponse } from '../../protocol/kafka/messages/api-versions.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';

export const API_VERSIONS_VERSIONS: readonly [number, number] = [0, 4];

export const UNSUPPORTED_VERSION = kafkaCode('UNSUPPORTED_VERSION');
const INVALID_REQUEST = kafkaCode('INVALID_REQUEST');

/** Kafka's ApiVersionsRequest.isValid pattern for client_software_name and _version. */
const SOFTWARE_FIELD = /^[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?$/;

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

export function handleApiVersions(
  apis: ReadonlyMap<number, KafkaApiEntry>,
  log: Logger,
  clientId: string | null,
  req: ApiVersionsRequest,
  version: number,
): ApiVersionsResponse {
  if (version < 3) return apiVersionsResponse(apis);
  const { clientSoftwareName, clientSoftwareVersion } = req;
  log.debug({ clientId, clientSoftwareName, clientSoftwareVersion, version }, 'ApiVersions');
  if (!SOFTWARE_FIELD.test(clientSoftwareName) || !SOFTWARE_FIELD.test(clientSoftwareVersion)) {
    log.debug({ clientId, clientSoftwareName, clientSoftwareVersion }, 'ApiVersions: invalid client software name or version: answered INVALID_REQUEST');
    return apiVersionsResponse(new Map(), INVALID_REQUEST);
  }
  return apiVersionsResponse(apis);
}
