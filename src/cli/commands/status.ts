/**
 * `meridian status`: one screen for the whole deployment, problems first. It reads the
 * registry from the region addressed (GET /v1/cluster), then asks every region with an
 * admin address, in parallel, for its cluster info, replication status, policies, topics
 * and tiered status, and puts together:
 *
 *   problems  (exit 1): a region that does not answer, a link in error or held, regions
 *             whose replication policies differ (by fingerprint), an unavailable store;
 *   warnings  (exit 0): a region the registry gives no admin address (not asked), a link
 *             backing off (retrying), a remote not connected;
 *   regions   each with its addresses, version, uptime, topics, bytes local and tiered,
 *             and its policy set (source and fingerprint);
 *   links     every (from, to, topic) link: policy, state, lag, backlog, throughput.
 *
 * The region addressed not answering is exit 3 (nothing to show); any other region not
 * answering is a problem on the screen, since seeing that is what `status` is for.
 */
import { AdminApiError, AdminUnreachable } from '../admin-client.js';
import { COMMON_USAGE, ExitCode, connect, parse, positionals, printJson, type CliIo, type Command, type CommandContext } from './context.js';
import { bytes, rate, seconds, table } from './format.js';
import { registryOf, type ClusterInfo, type RegistryRegion } from './registry.js';
import type { PolicySet, ReplicationStatus } from './replication.js';

const USAGE = `Usage:
  meridian status     every region of the registry: its links' state, lag and backlog,
                      bytes local and tiered, and problems first (a region unreachable,
                      a link in error, policies that differ between regions). Exit 1
                      when there is a problem, 0 when there are only warnings or none.

${COMMON_USAGE}`;

export interface Problem {
  severity: 'problem' | 'warning';
  /** Stable, for scripts: unreachable, no-admin, link-error, link-held, link-retrying, remote-disconnected, policy-disagreement, store-unavailable. */
  kind: string;
  region: string;
  message: string;
}

interface RegionReport {
  name: string;
  self: boolean;
  admin: string | null;
  kafka: string;
  reachable: boolean | null;
  error: string | null;
  version: string | null;
  uptimeSeconds: number | null;
  topics: number | null;
  localBytes: number | null;
  tieredBytes: number | null;
  tieredStore: string | null;
  policies: { source: string; fingerprint: string; names: string[] } | null;
  /** Remotes this region has workers for but no connection to. */
  disconnected: string[];
  links: Array<{ to: string; topic: string; policy: string; partitions: number; state: string; error: string | null; lagSeconds: number; backlogRecords: number; backlogBytes: number; bytesPerSecond: number; holds: number }>;
}

interface TieredSummary {
  enabled: boolean;
  store: string | null;
  unavailable: string | null;
}

export const statusCommand: Command = {
  name: 'status',
  usage: USAGE,
  async run(args: string[], io: CliIo) {
    const { values, positionals: given } = parse(args, {});
    if (values.help) {
      io.stdout.write(`${USAGE}\n`);
      return ExitCode.Ok;
    }
    positionals(given, []);
    return status({ client: connect(values, io), json: values.json === true, io });
  },
};

async function status(ctx: CommandContext): Promise<ExitCode> {
  const { regions } = await registryOf(ctx.client);
  const reports = await Promise.all(regions.map(reportOf));
  const problems = problemsOf(reports);
  const ok = !problems.some((p) => p.severity === 'problem');
  if (ctx.json) printJson(ctx.io, { ok, problems, regions: reports });
  else ctx.io.stdout.write(screen(reports, problems));
  return ok ? ExitCode.Ok : ExitCode.Failed;
}

async function reportOf(r: RegistryRegion): Promise<RegionReport> {
  const report: RegionReport = {
    name: r.name,
    self: r.self,
    admin: r.admin,
    kafka: r.address,
    reachable: null,
    error: null,
    version: null,
    uptimeSeconds: null,
    topics: null,
    localBytes: null,
    tieredBytes: null,
    tieredStore: null,
    policies: null,
    disconnected: [],
    links: [],
  };
  const client = r.client;
  if (client === null) return report;
  try {
    const [cluster, replication, policies, topics, tiered] = await Promise.all([
      client.get<ClusterInfo>('/v1/cluster'),
      client.get<ReplicationStatus>('/v1/replication/status'),
      client.get<PolicySet>('/v1/replication/policies'),
      client.get<Array<{ localBytes: number; tieredBytes: number }>>('/v1/topics'),
      client.get<TieredSummary>('/v1/tiered/status'),
    ]);
    report.reachable = true;
    report.version = cluster.version;
    report.uptimeSeconds = cluster.uptimeSeconds;
    report.topics = topics.length;
    report.localBytes = topics.reduce((n, t) => n + t.localBytes, 0);
    report.tieredBytes = topics.reduce((n, t) => n + t.tieredBytes, 0);
    report.tieredStore = tiered.enabled ? (tiered.unavailable === null ? (tiered.store ?? 'enabled') : `UNAVAILABLE: ${tiered.unavailable}`) : null;
    report.policies = {
      source: policies.source,
      fingerprint: policies.fingerprint,
      names: policies.policies.map((p, i) => (p as { name?: string }).name ?? `#${i + 1}`),
    };
    report.links = replication.links.map((l) => ({
      to: l.remote,
      topic: l.topic,
      policy: l.policy,
      partitions: l.partitions,
      state: l.state,
      error: l.error,
      lagSeconds: l.lagSeconds,
      backlogRecords: l.backlogRecords,
      backlogBytes: l.backlogBytes,
      bytesPerSecond: l.bytesPerSecond,
      holds: l.holds,
    }));
    for (const remote of replication.remotes ?? []) {
      if (!remote.connected && remote.workers > 0) report.disconnected.push(`${remote.remote} (${remote.address})`);
    }
  } catch (err) {
    // The region addressed not answering leaves nothing to show: exit 3 like every command.
    if (r.self && err instanceof AdminUnreachable) throw err;
    if (!(err instanceof AdminUnreachable) && !(err instanceof AdminApiError)) throw err;
    report.reachable = false;
    report.error = err instanceof AdminApiError ? `${err.code}: ${err.message}` : err.message;
  }
  return report;
}

