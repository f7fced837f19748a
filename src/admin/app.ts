/**
 * `buildAdminApp(broker, options)`: the admin API of one broker as a fastify instance, not
 * listening (tests call `app.inject()`; `admin-server.ts` listens). Every route carries
 * request and response schemas (schemas.ts); the OpenAPI document at GET /openapi.json is
 * generated from them. Errors of every route go through `httpErrorOf` (http-errors.ts);
 * who may call what is `authorizer` (auth.ts).
 */
import fs from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import type tls from 'node:tls';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyServerFactory } from 'fastify';
import swagger from '@fastify/swagger';
import type { Logger } from 'pino';
import type { Broker } from '../broker/broker.js';
import { authorizer, OPEN_PATHS } from './auth.js';
import { httpError, httpErrorOf, HttpErrorCode } from './http-errors.js';
import { dashboardRoutes } from './dashboard/routes.js';
import { createBrokerMetrics } from './metrics.js';
import { ref, SHARED_SCHEMAS } from './schemas.js';
import { aclRoutes } from './routes/acls.js';
import { clusterRoutes } from './routes/cluster.js';
import { drRoutes } from './routes/dr.js';
import { groupRoutes } from './routes/groups.js';
import { healthRoutes } from './routes/health.js';
import { partitionRoutes } from './routes/partitions.js';
import { quotaRoutes } from './routes/quotas.js';
import { replicationRoutes } from './routes/replication.js';
import { tieredRoutes } from './routes/tiered.js';
import { topicRoutes } from './routes/topics.js';
import { userRoutes } from './routes/users.js';
import { securityRoutes } from './routes/security.js';
import { runtimeRoutes } from './routes/runtime.js';
import { RuntimeStats } from './runtime-stats.js';

export interface AdminOptions {
  /** null: every call allowed (loopback only; auth.ts). */
  token: string | null;
  openReads: boolean;
  /** How long GET /v1/regions waits for a peer's admin API. */
  peerTimeoutMs?: number;
  /** Serve HTTPS with this certificate and key (admin.tls; admin-server.ts reloads them); absent: HTTP. */
  https?: tls.SecureContextOptions;
  /** The address the server listens on, once known (GET /v1/cluster). */
  address?: () => { host: string; port: number } | null;
  logger?: Logger;
}

export interface AdminContext {
  readonly broker: Broker;
  readonly version: string;
  readonly options: AdminOptions;
}

function packageVersion(): string {
  // ../../package.json from src/admin/ and from dist/admin/ alike.
  return (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

/** An HTTPS server under fastify's HTTP typing: its requests and responses are node's http classes. */
function httpsServer(options: tls.SecureContextOptions): FastifyServerFactory {
  return (handler) => https.createServer(options, handler) as unknown as http.Server;
}

export async function buildAdminApp(broker: Broker, options: AdminOptions): Promise<FastifyInstance> {
  const app = Fastify({
    ...(options.logger ? { loggerInstance: options.logger as FastifyBaseLogger } : {}),
    // Requests are not logged one by one (Prometheus and the dashboard poll); mutations are,
    // below, without headers, so the token never reaches a log.
    logController: new LogController({ disableRequestLogging: true }),
    ...(options.https === undefined ? {} : { serverFactory: httpsServer(options.https) }),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false, allowUnionTypes: true } },
  });
  const ctx: AdminContext = { broker, version: packageVersion(), options };
  for (const s of SHARED_SCHEMAS) app.addSchema(s);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Meridian admin API',
        version: ctx.version,
        description: 'The admin API of one Meridian broker (one region): cluster, topics, replication, tiered storage, consumer groups. See src/admin/README.md.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`) },
  });

  // Every route may answer these; documented once here rather than on each route.
  app.addHook('onRoute', (route) => {
    const schema = (route.schema ??= {}) as { response?: Record<string, unknown> };
    const response = (schema.response ??= {});
    const extra = OPEN_PATHS.has(route.url) ? ['500'] : ['401', '500', '503'];
    for (const status of extra) response[status] ??= ref('Error');
  });

  const authorize = authorizer(options);
  app.addHook('onRequest', async (req) => {
    authorize(req.method, req.routeOptions.url ?? req.url.split('?')[0], req.headers.authorization);
  });
  app.addHook('onResponse', async (req, reply) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') req.log.info({ method: req.method, url: req.url, status: reply.statusCode }, 'admin call');
  });
  app.setErrorHandler(async (err, req, reply) => {
    const { status, body } = httpErrorOf(err);
    if (status >= 500) req.log.warn({ method: req.method, url: req.url, code: body.error.code, err: body.error.message }, 'admin call failed');
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler(async (req) => {
    throw httpError(HttpErrorCode.NotFound, `no such admin API route: ${req.method} ${req.url.split('?')[0]}; the routes are listed in GET /openapi.json`);
  });

  await app.register(async (r) => {
    healthRoutes(r, ctx);
    clusterRoutes(r, ctx);
    topicRoutes(r, ctx);
    partitionRoutes(r, ctx);
    replicationRoutes(r, ctx);
    tieredRoutes(r, ctx);
    groupRoutes(r, ctx);
    drRoutes(r, ctx);
    aclRoutes(r, ctx);
    quotaRoutes(r, ctx);
    userRoutes(r, ctx);
    securityRoutes(r, ctx);
  });
  const runtime = new RuntimeStats(broker.config.metrics.eventLoopResolutionMs);
  app.addHook('onClose', async () => runtime.close());
  await app.register(async (r) => runtimeRoutes(r, runtime));

  const metrics = createBrokerMetrics(broker);
  app.addHook('onClose', async () => metrics.close());
  app.get('/metrics', { schema: { summary: 'Prometheus metrics (text exposition format)', tags: ['metrics'], produces: ['text/plain'] } }, async (_req, reply) => {
    const text = await metrics.render();
    return reply.type(metrics.contentType).send(text);
  });
  app.get('/openapi.json', { schema: { summary: 'This OpenAPI document', tags: ['meta'] } }, async () => app.swagger());
  // The dashboard: GET / and its script and stylesheet (dashboard/routes.ts; open paths in auth.ts).
  dashboardRoutes(app);
  return app;
}
