/**
 * Topic configs through a real broker: DescribeConfigs, AlterConfigs and
 * IncrementalAlterConfigs from KafkaJS's admin client (describeConfigs, alterConfigs) and
 * from a raw client at every version, and the effect of a change on the live topic: expired
 * segments deleted at the next retention check, the next roll at the new segment size, the
 * new batch limit on the next produce, and the change still there after a restart.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel, type ConfigResourceTypes } from 'kafkajs';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { RawClient } from '../helpers/raw-kafka.js';
import { waitFor } from '../helpers/wait.js';

const TOPIC = 2;
/** KafkaJS's KAFKAJS_TOPIC (its enum is not exported to ES modules). */
const KAFKAJS_TOPIC = TOPIC as ConfigResourceTypes;
const BROKER = 4;
const Source = { DynamicTopic: 1, StaticBroker: 4, Default: 5 } as const;
const Op = { Set: 0, Delete: 1, Append: 2, Subtract: 3 } as const;
const INVALID_CONFIG = 40;
const INVALID_REQUEST = 42;
const UNKNOWN_TOPIC = 3;
const HOUR = 3_600_000;

let tb: TestBroker;
let kafka: Kafka;
let raw: RawClient;
before(async () => {
  // Retention checked every 100 ms; the broker-wide default keeps a week; segments of 1 KiB.
  tb = await startBroker({ log: { segmentBytes: 1024, retention: { checkIntervalMs: 100 } }, groups: { initialRebalanceDelayMs: 0 } });
  kafka = new Kafka({ brokers: [tb.bootstrap], clientId: 'configs-test', logLevel: logLevel.NOTHING });
  raw = await RawClient.connect(tb.port);
});
after(async () => {
  raw.close();
  await tb.cleanup();
});

async function createTopic(topic: string, configEntries: Array<{ name: string; value: string }> = []): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1, configEntries }], waitForLeaders: true }), true);
  } finally {
    await admin.disconnect();
  }
}

async function describe(version: number, resources: Array<{ resourceType: number; resourceName: string; configurationKeys: string[] | null }>, opts = { includeSynonyms: false, includeDocumentation: false }) {
  const r = await raw.request(ApiKey.DescribeConfigs, version, { resources, ...opts });
  return r.body.results as Array<{ errorCode: number; errorMessage: string | null; resourceName: string; configs: Array<any> }>;
}

async function topicConfigs(topic: string): Promise<Map<string, any>> {
  const [res] = await describe(4, [{ resourceType: TOPIC, resourceName: topic, configurationKeys: null }], { includeSynonyms: true, includeDocumentation: true });
  assert.equal(res.errorCode, 0, res.errorMessage ?? '');
  return new Map(res.configs.map((c) => [c.name, c]));
}

async function incremental(topic: string, configs: Array<{ name: string; configOperation: number; value: string | null }>, validateOnly = false, version = 1) {
  const r = await raw.request(ApiKey.IncrementalAlterConfigs, version, { resources: [{ resourceType: TOPIC, resourceName: topic, configs }], validateOnly });
  return r.body.responses[0] as { errorCode: number; errorMessage: string | null };
}

/** `count` records of ~300 bytes each in one batch per send, all with timestamp `ts`. */
async function produce(topic: string, sends: number, perSend: number, ts: number, tag: string): Promise<string[]> {
  const producer = kafka.producer();
  await producer.connect();
  const values: string[] = [];
  try {
    for (let s = 0; s < sends; s++) {
      const messages = Array.from({ length: perSend }, (_, i) => ({ value: `${tag}-${s}-${i}-${'x'.repeat(300)}`, timestamp: String(ts) }));
      await producer.send({ topic, acks: -1, messages });
      values.push(...messages.map((m) => m.value));
    }
  } finally {
    await producer.disconnect();
  }
  return values;
}

