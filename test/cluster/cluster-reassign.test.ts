/**
 * Partition reassignment on a real etcd (issue 16): four `meridian broker --config FILE`
 * processes (test/helpers/cluster.ts), a topic placed on brokers 1-3 so broker 4 starts
 * empty, and the `meridian partitions` CLI (a child process) against the admin API.
 *
 * - Under a KafkaJS idempotent acks=-1 producer, partition 0 moves to a set that takes in
 *   broker 4 and leaves out its current leader: afterwards the replicas and ISR are the
 *   target, broker 4 leads, its log is byte-identical to the other replicas', the old leader
 *   is out of both (its copy emptied), and every acknowledged value is read exactly once, in order.
 * - Requests the controller cannot take are refused with what to fix (an unregistered broker,
 *   an unknown topic, a second target while one is in progress).
 * - A move waiting for a replica that cannot catch up (broker 4 frozen with SIGSTOP) is
 *   listed in progress, survives a controller change (the controller stopped), and the new
 *   controller completes it once broker 4 runs again.
 * - Kafka's AlterPartitionReassignments and ListPartitionReassignments through
 *   @platformatic/kafka: refusals per partition, a move listed in progress with KIP-455's
 *   adding and removing sets, then the target in Metadata and byte-identical logs.
 * - A removed replica's copy is emptied, live and (a broker down during the move) at start-up.
 *
 * Leases are 6 s (the config default is 3 s) so that a frozen broker stays registered long enough
 * for the request naming it to be accepted.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { alterPartitionReassignmentsV0, Connection, listPartitionReassignmentsV0 } from '@platformatic/kafka';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { TestCluster, waitFor } from '../helpers/cluster.js';
import { meridian, meridianJson } from '../helpers/cli-run.js';
import { kcat } from '../helpers/kcat.js';
import { assertContiguous } from '../helpers/kcat-client.js';
import { parseKcatJson } from '../helpers/kcat-json.js';
import { platformaticAnswer } from '../helpers/platformatic-answer.js';

let cluster: TestCluster;
const TOPIC = 'moves';

before(async () => {
  cluster = await TestCluster.start({ brokers: 4, leaseTtlMs: 6000, minInsyncReplicas: 1 });
  const admin = new Kafka({ clientId: 'reassign-admin', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic: TOPIC, replicaAssignment: [{ partition: 0, replicas: [1, 2, 3] }, { partition: 1, replicas: [2, 3, 1] }], configEntries: [{ name: 'min.insync.replicas', value: '2' }] }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
});

after(async () => {
  await cluster?.close();
});

function adminOf(nodeId: number): string {
  return `127.0.0.1:${cluster.node(nodeId).adminPort}`;
}

/** KafkaJS, idempotent, acks -1, to one partition until stopped; records what was acknowledged. */
function producer(partition: number) {
  const acked: string[] = [];
  const failed: string[] = [];
  let n = 0;
  let stopping = false;
  const kafka = new Kafka({ clientId: 'reassign-producer', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING, retry: { retries: 60, initialRetryTime: 100, maxRetryTime: 1000 } });
  const fresh = () => kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const done = (async () => {
    let p: Producer = fresh();
    await p.connect();
    while (!stopping) {
      const values = [`v-${n++}`, `v-${n++}`];
      try {
        await p.send({ topic: TOPIC, acks: -1, messages: values.map((value) => ({ value, partition })) });
        acked.push(...values);
      } catch (err) {
        failed.push(`${values.join(',')}: ${String(err)}`);
        await p.disconnect().catch(() => {});
        p = fresh();
        await p.connect();
      }
    }
    await p.disconnect();
  })();
  return { acked, failed, stop: async () => ((stopping = true), await done) };
}

/** Waits until broker `nodeId`'s copy of the partition holds no records: no batch, no byte in a segment file. */
async function waitCopyEmptied(nodeId: number, topic: string, partition: number): Promise<void> {
  const dir = path.join(cluster.node(nodeId).dataDir, 'logs', `${topic}-${partition}`);
  let seen = '';
  await waitFor(
    `broker ${nodeId}'s copy of ${topic}-${partition} to be emptied`,
    async () => {
      const batches = await cluster.node(nodeId).readLog(topic, partition);
      const segments = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.log')) : [];
      const bytes = segments.reduce((sum, f) => sum + fs.statSync(path.join(dir, f)).size, 0);
      seen = `${batches.length} batches, ${segments.length} segment files of ${bytes} bytes`;
      return batches.length === 0 && bytes === 0;
    },
    30_000,
    100,
    () => `(it holds ${seen})`,
  );
}

