/**
 * Prometheus metrics of one broker, in its own prom-client registry (several brokers may
 * share a process: the dev mesh), served by the admin API at GET /metrics.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Broker } from '../broker/broker.js';

export interface BrokerMetrics {
  readonly contentType: string;
  /** The text exposition of every metric, collected now. */
  render(): Promise<string>;
  close(): void;
}

export function createBrokerMetrics(broker: Broker): BrokerMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ region: broker.config.region });
  collectDefaultMetrics({ register: registry });
  return {
    contentType: registry.contentType,
    render: () => registry.metrics(),
    close: () => registry.clear(),
  };
}
