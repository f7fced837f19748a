/**
 * Every Kafka API this broker serves, gathered from the handler modules: the source of
 * truth for ApiVersions, for the dispatcher's version checks and for the README's
 * compatibility table.
 */
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import { ACL_APIS } from './acls.js';
import { API_VERSIONS_VERSIONS, handleApiVersions } from './api-versions.js';
import { CLUSTER_APIS } from './cluster.js';
import { CONFIG_APIS } from './configs.js';
import { DELETE_RECORDS_APIS } from './delete-records.js';
import { FETCH_APIS } from './fetch.js';
import { COORDINATOR_APIS } from './find-coordinator.js';
import { GROUP_APIS } from './groups.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';
import { PARTITION_REASSIGNMENT_APIS } from './partition-reassignments.js';
import { PRODUCE_APIS } from './produce.js';
import { SASL_APIS } from './sasl.js';
import { SCRAM_CREDENTIAL_APIS } from './scram-credentials.js';
import { TOPIC_APIS } from './topics.js';

const ENTRIES: readonly KafkaApiEntry[] = [
  { key: ApiKey.ApiVersions, versions: API_VERSIONS_VERSIONS, handle: (d, c, req, v) => handleApiVersions(KAFKA_APIS, d.logger, c.header.clientId, req, v) },
  ...PRODUCE_APIS,
  ...FETCH_APIS,
  ...TOPIC_APIS,
  ...COORDINATOR_APIS,
  ...GROUP_APIS,
  ...DELETE_RECORDS_APIS,
  ...CONFIG_APIS,
  ...CLUSTER_APIS,
  ...SASL_APIS,
  ...ACL_APIS,
  ...SCRAM_CREDENTIAL_APIS,
  ...PARTITION_REASSIGNMENT_APIS,
];

function byKey(entries: readonly KafkaApiEntry[]): ReadonlyMap<number, KafkaApiEntry> {
  const out = new Map<number, KafkaApiEntry>();
  for (const e of [...entries].sort((a, b) => a.key - b.key)) {
    if (out.has(e.key)) throw new Error(`Kafka API ${e.key} is registered twice`);
    out.set(e.key, e);
  }
  return out;
}

export const KAFKA_APIS: ReadonlyMap<number, KafkaApiEntry> = byKey(ENTRIES);

/** The served ranges by API key. */
export const SUPPORTED_VERSIONS: ReadonlyMap<number, readonly [min: number, max: number]> = new Map([...KAFKA_APIS].map(([k, e]) => [k, e.versions]));

export function isSupported(apiKey: number, version: number): boolean {
  const r = SUPPORTED_VERSIONS.get(apiKey);
  return r !== undefined && version >= r[0] && version <= r[1];
}
