/**
 * Geo-replication when a remote region is away for a while, and when the configuration does
 * not line up, each region a broker in its own process:
 *
 *   1. the backlog outlives the local log (tiered storage offloaded it and deleted the local
 *      copies): the link catches up from the object store, every record once and in order;
 *   2. without a backlog quota, retention never deletes what a remote has not received, and
 *      does delete it once the remote has it;
 *   3. with a backlog quota, retention deletes past it loudly (a warning, quotaDroppedRecords),
 *      and the remote gets exactly what was still held, from the new log start on;
 *   4. partition counts that differ: that topic's links stop in 'error' naming both counts
 *      and both regions, nothing of it is replicated, other topics keep replicating;
 *   5. policies changed at run time start and stop the links.
 *
 * Records are matched by content (offsets differ between regions: markers take offsets), as
 * KafkaJS and as kcat read them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import type { WorkerStatus } from '../../src/replication/worker.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { Regions, waitCaughtUp, type Region, type RegionStatus } from '../helpers/regions.js';
import { assertRegionHolds, kcatLines, type Produced } from '../helpers/replication-check.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const US = 'us-east';
const EU = 'eu-west';
const KiB = 1024;

interface Msg {
  key: Buffer | null;
  value: Buffer;
}

/** `n` unique records naming their origin, topic and index, 100-400 bytes of varied filler. */
function records(origin: string, topic: string, from: number, n: number): Msg[] {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:;,!?';
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    let x = (i + 1) * 2654435761;
    let filler = '';
    for (let c = 0; c < 100 + ((i * 37) % 300); c++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      filler += alphabet[x % alphabet.length];
    }
    return { key: Buffer.from(`k${i % 13}`), value: Buffer.from(`${origin}/${topic}/${i}/${filler}`) };
  });
}

/**
 * Produces with kcat to one partition, in order, in runs of 4000 records; `batchRecords`
 * caps the records per batch (librdkafka's default batches up to 1 MB).
 */
async function produce(region: Region, topic: string, msgs: readonly Msg[], partition = 0, batchRecords?: number): Promise<void> {
  const extra = batchRecords === undefined ? [] : ['-X', `batch.num.messages=${batchRecords}`];
  for (let i = 0; i < msgs.length; i += 4000) {
    await new KcatClient(region.bootstrap).produce(topic, kcatLines(msgs.slice(i, i + 4000)), ['-p', String(partition), '-K', '\t', ...extra]);
  }
}

function produced(byPartition: Array<readonly Msg[]>): Produced {
  return new Map(byPartition.map((list, p) => [p, [...list]]));
}

