/**
 * A replication link catching up from the object store, with real brokers:
 *
 *   - in a three-region mesh, a region whose link to the third region catches up from its
 *     bucket sends only its own records; the third region holds each record once, under its
 *     true origin (the fault: received runs cut by the read budget went out as its own data);
 *   - with the object store unreachable when the source region starts, its link backs off
 *     saying so instead of skipping the offloaded history, then sends everything once.
 *
 * The remote down until its backlog was offloaded (one-way, two regions) is in
 * replication-backlog.test.ts; the worker's side of both cases in worker.test.ts.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { walkBatches } from '../../src/replication/replica-state.js';
import { RunTracker } from '../../src/replication/run-tracker.js';
import { PartitionLog } from '../../src/storage/partition-log.js';
import { decodeRecords } from '../../src/storage/record-batch.js';
import { startBroker } from '../helpers/broker.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { startRestartableS3rver } from '../helpers/object-stores.js';
import { freePort, Regions, waitCaughtUp, type Region, type RegionStatus } from '../helpers/regions.js';
import { assertRegionHolds, kcatLines, readAgreed, type Produced } from '../helpers/replication-check.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const KiB = 1024;

interface Msg {
  key: Buffer | null;
  value: Buffer;
}

/** `n` unique records naming their origin, ~250 bytes each. */
function records(origin: string, from: number, n: number): Msg[] {
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    return { key: Buffer.from(`k${i % 11}`), value: Buffer.from(`${origin}/${i}/${'x'.repeat(150 + ((i * 37) % 200))}`) };
  });
}

async function produce(region: Region, topic: string, msgs: readonly Msg[]): Promise<void> {
  // Small batches: a run received from another region is many batches long.
  const r = await new KcatClient(region.bootstrap).produce(topic, kcatLines(msgs), ['-p', '0', '-K', '\t', '-X', 'batch.num.messages=10']);
  assert.equal(r.code, 0, `kcat produce to ${region.name}: ${r.stderr}`);
}

async function createTopic(region: Region, topic: string): Promise<void> {
  const admin = new Kafka({ clientId: 'catch-up-admin', brokers: [region.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    assert.ok(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true }), `${topic} created in ${region.name}`);
  } finally {
    await admin.disconnect();
  }
}

function describeWorkers(s: RegionStatus): string {
  return s.workers.map((w) => `${w.topic}/${w.partition}->${w.remote} ${w.state} backlog ${w.backlogRecords}${w.error ? `: ${w.error}` : ''}`).join('; ');
}

