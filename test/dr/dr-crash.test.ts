/**
 * kill -9 in the middle of promote and of failback, each region a broker in its own
 * process: the region is killed a random few milliseconds after the command is sent (before,
 * during or after its steps: the test reports which phase the crash left), restarted, and the
 * same command run again. The end state must be what it is without a crash: one promotion
 * (epoch 1) whose report equals what is missing, computed from both logs; a side topic that
 * holds the divergent tail exactly once; the old primary holding the new primary's history,
 * with new records arriving exactly once.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { adminCall, drKafka, startDrRegions } from '../helpers/dr.js';
import type { Region } from '../helpers/regions.js';
import { rng } from '../helpers/seeded-random.js';
import { waitFor } from '../helpers/wait.js';

const TOPIC = 'ledger';
const FIRST = 50;
const TAIL = 2000;

const kafka = drKafka;
const post = <T>(region: Region, p: string, body: unknown) => adminCall<T>(region, 'POST', p, body);

function phaseOf(region: Region): string {
  try {
    const state = JSON.parse(fs.readFileSync(path.join(region.dataDir, 'dr', 'state.json'), 'utf8')) as { topics: Record<string, { phase: string }> };
    return state.topics[TOPIC]?.phase ?? 'none';
  } catch {
    return 'none';
  }
}

/**
 * Sends `body`, waits until the region has durably entered `phase` (the operation's first
 * step: the rest is under way), lets it run `delayMs` more, and kills it with SIGKILL.
 * Returns the phase the crash left.
 */
async function crashDuring(region: Region, p: string, body: unknown, phase: string, delayMs: number): Promise<string> {
  let answered = false;
  const sent = post(region, p, body).then(() => (answered = true)).catch(() => undefined);
  await waitFor(`${region.name} to enter ${phase}`, async () => (phaseOf(region) === phase || answered ? true : undefined), 30_000, 1);
  if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
  await region.kill9();
  await sent;
  return answered ? `${phaseOf(region)} (the command had already answered)` : phaseOf(region);
}

const valueOf = (m: { value: Buffer | null }) => m.value!.toString().split('|')[0];