test('DescribeConfigs of a topic: every standard config with its value and where it comes from, at v0 to v4', async () => {
  await createTopic('described', [{ name: 'retention.ms', value: String(2 * HOUR) }, { name: 'cleanup.policy', value: 'delete' }]);
  const configs = await topicConfigs('described');
  for (const name of [
    'cleanup.policy',
    'compression.type',
    'retention.ms',
    'retention.bytes',
    'segment.bytes',
    'segment.ms',
    'max.message.bytes',
    'message.timestamp.type',
    'min.insync.replicas',
    'remote.storage.enable',
    'local.retention.ms',
    'local.retention.bytes',
  ]) {
    assert.ok(configs.has(name), `${name} is described`);
  }
  const retention = configs.get('retention.ms');
  assert.equal(retention.value, String(2 * HOUR));
  assert.equal(retention.configSource, Source.DynamicTopic);
  assert.equal(retention.readOnly, false);
  assert.equal(retention.isSensitive, false);
  assert.equal(retention.configType, 5, 'LONG');
  assert.match(retention.documentation, /older than/);
  assert.deepEqual(retention.synonyms, [
    { name: 'retention.ms', value: String(2 * HOUR), source: Source.DynamicTopic },
    { name: 'log.retention.ms', value: String(7 * 24 * HOUR), source: Source.Default },
  ]);
  // Not overridden: the broker's value, marked as such.
  const segment = configs.get('segment.bytes');
  assert.equal(segment.value, '1024');
  assert.equal(segment.configSource, Source.StaticBroker, 'this broker sets log.segmentBytes');
  assert.deepEqual(segment.synonyms, [{ name: 'log.segment.bytes', value: '1024', source: Source.StaticBroker }]);
  assert.equal(configs.get('cleanup.policy').value, 'delete');
  assert.equal(configs.get('cleanup.policy').readOnly, true);
  assert.equal(configs.get('cleanup.policy').configType, 7, 'LIST');
  assert.equal(configs.get('compression.type').value, 'producer');
  assert.equal(configs.get('min.insync.replicas').value, '1');
  assert.equal(configs.get('message.timestamp.type').value, 'CreateTime');
  assert.equal(configs.get('remote.storage.enable').value, 'false', 'tiered storage is off on this broker');

  // Only the keys asked for; unknown keys are simply absent (as Kafka does).
  const [some] = await describe(1, [{ resourceType: TOPIC, resourceName: 'described', configurationKeys: ['retention.ms', 'segment.ms', 'no.such.config'] }]);
  assert.deepEqual(some.configs.map((c) => c.name).sort(), ['retention.ms', 'segment.ms']);
  assert.deepEqual(some.configs.find((c) => c.name === 'retention.ms').synonyms, [], 'no synonyms unless asked for');

  // v0: isDefault instead of a source.
  const [v0] = await describe(0, [{ resourceType: TOPIC, resourceName: 'described', configurationKeys: ['retention.ms', 'retention.bytes', 'segment.bytes'] }]);
  const byName = new Map(v0.configs.map((c) => [c.name, c]));
  assert.equal(byName.get('retention.ms').isDefault, false);
  assert.equal(byName.get('retention.bytes').isDefault, true);
  assert.equal(byName.get('segment.bytes').isDefault, false, 'set in the broker config');
  for (const v of [2, 3]) {
    const [r] = await describe(v, [{ resourceType: TOPIC, resourceName: 'described', configurationKeys: ['retention.ms'] }], { includeSynonyms: true, includeDocumentation: v >= 3 });
    assert.equal(r.errorCode, 0);
    assert.equal(r.configs[0].value, String(2 * HOUR), `v${v}`);
    assert.equal(r.configs[0].synonyms.length, 2, `v${v} synonyms`);
  }

  // Errors per resource; the others in the same request are still answered.
  const mixed = await describe(4, [
    { resourceType: TOPIC, resourceName: 'no-such-topic', configurationKeys: null },
    { resourceType: TOPIC, resourceName: 'described', configurationKeys: ['segment.ms'] },
    { resourceType: 8, resourceName: '1', configurationKeys: null },
  ]);
  assert.equal(mixed[0].errorCode, UNKNOWN_TOPIC);
  assert.match(mixed[0].errorMessage!, /no-such-topic/);
  assert.equal(mixed[1].errorCode, 0);
  assert.equal(mixed[1].configs.length, 1);
  assert.equal(mixed[2].errorCode, INVALID_REQUEST);
  assert.match(mixed[2].errorMessage!, /BROKER_LOGGER/);
});

