/**
 * What every Kafka API handler is handed: the region's components, built by the
 * composition root (broker.ts). The dispatcher (kafka/dispatcher.ts) passes it to the
 * handler of each request; the handlers in kafka/ import only this type, so none of them
 * imports the dispatcher that imports them.
 */
import type { Logger } from 'pino';
import type { BrokerConfig } from '../config/schema.js';
import type { BufferPool } from '../storage/buffer-pool.js';
import type { LogViews } from '../storage/log-view.js';
import type { TopicManager } from '../storage/topic-manager.js';
import type { DisasterRecovery } from '../dr/disaster-recovery.js';
import type { ReplicationTarget } from '../replication/replication-target.js';
import type { TieredStorage } from '../tiered/tiered-storage.js';
import type { GroupCoordinator } from './groups/group-coordinator.js';
import type { ProducerIdSource } from './producer-ids.js';
import type { ProducerStates } from './producer-states.js';
import type { KafkaRequestObservers } from './kafka/request-observers.js';
import type { BrokerSecurity } from '../security/broker-security.js';
import type { FetchSessions } from './kafka/fetch-sessions.js';
import type { ReplicaManager } from '../cluster/replica-manager.js';
import type { ClusterNode } from '../cluster/cluster-node.js';
import type { ClusterOffsets } from '../cluster/group-offsets.js';

export interface KafkaApiDeps {
  config: BrokerConfig;
  topics: TopicManager;
  producerStates: ProducerStates;
  producerIds: ProducerIdSource;
  groups: GroupCoordinator;
  clusterId: string;
  /** The first listener's advertised endpoint: the default where no listener is known. */
  advertisedHost: string;
  advertisedPort: number;
  /**
   * Each listener's advertised endpoint, by listener name: Metadata, DescribeCluster and
   * FindCoordinator answer with the endpoint of the listener the request came in on, as
   * Kafka does, so a client that bootstrapped on the SSL listener stays on it.
   */
  listenerEndpoints?: ReadonlyMap<string, { readonly host: string; readonly port: number }>;
  /** Read buffers for Fetch, reused once each response is written. */
  readBuffers: BufferPool;
  /** Every read of a partition, across the local log and the object store when tiered. */
  logs: LogViews;
  /** Tiered storage, when enabled (DescribeLogDirs reports what it holds). */
  tiered: TieredStorage | undefined;
  /** The receiving side of geo-replication (always on: any region may send here). */
  replication: ReplicationTarget;
  /** Disaster recovery: read-only DR copies, offset translation, the OffsetSync and DrProbe APIs. */
  dr?: DisasterRecovery;
  logger: Logger;
  /**
   * Authentication, ACLs and quotas (src/security). Absent in handler tests: every request
   * is then allowed, as with authorization off.
   */
  security?: BrokerSecurity;
  /** Told of every request once handled (the metrics listen); absent in handler tests. */
  requestObservers?: KafkaRequestObservers;
  /** Incremental fetch sessions (KIP-227); absent in handler tests: none is granted. */
  fetchSessions?: FetchSessions;
  /**
   * In-region replication (src/cluster) when the region is a cluster: roles, high
   * watermarks and the ISR. Absent on a single broker, whose behaviour it leaves unchanged.
   */
  replicaManager?: ReplicaManager;
  /**
   * The region cluster on etcd (src/cluster/cluster-node.ts), with `cluster.etcd.endpoints`
   * set: the topics etcd lists, the live brokers, the controller, topic creation from any
   * broker. Absent on a single broker (and with an injected replication source).
   */
  cluster?: ClusterNode;
  /**
   * Consumer groups on a region cluster (src/cluster/group-offsets.ts): which broker
   * coordinates a group (FindCoordinator), the offsets topic. Absent on a single broker,
   * whose coordinator is itself.
   */
  groupOffsets?: ClusterOffsets;
}

/** The endpoint to advertise to a request that came in on `listener`. */
export function advertisedEndpoint(deps: Pick<KafkaApiDeps, 'advertisedHost' | 'advertisedPort' | 'listenerEndpoints'>, listener: string | undefined): { host: string; port: number } {
  const e = listener === undefined ? undefined : deps.listenerEndpoints?.get(listener);
  return e === undefined ? { host: deps.advertisedHost, port: deps.advertisedPort } : { host: e.host, port: e.port };
}
