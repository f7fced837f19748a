/**
 * The client side of SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), for this
 * region's replication links logging in to a remote region (replication/link-client.ts).
 * One `ScramClient` per login:
 *
 *   first()        client-first   n,,n=user,r=cnonce
 *   final(sf)      checks server-first (r=cnonce+snonce,s=salt,i=iterations), answers
 *                  client-final   c=biws,r=cnonce+snonce,p=proof
 *   verify(sf)     checks server-final: v=server-signature must be the one the password
 *                  gives, so a server that does not hold this user's credential (a
 *                  man in the middle, a wrong region) is not believed; e=... is a refusal
 *
 * The salted password comes from the same `saltPassword` as the server's store. Errors are
 * MeridianErrors that never hold the password, the salted password, a key or a proof.
 */
import crypto from 'node:crypto';
import { ErrorCode, MeridianError } from '../errors.js';
import { escapeSaslName, MAX_ITERATIONS, MIN_ITERATIONS, saltPassword, scramKeyLength, type ScramMechanism } from './scram.js';

const ALGORITHMS: Readonly<Record<ScramMechanism, 'sha256' | 'sha512'>> = { 'SCRAM-SHA-256': 'sha256', 'SCRAM-SHA-512': 'sha512' };

/** "n,," base64: no channel binding, no authorization identity. */
const GS2_HEADER = 'n,,';

export class ScramClient {
  readonly mechanism: ScramMechanism;
  readonly user: string;
  #password: string;
  #clientNonce: string;
  #clientFirstBare: string;
  #expectedSignature: Buffer | undefined;

  constructor(mechanism: ScramMechanism, user: string, password: string, options: { nonce?: string } = {}) {
    this.mechanism = mechanism;
    this.user = user;
    this.#password = password;
    this.#clientNonce = options.nonce ?? crypto.randomBytes(24).toString('base64');
    this.#clientFirstBare = `n=${escapeSaslName(user)},r=${this.#clientNonce}`;
  }

  first(): Buffer {
    return Buffer.from(GS2_HEADER + this.#clientFirstBare, 'utf8');
  }

  /** Takes server-first, answers client-final (with the proof). */
  final(serverFirstBytes: Buffer): Buffer {
    const serverFirst = serverFirstBytes.toString('utf8');
    const attrs = attributes(serverFirst);
    if (attrs.has('e')) throw this.#refused(attrs.get('e')!);
    const nonce = attrs.get('r');
    const salt = attrs.get('s');
    const iterations = Number(attrs.get('i'));
    if (nonce === undefined || salt === undefined || attrs.get('i') === undefined) throw this.#malformed('server-first message lacks r=, s= or i=');
    if (!nonce.startsWith(this.#clientNonce) || nonce.length === this.#clientNonce.length) throw this.#malformed('the server nonce does not extend the client nonce');
    if (!Number.isInteger(iterations) || iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS) throw this.#malformed(`iteration count ${attrs.get('i')} is outside ${MIN_ITERATIONS}..${MAX_ITERATIONS}`);
    const saltBytes = Buffer.from(salt, 'base64');
    if (saltBytes.length === 0) throw this.#malformed('empty salt');
    const salted = saltPassword(this.mechanism, this.#password, saltBytes, iterations);
    const withoutProof = `c=${Buffer.from(GS2_HEADER).toString('base64')},r=${nonce}`;
    const authMessage = `${this.#clientFirstBare},${serverFirst},${withoutProof}`;
    const clientKey = this.#hmac(salted, 'Client Key');
    const storedKey = crypto.createHash(ALGORITHMS[this.mechanism]).update(clientKey).digest();
    const proof = xor(clientKey, this.#hmac(storedKey, authMessage));
    this.#expectedSignature = this.#hmac(this.#hmac(salted, 'Server Key'), authMessage);
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8');
  }

  /** Checks server-final; throws unless it proves the server holds this user's credential. */
  verify(serverFinalBytes: Buffer): void {
    const attrs = attributes(serverFinalBytes.toString('utf8'));
    if (attrs.has('e')) throw this.#refused(attrs.get('e')!);
    const expected = this.#expectedSignature;
    if (expected === undefined) throw this.#malformed('server-final message before client-final');
    const signature = Buffer.from(attrs.get('v') ?? '', 'base64');
    if (signature.length !== scramKeyLength(this.mechanism) || !crypto.timingSafeEqual(signature, expected)) {
      throw new MeridianError(ErrorCode.SaslAuthenticationFailed, `${this.mechanism}: the server's signature is wrong: it does not hold the credential of user ${this.user}`);
    }
  }

  #hmac(key: Buffer, data: string): Buffer {
    return crypto.createHmac(ALGORITHMS[this.mechanism], key).update(data).digest();
  }

  #refused(reason: string): MeridianError {
    return new MeridianError(ErrorCode.SaslAuthenticationFailed, `${this.mechanism} authentication of user ${this.user} refused by the server: ${reason}`);
  }

  #malformed(why: string): MeridianError {
    return new MeridianError(ErrorCode.InvalidSaslMessage, `${this.mechanism}: invalid message from the server: ${why}`);
  }
}

/** `a=value` attributes of a server message; values may contain '='. */
function attributes(message: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of message.split(',')) {
    const eq = part.indexOf('=');
    if (eq === 1) out.set(part[0], part.slice(2));
  }
  return out;
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}
