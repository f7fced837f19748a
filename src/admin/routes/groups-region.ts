/**
 * Region-wide answers for the group and DR routes on a region cluster (src/cluster/README.md,
 * "Disaster recovery and group views on a cluster"). A group lives on the broker that leads
 * its `__meridian_offsets` partition, so one broker alone sees only the groups it
 * coordinates. A route asked for the region (the default) answers for itself and asks the
 * same route, with `scope=broker`, of every other broker the region has registered in etcd,
 * at its registered admin address, in parallel: a list is the union of the answers, a
 * single group is the answer of the broker that coordinates it.
 *
 * The other brokers are asked over the scheme this broker serves (https with admin.tls:
 * their certificates must verify against the system's CAs or NODE_EXTRA_CA_CERTS), with
 * this broker's token (a region's brokers share it) or else the caller's Authorization
 * header, within `peerTimeoutMs` (2 s by default). A broker that does not answer is named in
 * the `meridian-unanswered-brokers` response header and its groups are missing from the
 * answer; nothing else fails. On a single broker nothing is asked.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AdminContext } from '../app.js';

/** `scope` of a group or DR route: the whole region (default) or this broker only. */
export const scopeQuery = {
  type: 'object',
  properties: { scope: { type: 'string', enum: ['region', 'broker'], description: 'region (default): every broker of a region cluster is asked; broker: only the groups this broker coordinates' } },
  additionalProperties: false,
} as const;

export type ScopeQuery = { scope?: 'region' | 'broker' };

/** What one other broker answered. */
export interface BrokerAnswer<T> {
  nodeId: number;
  status: number;
  body: T | { error?: { code?: string; message?: string } } | null;
}

/** Whether `req` asks for the region and this broker is in a region cluster. */
export function regionWide(ctx: AdminContext, req: FastifyRequest<{ Querystring: ScopeQuery }>): boolean {
  return req.query.scope !== 'broker' && ctx.broker.cluster !== undefined;
}

/** This broker's node id in its region cluster (null on a single broker). */
export function selfNodeId(ctx: AdminContext): number | null {
  return ctx.broker.cluster === undefined ? null : ctx.broker.config.nodeId;
}

/**
 * GET `path` (with `scope=broker`) on every other registered broker of the region. The
 * ones that did not answer are listed in the reply's `meridian-unanswered-brokers` header.
 */
export async function askOtherBrokers<T>(ctx: AdminContext, req: FastifyRequest, reply: FastifyReply, path: string): Promise<Array<BrokerAnswer<T>>> {
  const cluster = ctx.broker.cluster;
  if (cluster === undefined) return [];
  const self = ctx.broker.config.nodeId;
  const token = ctx.options.token;
  const authorization = token !== null ? `Bearer ${token}` : req.headers.authorization;
  const scheme = ctx.options.https === undefined ? 'http' : 'https';
  const sep = path.includes('?') ? '&' : '?';
  const unanswered: string[] = [];
  const answers = await Promise.all(
    cluster.brokers().filter((b) => b.nodeId !== self).map(async (b): Promise<BrokerAnswer<T> | null> => {
      if (b.admin === null) {
        unanswered.push(`${b.nodeId} (no admin API)`);
        return null;
      }
      const host = b.admin.host.includes(':') ? `[${b.admin.host}]` : b.admin.host;
      try {
        const res = await fetch(`${scheme}://${host}:${b.admin.port}${path}${sep}scope=broker`, {
          headers: authorization === undefined ? {} : { authorization },
          signal: AbortSignal.timeout(ctx.options.peerTimeoutMs ?? 2000),
        });
        const body = (await res.json().catch(() => null)) as BrokerAnswer<T>['body'];
        return { nodeId: b.nodeId, status: res.status, body };
      } catch (err) {
        unanswered.push(`${b.nodeId} (${(err as Error).message})`);
        return null;
      }
    }),
  );
  if (unanswered.length > 0) reply.header('meridian-unanswered-brokers', unanswered.join(', '));
  return answers.filter((a): a is BrokerAnswer<T> => a !== null);
}

/** The answers that succeeded, as their bodies. */
export function okBodies<T>(answers: ReadonlyArray<BrokerAnswer<T>>): Array<{ nodeId: number; body: T }> {
  return answers.filter((a) => a.status === 200 && a.body !== null).map((a) => ({ nodeId: a.nodeId, body: a.body as T }));
}

/** The Meridian error code of a failed answer, when it carries one. */
export function errorCodeOf(answer: BrokerAnswer<unknown>): string | undefined {
  const body = answer.body as { error?: { code?: string } } | null;
  return body?.error?.code;
}
