/**
 * Active-active across three regions, each a broker in its own process: producers write
 * concurrently to the same topic in every region (kcat in one, KafkaJS in another, both in
 * the third, one of them gzip-compressed), and afterwards every region's topic holds exactly
 * the union, each origin record once and in its origin order, headers included, checked
 * record by record as KafkaJS and as kcat read it (neither shows a marker).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CompressionTypes, Kafka, logLevel } from 'kafkajs';
import { KcatClient } from '../helpers/kcat-client.js';
import { Regions, waitCaughtUp } from '../helpers/regions.js';
import { assertRegionHolds, emptyProduced, kcatLines, type Produced } from '../helpers/replication-check.js';
import { waitFor } from '../helpers/wait.js';

const NAMES = ['us-east', 'eu-west', 'ap-south'];
const TOPIC = 'orders';
const PARTITIONS = 2;
const ROUNDS = 4;
const PER_ROUND = 200;

function kafka(bootstrap: string, clientId: string): Kafka {
  return new Kafka({ clientId, brokers: [bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 100 } });
}

test('three regions, active-active mesh: every region holds exactly the union in origin order; KafkaJS and kcat see no markers', { timeout: 180_000 }, async (t) => {
  const regions = await Regions.create({
    names: NAMES,
    policies: [{ name: 'global', topics: ['orders', 'audit.*'], topology: 'mesh', regions: NAMES }],
    overrides: { topics: { autoCreate: false } },
  });
  t.after(() => regions.close());
  await regions.start();
  const [us, eu, ap] = NAMES.map((n) => regions.get(n));

  // Created in one region only: the replicators create it everywhere with the same count.
  const admin = kafka(us.bootstrap, 'admin').admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true });
  await admin.disconnect();
  await waitFor('the topic in every region', async () => {
    for (const r of [eu, ap]) if (!(await r.status()).topics.some((x) => x.name === TOPIC && x.partitions.length === PARTITIONS)) return undefined;
    return true;
  });

  const produced = new Map<string, Produced>(NAMES.map((n) => [n, emptyProduced(PARTITIONS)]));
  const euProducer = kafka(eu.bootstrap, 'eu-producer').producer({ idempotent: true });
  const apProducer = kafka(ap.bootstrap, 'ap-producer').producer();
  await euProducer.connect();
  await apProducer.connect();
  t.after(async () => {
    await euProducer.disconnect();
    await apProducer.disconnect();
  });
  const header = (origin: string): Array<[string, Buffer | null]> => [['origin', Buffer.from(origin)]];

  for (let round = 0; round < ROUNDS; round++) {
    const work: Array<Promise<unknown>> = [];
    for (let p = 0; p < PARTITIONS; p++) {
      const batch = (origin: string) =>
        Array.from({ length: PER_ROUND }, (_, i) => ({ key: Buffer.from(`k${i % 7}`), value: Buffer.from(`${origin}/p${p}/r${round}/${i}`), headers: header(origin) }));
      // us-east: kcat with keys and a header.
      const usMsgs = batch('us-east');
      produced.get('us-east')!.get(p)!.push(...usMsgs);
      work.push(new KcatClient(us.bootstrap).produce(TOPIC, kcatLines(usMsgs), ['-p', String(p), '-K', '\t', '-H', 'origin=us-east']));
      // eu-west: an idempotent KafkaJS producer.
      const euMsgs = batch('eu-west');
      produced.get('eu-west')!.get(p)!.push(...euMsgs);
      work.push(euProducer.send({ topic: TOPIC, acks: -1, messages: euMsgs.map((m) => ({ key: m.key, value: m.value, partition: p, headers: { origin: 'eu-west' } })) }));
      // ap-south: KafkaJS with gzip in even rounds, kcat in odd ones.
      const apMsgs = batch('ap-south');
      produced.get('ap-south')!.get(p)!.push(...apMsgs);
      if (round % 2 === 0) {
        work.push(apProducer.send({ topic: TOPIC, acks: -1, compression: CompressionTypes.GZIP, messages: apMsgs.map((m) => ({ key: m.key, value: m.value, partition: p, headers: { origin: 'ap-south' } })) }));
      } else {
        work.push(new KcatClient(ap.bootstrap).produce(TOPIC, kcatLines(apMsgs), ['-p', String(p), '-K', '\t', '-H', 'origin=ap-south']));
      }
    }
    await Promise.all(work);
  }

  await waitCaughtUp(regions.list, 90_000);
  const total = NAMES.length * PARTITIONS * ROUNDS * PER_ROUND;
  for (const r of regions.list) {
    const records = await assertRegionHolds(r.name, r.bootstrap, TOPIC, produced);
    assert.equal(records.length, total, `${r.name} holds ${records.length} records, expected ${total}`);
    // The log does hold the markers (offsets the consumers skipped over), and both clients hid them.
    for (let p = 0; p < PARTITIONS; p++) {
      const offsets = records.filter((m) => m.partition === p).map((m) => m.offset);
      assert.ok(Math.max(...offsets) + 1 > offsets.length, `${r.name} p${p}: markers occupy offsets between records`);
    }
  }

  // Each worker reports what it did: everything local was sent, nothing is pending.
  for (const r of regions.list) {
    const s = await r.status();
    assert.equal(s.workers.length, PARTITIONS * (NAMES.length - 1), `${r.name}: one worker per partition and remote`);
    for (const w of s.workers) {
      assert.equal(w.state, 'idle', `${r.name} -> ${w.remote} p${w.partition}: ${w.error ?? ''}`);
      assert.equal(w.backlogRecords, 0);
      assert.equal(w.sentRecords, ROUNDS * PER_ROUND, `${r.name} -> ${w.remote} p${w.partition} sent its own records once`);
      assert.equal(w.error, null);
    }
  }
});
