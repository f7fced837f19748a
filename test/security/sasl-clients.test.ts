/**
 * Issue 14, SASL from the clients' side: one broker with a PLAINTEXT, a SASL_PLAINTEXT and a
 * SASL_SSL listener (and a SASL_SSL listener whose certificate has expired), a bootstrap
 * superuser and two users.
 *
 * - kcat (librdkafka) and KafkaJS produce and consume byte-identical records over SASL_SSL
 *   with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN, and over SASL_PLAINTEXT with PLAIN, each
 *   reading what the other wrote: empty values, a 100 KB value, non-UTF-8 bytes, null, empty
 *   and binary keys.
 * - Failures fail cleanly and the broker serves others on: a wrong password and an unknown
 *   user get the same SASL_AUTHENTICATION_FAILED; a request before authentication closes the
 *   connection unanswered; a mechanism not offered gets UNSUPPORTED_SASL_MECHANISM and the
 *   list; a plaintext client on the SASL_SSL port, a client that does not trust the broker's
 *   CA and one facing an expired broker certificate get nowhere; repeated failures from one
 *   address are answered ever later; both outcomes are in the log with user and address.
 * - KIP-368: with a session lifetime, KafkaJS re-authenticates on its connections and keeps
 *   producing; a raw client that lets its session end is disconnected at its next request.
 *
 * SSL and mutual TLS without SASL (and expired or foreign client certificates) are in
 * test/kafka/tls-listeners.test.ts. Passwords come from helpers/secrets.ts, and the SCRAM keys
 * the broker derives are registered there, for the end-of-run log check.
 */
process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Kafka, logLevel, type SASLOptions } from 'kafkajs';
import { kafkaCode } from '../../src/protocol/kafka/error-mapping.js';
import { ApiKey } from '../../src/protocol/kafka/api-keys.js';
import type { SaslAuthenticateResponse } from '../../src/protocol/kafka/messages/sasl-authenticate.js';
import type { SaslHandshakeResponse } from '../../src/protocol/kafka/messages/sasl-handshake.js';
import { saltPassword } from '../../src/security/scram.js';
import { captureLog, startBroker, type LogCapture, type TestBroker } from '../helpers/broker.js';
import { readTopicToEnd, type ConsumedMessage } from '../helpers/kafkajs-collect.js';
import { KcatClient } from '../helpers/kcat-client.js';
import { kcat } from '../helpers/kcat.js';
import { RawClient } from '../helpers/raw-kafka.js';
import { registerSecret, SECRETS } from '../helpers/secrets.js';
import { makePki, type Pki } from '../helpers/tls-certs.js';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const ADMIN = 'admin';
const ALICE = 'alice';
const BOB = 'bob';
const FAILURE_DELAY_MS = 50;

type Mechanism = 'SCRAM-SHA-256' | 'SCRAM-SHA-512' | 'PLAIN';
type Listener = 'SASL_SSL' | 'SASL_PLAINTEXT';

let pki: Pki;
let certs: { dir: string; cleanup: () => void };
let broker: TestBroker;
let log: LogCapture;
let ports: { plain: number; saslPlain: number; saslSsl: number; expired: number };

before(async () => {
  certs = tmpDir('meridian-sasl-');
  pki = makePki(certs.dir);
  const expiredBroker = pki.issue('expired-broker', '/CN=localhost', { serial: '1009', days: -1, server: true });
  log = captureLog();
  broker = await startBroker(
    {
      kafka: {
        listeners: [
          { name: 'PLAINTEXT', host: '127.0.0.1', port: 0, securityProtocol: 'PLAINTEXT' },
          { name: 'SASL_PLAINTEXT', host: '127.0.0.1', port: 0, securityProtocol: 'SASL_PLAINTEXT' },
          { name: 'SASL_SSL', host: '127.0.0.1', port: 0, securityProtocol: 'SASL_SSL', tls: { certFile: pki.broker.cert, keyFile: pki.broker.key } },
          { name: 'EXPIRED', host: '127.0.0.1', port: 0, securityProtocol: 'SASL_SSL', tls: { certFile: expiredBroker.cert, keyFile: expiredBroker.key } },
        ],
      },
      security: { bootstrap: { user: ADMIN, password: SECRETS.saslAdmin }, sasl: { failureDelayMs: FAILURE_DELAY_MS, maxFailureDelayMs: 1000 } },
      groups: { initialRebalanceDelayMs: 0 },
      logging: { level: 'info' },
    },
    undefined,
    { log },
  );
  const creds = broker.broker.security.credentials;
  for (const [user, password] of [
    [ALICE, SECRETS.saslAlice],
    [BOB, SECRETS.saslBob],
  ] as const) {
    await creds.upsert(user, 'SCRAM-SHA-256', password);
    await creds.upsert(user, 'SCRAM-SHA-512', password);
  }
  registerScramKeys(broker.dataDir);
  const p = broker.broker.kafkaPorts;
  ports = { plain: p.get('PLAINTEXT')!, saslPlain: p.get('SASL_PLAINTEXT')!, saslSsl: p.get('SASL_SSL')!, expired: p.get('EXPIRED')! };
});

