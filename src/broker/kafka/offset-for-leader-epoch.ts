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
 */
import { kafkaCode } from '../../protocol/kafka/error-mapping.js';
import type { OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse } from '../../protocol/kafka/messages/offset-for-leader-epoch.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import { AclOperation, deniedTopics, enforcing, UNKNOWN_REQUESTER, type Requester } from './authorize.js';

const LEADER_EPOCH = 0;
const UNDEFINED_EPOCH = -1;

export function handleOffsetForLeaderEpoch(deps: KafkaApiDeps, req: OffsetForLeaderEpochRequest, who: Requester = UNKNOWN_REQUESTER): OffsetForLeaderEpochResponse {
  const sec = enforcing(deps);
  const denied = sec === null ? null : deniedTopics(sec, who, AclOperation.Describe, req.topics.map((t) => t.topic));
  return {
    throttleTimeMs: 0,
    topics: req.topics.map((t) => ({
      topic: t.topic,
      partitions: t.partitions.map((p) => {
        const undefinedEpoch = { partition: p.partition, leaderEpoch: UNDEFINED_EPOCH, endOffset: -1n };
        if (denied?.has(t.topic)) return { ...undefinedEpoch, errorCode: kafkaCode('TOPIC_AUTHORIZATION_FAILED') };
        const log = deps.topics.partition(t.topic, p.partition);
        if (log === undefined) return { ...undefinedEpoch, errorCode: kafkaCode('UNKNOWN_TOPIC_OR_PARTITION') };
        if (p.currentLeaderEpoch > LEADER_EPOCH) return { ...undefinedEpoch, errorCode: kafkaCode('UNKNOWN_LEADER_EPOCH') };
        if (p.leaderEpoch < LEADER_EPOCH) return { ...undefinedEpoch, errorCode: 0 };
        return { partition: p.partition, errorCode: 0, leaderEpoch: LEADER_EPOCH, endOffset: log.highWatermark };
      }),
    })),
  };
}
