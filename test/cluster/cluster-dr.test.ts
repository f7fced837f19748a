/**
 * Disaster-recovery roles are region-wide on a region cluster (issue 16, cluster/dr-sync.ts):
 * a one-way policy us-east → eu-west, us-east a single broker (a one-broker cluster on its
 * own etcd: the cheapest sender), eu-west three brokers on a real etcd
 * (test/helpers/cluster.ts), the topic's three partitions led by three different eu-west
 * brokers.
 *
 * What a user checks: the copy refuses producers at every partition leader; us-east dies
 * (SIGKILL); a promote through ONE eu-west broker's admin API makes eu-west the primary on
 * all of them: a KafkaJS producer then writes every partition (every leader accepts), every
 * broker's GET /v1/dr shows the same role and epoch, every broker serves the same recovery
 * report, and a broker restarted with its local copies removed has both again (from etcd).
 * A promote interrupted after its first write (phase `promoting` left in etcd, as a crash of
 * the asked broker leaves it) is completed by the same command through another broker. Then
 * us-east returns, is promoted again (epoch 2), and its handshakes make every eu-west broker
 * refuse producers (the replication target's marking, in the topic's key in etcd).
 *
 * The second test continues from there: eu-west, the old primary, fails back with
 * `failback --confirm` through a broker that does not lead every partition (dr/failback-
 * cluster.ts). As a crash of an earlier attempt right after its first partition's copy leaves
 * it (plan in etcd, side partition 0 holding that copy), so the copy must resume without
 * duplicating. Afterwards every replica of every partition holds the same bytes with the
 * divergent records gone, the side topic holds exactly them (once, in order, records
 * byte-identical), a group's commits past the cuts are clamped to them (one below them is
 * not), and the new primary's next records replicate in: both regions read the same records.
 * Then a second round, uninterrupted from the plan on (eu-west promoted again and writing,
 * us-east promoted past it): the failback creates its side topic itself.
 *
 * The third test crashes a failback for real: the asked broker is SIGKILLed the moment it asks
 * partition 0's cut in etcd. The cut completes without it; the same failback through another
 * broker then reports every partition's tail as the dry run found it, partition 0's from the
 * plan (saved there before the cut, since the topic no longer holds it), and the side topic
 * holds each tail once.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { Kafka, logLevel } from 'kafkajs';
import { TestCluster, waitFor, type StoredBatchBytes } from '../helpers/cluster.js';
import { kcat } from '../helpers/kcat.js';
import { anonymous } from '../../src/dr/failback-cluster.js';
import { LinkClient } from '../../src/replication/link-client.js';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { decodeProduceResponse, encodeProduceRequest } from '../../src/protocol/kafka/messages/produce.js';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { freePort } from '../helpers/regions.js';

const TOPIC = 'orders';
/** A second DR topic, for a promote that a crash interrupted. */
const TOPIC_B = 'orders-b';
const PARTITIONS = 3;
const EAST = 'us-east';
const WEST = 'eu-west';
const BEFORE = 10;

let east: TestCluster;
let west: TestCluster;

async function ports(n: number): Promise<number[]> {
  const out = new Set<number>();
  while (out.size < n) out.add(await freePort());
  return [...out];
}

before(async () => {
  const [e1, w1, w2, w3] = await ports(4);
  const replication = {
    regions: [
      { name: EAST, address: `127.0.0.1:${e1}` },
      { name: WEST, address: [`127.0.0.1:${w1}`, `127.0.0.1:${w2}`, `127.0.0.1:${w3}`] },
    ],
    policies: [{ name: 'orders-dr', topics: [TOPIC, TOPIC_B], topology: 'one-way', source: EAST, targets: [WEST] }],
    retry: { initialMs: 50, maxMs: 500 },
  };
  east = await TestCluster.start({ region: EAST, brokers: 1, ports: [e1], config: { replication } });
  west = await TestCluster.start({ region: WEST, ports: [w1, w2, w3], config: { replication } });
});

after(async () => {
  await Promise.allSettled([east?.close(), west?.close()]);
});

function kafka(bootstrap: string[], clientId: string): Kafka {
  return new Kafka({ clientId, brokers: bootstrap, logLevel: logLevel.NOTHING, retry: { retries: 5, initialRetryTime: 100 } });
}

interface PromoteReport {
  id: string;
  epoch: number;
  formerPrimary: string;
  at: string;
  partitions: Array<{ partition: number; lastOriginOffsetHeld: string; notMeasured?: string }>;
}

