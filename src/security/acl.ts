/**
 * Kafka's ACL model and its authorization rule, as Kafka's own authorizers apply it
 * (AclAuthorizer, and StandardAuthorizer under KRaft), with Kafka's numeric codes so the
 * CreateAcls, DescribeAcls and DeleteAcls codecs (protocol/kafka/messages) map 1:1.
 *
 * A binding is a resource pattern (type, name, LITERAL or PREFIXED; the LITERAL name "*"
 * is the wildcard of its type) and an entry (principal "Type:name" or the wildcard "User:*",
 * host or "*", operation, ALLOW or DENY). A request (principal, host, operation, resource)
 * is decided against every binding whose pattern applies to the resource:
 *
 * 1. a superuser is always allowed;
 * 2. no binding applies to the resource at all (whoever it names): allowed only when
 *    `allowEveryoneIfNoAclFound` (default false: secure by default);
 * 3. a DENY whose principal, host and operation (or ALL) match: denied, whatever allows;
 * 4. an ALLOW whose principal and host match and whose operation is the one asked, ALL, or
 *    one that implies it (READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS
 *    implies DESCRIBE_CONFIGS; implication applies to ALLOW only): allowed;
 * 5. otherwise denied.
 *
 * The bindings come from an `AclSource` (AclIndex, or the AclStore holding one), asked per
 * request, so a deletion is seen by the next request of every connection. The index keeps
 * the lookup independent of the number of bindings: by resource type, then the literal name
 * map, and the prefixed patterns by prefix with the sorted list of their distinct lengths
 * (a name of n characters is looked up under at most n prefixes, not against every prefix).
 *
 * This file is pure (no I/O); persistence and the change listener are in acl-store.ts.
 */
import type { CreateAclsRequestAclCreation } from '../protocol/kafka/messages/create-acls.js';
import type { DeleteAclsRequestDeleteAclsFilter } from '../protocol/kafka/messages/delete-acls.js';
import type { DescribeAclsRequest } from '../protocol/kafka/messages/describe-acls.js';

// ---------------------------------------------------------------------------------------
// Kafka's enums (org.apache.kafka.common.resource / acl), by their wire codes.

export const ResourceType = {
  Unknown: 0,
  Any: 1,
  Topic: 2,
  Group: 3,
  Cluster: 4,
  TransactionalId: 5,
  DelegationToken: 6,
  User: 7,
} as const;
export type ResourceType = (typeof ResourceType)[keyof typeof ResourceType];

export const PatternType = {
  Unknown: 0,
  Any: 1,
  Match: 2,
  Literal: 3,
  Prefixed: 4,
} as const;
export type PatternType = (typeof PatternType)[keyof typeof PatternType];

export const AclOperation = {
  Unknown: 0,
  Any: 1,
  All: 2,
  Read: 3,
  Write: 4,
  Create: 5,
  Delete: 6,
  Alter: 7,
  Describe: 8,
  ClusterAction: 9,
  DescribeConfigs: 10,
  AlterConfigs: 11,
  IdempotentWrite: 12,
  CreateTokens: 13,
  DescribeTokens: 14,
} as const;
export type AclOperation = (typeof AclOperation)[keyof typeof AclOperation];

export const AclPermissionType = {
  Unknown: 0,
  Any: 1,
  Deny: 2,
  Allow: 3,
} as const;
export type AclPermissionType = (typeof AclPermissionType)[keyof typeof AclPermissionType];

/** Kafka's names of the codes (what kafka-acls prints), indexed by code. */
export const RESOURCE_TYPE_NAMES = ['UNKNOWN', 'ANY', 'TOPIC', 'GROUP', 'CLUSTER', 'TRANSACTIONAL_ID', 'DELEGATION_TOKEN', 'USER'] as const;
export const PATTERN_TYPE_NAMES = ['UNKNOWN', 'ANY', 'MATCH', 'LITERAL', 'PREFIXED'] as const;
export const OPERATION_NAMES = [
  'UNKNOWN',
  'ANY',
  'ALL',
  'READ',
  'WRITE',
  'CREATE',
  'DELETE',
  'ALTER',
  'DESCRIBE',
  'CLUSTER_ACTION',
  'DESCRIBE_CONFIGS',
  'ALTER_CONFIGS',
  'IDEMPOTENT_WRITE',
  'CREATE_TOKENS',
  'DESCRIBE_TOKENS',
] as const;
export const PERMISSION_TYPE_NAMES = ['UNKNOWN', 'ANY', 'DENY', 'ALLOW'] as const;

