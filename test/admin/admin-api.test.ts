/**
 * The admin API of a real broker (tiered storage on a directory store), every endpoint
 * through `app.inject()` and over real HTTP, with and without the token; every answer
 * checked against the schema the OpenAPI document gives for its route and status. Topics
 * made through the API are checked with KafkaJS, as a user would: the partition count and
 * configs it describes, records produced and read, and gone after DELETE. A KafkaJS group's
 * committed offsets and lag, an offload run to completion, and what the broker logs (never
 * the token).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Kafka, logLevel, type ConfigResourceTypes } from 'kafkajs';
import { buildAdminApp } from '../../src/admin/app.js';
import { captureLog, startBroker, type TestBroker } from '../helpers/broker.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';
import { httpTransport, injectTransport, OpenApiChecker, type Transport } from './admin-client.js';
import { SECRETS } from '../helpers/secrets.js';

const TOKEN = SECRETS.adminApiToken;
/** Kafka's ConfigResource.Type for a topic (KafkaJS exports the enum as a type only under ESM). */
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;
const log = captureLog();
let tb: TestBroker;
let store: { dir: string; cleanup: () => void };
let checker: OpenApiChecker;

/** Every route of the contract, as OpenAPI spells it. */
const ROUTES = [
  'GET /v1/health',
  'GET /v1/ready',
  'GET /v1/cluster',
  'GET /v1/regions',
  'GET /v1/topics',
  'POST /v1/topics',
  'GET /v1/topics/{name}',
  'DELETE /v1/topics/{name}',
  'POST /v1/partitions/reassign',
  'GET /v1/partitions/reassign',
  'GET /v1/partitions/{topic}/{partition}',
  'DELETE /v1/partitions/{topic}/{partition}/reassignment',
  'GET /v1/replication/status',
  'GET /v1/replication/policies',
  'POST /v1/replication/policies/validate',
  'PUT /v1/replication/policies',
  'DELETE /v1/replication/policies',
  'GET /v1/tiered/status',
  'POST /v1/tiered/offload',
  'GET /v1/groups',
  'GET /v1/groups/{id}',
  'GET /v1/dr',
  'GET /v1/dr/groups',
  'GET /v1/dr/groups/{id}',
  'POST /v1/dr/promote',
  'POST /v1/dr/failback',
  'GET /v1/dr/reports',
  'GET /v1/dr/reports/{id}',
  'GET /v1/security',
  'GET /v1/security/users',
  'PUT /v1/security/users/{user}',
  'DELETE /v1/security/users/{user}',
  'GET /v1/security/quotas',
  'PUT /v1/security/quotas/{principal}',
  'DELETE /v1/security/quotas/{principal}',
  'GET /v1/security/acls',
  'POST /v1/security/acls',
  'DELETE /v1/security/acls',
  'GET /v1/runtime',
  'POST /v1/runtime/reset',
  'GET /metrics',
  'GET /openapi.json',
];

function kafka(): Kafka {
  return new Kafka({ clientId: 'admin-api-test', brokers: [tb.bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 10, initialRetryTime: 100 } });
}

