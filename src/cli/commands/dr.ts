/**
 * `meridian dr status|promote|failback|report|group`: disaster recovery of the region
 * addressed, through /v1/dr (src/admin/routes/dr.ts, src/dr/).
 *
 * - `status`: each DR topic's role here (primary or read-only copy, the primary, epoch,
 *   phase), the offset sync with each peer, and groups in conflict. Exit 1 for a problem:
 *   a group committing in two regions at once, or a promote or failback under way or
 *   interrupted (the same command completes it). A peer the offset sync cannot reach is a
 *   warning: that peer is what DR is for, it may well be down.
 * - `promote --topic T | --policy P | --region R`: this region becomes the primary; per
 *   topic, the recovery point of each partition (what of the old primary's log is here,
 *   what it last said it held, and so what did not replicate). Idempotent: a topic already
 *   promoted here answers its saved report. When the old primary never reported its end
 *   offsets the missing records are unknown, and the output says so.
 * - `failback --topic T [--confirm]`: run against the returning old primary. Without
 *   --confirm a dry run (nothing changes): the divergent tail per partition. With it the
 *   tail is preserved in a side topic, the log cut, and the topic follows the new primary.
 * - `report [ID]`: the saved promote and failback reports, or one of them.
 * - `group [G]`: groups with DR offsets, or one group per partition: its commit here, the
 *   translated peer commit, what a consumer resumes from, the peer and its sync age.
 *
 * `--json` prints the admin API's v1 body unchanged. The broker's refusals (unknown topic,
 * a scope naming another region, a failback whose new primary cannot be reached) exit 1
 * with its code and message (commands/index.ts).
 */
import { COMMON_USAGE, helpOrUsage, ExitCode, UsageError, connect, parse, positionals, printJson, type CliIo, type Command, type CommandContext } from './context.js';
import { seconds, table } from './format.js';
// The v1 bodies are the DR module's own types, serialised (type-only: no broker code loads).
import type { Conflict } from '../../dr/disaster-recovery.js';
import type { PeerSyncStatus } from '../../dr/offset-publisher.js';
import type { DivergentPartition, DrReport, FailbackReport, PromoteReport, RecoveryPartition } from '../../dr/recovery-report.js';

const USAGE = `Usage:
  meridian dr status               DR topics here: primary or read-only copy, the primary,
                                   epoch and phase; offset sync with each peer region;
                                   groups in conflict. Exit 1 for a conflict or a promote or
                                   failback under way or interrupted.
  meridian dr promote --topic T | --policy P | --region R
                                   make this region the primary of topic T, of every topic
                                   of policy P, or of every DR topic here (R: this region);
                                   prints each topic's recovery point per partition and the
                                   saved report id. Running it again prints the same report.
  meridian dr failback --topic T [--confirm]
                                   against the old primary that came back: without
                                   --confirm a dry run listing, per partition, the records
                                   the new primary never received (nothing changes); with
                                   --confirm they are kept in a side topic, the log is cut
                                   and T follows the new primary
  meridian dr report [ID]          the saved promote and failback reports, or report ID
  meridian dr group [G]            groups with DR offsets, or group G per partition: its
                                   commit here, the peer's translated, what consumers resume
                                   from, the peer's commit and its age, conflicts

${COMMON_USAGE}`;

export interface DrTopicStatus {
  topic: string;
  policy: string;
  topology: string;
  primary: string;
  epoch: number;
  readOnly: boolean;
  phase: string;
  since: number | null;
  reportId: string | null;
}

export interface DrStatus {
  region: string;
  topics: DrTopicStatus[];
  offsetSync: PeerSyncStatus[];
  conflicts: Conflict[];
}

interface GroupPartition {
  topic: string;
  partition: number;
  committed: string | null;
  committedAt: number | null;
  translated: string | null;
  resolved: string;
  source: string;
  peer: string | null;
  peerOffset: string | null;
  peerCommittedAt: number | null;
  syncAgeMs: number | null;
  conflict: Conflict | null;
}