/** A wire code Kafka does not know becomes UNKNOWN, as Kafka's `fromCode` does. */
function fromCode<T extends number>(names: readonly string[], code: number): T {
  return (Number.isInteger(code) && code >= 0 && code < names.length ? code : 0) as T;
}
export const resourceTypeFromCode = (code: number): ResourceType => fromCode(RESOURCE_TYPE_NAMES, code);
export const patternTypeFromCode = (code: number): PatternType => fromCode(PATTERN_TYPE_NAMES, code);
export const operationFromCode = (code: number): AclOperation => fromCode(OPERATION_NAMES, code);
export const permissionTypeFromCode = (code: number): AclPermissionType => fromCode(PERMISSION_TYPE_NAMES, code);

/** The code of a Kafka name (case-insensitive), or undefined. */
function fromName<T extends number>(names: readonly string[], name: string): T | undefined {
  const i = names.indexOf(name.toUpperCase());
  return i < 0 ? undefined : (i as T);
}
export const resourceTypeFromName = (name: string): ResourceType | undefined => fromName(RESOURCE_TYPE_NAMES, name);
export const patternTypeFromName = (name: string): PatternType | undefined => fromName(PATTERN_TYPE_NAMES, name);
export const operationFromName = (name: string): AclOperation | undefined => fromName(OPERATION_NAMES, name);
export const permissionTypeFromName = (name: string): AclPermissionType | undefined => fromName(PERMISSION_TYPE_NAMES, name);

/** The LITERAL resource name that matches every name of its type. */
export const WILDCARD_RESOURCE = '*';
/** The principal that matches every principal. */
export const WILDCARD_PRINCIPAL = 'User:*';
/** The host that matches every host. */
export const WILDCARD_HOST = '*';
/** The one name a CLUSTER resource has. */
export const CLUSTER_RESOURCE_NAME = 'kafka-cluster';

// ---------------------------------------------------------------------------------------
// Bindings and filters.

export interface ResourcePattern {
  resourceType: ResourceType;
  name: string;
  patternType: PatternType;
}

export interface AccessControlEntry {
  /** "Type:name", e.g. "User:alice"; "User:*" is every principal. */
  principal: string;
  /** The client's address as the broker sees it, or "*". */
  host: string;
  operation: AclOperation;
  permissionType: AclPermissionType;
}

export interface AclBinding {
  pattern: ResourcePattern;
  entry: AccessControlEntry;
}

/** Kafka's ResourcePatternFilter: ANY type; null name for any name; ANY or MATCH pattern type. */
export interface ResourcePatternFilter {
  resourceType: ResourceType;
  name: string | null;
  patternType: PatternType;
}

/** Kafka's AccessControlEntryFilter: null principal or host for any; ANY operation or permission. */
export interface AccessControlEntryFilter {
  principal: string | null;
  host: string | null;
  operation: AclOperation;
  permissionType: AclPermissionType;
}

export interface AclBindingFilter {
  pattern: ResourcePatternFilter;
  entry: AccessControlEntryFilter;
}

/** The filter that matches every binding. */
export const ANY_ACL_FILTER: AclBindingFilter = Object.freeze({
  pattern: Object.freeze({ resourceType: ResourceType.Any, name: null, patternType: PatternType.Any }),
  entry: Object.freeze({ principal: null, host: null, operation: AclOperation.Any, permissionType: AclPermissionType.Any }),
});

/** A resource a request acts on: always one concrete name. */
export interface Resource {
  type: ResourceType;
  name: string;
}

/** Builds a binding from names, for tests, configuration and tools. */
export function aclBinding(b: {
  resourceType: ResourceType;
  name: string;
  patternType?: PatternType;
  principal: string;
  host?: string;
  operation: AclOperation;
  permissionType: AclPermissionType;
}): AclBinding {
  return {
    pattern: { resourceType: b.resourceType, name: b.name, patternType: b.patternType ?? PatternType.Literal },
    entry: { principal: b.principal, host: b.host ?? WILDCARD_HOST, operation: b.operation, permissionType: b.permissionType },
  };
}