interface DrView {
  topics: Array<{ topic: string; primary: string; epoch: number; readOnly: boolean; phase: string; reportId: string | null }>;
}

async function adminGet<T>(adminPort: number, route: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`http://127.0.0.1:${adminPort}${route}`);
  return { status: res.status, body: (await res.json()) as T };
}

/** This broker's own view of the topic's DR role. */
async function roleOn(adminPort: number, topic = TOPIC): Promise<DrView['topics'][number] | undefined> {
  const { body } = await adminGet<DrView>(adminPort, '/v1/dr?scope=broker');
  return body.topics.find((t) => t.topic === topic);
}

async function promote(adminPort: number, topic: string): Promise<PromoteReport> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/v1/dr/promote`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic }) });
  const body = (await res.json()) as { reports: PromoteReport[] };
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.reports[0]!;
}

test('a promote through one broker of a region cluster makes the region the primary on every broker: every partition leader takes producers, every broker shows the role and serves the report, a restarted broker too', { timeout: 120_000 }, async (t) => {
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  for (const [c, rf] of [[west, 3], [east, 1]] as const) {
    const admin = kafka(c.bootstrap, 'dr-admin').admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS, replicationFactor: rf }], waitForLeaders: true });
    } finally {
      await admin.disconnect();
    }
  }
  const leaders: number[] = [];
  for (let p = 0; p < PARTITIONS; p++) leaders.push((await west.partition(TOPIC, p, (v) => v.isr.length === 3)).leader);
  assert.equal(new Set(leaders).size, PARTITIONS, `the partitions are led by different eu-west brokers (leaders ${leaders.join(', ')})`);
  mark(`topic in both regions; eu-west leaders ${leaders.join(', ')}`);

  // Records in the primary reach the copy.
  const eastProducer = kafka(east.bootstrap, 'dr-east').producer();
  await eastProducer.connect();
  try {
    for (let p = 0; p < PARTITIONS; p++) await eastProducer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: BEFORE }, (_, i) => ({ partition: p, value: `east-${p}-${i}` })) });
  } finally {
    await eastProducer.disconnect();
  }
  await waitFor('us-east records in eu-west', async () => ((await readTopicToEnd(west.bootstrap[0]!, TOPIC)).length === PARTITIONS * BEFORE ? true : undefined), 30_000, 100);
  mark('replicated to eu-west');

  const westProducer = kafka(west.bootstrap, 'dr-west').producer({ retry: { retries: 0 } });
  await westProducer.connect();
  let report: PromoteReport;
  try {
    // The copy is read-only at every leader.
    for (let p = 0; p < PARTITIONS; p++) {
      await assert.rejects(westProducer.send({ topic: TOPIC, acks: -1, messages: [{ partition: p, value: 'refused' }] }), (err: Error) => /read-only|POLICY_VIOLATION|policy/i.test(`${err.message} ${(err as { type?: string }).type ?? ''}`), `partition ${p} refuses producers before the promote`);
    }

    // The disaster: us-east dies. eu-west is promoted through one broker.
    await east.node(1).kill9();
    const asked = west.node(1);
    report = await promote(asked.adminPort, TOPIC);
    assert.equal(report.epoch, 1);
    assert.equal(report.formerPrimary, EAST);
    // Broker 1 holds a replica of every partition (RF 3): each measured, all 10 records held.
    assert.deepEqual(report.partitions.map((p) => [p.partition, p.lastOriginOffsetHeld, p.notMeasured]), [0, 1, 2].map((p) => [p, String(BEFORE - 1), undefined]));
    mark('promoted through broker 1');

    // The asking broker answered once it applied the role; the others apply it within their watch's delay.
    const own = await roleOn(asked.adminPort);
    assert.deepEqual([own?.primary, own?.epoch, own?.readOnly, own?.phase, own?.reportId], [WEST, 1, false, 'promoted', report.id], 'the asking broker shows the role it answered');
    for (const b of west.nodes) {
      await waitFor(`broker ${b.nodeId} to show eu-west as the primary at epoch 1`, async () => {
        const r = await roleOn(b.adminPort);
        return r?.primary === WEST && r.epoch === 1 && !r.readOnly && r.phase === 'promoted' && r.reportId === report.id;
      }, 5_000, 20);
    }

    // Every partition leader takes producers now.
    for (let p = 0; p < PARTITIONS; p++) {
      const [ack] = await westProducer.send({ topic: TOPIC, acks: -1, messages: [{ partition: p, value: `west-${p}` }] });
      assert.equal(ack?.errorCode, 0, `partition ${p} (leader ${leaders[p]}) takes the record`);
    }
  } finally {
    await westProducer.disconnect();
  }
  const read = await readTopicToEnd(west.bootstrap[0]!, TOPIC);
  for (let p = 0; p < PARTITIONS; p++) {
    assert.deepEqual(read.filter((m) => m.partition === p).map((m) => m.value?.toString()), [...Array.from({ length: BEFORE }, (_, i) => `east-${p}-${i}`), `west-${p}`]);
  }
  mark('every eu-west leader took a record');

  // Every broker serves the same report.
  for (const b of west.nodes) {
    const got = await adminGet<unknown>(b.adminPort, `/v1/dr/reports/${report.id}`);
    assert.equal(got.status, 200, `broker ${b.nodeId} serves the report`);
    assert.deepEqual(got.body, report);
  }

  // A promote whose broker crashed right after its first write (phase promoting, in etcd)
  // is completed by the same command through another broker: same epoch, same start.
  const admin = kafka(west.bootstrap, 'dr-admin-b').admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic: TOPIC_B, numPartitions: 1, replicationFactor: 3 }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  const startedAt = Date.now() - 60_000;
  const etcd = new Etcd3({ hosts: west.etcd.endpoint });
  try {
    const key = `/meridian-e2e/eu-west/dr/topics/${TOPIC_B}`;
    await etcd.put(key).value(JSON.stringify({ primary: WEST, epoch: 1, phase: 'promoting', at: startedAt, reportId: `promote-${TOPIC_B}-e1`, failback: { formerPrimary: EAST } }));
  } finally {
    etcd.close();
  }
  for (const b of west.nodes) await waitFor(`broker ${b.nodeId} to apply the interrupted promote`, async () => (await roleOn(b.adminPort, TOPIC_B))?.phase === 'promoting', 5_000, 20);
  const resumed = await promote(west.node(2).adminPort, TOPIC_B);
  assert.deepEqual([resumed.id, resumed.epoch, resumed.at], [`promote-${TOPIC_B}-e1`, 1, new Date(startedAt).toISOString()]);
  for (const b of west.nodes) {
    await waitFor(`broker ${b.nodeId} to show ${TOPIC_B} promoted`, async () => {
      const r = await roleOn(b.adminPort, TOPIC_B);
      return r?.phase === 'promoted' && r.epoch === 1 && !r.readOnly;
    }, 5_000, 20);
  }
  mark('an interrupted promote completed through broker 2');

  // A broker restarted without its local copies gets the role and the report from etcd.
  // Meanwhile (both restarts at once: a process start is most of this test's time) the old
  // primary returns and hears of eu-west's epoch (its handshakes): it stops taking writes.
  const restarted = west.node(3);
  const eastBack = (async () => {
    await east.node(1).start();
    await waitFor('us-east to learn that eu-west is primary at epoch 1', async () => (await roleOn(east.node(1).adminPort))?.readOnly === true, 30_000, 50);
  })();
  await restarted.stop();
  mark('broker 3 stopped');
  fs.rmSync(path.join(restarted.dataDir, 'dr', 'state.json'), { force: true });
  fs.rmSync(path.join(restarted.dataDir, 'dr', 'reports'), { recursive: true, force: true });
  await restarted.start();
  mark('broker 3 listening again');
  await west.waitMembers([1, 2, 3]);
  // The admin API opens after the Kafka listener and the registration (broker.ts): a request
  // right after them can find its port closed (fetch failed once at load 8).
  await waitFor('broker 3 admin API to answer', () => fetch(`http://127.0.0.1:${restarted.adminPort}/v1/dr?scope=broker`).then((r) => r.ok, () => false), 10_000, 50);
  const role = await roleOn(restarted.adminPort);
  assert.equal(role?.primary, WEST);
  assert.equal(role?.epoch, 1);
  assert.equal(role?.readOnly, false);
  assert.equal(role?.phase, 'promoted');
  assert.deepEqual((await adminGet<unknown>(restarted.adminPort, `/v1/dr/reports/${report.id}`)).body, report);
  assert.equal((await roleOn(restarted.adminPort, TOPIC_B))?.phase, 'promoted');
  mark('restarted broker 3 has the role and the report');
  await eastBack;
  mark('us-east back, read-only');

  // Promoted again (epoch 2), us-east's handshakes reach eu-west's partition leaders, which
  // note the newer primary in the topic's etcd key: every eu-west broker shows it and
  // refuses producers.
  const back = await promote(east.node(1).adminPort, TOPIC);
  assert.equal(back.epoch, 2);
  for (const b of west.nodes) {
    await waitFor(`eu-west broker ${b.nodeId} to stop taking writes (us-east primary at epoch 2)`, async () => (await roleOn(b.adminPort))?.readOnly === true, 20_000, 50);
  }
  const refused = kafka(west.bootstrap, 'dr-west-2').producer({ retry: { retries: 0 } });
  await refused.connect();
  try {
    for (let p = 0; p < PARTITIONS; p++) {
      await assert.rejects(refused.send({ topic: TOPIC, acks: -1, messages: [{ partition: p, value: 'stale' }] }), (err: Error) => /POLICY_VIOLATION|promoted to primary|policy/i.test(`${err.message} ${(err as { type?: string }).type ?? ''}`), `partition ${p} (leader ${leaders[p]}) refuses producers once us-east is primary at epoch 2`);
    }
  } finally {
    await refused.disconnect();
  }
  const etcdAfter = new Etcd3({ hosts: west.etcd.endpoint });
  try {
    const entry = JSON.parse((await etcdAfter.get(`/meridian-e2e/eu-west/dr/topics/${TOPIC}`).string())!) as { primary: string; epoch: number; supersededBy?: { primary: string; epoch: number } };
    assert.deepEqual([entry.primary, entry.epoch, entry.supersededBy?.primary, entry.supersededBy?.epoch], [WEST, 1, EAST, 2], "the marking is in the topic's key in the region's etcd");
  } finally {
    etcdAfter.close();
  }
  mark('us-east promoted back: every eu-west leader refuses producers');
});

