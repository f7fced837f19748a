/**
 * A region cluster's metrics (src/cluster, `cluster.etcd.endpoints` set): whether etcd
 * answers, whether this broker is the controller, the partitions it leads and follows and
 * the region's offline ones. Nothing is registered on a single broker.
 *
 * Cardinality: constant (two `role` values).
 */
import type { Registry } from 'prom-client';
import type { ClusterNode } from '../cluster/cluster-node.js';
import { gaugeFrom, one } from './metrics-define.js';

export function registerClusterMetrics(registry: Registry, cluster: ClusterNode): void {
  gaugeFrom(registry, 'meridian_cluster_riding_etcd_outage', '1 while this broker leads on through an etcd outage that every in-sync peer of its partitions sees too (cluster.rideThroughEtcdOutage), else 0.', [], () => one(cluster.status().ridingThroughEtcdOutage ? 1 : 0));
  gaugeFrom(registry, 'meridian_cluster_etcd_up', '1 while this broker\'s etcd calls succeed, 0 since one failed (GET /v1/cluster says why).', [], () => one(cluster.region.status().reachable ? 1 : 0));
  gaugeFrom(registry, 'meridian_cluster_is_controller', '1 while this broker is the region\'s elected controller.', [], () => one(cluster.controller?.isController() === true ? 1 : 0));
  gaugeFrom(registry, 'meridian_cluster_partitions', 'Partitions by this broker\'s role in their etcd state: role="leader" led here, role="follower" a replica here led by another broker.', ['role'], () => {
    const c = cluster.partitionCounts();
    return [
      { labels: { role: 'leader' }, value: c.led },
      { labels: { role: 'follower' }, value: c.followed },
    ];
  });
  gaugeFrom(registry, 'meridian_cluster_offline_partitions', 'Partitions of the region with no leader (every in-sync replica is down), as this broker sees etcd.', [], () => one(cluster.partitionCounts().offline));
}