/** A binding as Kafka prints it, for logs and `reason`. */
export function describeBinding(b: AclBinding): string {
  const p = b.pattern;
  const e = b.entry;
  return (
    `(${RESOURCE_TYPE_NAMES[p.resourceType]}:${PATTERN_TYPE_NAMES[p.patternType]}:${p.name}, ` +
    `${e.principal} ${PERMISSION_TYPE_NAMES[e.permissionType]} ${OPERATION_NAMES[e.operation]} from ${e.host})`
  );
}

/** Identity of a binding: two bindings with the same key are the same ACL (Kafka keeps one). */
export function bindingKey(b: AclBinding): string {
  const p = b.pattern;
  const e = b.entry;
  // The codes are single numbers; the strings are length-prefixed, the host last: unambiguous.
  return `${p.resourceType}/${p.patternType}/${e.operation}/${e.permissionType}/${p.name.length}:${p.name}/${e.principal.length}:${e.principal}/${e.host}`;
}

// ---------------------------------------------------------------------------------------
// Conversions from the Kafka codecs.

export function bindingFromCreation(c: CreateAclsRequestAclCreation): AclBinding {
  return {
    pattern: { resourceType: resourceTypeFromCode(c.resourceType), name: c.resourceName, patternType: patternTypeFromCode(c.resourcePatternType) },
    entry: { principal: c.principal, host: c.host, operation: operationFromCode(c.operation), permissionType: permissionTypeFromCode(c.permissionType) },
  };
}

export function filterFromDescribeRequest(r: DescribeAclsRequest): AclBindingFilter {
  return {
    pattern: { resourceType: resourceTypeFromCode(r.resourceTypeFilter), name: r.resourceNameFilter, patternType: patternTypeFromCode(r.patternTypeFilter) },
    entry: { principal: r.principalFilter, host: r.hostFilter, operation: operationFromCode(r.operation), permissionType: permissionTypeFromCode(r.permissionType) },
  };
}

export function filterFromDeleteFilter(f: DeleteAclsRequestDeleteAclsFilter): AclBindingFilter {
  return {
    pattern: { resourceType: resourceTypeFromCode(f.resourceTypeFilter), name: f.resourceNameFilter, patternType: patternTypeFromCode(f.patternTypeFilter) },
    entry: { principal: f.principalFilter, host: f.hostFilter, operation: operationFromCode(f.operation), permissionType: permissionTypeFromCode(f.permissionType) },
  };
}

// ---------------------------------------------------------------------------------------
// Validation (Kafka answers INVALID_REQUEST for each of these).

/**
 * Why Kafka would refuse to create `b` (its controller's validateNewAcl and the broker's
 * CreateAcls checks), or null when it is a valid ACL.
 */
export function invalidBindingReason(b: AclBinding): string | null {
  const p = b.pattern;
  const e = b.entry;
  if (p.resourceType === ResourceType.Unknown || p.resourceType === ResourceType.Any || RESOURCE_TYPE_NAMES[p.resourceType] === undefined) {
    return `Invalid resourceType ${RESOURCE_TYPE_NAMES[p.resourceType] ?? p.resourceType}`;
  }
  if (p.patternType !== PatternType.Literal && p.patternType !== PatternType.Prefixed) {
    return `Invalid patternType ${PATTERN_TYPE_NAMES[p.patternType] ?? p.patternType}`;
  }
  if (e.operation === AclOperation.Unknown || e.operation === AclOperation.Any || OPERATION_NAMES[e.operation] === undefined) {
    return `Invalid operation ${OPERATION_NAMES[e.operation] ?? e.operation}`;
  }
  if (e.permissionType !== AclPermissionType.Allow && e.permissionType !== AclPermissionType.Deny) {
    return `Invalid permissionType ${PERMISSION_TYPE_NAMES[e.permissionType] ?? e.permissionType}`;
  }
  if (typeof p.name !== 'string' || p.name.length === 0) return 'Resource name should not be empty';
  if (p.resourceType === ResourceType.Cluster && p.name !== CLUSTER_RESOURCE_NAME) {
    return `The only valid name for the CLUSTER resource is ${CLUSTER_RESOURCE_NAME}`;
  }
  if (typeof e.principal !== 'string' || e.principal.indexOf(':') <= 0) {
    return `Invalid principal ${JSON.stringify(e.principal)}: expected principalType:principalName, e.g. User:alice`;
  }
  return null;
}

