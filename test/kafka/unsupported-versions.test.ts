/**
 * Requests at versions the broker does not serve (issue 11): an API whose schema has the
 * version gets its own response at that version with UNSUPPORTED_VERSION, decoded here with
 * the generated codecs, and the connection keeps serving; an unknown key or a version
 * outside the schema closes that connection only. One warn line per (client id, API,
 * version), read from the broker's own log.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { Broker } from '../../src/broker/broker.js';
import { SUPPORTED_VERSIONS } from '../../src/broker/kafka/apis.js';
import { loadConfig } from '../../src/config/load-config.js';
import { createLogger } from '../../src/logging.js';
import { withRunLog } from '../helpers/run-log.js';
import { ApiKey, requestHeaderVersion } from '../../src/protocol/kafka/api-keys.js';
import { messageCodecs } from '../../src/protocol/kafka/messages/index.js';
import { encodeBatch } from '../../src/storage/record-batch.js';
import { decodeResponse, RawClient } from '../helpers/raw-kafka.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const UNSUPPORTED_VERSION = 35;
let broker: Broker;
let port: number;
let cleanupDir: () => void;
const logLines: Array<Record<string, any>> = [];

before(async () => {
  const dir = tmpDir('meridian-unsupported-');
  cleanupDir = dir.cleanup;
  const config = loadConfig({ env: {}, overrides: { dataDir: dir.dir, logging: { level: 'warn' }, kafka: { host: '127.0.0.1', port: 0 } } });
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line.trim() !== '') logLines.push(JSON.parse(line));
      done();
    },
  });
  broker = await Broker.start(config, createLogger({ name: 'unsupported-test', ...withRunLog('warn', destination) }));
  port = broker.kafkaPort;
});
after(async () => {
  await broker.close();
  cleanupDir();
});

/** Sends one request as `clientId` and decodes the answer at the same version. */
async function ask(c: RawClient, key: number, version: number, body: unknown, clientId: string): Promise<any> {
  c.send(c.frame(key, version, body, 7, clientId));
  const f = await c.next();
  assert.ok(f !== null, `key ${key} v${version}: the connection closed instead of answering`);
  const r = decodeResponse<any>(key, version, f);
  assert.equal(r.correlationId, 7);
  return r.body;
}

const warnsFor = (api: string, version: number, clientId: string | null) => logLines.filter((l) => l.level === 'warn' && l.api === api && l.version === version && l.clientId === clientId);

/** A version inside the schema that the broker does not serve, below its served range. */
function unservedBelow(key: number): number {
  const [min] = SUPPORTED_VERSIONS.get(key)!;
  assert.ok(min > messageCodecs.get(key)!.minVersion, `key ${key}: every version of its schema from the oldest is served`);
  return min - 1;
}

test('unserved versions of several APIs decode as UNSUPPORTED_VERSION and the connection keeps serving', async () => {
  const c = await RawClient.connect(port);
  const other = await RawClient.connect(port);

  // Produce below 3 (advertised from 0 for librdkafka's sake, served from 3): one error per partition asked.
  const pv = unservedBelow(ApiKey.Produce);
  const produce = await ask(c, ApiKey.Produce, pv, { transactionalId: null, acks: -1, timeoutMs: 1000, topicData: [{ name: 'uv', partitionData: [{ index: 0, records: encodeBatch({ records: [{ value: Buffer.from('x') }] }) }, { index: 1, records: null }] }] }, 'client-a');
  assert.deepEqual(
    produce.responses.map((t: any) => [t.name, t.partitionResponses.map((p: any) => [p.index, p.errorCode, p.baseOffset])]),
    [['uv', [[0, UNSUPPORTED_VERSION, -1n], [1, UNSUPPORTED_VERSION, -1n]]]],
  );

  // ConsumerGroupHeartbeat: an API Meridian does not serve at all; its response has a top-level error and message.
  const heartbeat = await ask(
    c,
    ApiKey.ConsumerGroupHeartbeat,
    0,
    { groupId: 'g', memberId: 'm', memberEpoch: 0, instanceId: null, rackId: null, rebalanceTimeoutMs: 1000, subscribedTopicNames: ['uv'], subscribedTopicRegex: null, serverAssignor: null, topicPartitions: [] },
    'client-a',
  );
  assert.equal(heartbeat.errorCode, UNSUPPORTED_VERSION, 'ConsumerGroupHeartbeat v0');
  assert.match(heartbeat.errorMessage, /ConsumerGroupHeartbeat versions not served, not version 0/);

  // EndTxn (flexible v3, header v2): the top-level error code.
  const endTxn = await ask(c, ApiKey.EndTxn, 3, { transactionalId: 't', producerId: 1n, producerEpoch: 0, committed: true }, 'client-a');
  assert.equal(endTxn.errorCode, UNSUPPORTED_VERSION);

  // The same connection still serves, and so does another one.
  const av = await c.request(ApiKey.ApiVersions, 3, { clientSoftwareName: 'raw', clientSoftwareVersion: '1' });
  assert.equal(av.body.errorCode, 0);
  assert.equal((await other.request(ApiKey.Metadata, 9, { topics: null, allowAutoTopicCreation: false, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false })).body.brokers[0].port, port);
  assert.equal(c.closed, false);
  c.close();
  other.close();
});