test('DescribeConfigs of the broker: its settings under Kafka\'s names, read-only; "" has no dynamic defaults; another id is refused', async () => {
  const node = String(tb.config.nodeId);
  const [b] = await describe(4, [{ resourceType: BROKER, resourceName: node, configurationKeys: null }], { includeSynonyms: true, includeDocumentation: true });
  assert.equal(b.errorCode, 0);
  const byName = new Map(b.configs.map((c) => [c.name, c]));
  assert.equal(byName.get('log.segment.bytes').value, '1024');
  assert.equal(byName.get('log.segment.bytes').configSource, Source.StaticBroker);
  assert.equal(byName.get('log.retention.check.interval.ms').value, '100');
  assert.equal(byName.get('log.retention.ms').value, String(7 * 24 * HOUR));
  assert.equal(byName.get('log.retention.ms').configSource, Source.Default);
  assert.equal(byName.get('advertised.listeners').value, `PLAINTEXT://127.0.0.1:${tb.port}`);
  assert.equal(byName.get('log.dirs').value, `${tb.dataDir}/logs`);
  assert.match(byName.get('message.max.bytes').documentation, /Meridian config: log\.maxBatchBytes/);
  assert.ok(b.configs.every((c) => c.readOnly), 'every broker setting is read-only');

  const [cluster] = await describe(4, [{ resourceType: BROKER, resourceName: '', configurationKeys: null }]);
  assert.equal(cluster.errorCode, 0);
  assert.deepEqual(cluster.configs, []);
  const [other] = await describe(4, [{ resourceType: BROKER, resourceName: '77', configurationKeys: null }]);
  assert.equal(other.errorCode, INVALID_REQUEST);
  assert.match(other.errorMessage!, /77/);

  // Altering a broker config: refused, clearly, at both APIs.
  const a = await raw.request(ApiKey.AlterConfigs, 2, { resources: [{ resourceType: BROKER, resourceName: node, configs: [{ name: 'log.retention.ms', value: '1' }] }], validateOnly: false });
  assert.equal(a.body.responses[0].errorCode, INVALID_REQUEST);
  assert.match(a.body.responses[0].errorMessage, /config file/);
  const i = await raw.request(ApiKey.IncrementalAlterConfigs, 0, {
    resources: [{ resourceType: BROKER, resourceName: node, configs: [{ name: 'log.retention.ms', configOperation: Op.Set, value: '1' }] }],
    validateOnly: false,
  });
  assert.equal(i.body.responses[0].errorCode, INVALID_REQUEST);
});

