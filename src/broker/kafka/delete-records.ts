/**
 * DeleteRecords: moves partitions' log start offsets forward.
 */
import type { KafkaApiEntry } from './kafka-api-entry.js';

export const DELETE_RECORDS_APIS: readonly KafkaApiEntry[] = [];
