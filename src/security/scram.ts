/**
 * The server side of SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka uses
 * them (KIP-84): one `ScramServer` per connection, fed the client's two messages in turn.
 *
 *   client-first   n,[a=authzid],n=user,r=cnonce[,ext=value...]
 *   server-first   r=cnonce+snonce,s=salt,i=iterations
 *   client-final   c=base64(gs2-header),r=cnonce+snonce[,ext...],p=proof
 *   server-final   v=server-signature
 *
 * The server holds StoredKey and ServerKey, never the password: it recovers ClientKey from
 * the proof (proof XOR HMAC(StoredKey, AuthMessage)) and checks H(ClientKey) == StoredKey.
 *
 * What it accepts and refuses:
 * - Channel binding flag "n" (client does not support it) or "y" (client does, thinks the
 *   server does not: true, no -PLUS mechanism is offered). "p=..." is refused.
 * - An authzid equal to the user name (Kafka's rule: no impersonation); any other is refused.
 * - Extensions in the client-first message are parsed and ignored, except Kafka's
 *   `tokenauth=true` (KIP-48 delegation tokens), which is refused: there is no token store,
 *   and checking a token id against the user credentials would be wrong.
 * - The reserved `m=` attribute is refused (RFC 5802 section 5.1 says the server MUST).
 * - The user name is not SASLprep'd, as Kafka does not: names are compared as sent.
 *
 * An unknown user goes through the same steps as a known one against a decoy credential
 * derived from `decoyKey` and the name, so the server-first message (a stable salt for the
 * name, the default iterations) and the failure (same code, same message, at the same step)
 * do not tell whether the user exists. The decoy is computed for every user, known or not,
 * so step one costs the same.
 *
 * This file also holds the SCRAM key derivation that the credential store shares.
 */
import crypto from 'node:crypto';
import { ErrorCode, MeridianError } from '../errors.js';

export const ScramMechanism = {
  Sha256: 'SCRAM-SHA-256',
  Sha512: 'SCRAM-SHA-512',
} as const;
export type ScramMechanism = (typeof ScramMechanism)[keyof typeof ScramMechanism];

export const SCRAM_MECHANISMS: readonly ScramMechanism[] = [ScramMechanism.Sha256, ScramMechanism.Sha512];

/** Kafka's bounds (ScramMechanism.minIterations, and 16384 as the upper one AlterUserScramCredentials enforces). */
export const MIN_ITERATIONS = 4096;
export const MAX_ITERATIONS = 16384;

/** What the server keeps of a password for one mechanism (RFC 5802 section 3). */
export interface StoredCredential {
  readonly salt: Buffer;
  readonly iterations: number;
  readonly storedKey: Buffer;
  readonly serverKey: Buffer;
}

const HASHES: Readonly<Record<ScramMechanism, { algorithm: 'sha256' | 'sha512'; length: number }>> = {
  'SCRAM-SHA-256': { algorithm: 'sha256', length: 32 },
  'SCRAM-SHA-512': { algorithm: 'sha512', length: 64 },
};

export function isScramMechanism(name: string): name is ScramMechanism {
  return Object.hasOwn(HASHES, name);
}

/** Output length of the mechanism's hash: the length of every key and of a salted password. */
export function scramKeyLength(mechanism: ScramMechanism): number {
  return HASHES[mechanism].length;
}

function hmac(mechanism: ScramMechanism, key: Buffer, data: Buffer | string): Buffer {
  return crypto.createHmac(HASHES[mechanism].algorithm, key).update(data).digest();
}

function hash(mechanism: ScramMechanism, data: Buffer): Buffer {
  return crypto.createHash(HASHES[mechanism].algorithm).update(data).digest();
}

/** Hi(password, salt, i): PBKDF2 with the mechanism's HMAC, one hash long. */
export function saltPassword(mechanism: ScramMechanism, password: string, salt: Buffer, iterations: number): Buffer {
  return crypto.pbkdf2Sync(Buffer.from(password, 'utf8'), salt, iterations, HASHES[mechanism].length, HASHES[mechanism].algorithm);
}

