/**
 * DescribeUserScramCredentials and AlterUserScramCredentials against a real broker with a
 * SASL_PLAINTEXT listener (authorization on, `admin` the bootstrap superuser) and a
 * PLAINTEXT one (anonymous): the admin, logged in with SCRAM through @platformatic/kafka's
 * connection, creates a user whose password it salted itself (as kafka-configs does); the
 * user then produces and consumes with KafkaJS (SCRAM-SHA-512) and kcat (SCRAM-SHA-256);
 * once deleted it can no longer log in. Kafka's per-user errors, the authorization check,
 * and a credential file that holds neither the password nor the salted password.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import { Connection, alterUserScramCredentialsV0, describeUserScramCredentialsV0 } from '@platformatic/kafka';
import { Kafka, logLevel } from 'kafkajs';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import { kafkaCode } from '../../src/protocol/kafka/error-mapping.js';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { kcat } from '../helpers/kcat.js';
import { collectMessages } from '../helpers/kafkajs-collect.js';
import { RawClient } from '../helpers/raw-kafka.js';
import { registerSecret, SECRETS } from '../helpers/secrets.js';
import { platformaticAnswer } from '../helpers/platformatic-answer.js';

const SHA256 = 1;
const SHA512 = 2;
const USER = 'dave';
const PASSWORD = SECRETS.saslAlice;

let tb: TestBroker;
let saslPort: number;
let plainPort: number;
let admin: Connection;

/** Kafka's client side of an upsertion: a random salt and PBKDF2 of the password (ScramFormatter.hi). */
function upsertion(name: string, mechanism: number, password: string, iterations: number) {
  const salt = crypto.randomBytes(24);
  const saltedPassword = crypto.pbkdf2Sync(password, salt, iterations, mechanism === SHA256 ? 32 : 64, mechanism === SHA256 ? 'sha256' : 'sha512');
  registerSecret(`salted password of ${name}`, saltedPassword);
  return { name, mechanism, iterations, salt, saltedPassword };
}


const describe = (users: string[]) => platformaticAnswer(describeUserScramCredentialsV0.api.async(admin, users.map((name) => ({ name }))));
const alter = (deletions: Array<{ name: string; mechanism: number }>, upsertions: ReturnType<typeof upsertion>[]) =>
  platformaticAnswer(alterUserScramCredentialsV0.api.async(admin, deletions, upsertions));

function kafkaFor(user: string, password: string) {
  return new Kafka({ clientId: `scram-${user}`, brokers: [`127.0.0.1:${saslPort}`], logLevel: logLevel.NOTHING, retry: { retries: 0 }, sasl: { mechanism: 'scram-sha-512', username: user, password } });
}

function kcatSasl(user: string, password: string): string[] {
  return ['-b', `127.0.0.1:${saslPort}`, '-X', 'security.protocol=SASL_PLAINTEXT', '-X', 'sasl.mechanisms=SCRAM-SHA-256', '-X', `sasl.username=${user}`, '-X', `sasl.password=${password}`];
}

before(async () => {
  tb = await startBroker({
    kafka: {
      listeners: [
        { name: 'SASL', host: '127.0.0.1', port: 0, securityProtocol: 'SASL_PLAINTEXT' },
        { name: 'ANON', host: '127.0.0.1', port: 0, securityProtocol: 'PLAINTEXT' },
      ],
    },
    security: { bootstrap: { user: 'admin', password: SECRETS.saslAdmin }, authorization: { enabled: true, superUsers: ['User:admin', `User:${USER}`] }, sasl: { failureDelayMs: 0 } },
  });
  saslPort = tb.broker.kafkaPorts.get('SASL')!;
  plainPort = tb.broker.kafkaPorts.get('ANON')!;
  admin = new Connection('scram-admin', { sasl: { mechanism: 'SCRAM-SHA-256', username: 'admin', password: SECRETS.saslAdmin } });
  await admin.connect('127.0.0.1', saslPort);
});

after(async () => {
  await admin?.close();
  await tb?.cleanup();
});

test('Describe lists every user with its mechanisms and iterations: the bootstrap admin has both', async () => {
  const r = await describe([]);
  assert.equal(r.errorCode, 0);
  assert.deepEqual(r.results, [{ user: 'admin', errorCode: 0, errorMessage: null, credentialInfos: [{ mechanism: SHA256, iterations: 4096 }, { mechanism: SHA512, iterations: 4096 }] }]);
});

