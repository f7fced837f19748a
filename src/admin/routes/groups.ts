/**
 * Consumer groups: list (state, members, total lag) and describe (members with their
 * assignments, committed offsets with lag = high watermark − committed offset).
 *
 * On a region cluster both answer for the whole region (groups-region.ts): the list is the
 * union of every broker's coordinated groups, each with the node id of its coordinator, and
 * a group is described by the broker that coordinates it. `?scope=broker` answers for this
 * broker alone (what the other brokers are asked).
 */
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/broker.js';
import { ErrorCode, MeridianError } from '../../errors.js';
import type { AdminContext } from '../app.js';
import { askOtherBrokers, errorCodeOf, okBodies, regionWide, scopeQuery, selfNodeId, type ScopeQuery } from './groups-region.js';
import { assignedPartitionsOf } from '../consumer-assignment.js';
import { arr, errorResponses, obj, schemaTypes as t } from '../schemas.js';

function offsetsOf(broker: Broker, groupId: string) {
  const fetched = broker.groups.fetchOffsets({ groupId, topics: null });
  if (fetched.error !== null) throw fetched.error;
  return fetched.topics
    .flatMap((tp) =>
      tp.partitions.map((p) => {
        const hw = broker.topics.partition(tp.name, p.partitionIndex)?.highWatermark ?? null;
        const lag = hw === null || p.committedOffset < 0n ? null : hw > p.committedOffset ? hw - p.committedOffset : 0n;
        return { topic: tp.name, partition: p.partitionIndex, committedOffset: String(p.committedOffset), highWatermark: hw === null ? null : String(hw), lag: lag === null ? null : Number(lag) };
      }),
    )
    .sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
}

type ListedGroupView = { groupId: string; state: string; protocolType: string; members: number; lag: number; coordinator?: number };

/** Only on a region cluster: the node id of the broker coordinating the group. */
const coordinatorField = { coordinator: { type: 'integer', description: 'region clusters only: node id of the broker coordinating the group' } };

/** `{ coordinator }` on a region cluster (this broker answers as the coordinator), nothing on a single broker. */
function coordinatorOf(ctx: AdminContext): { coordinator?: number } {
  const id = selfNodeId(ctx);
  return id === null ? {} : { coordinator: id };
}

/** The groups this broker coordinates. */
function localGroups(ctx: AdminContext): ListedGroupView[] {
  const { broker } = ctx;
  return broker.groups.listGroups().map((g) => ({
    groupId: g.groupId,
    state: g.groupState,
    protocolType: g.protocolType,
    members: broker.groups.describeGroups([g.groupId])[0]?.members.length ?? 0,
    lag: offsetsOf(broker, g.groupId).reduce((n, o) => n + (o.lag ?? 0), 0),
    ...coordinatorOf(ctx),
  }));
}

export function groupRoutes(app: FastifyInstance, ctx: AdminContext): void {
  const { broker } = ctx;
  app.get<{ Querystring: ScopeQuery }>(
    '/v1/groups',
    {
      schema: {
        summary: 'Every consumer group (of the whole region on a region cluster): state, members, total lag (records behind the high watermarks) and coordinator',
        tags: ['groups'],
        querystring: scopeQuery,
        response: { 200: arr(obj({ groupId: t.str, state: t.str, protocolType: t.str, members: t.int, lag: t.int, ...coordinatorField }, ['groupId', 'state', 'protocolType', 'members', 'lag'])) },
      },
    },
    async (req, reply) => {
      const byId = new Map<string, ListedGroupView>();
      for (const g of localGroups(ctx)) byId.set(g.groupId, g);
      if (regionWide(ctx, req)) {
        for (const { body } of okBodies<ListedGroupView[]>(await askOtherBrokers<ListedGroupView[]>(ctx, req, reply, '/v1/groups'))) {
          // While coordination moves, two brokers may list a group for a moment: the one with members wins.
          for (const g of body) if ((byId.get(g.groupId)?.members ?? -1) < g.members) byId.set(g.groupId, g);
        }
      }
      return [...byId.values()].sort((a, b) => a.groupId.localeCompare(b.groupId));
    },
  );

  app.get<{ Params: { id: string }; Querystring: ScopeQuery }>(
    '/v1/groups/:id',
    {
      schema: {
        summary: 'One group: members with their assigned partitions, committed offsets with lag',
        tags: ['groups'],
        params: obj({ id: t.str }),
        querystring: scopeQuery,
        response: {
          200: obj(
            {
              groupId: t.str,
              state: t.str,
              protocolType: t.str,
              protocol: t.str,
              members: arr(
                obj({
                  memberId: t.str,
                  groupInstanceId: t.nullableStr,
                  clientId: t.str,
                  clientHost: t.str,
                  assignments: arr(obj({ topic: t.str, partitions: arr(t.int) })),
                }),
              ),
              offsets: arr(obj({ topic: t.str, partition: t.int, committedOffset: t.offset, highWatermark: t.nullableOffset, lag: { type: ['integer', 'null'] } })),
              lag: t.int,
              ...coordinatorField,
            },
            ['groupId', 'state', 'protocolType', 'protocol', 'members', 'offsets', 'lag'],
          ),
          ...errorResponses(401, 404),
        },
      },
    },
    async (req, reply) => {
      const id = req.params.id;
      const [g] = broker.groups.describeGroups([id]);
      if (g.error !== null && g.error.code !== ErrorCode.GroupNotFound && regionWide(ctx, req)) {
        // Coordinated elsewhere (or being loaded, or moving): the coordinator's answer.
        const answers = await askOtherBrokers(ctx, req, reply, `/v1/groups/${encodeURIComponent(id)}`);
        const found = okBodies(answers)[0];
        if (found !== undefined) return found.body;
        if (answers.some((a) => errorCodeOf(a) === ErrorCode.GroupNotFound)) throw new MeridianError(ErrorCode.GroupNotFound, `consumer group ${id} does not exist (no members, no committed offsets)`);
      }
      if (g.error !== null) throw g.error;
      const offsets = offsetsOf(broker, id);
      if (g.groupState === 'Dead' && offsets.length === 0) throw new MeridianError(ErrorCode.GroupNotFound, `consumer group ${id} does not exist (no members, no committed offsets)`);
      return {
        groupId: id,
        state: g.groupState,
        protocolType: g.protocolType,
        protocol: g.protocolData,
        members: g.members.map((m) => ({
          memberId: m.memberId,
          groupInstanceId: m.groupInstanceId,
          clientId: m.clientId,
          clientHost: m.clientHost,
          assignments: g.protocolType === 'consumer' ? (assignedPartitionsOf(m.memberAssignment) ?? []) : [],
        })),
        offsets,
        lag: offsets.reduce((n, o) => n + (o.lag ?? 0), 0),
        ...coordinatorOf(ctx),
      };
    },
  );
}