/** StoredKey and ServerKey from a salted password (what Kafka's AlterUserScramCredentials sends). */
export function credentialFromSaltedPassword(mechanism: ScramMechanism, salt: Buffer, saltedPassword: Buffer, iterations: number): StoredCredential {
  const clientKey = hmac(mechanism, saltedPassword, 'Client Key');
  return {
    salt: Buffer.from(salt),
    iterations,
    storedKey: hash(mechanism, clientKey),
    serverKey: hmac(mechanism, saltedPassword, 'Server Key'),
  };
}

/** Whether `password` is the one `credential` was made from (PBKDF2: costs `iterations`). */
export function credentialMatchesPassword(mechanism: ScramMechanism, credential: StoredCredential, password: string): boolean {
  const fresh = credentialFromSaltedPassword(mechanism, credential.salt, saltPassword(mechanism, password, credential.salt, credential.iterations), credential.iterations);
  return constantTimeEqual(fresh.storedKey, credential.storedKey);
}

/** Equal-length buffers compared in constant time; different lengths are unequal (lengths are public here). */
function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

/** RFC 5802 saslname: ',' and '=' travel as "=2C" and "=3D". */
export function escapeSaslName(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

/** The inverse of escapeSaslName; undefined for an '=' not starting "=2C" or "=3D", which the RFC says MUST fail. */
export function unescapeSaslName(saslName: string): string | undefined {
  let out = '';
  for (let i = 0; i < saslName.length; i++) {
    const c = saslName[i];
    if (c !== '=') {
      out += c;
      continue;
    }
    const code = saslName.slice(i + 1, i + 3);
    if (code === '2C') out += ',';
    else if (code === '3D') out += '=';
    else return undefined;
    i += 2;
  }
  return out;
}

export interface ScramStepResult {
  /** The bytes to send back (SaslAuthenticate's auth_bytes). */
  readonly response: Buffer;
  /** True after the server-final message: the client is authenticated. */
  readonly done: boolean;
  /** When done: the authenticated user name (unescaped), which becomes `User:<name>`. */
  readonly principal?: string;
}

export interface ScramServerOptions {
  /**
   * The server's part of the nonce; tests inject a fixed one (RFC 7677's vector). Must be
   * printable ASCII without ','. Default: 24 random bytes, base64.
   */
  nonce?: () => string;
  /**
   * Key of the decoy credentials of unknown users. Pass a long-lived one (the credential
   * store's): with a per-connection key an unknown user's salt would change from one
   * attempt to the next while a real user's does not. Default: random per server.
   */
  decoyKey?: Buffer;
}

type State =
  | { readonly kind: 'initial' }
  | {
      readonly kind: 'first-sent';
      readonly user: string;
      readonly known: boolean;
      readonly credential: StoredCredential;
      readonly gs2Header: string;
      readonly clientFirstBare: string;
      readonly serverFirst: string;
      readonly nonce: string;
    }
  | { readonly kind: 'finished' };

/** A strict UTF-8 decoder: a SCRAM message with invalid UTF-8 is malformed, not repaired. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * One SCRAM exchange on one connection. Not reusable: after success or any failure every
 * further step throws, as Kafka closes the connection on a failed authentication.
 */
export class ScramServer {
  readonly mechanism: ScramMechanism;
  #lookup: (user: string) => StoredCredential | undefined;
  #nonce: () => string;
  #decoyKey: Buffer;
  #state: State = { kind: 'initial' };
  #user: string | undefined;

  constructor(mechanism: ScramMechanism, lookup: (user: string) => StoredCredential | undefined, options: ScramServerOptions = {}) {
    if (!isScramMechanism(mechanism)) throw new MeridianError(ErrorCode.UnsupportedSaslMechanism, `unsupported SASL mechanism ${String(mechanism)}`);
    this.mechanism = mechanism;
    this.#lookup = lookup;
    this.#nonce = options.nonce ?? (() => crypto.randomBytes(24).toString('base64'));
    this.#decoyKey = options.decoyKey ?? crypto.randomBytes(32);
  }

  /** The user name the client gave, once its first message parsed (for the audit log; known or not). */
  get user(): string | undefined {
    return this.#user;
  }

  /** Takes the client's next message; throws a MeridianError (no secrets in it) when the exchange fails. */
  step(clientMessage: Buffer): ScramStepResult {
    const state = this.#state;
    // Any failure ends the exchange; success ends it too. Set before the work so a throw leaves it finished.
    this.#state = { kind: 'finished' };
    switch (state.kind) {
      case 'initial':
        return this.#clientFirst(clientMessage);
      case 'first-sent':
        return this.#clientFinal(state, clientMessage);
      case 'finished':
        throw this.#malformed('the exchange is already over');
    }
  }

  #clientFirst(message: Buffer): ScramStepResult {
    const text = this.#decode(message);
    const parts = text.split(',');
    if (parts.length < 4) throw this.#malformed('client-first message has too few attributes');
    const [cbindFlag, authzidAttr] = parts;
    if (cbindFlag.startsWith('p=')) throw this.#malformed('channel binding is not supported');
    if (cbindFlag !== 'n' && cbindFlag !== 'y') throw this.#malformed('client-first message must start with a channel binding flag "n" or "y"');
    let authzid: string | undefined;
    if (authzidAttr !== '') {
      if (!authzidAttr.startsWith('a=')) throw this.#malformed('malformed authorization identity in the GS2 header');
      authzid = this.#saslName(authzidAttr.slice(2), 'authorization identity');
    }
    const gs2Header = `${cbindFlag},${authzidAttr},`;
    const bare = parts.slice(2);
    if (bare[0].startsWith('m=')) throw this.#malformed('mandatory extension (m=) is not supported');
    if (!bare[0].startsWith('n=')) throw this.#malformed('client-first message has no user name (n=)');
    const user = this.#saslName(bare[0].slice(2), 'user name');
    this.#user = user;
    if (bare.length < 2 || !bare[1].startsWith('r=')) throw this.#malformed('client-first message has no nonce (r=)');
    const clientNonce = bare[1].slice(2);
    if (!isPrintableNonce(clientNonce)) throw this.#malformed('client nonce is empty or not printable ASCII');
    const extensions = parseExtensions(bare.slice(2));
    if (extensions === undefined) throw this.#malformed('malformed extension in the client-first message');
    if (extensions.get('tokenauth')?.toLowerCase() === 'true') {
      throw new MeridianError(ErrorCode.SaslAuthenticationFailed, `${this.mechanism} authentication failed: delegation tokens (tokenauth) are not supported`);
    }
    if (authzid !== undefined && authzid !== user) {
      throw new MeridianError(ErrorCode.SaslAuthenticationFailed, `${this.mechanism} authentication failed: the authorization identity differs from the user name`);
    }

    const decoy = this.#decoyCredential(user);
    const stored = this.#lookup(user);
    const known = stored !== undefined;
    const credential = stored ?? decoy;
    const serverNonce = this.#nonce();
    if (!isPrintableNonce(serverNonce)) throw new Error('ScramServer: the nonce generator returned a nonce that is empty or not printable ASCII without ","');
    const nonce = clientNonce + serverNonce;
    const serverFirst = `r=${nonce},s=${credential.salt.toString('base64')},i=${credential.iterations}`;
    this.#state = { kind: 'first-sent', user, known, credential, gs2Header, clientFirstBare: bare.join(','), serverFirst, nonce };
    return { response: Buffer.from(serverFirst, 'utf8'), done: false };
  }

  #clientFinal(state: Extract<State, { kind: 'first-sent' }>, message: Buffer): ScramStepResult {
    const text = this.#decode(message);
    const proofAt = text.lastIndexOf(',p=');
    if (proofAt < 0) throw this.#malformed('client-final message has no proof (p=)');
    const withoutProof = text.slice(0, proofAt);
    const parts = withoutProof.split(',');
    if (parts.length < 2 || !parts[0].startsWith('c=') || !parts[1].startsWith('r=')) throw this.#malformed('client-final message must start with c= and r=');
    if (parseExtensions(parts.slice(2)) === undefined) throw this.#malformed('malformed extension in the client-final message');
    const channelBinding = decodeBase64(parts[0].slice(2));
    if (channelBinding === undefined) throw this.#malformed('channel binding (c=) is not base64');
    if (!channelBinding.equals(Buffer.from(state.gs2Header, 'utf8'))) throw this.#malformed('channel binding (c=) does not match the GS2 header of the client-first message');
    // Kafka's server accepts a nonce that ends with the exchange's (ScramSaslServer: endsWith):
    // librdkafka sends its client nonce again in front of the whole nonce.
    const nonce = Buffer.from(parts[1].slice(2), 'utf8');
    const expected = Buffer.from(state.nonce, 'utf8');
    if (nonce.length < expected.length || !constantTimeEqual(nonce.subarray(nonce.length - expected.length), expected)) {
      throw this.#malformed('nonce (r=) does not match the one of this exchange');
    }
    const proof = decodeBase64(text.slice(proofAt + 3));
    if (proof === undefined || proof.length !== scramKeyLength(this.mechanism)) throw this.#malformed('proof (p=) is not base64 of the hash length');

    const { credential } = state;
    const authMessage = `${state.clientFirstBare},${state.serverFirst},${withoutProof}`;
    const clientSignature = hmac(this.mechanism, credential.storedKey, authMessage);
    const clientKey = xor(proof, clientSignature);
    const matches = constantTimeEqual(hash(this.mechanism, clientKey), credential.storedKey);
    // The decoy's keys are unrelated to any password, but `known` makes its failure certain.
    if (!matches || !state.known) {
      throw new MeridianError(ErrorCode.SaslAuthenticationFailed, `${this.mechanism} authentication failed: invalid user name or password`);
    }
    const serverSignature = hmac(this.mechanism, credential.serverKey, authMessage);
    return { response: Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8'), done: true, principal: state.user };
  }

  /**
   * A credential for a user that does not exist: a salt stable per name (so repeated
   * attempts see what they would for a real user), the default iterations, keys no
   * password produces.
   */
  #decoyCredential(user: string): StoredCredential {
    const seed = hmac(this.mechanism, this.#decoyKey, `decoy\0${this.mechanism}\0${user}`);
    return {
      salt: hmac(this.mechanism, seed, 'salt').subarray(0, 32),
      iterations: MIN_ITERATIONS,
      storedKey: hmac(this.mechanism, seed, 'stored key'),
      serverKey: hmac(this.mechanism, seed, 'server key'),
    };
  }

  #decode(message: Buffer): string {
    try {
      return utf8.decode(message);
    } catch {
      throw this.#malformed('message is not valid UTF-8');
    }
  }

  #saslName(saslName: string, what: string): string {
    const name = saslName === '' ? undefined : unescapeSaslName(saslName);
    if (name === undefined || name.includes('\0')) throw this.#malformed(`${what} is empty or badly escaped (only =2C and =3D are allowed)`);
    return name;
  }

  #malformed(why: string): MeridianError {
    return new MeridianError(ErrorCode.InvalidSaslMessage, `${this.mechanism}: invalid SASL message: ${why}`);
  }
}

/** RFC 5802 printable: %x21-2B / %x2D-7E (',' excluded), at least one. */
function isPrintableNonce(nonce: string): boolean {
  if (nonce.length === 0) return false;
  for (let i = 0; i < nonce.length; i++) {
    const c = nonce.charCodeAt(i);
    if (c < 0x21 || c > 0x7e || c === 0x2c) return false;
  }
  return true;
}

/** `name=value` attributes (RFC 5802's single letters, or Kafka's `tokenauth`); undefined when one is malformed. */
function parseExtensions(attrs: readonly string[]): Map<string, string> | undefined {
  const out = new Map<string, string>();
  for (const attr of attrs) {
    const eq = attr.indexOf('=');
    if (eq <= 0 || !/^[A-Za-z0-9_]+$/.test(attr.slice(0, eq))) return undefined;
    out.set(attr.slice(0, eq), attr.slice(eq + 1));
  }
  return out;
}

/** Canonical base64 only: Buffer.from is lenient (skips junk), which would let two spellings pass as one. */
function decodeBase64(text: string): Buffer | undefined {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}
