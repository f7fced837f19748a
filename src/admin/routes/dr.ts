/**
 * Disaster recovery (dr/README.md): each DR topic's role here (primary, epoch, phase), the
 * offset sync with each peer, groups' committed and translated offsets and conflicts;
 * promote (a topic, a policy or this whole region) with its recovery report; failback
 * (dry run, then confirm); saved reports.
 */
import type { FastifyInstance } from 'fastify';
import { ErrorCode, MeridianError } from '../../errors.js';
import { failback } from '../../dr/failback.js';
import type { PromoteScope } from '../../dr/disaster-recovery.js';
import type { AdminContext } from '../app.js';
import { arr, errorResponses, obj, schemaTypes as t } from '../schemas.js';

/** A report's body: its fields are documented in dr/recovery-report.ts. */
const report = { type: 'object', additionalProperties: true } as const;

export function drRoutes(app: FastifyInstance, { broker }: AdminContext): void {
  const dr = broker.dr;

  app.get(
    '/v1/dr',
    {
      schema: {
        summary: 'DR topics here (primary, epoch, read-only, phase, report), offset sync per peer, and groups in conflict',
        tags: ['dr'],
        response: {
          200: obj({
            region: t.str,
            topics: arr(obj({ topic: t.str, policy: t.str, topology: t.str, primary: t.str, epoch: t.int, readOnly: t.bool, phase: t.str, since: { type: ['integer', 'null'] }, reportId: t.nullableStr, primaryEnds: arr(obj({ partition: t.int, endOffset: t.offset, ageMs: t.int })) })),
            offsetSync: arr(obj({ region: t.str, connected: t.bool, pendingCommits: t.int, lastSuccessAt: { type: ['integer', 'null'] }, lastError: t.nullableStr, syncs: t.int, failures: t.int })),
            conflicts: arr(obj({ group: t.str, topic: t.str, partition: t.int, region: t.str, commitTimestamp: t.int, activeSince: t.int, detectedAt: t.int })),
          }),
        },
      },
    },
    async () => ({ region: broker.config.region, topics: dr.topicStatus(), offsetSync: dr.syncStatus(), conflicts: dr.conflicts() }),
  );

  app.get(
    '/v1/dr/groups',
    {
      schema: {
        summary: 'Groups with offsets committed here or replicated from a peer region',
        tags: ['dr'],
        response: { 200: arr(t.str) },
      },
    },
    async () => dr.groupIds(),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/dr/groups/:id',
    {
      schema: {
        summary: "One group per partition: its commit here, the newest peer commit and its age, the translated offset, what OffsetFetch answers, and any conflict",
        tags: ['dr'],
        params: obj({ id: t.str }),
        response: {
          200: obj({
            group: t.str,
            region: t.str,
            partitions: arr(
              obj({
                topic: t.str,
                partition: t.int,
                committed: t.nullableOffset,
                committedAt: { type: ['integer', 'null'] },
                translated: t.nullableOffset,
                resolved: t.offset,
                source: t.str,
                peer: t.nullableStr,
                peerOffset: t.nullableOffset,
                peerCommittedAt: { type: ['integer', 'null'] },
                syncAgeMs: { type: ['integer', 'null'] },
                conflict: { type: ['object', 'null'], additionalProperties: true },
              }),
            ),
          }),
          ...errorResponses(401, 404),
        },
      },
    },
    async (req) => ({ group: req.params.id, region: broker.config.region, partitions: await dr.groupStatus(req.params.id) }),
  );

  app.post<{ Body: { topic?: string; policy?: string; region?: string } }>(
    '/v1/dr/promote',
    {
      schema: {
        summary: 'Promote DR copies here (one of topic, policy, region): inbound replication stops, producers are accepted, and the recovery point is reported per partition and saved',
        tags: ['dr'],
        body: { type: 'object', properties: { topic: t.str, policy: t.str, region: t.str }, additionalProperties: false },
        response: { 200: obj({ region: t.str, reports: arr(report) }), ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => {
      const b = req.body ?? {};
      const given = (['topic', 'policy', 'region'] as const).filter((k) => b[k] !== undefined);
      if (given.length !== 1) throw new MeridianError(ErrorCode.InvalidDrRequest, 'name exactly one of topic, policy or region to promote');
      const scope = { [given[0]]: b[given[0]] } as PromoteScope;
      return { region: broker.config.region, reports: await dr.promote(scope) };
    },
  );

  app.post<{ Body: { topic: string; confirm?: boolean } }>(
    '/v1/dr/failback',
    {
      schema: {
        summary: 'Fail a returning old primary back to the new primary: without confirm a dry run listing the divergent tail per partition; with confirm the tail is preserved in a side topic, the log truncated, and the topic follows the new primary',
        tags: ['dr'],
        body: obj({ topic: t.str, confirm: t.bool }, ['topic']),
        response: { 200: report, ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => failback(dr, req.body.topic, { confirm: req.body.confirm === true, requestTimeoutMs: broker.config.replication.requestTimeoutMs, regions: broker.replicator.registry }),
  );

  app.get(
    '/v1/dr/reports',
    { schema: { summary: 'Saved promote and failback reports', tags: ['dr'], response: { 200: arr(obj({ id: t.str, kind: t.str, topic: t.str, at: t.str })) } } },
    async () => dr.reports.list(),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/dr/reports/:id',
    { schema: { summary: 'One saved report', tags: ['dr'], params: obj({ id: t.str }), response: { 200: report, ...errorResponses(400, 401, 404) } } },
    async (req) => dr.reports.get(req.params.id),
  );
}
