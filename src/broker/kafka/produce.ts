/**
 * Produce and InitProducerId.
 *
 * acks: 0 → appended, no response at all; 1 → answered once written (survives a process
 * crash); -1 → answered once fdatasync'd in flush mode `fsync` (group commit), or once
 * written in mode `interval`. Partitions of one request are appended concurrently, so they
 * share the log's group commit.
 *
 * Authorization (authorize.ts), as Kafka's KafkaApis: Produce needs WRITE on each topic (a
 * denied topic's partitions get TOPIC_AUTHORIZATION_FAILED, the others are appended) and,
 * with a transactional id, WRITE on it; InitProducerId of an idempotent producer needs
 * IDEMPOTENT_WRITE on the cluster or WRITE on some topic (KIP-679), else
 * CLUSTER_AUTHORIZATION_FAILED.
 */
import { ErrorCode, MeridianError } from '../../errors.js';
import { isInternalTopic } from '../../cluster/group-offsets-topic.js';
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import { kafkaCode, toKafkaError } from '../../protocol/kafka/error-mapping.js';
import type { InitProducerIdRequest, InitProducerIdResponse } from '../../protocol/kafka/messages/init-producer-id.js';
import type { ProduceRequest, ProduceResponse } from '../../protocol/kafka/messages/produce.js';
import { beginProducePartition, type ProduceOutcome } from '../produce-partition.js';
import { logTransactionalRefusal, TRANSACTIONS_UNSUPPORTED_CODE, transactionsUnsupportedMessage } from './transactions-unsupported.js';
import type { RequestContext } from '../../protocol/kafka/connection.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';
import { AclOperation, deniedTopics, denial, enforcing, may, mayOnAny, ResourceType, UNKNOWN_REQUESTER, type Requester } from './authorize.js';

/**
 * Produce is served from v3 (RecordBatch) but *advertised* from v0: librdkafka 2.0.2 uses
 * gzip, snappy and lz4 only if the broker's Produce range includes v0
 * (rdkafka_msgset_writer.c); otherwise it silently sends those batches uncompressed. Kafka
 * 4.0 hit the same (KAFKA-18659) and, like it, Meridian answers v0-v2 with
 * UNSUPPORTED_VERSION: no client that speaks RecordBatch sends them.
 *
 * Produce v8+ carries record_errors and an error message for a refused batch; v9+ is
 * flexible; the v10+ tagged currentLeader and nodeEndpoints (KIP-951, leader moves) stay
 * at their defaults: this broker leads every partition it has.
 */
export const PRODUCE_APIS: readonly KafkaApiEntry[] = [
  { key: ApiKey.Produce, versions: [3, 11], advertised: [0, 11], handle: (d, c, req) => handleProduce(d, c, req) },
  { key: ApiKey.InitProducerId, versions: [0, 5], handle: (d, c, req) => handleInitProducerId(d, req, c.header.clientId, c) },
];

