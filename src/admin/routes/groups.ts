/**
 * Consumer groups: list (state, members, total lag) and describe (members with their
 * assignments, committed offsets with lag = high watermark − committed offset).
 */
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/broker.js';
import { ErrorCode, MeridianError } from '../../errors.js';
import type { AdminContext } from '../app.js';
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

export function groupRoutes(app: FastifyInstance, { broker }: AdminContext): void {
  app.get(
    '/v1/groups',
    {
      schema: {
        summary: 'Every consumer group: state, members and total lag (records behind the high watermarks)',
        tags: ['groups'],
        response: { 200: arr(obj({ groupId: t.str, state: t.str, protocolType: t.str, members: t.int, lag: t.int })) },
      },
    },
    async () =>
      broker.groups
        .listGroups()
        .sort((a, b) => a.groupId.localeCompare(b.groupId))
        .map((g) => ({
          groupId: g.groupId,
          state: g.groupState,
          protocolType: g.protocolType,
          members: broker.groups.describeGroups([g.groupId])[0]?.members.length ?? 0,
          lag: offsetsOf(broker, g.groupId).reduce((n, o) => n + (o.lag ?? 0), 0),
        })),
  );

  app.get<{ Params: { id: string } }>(
    '/v1/groups/:id',
    {
      schema: {
        summary: 'One group: members with their assigned partitions, committed offsets with lag',
        tags: ['groups'],
        params: obj({ id: t.str }),
        response: {
          200: obj({
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
          }),
          ...errorResponses(401, 404),
        },
      },
    },
    async (req) => {
      const id = req.params.id;
      const [g] = broker.groups.describeGroups([id]);
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
      };
    },
  );
}
