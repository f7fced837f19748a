/**
 * Transactions are not implemented, and every path a transactional producer takes says so
 * with one error: UNSUPPORTED_VERSION (no version of the transactional APIs is served) and,
 * where the response has a message field, the sentence below. Never an authorization error:
 * librdkafka and KafkaJS report TRANSACTIONAL_ID_AUTHORIZATION_FAILED as a missing ACL,
 * which sends users to look for one.
 *
 * The paths, in the order a client walks them:
 * - FindCoordinator with keyType 1 (transaction) answers the error and the message for that
 *   key, at every version (find-coordinator.ts). Kafka's Java producer (and clients that
 *   follow it) fails `initTransactions()` at once with "Could not find a coordinator with
 *   type TRANSACTION ... due to unexpected error: <message>". librdkafka treats only the two
 *   authorization codes as fatal there, so `init_transactions()` keeps asking until its
 *   timeout; KafkaJS reports "Failed to find group coordinator" (it drops broker messages).
 * - InitProducerId with a transactionalId (produce.ts) answers the code (no message field).
 * - Produce with a transactionalId answers it per partition, with the message from v8.
 * - The transaction APIs themselves (AddPartitionsToTxn, EndTxn, ...) are not served, so
 *   ApiVersions does not announce them.
 * Redpanda answered FindCoordinator for transactions the same way while its transactions
 * were switched off.
 */
import { kafkaCode } from '../../protocol/kafka/error-mapping.js';

export const TRANSACTIONS_UNSUPPORTED_CODE = kafkaCode('UNSUPPORTED_VERSION');

export function transactionsUnsupportedMessage(transactionalId: string): string {
  return `transactions are not supported by Meridian (transactional.id '${transactionalId}'); use an idempotent producer without a transactional.id`;
}
