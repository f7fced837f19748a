/**
 * `meridian quota` against a running broker whose config gives every principal a 10 MiB/s
 * consumer quota: list shows the defaults, the overrides and the active principals (a
 * KafkaJS client on the PLAINTEXT listener is User:ANONYMOUS); set changes only the flags
 * given (none: no quota, default: back to the default); remove drops the overrides and
 * refuses a principal that has none; a bad value is the broker's INVALID_CONFIG (exit 1),
 * bad usage exits 2 before anything is sent.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { meridian, meridianJson } from '../helpers/cli-run.js';

let tb: TestBroker;
let admin: string;

before(async () => {
  tb = await startBroker({ admin: { host: '127.0.0.1', port: 0 }, security: { quotas: { consumerByteRate: '10MiB' } } });
  admin = `${tb.broker.adminAddress!.host}:${tb.broker.adminAddress!.port}`;
});

after(async () => {
  await tb?.cleanup();
});

test('set, list and remove a principal\'s quotas', async () => {
  const set = await meridian(['quota', 'set', 'User:alice', '--producer-byte-rate', '1MiB', '--request-rate', '100', '--admin', admin]);
  assert.equal(set.code, 0, set.stderr);
  assert.equal(set.stdout, 'User:alice: produce 1.0 MiB/s (override), fetch 10.0 MiB/s (default), requests 100/s (override)\n');
  const noFetch = await meridian(['quota', 'set', 'User:alice', '--consumer-byte-rate', 'none', '--request-rate', 'default', '--admin', admin]);
  assert.equal(noFetch.stdout, 'User:alice: produce 1.0 MiB/s (override), fetch none (override), requests none (default)\n');

  const producer = new Kafka({ clientId: 'cli-quota', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  try {
    await producer.send({ topic: 'cli-quota', messages: [{ value: 'x' }] });
  } finally {
    await producer.disconnect();
  }

  const list = await meridian(['quota', 'list', '--admin', admin]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^default quotas in us-east \(security\.quotas\): produce none, fetch 10\.0 MiB\/s, requests none$/m);
  assert.match(list.stdout, /^PRINCIPAL\s+PRODUCER-BYTE-RATE\s+CONSUMER-BYTE-RATE\s+REQUEST-RATE$/m);
  assert.match(list.stdout, /^User:alice\s+1\.0 MiB\/s\s+none\s+-$/m);
  assert.match(list.stdout, /^User:ANONYMOUS\s+\S+ B\/s \/ none\s+\S+ B\/s \/ 10\.0 MiB\/s\s+/m, 'the anonymous client is active under the default fetch quota');

  const json = await meridianJson(['quota', 'list', '--admin', admin]);
  assert.deepEqual(json.defaults, { producerByteRate: null, consumerByteRate: 10 * 1024 * 1024, requestRate: null });
  assert.deepEqual(json.overrides, [{ principal: 'User:alice', override: { producerByteRate: 1024 * 1024, consumerByteRate: null } }]);
  assert.ok(json.active.some((a: { principal: string; rates: { request: number } }) => a.principal === 'User:ANONYMOUS' && a.rates.request > 0));

  const removed = await meridian(['quota', 'remove', 'User:alice', '--admin', admin]);
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal(removed.stdout, 'User:alice: produce none (default), fetch 10.0 MiB/s (default), requests none (default)\n');
  const again = await meridian(['quota', 'remove', 'User:alice', '--admin', admin]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /refused: NOT_FOUND: User:alice has no quota override/);
});

test('a bad value is refused by the broker (exit 1); bad usage exits 2', async () => {
  const [bad, noPrincipalType, noFlag, misplaced, empty] = await Promise.all([
    meridian(['quota', 'set', 'User:bob', '--producer-byte-rate', 'fast', '--admin', admin]),
    meridian(['quota', 'set', 'bob', '--request-rate', '5', '--admin', admin]),
    meridian(['quota', 'set', 'User:bob', '--admin', admin]),
    meridian(['quota', 'list', '--request-rate', '5', '--admin', admin]),
    meridian(['quota', 'set', 'User:bob', '--request-rate=', '--admin', admin]),
  ]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /refused: INVALID_CONFIG: producerByteRate: expected a whole number of bytes per second or a size like 1MiB/);
  assert.equal(noPrincipalType.code, 2);
  assert.match(noPrincipalType.stderr, /PRINCIPAL: expected Type:name, e\.g\. User:alice, got "bob"/);
  assert.equal(noFlag.code, 2);
  assert.match(noFlag.stderr, /name at least one of --producer-byte-rate, --consumer-byte-rate, --request-rate/);
  assert.equal(misplaced.code, 2);
  assert.match(misplaced.stderr, /are options of quota set/);
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /--request-rate needs a value/);
  assert.deepEqual((await meridianJson(['quota', 'list', '--admin', admin])).overrides, [], 'nothing was set');
});
