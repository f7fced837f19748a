/**
 * A region that lost data it had already replicated (its disk gone, the topic restored from
 * the object store without its newest, never-offloaded records) must not resume
 * replication as if nothing happened: the remote holds offsets this region will now reuse
 * for new records, which the remote would drop as duplicates. The link stops, durably and
 * visibly, until an operator resolves it. That nothing new arrives is checked only once the
 * link has proved live: a record produced afterwards to another topic on the same link has
 * arrived, and the stopped worker has retried (and refused) since the new records were written.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { KcatClient } from '../helpers/kcat-client.js';
import { Regions, waitCaughtUp } from '../helpers/regions.js';
import { assertRegionHolds, emptyProduced, kcatLines, readWithKafkaJS } from '../helpers/replication-check.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

test('a region restored from its bucket behind what a remote holds stops that link with a clear error instead of losing new records', { timeout: 120_000 }, async (t) => {
  const store = tmpDir('meridian-restore-store-');
  const regions = await Regions.create({
    names: ['us-east', 'eu-west'],
    policies: [{ topics: ['ledger', 'beacon'], topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
    overrides: (name) => ({
      topics: { autoCreate: false },
      ...(name === 'us-east' ? { log: { segmentBytes: 16 * 1024 }, tiered: { enabled: true, store: { type: 'fs' as const, dir: store.dir }, offload: { onSeal: true }, checkIntervalMs: 100 } } : {}),
    }),
  });
  t.after(async () => {
    await regions.close();
    store.cleanup();
  });
  await regions.start();
  const [us, eu] = [regions.get('us-east'), regions.get('eu-west')];
  const admin = new Kafka({ clientId: 'admin', brokers: [us.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'ledger', numPartitions: 1 }], waitForLeaders: true });
  await admin.disconnect();

  // Several sealed (offloaded) segments, then an active tail that never reaches the bucket.
  const kcat = new KcatClient(us.bootstrap);
  const old = emptyProduced(1);
  for (let call = 0; call < 8; call++) {
    const msgs = Array.from({ length: 50 }, (_, i) => ({ key: null, value: Buffer.from(`old-${call * 50 + i}-${'x'.repeat(200)}`) }));
    await kcat.produce('ledger', kcatLines(msgs), ['-p', '0']);
    old.get(0)!.push(...msgs);
  }
  const onlyOld = new Map([['us-east', old]]);
  await waitCaughtUp([us]);
  const offloadedEnd = await waitFor('segments offloaded', async () => {
    const s = (await us.status()).tiered.find((x) => x.topic === 'ledger');
    return s && BigInt(s.remoteEndOffset) > 0n ? BigInt(s.remoteEndOffset) : undefined;
  });
  const hw = BigInt((await us.status()).topics.find((x) => x.name === 'ledger')!.partitions[0].highWatermark);
  assert.ok(offloadedEnd < hw, `part of the log (${offloadedEnd}..${hw - 1n}) exists only on us-east's disk`);
  await assertRegionHolds('eu-west', eu.bootstrap, 'ledger', onlyOld); // eu-west has everything

  // us-east loses its disk; it comes back and restores the topic from the bucket.
  await us.kill9();
  fs.rmSync(us.dataDir, { recursive: true, force: true });
  fs.mkdirSync(us.dataDir, { recursive: true });
  await us.start();
  const worker = await waitFor('the link to stop in error', async () => {
    const w = (await us.status()).workers.find((x) => x.topic === 'ledger');
    return w?.state === 'error' ? w : undefined;
  });
  assert.match(worker.error ?? '', /holds ledger\/0 up to offset \d+ but this region's log ends at \d+/);
  assert.match(worker.error ?? '', /lost data/);

  // New records in us-east are not replicated (they would reuse offsets eu-west holds).
  await new KcatClient(us.bootstrap).produce('ledger', 'new-0\nnew-1\n', ['-p', '0']);
  const retriesAtNew = (await us.status()).workers.find((x) => x.topic === 'ledger')!.retries;
  // The link is live: a record produced after them to another topic on it arrives, and the
  // stopped worker has looked again (and refused again) since they were written.
  const admin2 = new Kafka({ clientId: 'admin', brokers: [us.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin2.connect();
  await admin2.createTopics({ topics: [{ topic: 'beacon', numPartitions: 1 }], waitForLeaders: true });
  await admin2.disconnect();
  await new KcatClient(us.bootstrap).produce('beacon', 'beacon-0\n', ['-p', '0']);
  await waitFor('the beacon to reach eu-west and the stopped worker to retry twice', async () => {
    const w = (await us.status()).workers.find((x) => x.topic === 'ledger');
    const beacon = (await eu.status()).topics.find((x) => x.name === 'beacon');
    return w !== undefined && w.retries >= retriesAtNew + 2 && beacon !== undefined && BigInt(beacon.partitions[0].highWatermark) > 0n;
  }, 30_000, 200);
  assert.deepEqual((await readWithKafkaJS(eu.bootstrap, 'beacon')).map((m) => String(m.value)), ['beacon-0']);
  const w2 = (await us.status()).workers.find((x) => x.topic === 'ledger')!;
  assert.equal(w2.state, 'error', 'still stopped after new records arrive');
  await assertRegionHolds('eu-west after new records in us-east', eu.bootstrap, 'ledger', onlyOld);

  // The stop is durable: a restart does not quietly resume.
  await us.stop();
  await us.start();
  await waitFor('the link in error after a restart', async () => ((await us.status()).workers.find((x) => x.topic === 'ledger')?.state === 'error' ? true : undefined));
  assert.ok(us.logLines.some((l) => l.includes('the remote holds offsets this region no longer has')), 'logged as an error');
});