interface FailbackReport {
  completed: boolean;
  dryRun: boolean;
  sideTopic: string;
  newPrimary: string;
  epoch: number;
  totals: { records: string };
  partitions: Array<{ partition: number; truncateAt: string; records: string; offsets: { first: string; last: string } | null; timestamps: { first: string; last: string } | null; preservedAt?: { first: string; last: string } }>;
}

async function failbackVia(adminPort: number, body: { topic: string; confirm?: boolean }): Promise<FailbackReport> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/v1/dr/failback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  assert.equal(res.status, 200, text);
  return JSON.parse(text) as FailbackReport;
}

/**
 * A new divergence: eu-west is promoted again (to `westEpoch`) and writes `west<westEpoch>-<p>`
 * to each partition, which us-east (superseded, refusing it) never receives; us-east is then
 * promoted past it, and every eu-west broker learns so (read-only again).
 */
async function divergeAgain(westEpoch: number): Promise<void> {
  assert.equal((await promote(west.node(1).adminPort, TOPIC)).epoch, westEpoch);
  const producer = kafka(west.bootstrap, `dr-west-${westEpoch}`).producer();
  await producer.connect();
  try {
    for (let p = 0; p < PARTITIONS; p++) await producer.send({ topic: TOPIC, acks: -1, messages: [{ partition: p, value: `west${westEpoch}-${p}` }] });
  } finally {
    await producer.disconnect();
  }
  await waitFor(`us-east to learn of eu-west at epoch ${westEpoch}`, async () => (await roleOn(east.node(1).adminPort))?.readOnly === true, 20_000, 50);
  assert.equal((await promote(east.node(1).adminPort, TOPIC)).epoch, westEpoch + 1);
  for (const b of west.nodes) await waitFor(`eu-west broker ${b.nodeId} to learn of us-east at epoch ${westEpoch + 1}`, async () => (await roleOn(b.adminPort))?.readOnly === true, 20_000, 50);
}