test('KafkaJS admin: describeConfigs and alterConfigs round trip; AlterConfigs replaces the whole set of overrides', async () => {
  await createTopic('kjs', [{ name: 'retention.ms', value: String(3 * HOUR) }, { name: 'segment.ms', value: String(HOUR) }]);
  const admin = kafka.admin();
  await admin.connect();
  try {
    const entries = async () => {
      const d = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: KAFKAJS_TOPIC, name: 'kjs' }] });
      return new Map(d.resources[0].configEntries.map((e) => [e.configName, e]));
    };
    let e = await entries();
    assert.equal(e.get('retention.ms')!.configValue, String(3 * HOUR));
    assert.equal(e.get('segment.ms')!.configValue, String(HOUR));

    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: KAFKAJS_TOPIC, name: 'kjs', configEntries: [{ name: 'retention.bytes', value: '1048576' }, { name: 'message.timestamp.type', value: 'LogAppendTime' }] }],
    });
    e = await entries();
    assert.equal(e.get('retention.bytes')!.configValue, '1048576');
    assert.equal(e.get('message.timestamp.type')!.configValue, 'LogAppendTime');
    assert.equal(e.get('retention.ms')!.configValue, String(7 * 24 * HOUR), 'left out of AlterConfigs: back to the broker value');
    assert.equal(e.get('segment.ms')!.configValue, String(7 * 24 * HOUR));
    assert.equal(tb.broker.topics.partition('kjs', 0)!.options.retentionBytes, 1048576, 'the live log has the new limit');
    assert.equal(tb.broker.topics.getTopic('kjs')!.config.timestampType, 'LogAppendTime');

    // validateOnly changes nothing; a refused value changes nothing.
    await admin.alterConfigs({ validateOnly: true, resources: [{ type: KAFKAJS_TOPIC, name: 'kjs', configEntries: [{ name: 'retention.bytes', value: '5' }] }] });
    assert.equal((await entries()).get('retention.bytes')!.configValue, '1048576');
    await assert.rejects(
      admin.alterConfigs({ validateOnly: false, resources: [{ type: KAFKAJS_TOPIC, name: 'kjs', configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }] }),
      // KafkaJS shows its own text for the code; the broker's message is checked below (raw).
      (err: any) => err.type === 'INVALID_CONFIG',
    );
    await assert.rejects(
      admin.alterConfigs({ validateOnly: false, resources: [{ type: KAFKAJS_TOPIC, name: 'kjs', configEntries: [{ name: 'retention.ms', value: 'soon' }] }] }),
      (err: any) => err.type === 'INVALID_CONFIG',
    );
    assert.equal((await entries()).get('retention.bytes')!.configValue, '1048576');
  } finally {
    await admin.disconnect();
  }
});

test('IncrementalAlterConfigs: SET, DELETE back to the default, list-only operations, unknown names and compaction refused, validateOnly, persisted across a restart', async () => {
  await createTopic('inc');
  assert.deepEqual(await incremental('inc', [{ name: 'retention.ms', configOperation: Op.Set, value: String(5 * HOUR) }, { name: 'segment.ms', configOperation: Op.Set, value: '60000' }]), {
    errorCode: 0,
    errorMessage: null,
    resourceType: TOPIC,
    resourceName: 'inc',
  });
  let c = await topicConfigs('inc');
  assert.equal(c.get('retention.ms').value, String(5 * HOUR));
  assert.equal(c.get('segment.ms').value, '60000');
  assert.equal(tb.broker.topics.partition('inc', 0)!.options.segmentMs, 60000);

  // DELETE reverts one config; the other stays.
  assert.equal((await incremental('inc', [{ name: 'segment.ms', configOperation: Op.Delete, value: null }], false, 0)).errorCode, 0);
  c = await topicConfigs('inc');
  assert.equal(c.get('segment.ms').value, String(7 * 24 * HOUR));
  assert.equal(c.get('segment.ms').configSource, Source.Default);
  assert.equal(c.get('retention.ms').value, String(5 * HOUR));

  // Refusals, each naming what was wrong; nothing changes.
  const appended = await incremental('inc', [{ name: 'retention.ms', configOperation: Op.Append, value: '1' }]);
  assert.equal(appended.errorCode, INVALID_CONFIG);
  assert.match(appended.errorMessage!, /APPEND applies to list configs only; retention\.ms is a LONG/);
  const compact = await incremental('inc', [{ name: 'cleanup.policy', configOperation: Op.Append, value: 'compact' }]);
  assert.equal(compact.errorCode, INVALID_CONFIG);
  assert.match(compact.errorMessage!, /log compaction is not supported/);
  const unknown = await incremental('inc', [{ name: 'retention.hours', configOperation: Op.Set, value: '1' }]);
  assert.equal(unknown.errorCode, INVALID_CONFIG);
  assert.match(unknown.errorMessage!, /retention\.hours is not supported/);
  const badOp = await incremental('inc', [{ name: 'retention.ms', configOperation: 9, value: '1' }]);
  assert.equal(badOp.errorCode, INVALID_REQUEST);
  const twice = await incremental('inc', [
    { name: 'retention.ms', configOperation: Op.Set, value: '1' },
    { name: 'retention.ms', configOperation: Op.Set, value: '2' },
  ]);
  assert.equal(twice.errorCode, INVALID_REQUEST);
  const readOnly = await incremental('inc', [{ name: 'min.insync.replicas', configOperation: Op.Set, value: '2' }]);
  assert.equal(readOnly.errorCode, INVALID_CONFIG);
  assert.match(readOnly.errorMessage!, /one replica/);
  const noTiered = await incremental('inc', [{ name: 'remote.storage.enable', configOperation: Op.Set, value: 'true' }]);
  assert.equal(noTiered.errorCode, INVALID_CONFIG);
  assert.match(noTiered.errorMessage!, /tiered\.enabled/);
  assert.equal((await incremental('no-such-topic', [{ name: 'retention.ms', configOperation: Op.Set, value: '1' }])).errorCode, UNKNOWN_TOPIC);
  // The accepted no-ops: the values Meridian has.
  assert.equal((await incremental('inc', [{ name: 'cleanup.policy', configOperation: Op.Set, value: 'delete' }, { name: 'compression.type', configOperation: Op.Set, value: 'producer' }])).errorCode, 0);
  // validateOnly: answered as if applied, nothing applied.
  assert.equal((await incremental('inc', [{ name: 'retention.ms', configOperation: Op.Set, value: '1' }], true)).errorCode, 0);
  assert.equal((await topicConfigs('inc')).get('retention.ms').value, String(5 * HOUR));

  // The broker kept serving all along, and the change survives a restart.
  raw.close();
  tb = await tb.restart();
  kafka = new Kafka({ brokers: [tb.bootstrap], clientId: 'configs-test', logLevel: logLevel.NOTHING });
  raw = await RawClient.connect(tb.port);
  c = await topicConfigs('inc');
  assert.equal(c.get('retention.ms').value, String(5 * HOUR));
  assert.equal(c.get('retention.ms').configSource, Source.DynamicTopic);
  assert.equal(tb.broker.topics.partition('inc', 0)!.options.retentionMs, 5 * HOUR);
});

