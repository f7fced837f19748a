/**
 * The in-sync replica set of a three-broker region on a real etcd (issue 16), end to end
 * (test/helpers/cluster.ts: every broker a `meridian broker --config FILE` process):
 * - a follower killed with SIGKILL leaves the ISR, and once restarted catches up (its log
 *   byte-identical to the leader's) and rejoins it, as Metadata shows;
 * - with min.insync.replicas 2 and two brokers down, an acks=all KafkaJS producer and kcat
 *   both get NOT_ENOUGH_REPLICAS, and nothing they sent then is readable once the brokers
 *   are back;
 * - a follower down while every record it holds was deleted (DeleteRecords to the high
 *   watermark) starts its log over at the leader's log start and rejoins the ISR.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { TestCluster } from '../helpers/cluster.js';
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

async function createTopic(topic: string): Promise<void> {
  const admin = new Kafka({ clientId: 'isr-admin', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 3, configEntries: [{ name: 'min.insync.replicas', value: '2' }] }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
  await cluster.partition(topic, 0, (v) => v.replicas.length === 3 && v.isr.length === 3);
}

function producerOf(retries: number) {
  return new Kafka({ clientId: 'isr-producer', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING, retry: { retries, initialRetryTime: 100, maxRetryTime: 500 } }).producer({ idempotent: false });
}

async function readAll(topic: string): Promise<string[]> {
  const r = await kcat(['-b', cluster.bootstrap.join(','), '-C', '-J', '-t', topic, '-p', '0', '-o', 'beginning', '-e'], undefined, 30_000);
  assert.equal(r.code, 0, `kcat -C exited ${r.code}: ${r.stderr.slice(-2000)}`);
  const messages = parseKcatJson(r.stdout);
  assertContiguous(messages);
  return messages.map((m) => m.payload!.toString());
}

/** KafkaJS wraps a broker's error (retries exceeded, aggregate); the error type of the root. */
function kafkaErrorTypes(err: unknown): string[] {
  const types: string[] = [];
  const seen = new Set<unknown>();
  const walk = (e: any) => {
    if (e === null || e === undefined || typeof e !== 'object' || seen.has(e)) return;
    seen.add(e);
    if (typeof e.type === 'string') types.push(e.type);
    walk(e.cause);
    walk(e.originalError);
    if (Array.isArray(e.errors)) for (const x of e.errors) walk(x);
  };
  walk(err);
  return types;
}

test('a follower killed with SIGKILL leaves the ISR, and after a restart catches up and rejoins it', async () => {
  const topic = 'isr-rejoin';
  await createTopic(topic);
  const producer = producerOf(20);
  await producer.connect();
  try {
    const send = (values: string[]) => producer.send({ topic, acks: -1, messages: values.map((value) => ({ value, partition: 0 })) });
    await send(Array.from({ length: 50 }, (_, i) => `before-${i}`));
    const state = await cluster.partition(topic, 0, (v) => v.isr.length === 3);
    const follower = cluster.node(state.replicas.find((r) => r !== state.leader)!);
    await follower.kill9();
    const shrunk = await cluster.partition(topic, 0, (v) => !v.isr.includes(follower.nodeId));
    assert.equal(shrunk.leader, state.leader, 'losing a follower does not move the leader');
    assert.equal(shrunk.isr.length, 2);
    // acks=all goes on with two in-sync replicas; the stopped follower misses these.
    for (let i = 0; i < 10; i++) await send(Array.from({ length: 20 }, (_, j) => `while-down-${i * 20 + j}`));
    await follower.start();
    await cluster.waitMembers([1, 2, 3]);
    const rejoined = await cluster.partition(topic, 0, (v) => v.isr.length === 3 && v.isr.includes(follower.nodeId));
    assert.deepEqual([...rejoined.isr].sort(), [1, 2, 3]);
    const batches = await cluster.waitLogsIdentical(topic, 0, [rejoined.leader, follower.nodeId]);
    assert.equal(batches[batches.length - 1]!.lastOffset, 249n, 'the rejoined follower holds all 250 records');
    const values = await readAll(topic);
    assert.deepEqual(values, [...Array.from({ length: 50 }, (_, i) => `before-${i}`), ...Array.from({ length: 200 }, (_, i) => `while-down-${i}`)]);
  } finally {
    await producer.disconnect();
  }
});