async function createTopics(region: Region, topics: Array<{ topic: string; numPartitions: number }>): Promise<void> {
  const admin = new Kafka({ clientId: 'backlog-admin', brokers: [region.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    assert.ok(await admin.createTopics({ topics, waitForLeaders: true }), `topics created in ${region.name}`);
  } finally {
    await admin.disconnect();
  }
}

function partitionOf(s: RegionStatus, topic: string, partition = 0): { logStartOffset: bigint; highWatermark: bigint; segments: number } | undefined {
  const p = s.topics.find((t) => t.name === topic)?.partitions[partition];
  return p && { logStartOffset: BigInt(p.logStartOffset), highWatermark: BigInt(p.highWatermark), segments: p.segments };
}

function workersOf(s: RegionStatus, topic: string): WorkerStatus[] {
  return s.workers.filter((w) => w.topic === topic);
}

function describeWorkers(s: RegionStatus): string {
  return s.workers.map((w) => `${w.topic}/${w.partition}->${w.remote} ${w.state} backlog ${w.backlogRecords}${w.error ? `: ${w.error}` : ''}`).join('; ');
}

/** waitCaughtUp for one region; on timeout the failure shows what its workers are doing. */
async function caughtUp(region: Region, timeoutMs = 20_000): Promise<void> {
  try {
    await waitCaughtUp([region], timeoutMs);
  } catch (err) {
    throw new Error(`${(err as Error).message}; ${region.name} workers: ${describeWorkers(await region.status())}`);
  }
}

function oneWay(name: string, topics: string | string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, topics, topology: 'one-way', source: US, targets: [EU], ...extra };
}

test('remote down until its backlog was offloaded and deleted locally: the link catches up from the object store, every record once, in order', { timeout: 90_000 }, async (t) => {
  const TOPIC = 'cold';
  const store = tmpDir('meridian-backlog-tiered-');
  const tiered: BrokerConfigInput = {
    log: { segmentBytes: 64 * KiB },
    tiered: { enabled: true, store: { type: 'fs', dir: store.dir }, offload: { onSeal: true }, localRetention: { bytes: 128 * KiB }, deletionLagMs: 0, checkIntervalMs: 100 },
  };
  const regions = await Regions.create({
    names: [US, EU],
    policies: [oneWay('dr', TOPIC)],
    overrides: (name) => ({ topics: { autoCreate: false }, ...(name === US ? tiered : {}) }),
  });
  t.after(async () => {
    await regions.close();
    store.cleanup();
  });
  await regions.start();
  const us = regions.get(US);
  const eu = regions.get(EU);

  await createTopics(us, [{ topic: TOPIC, numPartitions: 1 }]);
  // A first few records reach eu-west while it is up: it resumes after them later.
  const sent = records(US, TOPIC, 0, 100);
  await produce(us, TOPIC, sent);
  await caughtUp(us);
  const before = workersOf(await us.status(), TOPIC);
  assert.equal(before.length, 1);
  assert.equal(before[0].replicatedOffset, '99', 'eu-west holds offsets 0..99');

  await eu.stop();
  // About 4 MB: ~60 segments of 64 KiB, offloaded on seal, local copies deleted down to 128 KiB.
  const more = records(US, TOPIC, 100, 14_000);
  await produce(us, TOPIC, more);
  sent.push(...more);

  const held = await waitFor(
    'us-east to offload the backlog and delete its local copies past what eu-west holds',
    async () => {
      const s = await us.status();
      const p = partitionOf(s, TOPIC);
      const w = workersOf(s, TOPIC)[0];
      if (p === undefined || w === undefined || p.highWatermark !== BigInt(sent.length)) return undefined;
      // The local log no longer holds most of what eu-west never received.
      if (p.logStartOffset <= BigInt(sent.length) / 2n) return undefined;
      return { p, w, tier: s.tiered.find((x) => x.topic === TOPIC && x.partition === 0) };
    },
    60_000,
  );
  assert.ok(held.p.logStartOffset > 100n, `local log start ${held.p.logStartOffset} is past eu-west's last offset 99`);
  assert.equal(held.w.replicatedOffset, '99', 'the worker still knows eu-west holds 0..99');
  assert.equal(held.w.backlogRecords, sent.length - 100, 'the whole backlog is pending, including the offloaded part');
  assert.notEqual(held.w.state, 'idle');
  assert.ok(held.tier !== undefined && BigInt(held.tier.remoteEndOffset) >= held.p.logStartOffset, 'everything below the local log start is in the object store');

  await eu.start();
  await caughtUp(us);
  const after = workersOf(await us.status(), TOPIC)[0];
  assert.equal(after.replicatedOffset, String(sent.length - 1));
  assert.equal(after.sentRecords, sent.length, 'the worker sent each record once: 100 before the outage, the backlog after');
  const msgs = await assertRegionHolds(EU, eu.bootstrap, TOPIC, new Map([[US, produced([sent])]]));
  assert.equal(msgs.length, sent.length, `eu-west holds ${msgs.length} records, us-east produced ${sent.length}`);
  // The local log start never went back: the early records really came from the object store.
  const p = partitionOf(await us.status(), TOPIC)!;
  assert.ok(p.logStartOffset >= held.p.logStartOffset);
});

/** Small segments and a retention check every 100 ms: retention would delete within a tick. */
const SMALL_RETENTION: BrokerConfigInput = { log: { segmentBytes: 16 * KiB, retention: { bytes: 64 * KiB, checkIntervalMs: 100 } } };

test('without a backlog quota, retention never deletes what the remote has not received; once it has, retention deletes', { timeout: 60_000 }, async (t) => {
  const TOPIC = 'keep';
  const regions = await Regions.create({
    names: [US, EU],
    policies: [oneWay('dr', TOPIC)],
    overrides: (name) => ({ topics: { autoCreate: false }, ...(name === US ? SMALL_RETENTION : {}) }),
  });
  t.after(() => regions.close());
  const us = regions.get(US);
  const eu = regions.get(EU);
  await us.start(); // eu-west stays down until the end

  // `keep-local` is on no policy: retention is free to delete it, and shows that it runs.
  await createTopics(us, [{ topic: TOPIC, numPartitions: 1 }, { topic: 'keep-local', numPartitions: 1 }]);
  const sent = records(US, TOPIC, 0, 3000); // ~750 KB in ~5 KB batches: ~45 segments, ten times retention.bytes
  await produce(us, TOPIC, sent, 0, 20);

  // Retention runs over every partition on each check: once it has deleted from a topic
  // filled after this one, it has been over this one too. The log start stays at 0, because
  // eu-west has not received any of it.
  await produce(us, 'keep-local', records(US, 'keep-local', 0, 1000), 0, 20);
  await waitFor('retention to delete from keep-local, filled after keep', async () => partitionOf(await us.status(), 'keep-local')!.logStartOffset > 0n, 20_000);
  const s = await us.status();
  const p0 = partitionOf(s, TOPIC)!;
  assert.equal(p0.highWatermark, BigInt(sent.length));
  assert.equal(p0.logStartOffset, 0n, 'retention deleted data eu-west never received');
  assert.ok(p0.segments > 10, `${p0.segments} segments`);
  const w0 = workersOf(s, TOPIC);
  assert.equal(w0.length, 1);
  assert.equal(w0[0].backlogRecords, sent.length);
  assert.equal(w0[0].quotaDroppedRecords, 0);
  assert.equal(us.logLines.filter((l) => l.includes('retention deleted segment') && !l.includes('keep-local')).length, 0);

  await eu.start();
  await caughtUp(us);
  const msgs = await assertRegionHolds(EU, eu.bootstrap, TOPIC, new Map([[US, produced([sent])]]));
  assert.equal(msgs.length, sent.length);

  // eu-west holds it all now: retention is free to apply retention.bytes.
  const p = await waitFor('retention to delete what eu-west now holds', async () => {
    const q = partitionOf(await us.status(), TOPIC)!;
    return q.logStartOffset > 0n && q.segments <= 8 ? q : undefined;
  }, 20_000);
  assert.ok(p.logStartOffset > BigInt(sent.length) / 2n, `log start ${p.logStartOffset}`);
  const w = workersOf(await us.status(), TOPIC)[0];
  assert.equal(w.quotaDroppedRecords, 0);
  assert.equal(w.sentRecords, sent.length);
  assert.equal(us.logLines.filter((l) => l.includes('backlog quota exceeded')).length, 0);
});

test('with a backlog quota, retention deletes past it loudly and the remote gets exactly what was still held, from the new log start on', { timeout: 60_000 }, async (t) => {
  const TOPIC = 'quota';
  const QUOTA = 128 * KiB;
  const regions = await Regions.create({
    names: [US, EU],
    policies: [oneWay('dr', TOPIC, { backlogQuota: '128KiB' })],
    overrides: (name) => ({ topics: { autoCreate: false }, ...(name === US ? SMALL_RETENTION : {}) }),
  });
  t.after(() => regions.close());
  const us = regions.get(US);
  const eu = regions.get(EU);
  await us.start();

  await createTopics(us, [{ topic: TOPIC, numPartitions: 1 }]);
  const sent = records(US, TOPIC, 0, 3000); // ~750 KB in ~5 KB batches, six times the quota
  await produce(us, TOPIC, sent, 0, 20);

  // Retention deletes until the backlog is back within the quota, then stops: wait until the
  // log start has not moved for several retention intervals.
  let last = -1n;
  let stableSince = Date.now();
  const settled = await waitFor('retention to delete past the quota and settle', async () => {
    const s = await us.status();
    const p = partitionOf(s, TOPIC)!;
    if (p.logStartOffset !== last) {
      last = p.logStartOffset;
      stableSince = Date.now();
      return undefined;
    }
    return p.logStartOffset > 0n && Date.now() - stableSince > 1000 ? { p, w: workersOf(s, TOPIC)[0] } : undefined;
  }, 30_000);
  const lost = Number(settled.p.logStartOffset); // us-east offsets 0 .. lost-1 are gone
  assert.ok(lost > 0 && lost < sent.length, `log start ${lost}`);
  assert.equal(settled.p.highWatermark, BigInt(sent.length));
  // Loud: a warning naming the topic, the remote and the quota; the worker counts the loss.
  const warnings = us.logLines.filter((l) => l.includes('backlog quota exceeded'));
  assert.ok(warnings.length > 0, 'a "backlog quota exceeded" warning');
  const warning = JSON.parse(warnings[0]) as { topic: string; remote: string; quota: number };
  assert.equal(warning.topic, TOPIC);
  assert.equal(warning.remote, EU);
  assert.equal(warning.quota, QUOTA);
  assert.ok(settled.w.quotaDroppedRecords > 0, 'quotaDroppedRecords > 0');
  assert.equal(settled.w.backlogRecords, sent.length - lost, 'the backlog is what is still held');
  t.diagnostic(`lost: us-east offsets 0..${lost - 1} (${lost} records); kept for eu-west: ${lost}..${sent.length - 1}, ${settled.w.backlogBytes} bytes`);

  await eu.start();
  await caughtUp(us);
  // eu-west holds exactly us-east's offsets lost .. sent.length-1, in order, once each.
  const msgs = await assertRegionHolds(EU, eu.bootstrap, TOPIC, new Map([[US, produced([sent.slice(lost)])]]));
  assert.equal(msgs.length, sent.length - lost, `eu-west holds ${msgs.length} records; expected ${sent.length - lost} (us-east offsets ${lost}..${sent.length - 1}; 0..${lost - 1} lost)`);
  const w = workersOf(await us.status(), TOPIC)[0];
  assert.equal(w.sentRecords, sent.length - lost);

  // The count is exact: the records retention deleted unreplicated, not more.
  assert.equal(settled.w.quotaDroppedRecords, lost, `quotaDroppedRecords after the deletions: offsets 0..${lost - 1} were lost`);
  assert.equal(w.quotaDroppedRecords, lost, 'nothing more was dropped while catching up');
  // The quota is how much unreplicated data retention keeps: it deleted oldest-first only
  // while the backlog still held exceeded the quota, so what is left lies within one segment
  // (16 KiB plus a ~5 KiB batch) under it.
  assert.ok(
    settled.w.backlogBytes > QUOTA - 24 * KiB && settled.w.backlogBytes <= QUOTA,
    `us-east kept ${settled.w.backlogBytes} bytes of eu-west's backlog; the quota is ${QUOTA} (retention.bytes ${64 * KiB})`,
  );
});

test('partition counts that differ: that topic\'s links stop in error naming both counts and regions, nothing of it is replicated, other topics keep replicating', { timeout: 60_000 }, async (t) => {
  const regions = await Regions.create({
    names: [US, EU],
    policies: [oneWay('dr', ['orders', 'payments'])],
    overrides: { topics: { autoCreate: false } },
  });
  t.after(() => regions.close());
  await regions.start();
  const us = regions.get(US);
  const eu = regions.get(EU);

  await createTopics(eu, [{ topic: 'orders', numPartitions: 3 }]);
  await createTopics(us, [{ topic: 'orders', numPartitions: 2 }, { topic: 'payments', numPartitions: 2 }]);

  const mismatch = await waitFor('the orders links to fail on the partition counts', async () => {
    const w = workersOf(await us.status(), 'orders');
    return w.length === 2 && w.every((x) => x.state === 'error') ? w : undefined;
  }, 20_000);
  for (const w of mismatch) {
    assert.equal(w.remote, EU);
    assert.ok(w.error !== null);
    assert.match(w.error, /\b2\b/, `names us-east's count: ${w.error}`);
    assert.match(w.error, /\b3\b/, `names eu-west's count: ${w.error}`);
    assert.match(w.error, /us-east/, w.error);
    assert.match(w.error, /eu-west/, w.error);
  }

  const usOrders = [0, 1].map((p) => records(US, `orders-p${p}`, 0, 200));
  const usPayments = [0, 1].map((p) => records(US, `payments-p${p}`, 0, 300));
  for (let p = 0; p < 2; p++) await produce(us, 'orders', usOrders[p], p);
  // eu-west's orders is a one-way DR copy: its producers are refused (src/dr/).
  await assert.rejects(produce(eu, 'orders', records(EU, 'orders-p0', 0, 10), 0), /Policy violation/);
  for (let p = 0; p < 2; p++) await produce(us, 'payments', usPayments[p], p);

  // payments replicates meanwhile; the orders links keep retrying and keep failing.
  const retriesBefore = new Map(mismatch.map((w) => [w.partition, w.retries]));
  const usStatus = () => us.status().then((st) => describeWorkers(st));
  await waitFor('payments to replicate and the orders links to retry', async () => {
    const s = await us.status();
    const pay = workersOf(s, 'payments');
    if (pay.length !== 2 || pay.some((w) => w.state !== 'idle' || w.backlogRecords > 0)) return undefined;
    const ord = workersOf(s, 'orders');
    return ord.every((w) => w.retries >= retriesBefore.get(w.partition)! + 2) ? true : undefined;
  }, 20_000).catch(async (err: Error) => assert.fail(`${err.message}; us-east workers: ${await usStatus()}`));
  await assertRegionHolds(EU, eu.bootstrap, 'payments', new Map([[US, produced(usPayments)]]));

  const s = await us.status();
  for (const w of workersOf(s, 'orders')) {
    assert.equal(w.state, 'error', `orders p${w.partition}: still in error`);
    assert.equal(w.sentRecords, 0);
    assert.equal(w.sentBatches, 0);
    assert.equal(w.backlogRecords, 200, 'the backlog is kept for when the counts match');
  }
  assert.equal(partitionOf(s, 'orders', 2), undefined, 'us-east still has 2 partitions of orders');
  const euStatus = await eu.status();
  assert.equal(euStatus.topics.find((x) => x.name === 'orders')?.partitions.length, 3, 'eu-west still has 3 partitions of orders');
  // eu-west's orders holds nothing: nothing from us-east, and its own producer was refused.
  await assertRegionHolds(EU, eu.bootstrap, 'orders', new Map());
  assert.equal(euStatus.target.appendedBatches > 0, true, 'eu-west did receive payments');
});

test('policies changed at run time: a new policy replicates what was produced before and after; removing it stops the workers', { timeout: 60_000 }, async (t) => {
  const TOPIC = 'late';
  const regions = await Regions.create({ names: [US, EU], policies: [], overrides: { topics: { autoCreate: false } } });
  t.after(() => regions.close());
  await regions.start();
  const us = regions.get(US);
  const eu = regions.get(EU);

  await createTopics(us, [{ topic: TOPIC, numPartitions: 1 }, { topic: 'late-beacon', numPartitions: 1 }]);
  const sent = records(US, TOPIC, 0, 500);
  await produce(us, TOPIC, sent);
  {
    const s = await us.status();
    assert.deepEqual(workersOf(s, TOPIC), [], 'no policy covers late: no worker');
    assert.equal(partitionOf(s, TOPIC)!.highWatermark, 500n);
    assert.equal(partitionOf(await eu.status(), TOPIC), undefined, 'eu-west knows nothing of late');
  }

  const policies = [oneWay('late-dr', TOPIC)];
  await us.setPolicies(policies);
  await eu.setPolicies(policies);
  assert.equal(workersOf(await us.status(), TOPIC).length, 1, 'the new policy starts a worker at once');
  const after = records(US, TOPIC, 500, 500);
  await produce(us, TOPIC, after);
  sent.push(...after);
  await caughtUp(us);
  await assertRegionHolds(EU, eu.bootstrap, TOPIC, new Map([[US, produced([sent])]]));

  // Only a beacon topic's policy is left: removing late-dr stops its worker.
  const beaconOnly = [oneWay('beacon-dr', 'late-beacon')];
  await us.setPolicies(beaconOnly);
  await eu.setPolicies(beaconOnly);
  const stopped = await us.status();
  assert.deepEqual(workersOf(stopped, TOPIC), [], 'removing the policy stops the worker');
  const unreplicated = records(US, TOPIC, 1000, 300);
  await produce(us, TOPIC, unreplicated);
  // The link is live: a beacon produced after those records crosses it. A worker for late
  // that outlived its policy would have sent them by the time the beacon is there.
  const beacon = records(US, 'late-beacon', 0, 1);
  await produce(us, 'late-beacon', beacon);
  await waitFor('the beacon to reach eu-west', async () => {
    const b = partitionOf(await eu.status(), 'late-beacon');
    return b !== undefined && b.highWatermark > 0n;
  }, 20_000);
  await assertRegionHolds(EU, eu.bootstrap, 'late-beacon', new Map([[US, produced([beacon])]]));
  assert.deepEqual(workersOf(await us.status(), TOPIC), [], 'no worker for late came back');
  assert.equal(partitionOf(await us.status(), TOPIC)!.highWatermark, 1300n);
  await assertRegionHolds(EU, eu.bootstrap, TOPIC, new Map([[US, produced([sent])]]));

  // Back on: it resumes where eu-west stopped, without repeating anything.
  await us.setPolicies(policies);
  await eu.setPolicies(policies);
  await caughtUp(us);
  sent.push(...unreplicated);
  await assertRegionHolds(EU, eu.bootstrap, TOPIC, new Map([[US, produced([sent])]]));
  const w = workersOf(await us.status(), TOPIC)[0];
  assert.equal(w.sentRecords, 300, 'the new worker sent only what eu-west lacked');
});