test('a user created by AlterUserScramCredentials (salted client-side) produces and consumes with KafkaJS SCRAM-SHA-512 and kcat SCRAM-SHA-256, then is deleted and cannot log in', { timeout: 60_000 }, async () => {
  const upsertions = [upsertion(USER, SHA256, PASSWORD, 4096), upsertion(USER, SHA512, PASSWORD, 8192)];
  const created = await alter([], upsertions);
  assert.deepEqual(created.results, [{ user: USER, errorCode: 0, errorMessage: null }]);
  const d = await describe([USER]);
  assert.deepEqual(d.results[0].credentialInfos, [{ mechanism: SHA256, iterations: 4096 }, { mechanism: SHA512, iterations: 8192 }]);

  // Neither the password nor the salted passwords are in the credential file.
  const file = fs.readFileSync(tb.broker.security.credentials.file, 'utf8');
  assert.ok(!file.includes(PASSWORD), 'the password is not in the credential file');
  for (const u of upsertions) assert.ok(!file.includes(u.saltedPassword.toString('base64')) && !file.includes(u.saltedPassword.toString('hex')), 'no salted password in the credential file');
  assert.ok(file.includes(`"${USER}"`));

  const topic = 'scram-created-user';
  const kafka = kafkaFor(USER, PASSWORD);
  const kadmin = kafka.admin();
  await kadmin.connect();
  await kadmin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
  await kadmin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, messages: [{ value: 'from-kafkajs' }] });
  await producer.disconnect();
  const produced = await kcat([...kcatSasl(USER, PASSWORD), '-P', '-t', topic], 'from-kcat\n', 30_000);
  assert.equal(produced.code, 0, produced.stderr);

  const consumed = await kcat([...kcatSasl(USER, PASSWORD), '-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%s\n'], undefined, 30_000);
  assert.equal(consumed.code, 0, consumed.stderr);
  assert.deepEqual(consumed.stdout.toString().split('\n').filter(Boolean), ['from-kafkajs', 'from-kcat']);
  const got = await collectMessages(kafka, { groupId: 'scram-group', topics: [topic], count: 2, fromBeginning: true });
  assert.deepEqual(got.map((m) => m.value?.toString()), ['from-kafkajs', 'from-kcat']);

  const deleted = await alter([{ name: USER, mechanism: SHA256 }, { name: USER, mechanism: SHA512 }], []);
  assert.deepEqual(deleted.results, [{ user: USER, errorCode: 0, errorMessage: null }]);
  const gone = await describe([USER]);
  assert.equal(gone.results[0].errorCode, kafkaCode('RESOURCE_NOT_FOUND'));
  const late = kafkaFor(USER, PASSWORD).producer();
  // KafkaJS turns SASL_AUTHENTICATION_FAILED into this error, with the broker's message.
  await assert.rejects(late.connect(), { name: 'KafkaJSSASLAuthenticationError', message: /SCRAM-SHA-512 authentication failed: invalid user name or password/ });
  const refused = await kcat([...kcatSasl(USER, PASSWORD), '-L', '-m', '5'], undefined, 30_000);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /Authentication failed|SASL authentication error/i);
});

test('Describe: an unknown user is RESOURCE_NOT_FOUND, a user named twice DUPLICATE_RESOURCE', async () => {
  const r = await describe(['nobody', 'admin', 'admin']);
  assert.equal(r.errorCode, 0);
  const byUser = new Map(r.results.map((x) => [x.user, x]));
  assert.equal(byUser.get('nobody')!.errorCode, kafkaCode('RESOURCE_NOT_FOUND'));
  assert.match(byUser.get('nobody')!.errorMessage!, /does not exist: nobody/);
  assert.equal(byUser.get('admin')!.errorCode, kafkaCode('DUPLICATE_RESOURCE'));
  assert.equal(r.results.length, 2);
});

test("Alter: each user's error (iterations, mechanism, missing, duplicate), and a user with one bad alteration has nothing changed", async () => {
  const r = await alter(
    [
      { name: 'ghost', mechanism: SHA256 },
      { name: 'dup', mechanism: SHA512 },
    ],
    [
      upsertion('few', SHA256, 'pw-few-iterations', 1000),
      upsertion('many', SHA512, 'pw-many-iterations', 20_000),
      { ...upsertion('weird', SHA256, 'pw-weird-mechanism', 4096), mechanism: 3 },
      upsertion('dup', SHA512, 'pw-duplicate', 4096),
      upsertion('half', SHA256, 'pw-half-good', 4096),
      upsertion('half', SHA512, 'pw-half-bad', 100),
      { ...upsertion('short', SHA256, 'pw-short', 4096), saltedPassword: Buffer.alloc(5) },
    ],
  );
  const codes = Object.fromEntries(r.results.map((x) => [x.user, x.errorCode]));
  assert.deepEqual(codes, {
    ghost: kafkaCode('RESOURCE_NOT_FOUND'),
    dup: kafkaCode('DUPLICATE_RESOURCE'),
    few: kafkaCode('UNACCEPTABLE_CREDENTIAL'),
    many: kafkaCode('UNACCEPTABLE_CREDENTIAL'),
    weird: kafkaCode('UNSUPPORTED_SASL_MECHANISM'),
    half: kafkaCode('UNACCEPTABLE_CREDENTIAL'),
    short: kafkaCode('UNACCEPTABLE_CREDENTIAL'),
  });
  for (const x of r.results) assert.ok(!/pw-/.test(x.errorMessage ?? ''), `no password in ${x.errorMessage}`);
  assert.deepEqual(
    tb.broker.security.credentials.describe().map((u) => u.user),
    ['admin'],
    'no user was created by a request whose alterations failed',
  );
});

test('without DESCRIBE and ALTER on the cluster (anonymous on PLAINTEXT): CLUSTER_AUTHORIZATION_FAILED, nothing changed', async () => {
  const c = await RawClient.connect(plainPort);
  try {
    const d = await c.request(ApiKey.DescribeUserScramCredentials, 0, { users: null });
    assert.equal(d.body.errorCode, kafkaCode('CLUSTER_AUTHORIZATION_FAILED'));
    assert.match(d.body.errorMessage, /User:ANONYMOUS may not describe SCRAM credentials/);
    assert.deepEqual(d.body.results, []);
    const a = await c.request(ApiKey.AlterUserScramCredentials, 0, { deletions: [{ name: 'admin', mechanism: SHA256 }], upsertions: [upsertion('mallory', SHA256, 'pw-mallory', 4096)] });
    assert.deepEqual(
      a.body.results.map((x: { user: string; errorCode: number }) => [x.user, x.errorCode]),
      [['admin', kafkaCode('CLUSTER_AUTHORIZATION_FAILED')], ['mallory', kafkaCode('CLUSTER_AUTHORIZATION_FAILED')]],
    );
  } finally {
    c.close();
  }
  assert.deepEqual(tb.broker.security.credentials.describe().map((u) => u.user), ['admin']);
});
