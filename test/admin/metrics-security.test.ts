/**
 * Security metrics, scraped over HTTP from GET /metrics of a real broker with a
 * SASL_PLAINTEXT listener and authorization on: a KafkaJS login that succeeds and one with a
 * wrong password count as one succeeded and one failed authentication; a produce the ACLs
 * deny (the user has no ACL) counts as a denial; users and ACLs are counted; every security
 * family in the scrape is documented in METRICS.md. GET /v1/security shows the same, with the
 * listeners and the connections per principal.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { AclOperation, AclPermissionType, PatternType, ResourceType, aclBinding } from '../../src/security/acl.js';
import { startBroker } from '../helpers/broker.js';
import { SECRETS } from '../helpers/secrets.js';
import { ParsedScrape } from './prometheus-scrape.js';

const METRICS_MD = new URL('../../src/admin/METRICS.md', import.meta.url);
const ADMIN_PASSWORD = SECRETS.saslAdmin;
const CAROL_PASSWORD = SECRETS.saslAlice;

test('authentications by outcome, denials, users and ACLs in /metrics', { timeout: 60_000 }, async (t) => {
  const tb = await startBroker({
    kafka: { listeners: [{ name: 'SASL', host: '127.0.0.1', port: 0, securityProtocol: 'SASL_PLAINTEXT' }] },
    admin: { host: '127.0.0.1', port: 0 },
    security: { bootstrap: { user: 'admin', password: ADMIN_PASSWORD }, authorization: { enabled: true, superUsers: ['User:admin'] }, sasl: { failureDelayMs: 0 } },
  });
  t.after(() => tb.cleanup());
  const port = tb.broker.kafkaPort;
  tb.broker.security.credentials.upsert('carol', 'SCRAM-SHA-256', CAROL_PASSWORD);
  tb.broker.security.acls.create([
    aclBinding({ resourceType: ResourceType.Topic, name: 'other.', patternType: PatternType.Prefixed, principal: 'User:carol', host: '*', operation: AclOperation.Read, permissionType: AclPermissionType.Allow }),
  ]);
  const scrape = () => ParsedScrape.scrape(tb.broker.adminAddress!);
  const before = await scrape();
  assert.equal(before.value('meridian_authorization_enabled'), 1);
  assert.equal(before.value('meridian_security_users'), 2);
  assert.equal(before.value('meridian_security_acls'), 1);
  assert.equal(before.value('meridian_sasl_authentications_total', { outcome: 'failed' }), 0);

  const client = (password: string) =>
    new Kafka({ clientId: 'metrics-security', brokers: [`127.0.0.1:${port}`], logLevel: logLevel.NOTHING, retry: { retries: 0 }, sasl: { mechanism: 'scram-sha-256', username: 'carol', password } });
  const wrong = client(SECRETS.saslWrong).producer();
  await assert.rejects(wrong.connect(), /SASL/);
  const producer = client(CAROL_PASSWORD).producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  await assert.rejects(producer.send({ topic: 'denied-topic', messages: [{ value: 'x' }] }));

  const after = await scrape();
  assert.equal(after.value('meridian_sasl_authentications_total', { outcome: 'failed' }), 1);
  assert.ok(after.value('meridian_sasl_authentications_total', { outcome: 'succeeded' }) >= 1);
  assert.ok(after.value('meridian_authorization_denials_total') >= 1);

  // The same state through GET /v1/security (what the dashboard's security panel shows).
  const admin = tb.broker.adminAddress!;
  const summary = (await (await fetch(`http://${admin.host}:${admin.port}/v1/security`)).json()) as any;
  assert.deepEqual(summary.listeners.map((l: any) => [l.name, l.securityProtocol, l.connections > 0]), [['SASL', 'SASL_PLAINTEXT', true]]);
  assert.ok(summary.principals.some((p: any) => p.principal === 'User:carol' && p.connections >= 1), JSON.stringify(summary.principals));
  assert.deepEqual(summary.authorization, { enabled: true, superUsers: ['User:admin'], allowEveryoneIfNoAclFound: false, acls: 1 });
  assert.equal(summary.users, 2);
  assert.equal(summary.authentications.failed, 1);
  assert.ok(summary.denials >= 1);
  assert.ok(!JSON.stringify(summary).includes(CAROL_PASSWORD));

  const doc = fs.readFileSync(METRICS_MD, 'utf8');
  const text = await (await fetch(`http://${tb.broker.adminAddress!.host}:${tb.broker.adminAddress!.port}/metrics`)).text();
  const families = [...new Set([...text.matchAll(/^# TYPE (meridian_(?:sasl_\w+|authorization_\w+|security_\w+)) /gm)].map((m) => m[1]))];
  assert.equal(families.length, 5, `security families in the scrape: ${families.join(', ')}`);
  for (const f of families) assert.ok(doc.includes(`| \`${f}\` |`), `${f} is documented in METRICS.md`);
});
