/**
 * The regions a multi-region command talks to (`status`, `replication apply`): the registry
 * of the region addressed (GET /v1/cluster), each with a client for its admin API. The region
 * addressed is reached at the address the operator gave (its registry entry may name an
 * address only reachable from elsewhere); the others at their registry `admin` address.
 */
import type { AdminClient } from '../admin-client.js';

export interface ClusterInfo {
  clusterId: string;
  region: string;
  nodeId: number;
  version: string;
  kafka: { host: string; port: number };
  admin: { host: string; port: number } | null;
  uptimeSeconds: number;
  tiered?: { enabled: boolean; store: string | null };
  regions: Array<{ name: string; address: string; admin: string | null }>;
}

export interface RegistryRegion {
  readonly name: string;
  /** The Kafka listener, host:port. */
  readonly address: string;
  /** The admin address used, or null when the registry names none. */
  readonly admin: string | null;
  readonly self: boolean;
  /** null when the registry names no admin address: nothing can be asked of that region. */
  readonly client: AdminClient | null;
}

export async function registryOf(client: AdminClient): Promise<{ cluster: ClusterInfo; regions: RegistryRegion[] }> {
  const cluster = await client.get<ClusterInfo>('/v1/cluster');
  const regions = cluster.regions.map((r): RegistryRegion => {
    const self = r.name === cluster.region;
    if (self) return { name: r.name, address: r.address, admin: client.address, self, client };
    return { name: r.name, address: r.address, admin: r.admin, self, client: r.admin === null ? null : client.forAddress(r.admin) };
  });
  if (!regions.some((r) => r.self)) {
    regions.unshift({ name: cluster.region, address: `${cluster.kafka.host}:${cluster.kafka.port}`, admin: client.address, self: true, client });
  }
  return { cluster, regions };
}