interface GroupStatus {
  group: string;
  region: string;
  partitions: GroupPartition[];
}


const time = (ms: number | null | undefined) => (ms === null || ms === undefined ? '-' : new Date(ms).toISOString());
const ageOf = (ms: number | null | undefined) => (ms === null || ms === undefined ? '-' : seconds(ms / 1000));
const plural = (n: number | bigint | string, word: string) => `${n} ${word}${String(n) === '1' ? '' : 's'}`;

export const drCommand: Command = {
  name: 'dr',
  usage: USAGE,
  async run(args: string[], io: CliIo) {
    const { values, positionals: [sub, ...given] } = parse(args, {
      topic: { type: 'string' },
      policy: { type: 'string' },
      region: { type: 'string' },
      confirm: { type: 'boolean' },
    });
    if (values.help || sub === undefined) return helpOrUsage(io, USAGE, values.help === true);
    for (const flag of ['topic', 'policy', 'region'] as const) if (values[flag] === '') throw new UsageError(`--${flag} needs a value`);
    if (values.confirm && sub !== 'failback') throw new UsageError('--confirm is an option of dr failback');
    if ((values.policy !== undefined || values.region !== undefined) && sub !== 'promote') throw new UsageError('--policy and --region are options of dr promote');
    if (values.topic !== undefined && sub !== 'promote' && sub !== 'failback') throw new UsageError('--topic is an option of dr promote and dr failback');
    switch (sub) {
      case 'status': {
        positionals(given, []);
        return status(context(values, io));
      }
      case 'promote': {
        positionals(given, []);
        const scopes = (['topic', 'policy', 'region'] as const).filter((k) => values[k] !== undefined);
        if (scopes.length !== 1) throw new UsageError(`name exactly one of --topic T, --policy P or --region R (${scopes.length === 0 ? 'none given' : `got ${scopes.map((s) => `--${s}`).join(' and ')}`})`);
        const scope = scopes[0];
        return promote(context(values, io), { [scope]: values[scope]! });
      }
      case 'failback': {
        positionals(given, []);
        if (values.topic === undefined) throw new UsageError('missing --topic T');
        return failback(context(values, io), values.topic, values.confirm === true);
      }
      case 'report': {
        if (given.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(given[1])}`);
        return report(context(values, io), given[0]);
      }
      case 'group': {
        if (given.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(given[1])}`);
        return group(context(values, io), given[0]);
      }
      default:
        throw new UsageError(`unknown subcommand "dr ${sub}" (status, promote, failback, report, group)`);
    }
  },
};

function context(values: { admin?: string; 'token-file'?: string; json?: boolean }, io: CliIo): CommandContext {
  return { client: connect(values, io), json: values.json === true, io };
}

// ---- status ------------------------------------------------------------------------------

