/**
 * A topic deleted and recreated in the source region starts its offsets at 0 again. The
 * remote tracks progress per topic id, so the new topic's records are new records there,
 * not duplicates of the old ones.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { KcatClient } from '../helpers/kcat-client.js';
import { Regions, waitCaughtUp } from '../helpers/regions.js';
import { assertRegionHolds, emptyProduced, kcatLines } from '../helpers/replication-check.js';
import { waitFor } from '../helpers/wait.js';

test('a topic recreated in the source region replicates afresh: nothing of the new topic is taken for a duplicate', { timeout: 120_000 }, async (t) => {
  const regions = await Regions.create({
    names: ['us-east', 'eu-west'],
    policies: [{ topics: 'lifecycle', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
    overrides: { topics: { autoCreate: false } },
  });
  t.after(() => regions.close());
  await regions.start();
  const [us, eu] = [regions.get('us-east'), regions.get('eu-west')];
  const admin = new Kafka({ clientId: 'admin', brokers: [us.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  t.after(() => admin.disconnect());

  const produced = emptyProduced(1);
  const produce = async (tag: string, n: number) => {
    const msgs = Array.from({ length: n }, (_, i) => ({ key: null, value: Buffer.from(`us-east/${tag}/${i}`) }));
    produced.get(0)!.push(...msgs);
    await new KcatClient(us.bootstrap).produce('lifecycle', kcatLines(msgs), ['-p', '0']);
  };

  await admin.createTopics({ topics: [{ topic: 'lifecycle', numPartitions: 1 }], waitForLeaders: true });
  await produce('first', 300);
  await waitCaughtUp([us]);
  await assertRegionHolds('eu-west before', eu.bootstrap, 'lifecycle', new Map([['us-east', produced]]));

  await admin.deleteTopics({ topics: ['lifecycle'] });
  await waitFor('the topic gone in us-east', async () => ((await us.status()).topics.some((x) => x.name === 'lifecycle') ? undefined : true));
  await admin.createTopics({ topics: [{ topic: 'lifecycle', numPartitions: 1 }], waitForLeaders: true });
  // Offsets 0.. again, fewer records than before: all of them at or below the old topic's
  // last offset, which a dedup by offset alone would have dropped.
  await produce('second', 120);
  await waitCaughtUp([us]);
  const records = await assertRegionHolds('eu-west after', eu.bootstrap, 'lifecycle', new Map([['us-east', produced]]));
  assert.equal(records.length, 420, 'eu-west holds the old topic\'s 300 records and the new one\'s 120');
});
