/**
 * Topic configs over Kafka: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
 */
import type { KafkaApiEntry } from './kafka-api-entry.js';

export const CONFIG_APIS: readonly KafkaApiEntry[] = [];