test('IncrementalAlterConfigs of retention.ms on a live topic deletes the expired segments at the next retention check; consumers see the new earliest offset', async () => {
  const topic = 'live-retention';
  await createTopic(topic);
  // Each send is one batch of ~3 KB: one segment each at segment.bytes 1 KiB.
  const old = await produce(topic, 5, 10, Date.now() - 2 * HOUR, 'old');
  const recent = await produce(topic, 3, 10, Date.now(), 'recent');
  const log = tb.broker.topics.partition(topic, 0)!;
  const admin = kafka.admin();
  await admin.connect();
  try {
    assert.equal((await admin.fetchTopicOffsets(topic))[0].low, '0', 'the week-long default keeps the two-hour-old records');
    const segmentsBefore = log.segments().length;
    assert.ok(segmentsBefore >= 8, `one segment per batch (${segmentsBefore})`);

    assert.equal((await incremental(topic, [{ name: 'retention.ms', configOperation: Op.Set, value: String(HOUR) }])).errorCode, 0);
    await waitFor('the next retention check to delete the expired segments', () => log.logStartOffset === BigInt(old.length), 30_000, 50, () => `(log start ${log.logStartOffset})`);
    assert.equal(log.segments().length, segmentsBefore - 5, 'exactly the five old segments went');
    const offsets = (await admin.fetchTopicOffsets(topic))[0];
    assert.equal(offsets.low, String(old.length), 'ListOffsets earliest moved');
    assert.equal(offsets.high, String(old.length + recent.length));
  } finally {
    await admin.disconnect();
  }
  const got = await readTopicToEnd(tb.bootstrap, topic);
  assert.deepEqual(
    got.map((m) => m.value!.toString()),
    recent,
    'a consumer from the beginning gets exactly the retained records',
  );
  assert.equal(got[0].offset, old.length);
});

