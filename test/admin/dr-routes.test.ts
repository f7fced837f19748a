/**
 * The /v1/dr routes' refusals through `app.inject()` on a real broker (a region of one, no
 * DR topics): a promote naming two scopes (or none) is 400 INVALID_DR_REQUEST and promotes
 * nothing; a report id that was never saved is 404 DR_NOT_FOUND, one that cannot be an id
 * 400; every answer fits the schema the OpenAPI document gives its route and status.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildAdminApp } from '../../src/admin/app.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { injectTransport, OpenApiChecker, type Transport } from './admin-client.js';

let tb: TestBroker;
let app: FastifyInstance;
let call: Transport;
let checker: OpenApiChecker;

before(async () => {
  tb = await startBroker({ admin: { host: '127.0.0.1', port: 0 } });
  app = await buildAdminApp(tb.broker, { token: null, openReads: false });
  call = injectTransport(app);
  const doc = await call('GET', '/openapi.json');
  assert.equal(doc.status, 200);
  checker = new OpenApiChecker(doc.body);
});

after(async () => {
  await app?.close();
  await tb?.cleanup();
});

test('POST /v1/dr/promote with two scopes, or none, is 400 INVALID_DR_REQUEST and changes nothing', async () => {
  for (const body of [{ topic: 'orders', region: tb.config.region }, { topic: 'orders', policy: 'dr' }, {}]) {
    const a = await call('POST', '/v1/dr/promote', body);
    assert.equal(a.status, 400, JSON.stringify(a.body));
    assert.equal(a.body.error.code, 'INVALID_DR_REQUEST');
    assert.match(a.body.error.message, /exactly one of topic, policy or region/);
    checker.check('POST', '/v1/dr/promote', a);
  }
  const reports = await call('GET', '/v1/dr/reports');
  assert.equal(reports.status, 200);
  assert.deepEqual(reports.body, []);
  checker.check('GET', '/v1/dr/reports', reports);
});

test('GET /v1/dr/reports/:id for an id never saved is 404 DR_NOT_FOUND; one that cannot be an id is 400', async () => {
  const missing = await call('GET', '/v1/dr/reports/promote-orders-e7');
  assert.equal(missing.status, 404);
  assert.equal(missing.body.error.code, 'DR_NOT_FOUND');
  assert.match(missing.body.error.message, /no DR report promote-orders-e7/);
  checker.check('GET', '/v1/dr/reports/{id}', missing);

  const bad = await call('GET', `/v1/dr/reports/${encodeURIComponent('../state')}`);
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'INVALID_DR_REQUEST');
  checker.check('GET', '/v1/dr/reports/{id}', bad);
});

test('GET /v1/dr of a region without DR topics, and a group that never committed: 404 DR_NOT_FOUND', async () => {
  const s = await call('GET', '/v1/dr');
  assert.equal(s.status, 200);
  assert.deepEqual([s.body.region, s.body.topics, s.body.conflicts], [tb.config.region, [], []]);
  checker.check('GET', '/v1/dr', s);

  const g = await call('GET', '/v1/dr/groups/nobody');
  assert.equal(g.status, 404);
  assert.equal(g.body.error.code, 'DR_NOT_FOUND');
  checker.check('GET', '/v1/dr/groups/{id}', g);
});
