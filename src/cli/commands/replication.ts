/**
 * `meridian replication status|policies|apply FILE`.
 *
 * `apply` is the one multi-region write of the CLI (issue 12: "applies one policy set to
 * every region of the registry and then checks they agree"). It runs in three phases so a
 * bad set or an unreachable region changes nothing:
 *   1. validate on every region (a dry run: each region says which of its links would start
 *      and stop); any region invalid or unreachable stops here, nothing applied;
 *   2. PUT the set to every region, one after the other, in registry order; a failure stops
 *      there and says which regions already hold the new set;
 *   3. read every region's policies back and compare fingerprints (the hash of the
 *      normalised set, replication/policy-store.ts): all must equal the validated one.
 */
import fs from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { AdminApiError, AdminUnreachable } from '../admin-client.js';
import { COMMON_USAGE, helpOrUsage, CommandFailed, ExitCode, UsageError, connect, parse, positionals, printJson, type CliIo, type Command, type CommandContext } from './context.js';
import { bytes, rate, seconds, table } from './format.js';
import { registryOf, type RegistryRegion } from './registry.js';

const USAGE = `Usage:
  meridian replication status [--partitions]
                                   this region's links (remote, policy, topic): state, lag,
                                   backlog, throughput, errors, holds; --partitions adds one
                                   row per partition worker. Exit 1 when a link is in error
                                   or held.
  meridian replication policies    the policies in force, where they come from (config file
                                   or runtime) and their fingerprint
  meridian replication apply FILE [--dry-run]
                                   validate FILE's policies on every region of the registry
                                   (showing which links start and stop), then apply them to
                                   every region and check all regions agree. FILE is YAML or
                                   JSON: a list of policies, { policies: [...] }, or a config
                                   file's replication.policies. Exit 1 naming the region
                                   that refused or disagrees.

${COMMON_USAGE}`;

interface LinkStatus {
  remote: string;
  policy: string;
  topic: string;
  partitions: number;
  state: string;
  error: string | null;
  lagSeconds: number;
  backlogRecords: number;
  backlogBytes: number;
  bytesPerSecond: number;
  recordsPerSecond: number;
  retries: number;
  quotaDroppedRecords: number;
  holds: number;
}

interface WorkerStatus {
  topic: string;
  partition: number;
  remote: string;
  policy: string;
  state: string;
  error: string | null;
  replicatedOffset: string | null;
  lagSeconds: number;
  backlogRecords: number;
  backlogBytes: number;
  bytesPerSecond: number;
  retries: number;
}

export interface ReplicationStatus {
  region: string;
  links: LinkStatus[];
  workers: WorkerStatus[];
  remotes?: Array<{ remote: string; address: string; connected: boolean; inFlightBytes: number; workers: number }>;
  holds?: Array<{ topic: string; partition: number; remote: string; file: string }>;
}

export interface PolicySet {
  policies: unknown[];
  source: 'config' | 'runtime';
  updatedAt: string | null;
  fingerprint: string;
  file?: string | null;
}

interface LinkChange {
  topic: string;
  remote: string;
  policy: string;
}

interface Validation {
  valid: boolean;
  errors: Array<{ path: string; message: string }>;
  fingerprint: string | null;
  changes: { start: LinkChange[]; stop: LinkChange[] };
}

export const replicationCommand: Command = {
  name: 'replication',
  usage: USAGE,
  async run(args: string[], io: CliIo) {
    const { values, positionals: [sub, ...given] } = parse(args, { partitions: { type: 'boolean' }, 'dry-run': { type: 'boolean' } });
    if (values.help || sub === undefined) return helpOrUsage(io, USAGE, values.help === true);
    if (values.partitions && sub !== 'status') throw new UsageError('--partitions is an option of replication status');
    if (values['dry-run'] && sub !== 'apply') throw new UsageError('--dry-run is an option of replication apply');
    switch (sub) {
      case 'status': {
        positionals(given, []);
        const ctx = { client: connect(values, io), json: values.json === true, io };
        return status(ctx, values.partitions === true);
      }
      case 'policies': {
        positionals(given, []);
        const ctx = { client: connect(values, io), json: values.json === true, io };
        const set = await ctx.client.get<PolicySet>('/v1/replication/policies');
        if (ctx.json) printJson(io, set);
        else io.stdout.write(policiesText(set));
        return ExitCode.Ok;
      }
      case 'apply': {
        const [file] = positionals(given, ['FILE']);
        const policies = readPolicyFile(file);
        const ctx = { client: connect(values, io), json: values.json === true, io };
        return apply(ctx, policies, values['dry-run'] === true);
      }
      default:
        throw new UsageError(`unknown subcommand "replication ${sub}" (status, policies, apply)`);
    }
  },
};

