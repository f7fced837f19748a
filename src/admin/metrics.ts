/**
 * Prometheus metrics of one broker, in its own prom-client registry (several brokers may
 * share a process: the dev mesh), served by the admin API at GET /metrics. Every series
 * carries the broker's `region`. The names, labels and meanings are listed in METRICS.md.
 *
 * Gauges and most counters are computed when Prometheus scrapes, from the status functions
 * the broker already keeps (the listener, the logs, tiered storage, the replicator, the
 * group coordinator, disaster recovery); only Kafka requests are counted as they happen,
 * through the broker's request observers. Cardinality stays bounded with many partitions: series are
 * per topic, link or group, per partition only with `metrics.perPartition`.
 *
 * A scrape renders one metric at a time and lets the event loop turn between them: with
 * thousands of topics a scrape is tens of thousands of series and a few hundred ms of CPU
 * (bench:scale), which in one piece would stall every request the broker is serving for as
 * long; in pieces, the longest stall is the largest single metric's.
 *
 * Lifecycle: built once the broker has started; `close()` stops listening to requests and
 * empties the registry (idempotent). It does not close the broker.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Broker } from '../broker/broker.js';
import { Scrape } from './metrics-define.js';
import { registerDrMetrics } from './metrics-dr.js';
import { registerGroupMetrics } from './metrics-groups.js';
import { registerKafkaMetrics } from './metrics-kafka.js';
import { registerQuotaMetrics } from './metrics-quotas.js';
import { registerReplicationMetrics } from './metrics-replication.js';
import { registerClusterMetrics } from './metrics-cluster.js';
import { registerSecurityMetrics } from './metrics-security.js';
import { registerStorageMetrics } from './metrics-storage.js';
import { registerTieredMetrics } from './metrics-tiered.js';

export interface BrokerMetrics {
  readonly contentType: string;
  /** The text exposition of every metric, collected now. */
  render(): Promise<string>;
  close(): void;
}

export interface BrokerMetricsOptions {
  /** Per-partition series (bytes per tier, high watermark, a DR copy's end report age); default: `metrics.perPartition` of the broker's config. */
  perPartition?: boolean;
  /** Node.js process metrics (CPU, memory, event loop lag, GC); default true. */
  processMetrics?: boolean;
}

export function createBrokerMetrics(broker: Broker, opts: BrokerMetricsOptions = {}): BrokerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ region: broker.config.region });
  if (opts.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const scrape = new Scrape(broker);
  const stopRequests = registerKafkaMetrics(registry, broker);
  const perPartition = opts.perPartition ?? broker.config.metrics.perPartition;
  registerStorageMetrics(registry, scrape, { perPartition });
  if (broker.tiered !== undefined) registerTieredMetrics(registry, scrape, broker.tiered);
  registerReplicationMetrics(registry, scrape);
  if (broker.cluster !== undefined) registerClusterMetrics(registry, broker.cluster);
  registerGroupMetrics(registry, scrape);
  const dr = registerDrMetrics(registry, scrape, { perPartition });
  registerSecurityMetrics(registry, scrape);
  registerQuotaMetrics(registry, scrape);
  let closed = false;
  return {
    contentType: registry.contentType,
    render: async () => {
      scrape.begin();
      dr.begin();
      // What registry.metrics() returns for the text format, metric by metric.
      const parts: string[] = [];
      for (const metric of registry.getMetricsAsArray()) {
        parts.push(await registry.getSingleMetricAsString(metric.name));
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      return `${parts.join('\n\n')}\n`;
    },
    close: () => {
      if (closed) return;
      closed = true;
      stopRequests();
      registry.clear();
    },
  };
}
