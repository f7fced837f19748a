/**
 * A topic grown with CreatePartitions in its origin region keeps replicating: the new
 * partitions' workers handshake with the larger count, the remote grows its topic to match
 * (as it creates a missing one), and every record lands there exactly once, in the partition
 * of the same number.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { KcatClient } from '../helpers/kcat-client.js';
import { Regions, waitCaughtUp } from '../helpers/regions.js';
import { assertRegionHolds, emptyProduced, kcatLines } from '../helpers/replication-check.js';
import { waitFor } from '../helpers/wait.js';

test('CreatePartitions in the origin region: the remote grows the topic and holds every record exactly once', { timeout: 120_000 }, async (t) => {
  const regions = await Regions.create({
    names: ['us-east', 'eu-west'],
    policies: [{ topics: 'growing', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
    overrides: { topics: { autoCreate: false } },
  });
  t.after(() => regions.close());
  await regions.start();
  const [us, eu] = [regions.get('us-east'), regions.get('eu-west')];
  const admin = new Kafka({ clientId: 'admin', brokers: [us.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  t.after(() => admin.disconnect());

  const produced = emptyProduced(4);
  const produce = async (tag: string, partition: number, n: number) => {
    const msgs = Array.from({ length: n }, (_, i) => ({ key: null, value: Buffer.from(`us-east/${tag}/p${partition}/${i}`) }));
    produced.get(partition)!.push(...msgs);
    await new KcatClient(us.bootstrap).produce('growing', kcatLines(msgs), ['-p', String(partition)]);
  };
  const partitionsIn = async (region: typeof us) => (await region.status()).topics.find((x) => x.name === 'growing')?.partitions.length;

  await admin.createTopics({ topics: [{ topic: 'growing', numPartitions: 2 }], waitForLeaders: true });
  for (const p of [0, 1]) await produce('before', p, 50);
  await waitCaughtUp([us]);
  assert.equal(await partitionsIn(eu), 2);

  await admin.createPartitions({ topicPartitions: [{ topic: 'growing', count: 4 }] });
  assert.equal((await admin.fetchTopicMetadata({ topics: ['growing'] })).topics[0].partitions.length, 4);
  for (const p of [0, 1, 2, 3]) await produce('after', p, 40);
  await waitFor('eu-west to grow the topic to 4 partitions', async () => ((await partitionsIn(eu)) === 4 ? true : undefined));
  await waitCaughtUp([us]);
  const links = (await us.status()).workers.filter((w) => w.topic === 'growing');
  assert.deepEqual(links.map((w) => [w.partition, w.state]).sort(), [[0, 'idle'], [1, 'idle'], [2, 'idle'], [3, 'idle']], 'a worker per partition, none in error');
  const records = await assertRegionHolds('eu-west', eu.bootstrap, 'growing', new Map([['us-east', produced]]));
  assert.equal(records.length, 2 * 50 + 4 * 40);
});

test('CreatePartitions on a mesh topic: both regions end with 4 partitions and each other\'s records exactly once', { timeout: 120_000 }, async (t) => {
  const regions = await Regions.create({
    names: ['us-east', 'eu-west'],
    policies: [{ topics: 'mesh-growing', topology: 'mesh', regions: ['us-east', 'eu-west'] }],
    overrides: { topics: { autoCreate: false } },
  });
  t.after(() => regions.close());
  await regions.start();
  const [us, eu] = [regions.get('us-east'), regions.get('eu-west')];
  const admin = new Kafka({ clientId: 'admin', brokers: [us.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  t.after(() => admin.disconnect());

  const produced = new Map([['us-east', emptyProduced(4)], ['eu-west', emptyProduced(4)]]);
  const produce = async (region: typeof us, tag: string, partition: number, n: number) => {
    const msgs = Array.from({ length: n }, (_, i) => ({ key: null, value: Buffer.from(`${region.name}/${tag}/p${partition}/${i}`) }));
    produced.get(region.name)!.get(partition)!.push(...msgs);
    await new KcatClient(region.bootstrap).produce('mesh-growing', kcatLines(msgs), ['-p', String(partition)]);
  };
  const partitionsIn = async (region: typeof us) => (await region.status()).topics.find((x) => x.name === 'mesh-growing')?.partitions.length;

  await admin.createTopics({ topics: [{ topic: 'mesh-growing', numPartitions: 2 }], waitForLeaders: true });
  await produce(us, 'before', 0, 20);
  await waitFor('eu-west to hold the topic', async () => ((await partitionsIn(eu)) === 2 ? true : undefined));
  await admin.createPartitions({ topicPartitions: [{ topic: 'mesh-growing', count: 4 }] });
  await waitFor('eu-west to grow the topic to 4 partitions', async () => ((await partitionsIn(eu)) === 4 ? true : undefined));
  for (const p of [0, 1, 2, 3]) {
    await produce(us, 'after', p, 30);
    await produce(eu, 'after', p, 30);
  }
  await waitCaughtUp([us, eu]);
  for (const region of [us, eu]) {
    const workers = (await region.status()).workers.filter((w) => w.topic === 'mesh-growing');
    assert.deepEqual(workers.map((w) => w.partition).sort(), [0, 1, 2, 3], `${region.name}: a worker per partition`);
    assert.ok(workers.every((w) => w.error === null), `${region.name}: no link in error`);
    const records = await assertRegionHolds(region.name, region.bootstrap, 'mesh-growing', produced);
    assert.equal(records.length, 20 + 2 * 4 * 30);
  }
});
