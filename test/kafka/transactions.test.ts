/**
 * Transactions are not supported, and a transactional producer is told so rather than
 * refused as unauthorized (issue 11). The words reach clients that read the broker's error
 * message: FindCoordinator for a transaction key carries "transactions are not supported by
 * Meridian" (data-plane-versions.test.ts checks it at every version, with InitProducerId and
 * Produce). KafkaJS 2.2.4 drops broker messages, so what its user sees is checked here: the
 * transaction fails at once, without retrying, and not as an authorization failure.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { captureLog, startBroker, type TestBroker } from '../helpers/broker.js';
import { readTopicToEnd } from '../helpers/kafkajs-collect.js';
import { RawClient } from '../helpers/raw-kafka.js';

let tb: TestBroker;
const log = captureLog();
before(async () => {
  tb = await startBroker({ groups: { initialRebalanceDelayMs: 0 } }, undefined, { log });
});
after(async () => {
  await tb.cleanup();
});

test('a KafkaJS transactional producer fails at once, not with an authorization error, and writes nothing', async () => {
  const kafka = new Kafka({ brokers: [tb.bootstrap], clientId: 'tx-client', logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'tx-topic', numPartitions: 1 }] });
  await admin.disconnect();
  const producer = kafka.producer({ transactionalId: 'orders-tx', idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  let seen: any;
  try {
    const tx = await producer.transaction();
    await tx.send({ topic: 'tx-topic', messages: [{ value: 'never' }] });
    await tx.commit();
  } catch (err) {
    seen = err;
  }
  await producer.disconnect();
  assert.ok(seen, 'the transaction is refused');
  assert.equal(seen.retriable, false, 'not retried: the refusal is final');
  assert.doesNotMatch(String(seen.message), /authoriz/i, 'not an authorization failure');
  assert.notEqual(seen.type, 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED');
  // What the broker said, as a client that reads messages gets it.
  const c = await RawClient.connect(tb.port);
  const fc = await c.request(ApiKey.FindCoordinator, 3, { key: 'orders-tx', keyType: 1, coordinatorKeys: [] });
  c.close();
  assert.equal(fc.body.errorMessage, "transactions are not supported by Meridian (transactional.id 'orders-tx'); use an idempotent producer without a transactional.id");
  // The operator reads who was refused and why, once (retries within 10 s are counted, not logged).
  const refusals = log.lines.filter((l) => l.reason === 'transactional-producer');
  assert.equal(refusals.length, 1, 'one warn line for the refused producer');
  assert.equal(refusals[0].level, 'warn');
  assert.equal(refusals[0].clientId, 'tx-client');
  assert.equal(refusals[0].transactionalId, 'orders-tx');
  assert.match(refusals[0].msg, /transactions are not supported/);
  // An idempotent producer without a transactional id works, and nothing transactional landed.
  const plain = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await plain.connect();
  await plain.send({ topic: 'tx-topic', acks: -1, messages: [{ value: 'idempotent' }] });
  await plain.disconnect();
  assert.deepEqual((await readTopicToEnd(tb.bootstrap, 'tx-topic')).map((m) => m.value!.toString()), ['idempotent']);
});
