/**
 * How the broker's metrics are declared: gauges and counters whose values are read from the
 * broker's own status functions when Prometheus scrapes (prom-client `collect` callbacks),
 * so nothing is counted twice and nothing runs between scrapes. `Scrape` holds what one
 * scrape read, so several metrics built on the same status call it once.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Broker } from '../broker/broker.js';
import type { WorkerStatus } from '../replication/worker.js';
import type { PartitionTierStatus } from '../tiered/tiered-storage.js';

export interface Sample {
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** A gauge whose series are exactly what `read` returns at each scrape. */
export function gaugeFrom(registry: Registry, name: string, help: string, labelNames: readonly string[], read: () => Iterable<Sample> | Promise<Iterable<Sample>>): Gauge {
  return new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    async collect(this: Gauge) {
      const samples = await read();
      this.reset();
      for (const s of samples) this.set(s.labels, s.value);
    },
  });
}

/**
 * A counter whose series are the totals `read` returns at each scrape; they must never go
 * down (sum sources that come and go through `MonotonicTotals`).
 */
export function counterFrom(registry: Registry, name: string, help: string, labelNames: readonly string[], read: () => Iterable<Sample>): Counter {
  return new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect(this: Counter) {
      const samples = read();
      this.reset();
      for (const s of samples) this.inc(s.labels, s.value);
    },
  });
}

/** A metric without labels. */
export function one(value: number): Sample[] {
  return [{ labels: {}, value }];
}

/** Sums values into series keyed by their labels. */
export class Sums {
  readonly #series = new Map<string, { labels: Record<string, string>; value: number }>();

  add(labels: Record<string, string>, value: number): void {
    const key = Object.values(labels).join('\u0000');
    const s = this.#series.get(key);
    if (s === undefined) this.#series.set(key, { labels, value });
    else s.value += value;
  }

  samples(): Sample[] {
    return [...this.#series.values()];
  }
}

/**
 * What one scrape reads from the broker, each status function called at most once per
 * scrape (`begin` forgets the last scrape's).
 */
export class Scrape {
  readonly broker: Broker;
  #tiers: PartitionTierStatus[] | undefined;
  #workers: WorkerStatus[] | undefined;

  constructor(broker: Broker) {
    this.broker = broker;
  }

  begin(): void {
    this.#tiers = undefined;
    this.#workers = undefined;
  }

  /** Tiered storage's per-partition status; empty without tiered storage. */
  get tiers(): PartitionTierStatus[] {
    this.#tiers ??= this.broker.tiered?.status() ?? [];
    return this.#tiers;
  }

  /** The replicator's per-(topic, partition, remote) workers. */
  get workers(): WorkerStatus[] {
    this.#workers ??= this.broker.replicator.status();
    return this.#workers;
  }
}