function problemsOf(reports: readonly RegionReport[]): Problem[] {
  const out: Problem[] = [];
  const add = (severity: Problem['severity'], kind: string, region: string, message: string) => out.push({ severity, kind, region, message });
  for (const r of reports) {
    if (r.admin === null) add('warning', 'no-admin', r.name, `${r.name}: the registry names no admin address (replication.regions[].admin), so its state is unknown here`);
    else if (r.reachable === false) add('problem', 'unreachable', r.name, `${r.name}: ${r.error}`);
    if (r.tieredStore?.startsWith('UNAVAILABLE')) add('problem', 'store-unavailable', r.name, `${r.name}: the object store is unavailable: ${r.tieredStore.slice('UNAVAILABLE: '.length)}`);
    for (const l of r.links) {
      const where = `${r.name} → ${l.to} ${l.topic} (${l.policy})`;
      if (l.holds > 0) add('problem', 'link-held', r.name, `${where}: ${l.holds} partition(s) held until an operator resolves a divergence${l.error ? `: ${l.error}` : ''}`);
      else if (l.state === 'error') add('problem', 'link-error', r.name, `${where}: error${l.error ? `: ${l.error}` : ''}`);
      else if (l.state === 'backing-off') add('warning', 'link-retrying', r.name, `${where}: retrying${l.error ? ` after: ${l.error}` : ''}`);
    }
    for (const d of r.disconnected) add('warning', 'remote-disconnected', r.name, `${r.name} → ${d}: not connected`);
  }
  const byFingerprint = new Map<string, string[]>();
  for (const r of reports) if (r.policies !== null) byFingerprint.set(r.policies.fingerprint, [...(byFingerprint.get(r.policies.fingerprint) ?? []), r.name]);
  if (byFingerprint.size > 1) {
    // The set most regions hold is taken as the intended one (on a tie, the addressed
    // region's); every region holding another is named as differing.
    const own = reports.find((r) => r.self)?.policies?.fingerprint;
    const groups = [...byFingerprint.entries()].sort((a, b) => b[1].length - a[1].length || Number(b[0] === own) - Number(a[0] === own));
    const detail = groups.map(([f, names]) => `${names.join(', ')} hold ${f}`).join('; ');
    for (const [, names] of groups.slice(1)) {
      for (const name of names) add('problem', 'policy-disagreement', name, `${name}: replication policies differ from the other regions' (${detail}); align them with meridian replication apply FILE`);
    }
  }
  return out.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'problem' ? -1 : 1));
}

function screen(reports: readonly RegionReport[], problems: readonly Problem[]): string {
  const links = reports.flatMap((r) => r.links.map((l) => ({ from: r.name, ...l })));
  const bad = problems.filter((p) => p.severity === 'problem').length;
  let out = '';
  if (problems.length === 0) out += `OK: ${reports.length} region${reports.length === 1 ? '' : 's'}, ${links.length} link${links.length === 1 ? '' : 's'}, no problems\n\n`;
  else {
    out += `${bad} problem${bad === 1 ? '' : 's'}, ${problems.length - bad} warning${problems.length - bad === 1 ? '' : 's'}\n`;
    for (const p of problems) out += `  ${p.severity === 'problem' ? 'PROBLEM' : 'WARNING'}  ${p.message}\n`;
    out += '\n';
  }
  out += table(
    ['region', 'admin', 'kafka', 'version', 'uptime>', 'topics>', 'local>', 'tiered>', 'store', 'policies'],
    reports.map((r) => [
      r.self ? `${r.name} *` : r.name,
      r.admin ?? '-',
      r.kafka,
      r.reachable === false ? 'UNREACHABLE' : (r.version ?? '-'),
      seconds(r.uptimeSeconds),
      r.topics ?? '-',
      r.localBytes === null ? '-' : bytes(r.localBytes),
      r.tieredBytes === null ? '-' : bytes(r.tieredBytes),
      r.tieredStore ?? '-',
      r.policies === null ? '-' : `${r.policies.source} ${r.policies.fingerprint.slice(0, 8)} ${r.policies.names.join(',')}`.trim(),
    ]),
  );
  out += '\n';
  out +=
    links.length === 0
      ? 'no replication links\n'
      : table(
          ['from', 'to', 'topic', 'policy', 'state', 'lag>', 'backlog>', 'records>', 'rate>', 'error'],
          links.map((l) => [l.from, l.to, l.topic, l.policy, l.holds > 0 ? `${l.state}, ${l.holds} held` : l.state, seconds(l.lagSeconds), bytes(l.backlogBytes), l.backlogRecords, rate(l.bytesPerSecond), l.error ?? '-']),
        );
  return out + '\n* the region addressed\n';
}
