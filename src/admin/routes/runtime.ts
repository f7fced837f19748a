/**
 * GET /v1/runtime: the event loop's delay and the garbage collector's pauses since the window
 * began (runtime-stats.ts); POST /v1/runtime/reset begins a new window. A latency tail shows
 * up here as a long loop delay or a long pause, or not at all (then look at the disk).
 */
import type { FastifyInstance } from 'fastify';
import type { RuntimeStats } from '../runtime-stats.js';
import { obj, schemaTypes as t } from '../schemas.js';

const pauses = obj({ count: t.int, totalMs: t.num, maxMs: t.num });

export function runtimeRoutes(app: FastifyInstance, stats: RuntimeStats): void {
  const snapshot = obj({
    sinceMs: t.num,
    windowSeconds: t.num,
    resolutionMs: t.num,
    eventLoopDelayMs: obj({ samples: t.int, mean: t.num, p50: t.num, p90: t.num, p99: t.num, p999: t.num, max: t.num }),
    gc: obj({ count: t.int, totalMs: t.num, maxMs: t.num, p50Ms: t.num, p99Ms: t.num, byKind: { type: 'object', additionalProperties: pauses } }),
    memory: obj({ rssBytes: t.int, heapUsedBytes: t.int, heapTotalBytes: t.int, externalBytes: t.int, arrayBuffersBytes: t.int }),
  });
  const current = () => {
    const m = process.memoryUsage();
    return { ...stats.snapshot(), memory: { rssBytes: m.rss, heapUsedBytes: m.heapUsed, heapTotalBytes: m.heapTotal, externalBytes: m.external, arrayBuffersBytes: m.arrayBuffers } };
  };
  app.get(
    '/v1/runtime',
    { schema: { summary: 'Event-loop delay (ms past its sample period) and GC pauses since the window began, and memory now', tags: ['cluster'], response: { 200: snapshot } } },
    async () => current(),
  );
  app.post(
    '/v1/runtime/reset',
    { schema: { summary: 'Ends the current window and begins a new one; returns the window that ended', tags: ['cluster'], response: { 200: snapshot } } },
    async () => {
      const ended = current();
      stats.reset();
      return ended;
    },
  );
}