async function status(ctx: CommandContext, partitions: boolean): Promise<ExitCode> {
  const s = await ctx.client.get<ReplicationStatus>('/v1/replication/status');
  const bad = s.links.filter((l) => l.state === 'error' || l.holds > 0);
  if (ctx.json) {
    printJson(ctx.io, s);
    return bad.length > 0 ? ExitCode.Failed : ExitCode.Ok;
  }
  let out = '';
  for (const l of bad) out += `PROBLEM  ${s.region} → ${l.remote} ${l.topic}: ${l.state}${l.holds > 0 ? `, ${l.holds} partition(s) held` : ''}${l.error ? `: ${l.error}` : ''}\n`;
  for (const r of s.remotes ?? []) if (!r.connected && r.workers > 0) out += `WARNING  ${s.region} → ${r.remote} (${r.address}): not connected\n`;
  if (out !== '') out += '\n';
  if (s.links.length === 0) out += `${s.region} replicates nothing (no policy covers its topics)\n`;
  else {
    out += `links from ${s.region}\n`;
    out += table(
      ['remote', 'policy', 'topic', 'partitions>', 'state', 'lag>', 'backlog>', 'records>', 'rate>', 'retries>', 'holds>', 'error'],
      s.links.map((l) => [l.remote, l.policy, l.topic, l.partitions, l.state, seconds(l.lagSeconds), bytes(l.backlogBytes), l.backlogRecords, rate(l.bytesPerSecond), l.retries, l.holds, l.error ?? '-']),
    );
  }
  if (partitions && s.workers.length > 0) {
    out += `\npartition workers\n`;
    out += table(
      ['remote', 'topic', 'partition>', 'state', 'replicated>', 'lag>', 'backlog>', 'records>', 'rate>', 'error'],
      s.workers.map((w) => [w.remote, w.topic, w.partition, w.state, w.replicatedOffset ?? '-', seconds(w.lagSeconds), bytes(w.backlogBytes), w.backlogRecords, rate(w.bytesPerSecond), w.error ?? '-']),
    );
  }
  ctx.io.stdout.write(out);
  return bad.length > 0 ? ExitCode.Failed : ExitCode.Ok;
}

function policiesText(set: PolicySet): string {
  const from =
    set.source === 'runtime'
      ? `runtime (applied ${set.updatedAt ?? '?'}${set.file ? `, persisted in ${set.file}` : ''}; wins over the config file until reverted)`
      : 'the config file (replication.policies)';
  const rows = set.policies.map((p) => {
    const { name, topics, topology, ...rest } = p as { name?: string; topics?: unknown; topology?: string };
    return [name ?? '-', JSON.stringify(topics), topology ?? '-', JSON.stringify(rest)];
  });
  return `source       ${from}\nfingerprint  ${set.fingerprint}\n\n${rows.length === 0 ? 'no policies: nothing is replicated\n' : table(['policy', 'topics', 'topology', 'settings'], rows)}`;
}

/** A list of policies, `{ policies: [...] }`, or a config file's `replication.policies`. */
function readPolicyFile(file: string): unknown[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new UsageError(`${file}: not YAML or JSON: ${(err as Error).message.split('\n')[0]}`);
  }
  const o = doc as { policies?: unknown; replication?: { policies?: unknown } } | null;
  const policies = Array.isArray(doc) ? doc : Array.isArray(o?.policies) ? o.policies : Array.isArray(o?.replication?.policies) ? o.replication.policies : undefined;
  if (policies === undefined) throw new UsageError(`${file}: expected a list of policies, { policies: [...] } or a config file with replication.policies`);
  return policies;
}

interface ApplyRegion {
  region: string;
  admin: string | null;
  valid: boolean | null;
  errors: Array<{ path: string; message: string }>;
  changes: { start: LinkChange[]; stop: LinkChange[] } | null;
  applied: boolean;
  fingerprint: string | null;
  source: string | null;
  error: string | null;
}

