/**
 * Disaster recovery's metrics, scraped over HTTP from GET /metrics of a real region: eu-west
 * holds a read-only copy of `dr-orders` under a one-way policy from us-east, a region that
 * is not running (its address refuses connections), the situation DR is for.
 *
 * Before the promote: us-east is the primary, the copy is read-only at epoch 0, the offset
 * sync to us-east is down and failing with a group commit pending, the end us-east reported
 * for one partition before it went (handed to `broker.dr.handleOffsetSync`, the receiving
 * side of the OffsetSync message) has an age and the other partition none, and a commit
 * us-east made while a KafkaJS consumer of the same group is live here is a conflict. After
 * `broker.dr.promote`: eu-west is the primary at epoch 1, writable, phase promoted, the end
 * ages are gone, the counters have not gone down, and a handshake from the old primary is
 * fenced and counted. Every DR family the scrape holds is documented in METRICS.md.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { startBroker } from '../helpers/broker.js';
import { freePort } from '../helpers/regions.js';
import { waitFor } from '../helpers/wait.js';
import { ParsedScrape } from './prometheus-scrape.js';

const TOPIC = 'dr-orders';
const GROUP = 'dr-readers';
const LIVE_GROUP = 'dr-live-readers';
const METRICS_MD = new URL('../../src/admin/METRICS.md', import.meta.url);

test('a DR copy whose primary is down: role, offset sync, end report age and conflicts in /metrics, before and after a promote', { timeout: 120_000 }, async (t) => {
  const [kafkaPort, downPort] = await Promise.all([freePort(), freePort()]);
  const tb = await startBroker({
    region: 'eu-west',
    kafka: { host: '127.0.0.1', port: kafkaPort },
    admin: { host: '127.0.0.1', port: 0 },
    topics: { autoCreate: false },
    groups: { initialRebalanceDelayMs: 0 },
    metrics: { perPartition: true },
    replication: {
      regions: [
        { name: 'us-east', address: `127.0.0.1:${downPort}` },
        { name: 'eu-west', address: `127.0.0.1:${kafkaPort}` },
      ],
      policies: [{ name: 'dr', topics: 'dr-*', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
      retry: { initialMs: 50, maxMs: 1000 },
      requestTimeoutMs: 2000,
    },
  } as BrokerConfigInput);
  t.after(() => tb.cleanup());
  const scrape = () => ParsedScrape.scrape(tb.broker.adminAddress!);
  const kafka = new Kafka({ clientId: 'metrics-dr', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 50 } });
  const admin = kafka.admin();
  await admin.connect();
  t.after(() => admin.disconnect());
  assert.equal(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 2 }], waitForLeaders: true }), true);
  const topic = { topic: TOPIC };
  const peer = { peer: 'us-east' };

  // A group commits here: the commit waits for us-east, which cannot be reached.
  await admin.setOffsets({ groupId: GROUP, topic: TOPIC, partitions: [{ partition: 0, offset: '0' }] });
  const copy = await waitFor(
    'the commit pending for us-east and a failed offset sync counted',
    async () => {
      const s = await scrape();
      return s.value('meridian_dr_offset_sync_pending_commits', peer) === 1 && s.value('meridian_dr_offset_sync_failures_total', peer) >= 1 ? s : undefined;
    },
    30_000,
    100,
    () => `offset sync: ${JSON.stringify(tb.broker.dr.syncStatus())}`,
  );
  assert.deepEqual(
    copy.series('meridian_dr_topic_primary').map((s) => [s.labels?.topic, s.labels?.primary, Number(s.value)]),
    [[TOPIC, 'us-east', 1]],
    'one series per DR topic, naming its primary',
  );
  assert.equal(copy.value('meridian_dr_topic_read_only', topic), 1);
  assert.equal(copy.value('meridian_dr_topic_epoch', topic), 0);
  assert.equal(copy.series('meridian_dr_topic_epoch', topic).length, 1);
  assert.equal(copy.value('meridian_dr_topic_phase', { ...topic, phase: 'policy' }), 1);
  assert.equal(copy.value('meridian_dr_topic_phase', topic), 1, 'one phase at a time');
  assert.equal(copy.series('meridian_dr_topic_phase', topic).length, 5, 'every phase has a series, 0 but the current one');
  assert.equal(copy.value('meridian_dr_offset_sync_connected', peer), 0);
  assert.equal(copy.series('meridian_dr_offset_sync_last_success_age_seconds').length, 0, 'no age before the first success');
  assert.equal(copy.value('meridian_dr_offset_sync_syncs_total', peer), 0);
  assert.equal(copy.series('meridian_dr_topic_primary_end_report_age_seconds').length, 0, 'us-east never reported an end');
  assert.equal(copy.series('meridian_dr_primary_end_report_age_seconds').length, 0);
  assert.equal(copy.value('meridian_dr_group_conflicts'), 0);
  assert.equal(copy.series('meridian_dr_group_conflicts').length, 1, 'the conflict count is there when it is 0');
  assert.equal(copy.value('meridian_replication_fenced_requests_total'), 0);
  for (const s of copy.series('meridian_dr_topic_primary')) assert.equal(s.labels?.region, 'eu-west', 'every series names its region');

  // What us-east had reported of partition 0 before it went down, 3 s ago.
  const reportedAt = Date.now();
  assert.equal(
    await tb.broker.dr.handleOffsetSync({ targetRegion: 'eu-west', senderRegion: 'us-east', sentAt: reportedAt, commits: [], ends: [{ topic: TOPIC, topicId: 'us-east-topic-id', partition: 0, endOffset: 42n, lastTimestamp: reportedAt }] }),
    null,
  );
  const reported = await scrape();
  const elapsed = (Date.now() - reportedAt) / 1000;
  const age = reported.value('meridian_dr_primary_end_report_age_seconds', { ...topic, partition: '0' });
  assert.ok(age >= 0 && age <= elapsed, `partition 0's end report is ${age} s old (at most the ${elapsed} s since it came)`);
  assert.equal(reported.series('meridian_dr_primary_end_report_age_seconds', { ...topic, partition: '1' }).length, 0, 'partition 1 has no report');
  assert.equal(reported.value('meridian_dr_topic_primary_end_report_age_seconds', topic), age, 'the topic shows its oldest partition report');
  await waitFor('the age to grow while us-east says nothing', async () => (await scrape()).value('meridian_dr_topic_primary_end_report_age_seconds', topic) >= age + 0.2, 10_000);

  // A consumer of LIVE_GROUP is live here when us-east's commit of the same group arrives: a conflict.
  const consumer = kafka.consumer({ groupId: LIVE_GROUP, maxWaitTimeInMs: 100 });
  await consumer.connect();
  t.after(() => consumer.disconnect());
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, () => void (joined = true));
  await consumer.subscribe({ topic: TOPIC, fromBeginning: true });
  await consumer.run({ eachMessage: async () => {} });
  await waitFor('the consumer to join its group in eu-west', () => joined && tb.broker.groups.activeSince(LIVE_GROUP) !== undefined, 30_000);
  await tb.broker.dr.handleOffsetSync({
    targetRegion: 'eu-west',
    senderRegion: 'us-east',
    sentAt: Date.now(),
    commits: [{ group: LIVE_GROUP, topic: TOPIC, partition: 1, offset: 7n, commitTimestamp: Date.now() + 5_000, vector: [] }],
    ends: [],
  });
  assert.equal(tb.broker.dr.conflicts().length, 1);
  const conflicted = await scrape();
  assert.equal(conflicted.value('meridian_dr_group_conflicts'), 1);
  await consumer.disconnect();

  // Promote: eu-west is the primary at epoch 1.
  const [report] = await tb.broker.dr.promote(topic);
  assert.deepEqual([report.topic, report.epoch, report.formerPrimary], [TOPIC, 1, 'us-east']);
  const promoted = await scrape();
  assert.deepEqual(
    promoted.series('meridian_dr_topic_primary').map((s) => [s.labels?.topic, s.labels?.primary, Number(s.value)]),
    [[TOPIC, 'eu-west', 1]],
    'the old primary\'s series is gone',
  );
  assert.equal(promoted.value('meridian_dr_topic_read_only', topic), 0);
  assert.equal(promoted.value('meridian_dr_topic_epoch', topic), 1);
  assert.equal(promoted.value('meridian_dr_topic_phase', { ...topic, phase: 'promoted' }), 1);
  assert.equal(promoted.value('meridian_dr_topic_phase', { ...topic, phase: 'policy' }), 0);
  assert.equal(promoted.value('meridian_dr_topic_phase', topic), 1);
  assert.equal(promoted.series('meridian_dr_topic_primary_end_report_age_seconds').length, 0, 'a primary measures nothing against another region\'s ends');
  assert.equal(promoted.series('meridian_dr_primary_end_report_age_seconds').length, 0);
  assert.equal(promoted.value('meridian_dr_group_conflicts'), 1, 'the conflict is still reported');
  assert.ok(promoted.value('meridian_dr_offset_sync_failures_total', peer) >= copy.value('meridian_dr_offset_sync_failures_total', peer), 'failures never go down');
  assert.equal(promoted.value('meridian_dr_offset_sync_connected', peer), 0);

  // us-east comes back still believing it is the primary at epoch 0: its handshake is fenced.
  const hs = await tb.broker.replicationTarget.handshake({ targetRegion: 'eu-west', senderRegion: 'us-east', senderTopicId: 'us-east-topic-id', topic: TOPIC, partitionCount: 2, createIfMissing: false, dr: { primary: 'us-east', epoch: 0 } });
  assert.ok(hs.error instanceof MeridianError && hs.error.code === ErrorCode.ReplicationFenced, String(hs.error));
  assert.equal((await scrape()).value('meridian_replication_fenced_requests_total'), 1);

  // Every DR family this scrape holds is in METRICS.md.
  const doc = fs.readFileSync(METRICS_MD, 'utf8');
  const text = await (await fetch(`http://${tb.broker.adminAddress!.host}:${tb.broker.adminAddress!.port}/metrics`)).text();
  const families = [...new Set([...text.matchAll(/^# TYPE (meridian_(?:dr_\w+|replication_fenced_requests_total)) /gm)].map((m) => m[1]))];
  assert.ok(families.length >= 12, `DR families in the scrape: ${families.join(', ')}`);
  for (const f of families) assert.ok(doc.includes(`| \`${f}\` |`), `${f} is documented in METRICS.md`);
});