after(async () => {
  await broker?.cleanup();
  certs?.cleanup();
});

/**
 * The key material the credential file holds (StoredKey, ServerKey) and the salted passwords
 * it was derived from, registered for the end-of-run check that none was ever logged.
 */
function registerScramKeys(dataDir: string): void {
  const file = JSON.parse(fs.readFileSync(path.join(dataDir, 'security', 'scram-credentials.json'), 'utf8')) as {
    users: Record<string, Record<string, { salt: string; iterations: number; storedKey: string; serverKey: string }>>;
  };
  const passwords: Record<string, string> = { [ADMIN]: SECRETS.saslAdmin, [ALICE]: SECRETS.saslAlice, [BOB]: SECRETS.saslBob };
  for (const [user, byMechanism] of Object.entries(file.users)) {
    for (const [mechanism, c] of Object.entries(byMechanism)) {
      registerSecret(`SCRAM keys of ${user} (${mechanism})`, c.storedKey, c.serverKey, Buffer.from(c.storedKey, 'base64'), Buffer.from(c.serverKey, 'base64'));
      const password = passwords[user];
      if (password !== undefined) registerSecret(`salted password of ${user} (${mechanism})`, saltPassword(mechanism as 'SCRAM-SHA-256' | 'SCRAM-SHA-512', password, Buffer.from(c.salt, 'base64'), c.iterations));
    }
  }
}

// -- clients ----------------------------------------------------------------------------------

function kcatArgs(listener: Listener, mechanism: Mechanism, user: string, password: string, caFile = pki.ca.cert): string[] {
  return [
    '-X', `security.protocol=${listener}`,
    '-X', `sasl.mechanisms=${mechanism}`,
    '-X', `sasl.username=${user}`,
    '-X', `sasl.password=${password}`,
    ...(listener === 'SASL_SSL' ? ['-X', `ssl.ca.location=${caFile}`] : []),
  ];
}

const portOf = (listener: Listener) => (listener === 'SASL_SSL' ? ports.saslSsl : ports.saslPlain);

function kafkajs(listener: Listener | 'EXPIRED', mechanism: Mechanism, user: string, password: string, o: { ca?: string; reauthenticationThreshold?: number; port?: number } = {}): Kafka {
  const port = o.port ?? (listener === 'EXPIRED' ? ports.expired : portOf(listener));
  const sasl = { mechanism: mechanism.toLowerCase(), username: user, password } as SASLOptions;
  return new Kafka({
    clientId: 'sasl-test',
    brokers: [`127.0.0.1:${port}`],
    ...(listener === 'SASL_PLAINTEXT' ? {} : { ssl: { ca: [fs.readFileSync(o.ca ?? pki.ca.cert)] } }),
    sasl,
    logLevel: logLevel.NOTHING,
    retry: { retries: 2, initialRetryTime: 100 },
    ...(o.reauthenticationThreshold === undefined ? {} : { reauthenticationThreshold: o.reauthenticationThreshold }),
  });
}

// -- the data -----------------------------------------------------------------------------------

// kcat splits stdin on -D and each message on -K (see test/kafka/cross-client.test.ts): the
// keys and values below never hold 0x1e or 0x1f, so no delimiter occurs inside them.
const MSG_DELIM = Buffer.from([0x1e, 0xff, 0x1e]);
const KEY_DELIM = Buffer.from([0x1f, 0xff, 0x1f]);
const DELIM_ARGS = ['-D', '\\x1e\\xff\\x1e', '-K', '\\x1f\\xff\\x1f'];

