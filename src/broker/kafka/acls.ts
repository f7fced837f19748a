/**
 * CreateAcls, DescribeAcls and DeleteAcls (v0-3) over the region's ACL store
 * (security/acl-store.ts), so kafka-acls, KafkaJS's admin and librdkafka's admin API manage
 * ACLs as they do on Kafka. The store persists each change before answering and the
 * authorizer reads it on every request, so an ACL created or deleted here decides the next
 * request of every open connection.
 *
 * As Kafka's KafkaApis: CreateAcls and DeleteAcls need ALTER on the cluster, DescribeAcls
 * DESCRIBE on the cluster (else CLUSTER_AUTHORIZATION_FAILED for the whole request); a broker
 * without an authorizer answers SECURITY_DISABLED (Kafka's "No Authorizer is configured"),
 * which keeps anyone from planting ACLs while authorization is off. An ACL Kafka would refuse
 * is INVALID_REQUEST naming why, per binding or filter; the others of the request still apply.
 * Each change is logged with who made it and the ACLs, as Kafka's authorizer logs it.
 *
 * ACLs are per region: nothing here is replicated (security/ACL.md).
 */
import { ApiKey } from '../../protocol/kafka/api-keys.js';
import { kafkaCode, toKafkaError } from '../../protocol/kafka/error-mapping.js';
import type { CreateAclsRequest, CreateAclsResponse } from '../../protocol/kafka/messages/create-acls.js';
import type { DeleteAclsRequest, DeleteAclsResponse } from '../../protocol/kafka/messages/delete-acls.js';
import type { DescribeAclsRequest, DescribeAclsResponse, DescribeAclsResponseDescribeAclsResource } from '../../protocol/kafka/messages/describe-acls.js';
import type { RequestContext } from '../../protocol/kafka/connection.js';
import { bindingFromCreation, describeBinding, filterFromDeleteFilter, filterFromDescribeRequest, type AclBinding } from '../../security/acl.js';
import type { BrokerSecurity } from '../../security/broker-security.js';
import type { MeridianError } from '../../errors.js';
import type { AclCreateResult, AclDeleteResult } from '../../security/acl-store.js';
import type { KafkaApiDeps } from '../kafka-api.js';
import { AclOperation, denial, enforcing, mayCluster, ResourceType, type Requester } from './authorize.js';
import type { KafkaApiEntry } from './kafka-api-entry.js';

export const ACL_APIS: readonly KafkaApiEntry[] = [
  { key: ApiKey.DescribeAcls, versions: [0, 3], handle: (d, c, req) => handleDescribeAcls(d, c, req) },
  { key: ApiKey.CreateAcls, versions: [0, 3], handle: (d, c, req) => handleCreateAcls(d, c, req) },
  { key: ApiKey.DeleteAcls, versions: [0, 3], handle: (d, c, req) => handleDeleteAcls(d, c, req) },
];

const SECURITY_DISABLED_MESSAGE = 'No authorizer is configured: security.authorization.enabled is false on this broker, so it keeps no ACLs over Kafka (enable authorization, or manage ACLs with the admin API)';

interface Refusal {
  errorCode: number;
  errorMessage: string;
}

/**
 * Why the request is refused as a whole, or null: the security that takes it. SECURITY_DISABLED
 * without an authorizer, CLUSTER_AUTHORIZATION_FAILED without `op` on the cluster.
 */
function gate(deps: KafkaApiDeps, who: Requester, op: AclOperation): { refusal: Refusal } | { security: BrokerSecurity } {
  const security = enforcing(deps);
  if (security === null) return { refusal: { errorCode: kafkaCode('SECURITY_DISABLED'), errorMessage: SECURITY_DISABLED_MESSAGE } };
  if (!mayCluster(deps, who, op)) return { refusal: { errorCode: kafkaCode('CLUSTER_AUTHORIZATION_FAILED'), errorMessage: denial(who, op, ResourceType.Cluster, '').message } };
  return { security };
}

/** A whole request's failure (a region cluster could not write its ACLs to etcd): nothing changed. */
function failure(err: unknown): { errorCode: number; errorMessage: string } {
  const k = toKafkaError(err);
  return { errorCode: k.code, errorMessage: k.message };
}

