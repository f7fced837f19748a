/**
 * GET /v1/security: this region's security at a glance, for the dashboard and operators —
 * each Kafka listener with its security protocol, certificate and open connections, the open
 * connections per principal, whether ACLs are enforced (superusers, how many ACLs and
 * users), authentications and denials since start, and the principals a quota is throttling.
 * The details are in /v1/security/users, /acls and /quotas. Nothing here is a secret: no
 * password, key or salt is ever held where this reads.
 */
import type { FastifyInstance } from 'fastify';
import type { AdminContext } from '../app.js';
import { arr, obj, schemaTypes as t } from '../schemas.js';

const byKind = obj({ produce: t.num, fetch: t.num, request: t.num });
const limits = obj({ producerByteRate: { type: ['integer', 'null'] }, consumerByteRate: { type: ['integer', 'null'] }, requestRate: { type: ['integer', 'null'] } });

export function securityRoutes(app: FastifyInstance, { broker }: AdminContext): void {
  app.get(
    '/v1/security',
    {
      schema: {
        summary: "This region's security: listeners, connections per principal, authorization, authentications, denials and throttled principals",
        tags: ['security'],
        response: {
          200: obj({
            region: t.str,
            listeners: arr(obj({ name: t.str, securityProtocol: t.str, host: t.str, port: t.int, connections: t.int, certificateSerial: { type: ['string', 'null'] } })),
            principals: arr(obj({ principal: t.str, connections: t.int })),
            authorization: obj({ enabled: t.bool, superUsers: arr(t.str), allowEveryoneIfNoAclFound: t.bool, acls: t.int }),
            users: t.int,
            saslMechanisms: arr(t.str),
            authentications: obj({ succeeded: t.int, failed: t.int }),
            denials: t.int,
            quotas: obj({ defaults: limits, overrides: t.int, throttled: arr(obj({ principal: t.str, quotas: limits, rates: byKind, throttleSeconds: byKind })) }),
          }),
        },
      },
    },
    async () => {
      const s = broker.security;
      const byPrincipal = new Map<string, number>();
      for (const c of broker.kafka.connections()) byPrincipal.set(c.principal, (byPrincipal.get(c.principal) ?? 0) + 1);
      const a = s.config.authorization;
      return {
        region: broker.config.region,
        listeners: broker.kafka.stats().listeners.map((l) => ({ name: l.name, securityProtocol: l.securityProtocol, host: l.host, port: l.port, connections: l.connections, certificateSerial: l.tls?.certificateSerial ?? null })),
        principals: [...byPrincipal].sort(([x], [y]) => (x < y ? -1 : 1)).map(([principal, connections]) => ({ principal, connections })),
        authorization: { enabled: s.authorizer !== null, superUsers: [...a.superUsers], allowEveryoneIfNoAclFound: a.allowEveryoneIfNoAclFound, acls: s.acls.size },
        users: s.credentials.describe().length,
        saslMechanisms: [...s.mechanisms],
        authentications: { ...s.stats.authentications },
        denials: s.stats.denials,
        quotas: {
          defaults: s.quotas.defaults,
          overrides: s.quotas.overrides().length,
          throttled: s.quotas.active().filter((q) => q.throttleSeconds.produce + q.throttleSeconds.fetch + q.throttleSeconds.request > 0).map(({ principal, quotas, rates, throttleSeconds }) => ({ principal, quotas, rates, throttleSeconds })),
        },
      };
    },
  );
}