/** One batch produced as is (acks=all) to a partition's leader. */
async function produceBatch(port: number, topic: string, partition: number, batch: Buffer): Promise<void> {
  const client = new LinkClient({ address: `127.0.0.1:${port}`, clientId: 'dr-test-raw', requestTimeoutMs: 10_000 });
  try {
    const req = { transactionalId: null, acks: -1, timeoutMs: 10_000, topicData: [{ name: topic, partitionData: [{ index: partition, records: batch }] }] };
    const res = decodeProduceResponse(await client.request(ApiKey.Produce, 8, (w) => encodeProduceRequest(w, 8, req)), 8);
    assert.equal(res.responses[0]?.partitionResponses[0]?.errorCode, 0, `produce to ${topic}/${partition}`);
  } finally {
    client.close();
  }
}

/** Every record value of `topic`, per partition in log order, as kcat (librdkafka) reads them from the beginning to the end. */
async function kcatValues(bootstrap: string, topic: string): Promise<string[][]> {
  const got = await kcat(['-C', '-b', bootstrap, '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%p %s\n']);
  assert.equal(got.code, 0, got.stderr);
  const out = Array.from({ length: PARTITIONS }, () => [] as string[]);
  for (const line of got.stdout.toString().split('\n')) {
    if (line === '') continue;
    const at = line.indexOf(' ');
    out[Number(line.slice(0, at))]!.push(line.slice(at + 1));
  }
  return out;
}

