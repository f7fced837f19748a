/**
 * The ACL checks of the Kafka handlers, with Kafka's mapping of each request to an operation
 * on a resource (KafkaApis, AuthHelper) written once here so the handlers read as
 * "may this requester WRITE this topic". The decision itself is the region's authorizer's
 * (security/broker-security.ts, security/acl.ts), asked on every request: an ACL created or
 * deleted applies to the next request of every open connection.
 *
 * `enforcing(deps)` is null when every request is allowed (authorization off, or handler
 * tests without security), so the hot paths (Produce, Fetch) pay one null check and nothing
 * else. `may` logs a denial (rate-limited, with the principal, host, operation and
 * resource); `sees` does not, for filtering (Metadata's topic list, ListGroups) where a
 * resource left out is no error.
 */
import { ErrorCode, MeridianError } from '../../errors.js';
import { KafkaErrorCode } from '../../protocol/kafka/error-codes.js';
import {
  AclOperation,
  AclPermissionType,
  CLUSTER_RESOURCE_NAME,
  hostMatches,
  OPERATION_NAMES,
  PatternType,
  principalMatches,
  RESOURCE_TYPE_NAMES,
  ResourceType,
  WILDCARD_RESOURCE,
} from '../../security/acl.js';
import type { BrokerSecurity, Requester } from '../../security/broker-security.js';
import type { KafkaApiDeps } from '../kafka-api.js';

export { AclOperation, ResourceType } from '../../security/acl.js';
export type { Requester } from '../../security/broker-security.js';

/**
 * Who a handler called without a request context is taken to be (handler unit tests): the
 * anonymous principal, which an enforcing authorizer does not allow anything by default.
 */
export const UNKNOWN_REQUESTER: Requester = Object.freeze({ principal: 'User:ANONYMOUS', clientHost: '' });

/** The security that decides, or null when every request is allowed. */
export function enforcing(deps: KafkaApiDeps): BrokerSecurity | null {
  const s = deps.security;
  return s !== undefined && s.authorizer !== null ? s : null;
}

/** Whether `who` may do `op` on the resource; a denial is logged. */
export function may(deps: KafkaApiDeps, who: Requester, op: AclOperation, type: ResourceType, name: string): boolean {
  return deps.security?.authorize(who, op, type, name) ?? true;
}

/** Whether `who` may do `op` on the cluster; a denial is logged. */
export function mayCluster(deps: KafkaApiDeps, who: Requester, op: AclOperation): boolean {
  return may(deps, who, op, ResourceType.Cluster, CLUSTER_RESOURCE_NAME);
}

/** Whether `who` may do `op` on the resource, without logging a denial (filtering). */
export function sees(deps: KafkaApiDeps, who: Requester, op: AclOperation, type: ResourceType, name: string): boolean {
  return deps.security?.allows(who, op, type, name) ?? true;
}

/** The topics of `names` that `who` may not do `op` on (each denial logged once). */
export function deniedTopics(sec: BrokerSecurity, who: Requester, op: AclOperation, names: Iterable<string>): ReadonlySet<string> {
  const denied = new Set<string>();
  const asked = new Set<string>();
  for (const name of names) {
    if (asked.has(name)) continue;
    asked.add(name);
    if (!sec.authorize(who, op, ResourceType.Topic, name)) denied.add(name);
  }
  return denied;
}

type DenialCode =
  | typeof ErrorCode.TopicAuthorizationFailed
  | typeof ErrorCode.GroupAuthorizationFailed
  | typeof ErrorCode.ClusterAuthorizationFailed
  | typeof ErrorCode.TransactionalIdAuthorizationFailed;

const DENIAL_CODES: Partial<Record<ResourceType, DenialCode>> = {
  [ResourceType.Topic]: ErrorCode.TopicAuthorizationFailed,
  [ResourceType.Group]: ErrorCode.GroupAuthorizationFailed,
  [ResourceType.Cluster]: ErrorCode.ClusterAuthorizationFailed,
  [ResourceType.TransactionalId]: ErrorCode.TransactionalIdAuthorizationFailed,
};

/**
 * The error a denied request gets: TOPIC_, GROUP_, CLUSTER_ or TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
 * Its message starts with Kafka's own text for the code ("Topic authorization failed", what
 * clients show and operators search for), then names the principal, the operation and the
 * resource (what the client asked for; nothing more).
 */
