/**
 * A slow remote costs disk, not memory: with the link rate-limited far below the produce
 * rate, the backlog grows on disk while the bytes read for the remote and not yet
 * acknowledged stay within `replication.maxInFlightBytes`. Lifting the limit at run time
 * (a policy change) lets the link catch up, exactly once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { KcatClient } from '../helpers/kcat-client.js';
import { Regions, waitCaughtUp } from '../helpers/regions.js';
import { assertRegionHolds, emptyProduced } from '../helpers/replication-check.js';

const IN_FLIGHT = 256 * 1024;
const REQUEST = 64 * 1024;

test('a rate-limited link keeps its backlog on disk, in-flight bytes within the budget; lifting the limit at run time catches up exactly once', { timeout: 180_000 }, async (t) => {
  const slow = [{ name: 'dr', topics: 'bulk', topology: 'one-way', source: 'us-east', targets: ['eu-west'], rateLimit: '256KiB' }];
  const regions = await Regions.create({
    names: ['us-east', 'eu-west'],
    policies: slow,
    overrides: { topics: { autoCreate: false }, replication: { maxInFlightBytes: IN_FLIGHT, maxRequestBytes: REQUEST } as never },
  });
  t.after(() => regions.close());
  await regions.start();
  const [us, eu] = [regions.get('us-east'), regions.get('eu-west')];
  const admin = new Kafka({ clientId: 'admin', brokers: [us.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'bulk', numPartitions: 2 }], waitForLeaders: true });
  await admin.disconnect();

  // 2 x 20,000 records of about 1 KiB: 40 MB against a 256 KiB/s link.
  const produced = emptyProduced(2);
  const filler = 'x'.repeat(1000);
  for (let p = 0; p < 2; p++) {
    const lines: string[] = [];
    for (let i = 0; i < 20_000; i++) {
      const value = Buffer.from(`us-east/p${p}/${i}/${filler}`);
      produced.get(p)!.push({ key: null, value });
      lines.push(value.toString());
    }
    await new KcatClient(us.bootstrap).produce('bulk', lines.join('\n') + '\n', ['-p', String(p)]);
  }

  // The link crawls: sample it 30 times. The backlog is on disk; what is read for the remote
  // and unacknowledged never exceeds the budget (plus one request, which may exceed it alone
  // when it is the only one in flight).
  let maxInFlight = 0;
  for (let samples = 0; samples < 30; ) {
    const s = await us.status();
    const link = s.links.find((l) => l.remote === 'eu-west');
    if (link) {
      maxInFlight = Math.max(maxInFlight, link.inFlightBytes);
      samples++;
    }
    const backlog = s.workers.reduce((n, w) => n + w.backlogBytes, 0);
    assert.ok(backlog > 20 * 1024 * 1024, `the backlog (${backlog} bytes) is still there: the link is slow`);
    await new Promise((r) => setTimeout(r, 50)); // the sampling interval
  }
  assert.ok(maxInFlight > 0, 'requests were in flight');
  assert.ok(maxInFlight <= IN_FLIGHT + REQUEST, `in-flight bytes peaked at ${maxInFlight}, budget ${IN_FLIGHT}`);
  const rate = (await us.status()).workers.reduce((n, w) => n + w.bytesPerSecond, 0);
  assert.ok(rate < 600 * 1024, `the link honours its rate limit (${rate} B/s across both partitions' shared link)`);

  // Lift the limit at run time: the same link catches up.
  await us.setPolicies([{ ...slow[0], rateLimit: -1 }]);
  // Caught up means eu-west acknowledged every append, after writing it.
  await waitCaughtUp([us], 90_000);
  const held = await assertRegionHolds('eu-west', eu.bootstrap, 'bulk', new Map([['us-east', produced]]));
  assert.equal(held.length, 40_000);
});
