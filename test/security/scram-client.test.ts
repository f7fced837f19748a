/**
 * The client side of SCRAM (security/scram-client.ts), the one replication links log in
 * with, against the broker's own ScramServer: a login with the right password completes and
 * the server's signature verifies; a wrong password is refused by the server; a server that
 * does not hold the credential (its signature is wrong), a nonce that does not extend the
 * client's, or an error attribute fail on the client's side. No error holds the password.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { ScramClient } from '../../src/security/scram-client.js';
import { credentialFromSaltedPassword, saltPassword, SCRAM_MECHANISMS, ScramServer, type ScramMechanism } from '../../src/security/scram.js';

const PASSWORD = 'link-pässword,=secret';

function serverFor(mechanism: ScramMechanism, password: string): ScramServer {
  const salt = crypto.randomBytes(16);
  const credential = credentialFromSaltedPassword(mechanism, salt, saltPassword(mechanism, password, salt, 4096), 4096);
  return new ScramServer(mechanism, (user) => (user === 'us-east,link' ? credential : undefined));
}

function assertRefused(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MeridianError);
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    assert.ok(!err.message.includes(PASSWORD), 'the password is not in the message');
    return true;
  });
}

for (const mechanism of SCRAM_MECHANISMS) {
  test(`${mechanism}: a login with the right password completes and the server's signature verifies`, () => {
    const server = serverFor(mechanism, PASSWORD);
    const client = new ScramClient(mechanism, 'us-east,link', PASSWORD);
    const first = server.step(client.first());
    const final = server.step(client.final(first.response));
    assert.equal(final.done, true);
    assert.equal(final.principal, 'us-east,link', 'the user name travels escaped and arrives intact');
    client.verify(final.response);
  });

  test(`${mechanism}: a wrong password is refused by the server`, () => {
    const server = serverFor(mechanism, 'another password');
    const client = new ScramClient(mechanism, 'us-east,link', PASSWORD);
    const first = server.step(client.first());
    assertRefused(() => server.step(client.final(first.response)), ErrorCode.SaslAuthenticationFailed, /invalid user name or password/);
  });

  test(`${mechanism}: a server whose signature is wrong is not believed`, () => {
    const server = serverFor(mechanism, PASSWORD);
    const client = new ScramClient(mechanism, 'us-east,link', PASSWORD);
    client.final(server.step(client.first()).response);
    const forged = Buffer.from(`v=${crypto.randomBytes(mechanism === 'SCRAM-SHA-256' ? 32 : 64).toString('base64')}`);
    assertRefused(() => client.verify(forged), ErrorCode.SaslAuthenticationFailed, /server's signature is wrong/);
  });
}

test('a server nonce that does not extend the client nonce, bad iterations and an e= attribute are refused', () => {
  const mechanism = 'SCRAM-SHA-256';
  const client = () => {
    const c = new ScramClient(mechanism, 'u', PASSWORD, { nonce: 'clientnonce' });
    c.first();
    return c;
  };
  const salt = Buffer.from('salt').toString('base64');
  assertRefused(() => client().final(Buffer.from(`r=othernonce123,s=${salt},i=4096`)), ErrorCode.InvalidSaslMessage, /server nonce does not extend the client nonce/);
  assertRefused(() => client().final(Buffer.from(`r=clientnonce,s=${salt},i=4096`)), ErrorCode.InvalidSaslMessage, /server nonce does not extend/);
  assertRefused(() => client().final(Buffer.from(`r=clientnonceXYZ,s=${salt},i=1`)), ErrorCode.InvalidSaslMessage, /iteration count 1 is outside 4096\.\.16384/);
  assertRefused(() => client().final(Buffer.from('e=unknown-user')), ErrorCode.SaslAuthenticationFailed, /refused by the server: unknown-user/);
  assertRefused(() => client().verify(Buffer.from('v=AAAA')), ErrorCode.InvalidSaslMessage, /before client-final/);
});
