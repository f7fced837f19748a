/**
 * This region's ACLs (src/security/acl-store.ts, ACL.md), for operators and `meridian acl`:
 * the same store Kafka's CreateAcls, DescribeAcls and DeleteAcls change
 * (broker/kafka/acls.ts), with Kafka's names (TOPIC, PREFIXED, READ, ALLOW...).
 *
 * - GET lists the ACLs a filter selects (every one without a filter), as DescribeAcls does:
 *   `patternType` ANY (the default: any pattern of exactly `name`), LITERAL, PREFIXED, or MATCH
 *   (every ACL that applies to the resource `name`).
 * - POST creates ACLs; all are checked first, so a body with one ACL Kafka would refuse
 *   creates none (INVALID_ACL naming why). An ACL that exists already is not duplicated.
 * - DELETE removes the ACLs a filter selects; a filter is required (at least a resource type,
 *   a name or a principal), so that a bare DELETE cannot wipe every ACL.
 *
 * Unlike the Kafka APIs, these work with authorization off (the admin token guards them), so
 * ACLs can be in place before `security.authorization.enabled` is turned on. Each change is
 * logged with the ACLs. Per region: nothing is replicated.
 */
import type { FastifyInstance } from 'fastify';
import { ErrorCode, MeridianError } from '../../errors.js';
import {
  AclOperation,
  AclPermissionType,
  describeBinding,
  invalidBindingReason,
  OPERATION_NAMES,
  operationFromName,
  PATTERN_TYPE_NAMES,
  PatternType,
  patternTypeFromName,
  PERMISSION_TYPE_NAMES,
  permissionTypeFromName,
  RESOURCE_TYPE_NAMES,
  ResourceType,
  resourceTypeFromName,
  WILDCARD_HOST,
  type AclBinding,
  type AclBindingFilter,
} from '../../security/acl.js';
import { httpError, HttpErrorCode } from '../http-errors.js';
import type { AdminContext } from '../app.js';
import { arr, errorResponses, obj, schemaTypes as t } from '../schemas.js';

/** The names a binding may have (UNKNOWN and the filter-only ANY and MATCH left out). */
const concrete = (names: readonly string[]) => names.filter((n) => n !== 'UNKNOWN' && n !== 'ANY' && n !== 'MATCH');
const RESOURCE_TYPES = concrete(RESOURCE_TYPE_NAMES);
const PATTERN_TYPES = concrete(PATTERN_TYPE_NAMES);
const OPERATIONS = concrete(OPERATION_NAMES);
const PERMISSIONS = concrete(PERMISSION_TYPE_NAMES);

const aclBody = obj({
  resourceType: { type: 'string', enum: RESOURCE_TYPES },
  name: t.str,
  patternType: { type: 'string', enum: PATTERN_TYPES },
  principal: t.str,
  host: t.str,
  operation: { type: 'string', enum: OPERATIONS },
  permission: { type: 'string', enum: PERMISSIONS },
});

const newAcl = obj(
  {
    resourceType: { type: 'string', enum: RESOURCE_TYPES },
    name: { type: 'string', description: 'the topic, group or transactional id (a prefix when PREFIXED; * for every one); kafka-cluster for CLUSTER' },
    patternType: { type: 'string', enum: PATTERN_TYPES, description: 'default LITERAL' },
    principal: { type: 'string', description: 'Type:name, e.g. User:alice; User:* is everyone' },
    host: { type: 'string', description: 'the client address, or * (default)' },
    operation: { type: 'string', enum: OPERATIONS },
    permission: { type: 'string', enum: PERMISSIONS, description: 'default ALLOW' },
  },
  ['resourceType', 'name', 'principal', 'operation'],
);

const filterQuery = obj(
  {
    resourceType: { type: 'string', enum: ['ANY', ...RESOURCE_TYPES], description: 'default ANY' },
    name: t.str,
    patternType: { type: 'string', enum: ['ANY', 'MATCH', ...PATTERN_TYPES], description: 'default ANY: any pattern of exactly this name; MATCH: every ACL that applies to the resource' },
    principal: t.str,
    host: t.str,
    operation: { type: 'string', enum: ['ANY', ...OPERATIONS], description: 'default ANY' },
    permission: { type: 'string', enum: ['ANY', ...PERMISSIONS], description: 'default ANY' },
  },
  [],
);

export interface AclJson {
  resourceType: string;
  name: string;
  patternType: string;
  principal: string;
  host: string;
  operation: string;
  permission: string;
}