interface Record_ {
  key: Buffer | null;
  value: Buffer;
}

/** Bytes `seed`, `seed+1`, ... of length `n`, skipping the two delimiter bytes. */
function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0, v = seed; i < n; i++, v++) {
    while ((v & 0xff) === 0x1e || (v & 0xff) === 0x1f) v++;
    b[i] = v & 0xff;
  }
  return b;
}

/** Odd records: empty, 100 KB, non-UTF-8, NUL and newline bytes; null, empty and binary keys. Tagged so runs differ. */
function oddRecords(tag: string): Record_[] {
  const t = Buffer.from(tag);
  return [
    // kcat sends no message for an empty input with no key; an empty value needs a key there.
    { key: Buffer.concat([t, Buffer.from('-empty')]), value: Buffer.alloc(0) },
    { key: null, value: Buffer.concat([t, Buffer.from('-null-key')]) },
    { key: Buffer.alloc(0), value: Buffer.concat([t, Buffer.from([0xff, 0xfe, 0x80, 0xc3, 0x28])]) },
    { key: Buffer.from([0x00, 0xff, 0x0a]), value: Buffer.concat([t, bytes(100 * 1024, 7)]) },
    { key: Buffer.concat([t, Buffer.from('-key-ü')]), value: Buffer.concat([t, Buffer.from('\n"\\\u0000 x')]) },
    { key: bytes(64, 200), value: bytes(300, 1) },
    ...Array.from({ length: 20 }, (_, i) => ({ key: Buffer.from(`${tag}-${i}`), value: Buffer.concat([t, bytes(i * 13, i)]) })),
  ];
}

function kcatInput(records: Record_[]): Buffer {
  const parts: Buffer[] = [];
  for (const r of records) {
    // No key delimiter: a null key. The delimiter first: an empty key.
    if (r.key !== null) parts.push(r.key, KEY_DELIM);
    parts.push(r.value, MSG_DELIM);
  }
  return Buffer.concat(parts);
}

const identity = (key: Buffer | null, value: Buffer | null) => `${key === null ? 'null' : key.toString('hex')}|${value === null ? 'null' : value.toString('hex')}`;

/** Asserts that `got` is exactly `sent` (any order across partitions, each once). */
function assertSame(got: Array<{ key: Buffer | null; value: Buffer | null }>, sent: Record_[], what: string): void {
  assert.equal(got.length, sent.length, `${what}: ${got.length} records read, ${sent.length} written`);
  assert.deepEqual(got.map((m) => identity(m.key, m.value)).sort(), sent.map((r) => identity(r.key, r.value)).sort(), `${what}: records differ`);
}

async function kafkajsProduce(kafka: Kafka, topic: string, records: Record_[]): Promise<void> {
  const producer = kafka.producer();
  await producer.connect();
  try {
    await producer.send({ topic, acks: -1, messages: records.map((r) => ({ key: r.key, value: r.value })) });
  } finally {
    await producer.disconnect();
  }
}

