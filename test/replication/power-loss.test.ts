/**
 * A power loss in the origin region of a one-way link, in the interval flush mode, where the
 * replicator sends acknowledged records before they are fdatasync'd (storage/ship-fence.ts).
 * Both regions are real brokers in their own processes (test/helpers/regions.ts); kcat
 * produces; KafkaJS and kcat read.
 *
 * us-east replicates 40 records to eu-west, none of them fdatasync'd (the flush interval is
 * ten minutes). Then the power loss: kill -9, the last records cut from us-east's segment
 * file (what the page cache held and the disk did not), and a restart on a new boot id.
 * us-east skips to its ship fence, so the 30 records produced after the restart take offsets
 * eu-west has never seen: eu-west ends with all 70, each once, in produce order (with the old
 * offsets reused it would take the first new ones for duplicates of the lost ones and drop
 * them). us-east holds what survived and the new records, and both clients read across the
 * skipped offsets, which its metrics report.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { PartitionFiles } from '../../src/storage/partition-files.js';
import { storedBatches } from '../../src/storage/record-batch.js';
import { readShipFence } from '../../src/storage/ship-fence.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { Regions, waitCaughtUp, type Region } from '../helpers/regions.js';
import { assertRegionHolds, emptyProduced, type Produced } from '../helpers/replication-check.js';
import { waitFor } from '../helpers/wait.js';

const TOPIC = 'orders';
const US = 'us-east';
const EU = 'eu-west';

function value(seq: number): string {
  return `${US}-0-${String(seq).padStart(6, '0')}:${String.fromCharCode(97 + (seq % 26)).repeat(60 + (seq % 40))}`;
}

async function produce(region: Region, from: number, n: number): Promise<string[]> {
  const values = Array.from({ length: n }, (_, i) => value(from + i));
  await new KcatClient(region.bootstrap).produce(TOPIC, values.join('\n') + '\n', ['-p', '0', '-X', 'acks=all', '-X', 'batch.num.messages=5', '-X', 'linger.ms=2']);
  return values;
}

async function highWatermark(region: Region): Promise<bigint> {
  const t = (await region.status()).topics.find((x) => x.name === TOPIC);
  assert.ok(t, `${TOPIC} in ${region.name}`);
  return BigInt(t.partitions[0].highWatermark);
}

/** Cuts us-east's segment after the first batches holding at least `keep` records; returns how many it kept. */
function cutSegment(partitionDir: string, keep: number): number {
  const seg = fs.readdirSync(partitionDir).filter((f) => PartitionFiles.segmentLogOffset(f) !== undefined);
  assert.equal(seg.length, 1, 'one segment');
  const file = path.join(partitionDir, seg[0]);
  let bytes = 0;
  let records = 0;
  for (const b of storedBatches(fs.readFileSync(file))) {
    if (records >= keep) break;
    bytes += b.buf.length;
    records += b.h.recordCount;
  }
  fs.truncateSync(file, bytes);
  return records;
}

/** The one sample of a metric without labels of its own (the registry adds `region`) from the region's GET /metrics. */
async function metric(region: Region, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${region.adminPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  assert.ok(line, `${name} in ${region.name}'s metrics`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

function produced(values: readonly string[]): Produced {
  const p = emptyProduced(1);
  p.set(0, values.map((v) => ({ key: null, value: Buffer.from(v) })));
  return p;
}

test('a power loss in the interval mode loses unsynced records that eu-west holds; us-east skips their offsets, and every record produced after the restart reaches eu-west once', async () => {
  const regions = await Regions.create({
    names: [US, EU],
    policies: [{ name: 'dr', topics: [TOPIC], topology: 'one-way', source: US, targets: [EU] }],
    overrides: { log: { flush: { mode: 'interval', intervalMs: 600_000 } } },
    admin: true,
  });
  const us = regions.get(US);
  const eu = regions.get(EU);
  us.bootId = 'boot-before';
  try {
    await regions.start();
    const kafka = new Kafka({ clientId: 'power-loss', brokers: [us.bootstrap], logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    assert.equal(await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 1 }], waitForLeaders: true }), true);
    await admin.disconnect();

    const before = await produce(us, 0, 40);
    await waitFor('eu-west to hold the topic', async () => (await eu.status()).topics.some((t) => t.name === TOPIC), 20_000);
    await waitCaughtUp([us, eu]);
    const partitionDir = path.join(us.dataDir, 'logs', PartitionFiles.dirName(TOPIC, 0));
    const fence = readShipFence(PartitionFiles.shipFence(partitionDir));
    assert.ok(fence !== undefined, 'us-east sent records before they were durable, under a ship fence');
    assert.equal(fence.bootId, 'boot-before');
    assert.ok(fence.fence >= 40n, `the fence (${fence.fence}) lies past every record sent`);
    assert.ok((await metric(us, 'meridian_storage_ship_fence_writes_total')) >= 1, 'the fence writes are counted');
    const described = (await (await fetch(`http://127.0.0.1:${us.adminPort}/v1/topics/${TOPIC}`)).json()) as { partitions: Array<{ highWatermark: string; durableOffset: string; shipFence: string | null }> };
    assert.deepEqual(described.partitions[0], { ...described.partitions[0], highWatermark: '40', shipFence: String(fence.fence) }, 'the admin API shows the fence');
    assert.ok(BigInt(described.partitions[0].durableOffset) < 40n, `records went out before they were durable (durable to ${described.partitions[0].durableOffset})`);
    assert.equal(await metric(us, 'meridian_storage_recovery_skipped_offsets'), 0);

    // The power loss: the process dies, and the disk lacks the records the page cache held.
    await us.kill9();
    const kept = cutSegment(partitionDir, 25);
    assert.ok(kept >= 25 && kept < 40, `kept ${kept} of 40`);
    us.bootId = 'boot-after';
    await us.start();
    assert.equal(await highWatermark(us), fence.fence, 'us-east continues at its fence');
    assert.equal(await metric(us, 'meridian_storage_recovery_skipped_offsets'), Number(fence.fence) - kept, 'the skipped offsets are reported');
    assert.ok(
      us.logLines.some((l) => l.includes('replicated records before they were durable')),
      'the skip is logged',
    );

    const after = await produce(us, 40, 30);
    await waitCaughtUp([us, eu]);
    await assertRegionHolds(US, us.bootstrap, TOPIC, new Map([[US, produced([...before.slice(0, kept), ...after])]]));
    await assertRegionHolds(EU, eu.bootstrap, TOPIC, new Map([[US, produced([...before, ...after])]]));
  } finally {
    await regions.close();
  }
});