export async function handleProduce(deps: KafkaApiDeps, ctx: RequestContext, req: ProduceRequest): Promise<ProduceResponse | null> {
  if (req.transactionalId !== null) {
    if (!may(deps, ctx, AclOperation.Write, ResourceType.TransactionalId, req.transactionalId)) {
      return everyPartition(req, kafkaCode('TRANSACTIONAL_ID_AUTHORIZATION_FAILED'), denial(ctx, AclOperation.Write, ResourceType.TransactionalId, req.transactionalId).message);
    }
    // Transactions are not offered (no transactional InitProducerId is ever granted).
    logTransactionalRefusal(deps.logger, 'Produce', ctx.header.clientId, req.transactionalId);
    return everyPartition(req, TRANSACTIONS_UNSUPPORTED_CODE, transactionsUnsupportedMessage(req.transactionalId));
  }
  const sync = req.acks === -1 && deps.config.log.flush.mode === 'fsync';
  const sec = enforcing(deps);
  const denied = sec === null ? null : deniedTopics(sec, ctx, AclOperation.Write, req.topicData.map((t) => t.name));
  // Phase 1: every partition's batches get their offsets (in request order per partition).
  const begun = await Promise.all(
    req.topicData.map(async (t) => ({
      name: t.name,
      partitions: await Promise.all(
        t.partitionData.map(async (p) => {
          if (denied?.has(t.name)) return { index: p.index, done: Promise.resolve(unauthorizedTopic(ctx, t.name)) };
          // Internal topics are written by the broker only (Kafka refuses produce to __consumer_offsets alike).
          if (isInternalTopic(t.name)) return { index: p.index, done: Promise.resolve(refusedOutcome(new MeridianError(ErrorCode.InvalidTopic, `${t.name} is an internal topic: clients cannot produce to it`))) };
          const log = deps.topics.partition(t.name, p.index);
          if (log === undefined) return { index: p.index, done: Promise.resolve(unknownPartition(t.name, p.index)) };
          const logAppendTime = deps.topics.getTopic(t.name)?.config.timestampType === 'LogAppendTime';
          // A DR copy refuses producers (src/dr/): checked right before the append, after every await.
          const mayAppend = deps.dr === undefined ? undefined : () => deps.dr!.checkWritable(t.name);
          const rm = deps.replicaManager;
          if (rm === undefined) return { index: p.index, done: (await beginProducePartition(log, deps.producerStates, p.records, { sync, logAppendTime, mayAppend })).done };
          // A region cluster (src/cluster/replica-manager.ts): only the leader appends, under
          // its epoch; acks=all also waits for the in-sync replicas. Checked before any work
          // (a follower's idempotence state is stale) and again right before the append.
          const refused = rm.checkProduce(t.name, p.index, req.acks);
          if (refused !== null) return { index: p.index, done: Promise.resolve(refusedOutcome(refused)) };
          const clusterMayAppend = () => mayAppend?.() ?? rm.checkProduce(t.name, p.index, req.acks);
          const opts = {
            sync,
            logAppendTime,
            mayAppend: clusterMayAppend,
            leaderEpoch: () => rm.leaderEpochFor(t.name, p.index),
            replicated: req.acks === -1 ? (last: bigint) => rm.awaitReplicated(t.name, p.index, last, req.timeoutMs) : undefined,
            // Still leased and leading at the epoch written under, right before a success.
            mayAnswer: (epoch: number | undefined) => rm.checkAnswer(t.name, p.index, epoch),
          };
          return { index: p.index, done: (await beginProducePartition(log, deps.producerStates, p.records, opts)).done };
        }),
      ),
    })),
  );
  // The connection may now handle the next request: its appends land after these.
  ctx.release();
  // The batches are views of the request's frame, held by the logs' queues until written
  // (or refused); nothing refers to the frame after that, so its memory may serve the next.
  ctx.freeFrameAfter(Promise.allSettled(begun.flatMap((t) => t.partitions.map((p) => p.done))));
  // Phase 2: wait for the durability the acks asked for.
  const responses = await Promise.all(
    begun.map(async (t) => ({
      name: t.name,
      partitionResponses: await Promise.all(
        t.partitions.map(async ({ index, done }) => {
          const r = await done;
          if (r.errorCode !== 0) deps.logger.debug({ topic: t.name, partition: index, errorCode: r.errorCode, message: r.errorMessage }, 'produce rejected');
          return {
            index,
            errorCode: r.errorCode,
            baseOffset: r.baseOffset,
            logAppendTimeMs: r.logAppendTimeMs,
            logStartOffset: r.logStartOffset,
            recordErrors: r.recordErrors,
            errorMessage: r.errorMessage,
            currentLeader: { leaderId: -1, leaderEpoch: -1 },
          };
        }),
      ),
    })),
  );
  if (req.acks === 0) return null;
  return { responses, throttleTimeMs: 0, nodeEndpoints: [] };
}

function refusedOutcome(err: unknown): ProduceOutcome {
  const e = toKafkaError(err);
  return { errorCode: e.code, errorMessage: e.message, baseOffset: -1n, logStartOffset: -1n, logAppendTimeMs: -1n, recordErrors: [] };
}

