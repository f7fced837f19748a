/**
 * etcd down for the whole region (issue 16: "etcd unavailable: produce and fetch on current
 * leaders keep working; metadata changes wait and say why"), end to end: three brokers on a
 * real etcd (test/helpers/cluster.ts, 2 s leases), a topic of three partitions led one per
 * broker, replication factor 3, min.insync.replicas 2. A bare producer per partition sends
 * one record at a time (acks=all) to its leader the whole time, recording every answer.
 *
 * 1. etcd is SIGKILLed and stays down for several lease TTLs. Every leader goes on
 *    acknowledging (riding through the outage: src/cluster/etcd-contact.ts) past three
 *    TTLs, with no refusal; /v1/cluster and the metrics say so; kcat reads the partitions;
 *    a CreateTopics waits its timeout and answers why (etcd). etcd comes back: the brokers
 *    are leased again, nobody was elected (same leaders and epochs), produce goes on, and
 *    every acknowledged record is read once at its offset, the replicas byte-identical.
 * 2. etcd down again, then a broker SIGKILLed: riding needs every in-sync peer's word, so
 *    the other leaders stop (NOT_LEADER_OR_FOLLOWER) within a ride; with etcd and the broker
 *    back, produce goes on and nothing acknowledged is lost.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { performance } from 'node:perf_hooks';
import { Kafka, logLevel } from 'kafkajs';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { kafkaErrorByCode } from '../../src/protocol/kafka/error-codes.js';
import { recordProduces, TestCluster, waitFor, type ProduceAnswer } from '../helpers/cluster.js';
import { kcat } from '../helpers/kcat.js';
import { parseKcatJson } from '../helpers/kcat-json.js';
import { RawClient } from '../helpers/raw-kafka.js';

const TOPIC = 'outage';
/** The second test's topic: its producers' values start over, so they need their own. */
const TOPIC_2 = 'outage-kill';
const PARTITIONS = 3;
const LEASE_MS = 2000;
const NOT_LEADER_OR_FOLLOWER = 6;

let cluster: TestCluster;

before(async () => {
  cluster = await TestCluster.start({ brokers: 3, leaseTtlMs: LEASE_MS });
  await createTopic(TOPIC, PARTITIONS);
});