test('one warn line per client id, API and version, naming them', async () => {
  const c = await RawClient.connect(port);
  const pv = unservedBelow(ApiKey.Produce);
  const produce = { transactionalId: null, acks: -1, timeoutMs: 1000, topicData: [{ name: 'warn-once', partitionData: [{ index: 0, records: null }] }] };
  for (let i = 0; i < 5; i++) await ask(c, ApiKey.Produce, pv, produce, 'warn-client');
  await ask(c, ApiKey.Produce, pv, produce, 'warn-client-2');
  const firstClient = warnsFor('Produce', pv, 'warn-client');
  assert.equal(firstClient.length, 1, 'five requests, one line');
  assert.match(firstClient[0].msg, /unsupported API version/);
  assert.equal(firstClient[0].served, `${SUPPORTED_VERSIONS.get(ApiKey.Produce)![0]}-${SUPPORTED_VERSIONS.get(ApiKey.Produce)![1]}`);
  assert.equal(warnsFor('Produce', pv, 'warn-client-2').length, 1, 'another client gets its own line');
  c.close();
});

test('an unknown API key or a version beyond the schema closes that connection only, with one warn line', async () => {
  const survivor = await RawClient.connect(port);
  for (const [key, version, api] of [[999, 0, 'unknown key 999'], [ApiKey.Metadata, messageCodecs.get(ApiKey.Metadata)!.maxVersion + 1, 'Metadata']] as const) {
    for (let attempt = 0; attempt < 2; attempt++) {
      const c = await RawClient.connect(port);
      const flexible = requestHeaderVersion(key, version) === 2;
      const f = Buffer.alloc(4 + 10 + (flexible ? 1 : 0));
      f.writeInt32BE(f.length - 4, 0);
      f.writeInt16BE(key, 4);
      f.writeInt16BE(version, 6);
      f.writeInt32BE(99, 8);
      f.writeInt16BE(-1, 12); // null client id
      c.send(f);
      assert.equal(await c.next(), null, `key ${key} v${version}: closed without an answer`);
    }
    assert.equal(warnsFor(api, version, null).length, 1, `${api} v${version}: one warn line for two attempts`);
  }
  const r = await survivor.request(ApiKey.ApiVersions, 3, { clientSoftwareName: 'raw', clientSoftwareVersion: '1' });
  assert.equal(r.body.errorCode, 0);
  survivor.close();
});

test('ApiVersions v3 and v4 take the client software name; an invalid one gets INVALID_REQUEST', async () => {
  const c = await RawClient.connect(port);
  for (const v of [3, 4]) {
    const ok = await c.request(ApiKey.ApiVersions, v, { clientSoftwareName: 'my-client.js', clientSoftwareVersion: '1.2.3' });
    assert.equal(ok.body.errorCode, 0, `ApiVersions v${v}`);
    assert.deepEqual(ok.body.apiKeys.find((k: any) => k.apiKey === ApiKey.ApiVersions), { apiKey: ApiKey.ApiVersions, minVersion: 0, maxVersion: 4 });
    const bad = await c.request(ApiKey.ApiVersions, v, { clientSoftwareName: '@scope/client', clientSoftwareVersion: '1' });
    assert.equal(bad.body.errorCode, 42, `ApiVersions v${v} with an invalid software name`);
  }
  assert.equal((await c.request(ApiKey.ApiVersions, 4, { clientSoftwareName: 'again', clientSoftwareVersion: '1' })).body.errorCode, 0);
  c.close();
});