before(async () => {
  store = tmpDir('meridian-admin-store-');
  tb = await startBroker(
    {
      admin: { port: 0, token: TOKEN },
      groups: { initialRebalanceDelayMs: 0 },
      tiered: { enabled: true, store: { type: 'fs', dir: store.dir }, offload: { onSeal: false }, checkIntervalMs: 100 },
      logging: { level: 'info' },
    },
    undefined,
    { log },
  );
  const doc = await (await fetch(`http://127.0.0.1:${tb.broker.adminPort}/openapi.json`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
  checker = new OpenApiChecker(doc);
});

after(async () => {
  await tb.cleanup();
  store.cleanup();
});

test('the OpenAPI document parses, lists every route of the contract and compiles', () => {
  const doc = checker.doc;
  assert.match(doc.openapi, /^3\.1\./);
  const listed = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
  assert.deepEqual([...listed].sort(), [...ROUTES].sort());
  for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
    for (const [method, op] of Object.entries(ops)) {
      assert.ok(op.summary, `${method} ${path} has a summary`);
      assert.ok(Object.keys(op.responses).length > 0, `${method} ${path} documents its responses`);
    }
  }
  for (const id of ['Error', 'TopicDetail', 'WorkerStatus', 'LinkStatus', 'PolicySet', 'LinkChange']) assert.ok(doc.components.schemas[id], `components.schemas.${id}`);
});

/**
 * One walk through every endpoint over `call`; `prefix` keeps the topics of the two
 * transports apart. Returns nothing: every answer is asserted and schema-checked.
 */
async function everyEndpoint(call: Transport, prefix: string): Promise<void> {
  const ok = async (method: string, route: string, path: string, status: number, body?: unknown) => {
    const a = await call(method, path, body, TOKEN);
    assert.equal(a.status, status, `${method} ${path}: ${JSON.stringify(a.body)}`);
    checker.check(method, route, a);
    return a.body;
  };
  assert.deepEqual(await ok('GET', '/v1/health', '/v1/health', 200), { status: 'ok' });
  assert.deepEqual(await ok('GET', '/v1/ready', '/v1/ready', 200), { ready: true, reasons: [] });
  const cluster = await ok('GET', '/v1/cluster', '/v1/cluster', 200);
  assert.equal(cluster.region, 'us-east');
  assert.deepEqual(cluster.kafka, { host: '127.0.0.1', port: tb.port });
  assert.deepEqual(cluster.admin, { host: '127.0.0.1', port: tb.broker.adminPort });
  assert.deepEqual(cluster.tiered.enabled, true);
  // The runtime window: a loop stalled for 60 ms shows as a delay of at least 40 ms
  // (sampled every 10 ms); a reset returns the window that ended and starts an empty one.
  await ok('POST', '/v1/runtime/reset', '/v1/runtime/reset', 200);
  // The histogram's first sample after a reset only starts its clock.
  await waitFor('the delay histogram sampling again', async () => (await call('GET', '/v1/runtime', undefined, TOKEN)).body.eventLoopDelayMs.samples > 1);
  const before = (await call('GET', '/v1/runtime', undefined, TOKEN)).body.eventLoopDelayMs.samples;
  const stallUntil = performance.now() + 60;
  while (performance.now() < stallUntil);
  // The late sample is taken when the loop next runs its timers (app.inject may not turn it).
  await waitFor('a sample after the stall', async () => (await call('GET', '/v1/runtime', undefined, TOKEN)).body.eventLoopDelayMs.samples > before);
  let garbage: unknown[] = [];
  for (let i = 0; i < 200_000; i++) garbage.push({ i, s: `x${i}` });
  garbage = [];
  await waitFor('a GC pause observed', async () => (await call('GET', '/v1/runtime', undefined, TOKEN)).body.gc.count > 0);
  const runtime = await ok('GET', '/v1/runtime', '/v1/runtime', 200);
  assert.ok(runtime.eventLoopDelayMs.max >= 40, `the 60 ms stall is seen: ${JSON.stringify(runtime.eventLoopDelayMs)}`);
  assert.ok(runtime.eventLoopDelayMs.samples > 0);
  assert.ok(runtime.gc.maxMs > 0 && runtime.gc.totalMs >= runtime.gc.maxMs);
  assert.equal(Object.values(runtime.gc.byKind as Record<string, { count: number }>).reduce((n, k) => n + k.count, 0), runtime.gc.count);
  assert.ok(runtime.memory.rssBytes > runtime.memory.heapUsedBytes);
  const ended = await ok('POST', '/v1/runtime/reset', '/v1/runtime/reset', 200);
  assert.ok(ended.eventLoopDelayMs.max >= 40 && ended.gc.count >= runtime.gc.count);
  const fresh = await ok('GET', '/v1/runtime', '/v1/runtime', 200);
  assert.ok(fresh.eventLoopDelayMs.max < ended.eventLoopDelayMs.max, `a new window forgets the stall: ${JSON.stringify(fresh.eventLoopDelayMs)}`);
  assert.ok(fresh.sinceMs >= ended.sinceMs);

  const regions = await ok('GET', '/v1/regions', '/v1/regions', 200);
  assert.equal(regions.length, 1);
  assert.equal(regions[0].self, true);
  assert.equal(regions[0].policiesAgree, true);

  const topic = `${prefix}-orders`;
  const created = await ok('POST', '/v1/topics', '/v1/topics', 201, { name: topic, partitions: 3, configs: { 'retention.ms': 3_600_000, 'segment.bytes': '1048576' } });
  assert.equal(created.partitions.length, 3);
  assert.deepEqual(
    created.configs.filter((c: any) => c.source === 'DYNAMIC_TOPIC_CONFIG').map((c: any) => [c.name, c.value]),
    [['retention.ms', '3600000'], ['segment.bytes', '1048576']],
  );
  const again = await call('POST', '/v1/topics', { name: topic }, TOKEN);
  assert.equal(again.status, 409);
  assert.equal(again.body.error.code, 'TOPIC_EXISTS');
  checker.check('POST', '/v1/topics', again);
  const badConfig = await call('POST', '/v1/topics', { name: `${prefix}-bad`, configs: { 'cleanup.policy': 'compact' } }, TOKEN);
  assert.equal(badConfig.status, 400);
  assert.equal(badConfig.body.error.code, 'INVALID_CONFIG');
  assert.match(badConfig.body.error.message, /compaction is not supported/);
  const badBody = await call('POST', '/v1/topics', { partitions: 2 }, TOKEN);
  assert.equal(badBody.status, 400);
  assert.equal(badBody.body.error.code, 'BAD_REQUEST');
  assert.match(badBody.body.error.message, /name/);

  const list = await ok('GET', '/v1/topics', '/v1/topics', 200);
  const listed = list.find((x: any) => x.name === topic);
  assert.deepEqual(listed.configs, { 'retention.ms': '3600000', 'segment.bytes': '1048576' });
  assert.equal(listed.partitions, 3);
  const detail = await ok('GET', '/v1/topics/{name}', `/v1/topics/${topic}`, 200);
  assert.deepEqual(detail.partitions.map((p: any) => p.highWatermark), ['0', '0', '0']);
  const missing = await call('GET', `/v1/topics/${prefix}-nope`, undefined, TOKEN);
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error.code, 'UNKNOWN_TOPIC');
  checker.check('GET', '/v1/topics/{name}', missing);

  const status = await ok('GET', '/v1/replication/status', '/v1/replication/status', 200);
  assert.deepEqual(status.workers, []);
  const policies = await ok('GET', '/v1/replication/policies', '/v1/replication/policies', 200);
  assert.equal(policies.source, 'config');
  const dry = await ok('POST', '/v1/replication/policies/validate', '/v1/replication/policies/validate', 200, { policies: [{ topics: '*', topology: 'mesh', regions: ['us-east', 'nowhere'] }] });
  assert.equal(dry.valid, false);
  assert.match(dry.errors[0].message, /"nowhere" is not a region/);
  const refused = await call('PUT', '/v1/replication/policies', { policies: [{ topics: '*', topology: 'mesh', regions: ['us-east', 'nowhere'] }] }, TOKEN);
  assert.equal(refused.status, 400);
  assert.equal(refused.body.error.code, 'BAD_CONFIG');
  checker.check('PUT', '/v1/replication/policies', refused);
  const put = await ok('PUT', '/v1/replication/policies', '/v1/replication/policies', 200, { policies: [] });
  assert.equal(put.source, 'runtime');
  assert.equal(put.fingerprint, policies.fingerprint, 'the same (empty) set has the same fingerprint');
  const reverted = await ok('DELETE', '/v1/replication/policies', '/v1/replication/policies', 200);
  assert.equal(reverted.source, 'config');

  await waitFor('the new topic attached to the object store', async () => (await call('GET', '/v1/tiered/status', undefined, TOKEN)).body.partitions.some((p: any) => p.topic === topic));
  const tiered = await ok('GET', '/v1/tiered/status', '/v1/tiered/status', 200);
  assert.equal(tiered.enabled, true);
  assert.equal(tiered.store, `file://${store.dir}/us-east`);
  const offload = await ok('POST', '/v1/tiered/offload', '/v1/tiered/offload', 202, { topic });
  assert.deepEqual(offload.topics, [topic]);
  const notTiered = await call('POST', '/v1/tiered/offload', { topic: `${prefix}-nope` }, TOKEN);
  assert.equal(notTiered.status, 404);

  await ok('GET', '/v1/groups', '/v1/groups', 200);
  const noGroup = await call('GET', `/v1/groups/${prefix}-nobody`, undefined, TOKEN);
  assert.equal(noGroup.status, 404);
  assert.equal(noGroup.body.error.code, 'GROUP_NOT_FOUND');
  checker.check('GET', '/v1/groups/{id}', noGroup);

  const user = `${prefix}-user`;
  const userPath = `/v1/security/users/${encodeURIComponent(user)}`;
  assert.deepEqual(await ok('PUT', '/v1/security/users/{user}', userPath, 200, { password: `${prefix}-pw-for-the-schema`, mechanisms: ['SCRAM-SHA-512'] }), { user, mechanisms: [{ mechanism: 'SCRAM-SHA-512', iterations: 4096 }] });
  assert.ok((await ok('GET', '/v1/security/users', '/v1/security/users', 200)).some((u: { user: string }) => u.user === user));
  await ok('DELETE', '/v1/security/users/{user}', userPath, 204);
  assert.equal((await ok('DELETE', '/v1/security/users/{user}', userPath, 404)).error.code, 'CREDENTIAL_NOT_FOUND');

  const principal = `User:${prefix}-quota`;
  const quotaPath = `/v1/security/quotas/${encodeURIComponent(principal)}`;
  const setQuota = await ok('PUT', '/v1/security/quotas/{principal}', quotaPath, 200, { producerByteRate: '1MiB', requestRate: null });
  assert.deepEqual(setQuota.override, { producerByteRate: 1048576, requestRate: null });
  const quotas = await ok('GET', '/v1/security/quotas', '/v1/security/quotas', 200);
  assert.ok(quotas.overrides.some((o: { principal: string }) => o.principal === principal));
  const badQuota = await call('PUT', quotaPath, { producerByteRate: 'fast' }, TOKEN);
  assert.equal(badQuota.status, 400);
  assert.equal(badQuota.body.error.code, 'INVALID_CONFIG');
  checker.check('PUT', '/v1/security/quotas/{principal}', badQuota);
  await ok('DELETE', '/v1/security/quotas/{principal}', quotaPath, 200);
  const noQuota = await call('DELETE', quotaPath, undefined, TOKEN);
  assert.equal(noQuota.status, 404);
  checker.check('DELETE', '/v1/security/quotas/{principal}', noQuota);

  const acl = { resourceType: 'TOPIC', name: `${prefix}.`, patternType: 'PREFIXED', principal: 'User:reader', operation: 'READ' };
  assert.equal((await ok('POST', '/v1/security/acls', '/v1/security/acls', 201, { acls: [acl] })).created.length, 1);
  assert.equal((await ok('GET', '/v1/security/acls', `/v1/security/acls?name=${prefix}.`, 200)).length, 1);
  assert.equal((await ok('DELETE', '/v1/security/acls', `/v1/security/acls?name=${prefix}.`, 200)).deleted.length, 1);

  const metrics = await call('GET', '/metrics', undefined, TOKEN);
  assert.equal(metrics.status, 200);
  assert.match(metrics.contentType, /^text\/plain/);
  assert.match(metrics.body, /^# (HELP|TYPE) /m);
  const notFound = await call('GET', '/v1/nothing-here', undefined, TOKEN);
  assert.equal(notFound.status, 404);
  assert.equal(notFound.body.error.code, 'NOT_FOUND');

  await ok('DELETE', '/v1/topics/{name}', `/v1/topics/${topic}`, 204);
  assert.equal((await call('GET', `/v1/topics/${topic}`, undefined, TOKEN)).status, 404);
}

test('every endpoint through app.inject(), schema-valid answers', async () => {
  const app = await buildAdminApp(tb.broker, { token: TOKEN, openReads: false, address: () => tb.broker.adminAddress ?? null });
  try {
    await everyEndpoint(injectTransport(app), 'inject');
  } finally {
    await app.close();
  }
});

test('every endpoint over HTTP against the running broker, schema-valid answers', async () => {
  await everyEndpoint(httpTransport(`http://127.0.0.1:${tb.broker.adminPort}`), 'http');
});

test('without the token (or with a wrong one) every call but the probes is refused with 401 JSON; openReads opens the reads only', async () => {
  const http = httpTransport(`http://127.0.0.1:${tb.broker.adminPort}`);
  for (const route of ROUTES) {
    const [method, path] = route.split(' ');
    const concrete = path.replace('{name}', 'x').replace('{id}', 'g');
    const body = method === 'GET' || method === 'DELETE' ? undefined : {};
    for (const token of [undefined, 'wrong-token']) {
      const a = await http(method, concrete, body, token);
      if (path === '/v1/health' || path === '/v1/ready') {
        assert.equal(a.status, 200, `${route} is open to load balancers`);
        continue;
      }
      assert.equal(a.status, 401, `${route} with ${token ?? 'no token'}`);
      assert.equal(a.body.error.code, 'UNAUTHORIZED');
      assert.match(a.body.error.message, token === undefined ? /needs the admin token/ : /token is wrong/);
      checker.check(method, path, a);
    }
  }
  const app = await buildAdminApp(tb.broker, { token: TOKEN, openReads: true });
  try {
    const inject = injectTransport(app);
    assert.equal((await inject('GET', '/v1/topics')).status, 200);
    assert.equal((await inject('GET', '/v1/replication/policies')).status, 200);
    const write = await inject('POST', '/v1/topics', { name: 'open-reads' });
    assert.equal(write.status, 401);
    assert.equal(write.body.error.code, 'UNAUTHORIZED');
    assert.equal((await inject('PUT', '/v1/replication/policies', { policies: [] })).status, 401);
    assert.equal(tb.broker.topics.getTopic('open-reads'), undefined);
  } finally {
    await app.close();
  }
  const noToken = await buildAdminApp(tb.broker, { token: null, openReads: false });
  try {
    assert.equal((await injectTransport(noToken)('GET', '/v1/topics')).status, 200, 'no token configured: every call allowed (loopback only)');
  } finally {
    await noToken.close();
  }
});

test('a topic made through the API is what KafkaJS sees: partitions, configs, records; after DELETE it is gone', async () => {
  const http = httpTransport(`http://127.0.0.1:${tb.broker.adminPort}`);
  const topic = 'roundtrip';
  assert.equal((await http('POST', '/v1/topics', { name: topic, partitions: 2, configs: { 'retention.ms': '7200000', 'max.message.bytes': 500000 } }, TOKEN)).status, 201);
  const admin = kafka().admin();
  await admin.connect();
  try {
    const meta = await admin.fetchTopicMetadata({ topics: [topic] });
    assert.equal(meta.topics[0].partitions.length, 2);
    const described = await admin.describeConfigs({ resources: [{ type: TOPIC_RESOURCE, name: topic, configNames: ['retention.ms', 'max.message.bytes'] }], includeSynonyms: false });
    const entries = Object.fromEntries(described.resources[0].configEntries.map((e) => [e.configName, e.configValue]));
    assert.deepEqual(entries, { 'retention.ms': '7200000', 'max.message.bytes': '500000' });

    const producer = kafka().producer();
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: Array.from({ length: 10 }, (_, i) => ({ partition: i % 2, value: `v${i}` })) });
    await producer.disconnect();
    const detail = (await http('GET', `/v1/topics/${topic}`, undefined, TOKEN)).body;
    assert.deepEqual(detail.partitions.map((p: any) => p.highWatermark), ['5', '5']);
    assert.ok(detail.partitions.every((p: any) => p.localBytes > 0));
    const listed = (await http('GET', '/v1/topics', undefined, TOKEN)).body.find((x: any) => x.name === topic);
    assert.equal(listed.localBytes, detail.partitions[0].localBytes + detail.partitions[1].localBytes);

    assert.equal((await http('DELETE', `/v1/topics/${topic}`, undefined, TOKEN)).status, 204);
    assert.ok(!(await admin.listTopics()).includes(topic));
    const gone = await http('DELETE', `/v1/topics/${topic}`, undefined, TOKEN);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.code, 'UNKNOWN_TOPIC');
  } finally {
    await admin.disconnect();
  }
});

