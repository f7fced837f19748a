/**
 * Fan-out DR with a copy that is ahead of the promoted one: a -> b, c. b dies first, so c
 * holds records of a that b never got; then a dies and b is promoted. c learns of the new
 * primary and stops taking anything else; its failback cuts at the first record b does not
 * hold (a's records b never got: preserved in c's side topic), and from then on c follows b,
 * which relays to it, exactly once, what it holds and c lacks. A copy that is behind (here,
 * a itself after it returns) catches up from b by the same relay.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { adminCall, drKafka, startDrRegions } from '../helpers/dr.js';
import type { Region } from '../helpers/regions.js';
import { waitFor } from '../helpers/wait.js';

const TOPIC = 'catalog';

const kafka = drKafka;
const post = <T>(region: Region, p: string, body: unknown) => adminCall<T>(region, 'POST', p, body);

const valuesOf = async (r: Region, topic = TOPIC) => (await readTopicToEnd(r.bootstrap, topic)).map((m) => m.value!.toString());
const range = (prefix: string, from: number, to: number) => Array.from({ length: to - from }, (_, i) => `${prefix}-${from + i}`);

async function produce(r: Region, values: string[]): Promise<void> {
  const p = kafka(r.bootstrap, `producer-${r.name}`).producer();
  await p.connect();
  try {
    await p.send({ topic: TOPIC, acks: -1, messages: values.map((value) => ({ value })) });
  } finally {
    await p.disconnect();
  }
}

test('fan-out: a copy ahead of the promoted one preserves what the new primary lacks and then follows it exactly once', { timeout: 240_000 }, async (t) => {
  const { regions } = await startDrRegions(t, { names: ['a', 'b', 'c'], policies: [{ name: 'catalog-fan', topics: [TOPIC], topology: 'fan-out', source: 'a', targets: ['b', 'c'] }] }, { name: TOPIC, partitions: 1 });
  const [a, b, c] = ['a', 'b', 'c'].map((n) => regions.get(n));

  await produce(a, range('a', 0, 50));
  await waitFor('b and c to hold the first 50', async () => ((await valuesOf(b)).length === 50 && (await valuesOf(c)).length === 50 ? true : undefined), 60_000);
  await b.kill9();
  await produce(a, range('a', 50, 80));
  await waitFor('c to hold 80', async () => ((await valuesOf(c)).length === 80 ? true : undefined), 60_000);
  await a.kill9();

  await b.start();
  const promoted = await post<{ reports: Array<{ epoch: number }> }>(b, '/v1/dr/promote', { topic: TOPIC });
  assert.equal(promoted.status, 200, JSON.stringify(promoted.body));
  assert.equal(promoted.body.reports[0].epoch, 1);
  await produce(b, range('b', 0, 10));

  // c hears of epoch 1 from b's handshake; its failback preserves a-50..a-79, which b lacks.
  const dry = await post<{ newPrimary: string; partitions: Array<{ truncateAt: string; records: string }> }>(c, '/v1/dr/failback', { topic: TOPIC });
  assert.equal(dry.status, 200, JSON.stringify(dry.body));
  assert.equal(dry.body.newPrimary, 'b');
  assert.equal(dry.body.partitions[0].records, '30');
  const done = await post<{ completed: boolean; sideTopic: string }>(c, '/v1/dr/failback', { topic: TOPIC, confirm: true });
  assert.equal(done.status, 200, JSON.stringify(done.body));
  assert.deepEqual(await valuesOf(c, done.body.sideTopic), range('a', 50, 80));
  const expectedC = [...range('a', 0, 50), ...range('b', 0, 10)];
  assert.deepEqual(await waitFor('c to follow b', async () => {
    const v = await valuesOf(c);
    return v.length >= expectedC.length ? v : undefined;
  }, 60_000), expectedC);

  // a returns: its tail (a-50..a-79) is divergent too; after its failback it holds b's history.
  await a.start();
  const aDone = await post<{ completed: boolean; totals: { records: string } }>(a, '/v1/dr/failback', { topic: TOPIC, confirm: true });
  assert.equal(aDone.status, 200, JSON.stringify(aDone.body));
  assert.equal(aDone.body.totals.records, '30');
  await produce(b, range('b', 10, 15));
  const expected = [...range('a', 0, 50), ...range('b', 0, 15)];
  for (const r of [a, c]) {
    assert.deepEqual(await waitFor(`${r.name} to hold b's history`, async () => {
      const v = await valuesOf(r);
      return v.length >= expected.length ? v : undefined;
    }, 60_000), expected, r.name);
  }
});
