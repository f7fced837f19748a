/**
 * `meridian dr` against one running region, eu-west, which holds read-only copies under a
 * one-way policy from us-east, a region that never runs (its address refuses connections):
 * the situation DR is for. Status shows the copy and its primary; promote makes eu-west the
 * primary and reports a recovery point it cannot count (us-east never reported its ends) —
 * and says so; promote again prints the same saved report; refusals (an unknown topic,
 * another region's scope, a failback whose new primary cannot be reached, a group nobody
 * committed) exit 1 with the broker's code and message, and bad usage exits 2.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import type { BrokerConfigInput } from '../../src/config/schema.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { meridian, meridianJson } from '../helpers/cli-run.js';
import { freePort } from '../helpers/regions.js';
import { waitFor } from '../helpers/wait.js';

const TOPIC = 'dr-orders';
let tb: TestBroker;
let admin: string;
/** us-east's Kafka address: a free port nothing listens on. */
let usEast: string;

before(async () => {
  const [kafkaPort, adminPort, downPort] = await Promise.all([freePort(), freePort(), freePort()]);
  admin = `127.0.0.1:${adminPort}`;
  usEast = `127.0.0.1:${downPort}`;
  const regions = [
    { name: 'us-east', address: usEast, admin: `127.0.0.1:${await freePort()}` },
    { name: 'eu-west', address: `127.0.0.1:${kafkaPort}`, admin },
  ];
  tb = await startBroker({
    region: 'eu-west',
    kafka: { host: '127.0.0.1', port: kafkaPort },
    admin: { host: '127.0.0.1', port: adminPort },
    replication: {
      regions,
      policies: [{ name: 'dr', topics: 'dr-*', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
      retry: { initialMs: 50, maxMs: 1000 },
      requestTimeoutMs: 2000,
    } as BrokerConfigInput['replication'],
  });
  const kadmin = new Kafka({ clientId: 'cli-dr', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING }).admin();
  await kadmin.connect();
  try {
    await kadmin.createTopics({ topics: [{ topic: TOPIC, numPartitions: 2 }] });
  } finally {
    await kadmin.disconnect();
  }
});

after(async () => {
  await tb?.cleanup();
});

test('dr status shows the topic as a read-only copy whose primary is us-east', async () => {
  const s = await meridianJson(['dr', 'status', '--admin', admin]);
  assert.equal(s.region, 'eu-west');
  const t = s.topics.find((x: { topic: string }) => x.topic === TOPIC);
  assert.deepEqual([t.policy, t.topology, t.primary, t.epoch, t.readOnly, t.phase], ['dr', 'one-way', 'us-east', 0, true, 'policy']);

  const human = await meridian(['dr', 'status', '--admin', admin]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^TOPIC\s+POLICY\s+TOPOLOGY\s+ROLE\s+PRIMARY\s+EPOCH\s+PHASE/m);
  assert.match(human.stdout, new RegExp(`^${TOPIC}\\s+dr\\s+one-way\\s+read-only\\s+us-east\\s+0\\s+policy\\s`, 'm'));
  assert.match(human.stdout, /no group conflicts/);
});

test('dr promote --topic makes eu-west the primary at epoch 1 and reports a recovery point it cannot count, saying why', async () => {
  const r = await meridian(['dr', 'promote', '--topic', TOPIC, '--admin', admin]);
  assert.equal(r.code, 0, r.stderr);
  const id = `promote-${TOPIC}-e1`;
  assert.match(r.stdout, new RegExp(`^${TOPIC}: eu-west is now the primary \\(epoch 1, was us-east`, 'm'));
  assert.match(r.stdout, new RegExp(`^report ${id}\\s`, 'm'));
  assert.match(r.stdout, /^PARTITION\s+LAST-HELD\s+ORIGIN-END\s+END-AGE\s+MISSING-RECORDS\s+MISSING-SECONDS$/m);
  // Both partitions: nothing of us-east's held, its end never reported: unknown, not a number.
  for (const p of [0, 1]) assert.match(r.stdout, new RegExp(`^\\s*${p}\\s+none\\s+unknown\\s+-\\s+unknown\\s+unknown$`, 'm'));
  assert.match(r.stdout, /missing records: unknown for every partition: us-east never reported its end offsets to eu-west/);
  assert.doesNotMatch(r.stdout, /missing records: \d/);

  const s = await meridianJson(['dr', 'status', '--admin', admin]);
  const t = s.topics.find((x: { topic: string }) => x.topic === TOPIC);
  assert.deepEqual([t.primary, t.epoch, t.readOnly, t.phase, t.reportId], ['eu-west', 1, false, 'promoted', id]);
  const human = await meridian(['dr', 'status', '--admin', admin]);
  assert.match(human.stdout, new RegExp(`^${TOPIC}\\s+dr\\s+one-way\\s+primary\\s+eu-west\\s+1\\s+promoted\\s+\\S+\\s+${id}$`, 'm'));

  // Producers are accepted now.
  const producer = new Kafka({ clientId: 'cli-dr', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  try {
    await producer.send({ topic: TOPIC, messages: [{ partition: 0, value: 'after the promote' }] });
  } finally {
    await producer.disconnect();
  }
});

test('dr promote --topic again prints the same saved report (idempotent); --json is the API body', async () => {
  const again = await meridian(['dr', 'promote', '--topic', TOPIC, '--admin', admin]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /was already promoted to primary \(epoch 1/);
  assert.match(again.stdout, new RegExp(`^report promote-${TOPIC}-e1\\s`, 'm'));

  const json = await meridianJson(['dr', 'promote', '--topic', TOPIC, '--admin', admin]);
  assert.equal(json.region, 'eu-west');
  assert.equal(json.reports.length, 1);
  const [rep] = json.reports;
  assert.deepEqual([rep.kind, rep.id, rep.topic, rep.formerPrimary, rep.epoch, rep.totals.missingRecords], ['promote', `promote-${TOPIC}-e1`, TOPIC, 'us-east', 1, null]);
  assert.equal((await meridianJson(['dr', 'status', '--admin', admin])).topics.find((x: { topic: string }) => x.topic === TOPIC).epoch, 1, 'still epoch 1');
});

test('dr promote refusals: an unknown topic, another region, and bad usage', async () => {
  const nope = await meridian(['dr', 'promote', '--topic', 'nope', '--admin', admin]);
  assert.equal(nope.code, 1);
  assert.match(nope.stderr, /UNKNOWN_TOPIC: topic nope does not exist in region eu-west/);
  assert.equal(nope.stdout, '');

  const other = await meridian(['dr', 'promote', '--region', 'us-east', '--admin', admin]);
  assert.equal(other.code, 1);
  assert.match(other.stderr, /INVALID_DR_REQUEST: this is region eu-west: promote us-east against its own admin API/);

  const two = await meridian(['dr', 'promote', '--topic', TOPIC, '--policy', 'dr', '--admin', admin]);
  assert.equal(two.code, 2);
  assert.match(two.stderr, /name exactly one of --topic T, --policy P or --region R/);
  const none = await meridian(['dr', 'failback', '--admin', admin]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /missing --topic T/);
  const confirm = await meridian(['dr', 'promote', '--topic', TOPIC, '--confirm', '--admin', admin]);
  assert.equal(confirm.code, 2);
});

test('dr failback with the other region unreachable exits 1 saying so, and changes nothing', async () => {
  const r = await meridian(['dr', 'failback', '--topic', TOPIC, '--admin', admin]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stderr, /INVALID_DR_REQUEST: failback of dr-orders needs the new primary: cannot reach us-east/);
  assert.match(r.stderr, /nothing was changed/);
  const confirmed = await meridian(['dr', 'failback', '--topic', TOPIC, '--confirm', '--admin', admin]);
  assert.equal(confirmed.code, 1);
  assert.match(confirmed.stderr, /cannot reach us-east.*nothing was changed/);
  const t = (await meridianJson(['dr', 'status', '--admin', admin])).topics.find((x: { topic: string }) => x.topic === TOPIC);
  assert.deepEqual([t.primary, t.epoch, t.phase], ['eu-west', 1, 'promoted']);
});

test('dr report lists the promote report and shows it; an unknown id is DR_NOT_FOUND', async () => {
  const id = `promote-${TOPIC}-e1`;
  const list = await meridianJson(['dr', 'report', '--admin', admin]);
  assert.deepEqual(list.map((r: { id: string; kind: string; topic: string }) => [r.id, r.kind, r.topic]), [[id, 'promote', TOPIC]]);
  const human = await meridian(['dr', 'report', '--admin', admin]);
  assert.equal(human.code, 0);
  assert.match(human.stdout, new RegExp(`^${id}\\s+promote\\s+${TOPIC}\\s`, 'm'));

  const one = await meridian(['dr', 'report', id, '--admin', admin]);
  assert.equal(one.code, 0, one.stderr);
  assert.match(one.stdout, /promoted in eu-west to epoch 1, replacing us-east/);
  assert.match(one.stdout, /missing records: unknown/);

  const missing = await meridian(['dr', 'report', 'promote-nope-e9', '--admin', admin]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /DR_NOT_FOUND: no DR report promote-nope-e9/);
});

test('dr group for a group that never committed anywhere exits 1 with DR_NOT_FOUND', async () => {
  const r = await meridian(['dr', 'group', 'nobody', '--admin', admin]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /DR_NOT_FOUND: group nobody has no committed offsets in region eu-west/);
  assert.deepEqual(await meridianJson(['dr', 'group', '--admin', admin]), []);
});

test('dr against an address where nothing answers exits 3', async () => {
  const r = await meridian(['dr', 'status', '--admin', `127.0.0.1:${await freePort()}`]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /cannot reach the admin API/);
});

test('dr failback of a returning old primary: the dry run lists the divergent tail and changes nothing; --confirm preserves it in the side topic', async () => {
  const names = ['us-east', 'eu-west'] as const;
  const kafkaPorts = await Promise.all(names.map(() => freePort()));
  const adminPorts = await Promise.all(names.map(() => freePort()));
  const regions = names.map((name, i) => ({ name, address: `127.0.0.1:${kafkaPorts[i]}`, admin: `127.0.0.1:${adminPorts[i]}` }));
  const [US, EU] = regions.map((r) => r.admin);
  const started: TestBroker[] = [];
  try {
    for (const [i, name] of names.entries()) {
      started.push(
        await startBroker({
          region: name,
          kafka: { host: '127.0.0.1', port: kafkaPorts[i] },
          admin: { host: '127.0.0.1', port: adminPorts[i] },
          replication: {
            regions,
            policies: [{ name: 'dr', topics: 'fb-*', topology: 'one-way', source: 'us-east', targets: ['eu-west'] }],
            retry: { initialMs: 50, maxMs: 500 },
            requestTimeoutMs: 5000,
          } as BrokerConfigInput['replication'],
        }),
      );
    }
    let [us, eu] = started;
    const topic = 'fb-orders';
    const send = async (values: string[]) => {
      const producer = new Kafka({ clientId: 'cli-dr', brokers: [us.bootstrap], logLevel: logLevel.NOTHING }).producer();
      await producer.connect();
      try {
        await producer.send({ topic, messages: values.map((value) => ({ partition: 0, value })) });
      } finally {
        await producer.disconnect();
      }
    };
    const created = await meridian(['topic', 'create', topic, '-p', '1', '--admin', US]);
    assert.equal(created.code, 0, created.stderr);
    await send(['a', 'b', 'c', 'd', 'e']);
    await waitFor('the five records to replicate to eu-west', () => us.broker.replicator.status().some((w) => w.topic === topic && w.state === 'idle' && w.lastOriginOffset === '4'), 30_000, 100, () =>
      JSON.stringify(us.broker.replicator.status()),
    );

    // eu-west goes down; us-east takes three records it cannot replicate, then goes down too.
    await eu.stop();
    await send(['f', 'g', 'h']);
    await us.stop();
    eu = started[1] = await eu.restart();
    const promoted = await meridian(['dr', 'promote', '--topic', topic, '--admin', EU]);
    assert.equal(promoted.code, 0, promoted.stderr);
    assert.match(promoted.stdout, /^\s*0\s+4\s/m, 'eu-west holds us-east offsets up to 4');
    // us-east returns with the three records eu-west never got.
    us = started[0] = await us.restart();

    const dry = await meridian(['dr', 'failback', '--topic', topic, '--admin', US]);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /dry run of a failback of us-east to eu-west \(the primary at epoch 1\); nothing was changed/);
    assert.match(dry.stdout, /^PARTITION\s+TRUNCATE-AT\s+RECORDS\s+OFFSETS\s+FIRST-TIMESTAMP\s+LAST-TIMESTAMP$/m);
    assert.match(dry.stdout, /^\s*0\s+5\s+3\s+5-7\s+\d{4}-\S+Z\s+\d{4}-\S+Z$/m);
    assert.match(dry.stdout, /3 records in us-east never reached eu-west: --confirm copies them to side topic fb-orders\.diverged-us-east-e1/);
    assert.match(dry.stdout, /Re-run with --confirm/);
    assert.equal(us.broker.topics.partition(topic, 0)?.highWatermark, 8n, 'the dry run cut nothing');
    assert.equal(us.broker.topics.getTopic(`${topic}.diverged-us-east-e1`), undefined);

    const done = await meridian(['dr', 'failback', '--topic', topic, '--confirm', '--admin', US]);
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stdout, /failed back: us-east follows eu-west at epoch 1 \(report failback-fb-orders-e1/);
    assert.match(done.stdout, /^\s*0\s+5\s+3\s+5-7\s+\S+\s+\S+\s+0-2$/m);
    assert.match(done.stdout, /3 divergent records preserved in side topic fb-orders\.diverged-us-east-e1/);
    assert.equal(us.broker.topics.partition(`${topic}.diverged-us-east-e1`, 0)?.highWatermark, 3n);
    const s = (await meridianJson(['dr', 'status', '--admin', US])).topics.find((t: { topic: string }) => t.topic === topic);
    assert.deepEqual([s.primary, s.epoch, s.readOnly, s.phase], ['eu-west', 1, true, 'following']);
    const reports = await meridianJson(['dr', 'report', '--admin', US]);
    assert.deepEqual(reports.map((r: { id: string }) => r.id), ['failback-fb-orders-e1']);
  } finally {
    for (const b of started) await b.cleanup();
  }
});
