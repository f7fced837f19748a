/**
 * Replication: per-link and per-worker status, and the policies: list (with where they come
 * from and their fingerprint), validate (dry run: which links would start and stop), replace
 * (applied and persisted: replication/policy-store.ts), revert to the config file's.
 */
import fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Broker } from '../../broker/broker.js';
import { PolicyError } from '../../replication/policy.js';
import { PartitionFiles } from '../../storage/partition-files.js';
import { planPolicyChange, policyFingerprint, POLICY_FILE, type PolicySet } from '../../replication/policy-store.js';
import type { WorkerStatus } from '../../replication/worker.js';
import type { AdminContext } from '../app.js';
import { arr, errorResponses, obj, policiesBody, ref, schemaTypes as t } from '../schemas.js';
import { worstState } from './cluster.js';

interface Hold {
  topic: string;
  partition: number;
  remote: string;
  file: string;
}

/**
 * Partitions stopped for a remote until an operator resolves a divergence
 * (replication/README.md). A hold file stops its worker in an error that names it, so only
 * the partitions whose worker carries an error are looked at: one file check each, instead
 * of listing every partition's directory on every call (10,000 synchronous readdirs per
 * request with 10,000 partitions, and the dashboard polls this route).
 */
function holdsOf(broker: Broker, workers: readonly WorkerStatus[]): Hold[] {
  const out: Hold[] = [];
  for (const w of workers) {
    if (w.error === null) continue;
    const log = broker.topics.partitions(w.topic)[w.partition];
    if (log === undefined) continue; // deleted under us
    const file = PartitionFiles.replicationHold(log.dir, w.remote);
    if (fs.existsSync(file)) out.push({ topic: w.topic, partition: w.partition, remote: w.remote, file });
  }
  return out;
}

function linksOf(workers: readonly WorkerStatus[], holds: readonly Hold[]) {
  const groups = new Map<string, WorkerStatus[]>();
  for (const w of workers) {
    const key = `${w.remote}\0${w.policy}\0${w.topic}`;
    const list = groups.get(key);
    if (list === undefined) groups.set(key, [w]);
    else list.push(w);
  }
  return [...groups.values()].map((ws) => {
    const { remote, policy, topic } = ws[0];
    return {
      remote,
      policy,
      topic,
      partitions: ws.length,
      state: worstState(ws.map((w) => w.state)),
      error: ws.find((w) => w.error !== null)?.error ?? null,
      lagSeconds: Math.max(0, ...ws.map((w) => w.lagSeconds)),
      backlogRecords: ws.reduce((n, w) => n + w.backlogRecords, 0),
      backlogBytes: ws.reduce((n, w) => n + w.backlogBytes, 0),
      bytesPerSecond: ws.reduce((n, w) => n + w.bytesPerSecond, 0),
      recordsPerSecond: ws.reduce((n, w) => n + w.recordsPerSecond, 0),
      retries: ws.reduce((n, w) => n + w.retries, 0),
      quotaDroppedRecords: ws.reduce((n, w) => n + w.quotaDroppedRecords, 0),
      holds: holds.filter((h) => h.topic === topic && h.remote === remote).length,
    };
  });
}

function policySetBody(broker: Broker, set: PolicySet) {
  return { ...set, file: set.source === 'runtime' ? `${broker.config.dataDir.replace(/\/$/, '')}/${POLICY_FILE}` : null };
}

export function replicationRoutes(app: FastifyInstance, { broker }: AdminContext): void {
  app.get<{ Querystring: { workers?: 'true' | 'false' } }>(
    '/v1/replication/status',
    {
      schema: {
        summary: 'Replication from this region: per link (remote, policy, topic) and per partition worker',
        tags: ['replication'],
        // The per-partition list is most of the body with thousands of partitions: the
        // dashboard, which shows links, asks without it.
        querystring: obj({ workers: { type: 'string', enum: ['true', 'false'], description: 'List every partition worker (default true; false: an empty workers list, links, remotes and holds unchanged)' } }, []),
        response: {
          200: obj({
            region: t.str,
            links: arr(ref('LinkStatus')),
            workers: arr(ref('WorkerStatus')),
            remotes: arr(obj({ remote: t.str, address: t.str, connected: t.bool, inFlightBytes: t.int, workers: t.int })),
            holds: arr(obj({ topic: t.str, partition: t.int, remote: t.str, file: t.str })),
          }),
        },
      },
    },
    async (req) => {
      const workers = broker.replicator.status();
      const holds = holdsOf(broker, workers);
      return {
        region: broker.config.region,
        links: linksOf(workers, holds),
        workers: req.query.workers === 'false' ? [] : workers,
        remotes: broker.replicator.links().map(({ remote, address, connected, inFlightBytes, workers: n }) => ({ remote, address, connected, inFlightBytes, workers: n })),
        holds,
      };
    },
  );

  app.get(
    '/v1/replication/policies',
    { schema: { summary: 'The replication policies in force, where they come from (config file or runtime) and their fingerprint', tags: ['replication'], response: { 200: ref('PolicySet') } } },
    async () => policySetBody(broker, broker.policies.current),
  );

  app.post<{ Body: { policies: unknown[] } }>(
    '/v1/replication/policies/validate',
    {
      schema: {
        summary: 'Dry run: whether the policies validate (as the config file\'s would), and which links would start and stop',
        tags: ['replication'],
        body: policiesBody,
        response: {
          200: obj({
            valid: t.bool,
            errors: arr(obj({ path: t.str, message: t.str })),
            fingerprint: t.nullableStr,
            changes: obj({ start: arr(ref('LinkChange')), stop: arr(ref('LinkChange')) }),
          }),
          ...errorResponses(400, 401),
        },
      },
    },
    async (req) => {
      try {
        const next = broker.policies.validate(req.body.policies);
        const changes = planPolicyChange(
          broker.replicator.policies,
          next,
          broker.config.region,
          broker.topics.listTopics().map((x) => x.name),
          new Set(broker.replicator.remoteRegions),
        );
        return { valid: true, errors: [], fingerprint: policyFingerprint(next), changes };
      } catch (err) {
        if (!(err instanceof PolicyError)) throw err;
        return { valid: false, errors: [{ path: err.path, message: err.message }], fingerprint: null, changes: { start: [], stop: [] } };
      }
    },
  );

  app.put<{ Body: { policies: unknown[] } }>(
    '/v1/replication/policies',
    {
      schema: {
        summary: 'Replace the policies at run time: applied at once and persisted in the data directory, where they win over the config file until DELETE',
        tags: ['replication'],
        body: policiesBody,
        response: { 200: ref('PolicySet'), ...errorResponses(400, 401) },
      },
    },
    // A region cluster keeps the set in etcd for all its brokers (cluster/policy-sync.ts).
    async (req) => policySetBody(broker, broker.cluster?.policies !== undefined ? await broker.cluster.policies.put(req.body.policies) : broker.policies.replace(req.body.policies, broker.replicator)),
  );

  app.delete(
    '/v1/replication/policies',
    { schema: { summary: 'Revert to the config file\'s policies (deletes the runtime set; idempotent)', tags: ['replication'], response: { 200: ref('PolicySet'), ...errorResponses(401) } } },
    async () => policySetBody(broker, broker.cluster?.policies !== undefined ? await broker.cluster.policies.revert() : broker.policies.revert(broker.replicator)),
  );
}