async function status(ctx: CommandContext): Promise<ExitCode> {
  const s = await ctx.client.get<DrStatus>('/v1/dr');
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const t of s.topics) {
    if (t.phase === 'promoting') problems.push(`${t.topic}: a promote is under way or was interrupted (since ${time(t.since)}): run \`meridian dr promote --topic ${t.topic}\` again to complete it`);
    if (t.phase === 'failing-back') problems.push(`${t.topic}: a failback to ${t.primary} is under way or was interrupted (since ${time(t.since)}); producers are refused until it completes: run \`meridian dr failback --topic ${t.topic} --confirm\` again to complete it`);
  }
  for (const c of s.conflicts) {
    problems.push(`group ${c.group} ${c.topic}/${c.partition}: ${c.region} committed at ${time(c.commitTimestamp)} while the group has had members in ${s.region} since ${time(c.activeSince)}; its commits are not applied here: stop the group in one region`);
  }
  for (const p of s.offsetSync) {
    if (p.lastError !== null) warnings.push(`offset sync ${s.region} → ${p.region}: ${p.lastError} (${plural(p.pendingCommits, 'commit')} waiting, last success ${p.lastSuccessAt === null ? 'never' : time(p.lastSuccessAt)})`);
    else if (!p.connected && p.pendingCommits > 0) warnings.push(`offset sync ${s.region} → ${p.region}: not connected, ${plural(p.pendingCommits, 'commit')} waiting`);
  }
  const code = problems.length > 0 ? ExitCode.Failed : ExitCode.Ok;
  if (ctx.json) {
    printJson(ctx.io, s);
    return code;
  }
  let out = '';
  for (const p of problems) out += `PROBLEM  ${p}\n`;
  for (const w of warnings) out += `WARNING  ${w}\n`;
  if (out !== '') out += '\n';
  if (s.topics.length === 0) out += `region ${s.region} holds no DR topics (none under a one-way or fan-out policy that includes it)\n`;
  else {
    out += `DR topics in ${s.region}\n`;
    out += table(
      ['topic', 'policy', 'topology', 'role', 'primary', 'epoch>', 'phase', 'since', 'report'],
      s.topics.map((t) => [t.topic, t.policy, t.topology, t.readOnly ? 'read-only' : 'primary', t.primary, t.epoch, t.phase, time(t.since), t.reportId ?? '-']),
    );
  }
  if (s.offsetSync.length > 0) {
    out += `\noffset sync from ${s.region}\n`;
    out += table(
      ['peer', 'connected', 'pending>', 'last-sync', 'syncs>', 'failures>', 'error'],
      s.offsetSync.map((p) => [p.region, p.connected ? 'yes' : 'no', p.pendingCommits, time(p.lastSuccessAt), p.syncs, p.failures, p.lastError ?? '-']),
    );
  }
  if (s.conflicts.length === 0) out += '\nno group conflicts\n';
  else {
    out += `\ngroup conflicts\n`;
    out += table(
      ['group', 'topic', 'partition>', 'peer', 'peer-commit', 'active-here-since', 'detected'],
      s.conflicts.map((c) => [c.group, c.topic, c.partition, c.region, time(c.commitTimestamp), time(c.activeSince), time(c.detectedAt)]),
    );
  }
  ctx.io.stdout.write(out);
  return code;
}

// ---- promote -----------------------------------------------------------------------------

async function promote(ctx: CommandContext, scope: Record<string, string>): Promise<ExitCode> {
  // What was already promoted, to say so rather than present a saved report as new.
  const before = await ctx.client.get<DrStatus>('/v1/dr');
  const res = await ctx.client.post<{ region: string; reports: PromoteReport[] }>('/v1/dr/promote', scope);
  if (ctx.json) {
    printJson(ctx.io, res);
    return ExitCode.Ok;
  }
  if (res.reports.length === 0) {
    const what = scope.policy !== undefined ? `policy '${scope.policy}' has no topic` : 'there is no DR topic';
    ctx.io.stdout.write(`nothing promoted: ${what} in region ${res.region}\n`);
    return ExitCode.Ok;
  }
  const earlier = new Map(before.topics.map((t) => [t.topic, t]));
  ctx.io.stdout.write(res.reports.map((r) => promoteText(r, earlier.get(r.topic))).join('\n'));
  return ExitCode.Ok;
}

function promoteText(r: PromoteReport, before?: DrTopicStatus): string {
  const again = before !== undefined && before.phase === 'promoted' && before.primary === r.region && before.reportId === r.id;
  const head = again
    ? `${r.topic}: ${r.region} was already promoted to primary (epoch ${r.epoch}, at ${r.at}, replacing ${r.formerPrimary}); nothing changed. The saved report:\n`
    : `${r.topic}: ${r.region} is now the primary (epoch ${r.epoch}, was ${r.formerPrimary}; policy '${r.policy}'): producers are accepted here, replication from ${r.formerPrimary} is refused\n`;
  return head + recoveryText(r);
}

