/**
 * Active-active DR across three regions, each a broker in its own process: producers write
 * to every region, so each region interleaves three origins in its own order. A KafkaJS
 * group consumes in us-east, commits five records short of each partition's end, and moves
 * to ap-south (same group id, a stock client). What it reads there is checked against a
 * brute-force computation from ap-south's log: it starts at the first record the us-east
 * commit does not cover, in every partition, and misses nothing. Then a late commit from
 * us-east cannot drag the group back in ap-south, and a commit from us-east while the group
 * has members in ap-south is reported as a conflict.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { collectMessages, readTopicToEnd, type ConsumedMessage } from '../helpers/kafkajs-collect.js';
import { adminCall, drKafka, startDrRegions } from '../helpers/dr.js';
import { waitCaughtUp, type Region } from '../helpers/regions.js';
import { waitFor } from '../helpers/wait.js';

const NAMES = ['us-east', 'eu-west', 'ap-south'];
const TOPIC = 'orders';
const GROUP = 'fulfilment';
const PARTITIONS = 3;
const PER_REGION_PARTITION = 40;
const UNCOMMITTED = 5;

const kafka = drKafka;
const getJson = async <T>(region: Region, path: string): Promise<T> => (await adminCall<T>(region, 'GET', path)).body;

const byPartition = (ms: readonly ConsumedMessage[]) => Array.from({ length: PARTITIONS }, (_, p) => ms.filter((m) => m.partition === p).sort((a, b) => a.offset - b.offset).map((m) => m.value!.toString()));

test('active-active, three regions: a group moving from us-east to ap-south resumes exactly where the us-east commit stands in every partition', { timeout: 240_000 }, async (t) => {
  const { regions, clients } = await startDrRegions(t, { names: NAMES, policies: [{ name: 'global', topics: [TOPIC], topology: 'mesh', regions: NAMES }] }, { name: TOPIC, partitions: PARTITIONS });
  const [us, , ap] = NAMES.map((n) => regions.get(n));
  await waitFor('the topic everywhere', async () => {
    for (const r of regions.list) if (!(await r.status()).topics.some((x) => x.name === TOPIC && x.partitions.length === PARTITIONS)) return undefined;
    return true;
  });

  // Producers in every region at once, in small sends, so the regions interleave differently.
  const producers = await Promise.all(
    regions.list.map(async (r) => {
      const p = kafka(r.bootstrap, `producer-${r.name}`).producer();
      await p.connect();
      return { region: r.name, p };
    }),
  );
  clients.push(async () => void (await Promise.all(producers.map(({ p }) => p.disconnect()))));
  await Promise.all(
    producers.map(async ({ region, p }) => {
      for (let i = 0; i < PER_REGION_PARTITION; i += 4) {
        for (let part = 0; part < PARTITIONS; part++) {
          await p.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 4 }, (_, j) => ({ partition: part, value: `${region}-${part}-${i + j}` })) });
        }
      }
    }),
  );
  await waitCaughtUp(regions.list);
  const total = NAMES.length * PER_REGION_PARTITION;

  // The group reads every partition to its end in us-east and commits five short of it.
  const usLog = byPartition(await readTopicToEnd(us.bootstrap, TOPIC));
  const apLog = byPartition(await readTopicToEnd(ap.bootstrap, TOPIC));
  for (let p = 0; p < PARTITIONS; p++) {
    assert.equal(usLog[p].length, total);
    assert.equal(apLog[p].length, total);
  }
  assert.ok(usLog.some((l, p) => l.join() !== apLog[p].join()), 'the regions interleave the origins in different orders');
  const consumedA = byPartition(await collectMessages(kafka(us.bootstrap, 'group-us'), { groupId: GROUP, topics: [TOPIC], count: total * PARTITIONS, fromBeginning: true }));
  // collectMessages commits what it read: commit the five-short offsets over it.
  const setter = kafka(us.bootstrap, 'setter').admin();
  await setter.connect();
  // The commit offset in us-east's log: its high watermark minus five records (us-east's log
  // holds markers too, so walk back over the last five records' offsets).
  const fullA = await readTopicToEnd(us.bootstrap, TOPIC);
  const commitAt = Array.from({ length: PARTITIONS }, (_, p) => {
    const recs = fullA.filter((m) => m.partition === p).sort((a, b) => a.offset - b.offset);
    return recs[recs.length - UNCOMMITTED].offset;
  });
  await setter.setOffsets({ groupId: GROUP, topic: TOPIC, partitions: commitAt.map((offset, partition) => ({ partition, offset: String(offset) })) });
  await setter.disconnect();
  await waitFor('the commits in ap-south', async () => {
    const g = await getJson<{ partitions?: Array<{ partition: number; peerOffset: string | null }> }>(ap, `/v1/dr/groups/${GROUP}`);
    return g.partitions?.length === PARTITIONS && g.partitions.every((x) => x.peerOffset === String(commitAt[x.partition])) ? true : undefined;
  });

  // Brute force, per partition: what the us-east commit covers is every record before it in
  // us-east's log; in ap-south's log the group must start at the first record not covered.
  const expected = apLog.map((list, p) => {
    const covered = new Set(usLog[p].slice(0, total - UNCOMMITTED));
    const start = list.findIndex((v) => !covered.has(v));
    return start < 0 ? [] : list.slice(start);
  });
  const consumedC = byPartition(await collectMessages(kafka(ap.bootstrap, 'group-ap'), { groupId: GROUP, topics: [TOPIC], count: expected.reduce((n, l) => n + l.length, 0) }));
  let redelivered = 0;
  for (let p = 0; p < PARTITIONS; p++) {
    assert.deepEqual(consumedC[p], expected[p], `partition ${p}: ap-south resumes at the first uncovered record`);
    // Nothing missed: every record is consumed in one region or the other.
    const union = new Set([...usLog[p].slice(0, total - UNCOMMITTED), ...consumedC[p]]);
    assert.equal(union.size, total, `partition ${p}: nothing missed`);
    redelivered += consumedC[p].filter((v) => consumedA[p].includes(v)).length;
  }
  assert.ok(redelivered >= UNCOMMITTED * PARTITIONS, `the uncommitted windows are read again (${redelivered})`);
  t.diagnostic(`redelivered ${redelivered} records: ${UNCOMMITTED * PARTITIONS} uncommitted, the rest interleaving order`);

  // The group committed in ap-south (collectMessages commits as it reads). A late commit
  // from us-east, older in the stream, must not drag it back.
  const apAdmin = kafka(ap.bootstrap, 'ap-admin').admin();
  await apAdmin.connect();
  clients.push(() => apAdmin.disconnect());
  const before = (await apAdmin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] }))[0].partitions.sort((a, b) => a.partition - b.partition).map((x) => x.offset);
  const late = kafka(us.bootstrap, 'late').admin();
  await late.connect();
  await late.setOffsets({ groupId: GROUP, topic: TOPIC, partitions: [{ partition: 0, offset: '0' }] });
  await late.disconnect();
  await waitFor('the late commit in ap-south', async () => {
    const g = await getJson<{ partitions: Array<{ partition: number; peerOffset: string | null }> }>(ap, `/v1/dr/groups/${GROUP}`);
    return g.partitions.find((x) => x.partition === 0)?.peerOffset === '0' ? true : undefined;
  });
  const after = (await apAdmin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] }))[0].partitions.sort((a, b) => a.partition - b.partition).map((x) => x.offset);
  assert.deepEqual(after, before, 'a late commit from us-east does not move the group back in ap-south');

  // Members in ap-south and a commit in us-east at the same time: a conflict, reported.
  const live = kafka(ap.bootstrap, 'live').consumer({ groupId: GROUP });
  await live.connect();
  clients.push(() => live.disconnect());
  await live.subscribe({ topics: [TOPIC] });
  await live.run({ eachMessage: async () => {} });
  await waitFor('the live member in ap-south', async () => ((await apAdmin.describeGroups([GROUP])).groups[0].members.length > 0 ? true : undefined));
  // us-east keeps committing while the member lives in ap-south (commits within the clock
  // skew allowance of the join could be from before it, so it commits until one is not).
  const twin = kafka(us.bootstrap, 'twin').admin();
  await twin.connect();
  clients.push(() => twin.disconnect());
  await waitFor('the conflict reported in ap-south', async () => {
    await twin.setOffsets({ groupId: GROUP, topic: TOPIC, partitions: [{ partition: 1, offset: '1' }] });
    const s = await getJson<{ conflicts: Array<{ group: string; region: string; partition: number }> }>(ap, '/v1/dr');
    return s.conflicts.some((c) => c.group === GROUP && c.region === 'us-east' && c.partition === 1) ? true : undefined;
  });
  // Not applied: the group's offset in ap-south is still its own.
  const during = (await apAdmin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] }))[0].partitions.find((x) => x.partition === 1)!.offset;
  assert.notEqual(during, '1');
});
