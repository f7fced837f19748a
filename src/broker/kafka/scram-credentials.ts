/**
 * SCRAM credentials over Kafka: DescribeUserScramCredentials (v0) and
 * AlterUserScramCredentials (v0), over the region's CredentialStore (src/security), as
 * Kafka's `kafka-configs --alter --add-config 'SCRAM-SHA-512=[password=...]'` and
 * Admin.alterUserScramCredentials use them.
 *
 * - Describe needs DESCRIBE on the cluster, Alter needs ALTER on the cluster; a denial is
 *   CLUSTER_AUTHORIZATION_FAILED (Describe: the top-level error, no results; Alter: every
 *   user named, as Kafka's getErrorResponse).
 * - Describe: no users (null or empty) lists every user; a user without credentials is
 *   RESOURCE_NOT_FOUND, a user named twice DUPLICATE_RESOURCE. Only mechanisms and
 *   iterations are answered, never a salt or key.
 * - Alter: one result per user. Kafka's client salts the password itself, so an upsertion
 *   carries salt, salted password and iterations; the store keeps StoredKey and ServerKey
 *   derived from them. A (user, mechanism) altered twice in one request (two upsertions, or
 *   a deletion and an upsertion) is DUPLICATE_RESOURCE; a mechanism code other than 1
 *   (SCRAM-SHA-256) and 2 (SCRAM-SHA-512) UNSUPPORTED_SASL_MECHANISM; iterations outside
 *   4096..16384, an empty name, salt or a salted password of the wrong size
 *   UNACCEPTABLE_CREDENTIAL; deleting a credential that does not exist RESOURCE_NOT_FOUND.
 *   A user's alterations are checked together before any is applied: a user whose result
 *   is an error has nothing changed.
 * - A changed or deleted credential counts for the next logins; connections that already
 *   authenticated stay open, as in Kafka.
 *
 * Without the security facade (handler unit tests) both answer SECURITY_DISABLED. Nothing
 * here logs or puts in a message a salt or salted password.
 */
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import type { RequestContext } from '../../protocol/kafka/connection.js';
import { kafkaCode, toKafkaError } from '../../protocol/kafka/error-mapping.js';
import type {
  AlterUserScramCredentialsRequest,
  AlterUserScramCredentialsResponse,
  AlterUserScramCredentialsResponseAlterUserScramCredentialsResult,
} from '../../protocol/kafka/messages/alter-user-scram-credentials.js';
import type {
  DescribeUserScramCredentialsRequest,
  DescribeUserScramCredentialsResponse,
  DescribeUserScramCredentialsResponseDescribeUserScramCredentialsResult,
} from '../../protocol/kafka/messages/describe-user-scram-credentials.js';
import { AclOperation } from '../../security/acl.js';
import type { BrokerSecurity } from '../../security/broker-security.js';
import type { CredentialStore } from '../../security/credential-store.js';
import { MAX_ITERATIONS, MIN_ITERATIONS, scramKeyLength, ScramMechanism } from '../../security/scram.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';

export const SCRAM_CREDENTIAL_APIS: readonly KafkaApiEntry[] = [
  { key: ApiKey.DescribeUserScramCredentials, versions: [0, 0], handle: (d, c, req) => handleDescribeUserScramCredentials(d, c, req) },
  { key: ApiKey.AlterUserScramCredentials, versions: [0, 0], handle: (d, c, req) => handleAlterUserScramCredentials(d, c, req) },
];

/** Kafka's wire codes of the SCRAM mechanisms (org.apache.kafka.clients.admin.ScramMechanism). */
export const SCRAM_MECHANISM_CODES: Readonly<Record<number, ScramMechanism>> = { 1: ScramMechanism.Sha256, 2: ScramMechanism.Sha512 };

export function scramMechanismCode(mechanism: ScramMechanism): number {
  return mechanism === ScramMechanism.Sha256 ? 1 : 2;
}

const NO_SECURITY = 'SCRAM credentials are not available on this broker (no security configured)';

interface Outcome {
  errorCode: number;
  errorMessage: string | null;
}

const OK: Outcome = { errorCode: 0, errorMessage: null };

function failure(name: Parameters<typeof kafkaCode>[0], message: string): Outcome {
  return { errorCode: kafkaCode(name), errorMessage: message };
}

function outcomeOf(err: unknown): Outcome {
  const k = toKafkaError(err);
  return { errorCode: k.code, errorMessage: k.message };
}

// ---------------------------------------------------------------------------------------
// DescribeUserScramCredentials

export function handleDescribeUserScramCredentials(deps: KafkaApiDeps, ctx: RequestContext, req: DescribeUserScramCredentialsRequest): DescribeUserScramCredentialsResponse {
  const security = deps.security;
  if (security === undefined) return { throttleTimeMs: 0, ...failure('SECURITY_DISABLED', NO_SECURITY), results: [] };
  if (!security.authorizeCluster(ctx, AclOperation.Describe)) {
    return { throttleTimeMs: 0, ...failure('CLUSTER_AUTHORIZATION_FAILED', `${ctx.principal} may not describe SCRAM credentials: it needs DESCRIBE on the cluster`), results: [] };
  }
  const all = security.credentials.describe();
  const asked = req.users === null || req.users.length === 0 ? all.map((u) => u.user) : req.users.map((u) => u.name);
  const counts = new Map<string, number>();
  for (const name of asked) counts.set(name, (counts.get(name) ?? 0) + 1);
  const byUser = new Map(all.map((u) => [u.user, u]));
  const results = [...counts].map(([user, count]): DescribeUserScramCredentialsResponseDescribeUserScramCredentialsResult => {
    if (count > 1) return { user, ...failure('DUPLICATE_RESOURCE', `Cannot describe SCRAM credentials for the same user twice in a single request: ${user}`), credentialInfos: [] };
    const found = byUser.get(user);
    if (found === undefined) return { user, ...failure('RESOURCE_NOT_FOUND', `Attempt to describe a user credential that does not exist: ${user}`), credentialInfos: [] };
    return { user, ...OK, credentialInfos: found.credentials.map((c) => ({ mechanism: scramMechanismCode(c.mechanism), iterations: c.iterations })) };
  });
  return { throttleTimeMs: 0, ...OK, results };
}

