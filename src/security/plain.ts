/**
 * SASL PLAIN (RFC 4616): one client message, `[authzid] NUL authcid NUL passwd`, UTF-8.
 * The password travels in the clear, so PLAIN belongs on TLS listeners only (the listener
 * configuration will say so); this file only parses and checks.
 *
 * Rules, as Kafka's PlainSaslServer applies them: exactly two NULs, a non-empty user and
 * password, and an authzid that is empty or the user itself (no impersonation). RFC 4616's
 * 255-octet limits are not enforced, as Kafka does not (long generated passwords exist).
 *
 * The password is checked by a function the caller gives (a static map from the config, or
 * the SCRAM credential store's `verifyPassword`); `staticPasswordCheck` and
 * `passwordsEqual` are the constant-time building blocks for one.
 */
import crypto from 'node:crypto';
import { ErrorCode, MeridianError } from '../errors.js';

export const PLAIN_MECHANISM = 'PLAIN';

export interface PlainMessage {
  /** The authorization identity; "" when the client sent none. */
  readonly authzid: string;
  /** The authentication identity: the user name. */
  readonly authcid: string;
  readonly password: string;
}

/** Whether `password` is `user`'s. Must take the same time for an unknown user as for a wrong password. */
export type PlainPasswordCheck = (user: string, password: string) => boolean;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Splits a PLAIN message; throws INVALID_SASL_MESSAGE (never quoting the message: it holds the password). */
export function parsePlainMessage(message: Buffer): PlainMessage {
  let text: string;
  try {
    text = utf8.decode(message);
  } catch {
    throw malformed('message is not valid UTF-8');
  }
  const parts = text.split('\0');
  if (parts.length !== 3) throw malformed('expected authzid NUL authcid NUL password');
  const [authzid, authcid, password] = parts;
  if (authcid === '') throw malformed('user name (authcid) is empty');
  if (password === '') throw malformed('password is empty');
  return { authzid, authcid, password };
}

/** Parses and checks a PLAIN message; returns the authenticated user name. */
export function authenticatePlain(message: Buffer, check: PlainPasswordCheck): { principal: string } {
  const { authzid, authcid, password } = parsePlainMessage(message);
  if (authzid !== '' && authzid !== authcid) {
    throw new MeridianError(ErrorCode.SaslAuthenticationFailed, 'PLAIN authentication failed: the authorization identity differs from the user name');
  }
  if (!check(authcid, password)) {
    throw new MeridianError(ErrorCode.SaslAuthenticationFailed, 'PLAIN authentication failed: invalid user name or password');
  }
  return { principal: authcid };
}

/**
 * Compares two passwords in time independent of where they differ and of their lengths:
 * both are hashed to one length first, since timingSafeEqual needs equal lengths and an
 * early length check would leak the expected length.
 */
export function passwordsEqual(expected: string, given: string): boolean {
  const a = crypto.createHash('sha256').update(expected, 'utf8').digest();
  const b = crypto.createHash('sha256').update(given, 'utf8').digest();
  return crypto.timingSafeEqual(a, b);
}

/**
 * A check over fixed user → password pairs (config-provided users). An unknown user is
 * compared against a random placeholder, so it costs what a wrong password costs.
 */
export function staticPasswordCheck(users: ReadonlyMap<string, string>): PlainPasswordCheck {
  const placeholder = crypto.randomBytes(32).toString('base64');
  return (user, password) => {
    const expected = users.get(user);
    const equal = passwordsEqual(expected ?? placeholder, password);
    return equal && expected !== undefined;
  };
}

function malformed(why: string): MeridianError {
  return new MeridianError(ErrorCode.InvalidSaslMessage, `PLAIN: invalid SASL message: ${why}`);
}
