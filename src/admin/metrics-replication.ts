/**
 * Geo-replication's metrics. The sending side per link: this region (the registry's
 * `region` label) to `remote_region`, for one `topic`, aggregated over the topic's
 * partitions from `Replicator.status()` at scrape time: lag (the oldest unsent record's age,
 * the largest over the partitions), backlog, throughput, retries, quota drops and how many
 * partitions are in each state. Per remote, whether it is connected. The receiving side:
 * what other regions' replicators appended here (`ReplicationTarget.stats`).
 *
 * Cardinality: remote regions × replicated topics, never partitions.
 */
import type { Registry } from 'prom-client';
import type { WorkerState } from '../replication/worker.js';
import { counterFrom, gaugeFrom, one, Sums, type Sample, type Scrape } from './metrics-define.js';
import { MonotonicTotals } from './metrics-totals.js';

const WORKER_STATES: readonly WorkerState[] = ['starting', 'running', 'idle', 'backing-off', 'error', 'stopped'];
const LINK = ['remote_region', 'topic'];

export function registerReplicationMetrics(registry: Registry, scrape: Scrape): void {
  const { broker } = scrape;
  const link = (w: { remote: string; topic: string }) => ({ remote_region: w.remote, topic: w.topic });
  const summed = (pick: (w: (typeof scrape.workers)[number]) => number) => (): Sample[] => {
    const sums = new Sums();
    for (const w of scrape.workers) sums.add(link(w), pick(w));
    return sums.samples();
  };

  gaugeFrom(
    registry,
    'meridian_replication_lag_seconds',
    'Age of the oldest record the remote region does not hold yet, the largest over the topic\'s partitions; 0 when caught up.',
    LINK,
    () => {
      const max = new Map<string, Sample>();
      for (const w of scrape.workers) {
        const key = `${w.remote}\u0000${w.topic}`;
        const seen = max.get(key);
        if (seen === undefined || w.lagSeconds > seen.value) max.set(key, { labels: link(w), value: w.lagSeconds });
      }
      return max.values();
    },
  );
  gaugeFrom(registry, 'meridian_replication_lag_records', 'Records of this region\'s log the remote region does not hold yet (the backlog), summed over the topic\'s partitions.', LINK, summed((w) => w.backlogRecords));
  gaugeFrom(registry, 'meridian_replication_backlog_bytes', 'Bytes of the backlog, summed over the topic\'s partitions: what retention keeps on disk (or in the bucket) for this link.', LINK, summed((w) => w.backlogBytes));
  gaugeFrom(registry, 'meridian_replication_throughput_bytes_per_second', 'Bytes sent to the remote region per second over the last 10 s (rate(meridian_replication_sent_bytes_total) is the same over any window).', LINK, summed((w) => w.bytesPerSecond));
  gaugeFrom(registry, 'meridian_replication_throughput_records_per_second', 'Records sent to the remote region per second over the last 10 s.', LINK, summed((w) => w.recordsPerSecond));

  // Workers stop and start with policy changes: totals through MonotonicTotals.
  const totals = (pick: (w: (typeof scrape.workers)[number]) => number) => {
    const t = new MonotonicTotals();
    return () => t.update(scrape.workers.map((w) => ({ source: `${w.topic}/${w.partition}/${w.remote}`, labels: link(w), total: pick(w) })));
  };
  counterFrom(registry, 'meridian_replication_sent_bytes_total', 'Batch bytes the remote region acknowledged.', LINK, totals((w) => w.sentBytes));
  counterFrom(registry, 'meridian_replication_sent_records_total', 'Records the remote region acknowledged.', LINK, totals((w) => w.sentRecords));
  counterFrom(registry, 'meridian_replication_retries_total', 'Times a partition\'s replication failed and was retried after a backoff (remote unreachable or not ready).', LINK, totals((w) => w.retries));
  counterFrom(
    registry,
    'meridian_replication_quota_dropped_records_total',
    'Records retention deleted before the remote region got them, because the backlog exceeded the policy\'s backlogQuota.',
    LINK,
    totals((w) => w.quotaDroppedRecords),
  );
  gaugeFrom(
    registry,
    'meridian_replication_partitions',
    'Partitions of the link by state: starting, running, idle (caught up), backing-off (retrying), error (stopped until an operator acts), stopped.',
    [...LINK, 'state'],
    () => {
      const sums = new Sums();
      const links = new Map(scrape.workers.map((w) => [`${w.remote}\u0000${w.topic}`, link(w)]));
      for (const l of links.values()) for (const state of WORKER_STATES) sums.add({ ...l, state }, 0);
      for (const w of scrape.workers) sums.add({ ...link(w), state: w.state }, 1);
      return sums.samples();
    },
  );
  gaugeFrom(registry, 'meridian_replication_remote_connected', '1 while the connection to the remote region is up, else 0.', ['remote_region'], () =>
    broker.replicator.links().map((l) => ({ labels: { remote_region: l.remote }, value: l.connected ? 1 : 0 })),
  );
  gaugeFrom(registry, 'meridian_replication_in_flight_bytes', 'Bytes read for and sent to the remote region and not yet acknowledged (bounded by replication.maxInFlightBytes).', ['remote_region'], () =>
    broker.replicator.links().map((l) => ({ labels: { remote_region: l.remote }, value: l.inFlightBytes })),
  );

  gaugeFrom(registry, 'meridian_replication_read_buffer_pool_bytes', 'Memory of read buffers kept free for the replicator\'s next reads (each is given back once its request is answered).', [], () => one(broker.replicator.readBuffers().pooledBytes));
  counterFrom(registry, 'meridian_replication_read_buffers_total', 'Replicator reads of 16 KiB or more, by whether their buffer was reused from the pool or newly allocated.', ['outcome'], () => {
    const b = broker.replicator.readBuffers();
    return [
      { labels: { outcome: 'reused' }, value: b.reused },
      { labels: { outcome: 'allocated' }, value: b.allocated },
    ];
  });

  const target = broker.replicationTarget.stats;
  counterFrom(registry, 'meridian_replication_received_bytes_total', 'Batch bytes other regions replicated into this region\'s logs.', [], () => one(target.appendedBytes));
  counterFrom(registry, 'meridian_replication_received_batches_total', 'Batches other regions replicated into this region\'s logs.', [], () => one(target.appendedBatches));
  counterFrom(registry, 'meridian_replication_duplicate_batches_total', 'Replicated batches this region already held (acknowledged, not appended again).', [], () => one(target.duplicateBatches));
  counterFrom(registry, 'meridian_replication_loop_dropped_batches_total', 'Replicated batches dropped because they originated here or already passed through here.', [], () => one(target.loopDroppedBatches));
}
