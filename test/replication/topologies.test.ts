/**
 * Every topology delivers what it promises and nothing loops, with four regions (a, b, c
 * and a hub h), each a broker in its own process, one topic per topology:
 *
 *   dr      one-way a -> b             b holds a's records; b's producers are refused
 *   fan     fan-out a -> b, c          b and c hold a's and refuse producers; a holds only its own
 *   agg     aggregation a, b -> c      c holds a's and b's; a and b only their own
 *   chain   relay path a -> b -> c     b holds a's; c holds a's (through b) and b's
 *   star    relay hub h, spokes a b c  every region holds everyone's records, each once
 *
 * Every region produces into every topic it has (kcat in the first round, KafkaJS in the
 * second), so each check also covers the directions that must stay silent; the read-only
 * copies of one-way and fan-out topics (src/dr/) refuse both clients with a policy error. Each region's
 * copy is read back with KafkaJS and with kcat.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { KcatClient } from '../helpers/kcat-client.js';
import { Regions, waitCaughtUp, type Region } from '../helpers/regions.js';
import { assertRegionHolds, emptyProduced, kcatLines, type Produced } from '../helpers/replication-check.js';
import { waitFor } from '../helpers/wait.js';

const PARTITIONS = 2;
const N = 150;

const POLICIES = [
  { name: 'dr', topics: 'dr', topology: 'one-way', source: 'a', targets: ['b'] },
  { name: 'fan', topics: 'fan', topology: 'fan-out', source: 'a', targets: ['b', 'c'] },
  { name: 'agg', topics: 'agg', topology: 'aggregation', sources: ['a', 'b'], target: 'c' },
  { name: 'chain', topics: 'chain', topology: 'relay', path: ['a', 'b', 'c'] },
  { name: 'star', topics: 'star', topology: 'relay', hub: 'h', regions: ['a', 'b', 'c'] },
];

/** Which regions create each topic themselves (the replicators create it downstream). */
const CREATED_IN: Record<string, string[]> = { dr: ['a'], fan: ['a'], agg: ['a', 'b'], chain: ['a'], star: ['a'] };

/** topic -> region -> the origins whose records it must hold (exactly). */
const EXPECTED: Record<string, Record<string, string[]>> = {
  dr: { a: ['a'], b: ['a'] },
  fan: { a: ['a'], b: ['a'], c: ['a'] },
  agg: { a: ['a'], b: ['b'], c: ['a', 'b', 'c'] },
  chain: { a: ['a'], b: ['a', 'b'], c: ['a', 'b', 'c'] },
  star: { a: ['a', 'b', 'c', 'h'], b: ['a', 'b', 'c', 'h'], c: ['a', 'b', 'c', 'h'], h: ['a', 'b', 'c', 'h'] },
};

/** The read-only DR copies: topic -> regions whose producers are refused. */
const READ_ONLY: Record<string, string[]> = { dr: ['b'], fan: ['b', 'c'] };

