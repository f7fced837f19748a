/**
 * Disaster recovery's metrics (dr/README.md), read at scrape time from `broker.dr`: each DR
 * topic's role here (its primary, whether it is a read-only copy, the promotion epoch and
 * the phase of an operation under way), the offset sync with each peer region, groups in
 * conflict, how old the primary's last reported partition ends are in a copy (what a
 * promote now would measure its recovery point against), and the replicated requests this
 * region refused because their sender is not the primary (`ReplicationTarget.stats`).
 *
 * Cardinality: DR topics (one-way and fan-out policies) and peer regions; per partition
 * only with `metrics.perPartition`.
 */
import type { Registry } from 'prom-client';
import type { DrPhase } from '../dr/dr-state.js';
import { counterFrom, gaugeFrom, one, type Sample, type Scrape } from './metrics-define.js';
import { MonotonicTotals } from './metrics-totals.js';

/** `policy`: no promote or failback happened here; the policy's source is the primary. */
const PHASES: ReadonlyArray<DrPhase | 'policy'> = ['policy', 'promoting', 'promoted', 'failing-back', 'following'];

export interface DrMetrics {
  /** Forgets the last scrape's status (called as each scrape begins). */
  begin(): void;
}

export function registerDrMetrics(registry: Registry, scrape: Scrape, opts: { perPartition: boolean }): DrMetrics {
  const { dr } = scrape.broker;
  // Several metrics read the same status: once per scrape.
  let topicsNow: ReturnType<typeof dr.topicStatus> | undefined;
  let syncNow: ReturnType<typeof dr.syncStatus> | undefined;
  const topics = () => (topicsNow ??= dr.topicStatus());
  const sync = () => (syncNow ??= dr.syncStatus());

  gaugeFrom(registry, 'meridian_dr_topic_primary', 'The region that is the primary of each DR topic (one-way and fan-out policies) as this region sees it: 1 for that region, no series for the others.', ['topic', 'primary'], () =>
    topics().map((t) => ({ labels: { topic: t.topic, primary: t.primary }, value: 1 })),
  );
  gaugeFrom(registry, 'meridian_dr_topic_read_only', '1 while the DR topic is a read-only copy here (producers are refused, replicated data comes from the primary), 0 where this region is its primary.', ['topic'], () =>
    topics().map((t) => ({ labels: { topic: t.topic }, value: t.readOnly ? 1 : 0 })),
  );
  gaugeFrom(registry, 'meridian_dr_topic_epoch', 'The DR topic\'s promotion epoch here: 0 under the policy\'s source, one more at each promote.', ['topic'], () =>
    topics().map((t) => ({ labels: { topic: t.topic }, value: t.epoch })),
  );
  gaugeFrom(
    registry,
    'meridian_dr_topic_phase',
    'The DR topic\'s phase here, 1 for the current one: policy (never promoted or failed back), promoting or failing-back (under way, or interrupted: the same command completes it), promoted, following.',
    ['topic', 'phase'],
    () => {
      const out: Sample[] = [];
      for (const t of topics()) for (const phase of PHASES) out.push({ labels: { topic: t.topic, phase }, value: t.phase === phase ? 1 : 0 });
      return out;
    },
  );

  // A copy: how old the primary's last reported end is, per topic the oldest over its partitions.
  gaugeFrom(
    registry,
    'meridian_dr_topic_primary_end_report_age_seconds',
    'In a read-only copy, the age of the primary\'s last reported partition end (what a promote now measures missing records against), the oldest over the topic\'s partitions that have one; no series where the primary never reported, or where this region is the primary.',
    ['topic'],
    () => {
      const out: Sample[] = [];
      for (const t of topics()) {
        if (t.primaryEnds.length === 0) continue;
        out.push({ labels: { topic: t.topic }, value: Math.max(...t.primaryEnds.map((e) => e.ageMs)) / 1000 });
      }
      return out;
    },
  );
  if (opts.perPartition) {
    gaugeFrom(
      registry,
      'meridian_dr_primary_end_report_age_seconds',
      'As meridian_dr_topic_primary_end_report_age_seconds, per partition; present with metrics.perPartition.',
      ['topic', 'partition'],
      () => topics().flatMap((t) => t.primaryEnds.map((e) => ({ labels: { topic: t.topic, partition: String(e.partition) }, value: e.ageMs / 1000 }))),
    );
  }

  const peer = (s: { region: string }) => ({ peer: s.region });
  gaugeFrom(registry, 'meridian_dr_offset_sync_connected', '1 while the offset sync connection to the peer region is up, else 0.', ['peer'], () =>
    sync().map((s) => ({ labels: peer(s), value: s.connected ? 1 : 0 })),
  );
  gaugeFrom(registry, 'meridian_dr_offset_sync_pending_commits', 'Group commits (one per group partition, the newest) the peer region has not acknowledged yet.', ['peer'], () =>
    sync().map((s) => ({ labels: peer(s), value: s.pendingCommits })),
  );
  gaugeFrom(registry, 'meridian_dr_offset_sync_last_success_age_seconds', 'Seconds since the peer region last acknowledged an offset sync; no series before the first.', ['peer'], () => {
    const now = Date.now();
    return sync().flatMap((s) => (s.lastSuccessAt === null ? [] : [{ labels: peer(s), value: Math.max(0, now - s.lastSuccessAt) / 1000 }]));
  });
  // A peer leaves the publisher when no policy names it any more: totals through MonotonicTotals.
  const syncTotals = (pick: (s: ReturnType<typeof dr.syncStatus>[number]) => number) => {
    const t = new MonotonicTotals();
    return () => t.update(sync().map((s) => ({ source: s.region, labels: peer(s), total: pick(s) })));
  };
  counterFrom(registry, 'meridian_dr_offset_sync_syncs_total', 'Offset syncs the peer region acknowledged.', ['peer'], syncTotals((s) => s.syncs));
  counterFrom(registry, 'meridian_dr_offset_sync_failures_total', 'Offset syncs to the peer region that failed (unreachable, refused); each is retried after a backoff.', ['peer'], syncTotals((s) => s.failures));

  gaugeFrom(registry, 'meridian_dr_group_conflicts', 'Group partitions a peer region committed while the group had members here: those commits are not applied (GET /v1/dr lists them).', [], () =>
    one(dr.conflicts().length),
  );

  const target = scrape.broker.replicationTarget.stats;
  counterFrom(
    registry,
    'meridian_replication_fenced_requests_total',
    'Replication handshakes and appends refused (REPLICATION_FENCED) because the sender is not the DR topic\'s primary here, holds an older epoch, or the topic is failing back.',
    [],
    () => one(target.fencedRequests),
  );

  return {
    begin: () => {
      topicsNow = undefined;
      syncNow = undefined;
    },
  };
}
