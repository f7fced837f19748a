/**
 * The high-watermark checkpoint (src/cluster/hw-checkpoint.ts) on three real brokers sharing
 * an in-memory partition-state source (a test double standing in for etcd:
 * replica-cluster.ts), with replica.lag.time.max.ms 60 s so that no follower leaves the ISR
 * during the test:
 * - while running, the leader checkpoints its high watermark within the interval;
 * - the whole region stops, and the leader alone comes back: kcat reads every acknowledged
 *   record at once (before, nothing was visible until every in-sync follower had fetched
 *   again, or had been out for the lag time);
 * - a checkpoint that does not parse is ignored: the records stay invisible until the
 *   followers return and fetch, then kcat reads them all.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { HW_CHECKPOINT_FILE } from '../../src/cluster/hw-checkpoint.js';
import { kcat } from '../helpers/kcat.js';
import { waitFor } from '../helpers/wait.js';
import { startReplicaCluster, type ReplicaCluster } from './replica-cluster.js';
import { rawProduce } from './replica-raw.js';

let cluster: ReplicaCluster;

before(async () => {
  cluster = await startReplicaCluster({ brokers: 3, replicaLagTimeMaxMs: 60_000, defaultMinInsyncReplicas: 2 });
});

after(async () => {
  await cluster?.close();
});

const topic = 'hw-checkpoint';
const values = Array.from({ length: 40 }, (_, i) => `record-${i}`);

function checkpointOf(nodeId: number): Record<string, string> | undefined {
  const file = path.join(cluster.node(nodeId).dataDir, HW_CHECKPOINT_FILE);
  if (!fs.existsSync(file)) return undefined;
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { partitions: Record<string, string> }).partitions;
}

async function kcatRead(bootstrap: string): Promise<string[]> {
  const r = await kcat(['-b', bootstrap, '-C', '-t', topic, '-p', '0', '-o', 'beginning', '-e', '-q', '-f', '%s\\n']);
  assert.equal(r.code, 0, `kcat failed: ${r.stderr}`);
  return r.stdout.toString().split('\n').filter((l) => l !== '');
}

const hwOf = (nodeId: number) => cluster.node(nodeId).broker.replicaManager!.replica(topic, 0)?.highWatermark;

test('a leader that comes back alone serves what was committed before at once; an unreadable checkpoint falls back to the followers', async () => {
  await cluster.createTopic(topic, 1, 1);
  const leader = cluster.node(1);
  await waitFor('broker 1 leads', () => leader.broker.replicaManager!.replica(topic, 0)?.role === 'leader');
  for (let i = 0; i < values.length; i += 10) assert.equal((await rawProduce(leader.port, topic, 0, values.slice(i, i + 10), -1)).errorCode, 0);
  assert.equal(hwOf(1), 40n);

  // Checkpointed within the interval (5 s) while running, not only at close.
  const topicId = leader.broker.topics.getTopic(topic)!.id;
  await waitFor('broker 1 checkpoints high watermark 40', () => checkpointOf(1)?.[`${topicId}/0`] === '40', 15_000);

  // The whole region stops; the leader alone comes back.
  for (const id of [2, 3, 1]) await cluster.stop(id);
  await cluster.start(1);
  await waitFor('broker 1 leads again', () => cluster.node(1).broker.replicaManager!.isLeading(topic, 0));
  assert.equal(hwOf(1), 40n, 'the restarted leader does not expose what it had committed');
  assert.deepEqual(await kcatRead(cluster.node(1).bootstrap), values);

  // An unreadable checkpoint: nothing is known replicated until the followers fetch.
  await cluster.stop(1);
  fs.writeFileSync(path.join(cluster.node(1).dataDir, HW_CHECKPOINT_FILE), '{"version": 1, "partitions": {"x/0": "not an offset"');
  await cluster.start(1);
  await waitFor('broker 1 leads again', () => cluster.node(1).broker.replicaManager!.isLeading(topic, 0));
  assert.equal(hwOf(1), 0n, 'a checkpoint that does not parse was trusted');
  await cluster.start(2);
  await cluster.start(3);
  await waitFor('the followers fetch and the high watermark is 40 again', () => hwOf(1) === 40n, 20_000);
  assert.deepEqual(await kcatRead(cluster.node(1).bootstrap), values);
  // And the file is whole again.
  await waitFor('broker 1 rewrites its checkpoint', () => checkpointOf(1)?.[`${topicId}/0`] === '40', 15_000);
});
