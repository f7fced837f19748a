/**
 * Timestamps the broker computes: a batch whose header claims maxTimestamp -1 (as an older
 * Go client writes) is stored with its records' true maximum, so ListOffsets by time finds
 * it and retention.ms expires it; a topic with message.timestamp.type=LogAppendTime gets
 * the broker's clock on every batch, which KafkaJS and kcat consumers report, and the
 * Produce response carries it as logAppendTimeMs.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { encodeBatch, readBatchHeader, setMaxTimestamp } from '../../src/storage/record-batch.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { RawClient } from '../helpers/raw-kafka.js';

let tb: TestBroker;
let c: RawClient;
before(async () => {
  tb = await startBroker({ groups: { initialRebalanceDelayMs: 0 } });
  c = await RawClient.connect(tb.port);
});
after(async () => {
  c.close();
  await tb.cleanup();
});

async function createTopic(name: string, configs: Array<{ name: string; value: string }>): Promise<void> {
  const r = await c.request(ApiKey.CreateTopics, 4, { topics: [{ name, numPartitions: 1, replicationFactor: 1, assignments: [], configs }], timeoutMs: 5000, validateOnly: false });
  assert.equal(r.body.topics[0].errorCode, 0, `create ${name}: ${r.body.topics[0].errorMessage}`);
}

async function produceRaw(topic: string, batch: Buffer, version = 9) {
  const r = await c.request(ApiKey.Produce, version, { transactionalId: null, acks: -1, timeoutMs: 5000, topicData: [{ name: topic, partitionData: [{ index: 0, records: batch }] }] });
  const p = r.body.responses[0].partitionResponses[0];
  assert.equal(p.errorCode, 0, `produce to ${topic}: ${p.errorMessage}`);
  return p;
}

const byTime = async (topic: string, timestamp: bigint) =>
  (await c.request(ApiKey.ListOffsets, 7, { replicaId: -1, isolationLevel: 0, topics: [{ name: topic, partitions: [{ partitionIndex: 0, currentLeaderEpoch: -1, timestamp, maxNumOffsets: 1 }] }], timeoutMs: 0 })).body.topics[0].partitions[0];

test('a batch written with maxTimestamp -1 is found by ListOffsets by time and expires by retention.ms', async () => {
  const hour = 3_600_000;
  await createTopic('no-max-ts', [{ name: 'retention.ms', value: String(hour) }]);
  const old = BigInt(Date.now() - 2 * hour);
  const batch = encodeBatch({ baseTimestamp: old, records: [{ value: Buffer.from('a') }, { value: Buffer.from('b'), timestampDelta: 1000 }] });
  setMaxTimestamp(batch, -1n); // what the header claims; the records say old + 1000
  assert.equal(readBatchHeader(batch).maxTimestamp, -1n);
  await produceRaw('no-max-ts', batch);
  const log = tb.broker.topics.partition('no-max-ts', 0)!;
  assert.equal(log.segments()[0].maxTimestamp, old + 1000n, 'the stored max timestamp is the records\'');
  const hit = await byTime('no-max-ts', old + 500n);
  assert.deepEqual([hit.errorCode, hit.offset, hit.timestamp], [0, 1n, old + 1000n], 'ListOffsets by time finds the record');
  const max = await byTime('no-max-ts', -3n);
  assert.deepEqual([max.offset, max.timestamp], [1n, old + 1000n], 'and MAX_TIMESTAMP names it');
  // A newer batch in a new segment, then the retention check deletes the old one.
  await log.roll();
  await produceRaw('no-max-ts', encodeBatch({ baseTimestamp: BigInt(Date.now()), records: [{ value: Buffer.from('new') }] }));
  await tb.broker.topics.maintain();
  assert.equal(log.logStartOffset, 2n, 'the batch older than retention.ms is gone');
  assert.deepEqual((await readTopicToEnd(tb.bootstrap, 'no-max-ts')).map((m) => m.value!.toString()), ['new']);
});

test('message.timestamp.type=LogAppendTime: the broker clock is every record\'s timestamp, for KafkaJS and kcat, and in the Produce response', async () => {
  await createTopic('append-time', [{ name: 'message.timestamp.type', value: 'LogAppendTime' }]);
  await createTopic('create-time', []);
  const producerTs = '1500000000000'; // 2017: far from the broker's clock
  const kafka = new Kafka({ brokers: [tb.bootstrap], clientId: 'ts', logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  const before = Date.now();
  const [meta] = await producer.send({ topic: 'append-time', acks: -1, messages: [{ value: 'x', timestamp: producerTs }, { value: 'y', timestamp: producerTs }] });
  const afterSend = Date.now();
  const [plain] = await producer.send({ topic: 'create-time', acks: -1, messages: [{ value: 'z', timestamp: producerTs }] });
  await producer.disconnect();
  const appendTime = Number(meta.logAppendTime);
  assert.ok(appendTime >= before && appendTime <= afterSend, `logAppendTime ${meta.logAppendTime} is the broker's clock`);
  assert.equal(plain.logAppendTime, '-1', 'a CreateTime topic answers -1');
  // Produce v11 over the raw client: logAppendTimeMs is set there too.
  const raw = await produceRaw('append-time', encodeBatch({ baseTimestamp: 1_500_000_000_000n, records: [{ value: Buffer.from('w') }] }), 11);
  assert.ok(raw.logAppendTimeMs >= BigInt(afterSend), 'Produce v11 logAppendTimeMs');

  const viaKafkajs = await readTopicToEnd(tb.bootstrap, 'append-time');
  assert.deepEqual(viaKafkajs.map((m) => [m.value!.toString(), m.timestamp]), [['x', String(appendTime)], ['y', String(appendTime)], ['w', String(raw.logAppendTimeMs)]]);
  const viaKcat = await new KcatClient(tb.bootstrap).consumeAll('append-time');
  assert.deepEqual(viaKcat.map((m) => [m.payload!.toString(), m.tstype, m.ts]), [['x', 'logappend', appendTime], ['y', 'logappend', appendTime], ['w', 'logappend', Number(raw.logAppendTimeMs)]]);
  const plainKcat = await new KcatClient(tb.bootstrap).consumeAll('create-time');
  assert.deepEqual(plainKcat.map((m) => [m.tstype, m.ts]), [['create', Number(producerTs)]]);
  // By time: the broker's timestamps are what ListOffsets searches.
  const hit = await byTime('append-time', BigInt(appendTime));
  assert.deepEqual([hit.offset, hit.timestamp], [0n, BigInt(appendTime)]);
  assert.equal((await byTime('append-time', 1_500_000_000_000n)).offset, 0n);
});
