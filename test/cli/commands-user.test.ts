/**
 * `meridian user` against a real broker with a SASL_PLAINTEXT listener: `set` takes the
 * password from MERIDIAN_USER_PASSWORD or from stdin (never an argument), and the user then
 * logs in with KafkaJS; `list` shows mechanisms and iterations; `delete` of one mechanism and
 * of the user; refusals exit 1 with the broker's code, bad usage exits 2. The password
 * appears in no output.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { startBroker, type TestBroker } from '../helpers/broker.js';
import { meridian, meridianJson, type CliResult } from '../helpers/cli-run.js';
import { SECRETS } from '../helpers/secrets.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
const PASSWORD = SECRETS.saslAlice;
const PIPED = SECRETS.saslBob;

let tb: TestBroker;
let admin: string;

before(async () => {
  tb = await startBroker({
    kafka: { listeners: [{ name: 'SASL', host: '127.0.0.1', port: 0, securityProtocol: 'SASL_PLAINTEXT' }] },
    admin: { host: '127.0.0.1', port: 0 },
    security: { sasl: { failureDelayMs: 0 } },
  });
  admin = `127.0.0.1:${tb.broker.adminAddress!.port}`;
});

after(async () => {
  await tb?.cleanup();
});

/** The CLI with `input` piped on its stdin (meridian() leaves stdin alone). */
function withStdin(args: string[], input: string): Promise<CliResult> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MERIDIAN_')));
  return new Promise((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', MAIN, ...args], { env }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr });
    });
    child.stdin!.end(input);
  });
}

async function logsIn(user: string, password: string): Promise<boolean> {
  const k = new Kafka({ clientId: 'cli-user', brokers: [`127.0.0.1:${tb.broker.kafkaPort}`], logLevel: logLevel.NOTHING, retry: { retries: 0 }, sasl: { mechanism: 'scram-sha-512', username: user, password } }).admin();
  try {
    await k.connect();
    return true;
  } catch (err) {
    if ((err as Error).name === 'KafkaJSSASLAuthenticationError') return false;
    throw err;
  } finally {
    await k.disconnect();
  }
}

test('user set with MERIDIAN_USER_PASSWORD creates a user who logs in; list shows its mechanisms', { timeout: 60_000 }, async () => {
  const r = await meridian(['user', 'set', 'erin', '--iterations', '8192', '--admin', admin], { MERIDIAN_USER_PASSWORD: PASSWORD });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'user erin set: SCRAM-SHA-256 (8192 iterations), SCRAM-SHA-512 (8192 iterations)\n');
  assert.equal(await logsIn('erin', PASSWORD), true);

  const list = await meridian(['user', 'list', '--admin', admin]);
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /^USER\s+MECHANISM\s+ITERATIONS$/m);
  assert.match(list.stdout, /^erin\s+SCRAM-SHA-256\s+8192$/m);
  assert.match(list.stdout, /^erin\s+SCRAM-SHA-512\s+8192$/m);
  assert.deepEqual(await meridianJson(['user', 'list', '--admin', admin]), [
    { user: 'erin', mechanisms: [{ mechanism: 'SCRAM-SHA-256', iterations: 8192 }, { mechanism: 'SCRAM-SHA-512', iterations: 8192 }] },
  ]);
  for (const out of [r.stdout, r.stderr, list.stdout]) assert.ok(!out.includes(PASSWORD));
});

test('user set reads the password from stdin (its first line); the old one stops working', { timeout: 60_000 }, async () => {
  const r = await withStdin(['user', 'set', 'erin', '--mechanism', 'SCRAM-SHA-512', '--admin', admin], `${PIPED}\n`);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await logsIn('erin', PIPED), true);
  assert.equal(await logsIn('erin', PASSWORD), false);
  const empty = await withStdin(['user', 'set', 'erin', '--admin', admin], '');
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /no password: stdin was empty/);
});

test('user delete of one mechanism, then of the user: its logins stop; refusals and bad usage', { timeout: 60_000 }, async () => {
  const one = await meridian(['user', 'delete', 'erin', '--mechanism', 'SCRAM-SHA-512', '--admin', admin]);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(one.stdout, 'user erin: SCRAM-SHA-512 deleted\n');
  assert.equal(await logsIn('erin', PIPED), false);
  const all = await meridian(['user', 'delete', 'erin', '--admin', admin]);
  assert.equal(all.code, 0, all.stderr);
  assert.equal((await meridian(['user', 'list', '--admin', admin])).stdout, 'no SCRAM users\n');

  const missing = await meridian(['user', 'delete', 'erin', '--admin', admin]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /refused: CREDENTIAL_NOT_FOUND: user "erin" has no SCRAM credential/);
  const few = await meridian(['user', 'set', 'frank', '--iterations', '100', '--admin', admin], { MERIDIAN_USER_PASSWORD: PASSWORD });
  assert.equal(few.code, 1);
  assert.match(few.stderr, /UNACCEPTABLE_CREDENTIAL: unacceptable SCRAM credential: iterations must be an integer in 4096\.\.16384, got 100/);
  assert.ok(!few.stderr.includes(PASSWORD));

  const badMechanism = await meridian(['user', 'set', 'frank', '--mechanism', 'MD5', '--admin', admin], { MERIDIAN_USER_PASSWORD: PASSWORD });
  assert.equal(badMechanism.code, 2);
  assert.match(badMechanism.stderr, /--mechanism: expected SCRAM-SHA-256, SCRAM-SHA-512 or both, got "MD5"/);
  const passwordArgument = await meridian(['user', 'set', 'frank', PASSWORD, '--admin', admin]);
  assert.equal(passwordArgument.code, 2, 'a password given as an argument is refused');
  assert.ok(!passwordArgument.stderr.includes(PASSWORD), 'and not echoed back');
});
