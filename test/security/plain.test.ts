/**
 * SASL PLAIN parsing and checking (RFC 4616), with messages built by KafkaJS's own PLAIN
 * request encoder as an independent client; and the principal helpers the listener and
 * ACLs will use.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import { authenticatePlain, parsePlainMessage, passwordsEqual, staticPasswordCheck } from '../../src/security/plain.js';
import { ANONYMOUS, formatPrincipal, parsePrincipal, principalEquals, userPrincipal } from '../../src/security/principal.js';

const require = createRequire(import.meta.url);
// KafkaJS is CommonJS and this module is internal (no types).
const kafkajsPlainRequest = require('kafkajs/src/protocol/sasl/plain/request.js') as (args: { authorizationIdentity?: string | null; username: string; password: string }) => {
  encode(): Promise<Buffer>;
};

/** The PLAIN message KafkaJS sends (auth_bytes without its int32 length). */
async function kafkajsPlain(args: { authorizationIdentity?: string | null; username: string; password: string }): Promise<Buffer> {
  return (await kafkajsPlainRequest(args).encode()).subarray(4);
}

function isCode(code: string, messagePart?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof MeridianError, String(err));
    assert.equal(err.code, code, err.message);
    assert.equal(err.retriable, false);
    if (messagePart) assert.match(err.message, messagePart);
    return true;
  };
}

describe('SASL PLAIN', () => {
  const check = staticPasswordCheck(new Map([['alice', 'alice-pw'], ['bøb', 'pässwörd']]));

  test('KafkaJS messages parse and authenticate, with and without an authzid', async () => {
    assert.deepEqual(parsePlainMessage(await kafkajsPlain({ username: 'alice', password: 'alice-pw' })), { authzid: '', authcid: 'alice', password: 'alice-pw' });
    assert.deepEqual(authenticatePlain(await kafkajsPlain({ username: 'alice', password: 'alice-pw' }), check), { principal: 'alice' });
    assert.deepEqual(authenticatePlain(await kafkajsPlain({ authorizationIdentity: 'alice', username: 'alice', password: 'alice-pw' }), check), { principal: 'alice' });
    assert.deepEqual(authenticatePlain(await kafkajsPlain({ username: 'bøb', password: 'pässwörd' }), check), { principal: 'bøb' });
  });

  test('wrong password and unknown user fail alike, and the message holds no secret', async () => {
    const errors: MeridianError[] = [];
    for (const [username, password] of [
      ['alice', 'guess-1'],
      ['mallory', 'guess-2'],
    ]) {
      assert.throws(
        () => authenticatePlain(Buffer.from(`\0${username}\0${password}`), check),
        (err: unknown) => {
          isCode(ErrorCode.SaslAuthenticationFailed)(err);
          errors.push(err as MeridianError);
          return true;
        },
      );
    }
    assert.equal(errors[0].message, errors[1].message);
    for (const e of errors) assert.doesNotMatch(e.message, /guess|alice|mallory/);
  });

  test('an authzid other than the user fails authentication', async () => {
    assert.throws(() => authenticatePlain(Buffer.from('admin\0alice\0alice-pw'), check), isCode(ErrorCode.SaslAuthenticationFailed, /authorization identity/));
  });

  const malformed: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['no NUL', Buffer.from('alice')],
    ['one NUL', Buffer.from('alice\0alice-pw')],
    ['three NULs', Buffer.from('\0alice\0alice-pw\0')],
    ['empty user', Buffer.from('\0\0alice-pw')],
    ['empty password', Buffer.from('\0alice\0')],
    ['invalid UTF-8', Buffer.concat([Buffer.from('\0alice\0'), Buffer.from([0xc3, 0x28])])],
  ];
  for (const [name, message] of malformed) {
    test(`refused as malformed: ${name}`, () => {
      assert.throws(
        () => authenticatePlain(message, check),
        (err: unknown) => {
          isCode(ErrorCode.InvalidSaslMessage)(err);
          assert.doesNotMatch((err as Error).message, /alice-pw/);
          return true;
        },
      );
    });
  }

  test('the check function decides; its answer is all that counts', () => {
    const seen: Array<[string, string]> = [];
    const result = authenticatePlain(Buffer.from('\0carol\0x'), (user, password) => {
      seen.push([user, password]);
      return true;
    });
    assert.deepEqual(result, { principal: 'carol' });
    assert.deepEqual(seen, [['carol', 'x']]);
  });

  test('passwordsEqual compares regardless of length', () => {
    assert.equal(passwordsEqual('abc', 'abc'), true);
    assert.equal(passwordsEqual('abc', 'abd'), false);
    assert.equal(passwordsEqual('abc', 'abcd'), false);
    assert.equal(passwordsEqual('', ''), true);
    assert.equal(passwordsEqual('ä', 'a'), false);
  });
});

describe('KafkaPrincipal', () => {
  test('format and parse', () => {
    assert.equal(formatPrincipal(userPrincipal('alice')), 'User:alice');
    assert.equal(formatPrincipal(ANONYMOUS), 'User:ANONYMOUS');
    assert.deepEqual(parsePrincipal('User:alice'), { type: 'User', name: 'alice' });
    assert.deepEqual(parsePrincipal('User:CN=a:b,O=c'), { type: 'User', name: 'CN=a:b,O=c' }, 'split at the first colon');
    assert.ok(principalEquals(parsePrincipal('User:ANONYMOUS'), ANONYMOUS));
    assert.ok(!principalEquals(parsePrincipal('Group:alice'), userPrincipal('alice')));
    for (const bad of ['', 'alice', ':alice', 'User:']) assert.throws(() => parsePrincipal(bad), isCode(ErrorCode.InvalidPrincipal));
  });

  test('principals are frozen', () => {
    assert.ok(Object.isFrozen(ANONYMOUS));
    assert.ok(Object.isFrozen(userPrincipal('x')));
    assert.ok(Object.isFrozen(parsePrincipal('User:x')));
  });
});
