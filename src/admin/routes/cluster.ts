/**
 * GET /v1/cluster (this broker; with `regionCluster` its region cluster on etcd: members,
 * controller, its lease, etcd's status with the last error, partitions led, followed and
 * offline) and GET /v1/regions (the registry, each remote's links, and
 * whether every region holds the same replication policies).
 *
 * Policy agreement is checked here rather than only in the CLI so that the dashboard and
 * `meridian status` show it from any one region: for each region whose registry entry names
 * an `admin` address, GET /v1/regions asks that region's GET /v1/replication/policies for its
 * fingerprint, in parallel, with a short timeout (`peerTimeoutMs`, 1 s), sending this
 * broker's own token (regions of one deployment share it). An unreachable peer is
 * `unknown`, never a disagreement.
 */
import type { FastifyInstance } from 'fastify';
import { parseRegions } from '../../replication/policy.js';
import type { WorkerStatus } from '../../replication/worker.js';
import type { AdminContext } from '../app.js';
import { arr, obj, ref, schemaTypes as t } from '../schemas.js';

const STATE_RANK = ['idle', 'running', 'starting', 'backing-off', 'error'] as const;

/** The most alarming state among workers: error first. */
export function worstState(states: readonly string[]): WorkerStatus['state'] {
  let worst = 0;
  for (const s of states) worst = Math.max(worst, STATE_RANK.indexOf(s as (typeof STATE_RANK)[number]));
  return STATE_RANK[worst];
}

export function clusterRoutes(app: FastifyInstance, ctx: AdminContext): void {
  const { broker } = ctx;
  const hostPort = obj({ host: t.str, port: t.int });
  app.get(
    '/v1/cluster',
    {
      schema: {
        summary: 'This broker: cluster id, region, versions, listeners, the region registry',
        tags: ['cluster'],
        response: {
          200: obj({
            clusterId: t.str,
            region: t.str,
            nodeId: t.int,
            version: t.str,
            kafka: hostPort,
            admin: { anyOf: [hostPort, { type: 'null' }] },
            uptimeSeconds: t.num,
            tiered: obj({ enabled: t.bool, store: t.nullableStr }),
            regions: arr(obj({ name: t.str, address: t.str, admin: t.nullableStr })),
            regionCluster: {
              anyOf: [
                obj({
                  nodeId: t.int,
                  controllerId: { ...t.int, description: 'the elected controller; -1 while none' },
                  isController: t.bool,
                  leaseId: t.nullableStr,
                  brokerEpoch: t.str,
                  leaseValidForMs: { ...t.int, description: 'how long this broker still counts itself a member without a renewal; 0: fenced (leads nothing), or riding' },
                  ridingThroughEtcdOutage: { ...t.bool, description: 'etcd answers neither this broker nor any in-sync peer of what it leads, and it leads on (cluster.rideThroughEtcdOutage)' },
                  etcd: obj({ reachable: t.bool, lastError: t.nullableStr, since: t.int, failures: t.int, endpoints: arr(t.str) }),
                  members: arr(obj({ nodeId: t.int, kafka: hostPort, listeners: { type: 'object', additionalProperties: hostPort, description: 'every listener\'s advertised address by name' }, admin: { anyOf: [hostPort, { type: 'null' }] }, rack: t.nullableStr, startedAt: t.int }, ['nodeId', 'kafka', 'admin', 'rack', 'startedAt'])),
                  partitions: obj({ led: t.int, followed: t.int, offline: t.int }),
                }),
                { type: 'null' },
              ],
              description: 'the region cluster on etcd (cluster.etcd.endpoints set); null on a single broker',
            },
          }),
        },
      },
    },
    async () => ({
      clusterId: broker.clusterId,
      region: broker.config.region,
      nodeId: broker.config.nodeId,
      version: ctx.version,
      kafka: broker.kafkaAdvertised,
      admin: ctx.options.address?.() ?? null,
      uptimeSeconds: (Date.now() - broker.startedAt) / 1000,
      tiered: { enabled: broker.tiered !== undefined, store: broker.tiered?.store.name ?? null },
      regions: registry(ctx).map((r) => ({ name: r.name, address: r.address, admin: r.admin ?? null })),
      regionCluster: broker.cluster === undefined ? null : { ...broker.cluster.status(), partitions: broker.cluster.partitionCounts() },
    }),
  );

  app.get(
    '/v1/regions',
    {
      schema: {
        summary: 'The region registry: each remote region\'s links from here and whether its replication policies agree with this region\'s',
        tags: ['cluster'],
        response: {
          200: arr(
            obj({
              name: t.str,
              address: t.str,
              admin: t.nullableStr,
              self: t.bool,
              fingerprint: { ...t.nullableStr, description: 'the region\'s policy fingerprint; null when it could not be asked' },
              policiesAgree: { type: ['boolean', 'null'], description: 'same fingerprint as this region; null: unknown (no admin address, unreachable)' },
              policyError: { ...t.nullableStr, description: 'why the fingerprint is unknown' },
              links: arr(obj({ policy: t.str, topics: t.int, state: t.str, error: t.nullableStr, lagSeconds: t.num, backlogRecords: t.int, backlogBytes: t.int, bytesPerSecond: t.num })),
            }),
          ),
        },
      },
    },
    async (req) => {
      const own = broker.policies.current.fingerprint;
      const workers = broker.replicator.status();
      return Promise.all(
        registry(ctx).map(async (r) => {
          const self = r.name === broker.config.region;
          const peer = self ? { fingerprint: own, error: null } : await peerFingerprint(r.admin, ctx, req.headers.authorization);
          const mine = workers.filter((w) => w.remote === r.name);
          const policies = [...new Set(mine.map((w) => w.policy))].sort();
          return {
            name: r.name,
            address: r.address,
            admin: r.admin ?? null,
            self,
            fingerprint: peer.fingerprint,
            policiesAgree: peer.fingerprint === null ? null : peer.fingerprint === own,
            policyError: peer.error,
            links: policies.map((policy) => {
              const ws = mine.filter((w) => w.policy === policy);
              return {
                policy,
                topics: new Set(ws.map((w) => w.topic)).size,
                state: worstState(ws.map((w) => w.state)),
                error: ws.find((w) => w.error !== null)?.error ?? null,
                lagSeconds: Math.max(0, ...ws.map((w) => w.lagSeconds)),
                backlogRecords: ws.reduce((n, w) => n + w.backlogRecords, 0),
                backlogBytes: ws.reduce((n, w) => n + w.backlogBytes, 0),
                bytesPerSecond: ws.reduce((n, w) => n + w.bytesPerSecond, 0),
              };
            }),
          };
        }),
      );
    },
  );
}