/** Why Kafka would refuse the filter (a component is UNKNOWN), or null. */
export function invalidFilterReason(f: AclBindingFilter): string | null {
  if (f.pattern.resourceType === ResourceType.Unknown || f.pattern.patternType === PatternType.Unknown) return 'Unknown patternFilter.';
  if (f.entry.operation === AclOperation.Unknown || f.entry.permissionType === AclPermissionType.Unknown) return 'Unknown entryFilter.';
  return null;
}

// ---------------------------------------------------------------------------------------
// Filter matching (Kafka's ResourcePatternFilter.matches and AccessControlEntryFilter.matches).

/**
 * Whether `filter` selects `pattern`. ANY pattern type: any type with exactly the filter's
 * name; LITERAL or PREFIXED: that type and exactly that name; MATCH: every pattern that
 * would apply to a resource of the filter's name (the literal name, the wildcard "*", and
 * every prefix of the name). A null name matches every name.
 */
export function patternFilterMatches(filter: ResourcePatternFilter, pattern: ResourcePattern): boolean {
  if (filter.resourceType !== ResourceType.Any && filter.resourceType !== pattern.resourceType) return false;
  if (filter.patternType !== PatternType.Any && filter.patternType !== PatternType.Match && filter.patternType !== pattern.patternType) return false;
  if (filter.name === null) return true;
  if (filter.patternType === PatternType.Any || filter.patternType === pattern.patternType) return filter.name === pattern.name;
  // MATCH
  switch (pattern.patternType) {
    case PatternType.Literal:
      return filter.name === pattern.name || pattern.name === WILDCARD_RESOURCE;
    case PatternType.Prefixed:
      return filter.name.startsWith(pattern.name);
    default:
      return false;
  }
}

/** Whether `filter` selects `entry`: exact principal and host (null: any), operation and permission (ANY: any). */
export function entryFilterMatches(filter: AccessControlEntryFilter, entry: AccessControlEntry): boolean {
  if (filter.principal !== null && filter.principal !== entry.principal) return false;
  if (filter.host !== null && filter.host !== entry.host) return false;
  if (filter.operation !== AclOperation.Any && filter.operation !== entry.operation) return false;
  return filter.permissionType === AclPermissionType.Any || filter.permissionType === entry.permissionType;
}

/** Whether `filter` selects `binding`; a filter with an UNKNOWN component selects nothing. */
export function filterMatches(filter: AclBindingFilter, binding: AclBinding): boolean {
  if (invalidFilterReason(filter) !== null) return false;
  return patternFilterMatches(filter.pattern, binding.pattern) && entryFilterMatches(filter.entry, binding.entry);
}

// ---------------------------------------------------------------------------------------
// The index.

/** Where the authorizer finds the bindings that apply to a resource. */
export interface AclSource {
  /** Every binding whose pattern applies to the resource (literal name, wildcard, prefixes), of any principal. */
  matchingAcls(resourceType: ResourceType, name: string): AclBinding[];
}

class TypeIndex {
  /** LITERAL patterns by name, the wildcard "*" included. */
  readonly literal = new Map<string, AclBinding[]>();
  /** PREFIXED patterns by prefix. */
  readonly prefixed = new Map<string, AclBinding[]>();
  /** The distinct prefix lengths, ascending, with how many prefixes have each. */
  prefixLengths: number[] = [];
  readonly prefixLengthCount = new Map<number, number>();
  size = 0;
}

function pushTo(map: Map<string, AclBinding[]>, key: string, b: AclBinding): boolean {
  const list = map.get(key);
  if (list === undefined) {
    map.set(key, [b]);
    return true;
  }
  list.push(b);
  return false;
}

function removeFrom(map: Map<string, AclBinding[]>, key: string, b: AclBinding): boolean {
  const list = map.get(key);
  if (list === undefined) return false;
  const i = list.indexOf(b);
  if (i >= 0) list.splice(i, 1);
  if (list.length === 0) {
    map.delete(key);
    return true;
  }
  return false;
}

/**
 * The bindings of one region, indexed for `matchingAcls`. Holds each distinct binding once
 * (by `bindingKey`); takes only valid bindings (`invalidBindingReason` is null).
 */
export class AclIndex implements AclSource {
  readonly #byType = new Map<ResourceType, TypeIndex>();
  readonly #byKey = new Map<string, AclBinding>();

