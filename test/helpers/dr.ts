/**
 * What the disaster-recovery tests share: regions started with their admin APIs and one
 * topic created in the first region, Kafka clients that disconnect before the regions stop
 * (a consumer left running against a stopped region retries forever), and admin API calls.
 */
import type { TestContext } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { Regions, type MeshOptions, type Region } from './regions.js';

export function drKafka(bootstrap: string, clientId: string): Kafka {
  return new Kafka({ clientId, brokers: [bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 5, initialRetryTime: 100 } });
}

export interface DrRegions {
  regions: Regions;
  /** Disconnects run (newest first) before the regions stop. */
  clients: Array<() => Promise<void>>;
}

/** Starts `o.names` with admin APIs and no topic auto-creation; creates `topic` in the first one. */
export async function startDrRegions(t: TestContext, o: Omit<MeshOptions, 'admin' | 'overrides'>, topic: { name: string; partitions: number }): Promise<DrRegions> {
  const regions = await Regions.create({ ...o, admin: true, overrides: { topics: { autoCreate: false } } });
  const clients: Array<() => Promise<void>> = [];
  t.after(async () => {
    for (const c of clients.reverse()) await c().catch(() => {});
    await regions.close();
  });
  await regions.start();
  const admin = drKafka(regions.list[0].bootstrap, 'admin').admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: topic.name, numPartitions: topic.partitions }] });
  await admin.disconnect();
  return { regions, clients };
}

/** One call to a region's admin API: the status and the parsed body. */
export async function adminCall<T>(region: Region, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(`http://127.0.0.1:${region.adminPort}${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as T };
}