/** The records of a stored batch without its offset-bearing header: timestamps and record bytes. */
const recordsOf = (b: StoredBatchBytes) => Buffer.concat([b.bytes.subarray(27, 43), b.bytes.subarray(57)]);
const isControl = (b: StoredBatchBytes) => (b.bytes.readInt16BE(21) & 0x20) !== 0;

test('failback --confirm on a region cluster, resumed after a crash: the divergent tail copied once to the side topic through the leaders, every replica cut, group commits clamped, the new primary replicates in; then a second one uninterrupted', { timeout: 120_000 }, async (t) => {
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  // From the test above: each eu-west partition holds us-east's 10 records then `west-<p>`,
  // written while eu-west was primary (epoch 1); us-east is primary again at epoch 2.
  const asked = west.node(2);
  const leaders: number[] = [];
  for (let p = 0; p < PARTITIONS; p++) leaders.push((await west.partition(TOPIC, p, (v) => v.isr.length === 3)).leader);
  assert.ok(leaders.some((l) => l !== asked.nodeId), `broker ${asked.nodeId} does not lead every partition (leaders ${leaders.join(', ')})`);
  const before: StoredBatchBytes[][] = [];
  for (let p = 0; p < PARTITIONS; p++) before.push(await west.waitLogsIdentical(TOPIC, p, [1, 2, 3]));
  mark('eu-west replicas identical');

  // The dry run names one divergent record per partition: `west-<p>`.
  const dry = await failbackVia(asked.adminPort, { topic: TOPIC });
  assert.equal(dry.newPrimary, EAST);
  assert.equal(dry.epoch, 2);
  assert.deepEqual(dry.partitions.map((p) => p.records), ['1', '1', '1']);
  const cuts = dry.partitions.map((p) => BigInt(p.truncateAt));
  const tails = before.map((log, p) => log.filter((b) => b.baseOffset >= cuts[p]! && !isControl(b)));
  for (let p = 0; p < PARTITIONS; p++) assert.equal(tails[p]!.length, 1, `partition ${p}: one tail batch at or past the cut ${cuts[p]}`);
  mark(`dry run: cuts ${cuts.join(', ')}`);

  // Groups: one committed past each cut (it read `west-<p>`), one below it.
  const admin = kafka(west.bootstrap, 'dr-admin-failback').admin();
  await admin.connect();
  try {
    // KafkaJS's setOffsets joins the group with a consumer (seconds each): both at once,
    // while the interrupted failback is staged.
    const commits = Promise.all([
      admin.setOffsets({ groupId: 'readers-past', topic: TOPIC, partitions: cuts.map((c, p) => ({ partition: p, offset: String(c + 1n) })) }),
      admin.setOffsets({ groupId: 'readers-below', topic: TOPIC, partitions: cuts.map((_c, p) => ({ partition: p, offset: '5' })) }),
    ]);

    // An earlier attempt crashed right after copying partition 0: its plan is in etcd (phase
    // failing-back, as failback's first write leaves it) and the side topic holds that copy.
    const sideTopic = `${TOPIC}.diverged-${WEST}-e2`;
    assert.equal(dry.sideTopic, sideTopic);
    const etcd = new Etcd3({ hosts: west.etcd.endpoint });
    try {
      const plan = { newPrimary: EAST, newEpoch: 2, sideTopic, cuts: Object.fromEntries(cuts.map((c, p) => [String(p), String(c)])) };
      await etcd.put(`/meridian-e2e/eu-west/dr/topics/${TOPIC}`).value(JSON.stringify({ primary: EAST, epoch: 2, phase: 'failing-back', at: Date.now(), failback: plan }));
    } finally {
      etcd.close();
    }
    for (const b of west.nodes) await waitFor(`broker ${b.nodeId} to apply the interrupted failback`, async () => (await roleOn(b.adminPort))?.phase === 'failing-back', 5_000, 20);
    await admin.createTopics({ topics: [{ topic: sideTopic, numPartitions: PARTITIONS, replicationFactor: 3, configEntries: [{ name: 'retention.ms', value: '-1' }, { name: 'retention.bytes', value: '-1' }] }], waitForLeaders: true });
    const side0 = await west.partition(sideTopic, 0, (v) => v.isr.length === 3);
    await produceBatch(west.node(side0.leader).port, sideTopic, 0, anonymous(tails[0]![0]!.bytes));
    mark('interrupted failback staged: plan in etcd, partition 0 copied');
    await commits;
    mark('group commits set');

    // The same command completes it, through a broker that does not lead every partition.
    mark('failback confirm asked');
    const done = await failbackVia(asked.adminPort, { topic: TOPIC, confirm: true });
    assert.equal(done.completed, true);
    assert.equal(done.sideTopic, sideTopic);
    assert.deepEqual(done.partitions.map((p) => [p.truncateAt, p.records]), cuts.map((c) => [String(c), '1']));
    mark('failback confirmed through broker 2');

    // Every replica: the same bytes, below the cut as before, no record of the tail left.
    for (let p = 0; p < PARTITIONS; p++) {
      const after = await west.waitLogsIdentical(TOPIC, p, [1, 2, 3]);
      assert.deepEqual(after.filter((b) => b.baseOffset < cuts[p]!).map((b) => b.bytes), before[p]!.filter((b) => b.baseOffset < cuts[p]!).map((b) => b.bytes), `partition ${p}: unchanged below the cut`);
      assert.deepEqual(after.filter((b) => b.baseOffset >= cuts[p]! && !isControl(b)), [], `partition ${p}: no record at or past the cut ${cuts[p]}`);
    }
    assert.deepEqual(await kcatValues(west.bootstrap[0]!, TOPIC), [0, 1, 2].map((p) => Array.from({ length: BEFORE }, (_, i) => `east-${p}-${i}`)), 'eu-west read with kcat after the cut');

    // The side topic: exactly the tail, once per partition (partition 0 not copied again),
    // the same records and timestamps, on every replica.
    assert.deepEqual(await kcatValues(west.bootstrap[0]!, sideTopic), [0, 1, 2].map((p) => [`west-${p}`]), 'the side topic read with kcat');
    for (let p = 0; p < PARTITIONS; p++) {
      const copies = await west.waitLogsIdentical(sideTopic, p, [1, 2, 3]);
      assert.deepEqual(copies.map(recordsOf), tails[p]!.map(recordsOf), `side partition ${p}: the tail's records, byte for byte`);
    }
    mark('replicas cut, side topic holds the tail once');

    // Every coordinator clamped the commits past the cuts; the one below stays.
    await waitFor('the commits past the cuts clamped to the cuts', async () => {
      const [o] = await admin.fetchOffsets({ groupId: 'readers-past', topics: [TOPIC] });
      return o?.partitions.sort((a, b) => a.partition - b.partition).map((x) => x.offset).join(',') === cuts.map(String).join(',');
    }, 10_000, 50);
    const [below] = await admin.fetchOffsets({ groupId: 'readers-below', topics: [TOPIC] });
    assert.deepEqual(below?.partitions.sort((a, b) => a.partition - b.partition).map((x) => x.offset), ['5', '5', '5']);
  } finally {
    await admin.disconnect();
  }
  mark('commits clamped');
  for (const b of west.nodes) await waitFor(`broker ${b.nodeId} to follow us-east at epoch 2`, async () => {
    const r = await roleOn(b.adminPort);
    return r?.phase === 'following' && r.primary === EAST && r.epoch === 2 && r.readOnly;
  }, 5_000, 20);

  // The new primary's records replicate in after the cut: both regions read the same.
  const producer = kafka(east.bootstrap, 'dr-east-after').producer();
  await producer.connect();
  try {
    for (let p = 0; p < PARTITIONS; p++) await producer.send({ topic: TOPIC, acks: -1, messages: Array.from({ length: 3 }, (_, i) => ({ partition: p, value: `east2-${p}-${i}` })) });
  } finally {
    await producer.disconnect();
  }
  mark('us-east wrote 3 more records per partition');
  const want = (p: number) => [...Array.from({ length: BEFORE }, (_, i) => `east-${p}-${i}`), ...Array.from({ length: 3 }, (_, i) => `east2-${p}-${i}`)];
  let seen: string[][] = [];
  await waitFor('us-east\'s new records in eu-west', async () => JSON.stringify((seen = await kcatValues(west.bootstrap[0]!, TOPIC))) === JSON.stringify([0, 1, 2].map(want)), 30_000, 100, () => `(eu-west holds ${JSON.stringify(seen)})`);
  assert.deepEqual(await kcatValues(east.bootstrap[0]!, TOPIC), [0, 1, 2].map(want), 'us-east read with kcat');
  for (let p = 0; p < PARTITIONS; p++) await west.waitLogsIdentical(TOPIC, p, [1, 2, 3]);
  mark('the new primary\'s records replicated in; both regions read the same');

  // Once more from the start, uninterrupted: eu-west promoted again (epoch 3) writes
  // `west3-<p>`, which us-east (superseded, refusing it) never receives; us-east is promoted
  // past it (epoch 4); the failback through broker 3 decides the plan, writes it, creates the
  // side topic itself, copies and cuts.
  await divergeAgain(3);
  mark('eu-west wrote west3-<p> at epoch 3; us-east promoted to epoch 4');
  assert.ok(leaders.some((l) => l !== 3), `broker 3 does not lead every partition (leaders ${leaders.join(', ')})`);
  const again = await failbackVia(west.node(3).adminPort, { topic: TOPIC, confirm: true });
  assert.equal(again.completed, true);
  assert.equal(again.sideTopic, `${TOPIC}.diverged-${WEST}-e4`);
  assert.deepEqual(again.partitions.map((p) => p.records), ['1', '1', '1']);
  assert.deepEqual(await kcatValues(west.bootstrap[0]!, again.sideTopic), [0, 1, 2].map((p) => [`west3-${p}`]), 'the second side topic read with kcat');
  assert.deepEqual(await kcatValues(west.bootstrap[0]!, TOPIC), [0, 1, 2].map(want), 'eu-west read with kcat after the second cut');
  for (let p = 0; p < PARTITIONS; p++) await west.waitLogsIdentical(TOPIC, p, [1, 2, 3]);
  for (const b of west.nodes) await waitFor(`broker ${b.nodeId} to follow us-east at epoch 4`, async () => (await roleOn(b.adminPort))?.phase === 'following', 5_000, 20);
  mark('a second failback, uninterrupted, through broker 3');
});

