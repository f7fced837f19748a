/**
 * `meridian acl list|add|remove`: the ACLs of the region addressed, through /v1/security/acls
 * (src/admin/routes/acls.ts), with the flags of Kafka's kafka-acls tool, so an operator's
 * habits and scripts carry over: `--allow-principal User:alice --operation Read --topic T
 * --resource-pattern-type prefixed`. The action is a subcommand rather than kafka-acls'
 * `--add`/`--remove`/`--list`.
 *
 * - `add`: one ACL per principal, host, operation and resource given (as kafka-acls does):
 *   `--allow-principal` with `--allow-host` (default *), `--deny-principal` with `--deny-host`;
 *   at least one principal, one operation and one resource. Pattern type LITERAL by default.
 * - `remove`: removes, per resource given, the ACLs matching the principals, hosts and
 *   operations given (any when left out) of exactly that pattern; prints what went.
 * - `list`: every ACL, or those of the resources given (`--resource-pattern-type`: literal,
 *   the default as in kafka-acls, prefixed, any, or match: every ACL that applies to the
 *   resource), optionally of one `--principal`.
 *
 * Operations are Kafka's names in kafka-acls' spelling (Read, Write, Create, Delete, Alter,
 * Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All); any case and
 * READ / DESCRIBE_CONFIGS are accepted too. ACLs are per region: run the command against every
 * region a principal uses. `--json` prints the admin API's v1 bodies.
 */
import type { AclJson } from '../../admin/routes/acls.js';
import { COMMON_USAGE, helpOrUsage, ExitCode, UsageError, connect, parse, positionals, printJson, type CliIo, type Command, type CommandContext } from './context.js';
import { table } from './format.js';

const USAGE = `Usage:
  meridian acl list [RESOURCE...] [--resource-pattern-type literal|prefixed|any|match]
                    [--principal P]
                                   the region's ACLs: all, or those of the resources given
  meridian acl add --allow-principal P | --deny-principal P  --operation OP  RESOURCE...
                   [--allow-host H] [--deny-host H] [--resource-pattern-type literal|prefixed]
                                   one ACL per principal, host, operation and resource
  meridian acl remove RESOURCE... [--allow-principal P] [--deny-principal P] [--operation OP]
                   [--allow-host H] [--deny-host H] [--resource-pattern-type ...]
                                   remove the ACLs matching what is given (any when left out)

  RESOURCE: --topic T, --group G, --transactional-id X (each repeatable), --cluster.
  P: a principal, User:alice (User:* is everyone). H: a client address, * by default.
  OP (repeatable): Read, Write, Create, Delete, Alter, Describe, ClusterAction,
  DescribeConfigs, AlterConfigs, IdempotentWrite, All. The pattern type is literal by
  default; prefixed makes the name a prefix (--topic teamA. --resource-pattern-type prefixed
  covers every teamA.* topic). ACLs are per region: run the command against each region.

${COMMON_USAGE}`;

const OPTIONS = {
  topic: { type: 'string', multiple: true },
  group: { type: 'string', multiple: true },
  'transactional-id': { type: 'string', multiple: true },
  cluster: { type: 'boolean' },
  'resource-pattern-type': { type: 'string' },
  'allow-principal': { type: 'string', multiple: true },
  'deny-principal': { type: 'string', multiple: true },
  'allow-host': { type: 'string', multiple: true },
  'deny-host': { type: 'string', multiple: true },
  operation: { type: 'string', multiple: true },
  principal: { type: 'string' },
} as const;

const OPERATIONS = ['ALL', 'READ', 'WRITE', 'CREATE', 'DELETE', 'ALTER', 'DESCRIBE', 'CLUSTER_ACTION', 'DESCRIBE_CONFIGS', 'ALTER_CONFIGS', 'IDEMPOTENT_WRITE'];

type Values = ReturnType<typeof parseAcl>['values'];

interface Resource {
  resourceType: string;
  name: string;
}

interface Entry {
  principal: string;
  host: string;
  permission: 'ALLOW' | 'DENY';
}

function parseAcl(args: string[]) {
  return parse(args, OPTIONS);
}

export const aclCommand: Command = {
  name: 'acl',
  usage: USAGE,
  async run(args: string[], io: CliIo) {
    const { values, positionals: [sub, ...given] } = parseAcl(args);
    if (values.help || sub === undefined) return helpOrUsage(io, USAGE, values.help === true);
    positionals(given, []);
    const ctx: CommandContext = { client: connect(values, io), json: values.json === true, io };
    switch (sub) {
      case 'list':
        if (values['allow-principal'] || values['deny-principal'] || values.operation || values['allow-host'] || values['deny-host']) {
          throw new UsageError('acl list filters by RESOURCE, --resource-pattern-type and --principal only');
        }
        return list(ctx, values);
      case 'add':
        if (values.principal !== undefined) throw new UsageError('--principal is an option of acl list; acl add takes --allow-principal or --deny-principal');
        return add(ctx, values);
      case 'remove':
        if (values.principal !== undefined) throw new UsageError('--principal is an option of acl list; acl remove takes --allow-principal or --deny-principal');
        return remove(ctx, values);
      default:
        throw new UsageError(`unknown subcommand "acl ${sub}" (list, add, remove)`);
    }
  },
};

/** The resources named by --topic, --group, --transactional-id and --cluster. */
function resourcesOf(v: Values): Resource[] {
  const named = (flag: 'topic' | 'group' | 'transactional-id', resourceType: string): Resource[] =>
    (v[flag] ?? []).map((name) => {
      if (name === '') throw new UsageError(`--${flag} needs a name`);
      return { resourceType, name };
    });
  return [...named('topic', 'TOPIC'), ...named('group', 'GROUP'), ...named('transactional-id', 'TRANSACTIONAL_ID'), ...(v.cluster ? [{ resourceType: 'CLUSTER', name: 'kafka-cluster' }] : [])];
}