test('mesh: a region catching a link up from the object store sends only its own records; the third region holds each record once, under its true origin', { timeout: 60_000 }, async (t) => {
  const [US, EU, AP] = ['us-east', 'eu-west', 'ap-south'];
  const TOPIC = 'mesh-cold';
  const store = tmpDir('meridian-catch-up-');
  const regions = await Regions.create({
    names: [US, EU, AP],
    policies: [{ name: 'mesh', topics: TOPIC, topology: 'mesh', regions: [US, EU, AP] }],
    overrides: (name): BrokerConfigInput => {
      const base: BrokerConfigInput = { topics: { autoCreate: false }, logging: { level: 'warn' } };
      // us-east sends runs of up to 32 KiB; eu-west reads 4 KiB at a time, so its catch-up
      // reads from the object store end inside the runs it received from us-east.
      if (name === US) return { ...base, replication: { maxRequestBytes: 32 * KiB } as BrokerConfigInput['replication'] };
      if (name === EU) {
        return {
          ...base,
          log: { segmentBytes: 128 * KiB },
          tiered: { enabled: true, store: { type: 'fs', dir: store.dir }, offload: { onSeal: true }, localRetention: { bytes: 0 }, deletionLagMs: 0, checkIntervalMs: 100 },
          replication: { maxRequestBytes: 4 * KiB } as BrokerConfigInput['replication'],
        };
      }
      return base;
    },
  });
  t.after(async () => {
    await regions.close();
    store.cleanup();
  });
  await regions.start();
  const us = regions.get(US);
  const eu = regions.get(EU);
  const ap = regions.get(AP);
  // Created in us-east; its links create it in the other regions (the mesh links start there).
  await createTopic(us, TOPIC);
  await waitFor('eu-west to have the topic and its links', async () => ((await eu.status()).workers.filter((w) => w.topic === TOPIC).length === 2 ? true : undefined), 15_000);
  await ap.stop(); // ap-south is away while both produce

  const fromUs: Msg[] = [];
  const fromEu: Msg[] = [];
  for (let round = 0; round < 3; round++) {
    const u = records(US, fromUs.length, 1000);
    const e = records(EU, fromEu.length, 150);
    await produce(us, TOPIC, u);
    await produce(eu, TOPIC, e);
    fromUs.push(...u);
    fromEu.push(...e);
  }
  const total = BigInt(fromUs.length + fromEu.length);
  await waitFor('us-east to have sent eu-west everything', async () => ((await us.status()).workers.some((w) => w.topic === TOPIC && w.remote === EU && w.state === 'idle' && w.backlogRecords === 0) ? true : undefined), 30_000);
  // eu-west holds everything, offloaded and deleted locally down to its active segment.
  await waitFor(
    'eu-west to hold both origins and to have offloaded most of them',
    async () => {
      const s = await eu.status();
      const p = s.topics.find((x) => x.name === TOPIC)?.partitions[0];
      const tier = s.tiered.find((x) => x.topic === TOPIC);
      // Markers take offsets too: eu-west's log is longer than the record count.
      if (p === undefined || tier === undefined || BigInt(p.highWatermark) < total) return undefined;
      if (BigInt(p.logStartOffset) < (BigInt(p.highWatermark) * 3n) / 4n) return undefined;
      return BigInt(tier.remoteEndOffset) >= BigInt(p.logStartOffset) ? true : undefined;
    },
    30_000,
  );

  await ap.start();
  try {
    await waitCaughtUp([us, eu], 30_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}; us-east: ${describeWorkers(await us.status())}; eu-west: ${describeWorkers(await eu.status())}`);
  }
  const euToAp = (await eu.status()).workers.find((w) => w.topic === TOPIC && w.remote === AP)!;
  assert.equal(euToAp.sentRecords, fromEu.length, `eu-west sent ap-south ${euToAp.sentRecords} records, it produced ${fromEu.length} (received records sent on as its own?)`);
  const produced = (list: Msg[]): Produced => new Map([[0, list]]);
  const msgs = await assertRegionHolds(AP, ap.bootstrap, TOPIC, new Map([[US, produced(fromUs)], [EU, produced(fromEu)]]));
  assert.equal(msgs.length, fromUs.length + fromEu.length, `ap-south holds ${msgs.length} records, ${fromUs.length + fromEu.length} were produced`);

  // Each record is held under its true origin: the marker before it names the region that produced it.
  await ap.stop();
  const log = await PartitionLog.open(path.join(ap.dataDir, 'logs', `${TOPIC}-0`));
  try {
    const tracker = new RunTracker();
    const wrong: string[] = [];
    let replicated = 0;
    await walkBatches(log, log.logStartOffset, log.highWatermark, (b, h) => {
      const kind = tracker.classify(b, h);
      if (kind.kind === 'local') wrong.push(`local batch at ${h.baseOffset}`);
      if (kind.kind !== 'replicated') return;
      for (const r of decodeRecords(b)) {
        replicated++;
        const producer = String(r.value).split('/')[0];
        if (producer !== kind.origin.region) wrong.push(`${String(r.value).slice(0, 16)} held as ${kind.origin.region}'s`);
      }
    });
    assert.equal(replicated, fromUs.length + fromEu.length);
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} records under the wrong origin`);
  } finally {
    await log.close();
  }
});

test('object store unreachable when the source region starts: its link backs off saying so, then sends everything, offloaded part included, once each', { timeout: 60_000 }, async (t) => {
  const TOPIC = 'cold-start';
  const f = await startRestartableS3rver();
  t.after(() => f.stop());
  const euPort = await freePort();
  const config: BrokerConfigInput = {
    region: 'us-east',
    log: { segmentBytes: 16 * KiB, retention: { ms: -1 } },
    tiered: { enabled: true, offload: { onSeal: true }, localRetention: { bytes: 0 }, deletionLagMs: 0, checkIntervalMs: 100 },
    replication: {
      regions: [{ name: 'us-east', address: '127.0.0.1:1' }, { name: 'eu-west', address: `127.0.0.1:${euPort}` }],
      policies: [{ topics: TOPIC, topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
      retry: { initialMs: 50, maxMs: 500 },
      requestTimeoutMs: 5000,
    },
  } as BrokerConfigInput;
  let us = await startBroker(config, undefined, { blobStore: f.store });
  t.after(() => us.cleanup());
  await us.broker.topics.createTopic(TOPIC, 1);
  // Attaching the new topic to the store is asynchronous (and retried if a request to
  // s3rver fails on a busy machine): it must be tiered before it can be offloaded.
  await waitFor('the topic attached to the object store', () => (us.broker.tiered!.status().some((x) => x.topic === TOPIC) && us.broker.tiered!.pendingTopics.length === 0 ? true : undefined), 20_000, 25);
  // eu-west is not up yet: the whole topic is backlog. Produced, offloaded, deleted locally.
  const sent: string[] = [];
  for (let i = 0; i < 600; i++) sent.push(`cold-${i}-${'v'.repeat(100 + (i % 50))}`);
  const r = await new KcatClient(us.bootstrap).produce(TOPIC, sent.join('\n') + '\n', ['-p', '0', '-X', 'batch.num.messages=20']);
  assert.equal(r.code, 0, r.stderr);
  await us.broker.tiered!.offloadNow(TOPIC);
  await waitFor('us-east to delete its offloaded local copies', () => (us.broker.topics.partition(TOPIC, 0)!.segments().length === 1 ? true : undefined), 20_000, 25);
  const localStart = us.broker.topics.partition(TOPIC, 0)!.logStartOffset;
  assert.ok(localStart > 300n, `most of the topic is only in the object store (local log starts at ${localStart})`);

  // us-east restarts while the object store is down; eu-west comes up.
  await f.stopServer();
  await us.stop();
  us = await startBroker(config, { dataDir: us.dataDir, cleanup: () => fs.rmSync(us.dataDir, { recursive: true, force: true }), port: us.port }, { blobStore: f.openStore() });
  assert.deepEqual(us.broker.tiered!.pendingTopics, [TOPIC]);
  // The same policies: eu-west takes the topic from the regions they name as its senders.
  const eu = await startBroker({ region: 'eu-west', kafka: { host: '127.0.0.1', port: euPort }, groups: { initialRebalanceDelayMs: 0 }, replication: config.replication });
  t.after(() => eu.cleanup());
  // (Connection errors while eu-west was starting do not count: wait for the handshake.)
  const down = await waitFor(
    'the link to reach eu-west and then stop, or to move on',
    () => us.broker.replicator.status().find((w) => w.topic === TOPIC && ((w.state === 'backing-off' && /object store/.test(w.error ?? '')) || w.state === 'idle' || w.sentRecords > 0)),
    15_000,
    25,
  );
  assert.equal(down.state, 'backing-off', `the link is ${down.state} (eu-west holds up to ${down.replicatedOffset}, ${down.sentRecords} records sent) while the store's part of the topic is unknown`);
  assert.match(down.error ?? '', /object store .* not reachable/);
  assert.equal(down.replicatedOffset, '-1', 'eu-west holds nothing of it');
  assert.equal(down.backlogRecords, sent.length, 'the whole topic is still backlog: nothing skipped');
  assert.equal(eu.broker.topics.partition(TOPIC, 0)?.highWatermark ?? 0n, 0n, 'eu-west got nothing yet');

  await f.startServer();
  const done = await waitFor('the link to catch up once the store is back', () => us.broker.replicator.status().find((w) => w.topic === TOPIC && w.state === 'idle' && w.backlogRecords === 0), 30_000, 50);
  assert.equal(done.replicatedOffset, String(sent.length - 1));
  assert.equal(done.sentRecords, sent.length, 'every record sent once');
  assert.deepEqual((await readAgreed('eu-west', eu.bootstrap, TOPIC)).map((m) => m.value!.toString('latin1')), sent, 'eu-west holds the whole topic, in order, byte for byte');
});
