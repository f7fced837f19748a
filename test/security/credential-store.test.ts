/**
 * The SCRAM credential store: what the file holds (no password, no salted password, mode
 * 0600), reload, Kafka's AlterUserScramCredentials form (salt + salted password computed
 * by the client) followed by a login with KafkaJS's SCRAM client, validation, bootstrap.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, test } from 'node:test';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { CredentialStore, SCRAM_CREDENTIALS_FILE, SECURITY_DIR } from '../../src/security/credential-store.js';
import { ScramMechanism, type ScramServer } from '../../src/security/scram.js';
import { tmpDir } from '../helpers/tmp-dir.js';

const require = createRequire(import.meta.url);
// KafkaJS is CommonJS and this module is internal (no types).
const { SCRAM, DIGESTS } = require('kafkajs/src/broker/saslAuthenticator/scram.js') as { SCRAM: any; DIGESTS: Record<'SHA256' | 'SHA512', unknown> };
const silent = { debug() {}, info() {}, warn() {}, error() {} };

const cleanups: Array<() => void> = [];
after(() => cleanups.forEach((c) => c()));
function dataDir(): string {
  const { dir, cleanup } = tmpDir('meridian-security-');
  cleanups.push(cleanup);
  return dir;
}
const fileOf = (dir: string) => path.join(dir, SECURITY_DIR, SCRAM_CREDENTIALS_FILE);

/** A login by KafkaJS's SCRAM client against `server`; resolves to the principal or rejects. */
async function kafkajsLogin(server: ScramServer, username: string, password: string): Promise<string | undefined> {
  let principal: string | undefined;
  const saslAuthenticate = async ({ request, response }: { request: { encode(): Promise<Buffer> }; response: { parse(data: Buffer): Promise<unknown> } }) => {
    const step = server.step((await request.encode()).subarray(4)); // strip auth_bytes' int32 length
    if (step.done) principal = step.principal;
    return response.parse(step.response);
  };
  const digest = server.mechanism === ScramMechanism.Sha256 ? DIGESTS.SHA256 : DIGESTS.SHA512;
  await new SCRAM({ username, password }, 'localhost', 9092, silent, saslAuthenticate, digest).authenticate();
  return principal;
}

function isCode(code: string) {
  return (err: unknown) => {
    assert.ok(err instanceof MeridianError, String(err));
    assert.equal(err.code, code, err.message);
    return true;
  };
}

test('the file holds salts and keys, never the password, at mode 0600 in a 0700 directory, and survives a reload', async () => {
  const dir = dataDir();
  const store = CredentialStore.open(dir);
  store.upsert('alice', ScramMechanism.Sha256, 'correct horse battery staple');
  store.upsert('alice', ScramMechanism.Sha512, 'correct horse battery staple', { iterations: 8192 });
  store.upsert('bob', ScramMechanism.Sha512, 'bobs-password');

  const text = fs.readFileSync(fileOf(dir), 'utf8');
  for (const secret of ['correct horse battery staple', 'bobs-password']) {
    assert.ok(!text.includes(secret));
    assert.ok(!text.includes(Buffer.from(secret).toString('base64')));
  }
  const json = JSON.parse(text);
  assert.deepEqual(Object.keys(json.users.alice['SCRAM-SHA-256']).sort(), ['iterations', 'salt', 'serverKey', 'storedKey']);
  assert.equal(fs.statSync(fileOf(dir)).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.join(dir, SECURITY_DIR)).mode & 0o777, 0o700);
  assert.deepEqual(
    fs.readdirSync(path.join(dir, SECURITY_DIR)),
    [SCRAM_CREDENTIALS_FILE],
    'no temp file left behind',
  );

  const reloaded = CredentialStore.open(dir);
  assert.deepEqual(reloaded.describe(), [
    {
      user: 'alice',
      credentials: [
        { mechanism: 'SCRAM-SHA-256', iterations: 4096 },
        { mechanism: 'SCRAM-SHA-512', iterations: 8192 },
      ],
    },
    { user: 'bob', credentials: [{ mechanism: 'SCRAM-SHA-512', iterations: 4096 }] },
  ]);
  assert.deepEqual(reloaded.lookup('alice', ScramMechanism.Sha512), store.lookup('alice', ScramMechanism.Sha512));
  assert.equal(await kafkajsLogin(reloaded.scramServer(ScramMechanism.Sha512), 'alice', 'correct horse battery staple'), 'alice');
  assert.equal(await kafkajsLogin(reloaded.scramServer(ScramMechanism.Sha256), 'alice', 'correct horse battery staple'), 'alice');
  await assert.rejects(kafkajsLogin(reloaded.scramServer(ScramMechanism.Sha256), 'bob', 'bobs-password'), 'bob has no SHA-256 credential');
  assert.ok(!JSON.stringify(reloaded.describe()).includes('salt'));
});

