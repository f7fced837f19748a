/**
 * End-to-end failover of a three-broker region on a real etcd (issue 16), every broker a
 * `meridian broker --config FILE` process (test/helpers/cluster.ts). Topic RF 3 with
 * min.insync.replicas 2; two idempotent producers run the whole time, a KafkaJS one
 * (idempotent, acks -1) and kcat (librdkafka, enable.idempotence, acks=all, values on stdin),
 * while the partition's leader is killed with SIGKILL and restarted, five rounds. Afterwards,
 * what a user checks: every acknowledged value is read exactly once, in each producer's
 * order, with contiguous offsets, and the three replicas' logs hold the same batches, byte
 * for byte at the same offsets. Then the controller is SIGKILLed under both producers: a new
 * one is elected, its partition gets a new leader, a topic is created, nothing acknowledged
 * is lost or doubled.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { kafkajsLoop, kcatLoop } from '../helpers/cluster-producers.js';
import { TestCluster, waitFor } from '../helpers/cluster.js';
import { kcat } from '../helpers/kcat.js';
import { assertContiguous } from '../helpers/kcat-client.js';
import { parseKcatJson } from '../helpers/kcat-json.js';

let cluster: TestCluster;

before(async () => {
  cluster = await TestCluster.start({ brokers: 3 });
});

after(async () => {
  await cluster?.close();
});

const TOPIC = 'failover';
const ROUNDS = 5;

/** Values of one producer (by prefix) in the order read, as numbers. */
function sequenceOf(values: string[], prefix: string): number[] {
  return values.filter((v) => v.startsWith(prefix)).map((v) => Number(v.slice(prefix.length)));
}

test('five SIGKILLs of the leader under two idempotent producers: every acknowledged value read once, in order; replicas byte-identical', async (t) => {
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  const admin = new Kafka({ clientId: 'failover-admin', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 1, replicationFactor: 3, configEntries: [{ name: 'min.insync.replicas', value: '2' }] }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  await cluster.partition(TOPIC, 0, (v) => v.replicas.length === 3 && v.isr.length === 3);

  const bootstrap = cluster.nodes.map((b) => b.bootstrap);
  const kjs = kafkajsLoop({ bootstrap, topic: TOPIC, prefix: 'k-', clientId: 'failover-kafkajs', partitionOf: () => 0 });
  const kc = kcatLoop({ bootstrap, topic: TOPIC, prefix: 'c-', partition: 0 });
  const leaders: number[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const before = await cluster.partition(TOPIC, 0, (v) => v.isr.length === 3);
      const ackedBefore = kjs.acked.length;
      await waitFor(`round ${round}: KafkaJS acknowledgements before the kill`, () => kjs.acked.length >= ackedBefore + 20, 20_000, 20);
      const victim = cluster.node(before.leader);
      leaders.push(victim.nodeId);
      await victim.kill9();
      mark(`round ${round}: killed leader ${victim.nodeId} (epoch ${before.leaderEpoch})`);
      const after = await cluster.partition(TOPIC, 0, (v) => v.leader !== victim.nodeId && v.leaderEpoch > before.leaderEpoch && !v.isr.includes(victim.nodeId));
      assert.ok(after.isr.length >= 2, `round ${round}: the new leader ${after.leader} has ISR [${after.isr.join(', ')}]`);
      mark(`round ${round}: broker ${after.leader} leads (epoch ${after.leaderEpoch}, isr [${after.isr.join(', ')}])`);
      const ackedAtFailover = kjs.acked.length;
      // The killed broker restarts while the producers go on with the new leader.
      await Promise.all([waitFor(`round ${round}: KafkaJS acknowledgements from the new leader ${after.leader}`, () => kjs.acked.length >= ackedAtFailover + 20, 20_000, 20), victim.start()]);
      mark(`round ${round}: acknowledged by the new leader; broker ${victim.nodeId} restarted`);
      await cluster.waitMembers([1, 2, 3]);
    }
    await cluster.partition(TOPIC, 0, (v) => v.isr.length === 3);
  } finally {
    await kjs.stop();
  }
  const kcatEnd = await kc.stop();
  assert.equal(kcatEnd.code, 0, `kcat -P exited ${kcatEnd.code}; stderr:\n${kcatEnd.stderr.slice(-4000)}`);
  // Connection errors to the killed brokers are expected on stderr; a lost message is not.
  assert.doesNotMatch(kcatEnd.stderr, /[Dd]elivery failed|Failed to produce|[Ff]atal/, `kcat -P reported a failed delivery:\n${kcatEnd.stderr.slice(-4000)}`);

  // The replicas: once all three are in the ISR and the producers stopped, the same batches.
  const state = await cluster.partition(TOPIC, 0, (v) => v.isr.length === 3);
  const batches = await cluster.waitLogsIdentical(TOPIC, 0, state.isr);
  assert.ok(batches.length > 0);
  const epochs = new Set(batches.map((b) => b.leaderEpoch));
  assert.ok(epochs.size >= 2, `the log holds batches of ${epochs.size} leader epoch(s) after ${ROUNDS} leader changes`);

  // What a consumer reads.
  const r = await kcat(['-b', cluster.bootstrap.join(','), '-C', '-J', '-t', TOPIC, '-p', '0', '-o', 'beginning', '-e'], undefined, 30_000);
  assert.equal(r.code, 0, `kcat -C exited ${r.code}: ${r.stderr.slice(-2000)}`);
  const messages = parseKcatJson(r.stdout);
  assertContiguous(messages);
  const values = messages.map((m) => m.payload!.toString());
  const lastOffset = batches[batches.length - 1]!.lastOffset;
  assert.equal(BigInt(messages.length), lastOffset + 1n, `kcat read ${messages.length} records; the log ends at offset ${lastOffset}`);

  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  const duplicates = [...counts].filter(([, c]) => c > 1);
  assert.deepEqual(duplicates, [], 'no value is stored twice');

  mark(`read ${messages.length} records: ${kjs.acked.length} acknowledged to KafkaJS, ${kc.sent.length} delivered by kcat, in ${batches.length} batches of ${epochs.size} leader epochs`);
  const missingKjs = kjs.acked.filter((v) => !counts.has(v));
  assert.deepEqual(missingKjs, [], `every value KafkaJS had acknowledged (${kjs.acked.length}) is read`);
  const missingKcat = kc.sent.filter((v) => !counts.has(v));
  assert.deepEqual(missingKcat, [], `every value kcat delivered (${kc.sent.length}) is read`);
  for (const prefix of ['k-', 'c-']) {
    const seq = sequenceOf(values, prefix);
    const outOfOrder = seq.findIndex((x, i) => i > 0 && x <= seq[i - 1]!);
    assert.equal(outOfOrder, -1, `${prefix} values are read in the order they were produced (at #${outOfOrder}: ${seq[outOfOrder - 1]} then ${seq[outOfOrder]})`);
  }
  // With retries covering a failover, KafkaJS never gives up (a value it did would be
  // allowed at most once, which the duplicate check above covers).
  assert.deepEqual(kjs.failed, [], `KafkaJS gave up on sends while leaders ${leaders.join(', ')} were killed`);
  assert.ok(kjs.acked.length >= ROUNDS * 40 && kc.sent.length > 0);
});

