/**
 * /v1/security/users over real HTTP against a broker with a SASL_PLAINTEXT listener: a user
 * created with PUT logs in with KafkaJS (SCRAM-SHA-256 and -512), a changed password counts
 * for the next login, DELETE of one mechanism leaves the other, DELETE of the user stops its
 * logins. The listing shows mechanisms and iterations only; the password is in neither the
 * credential file nor any log line (the broker logs at info, so each mutation's line is
 * there); bad bodies and unknown users get their codes. Answers fit the OpenAPI document.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { Kafka, logLevel, type SASLOptions } from 'kafkajs';
import { captureLog, startBroker, type LogCapture, type TestBroker } from '../helpers/broker.js';
import { SECRETS } from '../helpers/secrets.js';
import { httpTransport, OpenApiChecker, type Transport } from './admin-client.js';

const PASSWORD = SECRETS.saslBob;
const CHANGED = SECRETS.saslAlice;

let tb: TestBroker;
let log: LogCapture;
let call: Transport;
let openapi: OpenApiChecker;

before(async () => {
  log = captureLog();
  tb = await startBroker(
    {
      kafka: { listeners: [{ name: 'SASL', host: '127.0.0.1', port: 0, securityProtocol: 'SASL_PLAINTEXT' }] },
      admin: { host: '127.0.0.1', port: 0 },
      logging: { level: 'info' },
      security: { sasl: { failureDelayMs: 0 } },
    },
    undefined,
    { log },
  );
  const a = tb.broker.adminAddress!;
  call = httpTransport(`http://${a.host}:${a.port}`);
  openapi = new OpenApiChecker((await call('GET', '/openapi.json')).body);
});

after(async () => {
  await tb?.cleanup();
});

async function canLogIn(user: string, password: string, mechanism: 'scram-sha-256' | 'scram-sha-512'): Promise<boolean> {
  const sasl = { mechanism, username: user, password } as SASLOptions;
  const admin = new Kafka({ clientId: 'users-routes', brokers: [`127.0.0.1:${tb.broker.kafkaPort}`], logLevel: logLevel.NOTHING, retry: { retries: 0 }, sasl }).admin();
  try {
    await admin.connect();
    await admin.listTopics();
    return true;
  } catch (err) {
    if ((err as Error).name === 'KafkaJSSASLAuthenticationError') return false;
    throw err;
  } finally {
    await admin.disconnect();
  }
}

test('PUT creates a user who logs in with both mechanisms; GET lists mechanisms and iterations only', async () => {
  const put = await call('PUT', '/v1/security/users/bob', { password: PASSWORD, iterations: 8192 });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  openapi.check('PUT', '/v1/security/users/{user}', put);
  assert.deepEqual(put.body, { user: 'bob', mechanisms: [{ mechanism: 'SCRAM-SHA-256', iterations: 8192 }, { mechanism: 'SCRAM-SHA-512', iterations: 8192 }] });
  assert.equal(await canLogIn('bob', PASSWORD, 'scram-sha-256'), true);
  assert.equal(await canLogIn('bob', PASSWORD, 'scram-sha-512'), true);

  const list = await call('GET', '/v1/security/users');
  openapi.check('GET', '/v1/security/users', list);
  assert.deepEqual(list.body, [put.body]);
  assert.ok(!fs.readFileSync(tb.broker.security.credentials.file, 'utf8').includes(PASSWORD), 'the password is not in the credential file');
});

test('a changed password counts for the next login; DELETE of one mechanism leaves the other, of the user stops its logins', async () => {
  const put = await call('PUT', '/v1/security/users/bob', { password: CHANGED, mechanisms: ['SCRAM-SHA-512'] });
  assert.equal(put.status, 200);
  assert.equal(await canLogIn('bob', PASSWORD, 'scram-sha-512'), false);
  assert.equal(await canLogIn('bob', CHANGED, 'scram-sha-512'), true);

  const one = await call('DELETE', '/v1/security/users/bob?mechanism=SCRAM-SHA-256');
  assert.equal(one.status, 204);
  assert.deepEqual((await call('GET', '/v1/security/users')).body, [{ user: 'bob', mechanisms: [{ mechanism: 'SCRAM-SHA-512', iterations: 4096 }] }]);
  assert.equal(await canLogIn('bob', PASSWORD, 'scram-sha-256'), false);

  assert.equal((await call('DELETE', '/v1/security/users/bob')).status, 204);
  assert.deepEqual((await call('GET', '/v1/security/users')).body, []);
  assert.equal(await canLogIn('bob', CHANGED, 'scram-sha-512'), false);
});

test('refusals: iterations out of range 400 UNACCEPTABLE_CREDENTIAL, an unknown mechanism 400, an unknown user 404 CREDENTIAL_NOT_FOUND', async () => {
  const few = await call('PUT', '/v1/security/users/carol', { password: PASSWORD, iterations: 100 });
  assert.deepEqual([few.status, few.body.error.code], [400, 'UNACCEPTABLE_CREDENTIAL']);
  assert.match(few.body.error.message, /iterations must be an integer in 4096\.\.16384, got 100/);
  openapi.check('PUT', '/v1/security/users/{user}', few);
  const md5 = await call('PUT', '/v1/security/users/carol', { password: PASSWORD, mechanisms: ['SCRAM-MD5'] });
  assert.deepEqual([md5.status, md5.body.error.code], [400, 'BAD_REQUEST']);
  const empty = await call('PUT', '/v1/security/users/carol', { password: '' });
  assert.deepEqual([empty.status, empty.body.error.code], [400, 'BAD_REQUEST']);
  const nobody = await call('DELETE', '/v1/security/users/nobody');
  assert.deepEqual([nobody.status, nobody.body.error.code], [404, 'CREDENTIAL_NOT_FOUND']);
  openapi.check('DELETE', '/v1/security/users/{user}', nobody);
  const oneMechanism = await call('DELETE', '/v1/security/users/nobody?mechanism=SCRAM-SHA-512');
  assert.deepEqual([oneMechanism.status, oneMechanism.body.error.code], [404, 'CREDENTIAL_NOT_FOUND']);
  assert.deepEqual((await call('GET', '/v1/security/users')).body, []);
  for (const body of [few.body, md5.body, empty.body]) assert.ok(!JSON.stringify(body).includes(PASSWORD));
});

test('no log line holds a password; each mutation is logged with method, URL and status', () => {
  const text = log.lines.map((l) => JSON.stringify(l)).join('\n');
  for (const secret of [PASSWORD, CHANGED]) assert.ok(!text.includes(secret), 'a password reached the log');
  const calls = log.lines.filter((l) => l.msg === 'admin call' && String(l.url).startsWith('/v1/security/users'));
  assert.ok(calls.some((l) => l.method === 'PUT' && l.status === 200));
  assert.ok(calls.some((l) => l.method === 'DELETE' && l.status === 204));
});
