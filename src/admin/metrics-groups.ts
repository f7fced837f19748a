/**
 * Consumer groups' metrics, read from the group coordinator at scrape time: how many groups
 * are in each state, their members, and each group's lag per topic: the high watermark
 * minus the committed offset, summed over the partitions that have a commit (a partition
 * never committed has no lag to speak of, as in Kafka's own tools).
 *
 * Cardinality: groups × the topics they committed to.
 */
import type { Registry } from 'prom-client';
import { GroupState } from '../broker/groups/group-api.js';
import { gaugeFrom, one, Sums, type Scrape } from './metrics-define.js';

export function registerGroupMetrics(registry: Registry, scrape: Scrape): void {
  const { groups, topics } = scrape.broker;

  gaugeFrom(registry, 'meridian_consumer_groups', 'Consumer groups by state (a group with committed offsets and no members is Empty).', ['state'], () => {
    const sums = new Sums();
    for (const state of Object.values(GroupState)) if (state !== GroupState.Dead) sums.add({ state }, 0);
    for (const g of groups.listGroups()) sums.add({ state: g.groupState }, 1);
    return sums.samples();
  });
  gaugeFrom(registry, 'meridian_consumer_group_members', 'Members of consumer groups, across groups.', [], () => one(groups.stats().members));
  gaugeFrom(
    registry,
    'meridian_consumer_group_lag_records',
    'Records a consumer group has not consumed yet: high watermark minus committed offset, summed over the topic\'s partitions that have a committed offset.',
    ['group', 'topic'],
    () => {
      const sums = new Sums();
      for (const g of groups.listGroups()) {
        const fetched = groups.fetchOffsets({ groupId: g.groupId, topics: null });
        if (fetched.error !== null) continue;
        for (const t of fetched.topics) {
          for (const p of t.partitions) {
            const log = topics.partition(t.name, p.partitionIndex);
            if (log === undefined || p.committedOffset < 0n) continue;
            const lag = log.highWatermark - p.committedOffset;
            sums.add({ group: g.groupId, topic: t.name }, Number(lag > 0n ? lag : 0n));
          }
        }
      }
      return sums.samples();
    },
  );
}
