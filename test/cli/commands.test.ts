/**
 * The `meridian` admin commands against one running broker (admin API on an ephemeral
 * port, sealed segments tiered to a local directory), run as child processes: what `--json`
 * says is checked against what the broker really holds, as KafkaJS and the bucket show it,
 * and every failure exits with the documented code and names what to do.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { meridian, meridianJson } from '../helpers/cli-run.js';
import { freePort } from '../helpers/regions.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const store = tmpDir('meridian-cli-bucket-');
let tb: TestBroker;
let admin: string;
let kafka: Kafka;

before(async () => {
  tb = await startBroker({
    admin: { host: '127.0.0.1', port: 0 },
    log: { segmentBytes: 16 * 1024 },
    groups: { initialRebalanceDelayMs: 0 },
    // Nothing is uploaded on its own: only `offload trigger` moves segments to the bucket.
    tiered: { enabled: true, store: { type: 'fs', dir: store.dir }, offload: { onSeal: false } },
  });
  admin = `127.0.0.1:${tb.broker.adminPort}`;
  kafka = new Kafka({ clientId: 'cli-test', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING });
});

after(async () => {
  await tb?.cleanup();
  store.cleanup();
});

async function produce(topic: string, perPartition: number, partitions: number, valueBytes = 200): Promise<void> {
  const producer = kafka.producer();
  await producer.connect();
  try {
    for (let p = 0; p < partitions; p++) {
      const messages = Array.from({ length: perPartition }, (_, i) => ({ partition: p, key: `k${i}`, value: Buffer.alloc(valueBytes, 97 + (i % 26)) }));
      for (let i = 0; i < messages.length; i += 100) await producer.send({ topic, messages: messages.slice(i, i + 100) });
    }
  } finally {
    await producer.disconnect();
  }
}

test('topic create, list and describe show what a Kafka client sees: partitions, configs, offsets', async () => {
  const created = await meridianJson(['topic', 'create', 'orders', '-p', '3', '-c', 'retention.ms=86400000', '-c', 'remote.storage.enable=true', '--admin', admin]);
  assert.equal(created.name, 'orders');
  assert.equal(created.partitions.length, 3);

  const kadmin = kafka.admin();
  await kadmin.connect();
  try {
    const meta = await kadmin.fetchTopicMetadata({ topics: ['orders'] });
    assert.deepEqual(meta.topics[0].partitions.map((p) => p.partitionId).sort(), [0, 1, 2]);
    const [described] = (await kadmin.describeConfigs({ resources: [{ type: 2, name: 'orders' }], includeSynonyms: false })).resources;
    assert.equal(described.configEntries.find((c) => c.configName === 'retention.ms')?.configValue, '86400000');

    await produce('orders', 150, 3);
    const offsets = await kadmin.fetchTopicOffsets('orders');
    const topic = await meridianJson(['topic', 'describe', 'orders', '--admin', admin]);
    assert.deepEqual(
      topic.partitions.map((p: { partition: number; highWatermark: string; logStartOffset: string }) => [p.partition, p.logStartOffset, p.highWatermark]),
      offsets.sort((a, b) => a.partition - b.partition).map((o) => [o.partition, o.low, o.high]),
    );
    assert.ok(topic.partitions.every((p: { highWatermark: string; durableOffset: string }) => p.highWatermark === '150' && p.durableOffset === '150'), 'fsync mode: every acknowledged record is durable');
    const text = await meridian(['topic', 'describe', 'orders', '--admin', admin]);
    assert.match(text.stdout, /^PARTITION\s+LOG-START\s+HIGH-WATERMARK\s+NOT-DURABLE\s/m);
    assert.match(text.stdout, /^\s*0\s+0\s+150\s+0\s/m);
    assert.equal(topic.configs.find((c: { name: string }) => c.name === 'retention.ms').value, '86400000');
  } finally {
    await kadmin.disconnect();
  }

  const list = await meridianJson(['topic', 'list', '--admin', admin]);
  const orders = list.find((t: { name: string }) => t.name === 'orders');
  assert.equal(orders.partitions, 3);
  assert.deepEqual(orders.configs, { 'remote.storage.enable': 'true', 'retention.ms': '86400000' });
  assert.ok(orders.localBytes > 3 * 150 * 200, `local bytes ${orders.localBytes} hold the records produced`);

  // The human table: one aligned row per topic.
  const human = await meridian(['topic', 'list', '--admin', admin]);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /^TOPIC\s+PARTITIONS\s+LOCAL\s+TIERED/m);
  assert.match(human.stdout, /^orders\s+3\s/m);
});

test('topic failures exit 1 with the broker\'s code: unknown topic, existing topic, bad config', async () => {
  const unknown = await meridian(['topic', 'describe', 'no-such-topic', '--admin', admin]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /UNKNOWN_TOPIC: topic no-such-topic does not exist/);
  assert.equal(unknown.stdout, '');

  const exists = await meridian(['topic', 'create', 'orders', '--admin', admin]);
  assert.equal(exists.code, 1);
  assert.match(exists.stderr, /TOPIC_EXISTS/);

  const badConfig = await meridian(['topic', 'create', 'bad', '-c', 'cleanup.policy=compact', '--admin', admin]);
  assert.equal(badConfig.code, 1);
  assert.match(badConfig.stderr, /INVALID_CONFIG/);

  const deleteUnknown = await meridian(['topic', 'delete', 'no-such-topic', '--admin', admin]);
  assert.equal(deleteUnknown.code, 1);
  assert.match(deleteUnknown.stderr, /UNKNOWN_TOPIC/);
});

test('offload trigger --wait returns once the bucket holds every queued segment, up to the high watermark', async () => {
  const before = await meridianJson(['offload', 'status', '--topic', 'orders', '--admin', admin]);
  assert.equal(before.partitions.length, 3);
  assert.ok(before.partitions.every((p: { remoteEndOffset: string }) => p.remoteEndOffset === '0'), 'nothing offloaded before the trigger');

  const r = await meridian(['offload', 'trigger', '--topic', 'orders', '--wait', '--json', '--admin', admin]);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.equal(result.complete, true);
  assert.deepEqual(result.topics, ['orders']);
  assert.ok(result.segmentsQueued >= 3, `segments queued: ${result.segmentsQueued}`);
  // The progress went to stderr, never into the JSON on stdout.
  assert.match(r.stderr, /offload .*100%/);

  // The bucket (a directory) holds, per partition, a manifest whose segments cover every
  // offset produced, each data object present with the size the manifest records.
  const manifests: string[] = [];
  const walk = (d: string) => fs.readdirSync(d, { withFileTypes: true }).forEach((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : e.name === 'manifest.json' && manifests.push(path.join(d, e.name))));
  walk(store.dir);
  const byPartition = new Map<number, { startOffset: string; segments: Array<{ baseOffset: string; nextOffset: string; sizeBytes: number; dataKey: string }> }>();
  for (const file of manifests.filter((f) => f.includes(`${path.sep}orders${path.sep}`))) {
    const m = JSON.parse(fs.readFileSync(file, 'utf8'));
    byPartition.set(m.partition, m);
    const root = file.slice(0, file.indexOf(`${path.sep}topics${path.sep}`));
    for (const s of m.segments) assert.equal(fs.statSync(path.join(root, s.dataKey)).size, s.sizeBytes, s.dataKey);
  }
  assert.deepEqual([...byPartition.keys()].sort(), [0, 1, 2]);
  for (const [p, m] of byPartition) {
    let next = 0n;
    for (const s of m.segments) {
      assert.equal(BigInt(s.baseOffset), next, `partition ${p}: segments are contiguous`);
      next = BigInt(s.nextOffset);
    }
    assert.equal(next, 150n, `partition ${p}: the bucket holds every record produced`);
  }
  const target = result.partitions.map((x: { partition: number; targetEndOffset: string; remoteEndOffset: string }) => [x.partition, x.targetEndOffset, x.remoteEndOffset]);
  assert.deepEqual(target, [[0, '150', '150'], [1, '150', '150'], [2, '150', '150']]);

  const after = await meridianJson(['offload', 'status', '--topic', 'orders', '--admin', admin]);
  assert.ok(after.partitions.every((p: { remoteEndOffset: string; remoteSegments: number }) => p.remoteEndOffset === '150' && p.remoteSegments > 0));
  const topics = await meridianJson(['topic', 'list', '--admin', admin]);
  assert.ok(topics.find((t: { name: string }) => t.name === 'orders').tieredBytes > 0);

  const human = await meridian(['offload', 'status', '--admin', admin]);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /^orders\s+0\s+\d+\s+\S+ \S+\s+\d+\s+\S+ \S+\s+0\.\.150\s+idle/m);

  const unknown = await meridian(['offload', 'trigger', '--topic', 'no-such-topic', '--admin', admin]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /no-such-topic does not exist/);
});

test('group list and describe show members, committed offsets and lag as KafkaJS sees them', async () => {
  const groupId = 'cli-readers';
  const consumer = kafka.consumer({ groupId });
  await consumer.connect();
  await consumer.subscribe({ topic: 'orders', fromBeginning: true });
  let seen = 0;
  await consumer.run({ autoCommitInterval: 100, eachMessage: async () => void seen++ });
  try {
    // While it runs: one member holding all three partitions.
    const live = await waitFor('the consumer to own every partition and commit them all', async () => {
      const g = await meridianJson(['group', 'describe', groupId, '--admin', admin]);
      return g.state === 'Stable' && g.members.length === 1 && g.offsets.length === 3 && g.offsets.every((o: { lag: number }) => o.lag === 0) ? g : undefined;
    });
    assert.deepEqual(live.members[0].assignments, [{ topic: 'orders', partitions: [0, 1, 2] }]);
    assert.equal(seen, 450);
  } finally {
    await consumer.disconnect();
  }
  await produce('orders', 7, 1);
  const kadmin = kafka.admin();
  await kadmin.connect();
  const committed = await kadmin.fetchOffsets({ groupId, topics: ['orders'] });
  await kadmin.disconnect();
  const g = await meridianJson(['group', 'describe', groupId, '--admin', admin]);
  assert.equal(g.members.length, 0);
  assert.deepEqual(
    g.offsets.map((o: { partition: number; committedOffset: string; lag: number }) => [o.partition, o.committedOffset, o.lag]),
    committed[0].partitions.sort((a, b) => a.partition - b.partition).map((p) => [p.partition, p.offset, p.partition === 0 ? 7 : 0]),
  );
  const list = await meridianJson(['group', 'list', '--admin', admin]);
  const entry = list.find((x: { groupId: string }) => x.groupId === groupId);
  assert.equal(entry.lag, 7);
  assert.equal(entry.members, 0);

  const human = await meridian(['group', 'describe', groupId, '--admin', admin]);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /^lag\s+7$/m);
  assert.match(human.stdout, /^orders\s+0\s+150\s+157\s+7$/m);

  const unknown = await meridian(['group', 'describe', 'no-such-group', '--admin', admin]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /GROUP_NOT_FOUND/);
});

test('status, region list and replication on a region of one: ok, exit 0', async () => {
  const s = await meridianJson(['status', '--admin', admin]);
  assert.equal(s.ok, true);
  assert.deepEqual(s.problems, []);
  assert.equal(s.regions.length, 1);
  assert.equal(s.regions[0].reachable, true);
  assert.ok(s.regions[0].tieredBytes > 0);
  const human = await meridian(['status', '--admin', admin]);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /^OK: 1 region, 0 links, no problems/);
  const regions = await meridianJson(['region', 'list', '--admin', admin]);
  assert.equal(regions.length, 1);
  assert.equal(regions[0].self, true);
  const policies = await meridianJson(['replication', 'policies', '--admin', admin]);
  assert.equal(policies.source, 'config');
  const rs = await meridianJson(['replication', 'status', '--admin', admin]);
  assert.deepEqual(rs.links, []);
});

test('topic delete removes the topic: KafkaJS no longer lists it', async () => {
  const r = await meridian(['topic', 'delete', 'orders', '--admin', admin]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /deleted topic orders/);
  const kadmin = kafka.admin();
  await kadmin.connect();
  try {
    assert.ok(!(await kadmin.listTopics()).includes('orders'));
  } finally {
    await kadmin.disconnect();
  }
  assert.equal((await meridian(['topic', 'describe', 'orders', '--admin', admin])).code, 1);
});

test('the address: MERIDIAN_ADMIN is used without --admin; an unreachable one exits 3 naming it', async () => {
  const viaEnv = await meridianJson(['region', 'list'], { env: { MERIDIAN_ADMIN: admin } });
  assert.equal(viaEnv[0].self, true);

  const closed = `127.0.0.1:${await freePort()}`;
  const r = await meridian(['topic', 'list', '--admin', closed]);
  assert.equal(r.code, 3);
  assert.match(r.stderr, new RegExp(`cannot reach the admin API at ${closed.replace(/\./g, '\\.')}: connection refused`));
  assert.match(r.stderr, /--admin HOST:PORT or MERIDIAN_ADMIN/);
  assert.equal(r.stdout, '');

  // Without flag or variable: the dev mesh's us-east, named in the message when it is not running.
  // (A dev mesh running on this machine answers there instead; either way that address is used.)
  const dflt = await meridian(['status']);
  assert.match(dflt.code === 3 ? dflt.stderr : dflt.stdout, /127\.0\.0\.1:19644/);
});

test('usage errors exit 2 and say what was wrong', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['topic', 'list', '--bogus'], /unknown option --bogus/],
    [['topic'], /meridian topic list/],
    [['topic', 'frob'], /unknown subcommand "topic frob"/],
    [['topic', 'create'], /missing NAME/],
    [['topic', 'create', 'x', '-p', 'three'], /-p: expected a number of partitions/],
    [['topic', 'create', 'x', '-c', 'novalue'], /-c: expected name=value/],
    [['replication', 'apply'], /missing FILE/],
    [['replication', 'apply', '/nonexistent/policies.yaml'], /cannot read \/nonexistent\/policies\.yaml: ENOENT/],
    [['offload', 'status', '--wait'], /--wait and --timeout are options of offload trigger/],
    [['status', '--admin', 'not an address'], /--admin: expected HOST:PORT/],
    [['status', '--token-file', '/nonexistent/token'], /--token-file: cannot read \/nonexistent\/token/],
  ];
  for (const [args, message] of cases) {
    const r = await meridian(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
  }
  const help = await meridian(['offload', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /meridian offload trigger/);
});

test('with a token: refused without it (exit 1, says how to pass it), accepted from --token-file or MERIDIAN_ADMIN_TOKEN, never printed', async () => {
  const token = `s3cret-${Math.random().toString(36).slice(2)}`;
  const secured = await startBroker({ admin: { host: '127.0.0.1', port: 0, token } });
  const t = tmpDir('meridian-cli-token-');
  try {
    const at = `127.0.0.1:${secured.broker.adminPort}`;
    const without = await meridian(['topic', 'create', 'secured', '--admin', at]);
    assert.equal(without.code, 1);
    assert.match(without.stderr, /UNAUTHORIZED/);
    assert.match(without.stderr, /MERIDIAN_ADMIN_TOKEN or pass --token-file/);
    const wrong = await meridian(['topic', 'list', '--admin', at], { MERIDIAN_ADMIN_TOKEN: 'wrong' });
    assert.equal(wrong.code, 1);

    const file = path.join(t.dir, 'token');
    fs.writeFileSync(file, `${token}\n`);
    const created = await meridian(['topic', 'create', 'secured', '--token-file', file, '--admin', at]);
    assert.equal(created.code, 0, created.stderr);
    const listed = await meridian(['topic', 'list', '--json', '--admin', at], { MERIDIAN_ADMIN_TOKEN: token });
    assert.equal(listed.code, 0);
    assert.deepEqual(JSON.parse(listed.stdout).map((x: { name: string }) => x.name), ['secured']);
    const status = await meridian(['status', '--admin', at], { MERIDIAN_ADMIN_TOKEN: token });
    for (const out of [without, wrong, created, listed, status]) assert.ok(!out.stdout.includes(token) && !out.stderr.includes(token), 'the token never appears in output');
  } finally {
    await secured.cleanup();
    t.cleanup();
  }
});
