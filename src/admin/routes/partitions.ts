/**
 * Partition reassignment in a region cluster (src/cluster/README.md, "Reassignment"):
 *
 *   POST /v1/partitions/reassign   { topic, partition, replicas }: ask the controller to move
 *                                  the partition's replicas (the first of `replicas` leads)
 *   GET  /v1/partitions/reassign   every reassignment in progress, with what it waits for
 *   GET  /v1/partitions/{topic}/{partition}   one partition's state and its reassignment
 *   DELETE /v1/partitions/{topic}/{partition}/reassignment   cancel it: back to the original replicas
 *
 * Any broker of the region answers: the request is written to etcd
 * (`reassignments/<topic>/<p>`, cluster/reassign-store.ts), where the elected controller
 * executes it, so no call is forwarded between brokers. On a single broker (no etcd) every
 * route answers 400: there is nothing to move replicas between.
 */
import type { FastifyInstance } from 'fastify';
import { ReassignmentStore } from '../../cluster/reassign-store.js';
import type { AdminContext } from '../app.js';
import { httpError, HttpErrorCode } from '../http-errors.js';
import { arr, obj, schemaTypes as t } from '../schemas.js';

const ids = arr({ type: 'integer', minimum: 0 });

const reassignment = {
  anyOf: [
    obj({
      target: { ...ids, description: 'the replicas the partition ends with; the first leads' },
      cancelled: { ...t.bool, description: 'cancelled: the partition goes back to `original`' },
      original: { ...ids, description: 'the replicas when the reassignment was asked' },
      adding: { ...ids, description: 'target brokers not yet among the replicas' },
      removing: { ...ids, description: 'replicas leaving once every target replica is in sync' },
      waitingFor: { ...ids, description: 'target replicas not in the ISR yet' },
      requestedAt: { ...t.int, description: 'ms since the epoch' },
    }),
    { type: 'null' },
  ],
  description: 'the reassignment in progress; null: none',
};

const partitionView = obj({
  topic: t.str,
  partition: t.int,
  replicas: ids,
  leader: { ...t.int, description: '-1: offline' },
  leaderEpoch: t.int,
  isr: ids,
  reassignment,
});

export function partitionRoutes(app: FastifyInstance, { broker }: AdminContext): void {
  const store = (): ReassignmentStore => {
    const cluster = broker.cluster;
    if (cluster === undefined) {
      throw httpError(HttpErrorCode.BadRequest, `region ${broker.config.region} is a single broker (cluster.etcd.endpoints is empty): partition reassignment moves replicas between the brokers of a region cluster`);
    }
    return new ReassignmentStore(cluster.region);
  };

  app.post<{ Body: { topic: string; partition: number; replicas: number[] } }>(
    '/v1/partitions/reassign',
    {
      schema: {
        summary: 'Move a partition\'s replicas between the brokers of the region (online: the new replicas catch up, then the old ones leave)',
        tags: ['partitions'],
        body: obj({ topic: t.str, partition: { type: 'integer', minimum: 0 }, replicas: { ...ids, minItems: 1, description: 'the target replicas (broker node ids); the first is the preferred leader' } }),
        response: {
          202: obj({
            outcome: { type: 'string', enum: ['requested', 'already-requested', 'unchanged'], description: 'unchanged: the replicas already are the target, nothing to do' },
            partition: partitionView,
          }),
        },
      },
    },
    async (req, reply) => {
      const { topic, partition, replicas } = req.body;
      const { outcome, view } = await store().request(topic, partition, replicas, { timeoutMs: 10_000 });
      return reply.code(202).send({ outcome, partition: view });
    },
  );

  app.get(
    '/v1/partitions/reassign',
    {
      schema: {
        summary: 'Every partition reassignment in progress in the region, with the partition\'s current replicas, leader and ISR',
        tags: ['partitions'],
        response: { 200: arr(partitionView) },
      },
    },
    async () => store().list({ timeoutMs: 10_000 }),
  );

  app.get<{ Params: { topic: string; partition: string } }>(
    '/v1/partitions/:topic/:partition',
    {
      schema: {
        summary: 'One partition\'s replicas, leader and ISR as etcd holds them, and its reassignment in progress',
        tags: ['partitions'],
        params: obj({ topic: t.str, partition: { type: 'string', pattern: '^\\d+$', description: 'the partition number' } }),
        response: { 200: partitionView },
      },
    },
    async (req) => store().describe(req.params.topic, Number(req.params.partition), { timeoutMs: 10_000 }),
  );

  app.delete<{ Params: { topic: string; partition: string } }>(
    '/v1/partitions/:topic/:partition/reassignment',
    {
      schema: {
        summary: 'Cancel a partition\'s reassignment in progress: the controller puts the original replicas back (no one needs to catch up for that)',
        tags: ['partitions'],
        params: obj({ topic: t.str, partition: { type: 'string', pattern: '^\\d+$', description: 'the partition number' } }),
        response: { 200: partitionView },
      },
    },
    async (req) => store().cancel(req.params.topic, Number(req.params.partition), { timeoutMs: 10_000 }),
  );
}