test('segment.bytes takes effect at the next roll; max.message.bytes at the next produce', async () => {
  const topic = 'live-segments';
  await createTopic(topic, [{ name: 'segment.bytes', value: String(1024 * 1024) }]);
  await produce(topic, 4, 10, Date.now(), 'big');
  const log = tb.broker.topics.partition(topic, 0)!;
  assert.equal(log.segments().length, 1, 'four ~3 KB batches fit one 1 MiB segment');
  assert.equal((await incremental(topic, [{ name: 'segment.bytes', configOperation: Op.Set, value: '1024' }])).errorCode, 0);
  await produce(topic, 3, 10, Date.now(), 'small');
  assert.equal(log.segments().length, 4, 'every batch after the change rolled a new segment');

  assert.equal((await incremental(topic, [{ name: 'max.message.bytes', configOperation: Op.Set, value: '2000' }])).errorCode, 0);
  await assert.rejects(produce(topic, 1, 10, Date.now(), 'too-big'), (err: any) => /MESSAGE_TOO_LARGE|too large/i.test(`${err.type ?? ''} ${err.message}`));
  const fits = await produce(topic, 1, 2, Date.now(), 'fits');
  assert.equal(fits.length, 2);
});

test('CreateTopics takes message.timestamp.type and cleanup.policy=delete; refuses compaction, bad values and remote.storage.enable without tiered storage with INVALID_CONFIG', async () => {
  const r = await raw.request(ApiKey.CreateTopics, 4, {
    topics: [
      { name: 'ts-append', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }, { name: 'cleanup.policy', value: 'delete' }] },
      { name: 'ts-bad', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [{ name: 'message.timestamp.type', value: 'WallClock' }] },
      { name: 'compacted', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [{ name: 'cleanup.policy', value: 'compact,delete' }] },
      { name: 'seg-huge', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [{ name: 'segment.bytes', value: String(2 ** 32) }] },
      { name: 'tiered-here', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [{ name: 'remote.storage.enable', value: 'true' }] },
    ],
    timeoutMs: 5000,
    validateOnly: false,
  });
  const [ok, bad, compacted, huge, tiered] = r.body.topics;
  assert.equal(ok.errorCode, 0);
  assert.equal((await topicConfigs('ts-append')).get('message.timestamp.type').value, 'LogAppendTime');
  assert.equal(bad.errorCode, INVALID_CONFIG);
  assert.match(bad.errorMessage, /CreateTime or LogAppendTime/);
  assert.equal(compacted.errorCode, INVALID_CONFIG);
  assert.match(compacted.errorMessage, /log compaction is not supported/);
  assert.equal(huge.errorCode, INVALID_CONFIG);
  assert.match(huge.errorMessage, /from 1024 to 2147483647/);
  assert.equal(tiered.errorCode, INVALID_CONFIG, 'no tiered storage on this broker: the topic would never be tiered');
  assert.match(tiered.errorMessage, /tiered\.enabled/);
  assert.equal(tb.broker.topics.getTopic('compacted'), undefined);
  assert.equal(tb.broker.topics.getTopic('tiered-here'), undefined);
});

test('message.timestamp.type changed at run time: the next batches carry the broker\'s append time, earlier ones keep theirs', async () => {
  const topic = 'live-timestamps';
  await createTopic(topic);
  const old = Date.now() - 2 * HOUR;
  await produce(topic, 1, 3, old, 'create-time');
  assert.equal((await incremental(topic, [{ name: 'message.timestamp.type', configOperation: Op.Set, value: 'LogAppendTime' }])).errorCode, 0);
  const changedAt = Date.now();
  await produce(topic, 1, 3, old, 'append-time');
  const got = await readTopicToEnd(tb.bootstrap, topic);
  assert.equal(got.length, 6);
  assert.deepEqual(got.slice(0, 3).map((m) => Number(m.timestamp)), [old, old, old], 'written before the change: the producer\'s time');
  for (const m of got.slice(3)) assert.ok(Number(m.timestamp) >= changedAt && Number(m.timestamp) <= Date.now(), `after the change: the broker's clock (${m.timestamp})`);
});