/** A produce into a read-only copy fails with the policy error, for kcat and for KafkaJS. */
async function expectRefused(r: Region, topic: string, round: number): Promise<void> {
  if (round === 0) {
    await assert.rejects(new KcatClient(r.bootstrap).produce(topic, `${r.name}-refused\n`, ['-p', '0']), /Policy violation/, `${topic} in ${r.name} (kcat)`);
    return;
  }
  const producer = new Kafka({ clientId: `${r.name}-refused`, brokers: [r.bootstrap], logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  try {
    await assert.rejects(producer.send({ topic, acks: -1, messages: [{ value: 'refused', partition: 0 }] }), (err: Error & { type?: string }) => /POLICY_VIOLATION/.test(`${err.type ?? ''} ${err.message}`) || /policy/i.test(err.message), `${topic} in ${r.name} (KafkaJS)`);
  } finally {
    await producer.disconnect();
  }
}

/** Round 0 produces with kcat, round 1 with an idempotent KafkaJS producer; acks=all either way. */
async function produceInto(r: Region, topic: string, produced: Produced, round: number): Promise<void> {
  const producer = round === 0 ? undefined : new Kafka({ clientId: `${r.name}-producer`, brokers: [r.bootstrap], logLevel: logLevel.NOTHING }).producer({ idempotent: true });
  await producer?.connect();
  try {
    for (let p = 0; p < PARTITIONS; p++) {
      const msgs = Array.from({ length: N }, (_, i) => ({ key: null, value: Buffer.from(`${r.name}/${topic}/p${p}/r${round}/${i}`) }));
      if (producer) await producer.send({ topic, acks: -1, messages: msgs.map((m) => ({ value: m.value, partition: p })) });
      else await new KcatClient(r.bootstrap).produce(topic, kcatLines(msgs), ['-p', String(p)]);
      produced.get(p)!.push(...msgs);
    }
  } finally {
    await producer?.disconnect();
  }
}

test('one-way DR, fan-out, aggregation, relay chain and relay hub each deliver exactly their promise, with no loop', { timeout: 240_000 }, async (t) => {
  const regions = await Regions.create({ names: ['a', 'b', 'c', 'h'], policies: POLICIES, overrides: { topics: { autoCreate: false } } });
  t.after(() => regions.close());
  await regions.start();

  for (const [topic, where] of Object.entries(CREATED_IN)) {
    for (const name of where) {
      const admin = new Kafka({ clientId: 'admin', brokers: [regions.get(name).bootstrap], logLevel: logLevel.NOTHING }).admin();
      await admin.connect();
      await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
      await admin.disconnect();
    }
  }
  // Wait until each topic exists wherever it is expected (created by replication).
  await waitFor('topics created downstream', async () => {
    for (const [topic, holders] of Object.entries(EXPECTED)) {
      for (const name of Object.keys(holders)) if (!(await regions.get(name).status()).topics.some((x) => x.name === topic)) return undefined;
    }
    return true;
  });

  // Every region that has a topic produces into it, twice, the second time after the first
  // round has spread (so relays forward data that arrived while they were forwarding).
  const produced = new Map<string, Map<string, Produced>>();
  for (const [topic, holders] of Object.entries(EXPECTED)) {
    produced.set(topic, new Map(Object.keys(holders).map((n) => [n, emptyProduced(PARTITIONS)])));
  }
  for (let round = 0; round < 2; round++) {
    await Promise.all(
      Object.entries(EXPECTED).flatMap(([topic, holders]) =>
        Object.keys(holders).map((name) => (READ_ONLY[topic]?.includes(name) ? expectRefused(regions.get(name), topic, round) : produceInto(regions.get(name), topic, produced.get(topic)!.get(name)!, round))),
      ),
    );
    await waitCaughtUp(regions.list);
  }

  for (const [topic, holders] of Object.entries(EXPECTED)) {
    for (const [name, origins] of Object.entries(holders)) {
      await assertRegionHolds(`${topic} in ${name}`, regions.get(name).bootstrap, topic, new Map(origins.map((o) => [o, produced.get(topic)!.get(o)!])));
    }
    // Regions outside the topology never got the topic.
    for (const r of regions.list) {
      if (holders[r.name] !== undefined) continue;
      assert.ok(!(await r.status()).topics.some((x) => x.name === topic), `${topic} must not exist in ${r.name}`);
    }
  }

  // Loop prevention is structural: the hub never sends a spoke's records back to it.
  const hub = await regions.get('h').status();
  const toA = hub.workers.filter((w) => w.topic === 'star' && w.remote === 'a');
  assert.equal(toA.length, PARTITIONS);
  // h forwards to a: h's own plus b's and c's records, never a's.
  assert.equal(toA.reduce((n, w) => n + w.sentRecords, 0), 3 * 2 * PARTITIONS * N);
});