/** Every record of `topic` through KafkaJS on the given listener (readTopicToEnd's logic, with SASL). */
async function kafkajsRead(kafka: Kafka, topic: string, count: number): Promise<ConsumedMessage[]> {
  const got: ConsumedMessage[] = [];
  const consumer = kafka.consumer({ groupId: `sasl-read-${topic}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => void got.push({ topic, partition, offset: Number(message.offset), timestamp: message.timestamp, key: message.key, value: message.value, headers: message.headers ?? {} }),
    });
    await waitFor(`KafkaJS to read ${count} records of ${topic}`, () => got.length >= count, 30_000, 20, () => `(${got.length} so far)`);
  } finally {
    await consumer.disconnect();
  }
  return got;
}

// -- 1. the matrix --------------------------------------------------------------------------------

const MATRIX: Array<{ listener: Listener; mechanism: Mechanism }> = [
  { listener: 'SASL_SSL', mechanism: 'SCRAM-SHA-256' },
  { listener: 'SASL_SSL', mechanism: 'SCRAM-SHA-512' },
  { listener: 'SASL_SSL', mechanism: 'PLAIN' },
  { listener: 'SASL_PLAINTEXT', mechanism: 'PLAIN' },
];

for (const { listener, mechanism } of MATRIX) {
  test(`${listener} with ${mechanism}: kcat and KafkaJS produce and consume byte-identical, each reading the other`, { timeout: 60_000 }, async () => {
    const slug = `${listener}-${mechanism}`.toLowerCase();
    const kc = new KcatClient(`127.0.0.1:${portOf(listener)}`);
    const args = kcatArgs(listener, mechanism, ALICE, SECRETS.saslAlice);
    const kafka = kafkajs(listener, mechanism, ALICE, SECRETS.saslAlice);

    // kcat writes, KafkaJS reads; KafkaJS writes, kcat reads; each also reads its own.
    const byKcat = oddRecords(`kcat-${slug}`);
    await kc.produce(`${slug}-from-kcat`, kcatInput(byKcat), [...args, ...DELIM_ARGS, '-X', 'message.max.bytes=1000000']);
    const byKafkaJs = oddRecords(`kafkajs-${slug}`);
    await kafkajsProduce(kafka, `${slug}-from-kafkajs`, byKafkaJs);

    assertSame(await kafkajsRead(kafka, `${slug}-from-kcat`, byKcat.length), byKcat, 'KafkaJS reading what kcat wrote');
    const kcatRead = (topic: string) => kc.consumeAll(topic, args).then((ms) => ms.map((m) => ({ key: m.key, value: m.payload })));
    assertSame(await kcatRead(`${slug}-from-kafkajs`), byKafkaJs, 'kcat reading what KafkaJS wrote');
    assertSame(await kcatRead(`${slug}-from-kcat`), byKcat, 'kcat reading what it wrote');

    // Every connection of the run was alice's, authenticated with this mechanism.
    assert.ok(log.lines.some((l) => l.msg === 'SASL authentication succeeded' && l.principal === 'User:alice' && l.mechanism === mechanism && l.listener === listener));
  });
}

test('the PLAINTEXT listener reads what SASL clients wrote: the same log', { timeout: 30_000 }, async () => {
  const got = await readTopicToEnd(`127.0.0.1:${ports.plain}`, 'sasl_ssl-scram-sha-512-from-kafkajs');
  assertSame(got, oddRecords('kafkajs-sasl_ssl-scram-sha-512'), 'KafkaJS on PLAINTEXT');
});

// -- 2. failures ----------------------------------------------------------------------------------

/** A client on the same broker that must still work after each failure. */
async function othersStillServed(): Promise<void> {
  const topic = 'still-served';
  await kafkajsProduce(kafkajs('SASL_SSL', 'SCRAM-SHA-512', BOB, SECRETS.saslBob), topic, [{ key: null, value: Buffer.from('bob is served') }]);
  await new KcatClient(`127.0.0.1:${ports.saslPlain}`).produce(topic, 'alice is served\n', kcatArgs('SASL_PLAINTEXT', 'SCRAM-SHA-256', ALICE, SECRETS.saslAlice));
}

async function kafkajsLoginError(kafka: Kafka): Promise<Error> {
  const producer = kafka.producer();
  try {
    await producer.connect();
  } catch (err) {
    return err as Error;
  } finally {
    await producer.disconnect().catch(() => {});
  }
  assert.fail('KafkaJS connected');
}

test('a wrong password and an unknown user fail alike with SASL_AUTHENTICATION_FAILED, in KafkaJS and kcat; others are served', { timeout: 60_000 }, async () => {
  for (const mechanism of ['SCRAM-SHA-256', 'SCRAM-SHA-512', 'PLAIN'] as const) {
    const wrong = await kafkajsLoginError(kafkajs('SASL_SSL', mechanism, ALICE, SECRETS.saslWrong));
    const unknown = await kafkajsLoginError(kafkajs('SASL_SSL', mechanism, 'nobody', SECRETS.saslWrong));
    assert.equal(wrong.name, 'KafkaJSSASLAuthenticationError', `${mechanism}: ${wrong.name}: ${wrong.message}`);
    assert.match(wrong.message, new RegExp(`^SASL ${mechanism === 'PLAIN' ? 'PLAIN' : mechanism.replace('SCRAM-SHA-', 'SCRAM SHA')} authentication failed: .*invalid user name or password`), wrong.message);
    assert.equal(unknown.name, wrong.name);
    assert.equal(unknown.message, wrong.message, `${mechanism}: an unknown user must not be told apart from a wrong password`);
    assert.ok(!wrong.message.includes(SECRETS.saslWrong));
  }

  // kcat: librdkafka reports the broker's message and gives up on the metadata request.
  const kcatFailure = async (user: string) => {
    const r = await kcat(['-b', `127.0.0.1:${ports.saslSsl}`, '-L', '-m', '2', ...kcatArgs('SASL_SSL', 'SCRAM-SHA-512', user, SECRETS.saslWrong)], undefined, 30_000);
    assert.notEqual(r.code, 0, `kcat as ${user} with a wrong password was served`);
    const line = /SASL authentication error: ([^(\n]*)/.exec(r.stderr);
    assert.ok(line, `kcat's stderr names no SASL authentication error:\n${r.stderr}`);
    return line[1]!.trim();
  };
  const kcatWrong = await kcatFailure(ALICE);
  assert.match(kcatWrong, /Authentication failed/i);
  assert.equal(await kcatFailure('nobody'), kcatWrong);
  await othersStillServed();
});

