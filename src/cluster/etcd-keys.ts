/**
 * The one owner of the etcd key layout of a region (src/cluster/README.md, "etcd: keys,
 * leases, fencing"). Every other module asks `regionKeys(...)` for a key or a prefix and
 * parses keys back through it, so the layout is written down exactly once.
 *
 *   <prefix>/<region>/brokers/<nodeId>            BrokerInfo, on the broker's lease
 *   <prefix>/<region>/controller/<leaseId hex>    election candidates, on their brokers' leases
 *   <prefix>/<region>/topics/<name>               TopicRecord
 *   <prefix>/<region>/partitions/<topic>/<p>      PartitionState
 *   <prefix>/<region>/config/policies, config/tiered
 *   <prefix>/<region>/security/acls, security/scram-credentials, security/quotas, security/initialized
 *   <prefix>/<region>/producer-ids                  the next free producer id (blocks, CAS)
 *   <prefix>/<region>/requests/topics/<name>      a topic creation asked of the controller, on the asker's lease
 *   <prefix>/<region>/reassignments/<topic>/<p>   a partition reassignment in progress (reassign-store.ts)
 *   <prefix>/<region>/dr/topics/<topic>            one DR topic's role (a TopicDrEntry's JSON, dr-sync.ts)
 *   <prefix>/<region>/dr/initialized               written once the region's DR roles were seeded (dr-sync.ts)
 *   <prefix>/<region>/dr/state                     legacy: all roles in one document (the previous version; migrated at start)
 *   <prefix>/<region>/dr/reports/<id>              a saved promote or failback report (dr-sync.ts)
 *
 * Kafka topic names are [a-zA-Z0-9._-] (never "/"), so `partitions/<topic>/` is a prefix of
 * that topic's partitions only.
 */

export interface RegionKeys {
  /** `<prefix>/<region>/`: everything of the region lives under it. */
  readonly root: string;
  readonly brokersPrefix: string;
  broker(nodeId: number): string;
  /** The node id of a `brokers/<nodeId>` key, or undefined for another key. */
  brokerIdOf(key: string): number | undefined;
  /** Prefix of the controller election: its candidates' keys, lowest create revision leads. */
  readonly controllerPrefix: string;
  controllerCandidate(leaseId: string): string;
  readonly topicsPrefix: string;
  topic(name: string): string;
  topicNameOf(key: string): string | undefined;
  readonly partitionsPrefix: string;
  partitionsOf(topic: string): string;
  partition(topic: string, partition: number): string;
  /** Topic and partition of a `partitions/<topic>/<p>` key, or undefined for another key. */
  partitionOf(key: string): { topic: string; partition: number } | undefined;
  readonly policies: string;
  readonly tiered: string;
  /** The region's ACLs, SCRAM credentials and quota overrides, one document each (security-sync.ts). */
  readonly securityPrefix: string;
  readonly securityAcls: string;
  readonly securityCredentials: string;
  readonly securityQuotas: string;
  /** Written with the first documents (security-sync.ts): from then on a missing document is an error, never "none". */
  readonly securityInitialized: string;
  /** The region's producer id counter (cluster-producer-ids.ts). */
  readonly producerIds: string;
  /** The cluster id every broker of the region reports in Metadata (created once by the first broker). */
  readonly clusterId: string;
  /** Topic creations forwarded to the controller (cluster-node.ts). */
  readonly topicRequestsPrefix: string;
  topicRequest(name: string): string;
  /** Partition reassignments in progress (reassign-store.ts): persistent, deleted by the controller when done. */
  readonly reassignmentsPrefix: string;
  reassignment(topic: string, partition: number): string;
  /** Topic and partition of a `reassignments/<topic>/<p>` key, or undefined for another key. */
  reassignmentOf(key: string): { topic: string; partition: number } | undefined;
  /** Disaster recovery (dr-sync.ts): one key per topic's role, the seeding marker and the saved reports. */
  readonly drPrefix: string;
  /** Legacy: the previous version's single roles document, migrated to `dr/topics/` at start. */
  readonly drState: string;
  readonly drTopicsPrefix: string;
  drTopic(name: string): string;
  /** The topic of a `dr/topics/<topic>` key, or undefined for another key. */
  drTopicOf(key: string): string | undefined;
  /** Written when the region's roles were first seeded: from then on no broker seeds them again. */
  readonly drInitialized: string;
  drReport(id: string): string;
  /** The report id of a `dr/reports/<id>` key, or undefined for another key. */
  drReportIdOf(key: string): string | undefined;
}

