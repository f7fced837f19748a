/**
 * What the partitions hold and how healthy their storage is: bytes per tier (aggregated per
 * topic; per partition only with `metrics.perPartition`, since a broker may hold thousands
 * of partitions), offline partitions, corrupt reads and appends refused for a full disk.
 * Everything is read from the logs and tiered storage's status at scrape time.
 */
import type { Registry } from 'prom-client';
import type { PartitionLog } from '../storage/partition-log.js';
import { counterFrom, gaugeFrom, one, Sums, type Sample, type Scrape } from './metrics-define.js';
import { MonotonicTotals } from './metrics-totals.js';

export function registerStorageMetrics(registry: Registry, scrape: Scrape, opts: { perPartition: boolean }): void {
  const { broker } = scrape;
  const topics = broker.topics;

  gaugeFrom(registry, 'meridian_topic_partitions', 'Partitions of each topic.', ['topic'], () =>
    topics.listTopics().map((t) => ({ labels: { topic: t.name }, value: t.partitions })),
  );

  /**
   * Local bytes are the partition logs' segments on disk; tiered bytes the segments the
   * bucket's manifests name. A segment offloaded and not yet deleted locally is in both.
   */
  const tierBytes = (): Array<{ topic: string; partition: number; tier: 'local' | 'tiered'; bytes: number }> => {
    const out: Array<{ topic: string; partition: number; tier: 'local' | 'tiered'; bytes: number }> = [];
    for (const t of topics.listTopics()) {
      topics.partitions(t.name).forEach((log, partition) => out.push({ topic: t.name, partition, tier: 'local', bytes: log.sizeBytes }));
    }
    for (const s of scrape.tiers) out.push({ topic: s.topic, partition: s.partition, tier: 'tiered', bytes: s.remoteBytes });
    return out;
  };
  gaugeFrom(
    registry,
    'meridian_topic_bytes',
    'Bytes each topic holds, summed over its partitions, by tier: local (segments on this broker\'s disk) or tiered (segments in the object store). An offloaded segment still on disk counts in both.',
    ['topic', 'tier'],
    () => {
      const sums = new Sums();
      // Every topic shows both tiers, so a dashboard's tiered line starts at 0.
      for (const t of topics.listTopics()) for (const tier of ['local', 'tiered']) sums.add({ topic: t.name, tier }, 0);
      for (const b of tierBytes()) sums.add({ topic: b.topic, tier: b.tier }, b.bytes);
      return sums.samples();
    },
  );
  if (opts.perPartition) {
    gaugeFrom(registry, 'meridian_partition_bytes', 'Bytes each partition holds, by tier (as meridian_topic_bytes); present with metrics.perPartition.', ['topic', 'partition', 'tier'], () =>
      tierBytes().map((b) => ({ labels: { topic: b.topic, partition: String(b.partition), tier: b.tier }, value: b.bytes })),
    );
    gaugeFrom(registry, 'meridian_partition_high_watermark', 'Each partition\'s high watermark: the offset the next record gets; present with metrics.perPartition.', ['topic', 'partition'], () =>
      topics.listTopics().flatMap((t) => topics.partitions(t.name).map((log, p) => ({ labels: { topic: t.name, partition: String(p) }, value: Number(log.highWatermark) }))),
    );
  }

  gaugeFrom(registry, 'meridian_storage_offline_partitions', 'Partitions whose log went offline after a disk error it cannot recover from; they serve nothing until a restart.', [], () =>
    one(topics.listTopics().reduce((n, t) => n + topics.partitions(t.name).filter((l) => l.offline).length, 0)),
  );

  // Per-log counters end with their topic: keep what they counted (MonotonicTotals).
  const logTotals = (pick: (s: LogStats) => number) => {
    const totals = new MonotonicTotals();
    return (): Sample[] =>
      totals.update(topics.listTopics().flatMap((t) => topics.partitions(t.name).map((log, p) => ({ source: `${t.id}/${p}`, labels: {}, total: pick(log.stats()) }))));
  };
  const localCorrupt = logTotals((s) => s.corruptReads);
  counterFrom(
    registry,
    'meridian_storage_corrupt_reads_total',
    'Reads that found a batch failing its CRC, by tier: local (a sealed segment on disk) or tiered (an object from the store). Corrupt bytes are never served.',
    ['tier'],
    () => [{ labels: { tier: 'local' }, value: sum(localCorrupt()) }, { labels: { tier: 'tiered' }, value: broker.tiered?.reader.stats().corruptions ?? 0 }],
  );
  // Resources shared by every partition (storage/README.md "Many partitions").
  gaugeFrom(registry, 'meridian_storage_open_files', 'Segment files this broker holds open now (the descriptor cache; busy files may briefly exceed its bound).', [], () => one(topics.resourceStats().openFiles));
  gaugeFrom(registry, 'meridian_storage_open_files_limit', 'The bound on open segment files (log.maxOpenFiles).', [], () => one(topics.resourceStats().maxOpenFiles));
  counterFrom(registry, 'meridian_storage_file_evictions_total', 'Idle segment files closed to stay under log.maxOpenFiles (reopened on their next read or write); a fast rise means the bound is too small for the working set.', [], () =>
    one(topics.resourceStats().fdEvictions),
  );
  gaugeFrom(registry, 'meridian_storage_tail_cache_bytes', 'Memory holding the newest bytes of followed partitions (log.tailCacheBytes bounds it).', [], () => one(topics.resourceStats().tailCacheBytes));
  counterFrom(registry, 'meridian_storage_tail_cache_reads_total', 'Reads at the end of a log answered from memory instead of the disk (consumers, replicators and followers at the tail).', [], () =>
    one(topics.resourceStats().tailCacheHits),
  );
  counterFrom(registry, 'meridian_storage_tail_cache_evictions_total', 'Partitions that gave up their cached tail to stay under log.tailCacheBytes (their next reads go to the disk); a fast rise means more partitions are followed than it holds.', [], () =>
    one(topics.resourceStats().tailCacheEvictions),
  );
  // The shared journal of fsync mode (log.flush.journal; storage/README.md "the shared journal"): 0 when off.
  counterFrom(registry, 'meridian_storage_journal_records_total', 'Partition write rounds made durable through the shared journal instead of by their own fdatasync (log.flush.journal).', [], () =>
    one(topics.resourceStats().journalRecords),
  );
  counterFrom(registry, 'meridian_storage_journal_syncs_total', 'Journal group commits: one write and one fdatasync each, for every record pending at the time.', [], () => one(topics.resourceStats().journalGroups));
  counterFrom(registry, 'meridian_storage_journal_bytes_total', 'Bytes written to the shared journal (records and their headers).', [], () => one(topics.resourceStats().journalBytes));
  counterFrom(registry, 'meridian_storage_journal_rotations_total', 'Journal generations started; each older one is kept as a spare file (or deleted) once one syncfs made its segments durable.', [], () => one(topics.resourceStats().journalRotations));
  counterFrom(registry, 'meridian_storage_journal_reused_total', 'Journal generations started in a spare file (a retired generation written over, so its fdatasyncs commit no file-system metadata) rather than a new one.', [], () => one(topics.resourceStats().journalReused));
  counterFrom(registry, 'meridian_storage_journal_checkpoints_total', 'Times a journal write ran out of space and the journal gave back the space it held (one sync, then its file cut to nothing) before trying again.', [], () =>
    one(topics.resourceStats().journalCheckpoints),
  );
  gaugeFrom(registry, 'meridian_storage_pending_flushes', 'Partitions waiting for their interval fdatasync (flush mode interval); 0 and no timer when nothing is dirty.', [], () => one(topics.resourceStats().pendingFlushes));
  gaugeFrom(
    registry,
    'meridian_storage_recovery_segments',
    'What the last start-up\'s recovery did with each segment: trusted (sealed, from its index alone) or scanned (batch by batch, wholly or past the recovery checkpoint).',
    ['how'],
    () => {
      const r = topics.recoveryStats();
      return [
        { labels: { how: 'trusted' }, value: r.trustedSealed },
        { labels: { how: 'scanned' }, value: r.scannedSegments },
      ];
    },
  );
  gaugeFrom(registry, 'meridian_storage_recovery_scanned_bytes', 'Bytes of segment data the last start-up\'s recovery read: the unflushed tails, not the history.', [], () => one(topics.recoveryStats().scannedBytes));

  // Interval mode: records replicated before their fdatasync, below a ship fence (storage/ship-fence.ts).
  const fenceWrites = logTotals((s) => s.shipFenceWrites);
  counterFrom(registry, 'meridian_storage_ship_fence_writes_total', 'Ship fences persisted (flush mode interval): each lets a partition\'s replicators send the next 100,000 offsets before their fdatasync.', [], () => one(sum(fenceWrites())));
  gaugeFrom(
    registry,
    'meridian_storage_recovery_skipped_offsets',
    'Offsets the last start-up skipped because the machine had lost power since records below the ship fence were replicated unsynced (flush mode interval): new records start past any a remote may hold. Not 0 means records acknowledged here were lost here (the remote regions may still hold them).',
    [],
    () => one(topics.listTopics().reduce((n, t) => n + topics.partitions(t.name).reduce((m, l) => m + l.stats().skippedOffsets, 0), 0)),
  );

  const refused = logTotals((s) => s.refusedOutOfSpace);
  counterFrom(registry, 'meridian_storage_refused_appends_total', 'Appends refused because the disk was full (the producer gets a retriable KAFKA_STORAGE_ERROR).', [], () => one(sum(refused())));
}

type LogStats = ReturnType<PartitionLog['stats']>;

function sum(samples: readonly Sample[]): number {
  return samples.reduce((n, s) => n + s.value, 0);
}
