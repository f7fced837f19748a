/**
 * One region's broker: the composition root of everything a broker process runs. It takes
 * the data directory lock, opens the topics (running log recovery), tiered storage when it
 * is enabled and the consumer-group coordinator, starts housekeeping, opens the Kafka
 * listener once everything it serves is ready, and then starts the replicator: senders
 * start only once this region can answer its peers' handshakes. Each component is handed
 * its dependencies through its constructor; config-adapters.ts turns the config into what
 * they take.
 *
 * With `cluster.etcd.endpoints` set the broker is one of its region's cluster
 * (src/cluster/README.md): before the listener opens it loads the region from etcd and opens
 * the topics etcd lists (cluster/cluster-node.ts), once the listener is bound it registers
 * (lease), campaigns for controller and starts replicating (ReplicaManager).
 *
 * Lifecycle: `Broker.start(config, logger)` → running → `close()` (idempotent): stops the
 * replicator (nothing more is sent), the follower fetchers, leaves the region cluster
 * (resigns the controllership, revokes the lease last), then the listener (no new
 * requests), the replication state, the groups and tiered storage, then drains and fsyncs
 * every log, and finally releases the lock.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { effectiveListeners } from '../config/listeners.js';
import type { BrokerConfig } from '../config/schema.js';
import { KafkaServer } from '../protocol/kafka/server.js';
import { BufferPool } from '../storage/buffer-pool.js';
import { DataDirLock } from '../storage/data-dir-lock.js';
import { derivedMaxOpenFiles } from '../storage/fd-cache.js';
import type { LogIo } from '../storage/fs-util.js';
import { writeFileAtomicSync } from '../storage/fs-util.js';
import { LogViews } from '../storage/log-view.js';
import type { LogOptions } from '../storage/partition-log.js';
import { RetentionGuards } from '../storage/retention-guards.js';
import { TopicManager } from '../storage/topic-manager.js';
import type { BlobStore } from '../tiered/blobstore/blob-store.js';
import { TieredStorage } from '../tiered/tiered-storage.js';
import { AdminServer } from '../admin/admin-server.js';
import { checkAdminExposure } from '../admin/auth.js';
import { parseRegions } from '../replication/policy.js';
import { PolicyStore } from '../replication/policy-store.js';
import { ReplicaStates } from '../replication/replica-state.js';
import { ReplicationTarget } from '../replication/replication-target.js';
import { Replicator } from '../replication/replicator.js';
import { replicatorLeadership, targetLeadership } from '../cluster/georep-leadership.js';
import { createStoreFrom, tieredPolicyFrom } from './config-adapters.js';
import { GroupCoordinator } from './groups/group-coordinator.js';
import { tierTruncationCheck } from '../tiered/partition-tier.js';
import { DisasterRecovery } from '../dr/disaster-recovery.js';
import { linkPrincipal } from '../dr/failback-cluster.js';
import { checkListenerProtocols, kafkaServerError, startupError, tieredStartup } from './startup-error.js';
import type { KafkaApiDeps } from './kafka-api.js';
import { createKafkaHandler } from './kafka/dispatcher.js';
import { KafkaRequestObservers } from './kafka/request-observers.js';
import { ProducerIdAllocator } from './producer-ids.js';
import { ProducerStates } from './producer-states.js';
import { BrokerSecurity } from '../security/broker-security.js';
import { AclOperation, ResourceType } from '../security/acl.js';
import { FetchSessions } from './kafka/fetch-sessions.js';
import { ReplicaManager, type ReplicaManagerOptions } from '../cluster/replica-manager.js';
import { ClusterNode } from '../cluster/cluster-node.js';
import { ClusterPolicies } from '../cluster/policy-sync.js';
import { ClusterSecurity } from '../cluster/security-sync.js';
import { ClusterDrState } from '../cluster/dr-sync.js';
import { ErrorCode, MeridianError } from '../errors.js';
import { createClusterPartitions } from '../cluster/topic-admin.js';
import { EtcdManifestFence } from '../cluster/tier-manifest-fence.js';
import { ClusterOffsets, offsetsTopicRegion } from '../cluster/group-offsets.js';
import { localTopicConfig } from './kafka/topic-config.js';

/**
 * In-region replication driven by a given partition-state source (src/cluster): the
 * replication tests hand in an in-memory one; the etcd layer builds its own from
 * `cluster.etcd`.
 */
