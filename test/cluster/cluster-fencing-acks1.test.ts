/**
 * Split brain after a lost lease, acks=1 (issue 16, src/cluster/README.md "Leader
 * self-fencing"): three brokers on a real etcd, each reaching etcd through its own TCP proxy
 * (test/helpers/cluster.ts). The leader of a partition is cut off from etcd for longer than
 * its lease, so the controller elects another leader, and is then reconnected: it registers
 * again with a new lease within a few round trips, well before its partition watch has
 * caught up. Producers send acks=1 (one record per bare Kafka Produce v7) to every broker the
 * whole time, recording every answer, until the old leader's own Metadata names the new
 * leader (it has taken the new state in; from then on it can only lead again after rejoining
 * the ISR, which this test does not wait for).
 *
 * What must hold, as a user would check it:
 * - no offset was acknowledged by two brokers (or twice by one);
 * - the old leader acknowledged nothing after the new leader's first acknowledgement (a
 *   broker registered again leads nothing until it has read the partition states afresh);
 * - every acknowledged record is read at the offset it was acknowledged at.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { performance } from 'node:perf_hooks';
import { Kafka, logLevel } from 'kafkajs';
import { recordProduces, TestCluster, waitFor, type ProduceAnswer } from '../helpers/cluster.js';
import { kcat } from '../helpers/kcat.js';
import { parseKcatJson } from '../helpers/kcat-json.js';

const TOPIC = 'fencing-acks1';

let cluster: TestCluster;

before(async () => {
  cluster = await TestCluster.start({ brokers: 3, etcdProxies: true });
});

after(async () => {
  await cluster?.close();
});

test('a leader cut off past its lease and reconnected acknowledges no acks=1 write the new leader also acknowledges', async (t) => {
  const admin = new Kafka({ clientId: 'fencing-acks1-admin', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 1, replicationFactor: 3 }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  const start = await cluster.partition(TOPIC, 0, (v) => v.isr.length === 3);
  const old = cluster.node(start.leader);
  const others = cluster.nodes.map((b) => b.nodeId).filter((id) => id !== old.nodeId);

  const answers: ProduceAnswer[] = [];
  const stops = cluster.nodes.map((b) => recordProduces(cluster, b.nodeId, TOPIC, 1, answers));
  const acks = (id: number, since = 0) => answers.filter((a) => a.broker === id && a.errorCode === 0 && a.sentAt >= since);
  let cutAt = 0;
  let next = -1;
  let elected = start;
  try {
    await waitFor(`acknowledgements from the leader ${old.nodeId}`, () => acks(old.nodeId).length >= 20, 20_000, 20);
    cutAt = performance.now();
    old.etcdProxy!.setRefusing(true);
    elected = await cluster.partition(TOPIC, 0, (v) => v.leader !== old.nodeId && v.leaderEpoch > start.leaderEpoch, { among: others });
    next = elected.leader;
    await waitFor(`acknowledgements from the new leader ${next}`, () => acks(next, cutAt).length >= 20, 20_000, 20);

    // Reconnected: the old leader's keepalive finds its lease gone and it registers again.
    old.etcdProxy!.setRefusing(false);
    // Until its own Metadata names the new leader it may still believe it leads.
    await waitFor(
      `broker ${old.nodeId} takes in leader ${next}'s state`,
      async () => {
        const p = (await old.metadata([TOPIC]).catch(() => undefined))?.topics.get(TOPIC)?.partitions.get(0);
        return p !== undefined && p.leader !== old.nodeId && p.leaderEpoch >= elected.leaderEpoch;
      },
      20_000,
      10,
    );
  } finally {
    await Promise.all(stops.map((s) => s()));
  }

  const ok = answers.filter((a) => a.errorCode === 0);
  const describe = (a: ProduceAnswer) => `${a.value} offset ${a.offset} by broker ${a.broker}, sent ${(a.sentAt - cutAt).toFixed(0)} ms after the cut, answered ${(a.answeredAt - cutAt).toFixed(0)} ms after`;
  const firstNew = ok.filter((a) => a.broker === next && a.sentAt >= cutAt).reduce<ProduceAnswer | undefined>((m, a) => (m === undefined || a.answeredAt < m.answeredAt ? a : m), undefined);
  assert.ok(firstNew !== undefined);
  t.diagnostic(`${ok.length} acknowledged; new leader ${next}'s first acknowledgement answered ${(firstNew.answeredAt - cutAt).toFixed(0)} ms after the cut; old leader ${old.nodeId} answered ${answers.filter((a) => a.broker === old.nodeId && a.answeredAt > firstNew.answeredAt).length} requests after it`);

  // 1. No offset acknowledged twice, whoever acknowledged it.
  const byOffset = new Map<bigint, ProduceAnswer>();
  const twice: string[] = [];
  for (const a of ok) {
    const prior = byOffset.get(a.offset);
    if (prior !== undefined) twice.push(`offset ${a.offset}: ${describe(prior)} / ${describe(a)}`);
    else byOffset.set(a.offset, a);
  }
  assert.deepEqual(twice, [], 'every offset is acknowledged once');

  // 2. Once the new leader acknowledged, the old one acknowledged nothing (before or after its reconnection).
  const late = ok.filter((a) => a.broker === old.nodeId && a.answeredAt >= firstNew.answeredAt);
  assert.deepEqual(late.map(describe), [], `the old leader ${old.nodeId} acknowledged nothing after the new leader's first acknowledgement (${describe(firstNew)})`);

  // 3. What was acknowledged is what a consumer reads there.
  const final = await cluster.partition(TOPIC, 0, (v) => v.isr.length === 3, { timeoutMs: 30_000 });
  await cluster.waitLogsIdentical(TOPIC, 0, final.isr);
  t.diagnostic(`elected ${next} at leader epoch ${elected.leaderEpoch}; at the end leader ${final.leader} at epoch ${final.leaderEpoch}`);
  // Identical files are not yet a high watermark past the last record: the leader learns
  // that its followers hold it from their next fetch, and consumers read to the high
  // watermark (acks=1 answers before that). So read until the last acknowledged offset is
  // readable (a high watermark stuck below it still fails, after 20 s).
  const last = ok.reduce((m, a) => (a.offset > m ? a.offset : m), -1n);
  let read = new Map<bigint, string>();
  await waitFor(
    `offset ${last}, the last acknowledged, readable`,
    async () => {
      const r = await kcat(['-b', cluster.bootstrap.join(','), '-C', '-J', '-t', TOPIC, '-p', '0', '-o', 'beginning', '-e'], undefined, 30_000);
      assert.equal(r.code, 0, `kcat -C exited ${r.code}: ${r.stderr.slice(-2000)}`);
      read = new Map(parseKcatJson(r.stdout).map((m) => [BigInt(m.offset), m.payload!.toString()]));
      return read.has(last);
    },
    20_000,
    200,
  ).catch(() => undefined);
  const wrong = ok.filter((a) => read.get(a.offset) !== a.value);
  const moved = final.leader !== next || final.leaderEpoch !== elected.leaderEpoch;
  if (!moved) {
    assert.deepEqual(wrong.map((a) => `${describe(a)}: read ${read.get(a.offset) ?? 'nothing'}`), [], `every acknowledged record is read at its offset (${ok.length} acknowledged; leader ${next} at epoch ${elected.leaderEpoch} to the end)`);
    return;
  }
  // Leadership moved again after this test's election: the preferred replica (the old leader,
  // back in the ISR) leads once more, as Kafka's preferred leader election does. An acks=1
  // record the interim leader acknowledged but had not yet replicated to it is then cut, in
  // Kafka as here (acks=1 promises nothing past a leader change). So: every acknowledged record
  // below the end of the log is there, at its offset, and the only ones missing are the
  // interim leader's last acks=1 records, at or past that end.
  const end = [...read.keys()].reduce((m, o) => (o + 1n > m ? o + 1n : m), 0n);
  const inside = wrong.filter((a) => a.offset < end || a.broker !== next);
  assert.deepEqual(
    inside.map((a) => `${describe(a)}: read ${read.get(a.offset) ?? 'nothing'}`),
    [],
    `every acknowledged record below the log end ${end} is read at its offset, and none but leader ${next}'s last ones is missing (${ok.length} acknowledged; elected ${next} at epoch ${elected.leaderEpoch}, at the end leader ${final.leader} at epoch ${final.leaderEpoch})`,
  );
  t.diagnostic(`leadership moved again (leader ${final.leader} at epoch ${final.leaderEpoch}); ${wrong.length} acks=1 records of leader ${next} past the log end ${end} were cut with it`);
});
