/**
 * OffsetForLeaderEpoch (KIP-101, KIP-320): where an epoch ended, so that a consumer (or
 * follower) can tell whether its position survived a leader change (librdkafka asks after a
 * Metadata leader-epoch change and after OFFSET_OUT_OF_RANGE-free resets).
 *
 * Meridian has one leader per partition and never changes it, so every partition has one
 * epoch, 0, from its start, and answers as a Kafka leader whose epoch cache holds only that:
 * - epoch 0 ends at the high watermark: the consumer's position is valid up to it;
 * - so does any later epoch: stored batches keep the partitionLeaderEpoch their producer
 *   (or a remote region) wrote, so a consumer may have seen any number there, yet every
 *   offset of the log belongs to this leader's one epoch. Kafka's answer for an epoch past
 *   its latest, UNDEFINED_EPOCH, would make librdkafka reset the position as a truncation
 *   (rd_kafka_toppar_handle_OffsetForLeaderEpoch), skipping or re-reading records;
 * - -1 ("no epoch") is UNDEFINED_EPOCH (-1) and UNDEFINED_EPOCH_OFFSET (-1), as Kafka
 *   answers a bootstrapping follower;
 * - `currentLeaderEpoch` (v2+) fences as Kafka does: above 0 is UNKNOWN_LEADER_EPOCH (the
 *   client saw a newer leader than this one), -1 and 0 pass.
 * A topic the requester may not DESCRIBE is TOPIC_AUTHORIZATION_FAILED (authorize.ts).
 *
 * A region cluster (src/cluster) has real leader epochs: its leaders stamp them and every
 * partition keeps Kafka's cache (storage/leader-epoch-cache.ts). There a partition's answer
 * is `answerFromCache`, as Kafka's leader answers; the handler takes the per-partition answer
 * as a parameter so that the cluster layer can pass it (not wired here).
 */
import { kafkaCode } from '../../protocol/kafka/error-mapping.js';
import type { OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse } from '../../protocol/kafka/messages/offset-for-leader-epoch.js';
import type { LeaderEpochCache } from '../../storage/leader-epoch-cache.js';
import type { PartitionLog } from '../../storage/partition-log.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import { AclOperation, deniedTopics, enforcing, UNKNOWN_REQUESTER, type Requester } from './authorize.js';

const LEADER_EPOCH = 0;
const UNDEFINED_EPOCH = -1;

/** One partition's answer, without its partition index. */
export interface EpochAnswer {
  errorCode: number;
  leaderEpoch: number;
  endOffset: bigint;
}

/** What one partition of the request asks. */
export interface EpochQuestion {
  topic: string;
  partition: number;
  /** The epoch whose end the requester wants (`leader_epoch`). */
  leaderEpoch: number;
  /** The leader epoch the requester believes current (v2+; -1: none, no fencing). */
  currentLeaderEpoch: number;
}

/** Answers one partition the requester may describe and this broker holds. */
export type PartitionEpochAnswer = (log: PartitionLog, q: EpochQuestion) => EpochAnswer;

const undefinedAnswer = (errorCode: number): EpochAnswer => ({ errorCode, leaderEpoch: UNDEFINED_EPOCH, endOffset: -1n });

/** The single-broker answer (the file header): one epoch, 0, ending at the high watermark. */
export function singleBrokerAnswer(log: Pick<PartitionLog, 'highWatermark'>, q: Pick<EpochQuestion, 'leaderEpoch' | 'currentLeaderEpoch'>): EpochAnswer {
  if (q.currentLeaderEpoch > LEADER_EPOCH) return undefinedAnswer(kafkaCode('UNKNOWN_LEADER_EPOCH'));
  if (q.leaderEpoch < LEADER_EPOCH) return undefinedAnswer(0);
  return { errorCode: 0, leaderEpoch: LEADER_EPOCH, endOffset: log.highWatermark };
}

/**
 * A cluster leader's answer (Kafka's Partition.lastOffsetForLeaderEpoch), the leader being in
 * epoch `leaderEpoch`: `currentLeaderEpoch` older than it is FENCED_LEADER_EPOCH, newer is
 * UNKNOWN_LEADER_EPOCH (-1 is not checked); otherwise the cache's `endOffsetFor` with the log
 * end (`logEndOffset`). A leader whose own epoch has no entry yet (elected, nothing appended
 * since) answers as Kafka's, which records the epoch at election: as if the cache ended with
 * (`leaderEpoch`, log end), so its epoch, and the one before, end at the log end.
 */
export function answerFromCache(
  log: { readonly leaderEpochs: Pick<LeaderEpochCache, 'latest' | 'endOffsetFor'>; readonly logEndOffset: bigint },
  requestedEpoch: number,
  currentLeaderEpoch: number,
  leaderEpoch: number,
): EpochAnswer {
  if (currentLeaderEpoch >= 0 && currentLeaderEpoch < leaderEpoch) return undefinedAnswer(kafkaCode('FENCED_LEADER_EPOCH'));
  if (currentLeaderEpoch > leaderEpoch) return undefinedAnswer(kafkaCode('UNKNOWN_LEADER_EPOCH'));
  const end = log.logEndOffset;
  const latest = log.leaderEpochs.latest();
  const ownEpochUnrecorded = latest === undefined || leaderEpoch > latest.epoch;
  if (ownEpochUnrecorded && requestedEpoch >= 0 && requestedEpoch <= leaderEpoch && (latest === undefined || requestedEpoch >= latest.epoch)) {
    // The epoch asked for is the leader's own, or lies between the cache's latest and it.
    const epoch = requestedEpoch === leaderEpoch ? leaderEpoch : (latest?.epoch ?? requestedEpoch);
    return { errorCode: 0, leaderEpoch: epoch, endOffset: end };
  }
  const { epoch, endOffset } = log.leaderEpochs.endOffsetFor(requestedEpoch, end);
  return { errorCode: 0, leaderEpoch: epoch, endOffset };
}

export function handleOffsetForLeaderEpoch(
  deps: KafkaApiDeps,
  req: OffsetForLeaderEpochRequest,
  who: Requester = UNKNOWN_REQUESTER,
  answer: PartitionEpochAnswer = singleBrokerAnswer,
): OffsetForLeaderEpochResponse {
  const sec = enforcing(deps);
  const denied = sec === null ? null : deniedTopics(sec, who, AclOperation.Describe, req.topics.map((t) => t.topic));
  return {
    throttleTimeMs: 0,
    topics: req.topics.map((t) => ({
      topic: t.topic,
      partitions: t.partitions.map((p) => {
        if (denied?.has(t.topic)) return { partition: p.partition, ...undefinedAnswer(kafkaCode('TOPIC_AUTHORIZATION_FAILED')) };
        const log = deps.topics.partition(t.topic, p.partition);
        if (log === undefined) return { partition: p.partition, ...undefinedAnswer(kafkaCode('UNKNOWN_TOPIC_OR_PARTITION')) };
        return { partition: p.partition, ...answer(log, { topic: t.topic, partition: p.partition, leaderEpoch: p.leaderEpoch, currentLeaderEpoch: p.currentLeaderEpoch }) };
      }),
    })),
  };
}
