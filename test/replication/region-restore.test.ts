/**
 * A region that lost data it had already replicated (its disk gone, the topic restored from
 * the object store without its newest, never-offloaded records) must not resume
 * replication as if nothing happened: the remote holds offsets this region will now reuse
 * for new records, which the remote would drop as duplicates. The link stops, durably and
 * visibly, until an operator resolves it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { KcatClient } from '../helpers/kcat-client.js';
import { Regions, waitCaughtUp, waitFor } from '../helpers/regions.js';
import { consumeTopic } from '../helpers/replication-check.js';
import { tmpDir } from '../helpers/tmp-dir.js';

test('a region restored from its bucket behind what a remote holds stops that link with a clear error instead of losing new records', { timeout: 120_000 }, async (t) => {
  const store = tmpDir('meridian-restore-store-');
  const regions = await Regions.create({
    names: ['us-east', 'eu-west'],
    policies: [{ topics: 'ledger', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
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
  for (let call = 0; call < 8; call++) {
    await kcat.produce('ledger', Array.from({ length: 50 }, (_, i) => `old-${call * 50 + i}-${'x'.repeat(200)}`).join('\n') + '\n', ['-p', '0']);
  }
  await waitCaughtUp([us]);
  const offloadedEnd = await waitFor('segments offloaded', async () => {
    const s = (await us.status()).tiered.find((x) => x.topic === 'ledger');
    return s && BigInt(s.remoteEndOffset) > 0n ? BigInt(s.remoteEndOffset) : undefined;
  });
  const hw = BigInt((await us.status()).topics.find((x) => x.name === 'ledger')!.partitions[0].highWatermark);
  assert.ok(offloadedEnd < hw, `part of the log (${offloadedEnd}..${hw - 1n}) exists only on us-east's disk`);
  assert.equal((await consumeTopic(eu.bootstrap, 'ledger')).length, 400, 'eu-west has everything');

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
  await new Promise((r) => setTimeout(r, 1500));
  const w2 = (await us.status()).workers.find((x) => x.topic === 'ledger')!;
  assert.equal(w2.state, 'error', 'still stopped after new records arrive');
  const values = (await consumeTopic(eu.bootstrap, 'ledger')).map((m) => m.payload!.toString());
  assert.equal(values.length, 400);
  assert.ok(values.every((v) => v.startsWith('old-')));

  // The stop is durable: a restart does not quietly resume.
  await us.stop();
  await us.start();
  await waitFor('the link in error after a restart', async () => ((await us.status()).workers.find((x) => x.topic === 'ledger')?.state === 'error' ? true : undefined));
  assert.ok(us.logLines.some((l) => l.includes('the remote holds offsets this region no longer has')), 'logged as an error');
});