test('a KafkaJS group: members with their assignments while it runs, committed offsets and lag = high watermark - committed', async () => {
  const http = httpTransport(`http://127.0.0.1:${tb.broker.adminPort}`);
  const topic = 'grouped';
  const groupId = 'billing';
  await http('POST', '/v1/topics', { name: topic, partitions: 2 }, TOKEN);
  const producer = kafka().producer();
  await producer.connect();
  await producer.send({ topic, acks: -1, messages: Array.from({ length: 20 }, (_, i) => ({ partition: i % 2, value: `v${i}` })) });
  const consumer = kafka().consumer({ groupId });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  await consumer.run({ eachMessage: async () => void seen++ });
  try {
    const running = await waitFor('the group stable with its committed offsets at the end', async () => {
      const a = await http('GET', `/v1/groups/${groupId}`, undefined, TOKEN);
      return a.status === 200 && a.body.state === 'Stable' && a.body.offsets.length === 2 && a.body.lag === 0 ? a : undefined;
    });
    checker.check('GET', '/v1/groups/{id}', running);
    assert.equal(running.body.members.length, 1);
    assert.deepEqual(running.body.members[0].assignments, [{ topic, partitions: [0, 1] }]);
    assert.deepEqual(running.body.offsets.map((o: any) => [o.partition, o.committedOffset, o.highWatermark, o.lag]), [[0, '10', '10', 0], [1, '10', '10', 0]]);
    assert.equal(seen, 20);
  } finally {
    await consumer.disconnect();
  }
  await producer.send({ topic, acks: -1, messages: Array.from({ length: 6 }, (_, i) => ({ partition: 0, value: `late${i}` })) });
  await producer.disconnect();
  const described = (await http('GET', `/v1/groups/${groupId}`, undefined, TOKEN)).body;
  assert.deepEqual(described.offsets.map((o: any) => [o.partition, o.lag]), [[0, 6], [1, 0]]);
  assert.equal(described.lag, 6);
  assert.deepEqual(described.members, []);
  const list = await http('GET', '/v1/groups', undefined, TOKEN);
  checker.check('GET', '/v1/groups', list);
  assert.deepEqual(list.body.find((g: any) => g.groupId === groupId), { groupId, state: 'Empty', protocolType: 'consumer', members: 0, lag: 6 });
});

