/**
 * The SCRAM server: RFC 7677's SCRAM-SHA-256 exchange byte for byte, full exchanges with
 * KafkaJS's own SCRAM client (an independent implementation, driven in-process: its
 * `saslAuthenticate` hook hands us each message and parses our answer), the unknown user
 * indistinguishable from a wrong password, and refusal of malformed exchanges. The
 * malformed cases use a small client written here from RFC 5802, since KafkaJS only sends
 * well-formed messages.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, test } from 'node:test';
import { ErrorCode, MeridianError } from '../../src/errors.js';
import {
  credentialFromSaltedPassword,
  escapeSaslName,
  saltPassword,
  ScramMechanism,
  ScramServer,
  unescapeSaslName,
  type StoredCredential,
} from '../../src/security/scram.js';

const require = createRequire(import.meta.url);
// KafkaJS is CommonJS and this module is internal (no types).
const { SCRAM, DIGESTS } = require('kafkajs/src/broker/saslAuthenticator/scram.js') as { SCRAM: any; DIGESTS: Record<'SHA256' | 'SHA512', unknown> };

const silent = { debug() {}, info() {}, warn() {}, error() {} };

function credential(mechanism: ScramMechanism, password: string, iterations = 4096, salt = crypto.randomBytes(32)): StoredCredential {
  return credentialFromSaltedPassword(mechanism, salt, saltPassword(mechanism, password, salt, iterations), iterations);
}

function users(mechanism: ScramMechanism, entries: Record<string, string>): (user: string) => StoredCredential | undefined {
  const m = new Map(Object.entries(entries).map(([u, p]) => [u, credential(mechanism, p)]));
  return (user) => m.get(user);
}

/** What a KafkaJS login against `server` did: the server's error if it threw, KafkaJS's otherwise. */
async function kafkajsLogin(server: ScramServer, username: string, password: string): Promise<{ serverError?: unknown; clientError?: unknown; principal?: string; steps: number }> {
  const result: { serverError?: unknown; clientError?: unknown; principal?: string; steps: number } = { steps: 0 };
  const saslAuthenticate = async ({ request, response }: { request: { encode(): Promise<Buffer> }; response: { parse(data: Buffer): Promise<unknown> } }) => {
    // KafkaJS's request encodes SaslAuthenticate's auth_bytes: an int32 length, then the message.
    const framed = await request.encode();
    assert.equal(framed.readInt32BE(0), framed.length - 4);
    result.steps++;
    let step;
    try {
      step = server.step(framed.subarray(4));
    } catch (err) {
      result.serverError = err;
      throw err;
    }
    if (step.done) result.principal = step.principal;
    return response.parse(step.response);
  };
  const digest = server.mechanism === ScramMechanism.Sha256 ? DIGESTS.SHA256 : DIGESTS.SHA512;
  const client = new SCRAM({ username, password }, 'localhost', 9092, silent, saslAuthenticate, digest);
  try {
    await client.authenticate();
  } catch (err) {
    result.clientError = err;
  }
  return result;
}

/** RFC 5802 client, for messages KafkaJS never sends. */
class TestClient {
  readonly nonce = crypto.randomBytes(18).toString('base64');
  /** Extensions sent after the nonce: part of client-first-message-bare, so of AuthMessage. */
  #extensions = '';
  constructor(
    readonly mechanism: ScramMechanism,
    readonly user: string,
    readonly password: string,
    readonly gs2Header = 'n,,',
  ) {}
  get bare(): string {
    return `n=${escapeSaslName(this.user)},r=${this.nonce}${this.#extensions}`;
  }
  first(extensions = ''): Buffer {
    this.#extensions = extensions;
    return Buffer.from(`${this.gs2Header}${this.bare}`);
  }
  final(serverFirst: Buffer, override: { c?: string; r?: string; extra?: string } = {}): Buffer {
    const attrs = new Map(serverFirst.toString().split(',').map((a) => [a[0], a.slice(2)] as const));
    const salted = saltPassword(this.mechanism, this.password, Buffer.from(attrs.get('s')!, 'base64'), Number(attrs.get('i')));
    const algorithm = this.mechanism === ScramMechanism.Sha256 ? 'sha256' : 'sha512';
    const clientKey = crypto.createHmac(algorithm, salted).update('Client Key').digest();
    const storedKey = crypto.createHash(algorithm).update(clientKey).digest();
    const withoutProof = `c=${override.c ?? Buffer.from(this.gs2Header).toString('base64')},r=${override.r ?? attrs.get('r')}${override.extra ?? ''}`;
    const authMessage = `${this.bare},${serverFirst.toString()},${withoutProof}`;
    const signature = crypto.createHmac(algorithm, storedKey).update(authMessage).digest();
    const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]));
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`);
  }
}

function isCode(code: string, messagePart?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof MeridianError, `expected a MeridianError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.equal(err.retriable, false);
    if (messagePart) assert.match(err.message, messagePart);
    return true;
  };
}