/** Default `cluster.etcd.prefix`. */
export const DEFAULT_PREFIX = '/meridian';

export function regionKeys(prefix: string, region: string): RegionKeys {
  const root = `${prefix.replace(/\/+$/, '')}/${region}/`;
  const brokersPrefix = `${root}brokers/`;
  const controllerPrefix = `${root}controller/`;
  const topicsPrefix = `${root}topics/`;
  const partitionsPrefix = `${root}partitions/`;
  const rest = (key: string, p: string) => (key.startsWith(p) ? key.slice(p.length) : undefined);
  return {
    root,
    brokersPrefix,
    broker: (nodeId) => `${brokersPrefix}${nodeId}`,
    brokerIdOf: (key) => {
      const r = rest(key, brokersPrefix);
      return r !== undefined && /^\d+$/.test(r) ? Number(r) : undefined;
    },
    controllerPrefix,
    controllerCandidate: (leaseId) => `${controllerPrefix}${BigInt(leaseId).toString(16)}`,
    topicsPrefix,
    topic: (name) => `${topicsPrefix}${name}`,
    topicNameOf: (key) => {
      const r = rest(key, topicsPrefix);
      return r === undefined || r === '' || r.includes('/') ? undefined : r;
    },
    partitionsPrefix,
    partitionsOf: (topic) => `${partitionsPrefix}${topic}/`,
    partition: (topic, p) => `${partitionsPrefix}${topic}/${p}`,
    partitionOf: (key) => {
      const r = rest(key, partitionsPrefix);
      const m = r === undefined ? null : /^([^/]+)\/(\d+)$/.exec(r);
      return m === null ? undefined : { topic: m[1]!, partition: Number(m[2]) };
    },
    policies: `${root}config/policies`,
    tiered: `${root}config/tiered`,
    securityPrefix: `${root}security/`,
    securityAcls: `${root}security/acls`,
    securityCredentials: `${root}security/scram-credentials`,
    securityQuotas: `${root}security/quotas`,
    securityInitialized: `${root}security/initialized`,
    producerIds: `${root}producer-ids`,
    clusterId: `${root}cluster-id`,
    topicRequestsPrefix: `${root}requests/topics/`,
    topicRequest: (name) => `${root}requests/topics/${name}`,
    reassignmentsPrefix: `${root}reassignments/`,
    reassignment: (topic, p) => `${root}reassignments/${topic}/${p}`,
    reassignmentOf: (key) => {
      const r = rest(key, `${root}reassignments/`);
      const m = r === undefined ? null : /^([^/]+)\/(\d+)$/.exec(r);
      return m === null ? undefined : { topic: m[1]!, partition: Number(m[2]) };
    },
    drPrefix: `${root}dr/`,
    drState: `${root}dr/state`,
    drTopicsPrefix: `${root}dr/topics/`,
    drTopic: (name) => `${root}dr/topics/${name}`,
    drTopicOf: (key) => {
      const r = rest(key, `${root}dr/topics/`);
      return r === undefined || r === '' || r.includes('/') ? undefined : r;
    },
    drInitialized: `${root}dr/initialized`,
    drReport: (id) => `${root}dr/reports/${id}`,
    drReportIdOf: (key) => {
      const r = rest(key, `${root}dr/reports/`);
      return r === undefined || r === '' || r.includes('/') ? undefined : r;
    },
  };
}