export type ClusterReplicationInject = Omit<ReplicaManagerOptions, 'nodeId' | 'topics' | 'producerStates' | 'replicaStates' | 'flushMode' | 'logger'>;

/** What tests hand Broker.start in place of real components (see there). */
export interface BrokerInject {
  blobStore?: BlobStore;
  logIo?: LogIo;
  cluster?: ClusterReplicationInject;
  bootId?: string;
}

export function logOptionsFrom(config: BrokerConfig): LogOptions {
  const l = config.log;
  return {
    segmentBytes: l.segmentBytes,
    segmentMs: l.segmentMs,
    indexIntervalBytes: l.indexIntervalBytes,
    maxBatchBytes: l.maxBatchBytes,
    maxUncompressedBatchBytes: l.maxUncompressedBatchBytes,
    flushMode: l.flush.mode,
    flushIntervalMs: l.flush.intervalMs,
    journal: l.flush.journal,
    journalMinLogs: l.flush.journalMinPartitions,
    retentionBytes: l.retention.bytes,
    retentionMs: l.retention.ms,
    maxOpenFiles: l.maxOpenFiles ?? derivedMaxOpenFiles(),
    tailCacheBytes: l.tailCacheBytes,
  };
}

/** The cluster id clients see in Metadata: made once per data directory, then kept. */
function clusterIdOf(dataDir: string): string {
  const file = path.join(dataDir, 'cluster.json');
  if (fs.existsSync(file)) return (JSON.parse(fs.readFileSync(file, 'utf8')) as { clusterId: string }).clusterId;
  const clusterId = crypto.randomBytes(16).toString('base64url');
  writeFileAtomicSync(file, JSON.stringify({ clusterId }) + '\n');
  return clusterId;
}

export class Broker {
  readonly config: BrokerConfig;
  readonly topics: TopicManager;
  readonly groups: GroupCoordinator;
  readonly kafka: KafkaServer;
  readonly tiered: TieredStorage | undefined;
  readonly replicator: Replicator;
  readonly replicaStates: ReplicaStates;
  readonly replicationTarget: ReplicationTarget;
  /** Disaster recovery: DR topic roles, promote and failback, offset translation. */
  readonly dr: DisasterRecovery;
  readonly log: Logger;
  /** Every Kafka request handled, for whoever listens (the metrics). */
  readonly kafkaRequests: KafkaRequestObservers;
  /** The replication policies in force and where they come from (config file or runtime). */
  readonly policies: PolicyStore;
  /** The cluster id clients see in Metadata (kept in the data directory). */
  readonly clusterId: string;
  /** When start() began, ms since the epoch. */
  readonly startedAt: number;
  /** Credentials, ACLs, the authorizer and quotas (set by start() before it returns). */
  security!: BrokerSecurity;
  /** Incremental fetch sessions (KIP-227), for the metrics (set by start() before it returns). */
  fetchSessions!: FetchSessions;
  /** In-region replication, when the region is a cluster (src/cluster); undefined on a single broker. */
  replicaManager: ReplicaManager | undefined;
  /** The region cluster on etcd (`cluster.etcd.endpoints` set); undefined on a single broker. */
  cluster: ClusterNode | undefined;
  #admin: AdminServer | undefined;
  #advertised: ReadonlyMap<string, { host: string; port: number }> = new Map();
  #lock: DataDirLock;
  #retention: RetentionGuards;
  #closing: Promise<void> | undefined;

  private constructor(
    config: BrokerConfig,
    topics: TopicManager,
    groups: GroupCoordinator,
    kafka: KafkaServer,
    lock: DataDirLock,
    log: Logger,
    retention: RetentionGuards,
    replication: { replicator: Replicator; states: ReplicaStates; target: ReplicationTarget; policies: PolicyStore; dr: DisasterRecovery },
    identity: { clusterId: string; startedAt: number },
    tiered?: TieredStorage,
    kafkaRequests: KafkaRequestObservers = new KafkaRequestObservers(),
  ) {
    this.config = config;
    this.policies = replication.policies;
    this.clusterId = identity.clusterId;
    this.startedAt = identity.startedAt;
    this.kafkaRequests = kafkaRequests;
    this.replicator = replication.replicator;
    this.replicaStates = replication.states;
    this.replicationTarget = replication.target;
    this.dr = replication.dr;
    this.tiered = tiered;
    this.topics = topics;
    this.groups = groups;
    this.kafka = kafka;
    this.#lock = lock;
    this.#retention = retention;
    this.log = log;
  }