describe('RFC 7677 test vector (SCRAM-SHA-256, user "user", password "pencil")', () => {
  test('server-first and server-final are the RFC bytes', () => {
    const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
    const stored = credential(ScramMechanism.Sha256, 'pencil', 4096, salt);
    const server = new ScramServer(ScramMechanism.Sha256, (u) => (u === 'user' ? stored : undefined), { nonce: () => '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0' });
    const first = server.step(Buffer.from('n,,n=user,r=rOprNGfwEbeRWgbNEkqO'));
    assert.equal(first.done, false);
    assert.equal(first.response.toString(), 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096');
    const final = server.step(Buffer.from('c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ='));
    assert.equal(final.response.toString(), 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
    assert.equal(final.done, true);
    assert.equal(final.principal, 'user');
  });
});

describe('against KafkaJS SCRAM client', () => {
  for (const mechanism of [ScramMechanism.Sha256, ScramMechanism.Sha512]) {
    test(`${mechanism}: login succeeds and KafkaJS verifies the server signature`, async () => {
      const server = new ScramServer(mechanism, users(mechanism, { alice: 'alice-secret' }));
      const r = await kafkajsLogin(server, 'alice', 'alice-secret');
      assert.equal(r.clientError, undefined, String(r.clientError));
      assert.equal(r.principal, 'alice');
      assert.equal(r.steps, 2);
    });

    test(`${mechanism}: a user name with ',' and '=' travels escaped and comes back whole`, async () => {
      const server = new ScramServer(mechanism, users(mechanism, { 'o=acme,cn=bob': 'pw' }));
      const r = await kafkajsLogin(server, 'o=acme,cn=bob', 'pw');
      assert.equal(r.clientError, undefined, String(r.clientError));
      assert.equal(r.principal, 'o=acme,cn=bob');
    });

    test(`${mechanism}: wrong password and unknown user fail alike`, async () => {
      const lookup = users(mechanism, { alice: 'alice-secret' });
      const decoyKey = crypto.randomBytes(32);
      const wrong = await kafkajsLogin(new ScramServer(mechanism, lookup, { decoyKey }), 'alice', 'not-it');
      const unknown = await kafkajsLogin(new ScramServer(mechanism, lookup, { decoyKey }), 'mallory', 'not-it');
      for (const r of [wrong, unknown]) {
        assert.ok(r.clientError, 'KafkaJS must see a failure');
        assert.equal(r.steps, 2, 'both fail at the final message, not before');
        assert.throws(() => {
          throw r.serverError;
        }, isCode(ErrorCode.SaslAuthenticationFailed));
        assert.doesNotMatch((r.serverError as Error).message, /not-it|alice|mallory/);
      }
      const w = wrong.serverError as MeridianError;
      const u = unknown.serverError as MeridianError;
      assert.equal(w.code, u.code);
      assert.equal(w.message, u.message);
      assert.equal(w.retriable, u.retriable);
    });
  }
});

describe('unknown user: the server-first message looks like a real one', () => {
  test('salt of the same length, default iterations, stable across connections for the same key', () => {
    const mechanism = ScramMechanism.Sha256;
    const lookup = users(mechanism, { alice: 'pw' });
    const decoyKey = crypto.randomBytes(32);
    const serverFirst = (user: string, key = decoyKey) => {
      const s = new ScramServer(mechanism, lookup, { decoyKey: key });
      const attrs = new Map(s.step(new TestClient(mechanism, user, 'x').first()).response.toString().split(',').map((a) => [a[0], a.slice(2)] as const));
      return { salt: Buffer.from(attrs.get('s')!, 'base64'), iterations: attrs.get('i') };
    };
    const real = serverFirst('alice');
    const fake1 = serverFirst('mallory');
    const fake2 = serverFirst('mallory');
    assert.equal(fake1.salt.length, real.salt.length);
    assert.equal(fake1.iterations, real.iterations);
    assert.deepEqual(fake1.salt, fake2.salt);
    assert.notDeepEqual(serverFirst('mallory').salt, serverFirst('eve').salt);
    assert.notDeepEqual(serverFirst('mallory', crypto.randomBytes(32)).salt, fake1.salt);
  });
});

describe('the exchange itself (RFC 5802 test client)', () => {
  const mechanism = ScramMechanism.Sha256;
  const lookup = users(mechanism, { alice: 'pw', 'a=b': 'pw2' });
  const login = (client: TestClient, firstExtra = '', finalOverride = {}) => {
    const server = new ScramServer(mechanism, lookup);
    const first = server.step(client.first(firstExtra));
    return { server, result: server.step(client.final(first.response, finalOverride)) };
  };

  test('an authzid equal to the user, the "y" flag and unknown extensions are accepted', () => {
    assert.equal(login(new TestClient(mechanism, 'alice', 'pw', 'n,a=alice,')).result.principal, 'alice');
    assert.equal(login(new TestClient(mechanism, 'a=b', 'pw2', 'n,a=a=3Db,')).result.principal, 'a=b');
    assert.equal(login(new TestClient(mechanism, 'alice', 'pw', 'y,,')).result.principal, 'alice');
    assert.equal(login(new TestClient(mechanism, 'alice', 'pw'), ',x=1,tokenauth=false,custom_ext=a=b').result.principal, 'alice');
    assert.equal(login(new TestClient(mechanism, 'alice', 'pw'), '', { extra: ',x=y' }).result.principal, 'alice');
  });

  test('an authzid other than the user fails authentication', () => {
    assert.throws(() => login(new TestClient(mechanism, 'alice', 'pw', 'n,a=admin,')), isCode(ErrorCode.SaslAuthenticationFailed, /authorization identity/));
  });

  test("Kafka's tokenauth=true (delegation tokens) is refused", () => {
    assert.throws(() => login(new TestClient(mechanism, 'alice', 'pw'), ',tokenauth=true'), isCode(ErrorCode.SaslAuthenticationFailed, /tokenauth/));
  });

  const malformedFirst: Array<[string, string]> = [
    ['empty', ''],
    ['channel binding requested', 'p=tls-unique,,n=alice,r=abc'],
    ['unknown flag', 'x,,n=alice,r=abc'],
    ['bad authzid attribute', 'n,b=alice,n=alice,r=abc'],
    ['reserved m=', 'n,,m=1,n=alice,r=abc'],
    ['no user', 'n,,r=abc,n=alice'],
    ['empty user', 'n,,n=,r=abc'],
    ['bad escape', 'n,,n=al=2Xice,r=abc'],
    ['trailing =', 'n,,n=alice=,r=abc'],
    ['no nonce', 'n,,n=alice'],
    ['empty nonce', 'n,,n=alice,r='],
    ['non-printable nonce', 'n,,n=alice,r=ab c'],
    ['malformed extension', 'n,,n=alice,r=abc,novalue'],
  ];
  for (const [name, message] of malformedFirst) {
    test(`client-first refused: ${name}`, () => {
      const server = new ScramServer(mechanism, lookup);
      assert.throws(() => server.step(Buffer.from(message)), isCode(ErrorCode.InvalidSaslMessage));
    });
  }

  test('client-first refused: invalid UTF-8', () => {
    const server = new ScramServer(mechanism, lookup);
    assert.throws(() => server.step(Buffer.from([0x6e, 0x2c, 0x2c, 0x6e, 0x3d, 0xff, 0xfe, 0x2c, 0x72, 0x3d, 0x61])), isCode(ErrorCode.InvalidSaslMessage, /UTF-8/));
  });

  test('nonce mismatch is refused', () => {
    const client = new TestClient(mechanism, 'alice', 'pw');
    const server = new ScramServer(mechanism, lookup);
    const first = server.step(client.first());
    const replayed = first.response.toString().split(',')[0].slice(2) + 'X';
    assert.throws(() => server.step(client.final(first.response, { r: replayed })), isCode(ErrorCode.InvalidSaslMessage, /nonce/));
  });

  test('channel binding that differs from the GS2 header is refused (a downgrade from "y" to "n")', () => {
    const client = new TestClient(mechanism, 'alice', 'pw', 'y,,');
    const server = new ScramServer(mechanism, lookup);
    const first = server.step(client.first());
    assert.throws(() => server.step(client.final(first.response, { c: 'biws' })), isCode(ErrorCode.InvalidSaslMessage, /channel binding/));
  });

  const malformedFinal: Array<[string, (good: string) => string]> = [
    ['no proof', (g) => g.slice(0, g.lastIndexOf(',p='))],
    ['proof not base64', (g) => g.slice(0, g.lastIndexOf(',p=')) + ',p=!!!!'],
    ['proof too short', (g) => g.slice(0, g.lastIndexOf(',p=')) + ',p=' + Buffer.alloc(16).toString('base64')],
    ['attributes out of order', (g) => g.replace(/^(c=[^,]*),(r=[^,]*)/, '$2,$1')],
    ['c= not base64', (g) => g.replace(/^c=[^,]*/, 'c=b*ws')],
    ['garbage', () => 'hello'],
  ];
  for (const [name, mangle] of malformedFinal) {
    test(`client-final refused: ${name}`, () => {
      const client = new TestClient(mechanism, 'alice', 'pw');
      const server = new ScramServer(mechanism, lookup);
      const first = server.step(client.first());
      const good = client.final(first.response).toString();
      assert.throws(() => server.step(Buffer.from(mangle(good))), isCode(ErrorCode.InvalidSaslMessage));
    });
  }

  test('a wrong proof fails authentication and the message holds no secret', () => {
    const client = new TestClient(mechanism, 'alice', 'hunter2');
    const server = new ScramServer(mechanism, lookup);
    const first = server.step(client.first());
    const final = client.final(first.response);
    assert.throws(
      () => server.step(final),
      (err: unknown) => {
        isCode(ErrorCode.SaslAuthenticationFailed)(err);
        const m = (err as Error).message;
        assert.doesNotMatch(m, /hunter2|p=|alice/);
        assert.ok(!m.includes(final.toString().slice(-20)));
        return true;
      },
    );
  });

  test('no step after the exchange ends, in success or failure', () => {
    const { server } = login(new TestClient(mechanism, 'alice', 'pw'));
    assert.throws(() => server.step(Buffer.from('n,,n=alice,r=abc')), isCode(ErrorCode.InvalidSaslMessage, /over/));
    const failed = new ScramServer(mechanism, lookup);
    assert.throws(() => failed.step(Buffer.from('garbage')));
    assert.throws(() => failed.step(new TestClient(mechanism, 'alice', 'pw').first()), isCode(ErrorCode.InvalidSaslMessage, /over/));
  });

  test('the mechanism must be a SCRAM one', () => {
    assert.throws(() => new ScramServer('SCRAM-SHA-1' as ScramMechanism, lookup), isCode(ErrorCode.UnsupportedSaslMechanism));
  });
});

test('saslname escaping round-trips and refuses stray "="', () => {
  for (const name of ['plain', 'a,b', 'a=b', '=2C', ',=,=', 'ünïcødé']) assert.equal(unescapeSaslName(escapeSaslName(name)), name);
  assert.equal(escapeSaslName('a=b,c'), 'a=3Db=2Cc');
  assert.equal(unescapeSaslName('a=2c'), undefined, 'the RFC spells the escapes upper case');
  assert.equal(unescapeSaslName('a=='), undefined);
});