function registry(ctx: AdminContext) {
  const regions = parseRegions(ctx.broker.config.replication.regions);
  if (regions.length > 0) return regions;
  // A broker without a registry is a region of one.
  const k = ctx.broker.kafkaAdvertised;
  const admin = ctx.options.address?.();
  return [{ name: ctx.broker.config.region, address: `${k.host}:${k.port}`, ...(admin ? { admin: `${admin.host}:${admin.port}` } : {}) }];
}

async function peerFingerprint(admin: string | undefined, ctx: AdminContext, callerAuthorization: string | undefined): Promise<{ fingerprint: string | null; error: string | null }> {
  if (admin === undefined) return { fingerprint: null, error: 'no admin address in replication.regions' };
  const token = ctx.options.token;
  const authorization = token !== null ? `Bearer ${token}` : callerAuthorization;
  try {
    const res = await fetch(`http://${admin}/v1/replication/policies`, {
      headers: authorization === undefined ? {} : { authorization },
      signal: AbortSignal.timeout(ctx.options.peerTimeoutMs ?? 1000),
    });
    if (!res.ok) return { fingerprint: null, error: `${admin} answered HTTP ${res.status}` };
    const body = (await res.json()) as { fingerprint?: unknown };
    return typeof body.fingerprint === 'string' ? { fingerprint: body.fingerprint, error: null } : { fingerprint: null, error: `${admin} sent no fingerprint` };
  } catch (err) {
    return { fingerprint: null, error: `cannot reach ${admin}: ${(err as Error).message}` };
  }
}