function patternTypeOf(v: Values, allowed: readonly string[]): string {
  const given = v['resource-pattern-type'];
  if (given === undefined) return 'LITERAL';
  const p = given.toUpperCase();
  if (!allowed.includes(p)) throw new UsageError(`--resource-pattern-type: expected ${allowed.map((a) => a.toLowerCase()).join(', ')}; got ${JSON.stringify(given)}`);
  return p;
}

/** Read, read, READ, DescribeConfigs, describe-configs, DESCRIBE_CONFIGS: Kafka's name. */
function operationOf(given: string): string {
  const op = given
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .replace(/-/g, '_')
    .toUpperCase();
  if (!OPERATIONS.includes(op)) throw new UsageError(`--operation: unknown operation ${JSON.stringify(given)} (Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All)`);
  return op;
}

function principalOf(p: string, flag: string): string {
  if (p.indexOf(':') <= 0) throw new UsageError(`--${flag}: expected Type:name, e.g. User:alice; got ${JSON.stringify(p)}`);
  return p;
}

/** The (principal, host, permission) pairs of the --allow-* and --deny-* flags. */
function entriesOf(v: Values): Entry[] {
  const of = (kind: 'allow' | 'deny'): Entry[] => {
    const hosts = v[`${kind}-host`] ?? ['*'];
    return (v[`${kind}-principal`] ?? []).flatMap((p) => hosts.map((host) => ({ principal: principalOf(p, `${kind}-principal`), host, permission: kind === 'allow' ? ('ALLOW' as const) : ('DENY' as const) })));
  };
  for (const kind of ['allow', 'deny'] as const) {
    if (v[`${kind}-host`] !== undefined && v[`${kind}-principal`] === undefined) throw new UsageError(`--${kind}-host needs --${kind}-principal`);
  }
  return [...of('allow'), ...of('deny')];
}

const query = (params: Record<string, string | undefined>): string => {
  const q = new URLSearchParams(Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined));
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
};

function print(ctx: CommandContext, acls: readonly AclJson[], none: string): void {
  if (acls.length === 0) {
    ctx.io.stdout.write(`${none}\n`);
    return;
  }
  ctx.io.stdout.write(
    table(
      ['resource-type', 'name', 'pattern', 'principal', 'host', 'operation', 'permission'],
      acls.map((a) => [a.resourceType, a.name, a.patternType, a.principal, a.host, a.operation, a.permission]),
    ),
  );
}

async function list(ctx: CommandContext, v: Values): Promise<ExitCode> {
  const resources = resourcesOf(v);
  const principal = v.principal === undefined ? undefined : principalOf(v.principal, 'principal');
  const patternType = resources.length === 0 && v['resource-pattern-type'] === undefined ? 'ANY' : patternTypeOf(v, ['LITERAL', 'PREFIXED', 'ANY', 'MATCH']);
  const asked = resources.length === 0 ? [{ resourceType: undefined, name: undefined }] : resources;
  const acls: AclJson[] = [];
  for (const r of asked) acls.push(...(await ctx.client.get<AclJson[]>(`/v1/security/acls${query({ resourceType: r.resourceType, name: r.name, patternType, principal })}`)));
  if (ctx.json) printJson(ctx.io, acls);
  else print(ctx, acls, 'no ACLs');
  return ExitCode.Ok;
}

async function add(ctx: CommandContext, v: Values): Promise<ExitCode> {
  const resources = resourcesOf(v);
  const entries = entriesOf(v);
  const operations = (v.operation ?? []).map(operationOf);
  if (entries.length === 0) throw new UsageError('name who: --allow-principal P or --deny-principal P');
  if (operations.length === 0) throw new UsageError('name what: --operation OP');
  if (resources.length === 0) throw new UsageError('name a resource: --topic T, --group G, --transactional-id X or --cluster');
  const patternType = patternTypeOf(v, ['LITERAL', 'PREFIXED']);
  const acls = resources.flatMap((r) => entries.flatMap((e) => operations.map((operation) => ({ ...r, patternType, ...e, operation }))));
  const { created } = await ctx.client.post<{ created: AclJson[] }>('/v1/security/acls', { acls });
  if (ctx.json) printJson(ctx.io, { created });
  else print(ctx, created, 'no ACLs created');
  return ExitCode.Ok;
}

async function remove(ctx: CommandContext, v: Values): Promise<ExitCode> {
  const resources = resourcesOf(v);
  if (resources.length === 0) throw new UsageError('name a resource: --topic T, --group G, --transactional-id X or --cluster');
  const patternType = patternTypeOf(v, ['LITERAL', 'PREFIXED', 'ANY', 'MATCH']);
  const entries: Array<Partial<Entry>> = entriesOf(v);
  const operations: Array<string | undefined> = (v.operation ?? []).map(operationOf);
  const deleted: AclJson[] = [];
  for (const r of resources) {
    for (const e of entries.length === 0 ? [{}] : entries) {
      for (const operation of operations.length === 0 ? [undefined] : operations) {
        const q = query({ ...r, patternType, principal: e.principal, host: e.host, permission: e.permission, operation });
        deleted.push(...(await ctx.client.delete<{ deleted: AclJson[] }>(`/v1/security/acls${q}`)).deleted);
      }
    }
  }
  if (ctx.json) printJson(ctx.io, { deleted });
  else print(ctx, deleted, 'no ACL matched: nothing removed');
  return ExitCode.Ok;
}
