/**
 * Idle replication workers hold no timers (issue 15: no per-partition timers or polling when
 * idle). Two real brokers in this process, us-east replicating 100 topics of 10 partitions
 * (1,000 workers) to eu-west: once every partition's record is replicated and every worker
 * is idle, the process holds no more active timers than with no workers at all, and the
 * replicator's shared tick is not running. An idle worker waits on its log's append event
 * only; the next append wakes it, and it replicates at once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { startBroker } from '../helpers/broker.js';
import { waitFor } from '../helpers/wait.js';
import { dataBatch } from '../helpers/worker-harness.js';

const TOPICS = 100;
const PARTITIONS = 10;
const POLICIES = [{ name: 'idle', topics: 'idle-*', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }];

/** Active (referenced) timers of this process. */
function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

test('1,000 idle workers hold no timers; an append wakes its worker', { timeout: 300_000 }, async (t) => {
  const eu = await startBroker({ region: 'eu-west', replication: { regions: [{ name: 'eu-west', address: '127.0.0.1:9' }, { name: 'us-east', address: '127.0.0.1:9' }], policies: POLICIES } } as BrokerConfigInput);
  t.after(() => eu.cleanup());
  const us = await startBroker({ region: 'us-east', replication: { regions: [{ name: 'us-east', address: '127.0.0.1:9' }, { name: 'eu-west', address: eu.bootstrap }], policies: [] } } as BrokerConfigInput);
  t.after(() => us.cleanup());
  const topics = Array.from({ length: TOPICS }, (_, i) => `idle-${i}`);
  for (const topic of topics) {
    await us.broker.topics.createTopic(topic, PARTITIONS);
    for (let p = 0; p < PARTITIONS; p++) await us.broker.topics.partition(topic, p)!.append(dataBatch(`${topic}-${p}`));
  }
  // The same topics in eu-west, so that what follows creates nothing there.
  for (const topic of topics) await eu.broker.topics.createTopic(topic, PARTITIONS);
  // Without workers: whatever timers the two brokers hold anyway.
  const without = activeTimers();

  us.broker.replicator.setPolicies(POLICIES);
  const statuses = await waitFor(
    '1,000 workers to replicate their record and go idle',
    () => {
      const s = us.broker.replicator.status();
      return s.length === TOPICS * PARTITIONS && s.every((w) => w.state === 'idle' && w.backlogRecords === 0 && w.replicatedOffset === '0') && s;
    },
    120_000,
    100,
  );
  assert.equal(statuses.length, 1000);
  // The handshakes' and requests' own timers end with them; what stays must not grow with the workers.
  const idle = await waitFor('the idle timers to settle', () => (activeTimers() <= without + 5 ? activeTimers() : undefined), 30_000, 100, () => `(${activeTimers()} active timers, ${without} without workers)`);
  assert.ok(idle <= without + 5, `${idle} active timers with 1,000 idle workers, ${without} without`);
  // The shared tick stops at its first tick without a waiter.
  await waitFor('the shared tick to stop: it runs only while a worker waits on an fdatasync', () => !us.broker.replicator.tickRunning, 5_000, 20);

  // An append wakes exactly its worker, which replicates it.
  const log = us.broker.topics.partition('idle-42', 7)!;
  await log.append(dataBatch('wake'));
  await waitFor('idle-42/7 to replicate the new record', () => us.broker.replicator.status().find((w) => w.topic === 'idle-42' && w.partition === 7)?.replicatedOffset === '1', 10_000, 20);
  assert.equal(eu.broker.topics.partition('idle-42', 7)!.highWatermark, 4n, 'two markers and two records in eu-west');
});
