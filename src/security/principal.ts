/**
 * Who a connection is: Kafka's principal, a type and a name written `Type:name`
 * ("User:alice"). Authentication yields a user name; the listener turns it into
 * `User:<name>` (an unauthenticated listener gives `User:ANONYMOUS`), and ACLs match on
 * the formatted string, so two principals are the same exactly when they format the same.
 */
import { ErrorCode, MeridianError } from '../errors.js';

export interface KafkaPrincipal {
  /** "User" for everything authentication yields; ACLs may name other types ("Group" in Kafka's docs). */
  readonly type: string;
  readonly name: string;
}

export const USER_TYPE = 'User';

/** The principal of a connection that did not authenticate (a PLAINTEXT listener), as in Kafka. */
export const ANONYMOUS: KafkaPrincipal = Object.freeze({ type: USER_TYPE, name: 'ANONYMOUS' });

/** `User:<name>` for an authenticated user name. */
export function userPrincipal(name: string): KafkaPrincipal {
  return Object.freeze({ type: USER_TYPE, name });
}

export function formatPrincipal(principal: KafkaPrincipal): string {
  return `${principal.type}:${principal.name}`;
}

/**
 * Parses `Type:name`, split at the first ':' as Kafka does, so a name may itself contain
 * ':' (an X.500 name, a SPIFFE id). Type and name must both be non-empty. `User:*` (the
 * wildcard of ACLs) parses like any other name; what it means is the ACLs' business.
 */
export function parsePrincipal(text: string): KafkaPrincipal {
  const colon = text.indexOf(':');
  if (colon <= 0 || colon === text.length - 1) {
    throw new MeridianError(ErrorCode.InvalidPrincipal, `invalid principal ${JSON.stringify(text)}: expected Type:name, e.g. User:alice`);
  }
  return Object.freeze({ type: text.slice(0, colon), name: text.slice(colon + 1) });
}

export function principalEquals(a: KafkaPrincipal, b: KafkaPrincipal): boolean {
  return a.type === b.type && a.name === b.name;
}