function sameSet(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

test('reassign under acks=all produce: broker 4 in, the leader out; logs byte-identical, every acknowledged value read once in order', async (t) => {
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  const before = await cluster.partition(TOPIC, 0, (v) => v.isr.length === 3);
  assert.deepEqual([...before.replicas], [1, 2, 3]);
  const old = before.leader;
  const target = [4, ...[1, 2, 3].filter((id) => id !== old)];
  const p = producer(0);
  try {
    await waitFor('acknowledged values before the move', () => p.acked.length >= 60, 30_000, 20);
    // Through a broker that is not necessarily the controller: the request goes through etcd.
    const asked = p.acked.length;
    mark(`${asked} acknowledged; reassigning`);
    const r = await meridian(['partitions', 'reassign', '--topic', TOPIC, '--partition', '0', '--replicas', target.join(','), '--admin', adminOf(target[1]!), '--timeout', '60']);
    assert.equal(r.code, 0, `meridian partitions reassign exited ${r.code}:\n${r.stderr}${r.stdout}`);
    t.diagnostic(`CLI progress:\n${r.stderr}`);
    assert.match(r.stderr, /reassignment requested: \[1,2,3\] -> \[/);
    assert.match(r.stderr, /reassignment complete/);
    assert.match(r.stdout, new RegExp(`replicas \\[${target.join(',')}\\] leader 4 `));
    assert.ok(p.acked.length > asked, 'the producer was acknowledged while the partition moved');
    const atEnd = p.acked.length;
    mark(`moved (${atEnd} acknowledged)`);
    await waitFor('acknowledged values after the move', () => p.acked.length >= atEnd + 40, 30_000, 20);
  } finally {
    await p.stop();
  }
  assert.deepEqual(p.failed, [], 'KafkaJS never gave up on a send');
  mark('producer stopped');

  const state = await cluster.partition(TOPIC, 0, (v) => v.isr.length === 3);
  assert.deepEqual([...state.replicas], target, 'the replicas are the target, in its order');
  assert.ok(sameSet(state.isr, target), `the ISR [${state.isr.join(', ')}] is the target`);
  assert.equal(state.leader, 4, 'the first of the target leads');
  assert.ok(!state.replicas.includes(old) && !state.isr.includes(old), `the old leader ${old} is out of the replicas and the ISR`);
  const batches = await cluster.waitLogsIdentical(TOPIC, 0, target);
  assert.ok(batches.length > 0);
  // The removed replica's local copy is emptied once etcd no longer lists it (no disk leak).
  await waitCopyEmptied(old, TOPIC, 0);

  mark('logs identical');
  const read = await kcat(['-b', cluster.bootstrap.join(','), '-C', '-J', '-t', TOPIC, '-p', '0', '-o', 'beginning', '-e'], undefined, 30_000);
  assert.equal(read.code, 0, `kcat -C exited ${read.code}: ${read.stderr.slice(-2000)}`);
  mark('read by kcat');
  const messages = parseKcatJson(read.stdout);
  assertContiguous(messages);
  assert.equal(BigInt(messages.length), batches[batches.length - 1]!.lastOffset + 1n, 'kcat reads the whole log');
  const values = messages.map((m) => m.payload!.toString());
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  assert.deepEqual([...counts].filter(([, c]) => c > 1), [], 'no value is stored twice');
  assert.deepEqual(p.acked.filter((v) => !counts.has(v)), [], `every acknowledged value (${p.acked.length}) is read`);
  const seq = values.map((v) => Number(v.slice(2)));
  assert.equal(seq.findIndex((x, i) => i > 0 && x <= seq[i - 1]!), -1, 'values are read in the order produced');
  t.diagnostic(`${messages.length} records in ${batches.length} batches; ${p.acked.length} acknowledged; replicas [${state.replicas.join(', ')}]`);

  assert.deepEqual(await meridianJson(['partitions', 'list-reassignments', '--admin', adminOf(1)]), [], 'nothing left in progress');
});

test('requests the controller cannot take are refused with what to fix', async () => {
  const post = (body: unknown) => fetch(`http://${adminOf(1)}/v1/partitions/reassign`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const unknownBroker = await post({ topic: TOPIC, partition: 1, replicas: [2, 9] });
  assert.equal(unknownBroker.status, 400);
  const body = (await unknownBroker.json()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, 'INVALID_REPLICA_ASSIGNMENT');
  assert.match(body.error.message, /broker 9 is not registered/);
  assert.equal((await post({ topic: 'no-such-topic', partition: 0, replicas: [1] })).status, 404);
  assert.equal((await post({ topic: TOPIC, partition: 7, replicas: [1] })).status, 404);
  const twice = await meridian(['partitions', 'reassign', '--topic', TOPIC, '--partition', '1', '--replicas', '1,1', '--admin', adminOf(1)]);
  assert.equal(twice.code, 2, 'a broker named twice is a usage error');
  const cli = await meridian(['partitions', 'reassign', '--topic', TOPIC, '--partition', '1', '--replicas', '2,9', '--admin', adminOf(1)]);
  assert.equal(cli.code, 1);
  assert.match(cli.stderr, /INVALID_REPLICA_ASSIGNMENT: .*broker 9 is not registered/);
  assert.deepEqual(await meridianJson(['partitions', 'list-reassignments', '--admin', adminOf(1)]), [], 'a refused request leaves nothing');
});

test('a move waiting for a frozen replica survives a controller change and completes when it runs again', async (t) => {
  const b4 = cluster.node(4);
  const before = await cluster.partition(TOPIC, 1, (v) => v.isr.length === 3);
  const target = [...before.replicas.filter((id) => id !== before.replicas[2]), 4];
  // Broker 4 is to be frozen: if it is the controller, hand the controllership on first.
  if ((await cluster.node(1).metadata([])).controllerId === 4) {
    await b4.stop();
    await b4.start();
    await cluster.waitMembers([1, 2, 3, 4]);
  }
  // A second topic, for a move that will be cancelled.
  const admin = new Kafka({ clientId: 'reassign-admin', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic: 'moves-cancel', replicaAssignment: [{ partition: 0, replicas: [1, 2] }] }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  const original = [1, 2];
  await cluster.partition('moves-cancel', 0, (v) => v.isr.length === 2);
  let c = cluster.node(1);
  let others: number[] = [];
  const ask = (admin: string, topic: string, partition: number, replicas: number[]) =>
    fetch(`http://${admin}/v1/partitions/reassign`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic, partition, replicas }) });
  // Frozen, it stays registered until its 6 s lease runs out: both moves naming it are asked
  // at once (HTTP, not a CLI process whose start-up a loaded machine can stretch past that).
  process.kill(b4.pid!, 'SIGSTOP');
  try {
    const [r, r2] = await Promise.all([ask(adminOf(1), TOPIC, 1, target), ask(adminOf(3), 'moves-cancel', 0, [1, 2, 4])]);
    assert.equal(r.status, 202, await r.text());
    assert.equal(r2.status, 202, await r2.text());
    const again = await fetch(`http://${adminOf(2)}/v1/partitions/reassign`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ topic: TOPIC, partition: 1, replicas: [1, 2, 3].reverse() }) });
    assert.equal(again.status, 409, 'another target while one is in progress');
    assert.equal(((await again.json()) as { error: { code: string } }).error.code, 'REASSIGNMENT_IN_PROGRESS');

    // The controller adds broker 4 to the replicas; the move then waits for it.
    await waitFor(
      'the reassignment listed with broker 4 added and not in sync',
      async () => {
        const list = (await (await fetch(`http://${adminOf(2)}/v1/partitions/reassign`)).json()) as Array<{ topic: string; partition: number; replicas: number[]; reassignment: { adding: number[]; waitingFor: number[] } }>;
        const e = list.find((x) => x.topic === TOPIC && x.partition === 1);
        return e !== undefined && e.replicas.includes(4) && e.reassignment.adding.length === 0 && e.reassignment.waitingFor.join(',') === '4';
      },
      20_000,
      100,
    );
    // The second move, waiting on broker 4 too, cancelled: the partition goes back at once.
    const cancelled = await meridian(['partitions', 'cancel-reassignment', '--topic', 'moves-cancel', '--partition', '0', '--admin', adminOf(1)]);
    assert.equal(cancelled.code, 0, `cancel-reassignment exited ${cancelled.code}:\n${cancelled.stderr}`);
    assert.match(cancelled.stdout, new RegExp(`replicas \\[${original.join(',')}\\] `), 'back to the original replicas');
    const again2 = await meridian(['partitions', 'cancel-reassignment', '--topic', 'moves-cancel', '--partition', '0', '--admin', adminOf(1)]);
    assert.equal(again2.code, 1);
    assert.match(again2.stderr, /NO_REASSIGNMENT_IN_PROGRESS/);

    const table = await meridian(['partitions', 'list-reassignments', '--admin', adminOf(2)]);
    assert.equal(table.code, 0);
    assert.match(table.stdout, new RegExp(`${TOPIC}\\s+1\\s+.*\\[${target.join(',')}\\]`));

    // The controller stops (a clean stop resigns at once); another one takes over.
    const controllerId = (await cluster.node(1).metadata([])).controllerId;
    assert.ok(controllerId >= 1 && controllerId <= 3, `controller ${controllerId}`);
    c = cluster.node(controllerId);
    await c.stop();
    others = [1, 2, 3].filter((id) => id !== controllerId);
    await waitFor(
      'a new controller',
      async () => {
        const m = await cluster.node(others[0]!).metadata([]);
        return m.controllerId !== controllerId && m.controllerId !== -1 && others.includes(m.controllerId);
      },
      30_000,
      100,
    );
    t.diagnostic(`controller ${controllerId} stopped; broker 4 resumes`);
    process.kill(b4.pid!, 'SIGCONT');
  } finally {
    if (b4.running) process.kill(b4.pid!, 'SIGCONT');
  }
  // The stopped controller comes back meanwhile (it may be one of the target replicas).
  const asker = others[0]!;
  await Promise.all([
    c.start(),
    waitFor(
      'the reassignment to complete',
      async () => ((await (await fetch(`http://${adminOf(asker)}/v1/partitions/reassign`)).json()) as unknown[]).length === 0,
      60_000,
      200,
    ),
  ]);
  const state = await cluster.partition(TOPIC, 1, (v) => v.replicas.join(',') === target.join(','));
  assert.deepEqual([...state.replicas], target);
  assert.ok(state.isr.every((id) => target.includes(id)), `the ISR [${state.isr.join(', ')}] is within the target`);
  const described = await meridianJson<{ replicas: number[]; reassignment: unknown }>(['partitions', 'describe', '--topic', TOPIC, '--partition', '1', '--admin', adminOf(4)]);
  assert.deepEqual(described.replicas, target);
  assert.equal(described.reassignment, null);
});