  /** The port the (first) Kafka listener is bound to (useful with `kafka.port: 0`). */
  get kafkaPort(): number {
    return this.kafka.port;
  }

  /** Each listener's bound port, by listener name. */
  get kafkaPorts(): ReadonlyMap<string, number> {
    return this.kafka.ports;
  }

  /** Each listener's advertised endpoint, by name, in config order (the first is the default). */
  get advertisedListeners(): ReadonlyMap<string, { host: string; port: number }> {
    return this.#advertised;
  }

  /** The first listener's advertised endpoint: where the region is reached by default. */
  get kafkaAdvertised(): { host: string; port: number } {
    return this.#advertised.values().next().value!;
  }

  /** The port the admin API is bound to; undefined when `admin.port` is not set. */
  get adminPort(): number | undefined {
    return this.#admin?.port;
  }

  /** The admin API's address (host as bound, port), or undefined without one. */
  get adminAddress(): { host: string; port: number } | undefined {
    return this.#admin?.address ?? undefined;
  }

  /** True from the moment close() is called: readiness probes fail before anything stops. */
  get closing(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * `inject.blobStore` replaces the store `config.tiered.store` describes (tests hand in a
   * store on a test server; the broker owns and closes it either way). `inject.logIo`
   * replaces the partition logs' disk calls (tests inject EIO); `inject.bootId` the
   * machine's boot id the logs compare their ship fences with (tests play a power loss).
   *
   * A failure rejects with a StartupError naming the setting to look at and the cause (or
   * with the ConfigError that already names it), everything opened so far closed again.
   */
  static async start(config: BrokerConfig, logger: Logger, inject: BrokerInject = {}): Promise<Broker> {
    try {
      return await Broker.#start(config, logger, inject);
    } catch (err) {
      // Whatever failed, the operator is told which setting to look at (startup-error.ts).
      throw startupError(err, config);
    }
  }

  static async #start(config: BrokerConfig, logger: Logger, inject: BrokerInject): Promise<Broker> {
    const log = logger.child({ region: config.region, node: config.nodeId });
    // Before anything opens: an admin API open to the network needs a token, and a SASL
    // listener needs SASL (never served unauthenticated).
    checkAdminExposure(config.admin);
    checkListenerProtocols(config);
    const listeners = effectiveListeners(config.kafka);
    const dataDir = path.resolve(config.dataDir);
    const lock = DataDirLock.acquire(dataDir);
    let topics: TopicManager | undefined;
    let retention: RetentionGuards | undefined;
    let groups: GroupCoordinator | undefined;
    let tiered: TieredStorage | undefined;
    let replicator: Replicator | undefined;
    let admin: AdminServer | undefined;
    let listener: KafkaServer | undefined;
    let dr: DisasterRecovery | undefined;
    let replicaManager: ReplicaManager | undefined;
    let cluster: ClusterNode | undefined;
    let groupOffsets: ClusterOffsets | undefined;
    const replicaStates = new ReplicaStates(log);
    try {
      const started = Date.now();
      topics = await TopicManager.open(dataDir, { ...logOptionsFrom(config), ...(inject.logIo ? { io: inject.logIo } : {}), ...(inject.bootId !== undefined ? { bootId: inject.bootId } : {}) }, log);
      // Every rule that may keep data retention would delete, each bound below as its owner
      // is built: storage/retention-guards.ts.
      const guards = new RetentionGuards(topics);
      retention = guards;
      guards.useLocal('dedup-snapshot', (_topic, _partition, plog, seg) => replicaStates.mayDeleteLocal(plog, seg));
      topics.startMaintenance(config.log.retention.checkIntervalMs);
      // Partitions that ever received replicated data keep their dedup snapshots current
      // from now on, whether or not a peer connects.
      const opened = topics;
      for (const t of opened.listTopics()) for (const log of opened.partitions(t.name)) replicaStates.followIfTracked(log);
      opened.onTopicChange((event) => {
        if (event !== 'deleted') return;
        const live = new Set(opened.listTopics().flatMap((t) => [...opened.partitions(t.name)]));
        replicaStates.retain((log) => live.has(log));
      });
      if (config.tiered.enabled) {
        tiered = await tieredStartup(config, inject.blobStore !== undefined, async () => {
          const t = new TieredStorage({
            store: inject.blobStore ?? (await createStoreFrom(config)),
            topics: opened,
            cache: config.tiered.cache,
            policy: tieredPolicyFrom(config),
            mayDeleteRemote: (topic, partition, seg) => guards.mayDeleteRemote(topic, partition, seg),
            required: config.tiered.required,
            // A region cluster: nothing is offloaded until attachCluster (below) says who leads.
            clustered: config.cluster.etcd.endpoints.length > 0 && inject.cluster === undefined,
            nodeId: config.nodeId,
            logger: log,
          });
          // Bound before the start: until a topic's manifests load, its logs keep everything.
          guards.useLocal('tiering', (topic, partition, plog, seg) => t.retention.mayDeleteLocal(topic, partition, plog, seg));
          await t.start();
          return t;
        });
        log.info({ store: tiered.store.name }, 'tiered storage enabled');
        // A failback never cuts below what the bucket holds (or is receiving).
        opened.addTruncationCheck(tierTruncationCheck(tiered.lookup));
      }
      const groupOptions = {
        logger: log,
        initialRebalanceDelayMs: config.groups.initialRebalanceDelayMs,
        minSessionTimeoutMs: config.groups.minSessionTimeoutMs,
        maxSessionTimeoutMs: config.groups.maxSessionTimeoutMs,
      };
      // A region cluster keeps group offsets in the replicated topic __meridian_offsets and
      // coordinates the groups whose partition this broker leads (cluster/group-offsets.ts).
      const offsets = config.cluster.etcd.endpoints.length > 0 && inject.cluster === undefined ? new ClusterOffsets({ topics, partitions: config.cluster.offsetsTopicPartitions, sync: config.log.flush.mode === 'fsync', compactionBytes: config.cluster.offsetsCompactionBytes, logger: log }) : undefined;
      groupOffsets = offsets;
      groups = offsets !== undefined ? GroupCoordinator.withBackend(offsets, { ...groupOptions, gate: (g) => offsets.gate(g) }) : await GroupCoordinator.open({ dir: path.join(dataDir, 'groups'), ...groupOptions });
      // The policies are known before the listener opens: disaster recovery answers for DR
      // topics (read-only copies, fenced senders) from the first request on.
      const r = config.replication;
      const regions = parseRegions(r.regions);
      // A runtime set persisted in the data directory wins over the config file's (logged).
      const policies = PolicyStore.open({ dataDir, known: [config.region, ...regions.map((x) => x.name)], configPolicies: r.policies, logger: log });
      let replicatorRef: Replicator | undefined;
      const currentPolicies = () => replicatorRef?.policies ?? policies.policies;
      dr = new DisasterRecovery({
        region: config.region,
        dataDir,
        topics,
        groups,
        replicaStates,
        policies: currentPolicies,
        regions: () => (replicatorRef?.registry ?? regions).filter((x) => x.name !== config.region),
        requestTimeoutMs: r.requestTimeoutMs,
        linkSecurity: { tls: r.tls, sasl: r.sasl },
        regionCluster: config.cluster.etcd.endpoints.length > 0 && inject.cluster === undefined,
        logger: log,
      });
      const disaster = dr;
      // A region cluster: the topics etcd lists are open before the listener is.
      if (config.cluster.etcd.endpoints.length > 0 && inject.cluster === undefined) {
        cluster = await ClusterNode.open({ config, topics, localConfig: (r) => localTopicConfig(r.configs), logger: log });
        // The region's runtime policies (etcd) replace this broker's before anything replicates.
        cluster.policies = await ClusterPolicies.open(cluster.region, policies, config.nodeId, log);
        // The region's DR roles (etcd) replace this broker's before any produce or handshake is answered.
        cluster.dr = await ClusterDrState.open(cluster.region, disaster.state, config.nodeId, log);
      }
      // Credentials and ACLs are loaded before the listener opens: no request is ever
      // answered without them (a damaged file stops the start).
      const security = BrokerSecurity.open(dataDir, config.security, log);
      // A region cluster enforces the region's ACLs, users and quotas (etcd), from the first request.
      if (cluster !== undefined) cluster.security = await ClusterSecurity.open(cluster.region, security, config.nodeId, log);
      const deps: KafkaApiDeps = {
        config,
        topics,
        groups,
        producerStates: new ProducerStates(),
        // A cluster's ids come from one etcd counter: unique across its brokers.
        producerIds: cluster?.producerIds ?? new ProducerIdAllocator(dataDir, config.region),
        // A region cluster's brokers report one id (etcd); a single broker keeps its own.
        clusterId: cluster?.clusterId ?? clusterIdOf(dataDir),
        advertisedHost: listeners[0]!.advertisedHost ?? listeners[0]!.host,
        advertisedPort: listeners[0]!.advertisedPort ?? listeners[0]!.port,
        readBuffers: new BufferPool(),
        logs: new LogViews(topics, tiered?.remote),
        tiered,
        replication: new ReplicationTarget({
          region: config.region,
          topics,
          states: replicaStates,
          logger: log,
          admission: disaster,
          policies: currentPolicies,
          regions: () => (replicatorRef?.registry ?? regions).filter((x) => x.name !== config.region),
        }),
        dr: disaster,
        security,
        groupOffsets,
        logger: log,
        requestObservers: new KafkaRequestObservers(),
        fetchSessions: new FetchSessions({
          slots: config.kafka.fetchSessionCacheSlots,
          evictionMs: config.kafka.fetchSessionEvictionMs,
          topicName: (id) => opened.getTopicById(id)?.name ?? null,
        }),
      };
      if (inject.cluster !== undefined) {
        replicaManager = new ReplicaManager({ ...inject.cluster, nodeId: config.nodeId, topics, producerStates: deps.producerStates, replicaStates, flushMode: config.log.flush.mode, logger: log });
        deps.replicaManager = replicaManager;
        // Replicated appends from other regions go through each partition's leader here.
        deps.replication.attachCluster({ leadership: targetLeadership(replicaManager, r.requestTimeoutMs / 2) });
      } else if (cluster !== undefined) {
        const node = cluster;
        const c = config.cluster;
        replicaManager = new ReplicaManager({
          source: node.source,
          replicaLagTimeMaxMs: c.replicaLagTimeMaxMs,
          defaultMinInsyncReplicas: c.defaultMinInsyncReplicas,
          minInsyncReplicas: (topic) => node.minInsyncReplicas(topic),
          // Self-fencing: past its lease's assured end a broker takes no produce.
          leased: (topic, partition, leaderEpoch) => node.mayLead(topic, partition, leaderEpoch),
          coolingUntil: () => node.coolingUntil(),
          linkSecurity: { tls: config.replication.tls, sasl: config.replication.sasl },
          nodeId: config.nodeId,
          topics,
          producerStates: deps.producerStates,
          replicaStates,
          flushMode: config.log.flush.mode,
          logger: log,
        });
        deps.replicaManager = replicaManager;
        deps.cluster = node;
        // A promote measures its recovery point from the in-sync replicas this broker holds
        // (a follower out of the ISR may lack what its leader acknowledged).
        const replicas = replicaManager;
        disaster.holdsReplica = (topic, partition) => replicas.replica(topic, partition)?.state.isr.includes(config.nodeId) === true;
        // Failback on a cluster copies through the leaders and cuts region-wide (dr/failback-cluster.ts).
        disaster.clusterOps = {
          truncatePartition: (topic, partition, offset, o) => node.truncatePartition(topic, partition, offset, o),
          createTopic: async (name, partitions, replicationFactor, configs) => {
            await node.createTopic(name, { partitions, replicationFactor, configs });
          },
          leaderOf: (topic, partition) => {
            const s = node.source.versioned(topic, partition)?.value;
            const at = s === undefined || s.leader < 0 ? undefined : node.members.members().get(s.leader)?.kafka;
            return s === undefined || at === undefined ? undefined : { nodeId: s.leader, leaderEpoch: s.leaderEpoch, host: at.host, port: at.port };
          },
          replicationFactor: (topic) => node.source.versioned(topic, 0)?.value.replicas.length,
          security: { tls: config.replication.tls, sasl: config.replication.sasl },
          missingAccess: (wants) => {
            const principal = linkPrincipal(config.replication);
            if (principal === null) return null;
            const authorizer = security.authorizer;
            // Its connections come from this broker's own address (ACLs may name hosts).
            const host = node.members.members().get(config.nodeId)?.kafka.host ?? '127.0.0.1';
            const missing = authorizer === null ? [] : wants.filter((w) => !authorizer.authorize(principal, host, w.operation === 'Read' ? AclOperation.Read : AclOperation.Write, { type: ResourceType.Topic, name: w.topic }).allowed);
            return { principal, missing };
          },
        };
        // Replicated appends from other regions go through each partition's leader here
        // (answered within half the senders' request timeout); a missing topic is created
        // region-wide through the controller.
        deps.replication.attachCluster({
          leadership: targetLeadership(replicaManager, r.requestTimeoutMs / 2),
          createTopic: (name, partitions) => node.createTopic(name, { partitions, replicationFactor: null, configs: {} }),
          // A sender's topic grown with CreatePartitions grows here region-wide too.
          growTopic: async (name, partitions) => {
            try {
              await createClusterPartitions(node, name, partitions, null, { validateOnly: false, timeoutMs: 30_000 });
            } catch (err) {
              // Grown already (another leader's handshake, or an operator): wait until it is open here.
              if (!(err instanceof MeridianError && err.code === ErrorCode.InvalidPartitions)) throw err;
            }
            return node.topicSync.waitReady(name, 30_000);
          },
        });
      }
      let kafka: KafkaServer;
      try {
        kafka = new KafkaServer(
          {
            listeners,
            maxFrameBytes: config.kafka.maxFrameBytes,
            queuedMaxRequestBytes: config.kafka.queuedMaxRequestBytes,
            connectionsMaxIdleMs: config.kafka.connectionsMaxIdleMs,
            requestReceiveTimeoutMs: config.kafka.requestReceiveTimeoutMs,
            maxConnections: config.kafka.maxConnections,
            maxConnectionsPerIp: config.kafka.maxConnectionsPerIp,
            maxConnectionCreationRate: config.kafka.maxConnectionCreationRate,
            logger: log,
          },
          createKafkaHandler(deps),
        );
      } catch (err) {
        // A certificate or key that cannot be read or used: name the listener's field.
        throw kafkaServerError(err, config);
      }
      listener = kafka;
      const port = await kafka.listen();
      // With port 0 the real ports are known only now; no client can have connected before.
      const bound = kafka.ports;
      const advertised = new Map(listeners.map((l) => [l.name, { host: l.advertisedHost ?? l.host, port: l.advertisedPort ?? bound.get(l.name)! }]));
      deps.listenerEndpoints = advertised;
      if (cluster !== undefined) {
        // Registered at the first listener's advertised address (what follower fetchers
        // reach), with every listener's for clients' Metadata; the admin address when its
        // port is fixed.
        const first = advertised.values().next().value!;
        const adminPort = config.admin.port;
        await cluster.join({ nodeId: config.nodeId, kafka: first, listeners: Object.fromEntries(advertised), admin: adminPort !== null && adminPort !== 0 ? { host: config.admin.host, port: adminPort } : null, rack: null, startedAt: Date.now() });
        // A lost or stale lease suspends every leadership until the states are read afresh.
        if (replicaManager !== undefined) cluster.attachLeadership(replicaManager);
        // etcd down for the whole region: leaders ride through while every in-sync peer is out too.
        const leaders = replicaManager;
        if (leaders !== undefined) cluster.enableRideThrough(() => leaders.rideThroughQuestion(), { tls: config.replication.tls, sasl: config.replication.sasl });
        // Group coordination follows the leadership of the offsets partitions.
        if (replicaManager !== undefined) groupOffsets?.attach(replicaManager, offsetsTopicRegion(cluster, () => config.cluster.offsetsTopicPartitions, config.cluster.defaultReplicationFactor), groups, deps.producerStates);
      }
      // Followers fetch from the leaders' listeners (retrying until they are up).
      replicaManager?.start();
      // Tiering on a cluster: only each partition's leader offloads, behind the manifest
      // fence in etcd; every broker follows the fenced manifest (tiered/cluster-tiering.ts).
      if (tiered !== undefined && cluster !== undefined && replicaManager !== undefined) {
        await tiered.attachCluster({ fence: new EtcdManifestFence(cluster.region), leadership: replicaManager, nodeId: config.nodeId });
      }
      // Senders start once this region can answer its peers' handshakes too.
      replicator = new Replicator({
        region: config.region,
        regions: regions.filter((x) => x.name !== config.region),
        policies: policies.policies,
        topics,
        tiered: tiered?.remote,
        worker: { maxRequestBytes: r.maxRequestBytes, pipelineDepth: r.pipelineDepth, retryInitialMs: r.retry.initialMs, retryMaxMs: r.retry.maxMs },
        maxInFlightBytes: r.maxInFlightBytes,
        concurrency: r.concurrency,
        maxLinkRequestBytes: r.maxLinkRequestBytes,
        requestTimeoutMs: r.requestTimeoutMs,
        linkSecurity: { tls: r.tls, sasl: r.sasl },
        logger: log,
        dr: disaster,
        // A region cluster: each partition's workers run on its leader here only.
        ...(replicaManager !== undefined ? { leadership: replicatorLeadership(replicaManager) } : {}),
      });
      replicatorRef = replicator;
      const rep = replicator;
      // A region cluster: a policy change made through any broker reaches this one's replicator.
      cluster?.policies?.watch(rep);
      // A promote or failback changes who sends a DR topic: the links follow at once.
      disaster.state.onChange(() => rep.reconcile());
      // A deleted topic takes its DR role, peers' commits and index with it.
      topics.onTopicChange((event) => {
        if (event === 'deleted') disaster.forgetDeletedTopics();
      });
      guards.useLocal('replication', (topic, partition, plog, seg) => rep.mayDeleteLocal(topic, partition, plog, seg));
      guards.useRemote('replication', (topic, partition, seg) => rep.mayDeleteRemote(topic, partition, seg));
      const broker = new Broker(config, topics, groups, kafka, lock, log, guards, { replicator, states: replicaStates, target: deps.replication, policies, dr: disaster }, { clusterId: deps.clusterId, startedAt: started }, tiered, deps.requestObservers);
      broker.#advertised = advertised;
      broker.security = security;
      broker.fetchSessions = deps.fetchSessions!;
      broker.replicaManager = replicaManager;
      broker.cluster = cluster;
      if (listeners[0]!.advertisedPort === null) deps.advertisedPort = port;
      const adminPort = config.admin.port;
      if (adminPort !== null) {
        admin = await AdminServer.start(broker, { ...config.admin, port: adminPort }, log);
        broker.#admin = admin;
      }
      const partitions = topics.listTopics().reduce((n, t) => n + t.partitions, 0);
      log.info(
        { dataDir, kafka: config.kafka.listeners.length === 0 ? `${config.kafka.host}:${port}` : listeners.map((l) => `${l.name}://${l.host}:${bound.get(l.name)}`).join(','), ...(admin ? { admin: `${admin.scheme}://${config.admin.host}:${admin.port}` } : {}), topics: topics.listTopics().length, partitions, recoveryMs: Date.now() - started, flushMode: config.log.flush.mode },
        'broker started',
      );
      return broker;
    } catch (err) {
      await admin?.close();
      await replicator?.close();
      await replicaManager?.close();
      await cluster?.close();
      // A failure after the listener opened (policies, the admin port) must not leave the Kafka port bound.
      await listener?.close();
      await dr?.close();
      await replicaStates.close();
      await groups?.close();
      await tiered?.close();
      retention?.close();
      await topics?.close();
      lock.release();
      throw err;
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.#admin?.close();
        await this.replicator.close();
        await this.replicaManager?.close();
        // Resigns the controllership, then revokes the lease: the region sees it leave at once.
        await this.cluster?.close();
        await this.kafka.close();
        await this.dr.close();
        await this.replicaStates.close();
        await this.groups.close();
        await this.tiered?.close();
        this.#retention.close();
        await this.topics.close();
      } finally {
        this.#lock.release();
        this.log.info('broker stopped');
      }
    })();
    return this.#closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