function unknownPartition(topic: string, index: number): ProduceOutcome {
  return { errorCode: kafkaCode('UNKNOWN_TOPIC_OR_PARTITION'), errorMessage: `unknown topic or partition ${topic}-${index}`, baseOffset: -1n, logStartOffset: -1n, logAppendTimeMs: -1n, recordErrors: [] };
}

/** The same error for every partition of the request. */
function everyPartition(req: ProduceRequest, errorCode: number, message: string): ProduceResponse {
  return {
    responses: req.topicData.map((t) => ({ name: t.name, partitionResponses: t.partitionData.map((p) => partitionError(p.index, errorCode, message)) })),
    throttleTimeMs: 0,
    nodeEndpoints: [],
  };
}

function unauthorizedTopic(who: Requester, topic: string): ProduceOutcome {
  return { errorCode: kafkaCode('TOPIC_AUTHORIZATION_FAILED'), errorMessage: denial(who, AclOperation.Write, ResourceType.Topic, topic).message, baseOffset: -1n, logStartOffset: -1n, logAppendTimeMs: -1n, recordErrors: [] };
}

function partitionError(index: number, errorCode: number, errorMessage: string): ProduceResponse['responses'][number]['partitionResponses'][number] {
  return { index, errorCode, baseOffset: -1n, logAppendTimeMs: -1n, logStartOffset: -1n, recordErrors: [], errorMessage, currentLeader: { leaderId: -1, leaderEpoch: -1 } };
}

/**
 * InitProducerId for idempotent producers. From v3 a producer may send its current id and
 * epoch to have the epoch bumped (KIP-360, after an UNKNOWN_PRODUCER_ID or a timed-out
 * batch); for a producer without a transactional id Kafka's TransactionCoordinator accepts
 * that blindly and hands out a fresh producer id with epoch 0, which is what this does. A
 * pair with exactly one of the two set is INVALID_REQUEST, as Kafka's KafkaApis answers.
 */
export async function handleInitProducerId(deps: KafkaApiDeps, req: InitProducerIdRequest, clientId: string | null = null, who: Requester = UNKNOWN_REQUESTER): Promise<InitProducerIdResponse> {
  const refused = (errorCode: number): InitProducerIdResponse => ({ throttleTimeMs: 0, errorCode, producerId: -1n, producerEpoch: -1 });
  if (req.transactionalId !== null && !may(deps, who, AclOperation.Write, ResourceType.TransactionalId, req.transactionalId)) {
    return refused(kafkaCode('TRANSACTIONAL_ID_AUTHORIZATION_FAILED'));
  }
  const sec = enforcing(deps);
  if (req.transactionalId === null && sec !== null && !mayOnAny(sec, who, AclOperation.Write, ResourceType.Topic) && !sec.authorizeCluster(who, AclOperation.IdempotentWrite)) {
    return refused(kafkaCode('CLUSTER_AUTHORIZATION_FAILED'));
  }
  if (req.transactionalId !== null) {
    logTransactionalRefusal(deps.logger, 'InitProducerId', clientId, req.transactionalId);
    return refused(TRANSACTIONS_UNSUPPORTED_CODE);
  }
  if ((req.producerId === -1n) !== (req.producerEpoch === -1)) {
    deps.logger.debug({ producerId: String(req.producerId), producerEpoch: req.producerEpoch }, 'InitProducerId: producerId and producerEpoch must be both -1 or both set');
    return refused(kafkaCode('INVALID_REQUEST'));
  }
  try {
    return { throttleTimeMs: 0, errorCode: 0, producerId: await deps.producerIds.next(), producerEpoch: 0 };
  } catch (err) {
    // A cluster's counter lives in etcd: while etcd cannot be reached, a retriable error.
    deps.logger.warn({ err }, 'InitProducerId: no producer id could be allocated');
    return refused(toKafkaError(err).code);
  }
}
