/**
 * The offset sync of an idle region costs (close to) nothing per partition: two regions in
 * this process, a one-way policy over 200 topics x 10 partitions, one record produced into
 * each partition with KafkaJS. Once both regions reported every partition end to each other,
 * several heartbeat rounds pass with nothing produced: no partition's last batch is read
 * again (the publisher's read counter), no sync considers a partition, and neither region
 * rewrites its remote-offsets file (its write counter, and the file's bytes on disk); yet the
 * DR copy's view of the primary's ends stays fresh (their age is the time since the last
 * heartbeat, not since the records). One more record then costs exactly one read and reaches
 * the copy.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { freePort } from '../helpers/regions.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const TOPICS = 200;
const PARTITIONS = 10;
const names = Array.from({ length: TOPICS }, (_, i) => `idle-${String(i).padStart(3, '0')}`);

test('an idle region re-reads no partition and rewrites nothing over several heartbeat rounds (2,000 partitions)', { timeout: 240_000 }, async (t) => {
  const ports = { 'us-east': await freePort(), 'eu-west': await freePort() };
  const regions = Object.entries(ports).map(([name, port]) => ({ name, address: `127.0.0.1:${port}` }));
  const policies = [{ name: 'idle-dr', topics: ['idle-*'], topology: 'one-way', source: 'us-east', targets: ['eu-west'] }];
  const brokers: TestBroker[] = [];
  t.after(async () => {
    for (const b of brokers.reverse()) await b.cleanup();
  });
  const start = async (region: 'us-east' | 'eu-west') => {
    const d = tmpDir(`meridian-idle-dr-${region}-`);
    const b = await startBroker(
      { region, topics: { autoCreate: false }, replication: { regions, policies, retry: { initialMs: 50, maxMs: 1000 }, requestTimeoutMs: 5000 } } as Parameters<typeof startBroker>[0],
      { dataDir: d.dir, cleanup: d.cleanup, port: ports[region] },
    );
    brokers.push(b);
    return b;
  };
  const us = await start('us-east');
  const eu = await start('eu-west');

  const kafka = new Kafka({ clientId: 'idle-dr', brokers: [us.bootstrap], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: names.map((topic) => ({ topic, numPartitions: PARTITIONS })) });
  await admin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  await producer.sendBatch({ acks: -1, topicMessages: names.map((topic) => ({ topic, messages: Array.from({ length: PARTITIONS }, (_, p) => ({ partition: p, value: `${topic}/${p}` })) })) });

  const every = (f: (topic: string, partition: number) => boolean) => names.every((topic) => Array.from({ length: PARTITIONS }, (_, p) => p).every((p) => f(topic, p)));
  await waitFor('eu-west to hold every us-east end', () => every((topic, p) => eu.broker.dr.remote.endOf(topic, p, 'us-east')?.endOffset === 1n), 120_000);
  // A replicated record comes with its dedup marker: eu-west's end is past 1.
  await waitFor('eu-west to hold every record, and us-east its ends', () => every((topic, p) => {
    const end = eu.broker.topics.partition(topic, p)?.highWatermark ?? 0n;
    return end > 1n && us.broker.dr.remote.endOf(topic, p, 'eu-west')?.endOffset === end;
  }), 120_000);
  // One more heartbeat each way: whatever was on its way has landed.
  const syncsNow = (b: TestBroker) => b.broker.dr.remote.stats().syncs;
  const settle = [syncsNow(us) + 2, syncsNow(eu) + 2];
  await waitFor('two more syncs each way', () => syncsNow(us) >= settle[0] && syncsNow(eu) >= settle[1], 30_000);

  const snapshot = (b: TestBroker) => ({ publisher: b.broker.dr.publisher.stats(), remote: b.broker.dr.remote.stats(), file: fs.readFileSync(b.broker.dr.remote.file), journal: fs.readFileSync(b.broker.dr.remote.journalFile!) });
  const before = { us: snapshot(us), eu: snapshot(eu) };
  const idleSince = Date.now();
  // Three heartbeat rounds (every 2 s) each way with nothing produced.
  await waitFor('three idle heartbeat rounds each way', () => syncsNow(us) >= before.us.remote.syncs + 3 && syncsNow(eu) >= before.eu.remote.syncs + 3, 60_000);
  const after = { us: snapshot(us), eu: snapshot(eu) };
  for (const region of ['us', 'eu'] as const) {
    const b = before[region];
    const a = after[region];
    assert.equal(a.publisher.lastTimestampReads, b.publisher.lastTimestampReads, `${region}: no partition's last batch read again while idle`);
    assert.equal(a.publisher.endsConsidered, b.publisher.endsConsidered, `${region}: no partition considered while idle`);
    assert.equal(a.publisher.endsSent, b.publisher.endsSent, `${region}: no partition end sent while idle`);
    assert.equal(a.remote.writes, b.remote.writes, `${region}: remote offsets not rewritten while idle`);
    assert.ok(a.remote.unchangedSyncs >= b.remote.unchangedSyncs + 3, `${region}: the heartbeats arrived and changed nothing`);
    assert.ok(a.file.equals(b.file), `${region}: remote-offsets.json unchanged on disk`);
    assert.ok(a.journal.equals(b.journal), `${region}: its journal unchanged on disk`);
  }
  // The copy still sees the primary as just heard from: every end's age is younger than the idle window.
  const status = eu.broker.dr.topicStatus().filter((s) => s.topic.startsWith('idle-'));
  assert.equal(status.length, TOPICS);
  const idleMs = Date.now() - idleSince;
  for (const s of status) {
    assert.equal(s.readOnly, true);
    assert.equal(s.primaryEnds.length, PARTITIONS, `${s.topic}: every partition end known`);
    for (const e of s.primaryEnds) {
      assert.equal(e.endOffset, '1');
      assert.ok(e.ageMs < idleMs, `${s.topic}/${e.partition}: end age ${e.ageMs} ms is older than the ${idleMs} ms idle window: heartbeats did not refresh it`);
    }
  }

  // One record more: one read in us-east, and the copy learns the new end.
  await producer.send({ topic: 'idle-007', acks: -1, messages: [{ partition: 3, value: 'one more' }] });
  await waitFor('eu-west to learn the new end', () => eu.broker.dr.remote.endOf('idle-007', 3, 'us-east')?.endOffset === 2n, 30_000);
  const reads = us.broker.dr.publisher.stats().lastTimestampReads - before.us.publisher.lastTimestampReads;
  assert.equal(reads, 1, 'exactly the changed partition was read');
  assert.ok(eu.broker.dr.remote.stats().writes > before.eu.remote.writes, 'the new end was made durable in eu-west');
  assert.ok((eu.broker.dr.remote.endOf('idle-007', 3, 'us-east')?.lastTimestamp ?? -1) > 0, 'the new end carries its last batch timestamp');
});