async function apply(ctx: CommandContext, policies: unknown[], dryRun: boolean): Promise<ExitCode> {
  const { regions } = await registryOf(ctx.client);
  const results = new Map<string, ApplyRegion>(
    regions.map((r) => [r.name, { region: r.name, admin: r.admin, valid: null, errors: [], changes: null, applied: false, fingerprint: null, source: null, error: null }]),
  );
  const problems: string[] = [];
  const finish = (code: ExitCode, extra: Record<string, unknown> = {}): ExitCode => {
    const out = { ok: code === ExitCode.Ok, dryRun, ...extra, problems, regions: [...results.values()] };
    if (ctx.json) printJson(ctx.io, out);
    for (const p of problems) ctx.io.stderr.write(`meridian: replication apply: ${p}\n`);
    return code;
  };

  // 1. Validate everywhere; nothing changes unless every region accepts the set.
  const missing = regions.filter((r) => r.client === null);
  for (const r of missing) {
    results.get(r.name)!.error = 'no admin address in the registry';
    problems.push(`region ${r.name} has no admin address in the registry (replication.regions[].admin), so the set cannot be applied there; nothing was applied`);
  }
  if (missing.length > 0) return finish(ExitCode.Failed);
  let unreachable = false;
  await Promise.all(
    regions.map(async (r) => {
      const res = results.get(r.name)!;
      try {
        const v = await r.client!.post<Validation>('/v1/replication/policies/validate', { policies });
        res.valid = v.valid;
        res.errors = v.errors;
        res.changes = v.changes;
        res.fingerprint = v.fingerprint;
      } catch (err) {
        res.error = messageOf(err);
        if (err instanceof AdminUnreachable) unreachable = true;
      }
    }),
  );
  for (const r of regions) {
    const res = results.get(r.name)!;
    if (res.error !== null) problems.push(`region ${r.name} (${r.admin}): ${res.error}`);
    for (const e of res.errors) problems.push(`region ${r.name} refuses the policies: ${e.path}: ${e.message}`);
  }
  if (!ctx.json) ctx.io.stdout.write(planText(regions, results));
  if (problems.length > 0) {
    problems.push('nothing was applied');
    return finish(unreachable ? ExitCode.Unreachable : ExitCode.Failed);
  }
  const fingerprints = new Set([...results.values()].map((r) => r.fingerprint));
  const expected = [...fingerprints][0] ?? null;
  if (fingerprints.size > 1) {
    problems.push(`the regions read this set differently (fingerprints ${[...results.values()].map((r) => `${r.region}=${r.fingerprint}`).join(', ')}); nothing was applied`);
    return finish(ExitCode.Failed);
  }
  if (dryRun) {
    if (!ctx.json) ctx.io.stdout.write(`dry run: valid on every region (fingerprint ${expected}); nothing applied\n`);
    return finish(ExitCode.Ok, { fingerprint: expected, agree: null });
  }

  // 2. Apply, region by region.
  for (const r of regions) {
    const res = results.get(r.name)!;
    try {
      const set = await r.client!.put<PolicySet>('/v1/replication/policies', { policies });
      res.applied = true;
      res.fingerprint = set.fingerprint;
      res.source = set.source;
      if (!ctx.json) ctx.io.stdout.write(`applied to ${r.name}\n`);
    } catch (err) {
      res.error = messageOf(err);
      const done = regions.filter((x) => results.get(x.name)!.applied).map((x) => x.name);
      const left = regions.filter((x) => !results.get(x.name)!.applied && x !== r).map((x) => x.name);
      problems.push(
        `region ${r.name} (${r.admin}) failed to apply: ${res.error}; applied to ${done.join(', ') || 'no region'}, not applied to ${[r.name, ...left].join(', ')}. Run the same apply again once ${r.name} is fixed`,
      );
      return finish(ExitCode.Failed, { fingerprint: expected, agree: false });
    }
  }

  // 3. Read back: every region must now hold the validated set.
  await Promise.all(
    regions.map(async (r) => {
      const res = results.get(r.name)!;
      try {
        const set = await r.client!.get<PolicySet>('/v1/replication/policies');
        res.fingerprint = set.fingerprint;
        res.source = set.source;
      } catch (err) {
        res.fingerprint = null;
        res.error = `cannot read back its policies: ${messageOf(err)}`;
      }
    }),
  );
  for (const r of regions) {
    const res = results.get(r.name)!;
    if (res.error !== null) problems.push(`region ${r.name} (${r.admin}): ${res.error}`);
    else if (res.fingerprint !== expected) problems.push(`region ${r.name} disagrees: it holds policies with fingerprint ${res.fingerprint}, the set applied has ${expected}`);
  }
  if (problems.length > 0) return finish(ExitCode.Failed, { fingerprint: expected, agree: false });
  if (!ctx.json) ctx.io.stdout.write(`all ${regions.length} regions agree (fingerprint ${expected})\n`);
  return finish(ExitCode.Ok, { fingerprint: expected, agree: true });
}

function planText(regions: readonly RegistryRegion[], results: Map<string, ApplyRegion>): string {
  let out = '';
  for (const r of regions) {
    const res = results.get(r.name)!;
    if (res.error !== null) {
      out += `${r.name}: cannot validate\n`;
      continue;
    }
    if (!res.valid) {
      out += `${r.name}: invalid\n`;
      continue;
    }
    const { start, stop } = res.changes!;
    out += `${r.name}: valid; ${start.length} link${start.length === 1 ? '' : 's'} would start, ${stop.length} would stop\n`;
    for (const c of start) out += `  + ${c.topic} → ${c.remote} (${c.policy})\n`;
    for (const c of stop) out += `  - ${c.topic} → ${c.remote} (${c.policy})\n`;
  }
  return out;
}

function messageOf(err: unknown): string {
  if (err instanceof AdminApiError) return `${err.code}: ${err.message}`;
  if (err instanceof AdminUnreachable) return err.message;
  if (err instanceof CommandFailed) return err.message;
  throw err;
}
