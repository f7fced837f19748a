/**
 * Tiered storage's metrics: offload throughput, failures and queue per topic, the state of
 * the object store, and the cold-read cache. Registered only when tiered storage is enabled.
 * Read at scrape time from `TieredStorage.status()` (per partition) and the remote reader's
 * `stats()`; per-partition totals are summed per topic through MonotonicTotals, so a
 * deleted topic's uploads stay counted.
 */
import type { Registry } from 'prom-client';
import type { TieredStorage } from '../tiered/tiered-storage.js';
import { counterFrom, gaugeFrom, one, Sums, type Scrape } from './metrics-define.js';
import { MonotonicTotals } from './metrics-totals.js';

const OFFLOAD_STATES = ['idle', 'uploading', 'backing-off'] as const;

export function registerTieredMetrics(registry: Registry, scrape: Scrape, tiered: TieredStorage): void {
  const perTopic = (pick: (s: (typeof scrape.tiers)[number]) => number) => {
    const totals = new MonotonicTotals();
    return () => {
      const live = new Set(scrape.broker.topics.listTopics().map((t) => t.name));
      totals.forget((l) => !live.has(l.topic));
      return totals.update(scrape.tiers.map((s) => ({ source: `${s.topic}/${s.partition}`, labels: { topic: s.topic }, total: pick(s) })));
    };
  };
  counterFrom(registry, 'meridian_offload_bytes_total', 'Bytes of segments uploaded to the object store and committed to a manifest, by topic.', ['topic'], perTopic((s) => s.uploadedBytes));
  counterFrom(registry, 'meridian_offload_segments_total', 'Segments uploaded to the object store and committed to a manifest, by topic.', ['topic'], perTopic((s) => s.uploadedSegments));
  counterFrom(
    registry,
    'meridian_offload_failures_total',
    'Segment uploads that failed after their retries, by topic; each backs its partition off before the next attempt.',
    ['topic'],
    perTopic((s) => s.uploadFailures),
  );

  /** Sealed local segments the bucket does not hold yet: what the offloader still has to do. */
  const queue = () => {
    const segments = new Sums();
    const bytes = new Sums();
    for (const s of scrape.tiers) {
      const log = scrape.broker.topics.partition(s.topic, s.partition);
      if (log === undefined) continue;
      const remoteEnd = BigInt(s.remoteEndOffset);
      const waiting = log.segments().filter((seg) => seg.sealed && seg.nextOffset > remoteEnd);
      segments.add({ topic: s.topic }, waiting.length);
      bytes.add({ topic: s.topic }, waiting.reduce((n, seg) => n + seg.sizeBytes, 0));
    }
    return { segments: segments.samples(), bytes: bytes.samples() };
  };
  gaugeFrom(registry, 'meridian_offload_queue_segments', 'Sealed segments waiting to be offloaded (uploads in flight included), by topic.', ['topic'], () => queue().segments);
  gaugeFrom(registry, 'meridian_offload_queue_bytes', 'Bytes of sealed segments waiting to be offloaded (uploads in flight included), by topic.', ['topic'], () => queue().bytes);
  gaugeFrom(registry, 'meridian_offload_partitions', 'Tiered partitions by offload state: idle, uploading, or backing-off after a failure.', ['state'], () => {
    const sums = new Sums();
    for (const state of OFFLOAD_STATES) sums.add({ state }, 0);
    for (const s of scrape.tiers) sums.add({ state: s.state }, 1);
    return sums.samples();
  });
  gaugeFrom(registry, 'meridian_tiered_store_unavailable', '1 while the object store cannot be reached (the broker serves local data and retries), else 0.', [], () =>
    one(tiered.unavailable === null ? 0 : 1),
  );
  gaugeFrom(registry, 'meridian_tiered_pending_topics', 'Topics whose manifests could not be read yet (store unreachable): their local data is kept whole.', [], () =>
    one(tiered.pendingTopics.length),
  );

  const cache = () => tiered.reader.stats();
  counterFrom(registry, 'meridian_tiered_cache_hits_total', 'Block lookups of cold reads served from the read cache.', [], () => one(cache().hits));
  counterFrom(registry, 'meridian_tiered_cache_misses_total', 'Block lookups of cold reads not in the read cache (including those that joined a GET in flight).', [], () => one(cache().misses));
  gaugeFrom(registry, 'meridian_tiered_cache_bytes', 'Bytes of blocks held in the read cache now.', [], () => one(cache().bytesCached));
  gaugeFrom(registry, 'meridian_tiered_cache_capacity_bytes', 'The read cache\'s capacity (tiered.cache.bytes).', [], () => one(cache().capacityBytes));
  counterFrom(registry, 'meridian_tiered_cache_evictions_total', 'Blocks evicted from the read cache to make room.', [], () => one(cache().evictions));
  counterFrom(registry, 'meridian_tiered_fetched_bytes_total', 'Bytes fetched from the object store by cold reads (blocks, read-ahead and index objects).', [], () => one(cache().bytesFetched));
  counterFrom(registry, 'meridian_tiered_get_failures_total', 'GETs of cold reads that failed.', [], () => one(cache().getFailures));
  counterFrom(registry, 'meridian_tiered_read_bytes_total', 'Record bytes served from the object store to readers (Fetch, replication).', [], () => one(cache().bytesReturned));
}