test('min.insync.replicas 2 with two brokers down: acks=all gets NOT_ENOUGH_REPLICAS and nothing sent is readable after they return', async () => {
  const topic = 'isr-not-enough';
  await createTopic(topic);
  const producer = producerOf(2);
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, messages: [{ value: 'ok-1', partition: 0 }, { value: 'ok-2', partition: 0 }] });
    const state = await cluster.partition(topic, 0, (v) => v.isr.length === 3);
    const followers = state.replicas.filter((r) => r !== state.leader);
    for (const id of followers) await cluster.node(id).kill9();
    await cluster.partition(topic, 0, (v) => v.leader === state.leader && v.isr.length === 1);

    const err = await producer.send({ topic, acks: -1, messages: [{ value: 'refused-1', partition: 0 }, { value: 'refused-2', partition: 0 }] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err !== undefined, 'acks=all with an ISR of one under min.insync.replicas 2 must fail');
    assert.ok(kafkaErrorTypes(err).includes('NOT_ENOUGH_REPLICAS'), `KafkaJS error types: ${kafkaErrorTypes(err).join(', ')} (${String(err)})`);
    // librdkafka (kcat), acks=all without retries: the same refusal, named.
    const leader = cluster.node(state.leader);
    const refused = await kcat(['-P', '-b', `127.0.0.1:${leader.port}`, '-t', topic, '-p', '0', '-X', 'acks=all', '-X', 'message.send.max.retries=0'], Buffer.from('refused-kcat\n'));
    assert.match(refused.stderr, /Not enough in-sync replicas|NOT_ENOUGH_REPLICAS/i, `kcat's delivery report names the refusal (exit ${refused.code}): ${refused.stderr}`);

    for (const id of followers) await cluster.node(id).start();
    await cluster.waitMembers([1, 2, 3]);
    await cluster.partition(topic, 0, (v) => v.isr.length === 3);
    const values = await readAll(topic);
    assert.deepEqual(values, ['ok-1', 'ok-2'], 'nothing the refused produce sent was written');
    await cluster.waitLogsIdentical(topic, 0, [1, 2, 3]);
  } finally {
    await producer.disconnect();
  }
});

test('a follower whose whole log lies below the leader\'s log start (records deleted while it was down) starts over there and rejoins the ISR', async () => {
  const topic = 'isr-reset';
  await createTopic(topic);
  const producer = producerOf(20);
  const kafka = new Kafka({ clientId: 'isr-trim', brokers: cluster.bootstrap, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await producer.connect();
  await admin.connect();
  try {
    const send = (values: string[]) => producer.send({ topic, acks: -1, messages: values.map((value) => ({ value, partition: 0 })) });
    await send(Array.from({ length: 30 }, (_, i) => `old-${i}`));
    const state = await cluster.partition(topic, 0, (v) => v.isr.length === 3);
    const follower = cluster.node(state.replicas.find((r) => r !== state.leader)!);
    await follower.kill9();
    await cluster.partition(topic, 0, (v) => !v.isr.includes(follower.nodeId));
    await send(Array.from({ length: 20 }, (_, i) => `gone-${i}`));
    // Everything up to the high watermark deleted: the follower's log (0..29) is now wholly
    // below the leader's log start (50).
    await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '-1' }] });
    await send(Array.from({ length: 10 }, (_, i) => `kept-${i}`));
    await follower.start();
    await cluster.waitMembers([1, 2, 3]);
    const rejoined = await cluster.partition(topic, 0, (v) => v.isr.length === 3);
    assert.deepEqual([...rejoined.isr].sort(), [1, 2, 3], 'the follower caught up from the leader\'s log start');
    // From the log start on, the follower holds the leader's batches byte for byte, and nothing below it.
    const from50 = (bs: Awaited<ReturnType<typeof cluster.waitLogsIdentical>>) => bs.filter((b) => b.baseOffset >= 50n);
    const leaderLog = from50(await cluster.node(rejoined.leader).readLog(topic, 0));
    const followerAll = await follower.readLog(topic, 0);
    assert.ok(followerAll.every((b) => b.baseOffset >= 50n), 'the follower kept none of the deleted records');
    assert.deepEqual(followerAll.map((b) => b.bytes.toString('hex')), leaderLog.map((b) => b.bytes.toString('hex')));
    const r = await kcat(['-b', cluster.bootstrap.join(','), '-C', '-J', '-t', topic, '-p', '0', '-o', 'beginning', '-e'], undefined, 30_000);
    assert.equal(r.code, 0, r.stderr.slice(-2000));
    const read = parseKcatJson(r.stdout);
    assert.deepEqual(read.map((m) => [Number(m.offset), m.payload!.toString()]), Array.from({ length: 10 }, (_, i) => [50 + i, `kept-${i}`]), 'only what was kept, at its offsets');
  } finally {
    await admin.disconnect();
    await producer.disconnect();
  }
});