function outcome(err: MeridianError | null): { errorCode: number; errorMessage: string | null } {
  if (err === null) return { errorCode: 0, errorMessage: null };
  const k = toKafkaError(err);
  return { errorCode: k.code, errorMessage: k.message };
}

export async function handleCreateAcls(deps: KafkaApiDeps, ctx: RequestContext, req: CreateAclsRequest): Promise<CreateAclsResponse> {
  const g = gate(deps, ctx, AclOperation.Alter);
  if ('refusal' in g) return { throttleTimeMs: 0, results: req.creations.map(() => g.refusal) };
  const bindings = req.creations.map(bindingFromCreation);
  let results: AclCreateResult[];
  try {
    // In a region cluster: written to etcd and in force on every broker (cluster/security-sync.ts).
    results = await g.security.writes.acls((store) => store.create(bindings));
  } catch (err) {
    const failed = failure(err);
    return { throttleTimeMs: 0, results: req.creations.map(() => failed) };
  }
  const created = bindings.filter((_, i) => results[i].error === null);
  if (created.length > 0) deps.logger.info({ principal: ctx.principal, host: ctx.clientHost, acls: created.map(describeBinding) }, 'ACLs created');
  return { throttleTimeMs: 0, results: results.map((r) => outcome(r.error)) };
}

export function handleDescribeAcls(deps: KafkaApiDeps, ctx: RequestContext, req: DescribeAclsRequest): DescribeAclsResponse {
  const g = gate(deps, ctx, AclOperation.Describe);
  if ('refusal' in g) return { throttleTimeMs: 0, ...g.refusal, resources: [] };
  const r = g.security.acls.describe(filterFromDescribeRequest(req));
  return { throttleTimeMs: 0, ...outcome(r.error), resources: byResource(r.bindings) };
}

/** Kafka's DescribeAcls answer: the entries grouped by resource pattern, in the order first seen. */
function byResource(bindings: readonly AclBinding[]): DescribeAclsResponseDescribeAclsResource[] {
  const out = new Map<string, DescribeAclsResponseDescribeAclsResource>();
  for (const b of bindings) {
    const p = b.pattern;
    const key = `${p.resourceType}/${p.patternType}/${p.name}`;
    let resource = out.get(key);
    if (resource === undefined) {
      resource = { resourceType: p.resourceType, resourceName: p.name, patternType: p.patternType, acls: [] };
      out.set(key, resource);
    }
    resource.acls.push({ principal: b.entry.principal, host: b.entry.host, operation: b.entry.operation, permissionType: b.entry.permissionType });
  }
  return [...out.values()];
}

export async function handleDeleteAcls(deps: KafkaApiDeps, ctx: RequestContext, req: DeleteAclsRequest): Promise<DeleteAclsResponse> {
  const g = gate(deps, ctx, AclOperation.Alter);
  if ('refusal' in g) return { throttleTimeMs: 0, filterResults: req.filters.map((): DeleteAclsResponse['filterResults'][number] => ({ ...g.refusal, matchingAcls: [] })) };
  const filters = req.filters.map(filterFromDeleteFilter);
  let results: AclDeleteResult[];
  try {
    results = await g.security.writes.acls((store) => store.delete(filters));
  } catch (err) {
    const failed = failure(err);
    return { throttleTimeMs: 0, filterResults: req.filters.map(() => ({ ...failed, matchingAcls: [] })) };
  }
  const deleted = new Set(results.flatMap((r) => r.deleted));
  if (deleted.size > 0) deps.logger.info({ principal: ctx.principal, host: ctx.clientHost, acls: [...deleted].map(describeBinding) }, 'ACLs deleted');
  return {
    throttleTimeMs: 0,
    filterResults: results.map((r) => ({
      ...outcome(r.error),
      matchingAcls: r.deleted.map((b) => ({
        errorCode: 0,
        errorMessage: null,
        resourceType: b.pattern.resourceType,
        resourceName: b.pattern.name,
        patternType: b.pattern.patternType,
        principal: b.entry.principal,
        host: b.entry.host,
        operation: b.entry.operation,
        permissionType: b.entry.permissionType,
      })),
    })),
  };
}