test('kill -9 during promote and during failback, then the same command again: the same end state as without the crash', { timeout: 240_000 }, async (t) => {
  const random = rng(Number(process.env.DR_CRASH_SEED ?? Date.now() % 100_000));
  const { regions, clients } = await startDrRegions(
    t,
    { names: ['us-east', 'eu-west'], policies: [{ name: 'ledger-dr', topics: [TOPIC], topology: 'one-way', source: 'us-east', targets: ['eu-west'], rateLimit: '8KiB' }] },
    { name: TOPIC, partitions: 1 },
  );
  const us = regions.get('us-east');
  const eu = regions.get('eu-west');

  const producer = kafka(us.bootstrap, 'producer').producer();
  await producer.connect();
  await producer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: FIRST }, (_, i) => ({ value: `rec-${i}` })) });
  await waitFor('the first records in eu-west', async () => ((await readTopicToEnd(eu.bootstrap, TOPIC)).length === FIRST ? true : undefined), 60_000);
  // A group's commit in us-east (offset 30: it has read rec-0..rec-29) reaches eu-west.
  const usAdmin = kafka(us.bootstrap, 'us-admin').admin();
  await usAdmin.connect();
  await usAdmin.setOffsets({ groupId: 'auditors', topic: TOPIC, partitions: [{ partition: 0, offset: '30' }] });
  await usAdmin.disconnect();
  await waitFor('the commit in eu-west', async () => {
    const res = await fetch(`http://127.0.0.1:${eu.adminPort}/v1/dr/groups/auditors`);
    const g = (await res.json()) as { partitions?: Array<{ peerOffset: string | null }> };
    return g.partitions?.[0]?.peerOffset === '30' ? true : undefined;
  });
  // A 2 MB tail the 8 KiB/s link cannot carry: us-east's divergent tail once eu-west is promoted.
  const pad = 'y'.repeat(1000);
  for (let i = FIRST; i < FIRST + TAIL; i += 100) await producer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 100 }, (_, j) => ({ value: `rec-${i + j}|${pad}` })) });
  await producer.disconnect();
  const produced = FIRST + TAIL;
  await waitFor('eu-west to learn the primary end', async () => {
    const res = await fetch(`http://127.0.0.1:${eu.adminPort}/v1/dr`);
    const s = (await res.json()) as { topics: Array<{ topic: string; primaryEnds: Array<{ endOffset: string }> }> };
    return s.topics.find((x) => x.topic === TOPIC)?.primaryEnds[0]?.endOffset === String(produced) ? true : undefined;
  });
  await us.kill9();

  // Promote, killed part-way, then again.
  const promoteDelay = Math.floor(random() * 3);
  const promotePhase = await crashDuring(eu, '/v1/dr/promote', { topic: TOPIC }, 'promoting', promoteDelay);
  t.diagnostic(`promote: killed after ${promoteDelay} ms, phase left: ${promotePhase}`);
  await eu.start();
  const euRecords = await readTopicToEnd(eu.bootstrap, TOPIC);
  const held = euRecords.map(valueOf);
  // The replicated commit survived eu-west's kill -9: the group resumes at rec-30 there.
  const euAdmin = kafka(eu.bootstrap, 'eu-admin').admin();
  await euAdmin.connect();
  clients.push(() => euAdmin.disconnect());
  const resumeAt = (await euAdmin.fetchOffsets({ groupId: 'auditors', topics: [TOPIC] }))[0].partitions[0].offset;
  assert.equal(resumeAt, String(euRecords[30].offset), 'the translated offset is rec-30 in eu-west');
  assert.deepEqual(held, Array.from({ length: held.length }, (_, i) => `rec-${i}`));
  assert.ok(held.length < produced);
  const promoted = await post<{ reports: Array<{ id: string; epoch: number; partitions: Array<{ lastOriginOffsetHeld: string; missingRecords: string }> }> }>(eu, '/v1/dr/promote', { topic: TOPIC });
  assert.equal(promoted.status, 200, JSON.stringify(promoted.body));
  const [report] = promoted.body.reports;
  assert.deepEqual(
    { id: report.id, epoch: report.epoch, held: report.partitions[0].lastOriginOffsetHeld, missing: report.partitions[0].missingRecords },
    { id: `promote-${TOPIC}-e1`, epoch: 1, held: String(held.length - 1), missing: String(produced - held.length) },
    'one promotion, epoch 1, reporting what is missing',
  );
  const euProducer = kafka(eu.bootstrap, 'eu-producer').producer();
  await euProducer.connect();
  clients.push(() => euProducer.disconnect());
  await euProducer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 5 }, (_, i) => ({ value: `eu-${i}` })) });

  // Failback in us-east, killed part-way (the tail copy takes a moment), then again.
  await us.start();
  const failbackDelay = Math.floor(random() * 20);
  const failbackPhase = await crashDuring(us, '/v1/dr/failback', { topic: TOPIC, confirm: true }, 'failing-back', failbackDelay);
  t.diagnostic(`failback: killed after ${failbackDelay} ms, phase left: ${failbackPhase}`);
  await us.start();
  const done = await post<{ completed: boolean; sideTopic: string; totals: { records: string } }>(us, '/v1/dr/failback', { topic: TOPIC, confirm: true });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.equal(done.body.completed, true);
  assert.equal(done.body.totals.records, String(produced - held.length));
  // The tail is in the side topic exactly once, byte for byte.
  const side = (await readTopicToEnd(us.bootstrap, done.body.sideTopic)).map((m) => m.value!.toString());
  assert.deepEqual(side, Array.from({ length: produced - held.length }, (_, i) => `rec-${held.length + i}|${pad}`));
  // us-east holds eu-west's history, and what eu-west writes next arrives once.
  await euProducer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 5 }, (_, i) => ({ value: `eu-${5 + i}` })) });
  const expected = [...held, ...Array.from({ length: 10 }, (_, i) => `eu-${i}`)];
  const got = await waitFor('us-east to follow eu-west', async () => {
    const v = (await readTopicToEnd(us.bootstrap, TOPIC)).map(valueOf);
    return v.length >= expected.length ? v : undefined;
  }, 60_000);
  assert.deepEqual(got, expected);
});