function recoveryText(r: PromoteReport): string {
  let out = `report ${r.id}  (promoted ${r.at})\n`;
  out += table(
    ['partition>', 'last-held>', 'origin-end>', 'end-age>', 'missing-records>', 'missing-seconds>'],
    r.partitions.map((p) => [p.partition, heldText(p), p.originEndOffset ?? 'unknown', ageOf(p.originEndAgeMs), p.missingRecords ?? 'unknown', missingSecondsText(p)]),
  );
  const unknown = r.partitions.filter((p) => p.missingRecords === null).map((p) => p.partition);
  const missing = r.partitions.filter((p) => p.missingRecords !== null && BigInt(p.missingRecords) > 0n);
  if (unknown.length > 0) {
    const which = unknown.length === r.partitions.length ? 'every partition' : `partition${unknown.length === 1 ? '' : 's'} ${unknown.join(', ')}`;
    out += `missing records: unknown for ${which}: ${r.formerPrimary} never reported its end offsets to ${r.region} (offset sync), so what did not replicate cannot be counted. LAST-HELD is the last ${r.formerPrimary} offset this region has.\n`;
  }
  if (missing.length > 0) {
    const total = missing.reduce((n, p) => n + BigInt(p.missingRecords!), 0n);
    const span = r.totals.maxMissingSeconds === null ? '' : `, up to ${seconds(r.totals.maxMissingSeconds)} of data`;
    out += `missing records: ${plural(total, 'record')} that ${r.formerPrimary} held did not replicate${span} (${missing.map((p) => `partition ${p.partition}: offsets ${p.missingOffsets?.first ?? '?'}-${p.missingOffsets?.last ?? '?'}`).join('; ')})\n`;
  } else if (unknown.length === 0) {
    out += `missing records: none: this region holds every record ${r.formerPrimary} last reported\n`;
  }
  return out;
}

function heldText(p: RecoveryPartition): string {
  return p.lastOriginOffsetHeld === '-1' ? 'none' : p.lastOriginOffsetHeld;
}

function missingSecondsText(p: RecoveryPartition): string {
  if (p.missingSeconds === null) return 'unknown';
  return p.missingRecords !== null && BigInt(p.missingRecords) === 0n ? '0' : seconds(p.missingSeconds);
}

// ---- failback ----------------------------------------------------------------------------

async function failback(ctx: CommandContext, topic: string, confirm: boolean): Promise<ExitCode> {
  const r = await ctx.client.post<FailbackReport>('/v1/dr/failback', { topic, confirm });
  if (ctx.json) printJson(ctx.io, r);
  else ctx.io.stdout.write(failbackText(r, confirm));
  return ExitCode.Ok;
}

function failbackText(r: FailbackReport, confirmed: boolean): string {
  const total = BigInt(r.totals.records);
  if (r.dryRun) {
    let out = `${r.topic}: dry run of a failback of ${r.region} to ${r.newPrimary} (the primary at epoch ${r.epoch}); nothing was changed\n`;
    out += divergentTable(r.partitions, false);
    out +=
      total === 0n
        ? `no divergent records: ${r.newPrimary} holds everything ${r.region} wrote; --confirm makes ${r.topic} follow ${r.newPrimary} and preserves nothing\n`
        : `${plural(total, 'record')} in ${r.region} never reached ${r.newPrimary}: --confirm copies them to side topic ${r.sideTopic} (same partitions), cuts the log at TRUNCATE-AT and makes ${r.topic} follow ${r.newPrimary}\n`;
    return out + `Re-run with --confirm to do it: meridian dr failback --topic ${r.topic} --confirm\n`;
  }
  const already = confirmed ? '' : ' (already done: this is its saved report)';
  let out = `${r.topic}: failed back${already}: ${r.region} follows ${r.newPrimary} at epoch ${r.epoch} (report ${r.id}, ${r.at})\n`;
  out += divergentTable(r.partitions, true);
  out +=
    total === 0n
      ? `no divergent records: nothing needed preserving\n`
      : `${plural(total, 'divergent record')} preserved in side topic ${r.sideTopic} (same partitions, PRESERVED-AT its offsets), then cut from ${r.topic}\n`;
  return out;
}

