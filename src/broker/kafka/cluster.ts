/**
 * The cluster and its storage over Kafka: DescribeCluster and DescribeLogDirs.
 *
 * One broker per region answers as the whole cluster (as Metadata does, topics.ts): it is
 * the one broker and the controller. DescribeLogDirs reports one log directory, the data
 * directory's `logs/`, with each partition's local bytes and (v4) the volume's total and
 * usable bytes. Kafka's schema has no field for bytes in an object store, so tiered
 * partitions are reported as Redpanda does: a second "log directory" named by the store's URL
 * (`file://…`, `s3://…`, `gs://…`, `azure://…`) holding each tiered partition's remote
 * bytes, present only while some partition has data there. Its volume sizes are -1 (unknown).
 *
 * Authorization (authorize.ts), as Kafka's: DescribeCluster answers everyone (as Metadata
 * lists the brokers to everyone) and reports the cluster operations the requester may do
 * when asked; DescribeLogDirs needs DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED
 * from v3, which has the field; nothing listed before).
 */
import fs from 'node:fs';
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import { kafkaCode } from '../../protocol/kafka/error-mapping.js';
import type { DescribeClusterRequest, DescribeClusterResponse } from '../../protocol/kafka/messages/describe-cluster.js';
import type {
  DescribeLogDirsRequest,
  DescribeLogDirsResponse,
  DescribeLogDirsResponseDescribeLogDirsResult,
  DescribeLogDirsResponseDescribeLogDirsTopic,
} from '../../protocol/kafka/messages/describe-log-dirs.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import { logDirOf } from './broker-config.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';
import { controllerIdOf, metadataBrokers } from './topics.js';
import { AclOperation, clusterOperations, mayCluster, OPERATIONS_NOT_PROVIDED, UNKNOWN_REQUESTER, type Requester } from './authorize.js';

export const CLUSTER_APIS: readonly KafkaApiEntry[] = [
  { key: ApiKey.DescribeCluster, versions: [0, 1], handle: (d, c, req, v) => handleDescribeCluster(d, req, v, c.listener, c) },
  { key: ApiKey.DescribeLogDirs, versions: [0, 4], handle: (d, c, req, v) => handleDescribeLogDirs(d, req, v, c) },
];

/** KIP-919's endpoint types: a broker answers for brokers only. */
const EndpointType = { Broker: 1, Controller: 2 } as const;

/** `listener`: the one the request came in on, whose endpoint is advertised (Kafka's behaviour). */
export function handleDescribeCluster(deps: KafkaApiDeps, req: DescribeClusterRequest, version: number, listener?: string, who: Requester = UNKNOWN_REQUESTER): DescribeClusterResponse {
  const out: DescribeClusterResponse = {
    throttleTimeMs: 0,
    errorCode: 0,
    errorMessage: null,
    endpointType: EndpointType.Broker,
    clusterId: deps.clusterId,
    // A region cluster: every live broker and the elected controller (topics.ts).
    controllerId: controllerIdOf(deps),
    brokers: metadataBrokers(deps, listener).map((b) => ({ brokerId: b.nodeId, host: b.host, port: b.port, rack: b.rack })),
    clusterAuthorizedOperations: req.includeClusterAuthorizedOperations ? clusterOperations(deps, who) : OPERATIONS_NOT_PROVIDED,
  };
  // As Kafka's broker: an unknown type is UNSUPPORTED_ENDPOINT_TYPE, the controllers'
  // MISMATCHED_ENDPOINT_TYPE (v0 cannot carry either code: INVALID_REQUEST), and no brokers.
  if (req.endpointType !== EndpointType.Broker) {
    const known = req.endpointType === EndpointType.Controller;
    const error = version === 0 ? 'INVALID_REQUEST' : known ? 'MISMATCHED_ENDPOINT_TYPE' : 'UNSUPPORTED_ENDPOINT_TYPE';
    return {
      ...out,
      errorCode: kafkaCode(error),
      errorMessage: known
        ? 'this is a broker endpoint; Meridian has no separate controller endpoints (every broker is its region\'s controller): ask for endpoint type 1 (brokers)'
        : `unsupported endpoint type ${req.endpointType}: use 1 (brokers)`,
      clusterId: '',
      controllerId: -1,
      brokers: [],
    };
  }
  return out;
}

