/**
 * Client quotas (security/quotas.ts, src/security/README.md "Quotas"): the defaults of
 * `security.quotas`, each principal's overrides, and each active principal's rates and
 * throttle totals; set or drop a principal's overrides. Overrides are per region and take
 * effect at the principal's next request.
 */
import type { FastifyInstance } from 'fastify';
import { httpError, HttpErrorCode } from '../http-errors.js';
import type { QuotaChange } from '../../security/quotas.js';
import type { AdminContext } from '../app.js';
import { arr, errorResponses, obj, schemaTypes as t } from '../schemas.js';

const rate = { type: ['integer', 'null'], minimum: 1 } as const;
const quotas = obj({ producerByteRate: rate, consumerByteRate: rate, requestRate: rate });
/** An override names only the keys it overrides (null: no quota for this principal). */
const override = obj({ producerByteRate: rate, consumerByteRate: rate, requestRate: rate }, []);
const byKind = obj({ produce: t.num, fetch: t.num, request: t.num });
const changeValue = {
  type: ['integer', 'string', 'null'],
  description: 'bytes (or requests) per second, a size like "1MiB" for the byte rates, null for no quota, or "default" to drop the override',
} as const;
const principalParam = obj({ principal: { type: 'string', pattern: '^[A-Za-z]+:.+$', description: 'a principal, e.g. User:alice' } });

export function quotaRoutes(app: FastifyInstance, { broker }: AdminContext): void {
  const manager = () => broker.security.quotas;
  const described = (principal: string) => {
    const override = manager().overrides().find((o) => o.principal === principal)?.override ?? {};
    return { principal, override, quotas: manager().effective(principal) };
  };

  app.get(
    '/v1/security/quotas',
    {
      schema: {
        summary: "Quotas: the defaults, each principal's overrides, and each active principal's quotas, current rates and throttle totals",
        tags: ['security'],
        response: {
          200: obj({
            region: t.str,
            defaults: quotas,
            overrides: arr(obj({ principal: t.str, override })),
            active: arr(obj({ principal: t.str, quotas, rates: byKind, throttleSeconds: byKind, throttledResponses: byKind })),
          }),
        },
      },
    },
    async () => ({ region: broker.config.region, defaults: manager().defaults, overrides: manager().overrides(), active: manager().active() }),
  );

  app.put<{ Params: { principal: string }; Body: QuotaChange }>(
    '/v1/security/quotas/:principal',
    {
      schema: {
        summary: "Set a principal's quotas: the keys given change, the others stay; applies from its next request",
        tags: ['security'],
        params: principalParam,
        body: { ...obj({ producerByteRate: changeValue, consumerByteRate: changeValue, requestRate: changeValue }, []), minProperties: 1 },
        response: { 200: obj({ principal: t.str, override, quotas }), ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const { principal } = req.params;
      // In a region cluster: written to etcd and applied by every broker (cluster/security-sync.ts).
      await broker.security.writes.quotas((q) => q.set(principal, req.body));
      return described(req.params.principal);
    },
  );

  app.delete<{ Params: { principal: string } }>(
    '/v1/security/quotas/:principal',
    {
      schema: {
        summary: "Drop a principal's overrides: the defaults apply to it again",
        tags: ['security'],
        params: principalParam,
        response: { 200: obj({ principal: t.str, override, quotas }), ...errorResponses(400, 401, 404) },
      },
    },
    async (req) => {
      const { principal } = req.params;
      if (!(await broker.security.writes.quotas((q) => q.remove(principal)))) throw httpError(HttpErrorCode.NotFound, `${principal} has no quota override; list them with GET /v1/security/quotas`);
      return described(principal);
    },
  );
}
