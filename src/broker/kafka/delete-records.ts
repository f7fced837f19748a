/**
 * DeleteRecords: moves partitions' log start offsets forward (Kafka's
 * Partition.deleteRecordsOnLeader). Per partition: the requested offset, or -1 for the high
 * watermark, becomes the log start; beyond the high watermark (or below -1) is
 * OFFSET_OUT_OF_RANGE; an offset at or below the current start changes nothing. From then
 * on nothing below the start is served, in either tier; the segments wholly below it are
 * deleted (locally at once, through the retention guards; in the object store at the next
 * tiered-retention pass); the start survives a restart (PartitionLog.deleteRecordsBefore).
 * The answer's low watermark is the partition's log start afterwards. `timeoutMs` has
 * nothing to wait for: there are no followers. A topic the requester may not DELETE is
 * TOPIC_AUTHORIZATION_FAILED for each of its partitions (authorize.ts).
 */
import { ErrorCode, MeridianError } from '../../errors.js';
import { isInternalTopic } from '../../cluster/group-offsets-topic.js';
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import { kafkaCode, toKafkaError } from '../../protocol/kafka/error-mapping.js';
import type { DeleteRecordsRequest, DeleteRecordsResponse } from '../../protocol/kafka/messages/delete-records.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';
import { AclOperation, deniedTopics, enforcing, UNKNOWN_REQUESTER, type Requester } from './authorize.js';

export const DELETE_RECORDS_APIS: readonly KafkaApiEntry[] = [{ key: ApiKey.DeleteRecords, versions: [0, 2], handle: (d, c, req) => handleDeleteRecords(d, req, c) }];

const HIGH_WATERMARK = -1n;

export async function handleDeleteRecords(deps: KafkaApiDeps, req: DeleteRecordsRequest, who: Requester = UNKNOWN_REQUESTER): Promise<DeleteRecordsResponse> {
  const sec = enforcing(deps);
  const denied = sec === null ? null : deniedTopics(sec, who, AclOperation.Delete, req.topics.map((t) => t.name));
  const topics = await Promise.all(
    req.topics.map(async (t) => ({
      name: t.name,
      partitions: await Promise.all(
        t.partitions.map(async (p) => {
          if (denied?.has(t.name)) return { partitionIndex: p.partitionIndex, lowWatermark: -1n, errorCode: kafkaCode('TOPIC_AUTHORIZATION_FAILED') };
          const view = deps.logs.view(t.name, p.partitionIndex);
          if (view === undefined) return { partitionIndex: p.partitionIndex, lowWatermark: -1n, errorCode: kafkaCode('UNKNOWN_TOPIC_OR_PARTITION') };
          // Kafka refuses DeleteRecords on internal topics alike: here it would delete committed offsets.
          if (isInternalTopic(t.name)) return { partitionIndex: p.partitionIndex, lowWatermark: -1n, errorCode: kafkaCode('INVALID_TOPIC_EXCEPTION') };
          try {
            // A region cluster: only the leader deletes, and only below what its ISR holds
            // (the replicated high watermark); followers follow its log start (replica-fetcher.ts).
            const rm = deps.replicaManager;
            if (rm !== undefined) {
              const hw = rm.deletableBefore(t.name, p.partitionIndex);
              const offset = p.offset === HIGH_WATERMARK ? hw : p.offset;
              if (offset > hw) throw new MeridianError(ErrorCode.OffsetOutOfRange, `${t.name}-${p.partitionIndex}: cannot delete records before offset ${offset}: past the replicated high watermark ${hw}`);
              await view.local.deleteRecordsBefore(offset);
              // Answered once every in-sync replica moved its log start too (Kafka's low watermark).
              await rm.awaitLogStart(t.name, p.partitionIndex, offset, req.timeoutMs > 0 ? req.timeoutMs : 30_000);
              return { partitionIndex: p.partitionIndex, lowWatermark: view.logStartOffset, errorCode: 0 };
            }
            await view.local.deleteRecordsBefore(p.offset === HIGH_WATERMARK ? view.highWatermark : p.offset);
            return { partitionIndex: p.partitionIndex, lowWatermark: view.logStartOffset, errorCode: 0 };
          } catch (err) {
            const e = toKafkaError(err);
            deps.logger.debug({ topic: t.name, partition: p.partitionIndex, offset: String(p.offset), errorCode: e.code, message: e.message }, 'DeleteRecords refused');
            return { partitionIndex: p.partitionIndex, lowWatermark: -1n, errorCode: e.code };
          }
        }),
      ),
    })),
  );
  return { throttleTimeMs: 0, topics };
}