/** Creates a topic of replication factor 3 (min.insync.replicas 2) with KafkaJS and waits for its leaders. */
async function createTopic(topic: string, partitions: number): Promise<void> {
  const admin = new Kafka({ clientId: 'outage-admin', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 3, configEntries: [{ name: 'min.insync.replicas', value: '2' }] }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

after(async () => {
  await cluster?.close();
});

interface RegionClusterView {
  ridingThroughEtcdOutage: boolean;
  leaseValidForMs: number;
  etcd: { reachable: boolean; lastError: string | null };
}

async function regionCluster(adminPort: number): Promise<RegionClusterView> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/v1/cluster`);
  return ((await res.json()) as { regionCluster: RegionClusterView }).regionCluster;
}

async function metric(adminPort: number, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  // `name value` or `name{labels} value`
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** The leader and epoch of every partition, once every running broker agrees and the ISR is whole. */
async function leaders(topic: string): Promise<Array<{ leader: number; leaderEpoch: number }>> {
  const out: Array<{ leader: number; leaderEpoch: number }> = [];
  for (let p = 0; p < PARTITIONS; p++) {
    const v = await cluster.partition(topic, p, (s) => s.isr.length === 3, { timeoutMs: 60_000 });
    out.push({ leader: v.leader, leaderEpoch: v.leaderEpoch });
  }
  return out;
}

/** Every acknowledged record is read by kcat at its offset, once; the replicas are byte-identical. */
async function checkAcknowledged(topic: string, answers: ProduceAnswer[], partition: number): Promise<number> {
  await cluster.partition(topic, partition, (s) => s.isr.length === 3, { timeoutMs: 60_000 });
  await cluster.waitLogsIdentical(topic, partition, [1, 2, 3], 30_000);
  const r = await kcat(['-b', cluster.bootstrap.join(','), '-C', '-J', '-t', topic, '-p', String(partition), '-o', 'beginning', '-e'], undefined, 30_000);
  assert.equal(r.code, 0, `kcat -C exited ${r.code}: ${r.stderr.slice(-2000)}`);
  const read = new Map(parseKcatJson(r.stdout).map((m) => [BigInt(m.offset), m.payload!.toString()]));
  const ok = answers.filter((a) => a.errorCode === 0);
  const wrong = ok.filter((a) => read.get(a.offset) !== a.value).map((a) => `${a.value} acknowledged at ${a.offset}, read ${read.get(a.offset) ?? 'nothing'}`);
  assert.deepEqual(wrong, [], `partition ${partition}: every acknowledged record is read at its offset (${ok.length} acknowledged)`);
  const values = [...read.values()];
  assert.equal(new Set(values).size, values.length, `partition ${partition}: no value is stored twice`);
  return ok.length;
}

test('etcd down for the whole region: every leader goes on acknowledging (acks=all) past three lease TTLs, kcat reads, CreateTopics says why; etcd back, nobody was elected and nothing is lost', { timeout: 180_000 }, async (t) => {
  const t0 = performance.now();
  const mark = (what: string) => t.diagnostic(`${((performance.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  const before = await leaders(TOPIC);
  assert.equal(new Set(before.map((l) => l.leader)).size, PARTITIONS, `the partitions are led by three brokers (${JSON.stringify(before)})`);
  const answers: ProduceAnswer[][] = before.map(() => []);
  const stops = before.map((l, p) => recordProduces(cluster, l.leader, TOPIC, -1, answers[p]!, p));
  const acked = (p: number, since: number) => answers[p]!.filter((a) => a.errorCode === 0 && a.sentAt >= since).length;
  let stoppedAt = 0;
  let restartedAt = 0;
  try {
    await waitFor('acknowledgements from every leader', () => before.every((_l, p) => acked(p, t0) >= 20), 20_000, 20);
    await cluster.etcd.stop();
    stoppedAt = performance.now();
    mark('etcd SIGKILLed');

    // Every broker leads one partition and rides through, saying so.
    for (const b of cluster.nodes) {
      await waitFor(`broker ${b.nodeId} to ride through the outage`, async () => (await regionCluster(b.adminPort)).ridingThroughEtcdOutage, 10_000, 50, () => `(its output: ${b.output.slice(-3000)})`);
      assert.equal(await metric(b.adminPort, 'meridian_cluster_riding_etcd_outage'), 1);
      assert.equal(await metric(b.adminPort, 'meridian_cluster_etcd_up'), 0);
      const view = await regionCluster(b.adminPort);
      assert.equal(view.etcd.reachable, false);
      assert.ok((view.etcd.lastError ?? '').length > 0, 'the status says why etcd is down');
    }
    mark('every broker rides through');

    // Metadata changes wait and say why: a CreateTopics with a 2 s timeout.
    const client = await RawClient.connect(cluster.node(1).port);
    try {
      const askedAt = performance.now();
      const r = await client.request(ApiKey.CreateTopics, 5, { topics: [{ name: 'during-outage', numPartitions: 1, replicationFactor: 3, assignments: [], configs: [] }], timeoutMs: 2000, validateOnly: false });
      const topic = r.body.topics[0];
      const name = kafkaErrorByCode(topic.errorCode)?.name;
      assert.equal(name, 'REQUEST_TIMED_OUT', `CreateTopics during the outage answered ${name}: ${topic.errorMessage}`);
      assert.match(topic.errorMessage ?? '', /etcd|unreachable|ECONNREFUSED/i, 'the answer says etcd is why');
      const waited = performance.now() - askedAt;
      // etcd retried meanwhile; answered once the next attempt could not fit the 2 s, not later.
      assert.ok(waited < 2000 + 3000, `answered within its 2 s timeout, not much later (${waited.toFixed(0)} ms)`);
      t.diagnostic(`CreateTopics answered after ${waited.toFixed(0)} ms: ${name} ${topic.errorMessage}`);
    } finally {
      client.close();
    }
    mark('CreateTopics answered why');

    // Produce goes on past three lease TTLs on every leader.
    await waitFor('acknowledgements on every partition three lease TTLs into the outage', () => before.every((_l, p) => acked(p, stoppedAt + 3 * LEASE_MS) >= 10), 30_000, 50);
    const refused = answers.flatMap((list) => list.filter((a) => a.errorCode !== 0 && a.sentAt >= stoppedAt));
    assert.deepEqual(refused.map((a) => `${a.value}: ${kafkaErrorByCode(a.errorCode)?.name}`), [], 'no leader refused a write during the outage');
    mark(`produce goes on: ${before.map((_l, p) => acked(p, stoppedAt)).join(' / ')} acknowledged per partition since etcd stopped`);

    // Consumers read what was acknowledged, etcd still down: each partition up to the last
    // offset acknowledged so far (the producers go on meanwhile).
    for (let p = 0; p < PARTITIONS; p++) {
      const ok = answers[p]!.filter((a) => a.errorCode === 0);
      const upTo = ok.reduce((m, a) => (a.offset > m ? a.offset : m), -1n);
      const r = await kcat(['-b', cluster.bootstrap.join(','), '-C', '-J', '-t', TOPIC, '-p', String(p), '-o', 'beginning', '-c', String(upTo + 1n)], undefined, 30_000);
      assert.equal(r.code, 0, `kcat -C exited ${r.code}: ${r.stderr.slice(-2000)}`);
      const read = new Map(parseKcatJson(r.stdout).map((m) => [BigInt(m.offset), m.payload!.toString()]));
      const wrong = ok.filter((a) => a.offset <= upTo && read.get(a.offset) !== a.value).map((a) => a.value);
      assert.deepEqual(wrong, [], `partition ${p}: kcat reads every record acknowledged before it ran, at its offset`);
    }
    mark('kcat read during the outage');

    await cluster.etcd.start();
    restartedAt = performance.now();
    for (const b of cluster.nodes) {
      await waitFor(`broker ${b.nodeId} leased again`, async () => {
        const v = await regionCluster(b.adminPort);
        return !v.ridingThroughEtcdOutage && v.leaseValidForMs > 0 && v.etcd.reachable;
      }, 20_000, 50);
    }
    await waitFor('acknowledgements on every partition after etcd returned', () => before.every((_l, p) => acked(p, performance.now() - 10_000) > 0 && acked(p, restartedAt) >= 10), 30_000, 50);
    mark('etcd back, every broker leased, produce goes on');
  } finally {
    await Promise.all(stops.map((s) => s()));
  }
  assert.deepEqual(await leaders(TOPIC), before, 'nobody was elected: the same leaders at the same epochs');
  let total = 0;
  for (let p = 0; p < PARTITIONS; p++) total += await checkAcknowledged(TOPIC, answers[p]!, p);
  mark(`${total} acknowledged records read once at their offsets; replicas identical`);
  // Topics can be created again.
  await createTopic('after-outage', 1);
});

test('etcd down and a broker killed: riding needs every in-sync peer\'s word, so the other leaders stop within a ride; everything back, nothing acknowledged is lost', { timeout: 180_000 }, async (t) => {
  const t0 = performance.now();
  const mark = (what: string) => t.diagnostic(`${((performance.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  await createTopic(TOPIC_2, PARTITIONS);
  const before = await leaders(TOPIC_2);
  assert.equal(new Set(before.map((l) => l.leader)).size, PARTITIONS, `the partitions are led by three brokers (${JSON.stringify(before)})`);
  const answers: ProduceAnswer[][] = before.map(() => []);
  const stops = before.map((l, p) => recordProduces(cluster, l.leader, TOPIC_2, -1, answers[p]!, p));
  const victim = cluster.node(before[2]!.leader);
  const survivors = [0, 1].map((p) => ({ p, leader: before[p]!.leader }));
  try {
    await waitFor('acknowledgements from every leader', () => before.every((_l, p) => answers[p]!.filter((a) => a.errorCode === 0).length >= 20), 20_000, 20);
    await cluster.etcd.stop();
    for (const b of cluster.nodes) await waitFor(`broker ${b.nodeId} to ride through the outage`, async () => (await regionCluster(b.adminPort)).ridingThroughEtcdOutage, 10_000, 50);
    await victim.kill9();
    const killedAt = performance.now();
    mark(`etcd down, every broker riding; broker ${victim.nodeId} SIGKILLed`);
    for (const { p, leader } of survivors) {
      await waitFor(`leader ${leader} of partition ${p} to refuse writes`, () => answers[p]!.some((a) => a.sentAt >= killedAt && a.errorCode === NOT_LEADER_OR_FOLLOWER), 10_000, 20);
      const stoppedWithin = answers[p]!.find((a) => a.sentAt >= killedAt && a.errorCode === NOT_LEADER_OR_FOLLOWER)!.answeredAt - killedAt;
      assert.ok(stoppedWithin < LEASE_MS + 1000, `leader ${leader} stopped ${stoppedWithin.toFixed(0)} ms after the kill: within a ride`);
      const late = answers[p]!.filter((a) => a.errorCode === 0 && a.sentAt >= killedAt + LEASE_MS + 1000);
      assert.deepEqual(late.map((a) => a.value), [], `leader ${leader} acknowledges nothing once it stopped, etcd still down`);
    }
    mark('the other leaders stopped');
    await cluster.etcd.start();
    await victim.start();
    await cluster.waitMembers([1, 2, 3]);
    const resumedAt = performance.now();
    await waitFor('acknowledgements on every partition with everything back', () => before.every((_l, p) => answers[p]!.some((a) => a.errorCode === 0 && a.sentAt >= resumedAt)), 60_000, 50);
    mark('etcd and the broker back; produce goes on');
  } finally {
    await Promise.all(stops.map((s) => s()));
  }
  for (let p = 0; p < PARTITIONS; p++) await checkAcknowledged(TOPIC_2, answers[p]!, p);
});