function divergentTable(partitions: readonly DivergentPartition[], done: boolean): string {
  const range = (x: { first: string; last: string } | null | undefined) => (x === null || x === undefined ? '-' : `${x.first}-${x.last}`);
  return table(
    ['partition>', done ? 'truncated-at>' : 'truncate-at>', 'records>', 'offsets', 'first-timestamp', 'last-timestamp', ...(done ? ['preserved-at'] : [])],
    partitions.map((p) => [p.partition, p.truncateAt, p.records, range(p.offsets), p.timestamps?.first ?? '-', p.timestamps?.last ?? '-', ...(done ? [range(p.preservedAt)] : [])]),
  );
}

// ---- reports and groups ------------------------------------------------------------------

async function report(ctx: CommandContext, id: string | undefined): Promise<ExitCode> {
  if (id === undefined) {
    const list = await ctx.client.get<Array<{ id: string; kind: string; topic: string; at: string }>>('/v1/dr/reports');
    if (ctx.json) printJson(ctx.io, list);
    else if (list.length === 0) ctx.io.stdout.write('no DR reports in this region\n');
    else ctx.io.stdout.write(table(['id', 'kind', 'topic', 'at'], list.map((r) => [r.id, r.kind, r.topic, r.at])));
    return ExitCode.Ok;
  }
  const r = await ctx.client.get<DrReport>(`/v1/dr/reports/${encodeURIComponent(id)}`);
  if (ctx.json) printJson(ctx.io, r);
  else if (r.kind === 'promote') ctx.io.stdout.write(`${r.topic}: promoted in ${r.region} to epoch ${r.epoch}, replacing ${r.formerPrimary} (policy '${r.policy}')\n${recoveryText(r)}`);
  else ctx.io.stdout.write(failbackText(r, true));
  return ExitCode.Ok;
}

async function group(ctx: CommandContext, id: string | undefined): Promise<ExitCode> {
  if (id === undefined) {
    const ids = await ctx.client.get<string[]>('/v1/dr/groups');
    if (ctx.json) printJson(ctx.io, ids);
    else ctx.io.stdout.write(ids.length === 0 ? 'no groups with committed offsets here or from a peer region\n' : `${ids.join('\n')}\n`);
    return ExitCode.Ok;
  }
  const g = await ctx.client.get<GroupStatus>(`/v1/dr/groups/${encodeURIComponent(id)}`);
  if (ctx.json) {
    printJson(ctx.io, g);
    return ExitCode.Ok;
  }
  const show = (v: string | null) => v ?? '-';
  let out = `group ${g.group} in ${g.region}\n`;
  out += table(
    ['topic', 'partition>', 'committed>', 'translated>', 'resolved>', 'source', 'peer', 'peer-offset>', 'sync-age>', 'conflict'],
    g.partitions.map((p) => [p.topic, p.partition, show(p.committed), show(p.translated), p.resolved, p.source, show(p.peer), show(p.peerOffset), ageOf(p.syncAgeMs), p.conflict === null ? '-' : `with ${p.conflict.region}`]),
  );
  for (const p of g.partitions) {
    if (p.conflict !== null) {
      out += `CONFLICT  ${p.topic}/${p.partition}: ${p.conflict.region} committed at ${time(p.conflict.commitTimestamp)} while the group has had members in ${g.region} since ${time(p.conflict.activeSince)}: its commits are not applied here\n`;
    }
  }
  ctx.io.stdout.write(out);
  return ExitCode.Ok;
}
