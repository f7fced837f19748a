/**
 * One-way DR end to end, each region a broker in its own process: a KafkaJS group consumes
 * half a topic in the primary and commits; the primary is killed with SIGKILL while its link
 * to the DR region is slow (a rate limit), so the DR copy lacks a known tail; the copy
 * refuses producers until promoted; the promote reports exactly what is missing (checked
 * against what the test produced and what the copy holds); the same group id resumes in the
 * DR region at the translated offset, missing nothing and re-reading only its uncommitted
 * window. Then the old primary returns: the failback dry run lists the divergent tail, the
 * confirmed failback preserves it byte for byte in a side topic, the old primary ends with
 * the new primary's history, and new records replicate to it exactly once.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Consumer } from 'kafkajs';
import { collectMessages, readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { adminCall, drKafka, startDrRegions } from '../helpers/dr.js';
import { waitFor } from '../helpers/wait.js';

const TOPIC = 'payments';
const GROUP = 'billing';
const FIRST = 100;
const SECOND = 100;
const COMMITTED = 60;
const CONSUMED_IN_A = 70;

const kafka = drKafka;
const admin = adminCall;

const values = (ms: ReadonlyArray<{ value: Buffer | null }>) => ms.map((m) => m.value!.toString().split('|')[0]);

test('one-way DR: promote reports the exact recovery point, the group resumes at its translated offset, failback preserves the divergent tail', { timeout: 240_000 }, async (t) => {
  const { regions, clients } = await startDrRegions(
    t,
    // 8 KiB/s: the second half (about 100 KiB) is still on its way when the primary dies.
    { names: ['us-east', 'eu-west'], policies: [{ name: 'payments-dr', topics: [TOPIC], topology: 'one-way', source: 'us-east', targets: ['eu-west'], rateLimit: '8KiB' }] },
    { name: TOPIC, partitions: 1 },
  );
  const us = regions.get('us-east');
  const eu = regions.get('eu-west');

  const producer = kafka(us.bootstrap, 'producer').producer({ idempotent: true });
  await producer.connect();
  clients.push(() => producer.disconnect());
  // Small records first: they replicate in a couple of seconds.
  for (let i = 0; i < FIRST; i += 10) await producer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 10 }, (_, j) => ({ value: `rec-${i + j}` })) });
  await waitFor('the first records in eu-west', async () => ((await readTopicToEnd(eu.bootstrap, TOPIC)).length === FIRST ? true : undefined), 60_000);

  // The group consumes 70 records in us-east and commits 60.
  const consumedA: string[] = [];
  const consumer: Consumer = kafka(us.bootstrap, 'billing-a').consumer({ groupId: GROUP });
  await consumer.connect();
  await consumer.subscribe({ topics: [TOPIC], fromBeginning: true });
  let committed = false;
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ message, pause }) => {
      if (consumedA.length >= CONSUMED_IN_A) {
        pause();
        return;
      }
      consumedA.push(message.value!.toString());
      if (consumedA.length === COMMITTED) {
        await consumer.commitOffsets([{ topic: TOPIC, partition: 0, offset: String(COMMITTED) }]);
        committed = true;
      }
    },
  });
  await waitFor('the group to consume 70 records in us-east', async () => (consumedA.length >= CONSUMED_IN_A && committed ? true : undefined));
  await consumer.disconnect();
  await waitFor('the commit to reach eu-west', async () => {
    const r = await admin<{ partitions: Array<{ peerOffset: string | null }> }>(eu, 'GET', `/v1/dr/groups/${GROUP}`);
    return r.status === 200 && r.body.partitions[0]?.peerOffset === String(COMMITTED) ? true : undefined;
  });

  // 1 KiB records: the rate-limited link carries about eight a second.
  const pad = 'x'.repeat(1000);
  for (let i = FIRST; i < FIRST + SECOND; i += 10) await producer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 10 }, (_, j) => ({ value: `rec-${i + j}|${pad}` })) });
  const produced = FIRST + SECOND;
  await waitFor('eu-west to learn the primary end', async () => {
    const r = await admin<{ topics: Array<{ topic: string; primaryEnds: Array<{ endOffset: string }> }> }>(eu, 'GET', '/v1/dr');
    return r.body.topics.find((x) => x.topic === TOPIC)?.primaryEnds[0]?.endOffset === String(produced) ? true : undefined;
  });
  await producer.disconnect();
  await us.kill9();

  // The DR copy refuses producers, with an error that says why.
  const euProducer = kafka(eu.bootstrap, 'eu-producer').producer();
  await euProducer.connect();
  clients.push(() => euProducer.disconnect());
  await assert.rejects(euProducer.send({ topic: TOPIC, acks: -1, messages: [{ value: 'refused' }] }), (err: Error & { type?: string }) => {
    assert.match(`${err.type ?? ''} ${err.message} ${String((err as { cause?: unknown }).cause ?? '')}`, /POLICY_VIOLATION|policy/i);
    return true;
  });

  // What eu-west holds, read independently: a prefix of what us-east acknowledged.
  const held = values(await readTopicToEnd(eu.bootstrap, TOPIC));
  assert.deepEqual(held, Array.from({ length: held.length }, (_, i) => `rec-${i}`), 'eu-west holds a prefix, in order');
  assert.ok(held.length >= FIRST && held.length < produced, `eu-west lacks a tail (holds ${held.length} of ${produced})`);

  const promoted = await admin<{ reports: Array<{ id: string; epoch: number; partitions: Array<{ lastOriginOffsetHeld: string; originEndOffset: string; missingRecords: string; missingOffsets: { first: string; last: string } | null; missingSeconds: number }>; totals: { missingRecords: string } }> }>(eu, 'POST', '/v1/dr/promote', { topic: TOPIC });
  assert.equal(promoted.status, 200, JSON.stringify(promoted.body));
  const [report] = promoted.body.reports;
  assert.equal(report.epoch, 1);
  assert.deepEqual(
    { held: report.partitions[0].lastOriginOffsetHeld, end: report.partitions[0].originEndOffset, missing: report.partitions[0].missingRecords, range: report.partitions[0].missingOffsets, total: report.totals.missingRecords },
    { held: String(held.length - 1), end: String(produced), missing: String(produced - held.length), range: { first: String(held.length), last: String(produced - 1) }, total: String(produced - held.length) },
  );
  assert.ok(report.partitions[0].missingSeconds >= 0);
  // Saved, and the same command again answers the same report.
  const again = await admin<{ reports: Array<{ id: string }> }>(eu, 'POST', '/v1/dr/promote', { topic: TOPIC });
  assert.equal(again.body.reports[0].id, report.id);
  assert.equal((await admin<{ id: string }>(eu, 'GET', `/v1/dr/reports/${report.id}`)).body.id, report.id);

  // Writable now.
  await euProducer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 20 }, (_, i) => ({ value: `b-${i}` })) });

  // The same group id in eu-west resumes at its translated offset: nothing missed, and only
  // the uncommitted window read again.
  const consumedB = values(await collectMessages(kafka(eu.bootstrap, 'billing-b'), { groupId: GROUP, topics: [TOPIC], count: held.length - COMMITTED + 20 }));
  assert.deepEqual(consumedB, [...held.slice(COMMITTED), ...Array.from({ length: 20 }, (_, i) => `b-${i}`)]);
  const seenA = new Set(consumedA.map((v) => v.split('|')[0]));
  const redelivered = consumedB.filter((v) => seenA.has(v)).length;
  assert.equal(redelivered, CONSUMED_IN_A - COMMITTED, 'exactly the uncommitted window is read again');
  for (const v of held) assert.ok(seenA.has(v) || consumedB.includes(v), `${v} consumed in one region or the other`);

  // The old primary returns. Its copy is ahead of what eu-west holds of it: the divergent tail.
  await us.start();
  const dry = await admin<{ dryRun: boolean; sideTopic: string; partitions: Array<{ truncateAt: string; records: string; offsets: { first: string; last: string } | null; timestamps: unknown }> }>(us, 'POST', '/v1/dr/failback', { topic: TOPIC });
  assert.equal(dry.status, 200, JSON.stringify(dry.body));
  assert.equal(dry.body.dryRun, true);
  assert.deepEqual(
    { at: dry.body.partitions[0].truncateAt, records: dry.body.partitions[0].records, offsets: dry.body.partitions[0].offsets },
    { at: String(held.length), records: String(produced - held.length), offsets: { first: String(held.length), last: String(produced - 1) } },
  );
  assert.ok(dry.body.partitions[0].timestamps !== null);
  // A dry run changes nothing: us-east still holds everything it acknowledged.
  assert.equal((await readTopicToEnd(us.bootstrap, TOPIC)).length, produced);

  const done = await admin<{ dryRun: boolean; completed: boolean; sideTopic: string }>(us, 'POST', '/v1/dr/failback', { topic: TOPIC, confirm: true });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.equal(done.body.completed, true);
  assert.equal(done.body.sideTopic, 'payments.diverged-us-east-e1');
  // Preserved byte for byte.
  const preserved = await readTopicToEnd(us.bootstrap, done.body.sideTopic);
  assert.deepEqual(
    preserved.map((m) => m.value!.toString()),
    Array.from({ length: produced - held.length }, (_, i) => `rec-${held.length + i}|${pad}`),
  );
  // us-east now holds eu-west's history: its own records eu-west had, then eu-west's.
  const expected = [...held, ...Array.from({ length: 20 }, (_, i) => `b-${i}`)];
  await waitFor('us-east to follow eu-west', async () => {
    const got = values(await readTopicToEnd(us.bootstrap, TOPIC));
    return got.length === expected.length ? got : undefined;
  }, 60_000).then((got) => assert.deepEqual(got, expected));
  // New records in eu-west replicate to us-east exactly once; us-east is read-only now.
  await euProducer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 10 }, (_, i) => ({ value: `b-${20 + i}` })) });
  const after = [...expected, ...Array.from({ length: 10 }, (_, i) => `b-${20 + i}`)];
  await waitFor('the new records in us-east', async () => {
    const got = values(await readTopicToEnd(us.bootstrap, TOPIC));
    return got.length >= after.length ? got : undefined;
  }, 60_000).then((got) => assert.deepEqual(got, after));
  const usProducer = kafka(us.bootstrap, 'us-producer').producer();
  await usProducer.connect();
  clients.push(() => usProducer.disconnect());
  await assert.rejects(usProducer.send({ topic: TOPIC, acks: -1, messages: [{ value: 'refused' }] }));

  // Switching back is one more promote, in us-east (epoch 2), and a failback in eu-west,
  // whose tail is empty: us-east already holds everything eu-west wrote.
  const back = await admin<{ reports: Array<{ epoch: number; formerPrimary: string; totals: { missingRecords: string } }> }>(us, 'POST', '/v1/dr/promote', { topic: TOPIC });
  assert.equal(back.status, 200, JSON.stringify(back.body));
  assert.deepEqual([back.body.reports[0].epoch, back.body.reports[0].formerPrimary, back.body.reports[0].totals.missingRecords], [2, 'eu-west', '0']);
  await usProducer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 10 }, (_, i) => ({ value: `u-${i}` })) });
  // eu-west stops taking writes as soon as us-east's handshake tells it of epoch 2.
  await waitFor('eu-west to learn of the newer primary', async () => {
    const r = await admin<{ topics: Array<{ topic: string; readOnly: boolean }> }>(eu, 'GET', '/v1/dr');
    return r.body.topics.find((x) => x.topic === TOPIC)?.readOnly === true ? true : undefined;
  });
  await assert.rejects(euProducer.send({ topic: TOPIC, acks: -1, messages: [{ value: 'refused' }] }), /POLICY_VIOLATION|policy/i);
  const euBack = await admin<{ completed: boolean; totals: { records: string } }>(eu, 'POST', '/v1/dr/failback', { topic: TOPIC, confirm: true });
  assert.equal(euBack.status, 200, JSON.stringify(euBack.body));
  assert.deepEqual([euBack.body.completed, euBack.body.totals.records], [true, '0']);
  const final = [...after, ...Array.from({ length: 10 }, (_, i) => `u-${i}`)];
  await waitFor('eu-west to follow us-east again', async () => {
    const got = values(await readTopicToEnd(eu.bootstrap, TOPIC));
    return got.length >= final.length ? got : undefined;
  }, 60_000).then((got) => assert.deepEqual(got, final));
});