  constructor(bindings: Iterable<AclBinding> = []) {
    for (const b of bindings) this.add(b);
  }

  get size(): number {
    return this.#byKey.size;
  }

  has(b: AclBinding): boolean {
    return this.#byKey.has(bindingKey(b));
  }

  /** Every binding, in insertion order. */
  bindings(): AclBinding[] {
    return [...this.#byKey.values()];
  }

  /** Adds `b` (a frozen copy); false when an equal binding is already there. */
  add(b: AclBinding): boolean {
    const reason = invalidBindingReason(b);
    if (reason !== null) throw new TypeError(`invalid ACL ${describeBinding(b)}: ${reason}`);
    const key = bindingKey(b);
    if (this.#byKey.has(key)) return false;
    const copy: AclBinding = Object.freeze({ pattern: Object.freeze({ ...b.pattern }), entry: Object.freeze({ ...b.entry }) });
    this.#byKey.set(key, copy);
    let t = this.#byType.get(copy.pattern.resourceType);
    if (t === undefined) {
      t = new TypeIndex();
      this.#byType.set(copy.pattern.resourceType, t);
    }
    t.size++;
    if (copy.pattern.patternType === PatternType.Literal) {
      pushTo(t.literal, copy.pattern.name, copy);
    } else if (pushTo(t.prefixed, copy.pattern.name, copy)) {
      const len = copy.pattern.name.length;
      const n = t.prefixLengthCount.get(len) ?? 0;
      t.prefixLengthCount.set(len, n + 1);
      if (n === 0) t.prefixLengths = [...t.prefixLengthCount.keys()].sort((x, y) => x - y);
    }
    return true;
  }

  /** Removes the binding equal to `b`; the removed binding, or undefined when absent. */
  remove(b: AclBinding): AclBinding | undefined {
    const key = bindingKey(b);
    const stored = this.#byKey.get(key);
    if (stored === undefined) return undefined;
    this.#byKey.delete(key);
    const t = this.#byType.get(stored.pattern.resourceType)!;
    t.size--;
    if (stored.pattern.patternType === PatternType.Literal) {
      removeFrom(t.literal, stored.pattern.name, stored);
    } else if (removeFrom(t.prefixed, stored.pattern.name, stored)) {
      const len = stored.pattern.name.length;
      const n = t.prefixLengthCount.get(len)! - 1;
      if (n === 0) {
        t.prefixLengthCount.delete(len);
        t.prefixLengths = t.prefixLengths.filter((l) => l !== len);
      } else {
        t.prefixLengthCount.set(len, n);
      }
    }
    if (t.size === 0) this.#byType.delete(stored.pattern.resourceType);
    return stored;
  }

  matchingAcls(resourceType: ResourceType, name: string): AclBinding[] {
    const t = this.#byType.get(resourceType);
    if (t === undefined) return [];
    const out: AclBinding[] = [];
    const exact = t.literal.get(name);
    if (exact !== undefined) out.push(...exact);
    if (name !== WILDCARD_RESOURCE) {
      const wildcard = t.literal.get(WILDCARD_RESOURCE);
      if (wildcard !== undefined) out.push(...wildcard);
    }
    for (const len of t.prefixLengths) {
      if (len > name.length) break;
      const list = t.prefixed.get(name.slice(0, len));
      if (list !== undefined) out.push(...list);
    }
    return out;
  }

  /** The bindings `filter` selects (every binding is tested: filters are for admin requests, not per-request checks). */
  find(filter: AclBindingFilter): AclBinding[] {
    if (invalidFilterReason(filter) !== null) return [];
    const out: AclBinding[] = [];
    for (const b of this.#byKey.values()) if (filterMatches(filter, b)) out.push(b);
    return out;
  }
}

// ---------------------------------------------------------------------------------------
// Authorization.

export interface AuthorizerOptions {
  /** Principals ("User:admin") allowed everything, whatever the ACLs say. */
  superUsers?: Iterable<string>;
  /** Allow a request on a resource no ACL names at all (Kafka's allow.everyone.if.no.acl.found). Default false. */
  allowEveryoneIfNoAclFound?: boolean;
}

export interface AuthorizationResult {
  readonly allowed: boolean;
  /** Why, for the audit log: the deciding ACL, the superuser, or the default. */
  readonly reason: string;
}

/** A result whose reason is written only when read: most requests are allowed and never explained. */
class Decision implements AuthorizationResult {
  readonly allowed: boolean;
  #explain: (() => string) | string;

  constructor(allowed: boolean, explain: () => string) {
    this.allowed = allowed;
    this.#explain = explain;
  }

  get reason(): string {
    if (typeof this.#explain !== 'string') this.#explain = this.#explain();
    return this.#explain;
  }

  toJSON(): { allowed: boolean; reason: string } {
    return { allowed: this.allowed, reason: this.reason };
  }
}

/** ALLOW ACLs of these operations also allow the key's operation (Kafka's implied operations). */
const IMPLIED_BY: ReadonlyMap<AclOperation, ReadonlySet<AclOperation>> = new Map<AclOperation, ReadonlySet<AclOperation>>([
  [AclOperation.Describe, new Set<AclOperation>([AclOperation.Describe, AclOperation.Read, AclOperation.Write, AclOperation.Delete, AclOperation.Alter])],
  [AclOperation.DescribeConfigs, new Set<AclOperation>([AclOperation.DescribeConfigs, AclOperation.AlterConfigs])],
]);

/** Whether an ACL's operation covers `operation`: ALL, the same, or (for ALLOW) one implying it. */
export function operationMatches(aclOperation: AclOperation, permissionType: AclPermissionType, operation: AclOperation): boolean {
  if (aclOperation === AclOperation.All || aclOperation === operation) return true;
  if (permissionType !== AclPermissionType.Allow) return false;
  return IMPLIED_BY.get(operation)?.has(aclOperation) ?? false;
}

/** Whether an ACL's principal names `principal` ("User:*" names every principal). */
export function principalMatches(aclPrincipal: string, principal: string): boolean {
  return aclPrincipal === principal || aclPrincipal === WILDCARD_PRINCIPAL;
}

/** Whether an ACL's host names `host` ("*" names every host). */
export function hostMatches(aclHost: string, host: string): boolean {
  return aclHost === host || aclHost === WILDCARD_HOST;
}

/**
 * Decides requests against the bindings `source` holds at the moment of each call (no
 * caching: a change to the store applies to the next request).
 */
export class AclAuthorizer {
  readonly #source: AclSource;
  readonly #superUsers: ReadonlySet<string>;
  readonly #allowEveryoneIfNoAclFound: boolean;

  constructor(source: AclSource, options: AuthorizerOptions = {}) {
    this.#source = source;
    this.#superUsers = new Set(options.superUsers ?? []);
    this.#allowEveryoneIfNoAclFound = options.allowEveryoneIfNoAclFound ?? false;
  }

  authorize(principal: string, host: string, operation: AclOperation, resource: Resource): AuthorizationResult {
    const what = (): string =>
      `${principal} from ${host}: ${OPERATION_NAMES[operation] ?? operation} on ${RESOURCE_TYPE_NAMES[resource.type] ?? resource.type}:${resource.name}`;
    if (this.#superUsers.has(principal)) return new Decision(true, () => `${what()} allowed: ${principal} is a superuser`);
    if (operation === AclOperation.Any || operation === AclOperation.Unknown || OPERATION_NAMES[operation] === undefined) {
      return new Decision(false, () => `${what()} denied: not an operation a request can ask for`);
    }
    const acls = this.#source.matchingAcls(resource.type, resource.name);
    if (acls.length === 0) {
      return this.#allowEveryoneIfNoAclFound
        ? new Decision(true, () => `${what()} allowed: no ACL names the resource and allowEveryoneIfNoAclFound is set`)
        : new Decision(false, () => `${what()} denied: no ACL names the resource`);
    }
    let allow: AclBinding | undefined;
    for (const b of acls) {
      const e = b.entry;
      if (!principalMatches(e.principal, principal) || !hostMatches(e.host, host)) continue;
      if (!operationMatches(e.operation, e.permissionType, operation)) continue;
      if (e.permissionType === AclPermissionType.Deny) return new Decision(false, () => `${what()} denied by ${describeBinding(b)}`);
      allow ??= b;
    }
    if (allow !== undefined) {
      const by = allow;
      return new Decision(true, () => `${what()} allowed by ${describeBinding(by)}`);
    }
    return new Decision(false, () => `${what()} denied: no ACL allows it`);
  }
}