test('a request before authentication closes the connection unanswered', { timeout: 30_000 }, async () => {
  const raw = await RawClient.connect(ports.saslPlain);
  raw.send(raw.frame(ApiKey.Metadata, 9, { topics: null, allowAutoTopicCreation: false, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false }));
  assert.equal(await raw.next(), null, 'the broker answered a Metadata request before authentication');
  // ApiVersions is allowed first.
  const ok = await RawClient.connect(ports.saslPlain);
  const versions = await ok.request<{ errorCode: number }>(ApiKey.ApiVersions, 3, { clientSoftwareName: 'raw', clientSoftwareVersion: '1' });
  assert.equal(versions.body.errorCode, 0);
  ok.close();
  await waitFor('the refusal logged', () => log.lines.find((l) => /before SASL authentication/.test(JSON.stringify(l))), 5000);
  await othersStillServed();
});

test('a mechanism not offered gets UNSUPPORTED_SASL_MECHANISM with the list, and the connection closes', { timeout: 30_000 }, async () => {
  const raw = await RawClient.connect(ports.saslPlain);
  const r = await raw.request<SaslHandshakeResponse>(ApiKey.SaslHandshake, 1, { mechanism: 'GSSAPI' });
  assert.equal(r.body.errorCode, kafkaCode('UNSUPPORTED_SASL_MECHANISM'));
  assert.deepEqual([...r.body.mechanisms].sort(), ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512']);
  assert.equal(await raw.next(), null, 'the connection stayed open');
  // KafkaJS asking for one the broker does not offer.
  const err = await kafkajsLoginError(
    new Kafka({ brokers: [`127.0.0.1:${ports.saslPlain}`], sasl: { mechanism: 'aws', authorizationIdentity: 'x', accessKeyId: 'x', secretAccessKey: 'x' }, logLevel: logLevel.NOTHING, retry: { retries: 0 } }),
  );
  assert.match(err.message, /AWS.*not supported|not supported.*AWS|UNSUPPORTED_SASL_MECHANISM|does not support/i, err.message);
  await othersStillServed();
});

test('TLS failures on the SASL_SSL listener: a plaintext client, an untrusted broker CA, an expired broker certificate', { timeout: 60_000 }, async () => {
  const tlsRefusals = () => broker.broker.kafka.stats().refused['tls-handshake'];
  const before = tlsRefusals();
  // A client without TLS: its first bytes are not a TLS handshake; the broker closes.
  const plain = await RawClient.connect(ports.saslSsl);
  plain.send(plain.frame(ApiKey.ApiVersions, 0, {}));
  assert.equal(await plain.next(), null);
  await waitFor('the refusal counted', () => tlsRefusals() > before, 5000);
  const kcatPlain = await kcat(['-b', `127.0.0.1:${ports.saslSsl}`, '-L', '-m', '2', ...kcatArgs('SASL_PLAINTEXT', 'SCRAM-SHA-512', ALICE, SECRETS.saslAlice)], undefined, 30_000);
  assert.notEqual(kcatPlain.code, 0, 'kcat without TLS was served by the SASL_SSL listener');

  // A client that trusts another CA refuses the broker's certificate.
  const untrusted = await kafkajsLoginError(kafkajs('SASL_SSL', 'SCRAM-SHA-512', ALICE, SECRETS.saslAlice, { ca: pki.otherCa.cert }));
  assert.match(String(untrusted.message), /self[- ]signed certificate|unable to verify|unable to get local issuer/i, untrusted.message);
  const kcatUntrusted = await kcat(['-b', `127.0.0.1:${ports.saslSsl}`, '-L', '-m', '2', ...kcatArgs('SASL_SSL', 'SCRAM-SHA-512', ALICE, SECRETS.saslAlice, pki.otherCa.cert)], undefined, 30_000);
  assert.notEqual(kcatUntrusted.code, 0);
  assert.match(kcatUntrusted.stderr, /certificate verify failed/i);

  // A broker certificate that has expired.
  const expired = await kafkajsLoginError(kafkajs('EXPIRED', 'SCRAM-SHA-512', ALICE, SECRETS.saslAlice));
  assert.match(String(expired.message), /certificate has expired/i, expired.message);
  const kcatExpired = await kcat(['-b', `127.0.0.1:${ports.expired}`, '-L', '-m', '2', ...kcatArgs('SASL_SSL', 'SCRAM-SHA-512', ALICE, SECRETS.saslAlice)], undefined, 30_000);
  assert.notEqual(kcatExpired.code, 0);
  assert.match(kcatExpired.stderr, /certificate verify failed|certificate has expired/i);
  await othersStillServed();
});

/** A raw PLAIN login on SASL_PLAINTEXT: the answer, and how long it took to come. */
async function rawPlainLogin(raw: RawClient, user: string, password: string): Promise<{ response: SaslAuthenticateResponse; ms: number }> {
  const hs = await raw.request<SaslHandshakeResponse>(ApiKey.SaslHandshake, 1, { mechanism: 'PLAIN' });
  assert.equal(hs.body.errorCode, 0);
  const t0 = performance.now();
  const r = await raw.request<SaslAuthenticateResponse>(ApiKey.SaslAuthenticate, 2, { authBytes: Buffer.from(`\u0000${user}\u0000${password}`) });
  return { response: r.body, ms: performance.now() - t0 };
}

test('repeated failures from one address are answered ever later; a success resets', { timeout: 30_000 }, async () => {
  // A success first: earlier tests' failures from 127.0.0.1 are forgotten.
  const good = await RawClient.connect(ports.saslPlain);
  assert.equal((await rawPlainLogin(good, ALICE, SECRETS.saslAlice)).response.errorCode, 0);
  good.close();
  const times: number[] = [];
  for (let i = 0; i < 4; i++) {
    const raw = await RawClient.connect(ports.saslPlain);
    const { response, ms } = await rawPlainLogin(raw, ALICE, SECRETS.saslWrong);
    assert.equal(response.errorCode, kafkaCode('SASL_AUTHENTICATION_FAILED'));
    assert.equal(await raw.next(), null, 'the connection stayed open after a failed login');
    times.push(ms);
  }
  // The broker's own delays: 50, 100, 200, 400 ms (lower bounds only: a busy machine adds).
  assert.ok(times[0]! >= FAILURE_DELAY_MS * 0.9, `first failure answered after ${times[0]} ms`);
  assert.ok(times[3]! >= 4 * FAILURE_DELAY_MS, `fourth failure answered after ${times[3]} ms, expected at least ${4 * FAILURE_DELAY_MS}`);
  // Another user at another time is not made to wait for it once someone succeeds.
  await othersStillServed();
  const after_ = await RawClient.connect(ports.saslPlain);
  const ok = await rawPlainLogin(after_, BOB, SECRETS.saslBob);
  assert.equal(ok.response.errorCode, 0);
  after_.close();
});

test('authentications are logged with principal, mechanism, listener and address; never a secret', async () => {
  const ok = log.lines.find((l) => l.msg === 'SASL authentication succeeded' && l.principal === 'User:bob');
  assert.ok(ok, 'no success line for bob');
  assert.equal(ok.level, 'info');
  assert.equal(ok.remote, '127.0.0.1');
  assert.ok(['SASL_SSL', 'SASL_PLAINTEXT'].includes(ok.listener));
  const failed = log.lines.filter((l) => l.msg === 'SASL authentication failed');
  assert.ok(failed.some((l) => l.user === ALICE && l.remote === '127.0.0.1' && l.level === 'warn' && l.mechanism === 'PLAIN'), 'no failure line naming alice');
  assert.ok(failed.some((l) => l.user === 'nobody'), 'no failure line naming the unknown user');
  assert.ok(failed.every((l) => typeof l.delayMs === 'number'));
  const all = log.lines.map((l) => JSON.stringify(l)).join('\n');
  for (const [name, secret] of Object.entries(SECRETS)) assert.ok(!all.includes(secret), `SECRETS.${name} is in the log`);
});

// -- 3. re-authentication (KIP-368) -----------------------------------------------------------------

test('KIP-368: with a session lifetime KafkaJS re-authenticates and keeps producing; a raw session that ends is closed', { timeout: 60_000 }, async () => {
  const reauthLog = captureLog();
  const REAUTH_MS = 1000;
  const b = await startBroker(
    {
      kafka: {
        listeners: [
          { name: 'SASL_PLAINTEXT', host: '127.0.0.1', port: 0, securityProtocol: 'SASL_PLAINTEXT' },
          { name: 'SASL_SSL', host: '127.0.0.1', port: 0, securityProtocol: 'SASL_SSL', tls: { certFile: pki.broker.cert, keyFile: pki.broker.key } },
        ],
      },
      security: { bootstrap: { user: ADMIN, password: SECRETS.saslAdmin }, sasl: { reauthMs: REAUTH_MS } },
      logging: { level: 'info' },
    },
    undefined,
    { log: reauthLog },
  );
  try {
    const port = b.broker.kafkaPorts.get('SASL_SSL')!;
    // KafkaJS re-authenticates when a request finds less than the threshold (default 10 s) left.
    const kafka = kafkajs('SASL_SSL', 'SCRAM-SHA-512', ADMIN, SECRETS.saslAdmin, { port, reauthenticationThreshold: 500 });
    const reauths = () => reauthLog.lines.filter((l) => l.msg === 'SASL authentication succeeded' && l.reauthentication === true);
    const producer = kafka.producer();
    await producer.connect();
    let sent = 0;
    const t0 = Date.now();
    try {
      // Several session lifetimes, a send every 100 ms (the pace, not a wait for anything).
      while (Date.now() - t0 < 4 * REAUTH_MS) {
        await producer.send({ topic: 'reauth', acks: -1, messages: [{ value: `m${sent}` }] });
        sent++;
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await producer.disconnect();
    }
    assert.ok(reauths().length >= 2, `${reauths().length} re-authentications in ${4 * REAUTH_MS} ms`);
    assert.ok(reauths().every((l) => l.principal === 'User:admin' && l.mechanism === 'SCRAM-SHA-512'));
    assert.ok(!reauthLog.lines.some((l) => l.msg === 'SASL authentication failed'), 'a failed (re-)authentication');
    const read = await kafkajsRead(kafka, 'reauth', sent);
    assert.deepEqual(read.map((m) => m.value!.toString()).sort(), Array.from({ length: sent }, (_, i) => `m${i}`).sort());

    // A raw client is told the lifetime, is served within it, and is closed once it has ended.
    const raw = await RawClient.connect(b.broker.kafkaPorts.get('SASL_PLAINTEXT')!);
    const login = await rawPlainLogin(raw, ADMIN, SECRETS.saslAdmin);
    const endsAt = Date.now() + REAUTH_MS;
    assert.equal(login.response.errorCode, 0);
    assert.equal(login.response.sessionLifetimeMs, BigInt(REAUTH_MS));
    const metadata = { topics: null, allowAutoTopicCreation: false, includeClusterAuthorizedOperations: false, includeTopicAuthorizedOperations: false };
    const served = await raw.request<{ brokers: unknown[] }>(ApiKey.Metadata, 9, metadata);
    assert.equal(served.body.brokers.length, 1);
    await waitFor('the session lifetime to pass', () => Date.now() > endsAt + 50, 10_000, 50);
    raw.send(raw.frame(ApiKey.Metadata, 9, metadata));
    assert.equal(await raw.next(), null, 'a request after the session ended was answered');
    assert.ok(reauthLog.lines.some((l) => /expired/.test(JSON.stringify(l)) && /User:admin/.test(JSON.stringify(l))), 'the closing is not logged');
  } finally {
    await b.cleanup();
  }
});
