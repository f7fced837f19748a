/**
 * /v1/security/acls over real HTTP against a broker with a SASL_PLAINTEXT listener,
 * authorization on and an admin token: an ACL created with POST lets a SCRAM user (KafkaJS)
 * see a topic in Metadata at once, DELETE takes it away again on the same open connection;
 * GET filters as DescribeAcls does (principal, resource, MATCH), shows what KafkaJS's
 * DescribeAcls shows, and what is on disk in acls.json. A body with one invalid ACL creates
 * none (400 INVALID_ACL naming why), a DELETE without a filter is refused, mutations need the
 * token. Answers fit the OpenAPI document.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { SECRETS } from '../helpers/secrets.js';
import { httpTransport, OpenApiChecker, type Transport } from './admin-client.js';

const TOKEN = SECRETS.adminApiToken;
const PASSWORDS = { admin: SECRETS.saslAdmin, carol: SECRETS.saslAlice };

let tb: TestBroker;
let call: Transport;
let openapi: OpenApiChecker;

const readOrders = { resourceType: 'TOPIC', name: 'orders', principal: 'User:carol', operation: 'READ' };

before(async () => {
  tb = await startBroker({
    kafka: { listeners: [{ name: 'SASL', host: '127.0.0.1', port: 0, securityProtocol: 'SASL_PLAINTEXT' }] },
    admin: { host: '127.0.0.1', port: 0, token: TOKEN },
    security: { bootstrap: { user: 'admin', password: PASSWORDS.admin }, authorization: { enabled: true, superUsers: ['User:admin'] } },
  });
  tb.broker.security.credentials.upsert('carol', 'SCRAM-SHA-256', PASSWORDS.carol);
  const a = tb.broker.adminAddress!;
  const http = httpTransport(`http://${a.host}:${a.port}`);
  call = (method, path, body, token = TOKEN) => http(method, path, body, token);
  openapi = new OpenApiChecker((await call('GET', '/openapi.json')).body);
  const admin = kafkaAs('admin').admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'orders' }, { topic: 'payments' }] });
  await admin.disconnect();
});

after(async () => {
  await tb?.cleanup();
});

function kafkaAs(user: keyof typeof PASSWORDS): Kafka {
  return new Kafka({ clientId: 'acl-routes', brokers: [`127.0.0.1:${tb.broker.kafkaPort}`], logLevel: logLevel.NOTHING, retry: { retries: 0 }, sasl: { mechanism: 'scram-sha-256', username: user, password: PASSWORDS[user] } });
}

test('POST creates ACLs that apply at once; GET lists and filters them as KafkaJS DescribeAcls sees them; DELETE applies to an open connection', async () => {
  const carol = kafkaAs('carol').admin();
  await carol.connect();
  try {
    assert.deepEqual(await carol.listTopics(), []);
    const created = await call('POST', '/v1/security/acls', { acls: [readOrders, { resourceType: 'GROUP', name: 'carol.', patternType: 'PREFIXED', principal: 'User:carol', operation: 'READ' }] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    openapi.check('POST', '/v1/security/acls', created);
    const expected = { ...readOrders, patternType: 'LITERAL', host: '*', permission: 'ALLOW' };
    assert.deepEqual(created.body.created[0], expected);
    assert.deepEqual(await carol.listTopics(), ['orders'], 'READ implies DESCRIBE: Metadata shows the topic');

    const all = await call('GET', '/v1/security/acls');
    openapi.check('GET', '/v1/security/acls', all);
    assert.equal(all.body.length, 2);
    assert.deepEqual((await call('GET', '/v1/security/acls?resourceType=TOPIC&name=orders')).body, [expected]);
    assert.deepEqual((await call('GET', '/v1/security/acls?resourceType=GROUP&name=carol.g1&patternType=MATCH')).body.map((a: { name: string }) => a.name), ['carol.']);
    assert.deepEqual((await call('GET', '/v1/security/acls?principal=User:nobody')).body, []);
    const stored = JSON.parse(fs.readFileSync(tb.broker.security.acls.file, 'utf8'));
    assert.equal(stored.acls.length, 2);

    const described = await kafkaAs('admin').admin();
    await described.connect();
    const r = await described.describeAcls({ resourceType: 2, resourcePatternType: 1, operation: 1, permissionType: 1 } as Parameters<typeof described.describeAcls>[0]);
    await described.disconnect();
    assert.deepEqual(r.resources.map((x) => [x.resourceName, x.acls.map((a) => a.principal)]), [['orders', ['User:carol']]]);

    const deleted = await call('DELETE', '/v1/security/acls?resourceType=TOPIC&name=orders&principal=User:carol');
    assert.equal(deleted.status, 200);
    openapi.check('DELETE', '/v1/security/acls', deleted);
    assert.deepEqual(deleted.body, { deleted: [expected] });
    assert.deepEqual(await carol.listTopics(), [], 'the same connection no longer sees the topic');
  } finally {
    await carol.disconnect();
  }
});

test('one invalid ACL in a POST creates none (400 INVALID_ACL naming why); a DELETE without a filter and calls without the token are refused', async () => {
  const before = (await call('GET', '/v1/security/acls')).body.length;
  const bad = await call('POST', '/v1/security/acls', { acls: [readOrders, { resourceType: 'TOPIC', name: 'x', principal: 'carol', operation: 'READ' }] });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'INVALID_ACL');
  assert.match(bad.body.error.message, /Invalid principal "carol": expected principalType:principalName/);
  assert.equal((await call('GET', '/v1/security/acls')).body.length, before, 'nothing created');

  const cluster = await call('POST', '/v1/security/acls', { acls: [{ resourceType: 'CLUSTER', name: 'other', principal: 'User:carol', operation: 'ALTER' }] });
  assert.equal(cluster.status, 400);
  assert.match(cluster.body.error.message, /kafka-cluster/);

  const unfiltered = await call('DELETE', '/v1/security/acls');
  assert.equal(unfiltered.status, 400);
  assert.match(unfiltered.body.error.message, /at least resourceType, name or principal/);

  assert.equal((await call('POST', '/v1/security/acls', { acls: [readOrders] }, '')).status, 401);
  assert.equal((await call('DELETE', '/v1/security/acls?principal=User:carol', undefined, '')).status, 401);
  assert.equal((await call('GET', '/v1/security/acls?operation=NOPE')).status, 400);
});
