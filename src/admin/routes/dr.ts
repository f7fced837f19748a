/**
 * Disaster recovery (dr/README.md): each DR topic's role here (primary, epoch, phase), the
 * offset sync with each peer, groups' committed and translated offsets and conflicts;
 * promote (a topic, a policy or this whole region) with its recovery report; failback
 * (dry run, then confirm); saved reports.
 *
 * On a region cluster the group views answer for the whole region (groups-region.ts): the
 * conflicts and the DR group list are the union of every broker's, and a group's state is
 * the answer of the broker that coordinates it (the one holding its own commits here; every
 * broker holds the peers' commits, offset-publisher.ts). `?scope=broker` answers for this
 * broker alone. The offset sync per peer is this broker's own sending (each broker sends
 * the commits of the groups it coordinates).
 */
import type { FastifyInstance } from 'fastify';
import { ErrorCode, MeridianError } from '../../errors.js';
import { failback } from '../../dr/failback.js';
import type { PromoteScope } from '../../dr/disaster-recovery.js';
import type { AdminContext } from '../app.js';
import { arr, errorResponses, obj, schemaTypes as t } from '../schemas.js';
import { askOtherBrokers, okBodies, regionWide, scopeQuery, selfNodeId, type ScopeQuery } from './groups-region.js';

/** A report's body: its fields are documented in dr/recovery-report.ts. */
const report = { type: 'object', additionalProperties: true } as const;

const syncStatus = { region: t.str, connected: t.bool, pendingCommits: t.int, lastSuccessAt: { type: ['integer', 'null'] }, lastError: t.nullableStr, syncs: t.int, failures: t.int };
const conflict = obj({ group: t.str, topic: t.str, partition: t.int, region: t.str, commitTimestamp: t.int, activeSince: t.int, detectedAt: t.int });
type ConflictView = { group: string; topic: string; partition: number; region: string; commitTimestamp: number; activeSince: number; detectedAt: number };

export function drRoutes(app: FastifyInstance, ctx: AdminContext): void {
  const { broker } = ctx;
  const dr = broker.dr;

  app.get<{ Querystring: ScopeQuery }>(
    '/v1/dr',
    {
      schema: {
        summary: "DR topics here (primary, epoch, read-only, phase, report), this broker's offset sync per peer (and per broker of a peer cluster), and groups in conflict (in the whole region on a region cluster)",
        tags: ['dr'],
        querystring: scopeQuery,
        response: {
          200: obj({
            region: t.str,
            topics: arr(obj({ topic: t.str, policy: t.str, topology: t.str, primary: t.str, epoch: t.int, readOnly: t.bool, phase: t.str, since: { type: ['integer', 'null'] }, reportId: t.nullableStr, primaryEnds: arr(obj({ partition: t.int, endOffset: t.offset, ageMs: t.int })) })),
            offsetSync: arr(obj({ ...syncStatus, brokers: arr(obj({ address: t.str, ...Object.fromEntries(Object.entries(syncStatus).filter(([k]) => k !== 'region')) })) })),
            conflicts: arr(conflict),
          }),
        },
      },
    },
    async (req, reply) => {
      const conflicts: ConflictView[] = dr.conflicts();
      if (regionWide(ctx, req)) {
        for (const { body } of okBodies<{ conflicts: ConflictView[] }>(await askOtherBrokers(ctx, req, reply, '/v1/dr'))) conflicts.push(...body.conflicts);
      }
      return { region: broker.config.region, topics: dr.topicStatus(), offsetSync: dr.syncStatus(), conflicts };
    },
  );

  app.get<{ Querystring: ScopeQuery }>(
    '/v1/dr/groups',
    {
      schema: {
        summary: 'Groups with offsets committed in this region (every broker of a region cluster) or replicated from a peer region',
        tags: ['dr'],
        querystring: scopeQuery,
        response: { 200: arr(t.str) },
      },
    },
    async (req, reply) => {
      const ids = new Set(dr.groupIds());
      if (regionWide(ctx, req)) for (const { body } of okBodies<string[]>(await askOtherBrokers(ctx, req, reply, '/v1/dr/groups'))) for (const id of body) ids.add(id);
      return [...ids].sort();
    },
  );

  app.get<{ Params: { id: string }; Querystring: ScopeQuery }>(
    '/v1/dr/groups/:id',
    {
      schema: {
        summary: "One group per partition: its commit here, the newest peer commit and its age, the translated offset, what OffsetFetch answers, and any conflict",
        tags: ['dr'],
        params: obj({ id: t.str }),
        querystring: scopeQuery,
        response: {
          200: obj({
            group: t.str,
            region: t.str,
            coordinator: { type: ['integer', 'null'], description: 'region clusters only: node id of the broker that answered as the group coordinator (its commit here is the group\'s); null when no broker of the region coordinates it now' },
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
          }, ['group', 'region', 'partitions']),
          ...errorResponses(401, 404),
        },
      },
    },
    async (req, reply) => {
      const id = req.params.id;
      // The coordinator holds the group's own commits (and, like every broker, the peers').
      const coordinates = broker.groups.describeGroups([id])[0]?.error === null;
      if (!coordinates && regionWide(ctx, req)) {
        const answers = okBodies<{ coordinator: number | null }>(await askOtherBrokers(ctx, req, reply, `/v1/dr/groups/${encodeURIComponent(id)}`));
        const found = answers.find((a) => a.body.coordinator !== null);
        if (found !== undefined) return found.body;
      }
      const self = selfNodeId(ctx);
      return { group: id, region: broker.config.region, ...(self === null ? {} : { coordinator: coordinates ? self : null }), partitions: await dr.groupStatus(id) };
    },
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
