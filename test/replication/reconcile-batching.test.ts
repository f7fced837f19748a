/**
 * Topics created together get their replication workers from one pass over the partitions,
 * not one pass per topic (issue 15: a CreateTopics of 250 topics over 10,000 partitions spent
 * 1.6 s of the broker's CPU in those passes). 200 topics of 5 partitions created at once in
 * us-east, under a policy that replicates them to eu-west: every partition gets its worker,
 * and the replicator walked its topics a handful of times, not 200.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { startBroker } from '../helpers/broker.js';
import { waitFor } from '../helpers/wait.js';

const TOPICS = 200;
const PARTITIONS = 5;

test('200 topics created at once get their workers from a few reconcile passes, not one per topic', { timeout: 120_000 }, async (t) => {
  const eu = await startBroker({ region: 'eu-west' } as BrokerConfigInput);
  t.after(() => eu.cleanup());
  const us = await startBroker({
    region: 'us-east',
    replication: {
      regions: [{ name: 'us-east', address: '127.0.0.1:9' }, { name: 'eu-west', address: eu.bootstrap }],
      policies: [{ name: 'batch', topics: 'batch-*', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
    },
  } as BrokerConfigInput);
  t.after(() => us.cleanup());
  const before = us.broker.replicator.reconciles;
  await Promise.all(Array.from({ length: TOPICS }, (_, i) => us.broker.topics.createTopic(`batch-${i}`, PARTITIONS)));
  const workers = await waitFor('a worker for every partition', () => {
    const s = us.broker.replicator.status().filter((w) => w.topic.startsWith('batch-'));
    return s.length === TOPICS * PARTITIONS && s;
  }, 30_000, 20);
  assert.equal(new Set(workers.map((w) => `${w.topic}/${w.partition}`)).size, TOPICS * PARTITIONS);
  const passes = us.broker.replicator.reconciles - before;
  assert.ok(passes >= 1 && passes <= 10, `${passes} reconcile passes for ${TOPICS} topics created together`);
});