test('a failback on a region cluster whose broker dies right after asking its first cut: the cut completes without it, and the same failback through another broker reports every tail (the cut one from its plan), copied once', { timeout: 120_000 }, async (t) => {
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  // From the test above: us-east is primary at epoch 4. eu-west is promoted again (epoch 5)
  // and writes `west5-<p>`, which us-east, superseded, never receives; us-east is promoted
  // past it (epoch 6).
  await divergeAgain(5);
  const before = await kcatValues(west.bootstrap[0]!, TOPIC);
  for (let p = 0; p < PARTITIONS; p++) assert.equal(before[p]!.at(-1), `west5-${p}`);
  mark('eu-west wrote west5-<p> at epoch 5; us-east promoted to epoch 6');

  // The broker asked is not partition 0's leader; the one asked again is neither of them.
  const leader0 = (await west.partition(TOPIC, 0, (v) => v.isr.length === 3)).leader;
  const asked = west.nodes.find((b) => b.nodeId !== leader0)!;
  const again = west.nodes.find((b) => b.nodeId !== leader0 && b.nodeId !== asked.nodeId)!;
  const dry = await failbackVia(again.adminPort, { topic: TOPIC });
  assert.deepEqual(dry.partitions.map((p) => p.records), ['1', '1', '1']);
  const sideTopic = `${TOPIC}.diverged-${WEST}-e6`;
  assert.equal(dry.sideTopic, sideTopic);

  // The asked broker is SIGKILLed the moment partition 0's cut is asked in etcd (a new
  // truncation in its state): by then its tail is copied, and partitions 1 and 2 are not.
  const etcd = new Etcd3({ hosts: west.etcd.endpoint });
  const stateKey = (p: number) => `/meridian-e2e/eu-west/partitions/${TOPIC}/${p}`;
  const truncationOf = async (p: number) => (JSON.parse((await etcd.get(stateKey(p)).string())!) as { truncation?: { id: string; offset: string; status: string } }).truncation;
  const earlier = await Promise.all([0, 1, 2].map(truncationOf));
  const watcher = await etcd.watch().key(stateKey(0)).create();
  let killed: Promise<void> | undefined;
  watcher.on('put', (kv) => {
    const cut = (JSON.parse(kv.value.toString()) as { truncation?: { id: string } }).truncation;
    if (killed === undefined && cut !== undefined && cut.id !== earlier[0]?.id) killed = asked.kill9();
  });
  try {
    const answer = await fetch(`http://127.0.0.1:${asked.adminPort}/v1/dr/failback`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: TOPIC, confirm: true }) }).then(
      async (res) => `answered ${res.status}: ${await res.text()}`,
      () => 'no answer',
    );
    assert.equal(answer, 'no answer', `broker ${asked.nodeId} was killed before it answered`);
    assert.ok(killed !== undefined, 'partition 0\'s cut was asked');
    await killed;
  } finally {
    await watcher.cancel();
  }
  mark(`broker ${asked.nodeId} killed once partition 0's cut was asked`);

  try {
    // Partition 0 is cut without it (it leaves the ISR); 1 and 2 were never asked.
    await waitFor('partition 0\'s cut to complete', async () => (await truncationOf(0))?.status === 'done', 20_000, 50);
    assert.equal((await truncationOf(0))?.offset, dry.partitions[0]!.truncateAt);
    for (const p of [1, 2]) assert.equal((await truncationOf(p))?.id, earlier[p]?.id, `partition ${p} was not cut by the killed attempt`);
    const entry = JSON.parse((await etcd.get(`/meridian-e2e/eu-west/dr/topics/${TOPIC}`).string())!) as { phase: string; failback: { tails?: FailbackReport['partitions'] } };
    assert.equal(entry.phase, 'failing-back');
    assert.deepEqual(entry.failback.tails?.map((p) => [p.partition, p.records]), [[0, '1']], 'partition 0\'s tail saved with the plan before its cut');
  } finally {
    etcd.close();
  }
  const cutLeader = (await west.partition(TOPIC, 0, (v) => v.leader !== asked.nodeId && v.leader >= 0)).leader;
  await waitFor('partition 0 read back to its cut at its leader', async () => {
    const logs = await west.node(cutLeader).readLog(TOPIC, 0);
    return logs.every((b) => b.baseOffset < BigInt(dry.partitions[0]!.truncateAt) || isControl(b));
  }, 20_000, 50);
  mark('partition 0 cut; its tail saved in the plan');

  // The same command through another broker completes it and reports every tail as the dry
  // run found it, partition 0's (no longer in the topic) from the plan.
  const done = await failbackVia(again.adminPort, { topic: TOPIC, confirm: true });
  assert.equal(done.completed, true);
  const summary = (r: FailbackReport) => r.partitions.map((p) => [p.partition, p.truncateAt, p.records, p.offsets, p.timestamps]);
  assert.deepEqual(summary(done), summary(dry), 'the resumed failback reports every tail the dry run found');
  assert.deepEqual(done.partitions.map((p) => p.preservedAt), [0, 1, 2].map(() => ({ first: '0', last: '0' })));
  assert.equal(done.totals.records, '3');
  mark(`failback completed through broker ${again.nodeId}`);

  await asked.start();
  for (let p = 0; p < PARTITIONS; p++) await west.waitLogsIdentical(TOPIC, p, [1, 2, 3]);
  assert.deepEqual(await kcatValues(west.bootstrap[0]!, sideTopic), [0, 1, 2].map((p) => [`west5-${p}`]), 'the side topic holds each tail once');
  assert.deepEqual(await kcatValues(west.bootstrap[0]!, TOPIC), before.map((values) => values.slice(0, -1)), 'eu-west without the divergent records');
  for (const b of west.nodes) await waitFor(`broker ${b.nodeId} to follow us-east at epoch 6`, async () => (await roleOn(b.adminPort))?.phase === 'following', 10_000, 20);
  mark(`broker ${asked.nodeId} back; every replica identical`);
});
