/**
 * The cluster and its storage over Kafka: DescribeCluster and DescribeLogDirs.
 */
import type { KafkaApiEntry } from './kafka-api-entry.js';

export const CLUSTER_APIS: readonly KafkaApiEntry[] = [];