test('the controller SIGKILLed under two idempotent producers: a new controller, new leaders for its partitions, every acknowledged value read once in order, a topic created afterwards', async (t) => {
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  const topic = 'controller-death';
  const survivorOf = (dead: number) => cluster.nodes.find((b) => b.nodeId !== dead && b.running)!;
  const ctrl = (await cluster.node(1).metadata([])).controllerId;
  assert.ok(ctrl >= 1 && ctrl <= 3, `controller ${ctrl}`);
  const [x, y] = [1, 2, 3].filter((id) => id !== ctrl) as [number, number];
  // Partition 0 led by the controller, the others by the other two, each on all three brokers.
  const replicaAssignment = [
    { partition: 0, replicas: [ctrl, x, y] },
    { partition: 1, replicas: [x, y, ctrl] },
    { partition: 2, replicas: [y, ctrl, x] },
  ];
  const admin = new Kafka({ clientId: 'failover-admin', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, replicaAssignment, configEntries: [{ name: 'min.insync.replicas', value: '2' }] }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  const before = await Promise.all([0, 1, 2].map((p) => cluster.partition(topic, p, (v) => v.isr.length === 3 && v.leader === replicaAssignment[p]!.replicas[0])));

  const bootstrap = cluster.nodes.map((b) => b.bootstrap);
  // KafkaJS writes to the three partitions in turn (two values a send), kcat to the controller's.
  const partitionOf = (n: number) => Math.floor(n / 2) % 3;
  const kjs = kafkajsLoop({ bootstrap, topic, prefix: 'k-', clientId: 'controller-kafkajs', partitionOf });
  const kc = kcatLoop({ bootstrap, topic, prefix: 'c-', partition: 0 });
  const victim = cluster.node(ctrl);
  try {
    await waitFor('KafkaJS acknowledgements before the kill', () => kjs.acked.length >= 60 && kc.sent.length > 0, 20_000, 20);
    await victim.kill9();
    mark(`killed the controller, broker ${ctrl} (leader of ${topic}-0 at epoch ${before[0]!.leaderEpoch})`);
    const next = await waitFor(
      'a new controller',
      async () => {
        const id = (await survivorOf(ctrl).metadata([])).controllerId;
        return id !== ctrl && id !== -1 ? id : false;
      },
      30_000,
      50,
    );
    assert.ok([x, y].includes(next), `the new controller ${next} is a live broker`);
    const after0 = await cluster.partition(topic, 0, (v) => v.leader !== ctrl && v.leaderEpoch > before[0]!.leaderEpoch && !v.isr.includes(ctrl));
    mark(`controller ${next}; ${topic}-0 led by ${after0.leader} (epoch ${after0.leaderEpoch}, isr [${after0.isr.join(', ')}])`);
    for (const p of [1, 2]) {
      const v = await cluster.partition(topic, p, (s) => !s.isr.includes(ctrl));
      assert.equal(v.leader, before[p]!.leader, `${topic}-${p} keeps its leader`);
    }
    const atFailover = kjs.acked.length;
    await waitFor('KafkaJS acknowledgements after the kill, from every partition', () => kjs.acked.length >= atFailover + 60, 30_000, 20);
    // A topic created with the controller dead: the new one places and elects it.
    const admin2 = new Kafka({ clientId: 'failover-admin', brokers: [survivorOf(ctrl).bootstrap], logLevel: logLevel.NOTHING }).admin();
    await admin2.connect();
    try {
      assert.equal(await admin2.createTopics({ topics: [{ topic: 'after-controller-death', numPartitions: 2, replicationFactor: 2 }], waitForLeaders: true }), true);
    } finally {
      await admin2.disconnect();
    }
    for (const p of [0, 1]) {
      const v = await cluster.partition('after-controller-death', p);
      assert.ok(!v.replicas.includes(ctrl) && v.replicas.length === 2, `after-controller-death-${p} is placed on live brokers: [${v.replicas.join(', ')}]`);
    }
    mark('topic created with the new controller');
    await victim.start();
    await cluster.waitMembers([1, 2, 3]);
  } finally {
    await kjs.stop();
  }
  const kcatEnd = await kc.stop();
  assert.equal(kcatEnd.code, 0, `kcat -P exited ${kcatEnd.code}; stderr:\n${kcatEnd.stderr.slice(-4000)}`);
  assert.doesNotMatch(kcatEnd.stderr, /[Dd]elivery failed|Failed to produce|[Ff]atal/, `kcat -P reported a failed delivery:\n${kcatEnd.stderr.slice(-4000)}`);
  assert.deepEqual(kjs.failed, [], 'KafkaJS never gave up on a send');

  // Once the restarted broker is back in every ISR: the three logs of each partition are the same.
  for (const p of [0, 1, 2]) {
    const s = await cluster.partition(topic, p, (v) => v.isr.length === 3);
    await cluster.waitLogsIdentical(topic, p, s.isr);
  }
  const r = await kcat(['-b', cluster.bootstrap.join(','), '-C', '-J', '-t', topic, '-o', 'beginning', '-e'], undefined, 30_000);
  assert.equal(r.code, 0, `kcat -C exited ${r.code}: ${r.stderr.slice(-2000)}`);
  const messages = parseKcatJson(r.stdout);
  assertContiguous(messages);
  const counts = new Map<string, number>();
  for (const m of messages) counts.set(m.payload!.toString(), (counts.get(m.payload!.toString()) ?? 0) + 1);
  assert.deepEqual([...counts].filter(([, c]) => c > 1), [], 'no value is stored twice');
  assert.deepEqual(kjs.acked.filter((v) => !counts.has(v)), [], `every value KafkaJS had acknowledged (${kjs.acked.length}) is read`);
  assert.deepEqual(kc.sent.filter((v) => !counts.has(v)), [], `every value kcat delivered (${kc.sent.length}) is read`);
  for (const p of [0, 1, 2]) {
    const values = messages.filter((m) => m.partition === p).map((m) => m.payload!.toString());
    assert.ok(values.filter((v) => v.startsWith('k-')).every((v) => partitionOf(Number(v.slice(2))) === p), `${topic}-${p} holds only its own KafkaJS values`);
    for (const prefix of ['k-', 'c-']) {
      const seq = sequenceOf(values, prefix);
      const at = seq.findIndex((n, i) => i > 0 && n <= seq[i - 1]!);
      assert.equal(at, -1, `${topic}-${p}: ${prefix} values are read in the order produced (at #${at}: ${seq[at - 1]} then ${seq[at]})`);
    }
  }
  mark(`read ${messages.length} records: ${kjs.acked.length} acknowledged to KafkaJS, ${kc.sent.length} delivered by kcat`);
});