test('the unknown-user decoy key persists, so an unknown user sees the same salt after a restart', () => {
  const dir = dataDir();
  CredentialStore.open(dir).upsert('alice', ScramMechanism.Sha256, 'pw');
  const saltOf = (store: CredentialStore) => store.scramServer(ScramMechanism.Sha256).step(Buffer.from('n,,n=mallory,r=abc')).response.toString().split(',')[1];
  assert.equal(saltOf(CredentialStore.open(dir)), saltOf(CredentialStore.open(dir)));
});

test('a loosened file mode is tightened on open', () => {
  const dir = dataDir();
  CredentialStore.open(dir).upsert('alice', ScramMechanism.Sha256, 'pw');
  fs.chmodSync(fileOf(dir), 0o644);
  fs.chmodSync(path.join(dir, SECURITY_DIR), 0o755);
  CredentialStore.open(dir);
  assert.equal(fs.statSync(fileOf(dir)).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.join(dir, SECURITY_DIR)).mode & 0o777, 0o700);
});

for (const [mechanism, digest, length] of [
  [ScramMechanism.Sha256, 'sha256', 32],
  [ScramMechanism.Sha512, 'sha512', 64],
] as const) {
  test(`${mechanism}: AlterUserScramCredentials-style upsert (salt + salted password) then a KafkaJS login`, async () => {
    const store = CredentialStore.open(dataDir());
    // What a Kafka admin client sends: it salts the password itself (Hi = PBKDF2).
    const salt = crypto.randomBytes(24);
    const saltedPassword = crypto.pbkdf2Sync('s3cret', salt, 10_000, length, digest);
    store.upsert('carol', mechanism, { salt, saltedPassword, iterations: 10_000 });
    assert.deepEqual(store.describe(), [{ user: 'carol', credentials: [{ mechanism, iterations: 10_000 }] }]);
    assert.equal(await kafkajsLogin(store.scramServer(mechanism), 'carol', 's3cret'), 'carol');
    await assert.rejects(kafkajsLogin(store.scramServer(mechanism), 'carol', 'S3cret'));
  });
}

test('a replaced credential takes effect for the next login; a deleted one fails like an unknown user', async () => {
  const store = CredentialStore.open(dataDir());
  store.upsert('dave', ScramMechanism.Sha256, 'old');
  store.upsert('dave', ScramMechanism.Sha256, 'new');
  await assert.rejects(kafkajsLogin(store.scramServer(ScramMechanism.Sha256), 'dave', 'old'));
  assert.equal(await kafkajsLogin(store.scramServer(ScramMechanism.Sha256), 'dave', 'new'), 'dave');
  store.delete('dave', ScramMechanism.Sha256);
  assert.deepEqual(store.describe(), []);
  assert.equal(store.lookup('dave', ScramMechanism.Sha256), undefined);
  await assert.rejects(kafkajsLogin(store.scramServer(ScramMechanism.Sha256), 'dave', 'new'));
  assert.throws(() => store.delete('dave', ScramMechanism.Sha256), isCode(ErrorCode.CredentialNotFound));
});

test('deleting one mechanism keeps the other', () => {
  const store = CredentialStore.open(dataDir());
  store.upsert('erin', ScramMechanism.Sha256, 'pw');
  store.upsert('erin', ScramMechanism.Sha512, 'pw');
  store.delete('erin', ScramMechanism.Sha256);
  assert.deepEqual(store.describe(), [{ user: 'erin', credentials: [{ mechanism: 'SCRAM-SHA-512', iterations: 4096 }] }]);
});

