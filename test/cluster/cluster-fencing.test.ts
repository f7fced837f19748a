/**
 * Leader self-fencing end to end (issue 16, src/cluster/README.md "Leader self-fencing"):
 * three brokers on a real etcd, each reaching etcd through its own TCP proxy
 * (test/helpers/cluster.ts). The leader of a partition is cut off from etcd (its proxy
 * refuses) while it still talks to the other brokers and to clients. Producers send to every
 * broker directly (a bare Kafka Produce v7, acks=all, one record per request) the whole time,
 * and every answer is recorded with the broker, when it was sent and received, and the
 * offset. Then the old leader is reconnected, rejoins and (preferred replica) leads again.
 *
 * What must hold, as a user would check it:
 * - the cut-off leader's last acknowledgement arrived before the first request the new
 *   leader acknowledged was even sent, and in between the old leader refused writes
 *   (NOT_LEADER_OR_FOLLOWER): it stopped before another leader was elected;
 * - no offset was acknowledged twice (by two brokers, or twice by one);
 * - every acknowledged record is read at the offset it was acknowledged at, and the three
 *   logs end byte-identical.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { performance } from 'node:perf_hooks';
import { Kafka, logLevel } from 'kafkajs';
import { recordProduces, TestCluster, waitFor, type ProduceAnswer } from '../helpers/cluster.js';
import { kcat } from '../helpers/kcat.js';
import { parseKcatJson } from '../helpers/kcat-json.js';

const TOPIC = 'fencing';
const NOT_LEADER_OR_FOLLOWER = 6;

let cluster: TestCluster;

before(async () => {
  cluster = await TestCluster.start({ brokers: 3, etcdProxies: true });
});

after(async () => {
  await cluster?.close();
});

test('a leader cut off from etcd stops acknowledging writes before another leader is elected; no offset is acknowledged twice', async (t) => {
  const admin = new Kafka({ clientId: 'fencing-admin', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 1, replicationFactor: 3, configEntries: [{ name: 'min.insync.replicas', value: '2' }] }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  const start = await cluster.partition(TOPIC, 0, (v) => v.isr.length === 3);
  const old = cluster.node(start.leader);
  const others = cluster.nodes.map((b) => b.nodeId).filter((id) => id !== old.nodeId);

  const answers: ProduceAnswer[] = [];
  const stops = cluster.nodes.map((b) => recordProduces(cluster, b.nodeId, TOPIC, -1, answers));
  const acks = (id: number, since = 0) => answers.filter((a) => a.broker === id && a.errorCode === 0 && a.sentAt >= since);
  let cutAt = 0;
  let reconnectAt = 0;
  let next = -1;
  try {
    await waitFor(`acknowledgements from the leader ${old.nodeId}`, () => acks(old.nodeId).length >= 20, 20_000, 20);

    cutAt = performance.now();
    old.etcdProxy!.setRefusing(true);
    const elected = await cluster.partition(TOPIC, 0, (v) => v.leader !== old.nodeId && v.leaderEpoch > start.leaderEpoch, { among: others });
    next = elected.leader;
    await waitFor(`acknowledgements from the new leader ${next}`, () => acks(next, cutAt).length >= 20, 20_000, 20);

    // Reconnected, the old leader registers again, catches up, rejoins the ISR and, being
    // the preferred replica, may lead again: writes go on through that change too.
    reconnectAt = performance.now();
    old.etcdProxy!.setRefusing(false);
    await cluster.waitMembers([1, 2, 3]);
    const rejoined = await cluster.partition(TOPIC, 0, (v) => v.isr.length === 3);
    const t = performance.now();
    await waitFor(`acknowledgements after the old leader rejoined (leader ${rejoined.leader})`, () => answers.filter((a) => a.errorCode === 0 && a.sentAt >= t).length >= 10, 20_000, 20);
  } finally {
    await Promise.all(stops.map((s) => s()));
  }

  const ok = answers.filter((a) => a.errorCode === 0);
  const describe = (a: ProduceAnswer | undefined) => (a === undefined ? 'none' : `${a.value} offset ${a.offset} by broker ${a.broker}, sent ${(a.sentAt - cutAt).toFixed(0)} ms after the cut, answered ${(a.answeredAt - cutAt).toFixed(0)} ms after`);

  // 1. The hand-over away from the cut-off leader: its last acknowledgement (of requests sent
  // before it was reconnected) arrived before the new leader's first acknowledged request was sent.
  const oldAcks = ok.filter((a) => a.broker === old.nodeId && a.sentAt < reconnectAt);
  const lastOld = oldAcks.reduce<ProduceAnswer | undefined>((m, a) => (m === undefined || a.answeredAt > m.answeredAt ? a : m), undefined);
  const firstNew = ok.filter((a) => a.broker === next && a.sentAt >= cutAt).reduce<ProduceAnswer | undefined>((m, a) => (m === undefined || a.sentAt < m.sentAt ? a : m), undefined);
  assert.ok(lastOld !== undefined && firstNew !== undefined);
  assert.ok(lastOld.answeredAt < firstNew.sentAt, `the old leader's last acknowledgement (${describe(lastOld)}) must precede the new leader's first (${describe(firstNew)})`);
  t.diagnostic(`cut at 0 ms; old leader ${old.nodeId}'s last acknowledgement answered at ${(lastOld.answeredAt - cutAt).toFixed(0)} ms; new leader ${next}'s first acknowledged request sent at ${(firstNew.sentAt - cutAt).toFixed(0)} ms; ${ok.length} acknowledged in all`);
  const refusals = answers.filter((a) => a.broker === old.nodeId && a.errorCode === NOT_LEADER_OR_FOLLOWER && a.sentAt > lastOld.answeredAt && a.answeredAt < firstNew.sentAt);
  assert.ok(refusals.length > 0, `the cut-off leader refused writes with NOT_LEADER_OR_FOLLOWER before the new leader accepted any (its answers after the cut: ${[...new Set(answers.filter((a) => a.broker === old.nodeId && a.sentAt > cutAt).map((a) => a.errorCode))].join(', ')})`);
  // No broker other than the elected one acknowledged anything between the cut and the reconnection.
  const strays = ok.filter((a) => a.broker !== old.nodeId && a.broker !== next && a.sentAt >= cutAt && a.answeredAt < reconnectAt);
  assert.deepEqual(strays.map(describe), [], 'only the elected leader acknowledges writes after the cut');

  // 2. No offset acknowledged twice, whoever acknowledged it.
  const byOffset = new Map<bigint, ProduceAnswer>();
  const twice: string[] = [];
  for (const a of ok) {
    const prior = byOffset.get(a.offset);
    if (prior !== undefined) twice.push(`offset ${a.offset}: ${describe(prior)} / ${describe(a)}`);
    else byOffset.set(a.offset, a);
  }
  assert.deepEqual(twice, [], 'every offset is acknowledged once');

  // 3. What was acknowledged is what a consumer reads there; the logs converge.
  const final = await cluster.partition(TOPIC, 0, (v) => v.isr.length === 3);
  await cluster.waitLogsIdentical(TOPIC, 0, final.isr);
  const r = await kcat(['-b', cluster.bootstrap.join(','), '-C', '-J', '-t', TOPIC, '-p', '0', '-o', 'beginning', '-e'], undefined, 30_000);
  assert.equal(r.code, 0, `kcat -C exited ${r.code}: ${r.stderr.slice(-2000)}`);
  const read = new Map(parseKcatJson(r.stdout).map((m) => [BigInt(m.offset), m.payload!.toString()]));
  const wrong = ok.filter((a) => read.get(a.offset) !== a.value).map((a) => `${describe(a)}: read ${read.get(a.offset) ?? 'nothing'}`);
  assert.deepEqual(wrong, [], `every acknowledged record is read at its offset (${ok.length} acknowledged)`);
  const values = [...read.values()];
  assert.equal(new Set(values).size, values.length, 'no value is stored twice');
});