// ---------------------------------------------------------------------------------------
// AlterUserScramCredentials

type Alteration =
  | { kind: 'delete'; mechanism: number }
  | { kind: 'upsert'; mechanism: number; iterations: number; salt: Buffer; saltedPassword: Buffer };

export async function handleAlterUserScramCredentials(deps: KafkaApiDeps, ctx: RequestContext, req: AlterUserScramCredentialsRequest): Promise<AlterUserScramCredentialsResponse> {
  const byUser = new Map<string, Alteration[]>();
  for (const d of req.deletions) pushTo(byUser, d.name, { kind: 'delete', mechanism: d.mechanism });
  for (const u of req.upsertions) pushTo(byUser, u.name, { kind: 'upsert', mechanism: u.mechanism, iterations: u.iterations, salt: u.salt, saltedPassword: u.saltedPassword });
  const security = deps.security;
  const denied = security === undefined ? failure('SECURITY_DISABLED', NO_SECURITY) : security.authorizeCluster(ctx, AclOperation.Alter) ? null : failure('CLUSTER_AUTHORIZATION_FAILED', `${ctx.principal} may not alter SCRAM credentials: it needs ALTER on the cluster`);
  if (denied !== null || security === undefined) {
    // Kafka answers every user named, sorted, with the request-level error.
    return { throttleTimeMs: 0, results: [...byUser.keys()].sort().map((user) => ({ user, ...(denied ?? OK) })) };
  }
  try {
    // One change of the credentials for the whole request; in a region cluster it is written
    // to etcd and in force on every broker (cluster/security-sync.ts).
    const results = await security.writes.credentials((store) => [...byUser].map(([user, alterations]) => alterUser(store, user, alterations)));
    return { throttleTimeMs: 0, results };
  } catch (err) {
    const failed = outcomeOf(err);
    return { throttleTimeMs: 0, results: [...byUser.keys()].map((user) => ({ user, ...failed })) };
  }
}

function pushTo(byUser: Map<string, Alteration[]>, user: string, a: Alteration): void {
  const list = byUser.get(user);
  if (list === undefined) byUser.set(user, [a]);
  else list.push(a);
}

/** Checks all of a user's alterations, then applies them; the first problem is the user's result. */
function alterUser(store: CredentialStore, user: string, alterations: readonly Alteration[]): AlterUserScramCredentialsResponseAlterUserScramCredentialsResult {
  const problem = checkAlterations(store, user, alterations);
  if (problem !== null) return { user, ...problem };
  try {
    for (const a of alterations) {
      const mechanism = SCRAM_MECHANISM_CODES[a.mechanism]!;
      if (a.kind === 'delete') store.delete(user, mechanism);
      else store.upsert(user, mechanism, { salt: a.salt, saltedPassword: a.saltedPassword, iterations: a.iterations });
    }
  } catch (err) {
    return { user, ...outcomeOf(err) };
  }
  return { user, ...OK };
}

function checkAlterations(store: CredentialStore, user: string, alterations: readonly Alteration[]): Outcome | null {
  if (user === '') return failure('UNACCEPTABLE_CREDENTIAL', 'Username must not be empty');
  const seen = new Set<number>();
  for (const a of alterations) {
    if (seen.has(a.mechanism)) return failure('DUPLICATE_RESOURCE', `A user credential cannot be altered twice in the same request: ${user} (mechanism ${a.mechanism})`);
    seen.add(a.mechanism);
  }
  for (const a of alterations) {
    const mechanism = SCRAM_MECHANISM_CODES[a.mechanism];
    if (mechanism === undefined) return failure('UNSUPPORTED_SASL_MECHANISM', `Unknown SCRAM mechanism ${a.mechanism} (1: SCRAM-SHA-256, 2: SCRAM-SHA-512)`);
    if (a.kind === 'delete') {
      if (store.lookup(user, mechanism) === undefined) return failure('RESOURCE_NOT_FOUND', `Attempt to delete a user credential that does not exist: ${user} has no ${mechanism} credential`);
      continue;
    }
    if (a.iterations < MIN_ITERATIONS) return failure('UNACCEPTABLE_CREDENTIAL', `Too few iterations for ${mechanism}: ${a.iterations} (at least ${MIN_ITERATIONS})`);
    if (a.iterations > MAX_ITERATIONS) return failure('UNACCEPTABLE_CREDENTIAL', `Too many iterations for ${mechanism}: ${a.iterations} (at most ${MAX_ITERATIONS})`);
    if (a.salt.length === 0) return failure('UNACCEPTABLE_CREDENTIAL', 'The salt must not be empty');
    const length = scramKeyLength(mechanism);
    if (a.saltedPassword.length !== length) return failure('UNACCEPTABLE_CREDENTIAL', `A ${mechanism} salted password is ${length} bytes, got ${a.saltedPassword.length}`);
  }
  return null;
}