test('validation: iterations 4096..16384, non-empty user and password, salted password of the hash length, known mechanism', () => {
  const dir = dataDir();
  const store = CredentialStore.open(dir);
  const bad = (fn: () => void, code: string = ErrorCode.UnacceptableCredential) => assert.throws(fn, isCode(code));
  bad(() => store.upsert('u', ScramMechanism.Sha256, 'pw', { iterations: 4095 }));
  bad(() => store.upsert('u', ScramMechanism.Sha256, 'pw', { iterations: 16385 }));
  bad(() => store.upsert('u', ScramMechanism.Sha256, 'pw', { iterations: 5000.5 }));
  bad(() => store.upsert('', ScramMechanism.Sha256, 'pw'));
  bad(() => store.upsert('a\0b', ScramMechanism.Sha256, 'pw'));
  bad(() => store.upsert('u', ScramMechanism.Sha256, ''));
  bad(() => store.upsert('u', ScramMechanism.Sha256, { salt: Buffer.alloc(0), saltedPassword: Buffer.alloc(32), iterations: 4096 }));
  bad(() => store.upsert('u', ScramMechanism.Sha256, { salt: Buffer.alloc(16), saltedPassword: Buffer.alloc(64), iterations: 4096 }));
  bad(() => store.upsert('u', ScramMechanism.Sha512, { salt: Buffer.alloc(16), saltedPassword: Buffer.alloc(64), iterations: 1 }));
  bad(() => store.upsert('u', 'SCRAM-SHA-1' as ScramMechanism, 'pw'), ErrorCode.UnsupportedSaslMechanism);
  bad(() => store.delete('u', 'PLAIN' as ScramMechanism), ErrorCode.UnsupportedSaslMechanism);
  store.upsert('u', ScramMechanism.Sha256, 'pw', { iterations: 16384 });
  assert.deepEqual(store.describe(), [{ user: 'u', credentials: [{ mechanism: 'SCRAM-SHA-256', iterations: 16384 }] }]);
});

test('ensureBootstrap writes missing or changed credentials only', async () => {
  const dir = dataDir();
  const store = CredentialStore.open(dir);
  assert.deepEqual(store.ensureBootstrap('admin', 'admin-pw'), ['SCRAM-SHA-256', 'SCRAM-SHA-512']);
  const before = fs.readFileSync(fileOf(dir), 'utf8');
  const again = CredentialStore.open(dir);
  assert.deepEqual(again.ensureBootstrap('admin', 'admin-pw'), [], 'a restart with the same password rewrites nothing');
  assert.equal(fs.readFileSync(fileOf(dir), 'utf8'), before);
  assert.deepEqual(again.ensureBootstrap('admin', 'rotated', [ScramMechanism.Sha512]), ['SCRAM-SHA-512']);
  assert.equal(await kafkajsLogin(again.scramServer(ScramMechanism.Sha512), 'admin', 'rotated'), 'admin');
  assert.equal(await kafkajsLogin(again.scramServer(ScramMechanism.Sha256), 'admin', 'admin-pw'), 'admin');
  assert.ok(!fs.readFileSync(fileOf(dir), 'utf8').includes('rotated'));
  assert.throws(() => again.ensureBootstrap('admin', ''), isCode(ErrorCode.UnacceptableCredential));
});

test('verifyPassword checks a password against the SCRAM credential (for PLAIN), false for an unknown user', () => {
  const store = CredentialStore.open(dataDir());
  store.upsert('frank', ScramMechanism.Sha512, 'pw');
  assert.equal(store.verifyPassword('frank', 'pw'), true);
  assert.equal(store.verifyPassword('frank', 'pw2'), false);
  assert.equal(store.verifyPassword('nobody', 'pw'), false);
});

test('a damaged file fails the open (no silent start without users), naming no secret', () => {
  const dir = dataDir();
  CredentialStore.open(dir).upsert('alice', ScramMechanism.Sha256, 'pw');
  const good = JSON.parse(fs.readFileSync(fileOf(dir), 'utf8'));
  const cases: unknown[] = [
    'not json',
    { version: 2, decoyKey: good.decoyKey, users: {} },
    { version: 1, users: {} },
    { version: 1, decoyKey: good.decoyKey, users: { alice: { 'SCRAM-SHA-1': good.users.alice['SCRAM-SHA-256'] } } },
    { version: 1, decoyKey: good.decoyKey, users: { alice: { 'SCRAM-SHA-256': { ...good.users.alice['SCRAM-SHA-256'], iterations: 100 } } } },
    { version: 1, decoyKey: good.decoyKey, users: { alice: { 'SCRAM-SHA-256': { ...good.users.alice['SCRAM-SHA-256'], storedKey: 'AAAA' } } } },
  ];
  for (const c of cases) {
    fs.writeFileSync(fileOf(dir), typeof c === 'string' ? c : JSON.stringify(c));
    assert.throws(
      () => CredentialStore.open(dir),
      (err: unknown) => {
        isCode(ErrorCode.CorruptCredentialFile)(err);
        assert.ok(!(err as Error).message.includes(good.users.alice['SCRAM-SHA-256'].serverKey));
        return true;
      },
    );
  }
});
