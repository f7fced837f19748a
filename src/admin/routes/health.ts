/** Liveness and readiness probes, open to callers without the token (auth.ts). */
import type { FastifyInstance } from 'fastify';
import type { AdminContext } from '../app.js';
import { arr, obj, schemaTypes as t } from '../schemas.js';

export function healthRoutes(app: FastifyInstance, { broker }: AdminContext): void {
  app.get('/v1/health', { schema: { summary: 'Liveness: ok while the process serves', tags: ['health'], security: [], response: { 200: obj({ status: { type: 'string', enum: ['ok'] } }) } } }, async () => ({ status: 'ok' }));

  const ready = obj({ ready: t.bool, reasons: arr(t.str) });
  app.get(
    '/v1/ready',
    { schema: { summary: 'Readiness for a load balancer: 200 once the Kafka listener is up (and, with tiered.required, the object store reachable), 503 otherwise', tags: ['health'], security: [], response: { 200: ready, 503: ready } } },
    async (_req, reply) => {
      const reasons = readinessProblems(broker);
      return reply.code(reasons.length === 0 ? 200 : 503).send({ ready: reasons.length === 0, reasons });
    },
  );
}

function readinessProblems(broker: AdminContext['broker']): string[] {
  const reasons: string[] = [];
  if (broker.closing) reasons.push('the broker is shutting down');
  if (broker.config.tiered.required && broker.tiered?.unavailable) reasons.push(`the object store is unreachable: ${broker.tiered.unavailable}`);
  return reasons;
}