test('Kafka AlterPartitionReassignments and ListPartitionReassignments (@platformatic/kafka): move with records, listed in progress, replicas in Metadata, logs byte-identical, removed copies emptied (one while its broker was down)', async (t) => {
  // Four brokers: the controller keeps out of it; of the others, `frozen` is the new replica
  // (held with SIGSTOP so the move is listed in progress), `gone` leaves the partition while
  // it is stopped, `stays` stays.
  const controllerId = (await cluster.node(1).metadata([])).controllerId;
  const [gone, stays, frozen] = [1, 2, 3, 4].filter((id) => id !== controllerId) as [number, number, number];
  const topic = 'moves-kafka';
  const admin = new Kafka({ clientId: 'reassign-admin', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, replicaAssignment: [{ partition: 0, replicas: [gone, stays] }] }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  await cluster.partition(topic, 0, (v) => v.isr.length === 2);
  const values = Array.from({ length: 3000 }, (_, i) => `r-${i}-${'x'.repeat(i % 97)}`);
  const produced = await kcat(['-P', '-b', cluster.bootstrap.join(','), '-t', topic, '-p', '0', '-X', 'acks=all', '-X', 'enable.idempotence=true', '-X', 'batch.num.messages=100'], values.join('\n') + '\n', 30_000);
  assert.equal(produced.code, 0, `kcat -P exited ${produced.code}: ${produced.stderr.slice(-2000)}`);
  const original = await cluster.waitLogsIdentical(topic, 0, [gone, stays]);

  const conn = new Connection('reassign-kafka');
  await conn.connect('127.0.0.1', cluster.node(stays).port);
  // platformatic types replicas as number[] but writes null as Kafka's null array (a cancellation).
  const alter = (topics: Array<{ name: string; partitions: Array<{ partitionIndex: number; replicas: number[] | null }> }>) => platformaticAnswer(alterPartitionReassignmentsV0.api.async(conn, 10_000, false, topics as never));
  const list = (topics: Array<{ name: string; partitionIndexes: number[] }> | null) => platformaticAnswer(listPartitionReassignmentsV0.api.async(conn, 10_000, topics as never));
  const codes = (r: Awaited<ReturnType<typeof alter>>) => Object.fromEntries(r.responses.flatMap((x) => x.partitions.map((p) => [`${x.name}-${p.partitionIndex}`, p.errorCode])));
  const target = [stays, frozen];
  try {
    // Refusals, each per partition in one request, and nothing asked: nothing listed.
    const refused = await alter([
      { name: topic, partitions: [{ partitionIndex: 0, replicas: null }, { partitionIndex: 7, replicas: [stays] }] },
      { name: 'no-such-topic', partitions: [{ partitionIndex: 0, replicas: [stays] }] },
      { name: TOPIC, partitions: [{ partitionIndex: 0, replicas: [2, 9] }, { partitionIndex: 1, replicas: [2, 2] }] },
    ]);
    assert.equal(refused.errorCode, 0);
    assert.deepEqual(codes(refused), { [`${topic}-0`]: 85, [`${topic}-7`]: 3, 'no-such-topic-0': 3, [`${TOPIC}-0`]: 39, [`${TOPIC}-1`]: 39 }, 'NO_REASSIGNMENT_IN_PROGRESS, UNKNOWN_TOPIC_OR_PARTITION, INVALID_REPLICA_ASSIGNMENT');
    assert.match(refused.responses[2]!.partitions[0]!.errorMessage ?? '', /broker 9 is not registered/);
    assert.deepEqual((await list(null)).topics, []);

    await cluster.node(gone).stop();
    process.kill(cluster.node(frozen).pid!, 'SIGSTOP');
    try {
      const asked = await alter([{ name: topic, partitions: [{ partitionIndex: 0, replicas: target }] }]);
      assert.deepEqual(codes(asked), { [`${topic}-0`]: 0 });
      assert.deepEqual(codes(await alter([{ name: topic, partitions: [{ partitionIndex: 0, replicas: target }] }])), { [`${topic}-0`]: 0 }, 'the same target again is a retry');
      assert.deepEqual(codes(await alter([{ name: topic, partitions: [{ partitionIndex: 0, replicas: [frozen, stays] }] }])), { [`${topic}-0`]: 60 }, 'another target: REASSIGNMENT_IN_PROGRESS');
      // In progress: the controller adds the frozen broker, then waits for it to catch up.
      const listed = await waitFor(
        'the move listed with the new replica added',
        async () => {
          const r = await list([{ name: topic, partitionIndexes: [0] }]);
          const p = r.topics.find((x) => x.name === topic)?.partitions[0];
          return p !== undefined && p.replicas.includes(frozen) ? { r, p } : false;
        },
        20_000,
        50,
      );
      assert.equal(listed.r.errorCode, 0);
      assert.deepEqual(listed.p, { partitionIndex: 0, replicas: [stays, frozen, gone], addingReplicas: [frozen], removingReplicas: [gone] });
      assert.deepEqual((await list(null)).topics.map((x) => x.name), [topic], 'listing everything: this move only');
      assert.deepEqual((await list([{ name: TOPIC, partitionIndexes: [0, 1] }, { name: 'no-such-topic', partitionIndexes: [0] }])).topics, [], 'partitions not being reassigned are left out');
    } finally {
      process.kill(cluster.node(frozen).pid!, 'SIGCONT');
    }
    await waitFor('the move to complete', async () => (await list(null)).topics.length === 0, 60_000, 100);
  } finally {
    await conn.close();
  }
  const state = await cluster.partition(topic, 0, (v) => v.replicas.join(',') === target.join(',') && v.isr.length === 2);
  assert.equal(state.leader, stays, 'the first of the target leads');
  const moved = await cluster.waitLogsIdentical(topic, 0, target);
  assert.equal(moved.length, original.length);
  assert.ok(moved.every((b, i) => b.bytes.equals(original[i]!.bytes)), 'the new replicas hold the records byte for byte as the original replicas did');
  const read = await kcat(['-b', cluster.bootstrap.join(','), '-C', '-J', '-t', topic, '-p', '0', '-o', 'beginning', '-e'], undefined, 30_000);
  assert.equal(read.code, 0, read.stderr.slice(-2000));
  assert.deepEqual(parseKcatJson(read.stdout).map((m) => m.payload!.toString()), values, 'every record read once, in order');

  // The broker that was down while it was removed empties its copy when it starts.
  assert.ok((await cluster.node(gone).readLog(topic, 0)).length > 0, 'its copy is still there while it is down');
  await cluster.node(gone).start();
  await waitCopyEmptied(gone, topic, 0);
  await cluster.waitMembers([1, 2, 3, 4]);
  t.diagnostic(`${values.length} records in ${moved.length} batches moved from [${gone}, ${stays}] to [${target.join(', ')}]`);
});
