/**
 * Tiered storage: per-partition status and the read cache's figures, and an offload trigger
 * that answers at once (202) with what it queued and, per partition, the offset the object
 * store will reach: `meridian offload trigger --wait` polls GET /v1/tiered/status until every
 * partition's remoteEndOffset is there.
 */
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/broker.js';
import { ErrorCode, MeridianError } from '../../errors.js';
import type { TieredStorage } from '../../tiered/tiered-storage.js';
import type { AdminContext } from '../app.js';
import { httpError, HttpErrorCode } from '../http-errors.js';
import { arr, errorResponses, obj, schemaTypes as t } from '../schemas.js';

function tieredOf(broker: Broker): TieredStorage {
  if (broker.tiered === undefined) throw httpError(HttpErrorCode.BadRequest, 'tiered storage is not enabled on this broker; set tiered.enabled: true in its config');
  return broker.tiered;
}

export function tieredRoutes(app: FastifyInstance, { broker }: AdminContext): void {
  app.get(
    '/v1/tiered/status',
    {
      schema: {
        summary: 'Tiered storage: the store, per partition local and remote segments, offsets and upload state, the read cache',
        tags: ['tiered'],
        response: {
          200: obj({
            enabled: t.bool,
            store: t.nullableStr,
            unavailable: { ...t.nullableStr, description: 'why the object store cannot be used now; null: it can' },
            partitions: arr(
              obj({
                topic: t.str,
                partition: t.int,
                localSegments: t.int,
                localBytes: t.int,
                remoteSegments: t.int,
                remoteBytes: t.int,
                remoteStartOffset: t.offset,
                remoteEndOffset: t.offset,
                highWatermark: t.offset,
                manifestVersion: t.int,
                state: { type: 'string', enum: ['idle', 'uploading', 'backing-off'] },
                copying: t.nullableStr,
                uploadedSegments: t.int,
                uploadedBytes: t.int,
                cacheHitRatio: { type: ['number', 'null'] },
                lastError: t.nullableStr,
              }),
            ),
            cache: { anyOf: [{ type: 'object', additionalProperties: t.num, required: ['hits', 'misses', 'hitRatio', 'bytesCached', 'capacityBytes'] }, { type: 'null' }] },
          }),
        },
      },
    },
    async () => {
      const tiered = broker.tiered;
      if (tiered === undefined) return { enabled: false, store: null, unavailable: null, partitions: [], cache: null };
      return {
        enabled: true,
        store: tiered.store.name,
        unavailable: tiered.unavailable,
        partitions: tiered
          .status()
          .map((s) => ({ ...s, highWatermark: String(broker.topics.partition(s.topic, s.partition)?.highWatermark ?? 0n) }))
          .sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition),
        cache: { ...tiered.reader.stats() },
      };
    },
  );

  app.post<{ Body: { topic?: string } }>(
    '/v1/tiered/offload',
    {
      schema: {
        summary: 'Seal the active segments and offload everything not yet in the object store, now (202; progress in GET /v1/tiered/status)',
        tags: ['tiered'],
        body: { ...obj({ topic: { type: 'string', description: 'one topic; default: every tiered topic' } }, []), nullable: true },
        response: {
          202: obj({
            topics: arr(t.str),
            segmentsQueued: t.int,
            bytesQueued: t.int,
            partitions: arr(obj({ topic: t.str, partition: t.int, targetEndOffset: { ...t.offset, description: 'the offload is complete when remoteEndOffset reaches this' } })),
          }),
          ...errorResponses(400, 401, 404, 503),
        },
      },
    },
    async (req, reply) => {
      const tiered = tieredOf(broker);
      const status = tiered.status();
      const tieredTopics = [...new Set(status.map((s) => s.topic))].sort();
      const topic = req.body?.topic;
      if (topic !== undefined && !tieredTopics.includes(topic)) {
        const info = broker.topics.getTopic(topic);
        if (info === undefined) throw new MeridianError(ErrorCode.UnknownTopic, `topic ${topic} does not exist`);
        if (info.config.remoteStorage === false) throw new MeridianError(ErrorCode.UnknownTopic, `topic ${topic} is not tiered (remote.storage.enable=false)`);
        // A topic is attached to the store asynchronously after its creation (or while the store is unreachable).
        throw httpError(HttpErrorCode.NotReady, `topic ${topic} is not attached to the object store yet${tiered.unavailable ? ` (${tiered.unavailable})` : ''}; try again shortly`);
      }
      const topics = topic === undefined ? tieredTopics : [topic];
      let segmentsQueued = 0;
      let bytesQueued = 0;
      const partitions = status
        .filter((s) => topics.includes(s.topic))
        .map((s) => {
          const log = broker.topics.partition(s.topic, s.partition);
          const remoteEnd = BigInt(s.remoteEndOffset);
          for (const seg of log?.segments() ?? []) {
            if (seg.nextOffset > remoteEnd && seg.sizeBytes > 0) {
              segmentsQueued++;
              bytesQueued += seg.sizeBytes;
            }
          }
          return { topic: s.topic, partition: s.partition, targetEndOffset: String(log?.highWatermark ?? remoteEnd) };
        });
      for (const name of topics) {
        tiered.offloadNow(name).catch((err: unknown) => req.log.warn({ topic: name, err: (err as Error).message }, 'offload requested through the admin API failed; it is retried by the offload timer'));
      }
      return reply.code(202).send({ topics, segmentsQueued, bytesQueued, partitions });
    },
  );
}
