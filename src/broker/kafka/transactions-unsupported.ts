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
import type { Logger } from 'pino';
import { kafkaCode } from '../../protocol/kafka/error-mapping.js';
import { ThrottledLog } from '../../throttled-log.js';

export const TRANSACTIONS_UNSUPPORTED_CODE = kafkaCode('UNSUPPORTED_VERSION');

export function transactionsUnsupportedMessage(transactionalId: string): string {
  return `transactions are not supported by Meridian (transactional.id '${transactionalId}'); use an idempotent producer without a transactional.id`;
}

/** One throttled log per broker (keyed by its logger): a retrying client logs a line per 10 s, with a count. */
const refusalLogs = new WeakMap<Logger, ThrottledLog>();

/**
 * Logs that a transactional producer was refused, naming the client and its
 * transactional.id, so an operator sees why an application cannot start without asking
 * its owners (librdkafka keeps retrying quietly until its own timeout).
 */
export function logTransactionalRefusal(logger: Logger, api: string, clientId: string | null, transactionalId: string): void {
  let log = refusalLogs.get(logger);
  if (log === undefined) refusalLogs.set(logger, (log = new ThrottledLog(logger)));
  log.warn('transactional-producer', { api, clientId, transactionalId }, 'a transactional producer was refused: transactions are not supported; the client must drop transactional.id');
}