/** The volume holding `dir`, in bytes: [total, usable]; -1 where it cannot be read. */
async function volumeOf(deps: KafkaApiDeps, dir: string): Promise<[bigint, bigint]> {
  try {
    const s = await fs.promises.statfs(dir);
    return [BigInt(s.blocks) * BigInt(s.bsize), BigInt(s.bavail) * BigInt(s.bsize)];
  } catch (err) {
    deps.logger.warn({ err, dir }, 'DescribeLogDirs: statfs of the log directory failed; reporting its volume sizes as -1');
    return [-1n, -1n];
  }
}

/** DescribeLogDirs v3 added the top-level error code. */
const LOG_DIRS_ERROR_FROM = 3;

export async function handleDescribeLogDirs(deps: KafkaApiDeps, req: DescribeLogDirsRequest, version = LOG_DIRS_ERROR_FROM, who: Requester = UNKNOWN_REQUESTER): Promise<DescribeLogDirsResponse> {
  if (!mayCluster(deps, who, AclOperation.Describe)) {
    return { throttleTimeMs: 0, errorCode: version >= LOG_DIRS_ERROR_FROM ? kafkaCode('CLUSTER_AUTHORIZATION_FAILED') : 0, results: [] };
  }
  const wanted: Array<{ name: string; partitions: number[] }> =
    req.topics === null
      ? deps.topics.listTopics().map((t) => ({ name: t.name, partitions: Array.from({ length: t.partitions }, (_, p) => p) }))
      : req.topics.map((t) => ({ name: t.topic, partitions: t.partitions }));
  const remoteBytes = new Map<string, number>();
  for (const s of deps.tiered?.status() ?? []) if (s.remoteSegments > 0) remoteBytes.set(`${s.topic}/${s.partition}`, s.remoteBytes);

  const local: DescribeLogDirsResponseDescribeLogDirsTopic[] = [];
  const remote: DescribeLogDirsResponseDescribeLogDirsTopic[] = [];
  for (const t of wanted) {
    const localParts: DescribeLogDirsResponseDescribeLogDirsTopic['partitions'] = [];
    const remoteParts: DescribeLogDirsResponseDescribeLogDirsTopic['partitions'] = [];
    for (const p of new Set(t.partitions)) {
      // Partitions this broker does not have are left out, as Kafka does.
      const log = deps.topics.partition(t.name, p);
      if (log === undefined) continue;
      localParts.push({ partitionIndex: p, partitionSize: BigInt(log.sizeBytes), offsetLag: 0n, isFutureKey: false });
      const bytes = remoteBytes.get(`${t.name}/${p}`);
      if (bytes !== undefined) remoteParts.push({ partitionIndex: p, partitionSize: BigInt(bytes), offsetLag: 0n, isFutureKey: false });
    }
    if (localParts.length > 0) local.push({ name: t.name, partitions: localParts });
    if (remoteParts.length > 0) remote.push({ name: t.name, partitions: remoteParts });
  }

  const logDir = logDirOf(deps.config);
  const [totalBytes, usableBytes] = await volumeOf(deps, logDir);
  const results: DescribeLogDirsResponseDescribeLogDirsResult[] = [{ errorCode: 0, logDir, topics: local, totalBytes, usableBytes }];
  if (deps.tiered !== undefined && remote.length > 0) results.push({ errorCode: 0, logDir: deps.tiered.store.name, topics: remote, totalBytes: -1n, usableBytes: -1n });
  return { throttleTimeMs: 0, errorCode: 0, results };
}
