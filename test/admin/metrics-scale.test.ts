/**
 * /metrics with many topics (issue 15's scale work): a scrape of a broker holding 400 topics
 * (2,000 partitions) has one series per topic where METRICS.md says so, counters that do not
 * go down from one scrape to the next, and it lets the event loop turn while it renders
 * (one metric at a time) instead of holding it for the whole scrape: with 10,000 partitions
 * a scrape is a few hundred ms of CPU (bench:scale), which in one piece would stall every
 * request the broker serves meanwhile.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createBrokerMetrics } from '../../src/admin/metrics.js';
import { startBroker } from '../helpers/broker.js';
import { ParsedScrape } from './prometheus-scrape.js';

const TOPICS = 400;
const PARTITIONS = 5;

test('a scrape of 400 topics: a series per topic, counters that keep their totals, and the event loop turns while it renders', { timeout: 120_000 }, async (t) => {
  const tb = await startBroker({ topics: { autoCreate: false } });
  t.after(() => tb.cleanup());
  for (let i = 0; i < TOPICS; i++) await tb.broker.topics.createTopic(`scale-${i}`, PARTITIONS);
  const metrics = createBrokerMetrics(tb.broker);
  t.after(() => metrics.close());

  let turns = 0;
  let spinning = true;
  const spin = () => {
    turns++;
    if (spinning) setImmediate(spin);
  };
  setImmediate(spin);
  const before = turns;
  const text = await metrics.render();
  const during = turns - before;
  spinning = false;
  const first = new ParsedScrape(text);

  const partitions = first.series('meridian_topic_partitions');
  assert.equal(partitions.length, TOPICS);
  assert.ok(partitions.every((s) => Number(s.value) === PARTITIONS));
  assert.equal(first.series('meridian_topic_bytes').length, TOPICS * 2, 'both tiers of every topic');
  // The loop turned between metrics: at least once per metric family of the broker's own.
  const families = [...text.matchAll(/^# TYPE (meridian_\w+) /gm)].map((m) => m[1]);
  assert.ok(families.length > 20);
  assert.ok(during >= families.length, `the event loop turned ${during} times during a scrape of ${families.length} meridian_* families`);

  // A second scrape: every counter kept its totals (MonotonicTotals keeps each source's series key).
  const second = new ParsedScrape(await metrics.render());
  for (const name of families) {
    if (first.family(name).type !== 'COUNTER') continue;
    const was = new Map(first.series(name).map((s) => [JSON.stringify(s.labels), Number(s.value)]));
    const now = second.series(name);
    assert.equal(now.length, was.size, `${name} has the same series`);
    for (const s of now) assert.ok(Number(s.value) >= (was.get(JSON.stringify(s.labels)) ?? 0), `${name} did not go down`);
  }
});