test('POST /v1/tiered/offload: every partition reaches its target in the object store; the status shows the bytes', async () => {
  const http = httpTransport(`http://127.0.0.1:${tb.broker.adminPort}`);
  const topic = 'cold';
  await http('POST', '/v1/topics', { name: topic, partitions: 2 }, TOKEN);
  const producer = kafka().producer();
  await producer.connect();
  await producer.send({ topic, acks: -1, messages: Array.from({ length: 50 }, (_, i) => ({ partition: i % 2, value: Buffer.alloc(1000, i) })) });
  await producer.disconnect();
  await waitFor('the new topic attached to the object store', async () => (await http('GET', '/v1/tiered/status', undefined, TOKEN)).body.partitions.some((p: any) => p.topic === topic));
  const started = await http('POST', '/v1/tiered/offload', {}, TOKEN);
  assert.equal(started.status, 202);
  checker.check('POST', '/v1/tiered/offload', started);
  assert.ok(started.body.topics.includes(topic));
  const targets = started.body.partitions.filter((p: any) => p.topic === topic);
  assert.deepEqual(targets.map((p: any) => p.targetEndOffset), ['25', '25']);
  assert.ok(started.body.segmentsQueued >= 2 && started.body.bytesQueued >= 50_000, JSON.stringify(started.body));
  const done = await waitFor('both partitions offloaded to their targets', async () => {
    const s = await http('GET', '/v1/tiered/status', undefined, TOKEN);
    const mine = s.body.partitions.filter((p: any) => p.topic === topic);
    return mine.length === 2 && mine.every((p: any) => p.remoteEndOffset === '25') ? s : undefined;
  });
  checker.check('GET', '/v1/tiered/status', done);
  const listed = (await http('GET', '/v1/topics', undefined, TOKEN)).body.find((x: any) => x.name === topic);
  assert.ok(listed.tieredBytes >= 50_000, `tieredBytes ${listed.tieredBytes}`);
  const detail = (await http('GET', `/v1/topics/${topic}`, undefined, TOKEN)).body;
  assert.deepEqual(detail.partitions.map((p: any) => p.remoteEndOffset), ['25', '25']);
});

test('the broker logs admin mutations without the token', () => {
  const text = log.lines.map((l) => JSON.stringify(l)).join('\n');
  assert.ok(!text.includes(TOKEN), 'the token appears in the log');
  assert.ok(log.lines.some((l) => l.msg === 'admin call' && l.method === 'POST' && l.status === 201));
});