type NewAcl = Partial<AclJson> & Pick<AclJson, 'resourceType' | 'name' | 'principal' | 'operation'>;
type FilterQuery = Partial<AclJson>;

export function aclJson(b: AclBinding): AclJson {
  return {
    resourceType: RESOURCE_TYPE_NAMES[b.pattern.resourceType],
    name: b.pattern.name,
    patternType: PATTERN_TYPE_NAMES[b.pattern.patternType],
    principal: b.entry.principal,
    host: b.entry.host,
    operation: OPERATION_NAMES[b.entry.operation],
    permission: PERMISSION_TYPE_NAMES[b.entry.permissionType],
  };
}

// The schemas admit only Kafka's names, so each lookup below finds its code.
function bindingOf(a: NewAcl): AclBinding {
  return {
    pattern: { resourceType: resourceTypeFromName(a.resourceType)!, name: a.name, patternType: patternTypeFromName(a.patternType ?? 'LITERAL')! },
    entry: { principal: a.principal, host: a.host ?? WILDCARD_HOST, operation: operationFromName(a.operation)!, permissionType: permissionTypeFromName(a.permission ?? 'ALLOW')! },
  };
}

function filterOf(q: FilterQuery): AclBindingFilter {
  return {
    pattern: { resourceType: resourceTypeFromName(q.resourceType ?? 'ANY') ?? ResourceType.Any, name: q.name ?? null, patternType: patternTypeFromName(q.patternType ?? 'ANY') ?? PatternType.Any },
    entry: {
      principal: q.principal ?? null,
      host: q.host ?? null,
      operation: operationFromName(q.operation ?? 'ANY') ?? AclOperation.Any,
      permissionType: permissionTypeFromName(q.permission ?? 'ANY') ?? AclPermissionType.Any,
    },
  };
}

export function aclRoutes(app: FastifyInstance, { broker }: AdminContext): void {
  const store = () => broker.security.acls;

  app.get<{ Querystring: FilterQuery }>(
    '/v1/security/acls',
    {
      schema: {
        summary: "This region's ACLs, all or those a filter selects (DescribeAcls' filter semantics)",
        tags: ['security'],
        querystring: filterQuery,
        response: { 200: arr(aclBody), ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const r = store().describe(filterOf(req.query));
      if (r.error !== null) throw r.error;
      return r.bindings.map(aclJson);
    },
  );

  app.post<{ Body: { acls: NewAcl[] } }>(
    '/v1/security/acls',
    {
      schema: {
        summary: 'Create ACLs: all of them, or none when one is not valid (INVALID_ACL naming it); existing ones are not duplicated',
        tags: ['security'],
        body: obj({ acls: { type: 'array', items: newAcl, minItems: 1 } }),
        response: { 201: obj({ created: arr(aclBody) }), ...errorResponses(400, 401) },
      },
    },
    async (req, reply) => {
      const bindings = req.body.acls.map(bindingOf);
      for (const b of bindings) {
        const reason = invalidBindingReason(b);
        if (reason !== null) throw new MeridianError(ErrorCode.InvalidAcl, `ACL ${describeBinding(b)}: ${reason}; nothing was created`);
      }
      // In a region cluster: written to etcd and in force on every broker (cluster/security-sync.ts).
      const failed = (await broker.security.writes.acls((acls) => acls.create(bindings))).find((r) => r.error !== null);
      if (failed !== undefined) throw failed.error!;
      req.log.info({ acls: bindings.map(describeBinding) }, 'ACLs created (admin API)');
      return reply.code(201).send({ created: bindings.map(aclJson) });
    },
  );

  app.delete<{ Querystring: FilterQuery }>(
    '/v1/security/acls',
    {
      schema: {
        summary: 'Delete the ACLs a filter selects (at least a resourceType, name or principal); answers those deleted',
        tags: ['security'],
        querystring: filterQuery,
        response: { 200: obj({ deleted: arr(aclBody) }), ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const q = req.query;
      if ((q.resourceType === undefined || q.resourceType === 'ANY') && q.name === undefined && q.principal === undefined) {
        throw httpError(HttpErrorCode.BadRequest, 'name the ACLs to delete: at least resourceType, name or principal (a DELETE without a filter would remove every ACL)');
      }
      const filter = filterOf(q);
      const [r] = await broker.security.writes.acls((acls) => acls.delete([filter]));
      if (r.error !== null) throw r.error;
      if (r.deleted.length > 0) req.log.info({ acls: r.deleted.map(describeBinding) }, 'ACLs deleted (admin API)');
      return { deleted: r.deleted.map(aclJson) };
    },
  );
}