export function denial(who: Requester, op: AclOperation, type: ResourceType, name: string): MeridianError {
  const code = DENIAL_CODES[type] ?? ErrorCode.ClusterAuthorizationFailed;
  const what = type === ResourceType.Cluster ? 'the cluster' : `${RESOURCE_TYPE_NAMES[type].toLowerCase().replace('_', ' ')} ${name}`;
  const kafkaText = KafkaErrorCode[code].message.replace(/\.$/, '');
  return new MeridianError(code, `${kafkaText}: ${who.principal} is not authorized to ${OPERATION_NAMES[op]} ${what}`, { retriable: false });
}

/** Kafka's "authorized operations not provided" (Integer.MIN_VALUE). */
export const OPERATIONS_NOT_PROVIDED = -2147483648;

/** Kafka's AclEntry.supportedOperations per resource type. */
export const SUPPORTED_OPERATIONS = {
  topic: [AclOperation.Read, AclOperation.Write, AclOperation.Create, AclOperation.Delete, AclOperation.Alter, AclOperation.Describe, AclOperation.DescribeConfigs, AclOperation.AlterConfigs],
  group: [AclOperation.Read, AclOperation.Delete, AclOperation.Describe],
  cluster: [AclOperation.Create, AclOperation.Alter, AclOperation.Describe, AclOperation.ClusterAction, AclOperation.DescribeConfigs, AclOperation.AlterConfigs, AclOperation.IdempotentWrite],
} as const;

/**
 * The authorized-operations bit field (Metadata v8+, DescribeGroups v3+, DescribeCluster) of
 * the resource: each supported operation `who` may do (Kafka's AuthHelper.authorizedOperations).
 */
export function authorizedOperations(deps: KafkaApiDeps, who: Requester, type: ResourceType, name: string, supported: readonly AclOperation[]): number {
  let bits = 0;
  for (const op of supported) if (sees(deps, who, op, type, name)) bits |= 1 << op;
  return bits;
}

/** Kafka's cluster authorized operations: those allowed when the requester may DESCRIBE the cluster, else none. */
export function clusterOperations(deps: KafkaApiDeps, who: Requester): number {
  return mayCluster(deps, who, AclOperation.Describe) ? authorizedOperations(deps, who, ResourceType.Cluster, CLUSTER_RESOURCE_NAME, SUPPORTED_OPERATIONS.cluster) : 0;
}

/**
 * Whether `who` may do `op` on at least one resource of `type`: Kafka's
 * Authorizer.authorizeByResourceType (InitProducerId of an idempotent producer asks it for
 * WRITE on any topic). A superuser may; with allowEveryoneIfNoAclFound so may everyone while
 * no ACL names a resource of the type. Otherwise an ALLOW of `op` or ALL for the principal
 * (or User:*) and host (or *) on the wildcard, on a literal name no DENY covers, or on a
 * prefix no DENY prefix covers; a DENY of the wildcard denies. Operations are not implied
 * here, as in Kafka.
 */
export function mayOnAny(sec: BrokerSecurity, who: Requester, op: AclOperation, type: ResourceType): boolean {
  const a = sec.config.authorization;
  if (a.superUsers.includes(who.principal)) return true;
  const bindings = sec.acls.bindings().filter((b) => b.pattern.resourceType === type);
  if (a.allowEveryoneIfNoAclFound && bindings.length === 0) return true;
  const denyLiteral = new Set<string>();
  const denyPrefixed = new Set<string>();
  const allowed: Array<{ name: string; literal: boolean }> = [];
  for (const b of bindings) {
    const e = b.entry;
    if (!principalMatches(e.principal, who.principal) || !hostMatches(e.host, who.clientHost)) continue;
    if (e.operation !== op && e.operation !== AclOperation.All) continue;
    const literal = b.pattern.patternType === PatternType.Literal;
    if (e.permissionType === AclPermissionType.Deny) {
      if (literal && b.pattern.name === WILDCARD_RESOURCE) return false;
      (literal ? denyLiteral : denyPrefixed).add(b.pattern.name);
    } else if (e.permissionType === AclPermissionType.Allow) {
      allowed.push({ name: b.pattern.name, literal });
    }
  }
  if (allowed.some((x) => x.literal && x.name === WILDCARD_RESOURCE)) return true;
  return allowed.some((x) => {
    if (x.literal && denyLiteral.has(x.name)) return false;
    for (let n = 1; n <= x.name.length; n++) if (denyPrefixed.has(x.name.slice(0, n))) return false;
    return true;
  });
}
